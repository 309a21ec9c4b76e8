"""Measure a trained network's flatness: a run's checkpoint, shipped weights, or a preset trained briefly.

The shipped minima (``small-batch`` and ``large-batch``: a 784-100-10 ReLU MLP trained by SGD with batch 8 and
batch 1000 from one initialisation, Dinh et al. 2017 appendix A as run by ``reproduce --which radial-ranking``)
are measured with the reproductions' protocol (:class:`~icml17.sharpness.presets.ReproConfig`), so
``icml17 sharpness eval --weights NAME`` reproduces the numbers of ``results/sharpness/radial-ranking.json``.

Loaders read weights on the CPU and put the model on ``device``; :func:`evaluate` follows the model's device (the
protocol's data is moved there once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from icml17.core.checkpoint import CheckpointError
from icml17.core.config import ConfigError
from icml17.core.device import explain_out_of_memory, to_device
from icml17.core.runs import TrainedRun, read_trained_run, trained_from_weights, with_model
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.measures import measure
from icml17.sharpness.presets import PRESETS, ReproConfig, build_sharpness_model
from icml17.sharpness.train import TrainConfig, accuracy, model_device

CE = nn.functional.cross_entropy


class OneHotMSELoss(nn.MSELoss):
    """Mean squared error; class labels (integers) are compared as one-hot vectors, the usual MSE of a classifier.

    An ``nn.MSELoss`` so that the curvature engine knows it for one: forward mode cannot differentiate torch's MSE
    backward ("ZeroTensors are immutable"), and the engine takes reverse-over-reverse products for MSE losses on
    every model the layerwise products do not cover (batch norm, pooling, dropout, nested modules).
    """

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not targets.is_floating_point():
            targets = nn.functional.one_hot(targets.long(), outputs.shape[-1]).to(outputs.dtype)
        return super().forward(outputs, targets)


mse_loss = OneHotMSELoss()  # the loss of ``icml17 sharpness measure --loss mse``


PROTOCOL = ReproConfig()  # the reproductions' (radial-ranking's minima were measured so)
RECORD_MEASURES = ("lambda_max", "trace", "epsilon", "loss")


Trained = TrainedRun[TrainConfig, nn.Module]  # a trained network and where it came from


# sharpness has no train command: its runs come from the reproductions
TRAINED_BY = "`icml17 sharpness reproduce` trains them (under runs/sharpness)"


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> Trained:
    """The network of a sharpness training run (``RUN_DIR/checkpoints/last.pt``; a path to ``last.pt`` works too),
    on ``device`` (default the CPU)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent.parent
    try:
        run = read_trained_run(
            run_dir,
            TrainConfig,
            "model",
            "sharpness",
            how_to_train=f"{TRAINED_BY}; or use shipped weights (load_shipped, `--weights NAME`)",
        )
    except ConfigError as e:
        raise CheckpointError(str(e)) from e
    if run.cfg.model not in PRESETS:
        raise CheckpointError(
            f"{run_dir} is not a sharpness training run (its config names no preset of {sorted(PRESETS)})"
        )
    return with_model(run, _build, device)


def load_shipped(name: str, device: torch.device | str | None = None) -> Trained:
    """Shipped weights ``name`` (read on the CPU) as a model on ``device`` (default the CPU)."""
    from icml17.weights import load_weights

    return trained_from_weights(load_weights(name, "sharpness"), TrainConfig, _build, device=device)


def _build(cfg: TrainConfig) -> nn.Module:
    return build_sharpness_model(cfg.model).eval()


def protocol_data(data_dir: str | Path | None, protocol: ReproConfig = PROTOCOL):
    """(measurement batch, training subset, test subset) of ``protocol``."""
    x, y = mnist_subset(data_dir, "train", protocol.n_train, protocol.seed)
    x_test, y_test = mnist_subset(data_dir, "test", protocol.n_test, protocol.seed)
    return (x[: protocol.n_measure], y[: protocol.n_measure]), (x, y), (x_test, y_test)


def evaluate(
    trained: Trained,
    data_dir: str | Path | None,
    names: tuple[str, ...] = RECORD_MEASURES,
    protocol: ReproConfig = PROTOCOL,
    dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """The measures of ``trained.model`` under ``protocol``, with train and test accuracy, on the model's device."""
    device = model_device(trained.model)
    batch, train, test = to_device(protocol_data(data_dir, protocol), device)
    with explain_out_of_memory(
        "the batch: measure() given the data as an iterable of smaller batches (`icml17 "
        "sharpness measure --weights NAME --batch-size B`) measures the same minimum",
        device,
    ):
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
        raise ConfigError(f"factory expects 'MODULE:FUNCTION' (e.g. 'mymodels:build'), got {spec!r}", param="spec")
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
        weights = _read_state(Path(state))
        _check_state(weights, model.state_dict(), f"--state {state} does not fit {spec}")
        model.load_state_dict(weights)
    return model.eval()


def _check_state(weights: dict[str, torch.Tensor], own: dict[str, torch.Tensor], what: str) -> None:
    """One line naming the keys and shapes where ``weights`` differ from the model's ``own`` state dict
    (``load_state_dict`` would raise a many-line error)."""

    def names(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")

    missing = sorted(set(own) - set(weights))
    unknown = sorted(set(weights) - set(own))
    shapes = [
        f"{k} {tuple(weights[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in weights and weights[k].shape != own[k].shape
    ]
    parts = ([f"missing {names(missing)}"] if missing else []) + ([f"unknown {names(unknown)}"] if unknown else [])
    parts += [f"other shapes: {names(shapes)}"] if shapes else []
    if parts:
        raise ConfigError(
            f"{what}: {'; '.join(parts)}; pass the state_dict() saved from the network this factory builds"
        )


def check_data(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Refuse data that ``model`` or the loss cannot take, in one line each, before any measure runs (torch would
    fail deep inside the curvature engine). ``loss`` is ``"cross_entropy"`` (integer class labels within the
    model's outputs) or ``"mse"`` (such labels, compared as one-hot vectors, or float targets of the outputs'
    shape). Returns ``y``, float targets of shape (N,) reshaped to (N, 1) for a model with one output.

    Raises:
        ConfigError: the inputs do not fit the model, or the labels do not fit the loss and the model's outputs.
    """
    first = next(model.parameters(), None)
    probe = x[:2].to(first.dtype if first is not None and first.is_floating_point() else x.dtype)
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"the model cannot take the data's inputs (x of shape {tuple(x.shape)}): {reason}; pass "
            "inputs shaped as the model expects"
        ) from e
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() < 2:
        raise ConfigError(
            f"the model returns {type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))}; "
            "measures need outputs of shape (N, C)"
        )
    classes = out.shape[1]
    if y.is_floating_point():
        if loss == "cross_entropy":
            raise ConfigError(
                f"cross-entropy needs integer class labels in y, got {str(y.dtype).replace('torch.', '')} "
                "values; store y as integers, or use loss='mse' for float targets",
                param="loss",
            )
        if y.dim() == 1 and out.shape[1:] == (1,):
            return y[:, None]
        if y.shape[1:] != out.shape[1:]:
            raise ConfigError(
                f"float targets y have shape {tuple(y.shape)}, the model's outputs "
                f"{('N', *out.shape[1:])}; loss='mse' compares them element by element: store y with "
                "the outputs' shape (or integer class labels)",
                param="loss",
            )
        return y
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ConfigError(
            f"y holds class labels {int(y.min())}..{int(y.max())}, but the model has {classes} outputs "
            f"(classes 0..{classes - 1}); relabel y or measure a model with more outputs"
        )
    return y


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
