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
    """The exact log-likelihood of a batch of continuations, frame by frame, and its units.

    Attributes:
        per_frame: (B, G) log p of each generated frame in nats.
        dims: sub-pixels per frame, C * S * S (the unit's denominator).
        terms: the frame model's factors (name -> (B, G), e.g. its four pixel groups), summing to ``per_frame``.
    """

    per_frame: Tensor
    dims: int
    terms: dict[str, Tensor] = field(default_factory=dict)

    @property
    def total(self) -> Tensor:
        """(B,) log p of the whole continuation."""
        return self.per_frame.sum(1)

    def nats_per_subpixel(self) -> Tensor:
        """The paper's unit (Table 2): the negative log-likelihood per generated sub-pixel.

        Returns:
            (B,) ``-log p / (G C S S)``.
        """
        return -self.total / (self.per_frame.shape[1] * self.dims)

    def bits_per_dim(self) -> Tensor:
        """The image models' unit, for comparison with them.

        Returns:
            (B,) nats per sub-pixel / log 2.
        """
        return self.nats_per_subpixel() / math.log(2.0)


class VideoModel(nn.Module):
    """An action-conditional video model: the ConvLSTM encoder of past frames, actions and states, and one of the
    four frame models of Table 2 (see :mod:`icml17.pixelcnn.video.frames`).

    Args:
        kind: ``o_t``, ``o_tlogn`` (the paper's models), ``convlstm`` or ``vpn`` (its baselines).
        image_size: frame size S (even; ``o_tlogn``: ``base_size`` times a power of 2).
        n_channels: C, channels per frame.
        bits: bit depth; sub-pixels take 2^bits levels.
        head: ``softmax`` or ``logistic``; "" takes the paper's for ``kind``.
        context_frames: frames given before the first predicted one (>= 1).
        action_dim: size A of each step's action and state vectors.
        hidden: frame model width.
        encoder_hidden: ConvLSTM width (the frame model's context channels).
        layers: gated blocks of the VPN decoder / of the O(T log N) base PixelCNN.
        resnet_blocks: residual blocks of the context and group networks.
        base_size: O(T log N) base resolution.
        n_mix: logistic mixture components.

    Raises:
        ConfigError: an unknown ``kind``, a frame size the model cannot split, or ``context_frames < 1``.

    Examples:
        >>> import torch
        >>> from icml17.pixelcnn.video import VideoModel, sample_video
        >>> model = VideoModel("o_t", 8, bits=2, hidden=4, encoder_hidden=4, resnet_blocks=1).eval()
        >>> frames = torch.randint(0, 4, (2, 3, 1, 8, 8))             # (B, T, C, S, S), 2-bit
        >>> actions, states = torch.zeros(2, 3, 5), torch.zeros(2, 3, 5)
        >>> nats = model.log_prob(frames, actions, states).nats_per_subpixel()
        >>> bool((nats > 0).all()), tuple(nats.shape)                  # one frame predicted per video
        (True, (2,))
        >>> out = sample_video(model, frames[:, :2], actions, states, n_frames=1)
        >>> tuple(out.frames.shape), out.evaluations                    # 4 groups + the encoder step
        ((2, 3, 1, 8, 8), [5])
    """

    def __init__(
        self,
        kind: str,
        image_size: int,
        n_channels: int = 1,
        bits: int = 8,
        head: str = "",
        context_frames: int = 2,
        action_dim: int = ACTION_DIM,
        hidden: int = 32,
        encoder_hidden: int = 32,
        layers: int = 4,
        resnet_blocks: int = 2,
        base_size: int = 4,
        n_mix: int = 5,
    ):
        super().__init__()
        if context_frames < 1:
            raise ConfigError(f"context_frames must be >= 1, got {context_frames}")
        self.kind, self.image_size, self.n_channels, self.levels = kind, image_size, n_channels, 2**bits
        self.context_frames, self.action_dim = context_frames, action_dim
        self.encoder = FrameEncoder(n_channels, 2 * action_dim, encoder_hidden)
        self.frame = build_frame_model(
            kind,
            image_size,
            n_channels,
            bits,
            head,
            hidden=hidden,
            map_dim=encoder_hidden,
            layers=layers,
            resnet_blocks=resnet_blocks,
            base_size=base_size,
            n_mix=n_mix,
        )

    @property
    def dims(self) -> int:
        """Sub-pixels per frame, C * S * S."""
        return self.n_channels * self.image_size**2

    def check_inputs(
        self, frames: Tensor, actions: Tensor, states: Tensor, min_frames: int | None = None, integer: bool = True
    ) -> None:
        """Check a batch before any work, so that a wrong input is one line saying what to change rather than a
        shape error deep inside a convolution or a silently non-finite likelihood.

        Args:
            frames: (B, T, C, S, S), integers in [0, 2^bits) when ``integer``.
            actions: (B, >= T - 1, A), finite.
            states: (B, >= T - 1, A), finite.
            min_frames: the fewest frames T accepted (default ``context_frames + 1``).
            integer: whether ``frames`` must hold integer levels (their range is checked too).

        Raises:
            ConfigError: naming the input, what is wrong and the fix. The value checks cost one copy to the host.
        """
        c, s, a = self.n_channels, self.image_size, self.action_dim
        need = self.context_frames + 1 if min_frames is None else min_frames
        if not isinstance(frames, Tensor) or frames.dim() != 5:
            raise ConfigError(
                f"frames must be a tensor (B, T, {c}, {s}, {s}), got "
                f"{tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__}"
            )
        b, t = frames.shape[:2]
        if frames.shape[2] != c:
            raise ConfigError(
                f"frames have {frames.shape[2]} channels, this model {c}: convert the video "
                f"(e.g. to greyscale) or build the model with n_channels={frames.shape[2]}"
            )
        if tuple(frames.shape[3:]) != (s, s):
            raise ConfigError(
                f"frames are {tuple(frames.shape[3:])} pixels, this model {s}x{s}: resize the video "
                f"or choose a preset with frame_size={frames.shape[-1]}"
            )
        if t < need:
            raise ConfigError(
                f"sequences of {t} frames are too short: the model conditions on "
                f"{self.context_frames} context frames and needs at least {need} frames; pass "
                f"longer sequences or lower context_frames"
            )
        if integer and (frames.is_floating_point() or frames.dtype == torch.bool):
            raise ConfigError(f"frames must hold integer levels in [0, {self.levels}), got {frames.dtype}")
        for name, vec in (("actions", actions), ("states", states)):
            if not isinstance(vec, Tensor) or vec.dim() != 3 or vec.shape[0] != b or vec.shape[2] != a:
                got = tuple(vec.shape) if isinstance(vec, Tensor) else type(vec).__name__
                raise ConfigError(
                    f"{name} must be a float tensor (B={b}, T, {a}) ({a}-dimensional vectors per step), got {got}"
                )
            if vec.shape[1] < t - 1:
                raise ConfigError(f"{name} cover {vec.shape[1]} steps; {t} frames need at least {t - 1}")
        device = next(self.parameters()).device
        for name, x in (("frames", frames), ("actions", actions), ("states", states)):
            if x.device != device:
                raise ConfigError(
                    f"{name} are on {x.device}, the model on {device}: move them with "
                    f".to({str(device)!r}) (VideoSplit.to does all three)"
                )
        # the value checks in one copy to the host: frame range (integer frames), then finite actions and states
        checks = [torch.isfinite(actions).all(), torch.isfinite(states).all()]
        if integer and frames.numel():
            checks += list(torch.aminmax(frames))
        read = torch.stack([c.to(torch.long) for c in checks]).cpu().tolist()
        for name, ok in zip(("actions", "states"), read[:2]):
            if not ok:
                raise ConfigError(
                    f"{name} hold NaN or infinite values: every step needs a finite "
                    f"{a}-dimensional vector (check the data or the code that made them)"
                )
        if len(read) > 2:
            lo, hi = read[2:]
            if lo < 0 or hi >= self.levels:
                raise ConfigError(
                    f"frame values must lie in [0, {self.levels}) "
                    f"({int(math.log2(self.levels))}-bit): quantize them first, got [{lo}, {hi}]"
                )

    def context_maps(self, v: Tensor, actions: Tensor, states: Tensor) -> Tensor:
        """The encoder's summaries of the past: map t - 1 is frame t's context (it sees frames and vectors < t).

        Args:
            v: (B, T, C, S, S) frames as floats in [-1, 1].
            actions: (B, >= T - 1, A).
            states: (B, >= T - 1, A).

        Returns:
            (B, T - 1, F, S/2, S/2) maps, F = ``encoder_hidden``.
        """
        dtype = v.dtype
        vectors = torch.cat([actions, states], dim=-1).to(dtype)
        t = v.shape[1]
        return self.encoder(v[:, : t - 1], vectors[:, : t - 1])

    def frame_factors(self, v: Tensor, actions: Tensor, states: Tensor) -> list[Factor]:
        """The predicted frames' factors, differentiable in the frames (the causality tests take their Jacobian).

        Args:
            v: (B, T, C, S, S) frames as floats in [-1, 1].
            actions: (B, >= T - 1, A).
            states: (B, >= T - 1, A).

        Returns:
            The frame model's factors, params (B * G, P, h, w) with frames t = n_ctx..T-1 along the batch,
            frame-major per video.
        """
        b, t = v.shape[:2]
        g = t - self.context_frames
        maps = self.context_maps(v, actions, states)[:, self.context_frames - 1 :]  # (B, G, F, K, K)
        targets = v[:, self.context_frames :].reshape(b * g, *v.shape[2:])
        return self.frame.factors(targets, maps.reshape(b * g, *maps.shape[2:]))

    def log_prob(self, frames: Tensor, actions: Tensor, states: Tensor) -> VideoLogProb:
        """The exact log-likelihood of frames n_ctx..T-1 given the first n_ctx, all in parallel (teacher forcing).

        Args:
            frames: (B, T, C, S, S) integers in [0, 2^bits), T > ``context_frames``.
            actions: (B, >= T - 1, A), finite; step t's vector enters the encoder with frame t.
            states: (B, >= T - 1, A), finite.

        Returns:
            Per-frame log-likelihoods and their factors.

        Raises:
            ConfigError: inputs that do not fit the model (:meth:`check_inputs`).
        """
        self.check_inputs(frames, actions, states)
        b, t = frames.shape[:2]
        g = t - self.context_frames
        dtype = next(self.parameters()).dtype
        maps = self.context_maps(to_unit(frames, self.levels, dtype), actions, states)[:, self.context_frames - 1 :]
        targets = frames[:, self.context_frames :].reshape(b * g, *frames.shape[2:])
        lp = factored_log_prob(self.frame, targets, maps.reshape(b * g, *maps.shape[2:]))
        return VideoLogProb(lp.total.view(b, g), self.dims, {k: v.view(b, g) for k, v in lp.terms.items()})
