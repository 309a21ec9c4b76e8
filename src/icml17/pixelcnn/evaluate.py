"""Exact likelihood of a trained PixelCNN (full or multiscale) on the test split (or train / validation), and its
results record.

The model comes from a run directory's checkpoint, rebuilt from the checkpoint's own config, or from shipped
weights. Every image is scored exactly (no sampling): bits/dim = -log2 p(x) / (C H W), nats = -ln p(x) per
image (the binarized-MNIST convention), plus the bits/dim of each factor (base, then each group of each scale).

Devices: models load on the CPU and move to ``device``; the likelihood runs where the model lives, in the model's
own dtype (float32; never under autocast), with images quantized on the CPU and moved one batch at a time.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from icml17.core import distributed
from icml17.core.config import ConfigError
from icml17.core.device import explain_out_of_memory, synchronize
from icml17.core.results import write_record
from icml17.core.runs import TrainedRun, load_trained_run, trained_from_weights
from icml17.core.stats import bits_per_dim
from icml17.pixelcnn.data import load_split, make_context, raw_levels, test_images, to_model_device
from icml17.pixelcnn.presets import PixelCNNConfig, build_pixelcnn_model

Trained = TrainedRun[PixelCNNConfig, nn.Module]  # a trained PixelCNN and where it came from


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> Trained:
    """The model of a run directory's last checkpoint, rebuilt from the checkpoint's own config, on ``device``
    (default the CPU; the checkpoint is read on the CPU whatever device wrote it)."""
    return load_trained_run(run_dir, PixelCNNConfig, "model", "pixelcnn", _build, device=device)


def load_shipped(name: str, device: torch.device | str | None = None) -> Trained:
    """The model of the shipped weights ``name`` (``icml17.weights``), on ``device`` (default the CPU)."""
    from icml17.weights import load_weights

    return trained_from_weights(load_weights(name, "pixelcnn"), PixelCNNConfig, _build, device=device)


def _build(cfg: PixelCNNConfig) -> nn.Module:
    return build_pixelcnn_model(cfg).eval()


def model_device(model: nn.Module) -> torch.device:
    """The device a model computes on (that of its parameters)."""
    return next(model.parameters()).device


@torch.no_grad()
def likelihood(model, cfg: PixelCNNConfig, images: Tensor, labels: Tensor, batch_size: int = 100) -> dict[str, float]:
    """Mean exact NLL over quantized ``images``: nats/image, bits/dim, and bits/dim of each factor.

    Runs on the model's device (``images`` and ``labels`` may live anywhere: each batch and its context are moved
    there), in the model's dtype with autocast off, summed in float64. Under torchrun each rank scores a
    contiguous share of the images and the sums are all-reduced."""
    model.eval()
    device = model_device(model)
    ctx = distributed.context()
    n = len(images)
    if n < ctx.world_size:
        raise ConfigError(f"{n} images cannot be shared by {ctx.world_size} processes; score at least as many")
    lo, hi = ctx.rank * n // ctx.world_size, (ctx.rank + 1) * n // ctx.world_size
    total, terms = torch.zeros((), dtype=torch.float64, device=device), {}
    for i in range(lo, hi, batch_size):
        x, y = images[i : min(i + batch_size, hi)], labels[i : min(i + batch_size, hi)]
        x, y = x.cpu(), y.cpu()  # contexts (captions, occupancy maps) are built on the CPU, as in training
        x, context = to_model_device((x, make_context(cfg, y, raw_levels(x, cfg))), device)
        with _no_autocast(device):
            lp = model.log_prob(x, context)
        total += lp.total.double().sum()
        for k, v in lp.terms.items():
            terms[k] = terms.get(k, 0.0) + v.double().sum()
    keys = sorted(terms)  # the same factors on every rank: each scores at least one image (checked above)
    sums = distributed.all_reduce_sum(
        torch.stack([total] + [torch.as_tensor(terms.get(k, 0.0), dtype=torch.float64, device=device) for k in keys])
    )
    sums = sums.cpu().tolist()  # one copy to the host
    total, terms = sums[0], dict(zip(keys, sums[1:]))
    dims = model.dims
    out = {"nats": -total / n, "bits_per_dim": bits_per_dim(-total / n, dims), "n": n}
    out.update({f"bpd/{k}": bits_per_dim(-v / n, dims) for k, v in terms.items()})
    return out


def _no_autocast(device: torch.device):
    """Autocast off on ``device`` (the likelihood is exact in the model's dtype even inside a training step)."""
    kind = device.type if device.type in ("cuda", "cpu", "mps") else "cpu"
    return torch.autocast(device_type=kind, enabled=False)


def timed(fn, *args, device: torch.device | str | None = None, **kwargs):
    """(result, seconds) of ``fn(*args, **kwargs)``; with ``device``, its queued work is waited for at both ends
    (GPU timings)."""
    if device is not None:
        synchronize(device)
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    if device is not None:
        synchronize(device)
    return out, time.perf_counter() - t0


def evaluate(
    trained: Trained, data_dir: str | Path | None = None, n_eval: int = 0, split: str = "test", batch_size: int = 100
) -> dict[str, Any]:
    """Exact likelihood on ``split`` (train, val or test; its first ``n_eval`` images, 0 = all), ``batch_size``
    images at a time on the model's device."""
    cfg = trained.cfg
    images, labels = load_split(cfg, data_dir, split)
    if n_eval:
        images, labels = images[:n_eval], labels[:n_eval]
    device = model_device(trained.model)
    with explain_out_of_memory("batch_size (images scored at once)", device):
        ev, seconds = timed(likelihood, trained.model, cfg, test_images(cfg, images), labels, batch_size, device=device)
    return {**ev, "eval_wall_time_s": seconds}


def evaluate_splits(
    trained: Trained, data_dir: str | Path | None, n_eval: int, splits: list[str]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The test evaluation (or the last split's if test is not asked for) and, per split, bits/dim, nats per
    sub-pixel (Table 1's unit) and the number of images scored. Checks every split exists before scoring."""
    for split in splits:  # a missing validation split fails here, before minutes of scoring
        load_split(trained.cfg, data_dir, split)
    by_split, main = {}, None
    for split in splits:
        ev = evaluate(trained, data_dir, n_eval, split)
        by_split[split] = {
            "bits_per_dim": round(ev["bits_per_dim"], 4),
            "nats_per_subpixel": round(ev["bits_per_dim"] * math.log(2), 4),
            "n": ev["n"],
        }
        if main is None or split == "test":
            main = ev
    return main, by_split


def write_result(
    trained: Trained,
    ev: dict[str, Any],
    out_dir: str | Path,
    command: str,
    name: str | None = None,
    by_split: dict[str, dict[str, float]] | None = None,
) -> Path:
    """``out_dir/<experiment>.json`` (experiment: ``name`` or the config's, e.g. ``mnist-typeB``); ``by_split``
    (from :func:`evaluate_splits`) adds every scored split."""
    cfg, model = trained.cfg, trained.model
    binarized = cfg.dataset == "binarized-mnist"
    experiment = name or cfg.experiment
    return write_record(
        Path(out_dir) / f"{experiment}.json",
        device=model_device(model),
        record={
            "system": "pixelcnn",
            "experiment": experiment,
            "metric": "nats" if binarized else "bits_per_dim",
            "value": round(ev["nats"] if binarized else ev["bits_per_dim"], 4),
            "paper": None,
            "higher_is_better": False,
            "n_eval": ev["n"],
            "iterations": trained.iterations,
            "wall_time_s": round(trained.wall_time_s, 1),
            "seed": cfg.seed,
            "weights": trained.weights,
            "command": command,
            "bits_per_dim": round(ev["bits_per_dim"], 4),
            "nats_per_image": round(ev["nats"], 2),
            "bits_per_dim_by_factor": {k[4:]: round(v, 4) for k, v in ev.items() if k.startswith("bpd/")},
            "model": cfg.model,
            "hidden": cfg.hidden,
            "layers": cfg.layers,
            "batch_size": cfg.batch_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "binarization": "dynamic (train), fixed seed 0 (test)" if binarized else None,
            "eval_wall_time_s": round(ev["eval_wall_time_s"], 1),
            "condition": cfg.condition,
            "val_images": cfg.val_images,
            **({"by_split": by_split} if by_split else {}),
        },
    )
