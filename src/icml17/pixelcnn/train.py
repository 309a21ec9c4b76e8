"""Training (through ``icml17.core.loop.run_loop``): Adam with a linear learning-rate decay, gradient-norm
clipping, periodic exact likelihood on a test subset. Data protocol: ``data.py``; evaluation: ``evaluate.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core import distributed
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.core.stats import bits_per_dim
from icml17.pixelcnn.data import load_split, make_context, quantize, raw_levels, test_images
from icml17.pixelcnn.evaluate import likelihood
from icml17.pixelcnn.presets import PixelCNNConfig, build_model

class _LogProb(torch.nn.Module):
    """``forward`` = the model's exact log-likelihood per image, so DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, context: object = None) -> torch.Tensor:
        return self.model.log_prob(x, context).total


def train(cfg: PixelCNNConfig, run_dir: str | Path, data_dir: str | Path | None = None, resume: bool = True,
          time_budget_s: float | None = None, progress: bool = True, argv: list[str] | None = None,
          tensorboard: bool = False) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable); returns the loop result. Writes ``config.json``.

    Under torchrun the model is wrapped in DistributedDataParallel and each step's global batch (indices and
    binarization noise drawn from the shared seeded stream, as one process would) is split over the ranks, so
    the averaged gradient is the single-process gradient of the same batch."""
    distributed.check_divisible("batch_size", cfg.batch_size)
    run_dir = Path(run_dir)
    torch.manual_seed(cfg.seed)
    train_x, train_y = load_split(cfg, data_dir, "train")
    if cfg.train_images:
        train_x, train_y = train_x[:cfg.train_images], train_y[:cfg.train_images]
    # periodic scores on the held-out validation images when there are some, else on the first test images
    held_x, held_y = load_split(cfg, data_dir, "val" if cfg.val_images else "test")
    val_x, val_y = test_images(cfg, held_x[:cfg.eval_images]), held_y[:cfg.eval_images]
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = lambda step: 1.0 - (1.0 - cfg.lr_final / cfg.lr) * min(step, cfg.iterations) / cfg.iterations  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = _LogProb(model)
    if distributed.context().enabled:
        net = torch.nn.parallel.DistributedDataParallel(net)

    def train_step(step: int) -> dict[str, float]:
        model.train()
        idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
        raw, y = train_x[idx], train_y[idx]
        x = quantize(cfg, raw, gen)
        mine = distributed.shard(cfg.batch_size)  # this rank's share of the global batch
        x, y = x[mine], y[mine]
        total = net(x, make_context(cfg, y, raw_levels(x, cfg)))
        loss = bits_per_dim(-total.mean(), model.dims)  # of the batch; differentiable
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        return {"bits_per_dim": loss.detach(), "grad_norm": grad_norm, "lr": sched.get_last_lr()[0]}

    def eval_fn(step: int) -> dict[str, float]:
        ev = likelihood(model, cfg, val_x, val_y)
        return {"bits_per_dim": ev["bits_per_dim"], "nats": ev["nats"]}

    state = {"model": model, "optimizer": opt, "scheduler": sched, "generator": GeneratorState(gen)}
    return run_loop(run_dir, cfg.iterations, train_step, state, config=cfg, argv=argv, eval_fn=eval_fn,
                    eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every, resume=resume,
                    progress=progress, desc=f"pixelcnn {cfg.experiment}", time_budget_s=time_budget_s,
                    tensorboard=tensorboard)
