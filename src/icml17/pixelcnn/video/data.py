"""Moving-MNIST splits as model inputs: integer frames (N, T, 1, S, S) quantized to the config's bit depth,
actions and states (N, T, 5) float32. The generator and its cache live in :mod:`icml17.data.moving_mnist`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from icml17.core.device import pin, to_device
from icml17.data import load_digits_fallback
from icml17.data.moving_mnist import (
    MovingMnist,
    generate_moving_mnist,
    load_moving_mnist,
)
from icml17.pixelcnn.video.presets import VideoConfig

EVAL_SPLITS = ("val", "test_seen", "test_novel")
FALLBACK_SEEN = 1500  # scikit-learn digits 0..1499 are the "seen" objects, the rest the novel ones


@dataclass
class VideoSplit:
    frames: Tensor  # (N, T, 1, S, S) int64 in [0, 2^bits)
    actions: Tensor  # (N, T, 5) float32
    states: Tensor  # (N, T, 5) float32

    def __len__(self) -> int:
        return len(self.frames)

    def take(self, idx: Tensor | slice) -> VideoSplit:
        return VideoSplit(self.frames[idx], self.actions[idx], self.states[idx])

    def to(self, device: torch.device | str) -> VideoSplit:
        """The split on ``device`` in one pass (from pinned memory, asynchronously, to a GPU)."""
        parts = [pin(t, device) if t.device.type == "cpu" else t for t in (self.frames, self.actions, self.states)]
        return VideoSplit(*to_device(parts, device))


def load_video_split(cfg: VideoConfig, data_dir: str | Path | None, split: str, n: int | None = None) -> VideoSplit:
    """``split`` of the config's moving-MNIST set (its first ``n`` videos; default all)."""
    if cfg.digits == "fallback":
        raw = _fallback_split(cfg, split)
    else:
        raw = load_moving_mnist(data_dir, split, size=cfg.frame_size, frames=cfg.frames,
                                n_sequences=cfg.eval_sequences, train_sequences=cfg.train_sequences,
                                max_digits=cfg.max_digits, mode=cfg.mode, seed=cfg.data_seed, noise=cfg.noise)
    frames = torch.from_numpy(raw.frames[:n]).long() >> (8 - cfg.bits)  # uint8 -> top ``bits`` bits
    return VideoSplit(frames[:, :, None], torch.from_numpy(raw.actions[:n]), torch.from_numpy(raw.states[:n]))


def _fallback_split(cfg: VideoConfig, split: str) -> MovingMnist:
    """The same generator over scikit-learn's 1,797 digits (nothing to download; not cached: it is small)."""
    images, _ = load_digits_fallback()
    pool = images[FALLBACK_SEEN:] if split == "test_novel" else images[:FALLBACK_SEEN]
    n = cfg.train_sequences if split == "train" else cfg.eval_sequences
    seed = 1000 * cfg.data_seed + ("train", *EVAL_SPLITS).index(split)
    return generate_moving_mnist(pool, n, size=cfg.frame_size, frames=cfg.frames, max_digits=cfg.max_digits,
                                 mode=cfg.mode, seed=seed, noise=cfg.noise)
