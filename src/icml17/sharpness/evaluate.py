"""Measure a trained network's flatness: a run's checkpoint, shipped weights, or a preset trained briefly.

The shipped minima (``small-batch`` and ``large-batch``: a 784-100-10 ReLU MLP trained by SGD with batch 8 and
batch 1000 from one initialisation, Dinh et al. 2017 appendix A as run by ``reproduce --which radial-ranking``)
are measured with the reproductions' protocol (:class:`~icml17.sharpness.presets.ReproConfig`), so ``icml17 sharpness eval --weights NAME``
reproduces the numbers of ``results/sharpness/radial-ranking.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from icml17.core.checkpoint import CheckpointError, load_checkpoint
from icml17.core.config import ConfigError, config_from_dict
from icml17.core.run import CHECKPOINT_FILE, load_run_config
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.measures import measure
from icml17.sharpness.presets import PRESETS, ReproConfig, build_model
from icml17.sharpness.train import TrainConfig, accuracy

CE = nn.functional.cross_entropy


PROTOCOL = ReproConfig()  # the reproductions' (radial-ranking's minima were measured so)
RECORD_MEASURES = ("lambda_max", "trace", "epsilon", "loss")


@dataclass
class Trained:
    model: nn.Module
    cfg: TrainConfig
    iterations: int
    weights: str | None = None
    record: str | None = None


def load_run(run_dir: str | Path) -> Trained:
    """The network of a sharpness training run (``RUN_DIR/checkpoints/last.pt``; a path to ``last.pt`` works too)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent.parent
    ckpt = load_checkpoint(run_dir / CHECKPOINT_FILE)
    try:
        cfg = load_run_config(TrainConfig, run_dir, ckpt)
    except ConfigError as e:
        raise CheckpointError(f"{run_dir} is not a sharpness training run ({e}); train one with "
                              f"`icml17 sharpness reproduce` or pass --model") from e
    if cfg.model not in PRESETS or "model" not in ckpt.get("state", {}):
        raise CheckpointError(f"{run_dir} is not a sharpness training run (its config names no preset of "
                              f"{sorted(PRESETS)})")
    model = build_model(cfg.model)
    model.load_state_dict(ckpt["state"]["model"])
    return Trained(model.eval(), cfg, int(ckpt["step"]))


def load_shipped(name: str) -> Trained:
    from icml17.weights import load_weights

    w = load_weights(name, "sharpness")
    cfg = config_from_dict(TrainConfig, w.config)
    model = build_model(cfg.model)
    model.load_state_dict(w.state)
    return Trained(model.eval(), cfg, w.iterations, weights=name, record=w.record)


def protocol_data(data_dir: str | Path | None, protocol: ReproConfig = PROTOCOL):
    """(measurement batch, training subset, test subset) of ``protocol``."""
    x, y = mnist_subset(data_dir, "train", protocol.n_train, protocol.seed)
    x_test, y_test = mnist_subset(data_dir, "test", protocol.n_test, protocol.seed)
    return (x[:protocol.n_measure], y[:protocol.n_measure]), (x, y), (x_test, y_test)


def evaluate(trained: Trained, data_dir: str | Path | None, names: tuple[str, ...] = RECORD_MEASURES,
             protocol: ReproConfig = PROTOCOL, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The measures of ``trained.model`` under ``protocol``, with train and test accuracy."""
    batch, train, test = protocol_data(data_dir, protocol)
    out = measure(trained.model, CE, batch, list(names), dtype=dtype, options=protocol.measure_options)
    out.pop("options", None)
    return {**out, "train_accuracy": accuracy(trained.model, *train), "test_accuracy": accuracy(trained.model, *test)}
