"""Training the small sharpness networks with the project's one loop (:func:`icml17.core.loop.run_loop`).

Minibatch SGD (optionally with momentum) or Adam on a fixed tensor dataset; batches are drawn with an explicit,
checkpointed generator, so a run is resumable and repeatable. Re-running a finished run directory is a no-op (the loop
resumes at its last step), which the reproductions use as a cache.

Devices: the model and the dataset (small: a few thousand images) are moved to ``device`` once; the batch indices
come from the CPU generator, so every device sees the same batches, and are moved per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from icml17.core.device import explain_out_of_memory, to_device
from icml17.core.loop import GeneratorState, LoopResult, run_loop


@dataclass(frozen=True)
class TrainConfig:
    model: str  # preset name (icml17.sharpness.models.PRESETS)
    steps: int
    batch_size: int
    lr: float = 0.1
    momentum: float = 0.0
    seed: int = 0
    n_train: int = 2000  # size of the MNIST subset the batches come from
    optimizer: str = "sgd"  # or "adam" (Keskar et al. 2017 trained with Adam)

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need steps >= 0, batch_size >= 1, lr > 0; got {self}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> LoopResult:
    """Minimise the mean cross-entropy of ``model`` on (x, y) for ``cfg.steps`` SGD steps (in place).

    ``device``: where to train (default: where ``model`` is); the model is moved there, and so are (x, y), once.
    """
    cfg.validate()
    if len(y) == 0:
        raise ValueError("cannot train on an empty dataset")
    device = model_device(model) if device is None else torch.device(device)
    model.to(device)
    x, y = to_device((x, y), device)
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    gen = torch.Generator().manual_seed(cfg.seed)
    batch = min(cfg.batch_size, len(y))

    def step(_: int) -> dict[str, float]:
        # indices from the CPU generator (the same batches on every device), then moved
        idx = torch.randperm(len(y), generator=gen)[:batch].to(device) if batch < len(y) else slice(None)
        model.train()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    def evaluate(_: int) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            out = model(x)
        return {
            "loss": float(nn.functional.cross_entropy(out, y)),
            "accuracy": float((out.argmax(1) == y).float().mean()),
        }

    with explain_out_of_memory("the training set (n_train) or the batch size", device):
        return run_loop(
            run_dir,
            cfg.steps,
            step,
            {"model": model, "optimizer": opt, "generator": GeneratorState(gen)},
            config=cfg,
            eval_fn=evaluate,
            eval_every=max(cfg.steps, 1),
            checkpoint_every=max(cfg.steps, 1),
            log_every=max(cfg.steps // 20, 1),
            progress=progress,
            desc=f"train {cfg.model}",
        )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of ``x`` that ``model`` classifies as ``y``, on the model's device (the data is moved there)."""
    model.eval()
    x, y = to_device((x, y), model_device(model))
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())
