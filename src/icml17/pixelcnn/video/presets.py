"""Configuration and named presets of the video experiments (Reed et al. 2017, section 4.3, Table 2).

Presets (each for any of the four models, ``--model``):
- ``paper``: 64x64 frames, 20-frame sequences, 2 context frames, 8-bit, width 128, batch 64 (the paper's
  set-up where it is stated; RMSprop and 200K steps replaced by Adam and a step budget). Sized for a GPU.
- ``cpu``: 32x32 frames, 10-frame sequences (2 context + 8 predicted), 8-bit, width 32, batch 8, 5,000
  training videos, 500 steps for every model (an equal budget), on the first data generator (``momentum``):
  the records of this 2-core machine (one thread, quiet machine: about 0.15 s a step for convlstm, 0.35 s o_t,
  0.55 s o_tlogn, 1.5 s vpn; about twice that at a load average of 3).
- ``table2``: the ``cpu`` set-up on the action-driven data (``pushed``, :mod:`icml17.pixelcnn.video.pushing`)
  with every model sized to about 450,000 parameters (:data:`TABLE2_SIZES`, each within 10% of
  :data:`TABLE2_PARAMETERS`; tested), so that Table 2's comparison is not one of sizes.
- ``tiny``: 16x16 frames, 6-frame sequences, width 16: the demo and end-to-end tests (seconds).
Deviations common to all: moving MNIST instead of robot pushing; Adam with linear decay; all models share
the encoder and its width, and train for the same number of steps in an experiment.

Data generators (``generator``): ``momentum``, the first (:mod:`icml17.data.moving_mnist`: pushes nudge a
velocity, test_seen drawn like val), the default so that every earlier run and record reads the data it was made
with; ``pushed``, where the actions decide the motion and test_seen is filmed by another camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from icml17.core.config import ConfigError, check_lr_schedule, config_from_dict
from icml17.pixelcnn.video.frames import FRAME_MODELS, PAPER_HEADS

if TYPE_CHECKING:
    from icml17.pixelcnn.video.model import VideoModel


@dataclass(frozen=True)
class VideoConfig:
    """One video experiment: data, model and training, every field settable with ``--set KEY=VALUE``.

    Attributes:
        model: the frame model, one of ``FRAME_MODELS``.
        mode: ``action`` (action-conditional) or ``passive`` (bouncing digits; the momentum generator only).
        generator: ``momentum`` (the first generator; the default, so earlier runs read their data) or ``pushed``
            (the actions decide the motion, test_seen filmed by another camera).
        frame_size: S, pixels per side (even).
        frames: frames per video, context included.
        context_frames: frames given before the first predicted one.
        max_digits: 1 or 2 digits per video.
        noise: the generator's actuator noise (unrecorded slips).
        digits: ``mnist``, or ``fallback`` (scikit-learn's digits: nothing to download; the demo).
        bits: bit depth of the frames (1-8).
        head: ``softmax``, ``logistic``, or "" for the paper's head of ``model``.
        hidden: frame model width.
        encoder_hidden: ConvLSTM width.
        layers: gated blocks of the VPN decoder / the O(T log N) base PixelCNN.
        resnet_blocks: residual blocks of the context and group networks.
        base_size: O(T log N) base resolution.
        n_mix: logistic mixture components.
        train_sequences: training videos (also fixes the digits val and test_seen reuse).
        eval_sequences: videos per evaluation split.
        eval_every: steps between periodic evaluations.
        eval_periodic: validation videos scored at each periodic evaluation.
        batch_size: videos per step.
        lr: Adam's initial learning rate.
        lr_final: the learning rate at the last step (linear decay).
        grad_clip: gradient-norm clip.
        iterations: training steps.
        checkpoint_every: steps between checkpoints.
        data_seed: the videos' seed.
        seed: initialisation and batch order.
        tag: experiment name suffix (e.g. ``-64``), set by the preset.
    """

    model: Literal["o_t", "o_tlogn", "convlstm", "vpn"] = "o_t"
    mode: Literal["action", "passive"] = "action"  # action-conditional or classic bouncing digits (momentum only)
    generator: Literal["momentum", "pushed"] = "momentum"  # the data generator (see the module docstring)
    frame_size: int = 32
    frames: int = 10  # per sequence, context included
    context_frames: int = 2
    max_digits: int = 2
    noise: float = 0.3  # actuator noise of the action-conditional generator (unobserved extra pushes)
    digits: Literal["mnist", "fallback"] = "mnist"  # fallback: scikit-learn's digits (no download; demo)
    bits: int = 8
    head: Literal["", "softmax", "logistic"] = ""  # "": the paper's (o_t logistic, o_tlogn softmax, ...)
    hidden: int = 32  # frame model width
    encoder_hidden: int = 32  # ConvLSTM width
    layers: int = 4  # gated blocks of the VPN decoder / the O(T log N) base PixelCNN
    resnet_blocks: int = 2
    base_size: int = 4  # O(T log N): base resolution
    n_mix: int = 5
    train_sequences: int = 5000
    eval_sequences: int = 200  # per split in `eval` (val, test_seen, test_novel)
    eval_every: int = 250
    eval_periodic: int = 32  # val sequences scored at each periodic eval
    batch_size: int = 8
    lr: float = 1e-3
    lr_final: float = 1e-4
    grad_clip: float = 1.0
    iterations: int = 500
    checkpoint_every: int = 50
    data_seed: int = 0
    seed: int = 0
    tag: str = ""  # experiment name suffix (e.g. "-64"), set by the preset

    @property
    def experiment(self) -> str:
        """e.g. ``video-o_t`` (cpu preset) or ``video-o_t-64`` (paper preset)."""
        return f"video-{self.model}{self.tag}"

    @property
    def resolved_head(self) -> str:
        """The head the model is built with: ``head``, or the paper's for ``model`` when it is ""."""
        return self.head or PAPER_HEADS[self.model]

    def validate(self) -> None:
        """Refuse impossible settings before any work (``config_from_dict`` calls it).

        Raises:
            ConfigError: naming the field and the fix.
        """
        check_lr_schedule(self.lr, self.lr_final, self.grad_clip)
        s = self.frame_size
        if s < 2 or s % 2:
            raise ConfigError(f"frame_size must be even (2x2 pixel groups), got {s}")
        if self.model == "o_tlogn":
            k = s // self.base_size
            if s % self.base_size or k < 2 or k & (k - 1):
                raise ConfigError(
                    f"base_size={self.base_size} does not fit {s}x{s} frames: the size must be "
                    f"base_size * 2^k with k >= 1 (e.g. base_size {max(1, s // 8)})"
                )
        if self.frames < self.context_frames + 1:
            raise ConfigError(
                f"frames={self.frames} leaves nothing to predict after {self.context_frames} "
                f"context frames: set frames >= {self.context_frames + 1}"
            )
        if self.generator == "pushed" and self.mode != "action":
            raise ConfigError(
                "the pushed generator makes action-conditional videos only: drop mode=passive or use generator=momentum"
            )
        if not 1 <= self.bits <= 8:
            raise ConfigError(f"bits must be in 1..8, got {self.bits}")
        for name in (
            "hidden",
            "encoder_hidden",
            "layers",
            "resnet_blocks",
            "batch_size",
            "context_frames",
            "eval_sequences",
            "eval_periodic",
            "train_sequences",
            "n_mix",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


PRESETS: dict[str, dict] = {
    "paper": {
        "frame_size": 64,
        "frames": 20,
        "hidden": 128,
        "encoder_hidden": 128,
        "batch_size": 64,
        "base_size": 4,
        "resnet_blocks": 4,
        "layers": 8,
        "train_sequences": 10000,
        "eval_sequences": 500,
        "lr": 3e-4,
        "lr_final": 3e-5,
        "iterations": 20000,
        "eval_every": 1000,
        "checkpoint_every": 500,
        "tag": "-64",
    },
    "cpu": {},
    "table2": {"generator": "pushed", "tag": "-table2"},
    "tiny": {
        "frame_size": 16,
        "frames": 6,
        "hidden": 16,
        "encoder_hidden": 16,
        "layers": 2,
        "resnet_blocks": 1,
        "base_size": 4,
        "train_sequences": 500,
        "eval_sequences": 32,
        "eval_periodic": 16,
        "batch_size": 8,
        "iterations": 100,
        "eval_every": 50,
        "tag": "-tiny",
    },
}


# Table 2 at matched sizes: the frame models' widths and depths that bring each to about TABLE2_PARAMETERS
# parameters in all (the shared ConvLSTM encoder, 78,208 at width 32, included); counted by a test.
TABLE2_PARAMETERS = 450_000
TABLE2_SIZES: dict[str, dict] = {
    "convlstm": {"hidden": 80, "resnet_blocks": 3},  # 452,268
    "o_t": {"hidden": 40, "resnet_blocks": 2},  # 449,108
    "o_tlogn": {"hidden": 24, "resnet_blocks": 2, "layers": 4},  # 480,800
    "vpn": {"hidden": 32, "layers": 10},  # 452,352: the cpu preset's width, 10 gated blocks instead of 4
}
MODEL_SIZES: dict[str, dict[str, dict]] = {"table2": TABLE2_SIZES}  # preset -> model -> its size


def make_config(preset: str, model: str | None = None, overrides: dict | None = None) -> VideoConfig:
    """A preset's config for one model.

    Args:
        preset: a name of :data:`PRESETS`.
        model: one of ``FRAME_MODELS`` (default o_t); presets with per-model sizes (:data:`MODEL_SIZES`) apply
            that model's.
        overrides: field values applied last (``--set``), as values or strings.

    Returns:
        The validated config.

    Raises:
        ConfigError: an unknown preset, model or field, or an impossible setting.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown video preset {preset!r}; choose one of {sorted(PRESETS)}")
    if model is not None and model not in FRAME_MODELS:
        raise ConfigError(f"unknown video model {model!r}; choose one of {FRAME_MODELS}")
    sizes = MODEL_SIZES.get(preset, {}).get(model or VideoConfig.model, {})
    data = {**PRESETS[preset], **sizes, **({"model": model} if model else {}), **(overrides or {})}
    return config_from_dict(VideoConfig, data)


def build_video_model(cfg: VideoConfig) -> VideoModel:
    """The :class:`icml17.pixelcnn.video.model.VideoModel` a config describes (float32, CPU).

    Args:
        cfg: the config (:func:`make_config`).

    Returns:
        The model.
    """
    from icml17.pixelcnn.video.model import VideoModel

    return VideoModel(
        cfg.model,
        cfg.frame_size,
        1,
        cfg.bits,
        cfg.resolved_head,
        cfg.context_frames,
        hidden=cfg.hidden,
        encoder_hidden=cfg.encoder_hidden,
        layers=cfg.layers,
        resnet_blocks=cfg.resnet_blocks,
        base_size=cfg.base_size,
        n_mix=cfg.n_mix,
    )
