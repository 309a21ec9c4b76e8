"""Figures of a trained PixelCNN: sample grids, coarse-to-fine rows (paper Fig. 1) and super-resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from icml17.core.device import explain_out_of_memory, generator
from icml17.core.report import image_grid
from icml17.pixelcnn.data import load_split, make_context, raw_levels, test_images, to_model_device
from icml17.pixelcnn.evaluate import Trained, model_device, timed


def to_uint8(x: torch.Tensor, levels: int) -> np.ndarray:
    """Quantized levels 0..levels-1 (on any device) -> 0..255 for display."""
    return (x.long() * 255 // (levels - 1)).to(torch.uint8).cpu().numpy()


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour upscaling of (B, C, s, s) to (B, C, size, size), for showing coarse levels."""
    f = size // x.shape[-1]
    return x.repeat_interleave(f, -1).repeat_interleave(f, -2)


def save_sample_figures(model, samples, out: Path, prefix: str = "") -> list[Path]:
    """``samples.png`` (grid) and, for multiscale models, ``coarse_to_fine.png`` (rows: levels; columns:
    samples)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [image_grid(to_uint8(samples.images, model.levels), out / f"{prefix}samples.png")]
    if len(samples.coarse_to_fine) > 1:
        n = min(8, len(samples.images))
        rows = [upsample(lv[:n], model.image_size) for lv in samples.coarse_to_fine]
        paths.append(image_grid(to_uint8(torch.cat(rows), model.levels), out / f"{prefix}coarse_to_fine.png", nrow=n))
    return paths


def sample_and_plot(
    trained: Trained, data_dir: str | Path | None, out: Path, *, n: int = 16, temperature: float = 1.0, seed: int = 0
) -> dict:
    """Samples (and, for multiscale models, super-resolution of test images from the base grid) as PNGs.

    Conditioned models get digits 0..9 in turn (class / caption) or the test images' occupancy maps (spatial).
    Runs on the model's device, the sampling noise from a generator there seeded with ``seed``. Returns the figure
    paths, evaluation counts and seconds.
    """
    cfg, model = trained.cfg, trained.model
    device = model_device(model)
    gen = generator(device, seed)
    images, _ = load_split(cfg, data_dir, "test")
    with explain_out_of_memory("n, the number of images sampled at once", device, param="n"):
        x = test_images(cfg, images[:n])
        y = torch.arange(n) % 10
        x, context = to_model_device((x, make_context(cfg, y, raw_levels(x, cfg))), device)
        samples, seconds = timed(model.sample, n, context, temperature, gen, device=device)
    paths = save_sample_figures(model, samples, out)
    info = {"samples": [str(p) for p in paths], "evaluations": samples.evaluations, "seconds": round(seconds, 2)}
    if cfg.model != "full":  # super-resolution from the test images' base grid (7 -> 28, 8 -> 32)
        low = x[:, :, :: model.stride(0), :: model.stride(0)]
        sr, sr_s = timed(model.super_resolve, low, context, temperature, gen, device=device)
        grid = torch.cat([upsample(low, model.image_size), sr.images, x])
        info["superres"] = str(image_grid(to_uint8(grid, model.levels), out / "superres.png", nrow=n))
        info["superres_evaluations"] = sr.evaluations
        info["superres_seconds"] = round(sr_s, 2)
    return info
