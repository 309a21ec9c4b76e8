"""Moving-MNIST splits as model inputs: integer frames (N, T, 1, S, S) quantized to the config's bit depth,
actions and states (N, T, 5) float32, from the config's generator: ``momentum`` (:mod:`icml17.data.moving_mnist`)
or ``pushed`` (:mod:`icml17.pixelcnn.video.pushing`), each with its own cache."""

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
from icml17.pixelcnn.video.pushing import generate_pushed, load_pushed, split_camera

EVAL_SPLITS = ("val", "test_seen", "test_novel")
FALLBACK_SEEN = 1500  # scikit-learn digits 0..1499 are the "seen" objects, the rest the novel ones


@dataclass
class VideoSplit:
    """Videos as model inputs.

    Attributes:
        frames: (N, T, 1, S, S) int64 in [0, 2^bits).
        actions: (N, T, 5) float32.
        states: (N, T, 5) float32.
    """

    frames: Tensor
    actions: Tensor
    states: Tensor

    def __len__(self) -> int:
        return len(self.frames)

    def take(self, idx: Tensor | slice) -> VideoSplit:
        """The videos ``idx`` (an index tensor or a slice) of this split.

        Args:
            idx: which videos.

        Returns:
            A split of those videos (views where ``idx`` is a slice).
        """
        return VideoSplit(self.frames[idx], self.actions[idx], self.states[idx])

    def shuffled_actions(self) -> VideoSplit:
        """The same videos with each one's actions replaced by the next video's (the last takes the first's).

        Scoring a model on these measures how much it uses the actions: every video keeps its frames and states,
        only the actions come from another video. A fixed rotation rather than a random draw, so every video's
        actions change (for N >= 2) and the cost is reproducible.

        Returns:
            The split with its actions rotated by one video.
        """
        return VideoSplit(self.frames, torch.roll(self.actions, 1, dims=0), self.states)

    def to(self, device: torch.device | str) -> VideoSplit:
        """The split on ``device`` in one pass (from pinned memory, asynchronously, to a GPU).

        Args:
            device: where to move it.

        Returns:
            The split on ``device``.
        """
        parts = [pin(t, device) if t.device.type == "cpu" else t for t in (self.frames, self.actions, self.states)]
        return VideoSplit(*to_device(parts, device))


def load_video_split(cfg: VideoConfig, data_dir: str | Path | None, split: str, n: int | None = None) -> VideoSplit:
    """One split of the config's videos.

    Args:
        cfg: the experiment's config (generator, sizes, digits, seeds).
        data_dir: where MNIST's files are (None: the default data folder).
        split: ``train``, ``val``, ``test_seen`` or ``test_novel``.
        n: the first ``n`` videos only (default all of the split's).

    Returns:
        The split as model inputs.

    Raises:
        DatasetError: an unknown split or missing data files.
    """
    if cfg.digits == "fallback":
        raw = _fallback_split(cfg, split)
    else:
        videos = dict(  # the settings both generators read alike
            size=cfg.frame_size,
            frames=cfg.frames,
            n_sequences=cfg.eval_sequences,
            train_sequences=cfg.train_sequences,
            max_digits=cfg.max_digits,
            seed=cfg.data_seed,
            noise=cfg.noise,
        )
        if cfg.generator == "pushed":
            raw = load_pushed(data_dir, split, **videos)
        else:
            raw = load_moving_mnist(data_dir, split, mode=cfg.mode, **videos)
    frames = torch.from_numpy(raw.frames[:n]).long() >> (8 - cfg.bits)  # uint8 -> top ``bits`` bits
    return VideoSplit(frames[:, :, None], torch.from_numpy(raw.actions[:n]), torch.from_numpy(raw.states[:n]))


def _fallback_split(cfg: VideoConfig, split: str) -> MovingMnist:
    """The same generator over scikit-learn's 1,797 digits (nothing to download; not cached: it is small)."""
    images, _ = load_digits_fallback()
    pool = images[FALLBACK_SEEN:] if split == "test_novel" else images[:FALLBACK_SEEN]
    n = cfg.train_sequences if split == "train" else cfg.eval_sequences
    seed = 1000 * cfg.data_seed + ("train", *EVAL_SPLITS).index(split)
    if cfg.generator == "pushed":
        return generate_pushed(
            pool,
            n,
            size=cfg.frame_size,
            frames=cfg.frames,
            max_digits=cfg.max_digits,
            seed=seed,
            noise=cfg.noise,
            camera=split_camera(split),
        )
    return generate_moving_mnist(
        pool,
        n,
        size=cfg.frame_size,
        frames=cfg.frames,
        max_digits=cfg.max_digits,
        mode=cfg.mode,
        seed=seed,
        noise=cfg.noise,
    )
