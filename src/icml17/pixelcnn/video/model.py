"""Action-conditional video model: ConvLSTM encoder + a per-frame model, and its exact log-likelihood.

Factorisation (Reed et al. 2017, section 4.3; Kalchbrenner et al. 2016), with n_ctx context frames given:

    log p(x_{n_ctx..T-1} | x_{<n_ctx}, a, s) = sum_{t >= n_ctx} log p_frame(x_t | h_{t-1}),
    h_{t-1} = ConvLSTM(x_0..x_{t-1}, (a, s)_0..(a, s)_{t-1})

Each frame term is the frame model's exact factored likelihood (its own within-frame order); the total is
reported in nats per sub-pixel (the paper's unit): ``-log p / (generated frames * C * S * S)``. Training runs
every frame term in parallel (teacher forcing); sampling (:mod:`icml17.pixelcnn.video.sampling`) walks frames
in order, feeding each sample back into the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from icml17.core.config import ConfigError
from icml17.pixelcnn.factored import Factor, factored_log_prob
from icml17.pixelcnn.heads import to_unit
from icml17.pixelcnn.video.encoder import FrameEncoder
from icml17.pixelcnn.video.frames import build_frame_model

ACTION_DIM = 5  # the robot data's (and our generator's) action and state vectors


@dataclass
class VideoLogProb:
    """``per_frame`` (B, G) exact log p of each generated frame in nats; ``dims`` sub-pixels per frame;
    ``terms`` the frame model's factors (name -> (B, G)), summing to ``per_frame``."""

    per_frame: Tensor
    dims: int
    terms: dict[str, Tensor] = field(default_factory=dict)

    @property
    def total(self) -> Tensor:
        """(B,) log p of the whole continuation."""
        return self.per_frame.sum(1)

    def nats_per_subpixel(self) -> Tensor:
        """(B,) ``-log p / (G C S S)``."""
        return -self.total / (self.per_frame.shape[1] * self.dims)

    def bits_per_dim(self) -> Tensor:
        return self.nats_per_subpixel() / math.log(2.0)


