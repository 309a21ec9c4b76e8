"""Datasets as the PixelCNN models see them: quantization, the fixed test binarization, conditioning contexts.

Data protocol (Reed et al. 2017, section 4 / notes): images are quantized once at the target resolution
(8-bit MNIST and CIFAR-10 as stored; ``bits < 8`` keeps the top bits); the multiscale model sub-samples its
pyramid from that quantized image. Binarized MNIST is dynamically binarized (each pixel ~ Bernoulli(x / 255))
at every training step with the run's generator; the test set is binarized once with a fixed seed (0), so
every model is scored on the same binary images. Likelihoods: bits/dim = -log2 p(x) / (C H W) summed over all
pixels; nats = -ln p(x) per image (binarized MNIST convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from icml17.core.config import ConfigError
from icml17.core.device import pin, to_device
from icml17.pixelcnn.conditioning import caption_for_label, encode_captions
from icml17.pixelcnn.presets import PixelCNNConfig

TEST_BINARIZATION_SEED = 0


SPLITS = ("train", "val", "test")


def load_split(cfg: PixelCNNConfig, data_dir: str | Path | None, split: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, C, S, S) and int64 labels (N,) of ``split`` (train, val or test); 'digits' is the
    no-download fallback. ``val`` is the last ``cfg.val_images`` images of the training split, which ``train``
    then leaves out."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "val" and not cfg.val_images:
        raise ConfigError(
            "this model held out no validation images: train it with val_images=N (e.g. 5000) "
            "to score a validation split",
            param="val_images",
        )
    if split == "test":
        return _load(cfg, data_dir, "test")
    images, labels = _load(cfg, data_dir, "train")
    if cfg.val_images >= len(images):
        raise ConfigError(f"val_images={cfg.val_images} leaves no training images (the split has {len(images)})")
    cut = len(images) - cfg.val_images
    return (images[cut:], labels[cut:]) if split == "val" else (images[:cut], labels[:cut])


def _load(cfg: PixelCNNConfig, data_dir: str | Path | None, split: str) -> tuple[Tensor, Tensor]:
    from icml17.data import load_cifar10, load_digits_fallback, load_mnist

    if cfg.dataset == "cifar10-subset":
        images, labels = load_cifar10(data_dir, split, variant="subset")
    elif cfg.dataset == "digits":
        images, labels = load_digits_fallback()
        cut = int(0.9 * len(images))
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    else:
        images, labels = load_mnist(data_dir, split)
    images = torch.from_numpy(np.ascontiguousarray(images))
    if images.dim() == 3:
        images = images[:, None]
    return images, torch.from_numpy(np.asarray(labels)).long()


def quantize(cfg: PixelCNNConfig, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """uint8 (B, C, S, S) -> int64 in [0, 2^bits): Bernoulli binarization or dropping low bits."""
    if cfg.dataset == "binarized-mnist":
        u = torch.rand(images.shape, generator=generator)
        return (u < images.float() / 255.0).long()
    return images.long() >> (8 - cfg.bits)


def test_images(cfg: PixelCNNConfig, images: Tensor) -> Tensor:
    """The fixed quantized test set (binarized with seed 0 for binarized MNIST)."""
    return quantize(cfg, images, torch.Generator().manual_seed(TEST_BINARIZATION_SEED))


def make_context(cfg: PixelCNNConfig, labels: Tensor, images: Tensor) -> object:
    """The context of a batch: labels, caption codes ('a handwritten seven') or a coarse occupancy map."""
    if cfg.condition == "class":
        return labels
    if cfg.condition == "text":
        return encode_captions([caption_for_label(int(y)) for y in labels], cfg.text_len)
    if cfg.condition == "spatial":
        return occupancy_map(cfg, images)
    if cfg.condition == "text+spatial":
        return encode_captions([caption_for_label(int(y)) for y in labels], cfg.text_len), occupancy_map(cfg, images)
    return None


def occupancy_map(cfg: PixelCNNConfig, images: Tensor) -> Tensor:
    """The share of bright pixels (> 127 of 255) in each cell of a map_size x map_size grid: (B, 1, m, m)."""
    occupied = (images.float() > 127).float().mean(1, keepdim=True)  # (B, 1, S, S)
    return F.adaptive_avg_pool2d(occupied, cfg.map_size)


def to_model_device(batch, device: torch.device | str):
    """``batch`` (a tensor, a context, or a tuple/list/dict of them; None stays None) moved to ``device`` in one
    pass, from page-locked memory and asynchronously on CUDA. Data is drawn and quantized on the CPU (the same
    images on every device); this is the one copy per step or per scored batch."""

    def pinned(t):
        if isinstance(t, Tensor):
            return pin(t, device) if t.device.type == "cpu" else t
        if isinstance(t, dict):
            return {k: pinned(v) for k, v in t.items()}
        if isinstance(t, (list, tuple)):
            return type(t)(pinned(v) for v in t)
        return t

    return to_device(pinned(batch), torch.device(device))


def raw_levels(x: Tensor, cfg: PixelCNNConfig) -> Tensor:
    """Quantized images back on the 0..255 scale (for the spatial condition)."""
    return x * 255 // (2**cfg.bits - 1)
