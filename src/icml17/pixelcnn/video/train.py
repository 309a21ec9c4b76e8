"""Training a video model (through ``icml17.core.loop.run_loop``, as the image models): teacher forcing, every
generated frame's exact log-likelihood in parallel, loss in nats per sub-pixel; Adam with a linear decay,
gradient-norm clipping; periodic exact likelihood on a few validation videos.

Device: the model and the validation videos live on ``device``; the training videos stay on the CPU, where the
batch indices are drawn (so a run sees the same batches on every device), and each step's batch moves once.
``precision`` bf16/fp16 runs the training forward pass under autocast (fp16 with a gradient scaler, whose state
is checkpointed: a run started in fp32 or bf16 cannot resume in fp16, the other way round works); the periodic
likelihood is always computed in float32.
"""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core.device import autocast, check_precision, explain_out_of_memory, grad_scaler
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.pixelcnn.train import adam_linear_decay
from icml17.pixelcnn.video.data import load_video_split
from icml17.pixelcnn.video.evaluate import likelihood
from icml17.pixelcnn.video.presets import VideoConfig, build_video_model

OUT_OF_MEMORY_KNOB = "batch_size (--set batch_size=N), or frame_size/hidden"


def train(
    cfg: VideoConfig,
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    resume: bool = True,
    time_budget_s: float | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    tensorboard: bool = False,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable) on ``device`` (default the CPU) in ``precision`` (fp32, bf16
    or fp16); returns the loop result."""
    device = torch.device(device or "cpu")
    check_precision(precision, device)
    torch.manual_seed(cfg.seed)
    train_set = load_video_split(cfg, data_dir, "train")
    val = load_video_split(cfg, data_dir, "val", cfg.eval_periodic).to(device)
    model = build_video_model(cfg).to(device)
    opt, sched = adam_linear_decay(model, cfg.lr, cfg.lr_final, cfg.iterations)
    scaler = grad_scaler(device, precision)
    gen = torch.Generator().manual_seed(cfg.seed)  # data order: on the CPU whatever the device

    def train_step(step: int) -> dict[str, float]:
        model.train()
        batch = train_set.take(torch.randint(len(train_set), (cfg.batch_size,), generator=gen)).to(device)
        with explain_out_of_memory(OUT_OF_MEMORY_KNOB, device):
            with autocast(device, precision):
                loss = model.log_prob(batch.frames, batch.actions, batch.states).nats_per_subpixel().mean()
            opt.zero_grad(set_to_none=True)
            if scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.unscale_(opt)  # clip the true gradients
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)  # skipped when the scaled gradients overflowed
                scaler.update()
            else:
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
        sched.step()
        nats, norm = torch.stack([loss.detach().float(), grad_norm.float()]).cpu().tolist()  # one copy to the host
        return {"nats_per_subpixel": nats, "grad_norm": norm, "lr": sched.get_last_lr()[0]}

    def eval_fn(step: int) -> dict[str, float]:
        with explain_out_of_memory(OUT_OF_MEMORY_KNOB, device):
            return {"nats_per_subpixel": likelihood(model, val)}

    state = {"model": model, "optimizer": opt, "scheduler": sched, "generator": GeneratorState(gen)}
    if scaler.is_enabled():
        state["scaler"] = scaler
    return run_loop(
        run_dir,
        cfg.iterations,
        train_step,
        state,
        config=cfg,
        argv=argv,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        resume=resume,
        progress=progress,
        desc=f"pixelcnn {cfg.experiment}",
        time_budget_s=time_budget_s,
        tensorboard=tensorboard,
    )
