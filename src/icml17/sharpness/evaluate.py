"""Measure a trained network's flatness: a run's checkpoint, shipped weights, or a preset trained briefly.

The shipped minima (``small-batch`` and ``large-batch``: a 784-100-10 ReLU MLP trained by SGD with batch 8 and
batch 1000 from one initialisation, Dinh et al. 2017 appendix A as run by ``reproduce --which radial-ranking``)
are measured with the reproductions' protocol (:class:`~icml17.sharpness.presets.ReproConfig`), so ``icml17 sharpness eval --weights NAME``
reproduces the numbers of ``results/sharpness/radial-ranking.json``.

Loaders read weights on the CPU and put the model on ``device``; :func:`evaluate` follows the model's device (the
protocol's data is moved there once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from icml17.core.checkpoint import CheckpointError
from icml17.core.config import ConfigError, config_from_dict
from icml17.core.device import explain_out_of_memory, to_device
from icml17.core.run import load_trained_run
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.measures import measure
from icml17.sharpness.presets import PRESETS, ReproConfig, build_model
from icml17.sharpness.train import TrainConfig, accuracy, model_device

CE = nn.functional.cross_entropy


def mse_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Squared error; class labels (integers) are compared as one-hot vectors, the usual MSE of a classifier."""
    if not targets.is_floating_point():
        targets = nn.functional.one_hot(targets.long(), outputs.shape[-1]).to(outputs.dtype)
    return nn.functional.mse_loss(outputs, targets)


PROTOCOL = ReproConfig()  # the reproductions' (radial-ranking's minima were measured so)
RECORD_MEASURES = ("lambda_max", "trace", "epsilon", "loss")


@dataclass
class Trained:
    model: nn.Module
    cfg: TrainConfig
    iterations: int
    weights: str | None = None
    record: str | None = None


# sharpness has no train command: its runs come from the reproductions
TRAINED_BY = "`icml17 sharpness reproduce` trains them (under runs/sharpness)"


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> Trained:
    """The network of a sharpness training run (``RUN_DIR/checkpoints/last.pt``; a path to ``last.pt`` works too),
    on ``device`` (default the CPU)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent.parent
    try:
        run = load_trained_run(run_dir, TrainConfig, "model", "sharpness",
                               how_to_train=f"{TRAINED_BY}; or pass --weights NAME")
    except ConfigError as e:
        raise CheckpointError(str(e)) from e
    if run.cfg.model not in PRESETS:
        raise CheckpointError(f"{run_dir} is not a sharpness training run (its config names no preset of "
                              f"{sorted(PRESETS)})")
    model = build_model(run.cfg.model)
    model.load_state_dict(run.state)
    return Trained(model.to(device or "cpu").eval(), run.cfg, run.iterations)


def load_shipped(name: str, device: torch.device | str | None = None) -> Trained:
    """Shipped weights ``name`` (read on the CPU) as a model on ``device`` (default the CPU)."""
    from icml17.weights import load_weights

    w = load_weights(name, "sharpness")
    cfg = config_from_dict(TrainConfig, w.config)
    model = build_model(cfg.model)
    model.load_state_dict(w.state)
    return Trained(model.to(device or "cpu").eval(), cfg, w.iterations, weights=name, record=w.record)


def protocol_data(data_dir: str | Path | None, protocol: ReproConfig = PROTOCOL):
    """(measurement batch, training subset, test subset) of ``protocol``."""
    x, y = mnist_subset(data_dir, "train", protocol.n_train, protocol.seed)
    x_test, y_test = mnist_subset(data_dir, "test", protocol.n_test, protocol.seed)
    return (x[:protocol.n_measure], y[:protocol.n_measure]), (x, y), (x_test, y_test)


def evaluate(trained: Trained, data_dir: str | Path | None, names: tuple[str, ...] = RECORD_MEASURES,
             protocol: ReproConfig = PROTOCOL, dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The measures of ``trained.model`` under ``protocol``, with train and test accuracy, on the model's device."""
    device = model_device(trained.model)
    batch, train, test = to_device(protocol_data(data_dir, protocol), device)
    with explain_out_of_memory("the batch: `icml17 sharpness measure --weights NAME --batch-size B` measures "
                               "the same minimum in smaller batches", device):
        out = measure(trained.model, CE, batch, list(names), dtype=dtype, options=protocol.measure_options)
    out.pop("options", None)
    return {**out, "train_accuracy": accuracy(trained.model, *train), "test_accuracy": accuracy(trained.model, *test)}


def load_factory(spec: str, state: str | Path | None = None) -> nn.Module:
    """A user's model from ``"package.module:function"`` (called with no arguments; the working directory is
    importable), optionally with weights from a safetensors or state-dict file."""
    import importlib
    import sys

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--factory expects MODULE:FUNCTION (e.g. mymodels:build), got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import {spec!r}: {e}") from e
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    if state is not None:
        model.load_state_dict(_read_state(Path(state)))
    return model.eval()


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:  # tensors only: a pickled object is refused, never run
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path} is not a state dict of tensors (safetensors or torch.save of tensors): {e}") from e


def load_npz(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels from an ``.npz`` with arrays ``x`` (N, ...) and ``y`` (N,): integer class labels for
    cross-entropy, or float targets."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {path} not found")
    with np.load(path, allow_pickle=False) as npz:
        if "x" not in npz.files or "y" not in npz.files:
            raise ConfigError(f"{path} needs arrays 'x' (inputs) and 'y' (labels); it has {npz.files}")
        x, y = torch.from_numpy(np.ascontiguousarray(npz["x"])), torch.from_numpy(np.ascontiguousarray(npz["y"]))
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"{path}: x has {len(x)} rows and y {len(y)}; they must match and not be empty")
    return x.float() if not x.is_floating_point() else x, y.long() if not y.is_floating_point() else y
