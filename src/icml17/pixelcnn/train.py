"""Training (through ``icml17.core.loop.run_loop``): Adam with a linear learning-rate decay, gradient-norm
clipping, periodic exact likelihood on a test subset. Data protocol: ``data.py``; evaluation: ``evaluate.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.core.stats import bits_per_dim
from icml17.pixelcnn.data import load_split, make_context, quantize, raw_levels, test_images
from icml17.pixelcnn.evaluate import likelihood
from icml17.pixelcnn.presets import PixelCNNConfig, build_model

def train(cfg: PixelCNNConfig, run_dir: str | Path, data_dir: str | Path | None = None, resume: bool = True,
          time_budget_s: float | None = None, progress: bool = True, argv: list[str] | None = None,
          tensorboard: bool = False) -> LoopResult:
    """Train ``cfg`` into ``run_dir`` (resumable); returns the loop result. Writes ``config.json``."""
    run_dir = Path(run_dir)
    torch.manual_seed(cfg.seed)
    train_x, train_y = load_split(cfg, data_dir, "train")
    if cfg.train_images:
        train_x, train_y = train_x[:cfg.train_images], train_y[:cfg.train_images]
    test_x, test_y = load_split(cfg, data_dir, "test")
    val_x, val_y = test_images(cfg, test_x[:cfg.eval_images]), test_y[:cfg.eval_images]
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = lambda step: 1.0 - (1.0 - cfg.lr_final / cfg.lr) * min(step, cfg.iterations) / cfg.iterations  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    def train_step(step: int) -> dict[str, float]:
        model.train()
        idx = torch.randint(len(train_x), (cfg.batch_size,), generator=gen)
        raw, y = train_x[idx], train_y[idx]
        x = quantize(cfg, raw, gen)
        lp = model.log_prob(x, make_context(cfg, y, raw_levels(x, cfg)))
        loss = bits_per_dim(-lp.total.mean(), model.dims)  # of the batch; differentiable
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