class VideoModel(nn.Module):
    """``kind`` in ``o_t``, ``o_tlogn``, ``convlstm``, ``vpn`` (see :mod:`icml17.pixelcnn.video.frames`)."""

    def __init__(self, kind: str, image_size: int, n_channels: int = 1, bits: int = 8, head: str = "",
                 context_frames: int = 2, action_dim: int = ACTION_DIM, hidden: int = 32, encoder_hidden: int = 32,
                 layers: int = 4, resnet_blocks: int = 2, base_size: int = 4, n_mix: int = 5):
        super().__init__()
        if context_frames < 1:
            raise ConfigError(f"context_frames must be >= 1, got {context_frames}")
        self.kind, self.image_size, self.n_channels, self.levels = kind, image_size, n_channels, 2 ** bits
        self.context_frames, self.action_dim = context_frames, action_dim
        self.encoder = FrameEncoder(n_channels, 2 * action_dim, encoder_hidden)
        self.frame = build_frame_model(kind, image_size, n_channels, bits, head, hidden=hidden,
                                       map_dim=encoder_hidden, layers=layers, resnet_blocks=resnet_blocks,
                                       base_size=base_size, n_mix=n_mix)

    @property
    def dims(self) -> int:
        """Sub-pixels per frame, C * S * S."""
        return self.n_channels * self.image_size ** 2

    def check_inputs(self, frames: Tensor, actions: Tensor, states: Tensor, min_frames: int | None = None,
                     integer: bool = True) -> None:
        """Raise ConfigError, saying what to change, unless ``frames`` (B, T, C, S, S) (integers in [0, L) when
        ``integer``) and ``actions``, ``states`` (B, >= T - 1, A) fit this model and T >= ``min_frames``."""
        c, s, a = self.n_channels, self.image_size, self.action_dim
        need = self.context_frames + 1 if min_frames is None else min_frames
        if not isinstance(frames, Tensor) or frames.dim() != 5:
            raise ConfigError(f"frames must be a tensor (B, T, {c}, {s}, {s}), got "
                              f"{tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__}")
        b, t = frames.shape[:2]
        if frames.shape[2] != c:
            raise ConfigError(f"frames have {frames.shape[2]} channels, this model {c}: convert the video "
                              f"(e.g. to greyscale) or build the model with n_channels={frames.shape[2]}")
        if tuple(frames.shape[3:]) != (s, s):
            raise ConfigError(f"frames are {tuple(frames.shape[3:])} pixels, this model {s}x{s}: resize the video "
                              f"or choose a preset with frame_size={frames.shape[-1]}")
        if t < need:
            raise ConfigError(f"sequences of {t} frames are too short: the model conditions on "
                              f"{self.context_frames} context frames and needs at least {need} frames; pass "
                              f"longer sequences or lower context_frames")
        if integer:
            if frames.is_floating_point() or frames.dtype == torch.bool:
                raise ConfigError(f"frames must hold integer levels in [0, {self.levels}), got {frames.dtype}")
            if frames.numel():
                lo, hi = torch.stack(torch.aminmax(frames)).cpu().tolist()  # one copy to the host
                if lo < 0 or hi >= self.levels:
                    raise ConfigError(f"frame values must lie in [0, {self.levels}) "
                                      f"({int(math.log2(self.levels))}-bit): quantize them first, got [{lo}, {hi}]")
        for name, vec in (("actions", actions), ("states", states)):
            if not isinstance(vec, Tensor) or vec.dim() != 3 or vec.shape[0] != b or vec.shape[2] != a:
                got = tuple(vec.shape) if isinstance(vec, Tensor) else type(vec).__name__
                raise ConfigError(f"{name} must be a float tensor (B={b}, T, {a}) ({a}-dimensional vectors per "
                                  f"step), got {got}")
            if vec.shape[1] < t - 1:
                raise ConfigError(f"{name} cover {vec.shape[1]} steps; {t} frames need at least {t - 1}")
        device = next(self.parameters()).device
        for name, x in (("frames", frames), ("actions", actions), ("states", states)):
            if x.device != device:
                raise ConfigError(f"{name} are on {x.device}, the model on {device}: move them with "
                                  f".to({str(device)!r}) (VideoSplit.to does all three)")

    def context_maps(self, v: Tensor, actions: Tensor, states: Tensor) -> Tensor:
        """v (B, T, C, S, S) in [-1, 1] -> maps (B, T - 1, F, S/2, S/2): map t - 1 is frame t's context."""
        dtype = v.dtype
        vectors = torch.cat([actions, states], dim=-1).to(dtype)
        t = v.shape[1]
        return self.encoder(v[:, :t - 1], vectors[:, :t - 1])

    def frame_factors(self, v: Tensor, actions: Tensor, states: Tensor) -> list[Factor]:
        """The generated frames' factors from float frames ``v`` (B, T, C, S, S) in [-1, 1] (differentiable):
        params (B * G, P, h, w) with frames t = n_ctx..T-1 along the batch, frame-major per sequence."""
        b, t = v.shape[:2]
        g = t - self.context_frames
        maps = self.context_maps(v, actions, states)[:, self.context_frames - 1:]  # (B, G, F, K, K)
        targets = v[:, self.context_frames:].reshape(b * g, *v.shape[2:])
        return self.frame.factors(targets, maps.reshape(b * g, *maps.shape[2:]))

    def log_prob(self, frames: Tensor, actions: Tensor, states: Tensor) -> VideoLogProb:
        """Exact log-likelihood of frames n_ctx..T-1 of integer ``frames`` (B, T, C, S, S) given the first
        n_ctx and ``actions``, ``states`` (B, T, A)."""
        self.check_inputs(frames, actions, states)
        b, t = frames.shape[:2]
        g = t - self.context_frames
        dtype = next(self.parameters()).dtype
        maps = self.context_maps(to_unit(frames, self.levels, dtype), actions, states)[:, self.context_frames - 1:]
        targets = frames[:, self.context_frames:].reshape(b * g, *frames.shape[2:])
        lp = factored_log_prob(self.frame, targets, maps.reshape(b * g, *maps.shape[2:]))
        return VideoLogProb(lp.total.view(b, g), self.dims, {k: v.view(b, g) for k, v in lp.terms.items()})
