"""Training a video model (through ``icml17.core.loop.run_loop``, as the image models): teacher forcing, every
generated frame's exact log-likelihood in parallel, loss in nats per sub-pixel; Adam with a linear decay,
gradient-norm clipping; periodic exact likelihood on a few validation videos."""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.pixelcnn.video.data import load_video_split
from icml17.pixelcnn.video.evaluate import likelihood
from icml17.pixelcnn.video.presets import VideoConfig, build_model


def train(cfg: VideoConfig, run_dir: str | Path, data_dir: str | Path | None = None, resume: bool = True,
          time_budget_s: float | None = None, progress: bool = True, argv: list[str] | None = None,
          tensorboard: bool = False) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable); returns the loop result."""
    torch.manual_seed(cfg.seed)
    train_set = load_video_split(cfg, data_dir, "train")
    val = load_video_split(cfg, data_dir, "val", cfg.eval_periodic)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = lambda step: 1.0 - (1.0 - cfg.lr_final / cfg.lr) * min(step, cfg.iterations) / cfg.iterations
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    def train_step(step: int) -> dict[str, float]:
        model.train()
        batch = train_set.take(torch.randint(len(train_set), (cfg.batch_size,), generator=gen))
        loss = model.log_prob(batch.frames, batch.actions, batch.states).nats_per_subpixel().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        return {"nats_per_subpixel": loss.detach(), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0]}

    def eval_fn(step: int) -> dict[str, float]:
        return {"nats_per_subpixel": likelihood(model, val)}

    state = {"model": model, "optimizer": opt, "scheduler": sched, "generator": GeneratorState(gen)}
    return run_loop(run_dir, cfg.iterations, train_step, state, config=cfg, argv=argv, eval_fn=eval_fn,
                    eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every, resume=resume,
                    progress=progress, desc=f"pixelcnn {cfg.experiment}", time_budget_s=time_budget_s,
                    tensorboard=tensorboard)
