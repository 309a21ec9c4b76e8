"""Sampling a continuation frame by frame (Reed et al. 2017, section 4.5, Table 4's video rows).

Per generated frame: one ConvLSTM step on the previous frame (a network evaluation), then the frame model's
sampler: ``o_t`` 4 evaluations (x C for per-channel heads), ``o_tlogn`` base^2 + 3 per scale (x C for the
softmax head), ``convlstm`` 1, ``vpn`` one per pixel (x C). The VPN frame is sampled in one of three ways, all
drawing the same frames from the same generator (tested):

- ``sampler="cached"`` (default): the lean activation-caching sampler
  (:class:`icml17.pixelcnn.video.vpn_sampler.VpnSampler`), the strongest O(TN) baseline we have;
- ``sampler="generic-cached"``: the image PixelCNN's caching sampler
  (:func:`icml17.pixelcnn.cached.sample_full_cached`), kept to measure what the lean one gains;
- ``sampler="windowed"``: as the paper did, the decoder rerun for every pixel on the rows that pixel needs
  (:func:`icml17.pixelcnn.sampling.sample_full`).

The other models sample each frame in a fixed number of evaluations: they take only the default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from icml17.core.config import ConfigError
from icml17.core.device import synchronize
from icml17.pixelcnn.heads import to_unit
from icml17.pixelcnn.video.vpn_sampler import VpnSampler

if TYPE_CHECKING:
    from icml17.pixelcnn.video.model import VideoModel

SAMPLERS = ("cached", "windowed", "generic-cached")


@dataclass
class VideoSamples:
    """A sampled continuation and what it cost.

    Attributes:
        frames: (B, n_ctx + G, C, S, S) int64, the context frames then the G sampled ones.
        evaluations: sequential network evaluations per sampled frame (the encoder step included).
        seconds: wall time per sampled frame (the encoder step included).
    """

    frames: Tensor
    evaluations: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@torch.no_grad()
def sample_video(
    model: VideoModel,
    context: Tensor,
    actions: Tensor,
    states: Tensor,
    n_frames: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    sampler: str = "cached",
) -> VideoSamples:
    """Continue integer context frames by ``n_frames`` sampled frames, one frame at a time.

    Runs on the model's device (the inputs are moved there once); the frames come back on that device.

    Args:
        model: a :class:`icml17.pixelcnn.video.model.VideoModel`.
        context: (B, n_ctx, C, S, S) integer frames in [0, 2^bits), n_ctx = ``model.context_frames``.
        actions: (B, >= n_ctx + n_frames - 1, A) float; step t's vector enters the encoder with frame t.
        states: like ``actions``.
        n_frames: frames to sample, >= 1.
        temperature: > 0; 1 samples the model exactly.
        generator: the noise's generator, on the model's device (:func:`icml17.core.device.generator`).
        sampler: how a ``vpn`` frame is sampled, one of :data:`SAMPLERS` (see the module docstring); other
            models take only ``"cached"``.

    Returns:
        The context and sampled frames with their evaluations and seconds per frame.

    Raises:
        ConfigError: a bad sampler (or one the model does not have), frame count, temperature, context or
            inputs (non-finite actions or states included).
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler != "cached" and getattr(model, "kind", None) != "vpn":
        raise ConfigError(
            f"sampler={sampler!r} chooses how the O(TN) vpn model is sampled; {model.kind} samples "
            f"each frame in a fixed number of evaluations: leave sampler at 'cached'"
        )
    if n_frames < 1:
        raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    n_ctx = model.context_frames
    if isinstance(context, Tensor) and context.dim() == 5 and context.shape[1] != n_ctx:
        raise ConfigError(
            f"the model continues {n_ctx} context frames; got {context.shape[1]}: pass exactly frames[:, :{n_ctx}]"
        )
    device = next(model.parameters()).device
    context, actions, states = (x.to(device) if isinstance(x, Tensor) else x for x in (context, actions, states))
    model.check_inputs(context, actions, states, min_frames=n_ctx)
    if actions.shape[1] < n_ctx + n_frames - 1:
        raise ConfigError(
            f"{n_frames} new frames after {n_ctx} context frames need actions and states for "
            f"{n_ctx + n_frames - 1} steps, got {actions.shape[1]}"
        )
    dtype = next(model.parameters()).dtype
    unit = lambda x: to_unit(x, model.levels, dtype)
    vectors = torch.cat([actions, states], dim=-1).to(dtype)
    frames = [context[:, t] for t in range(n_ctx)]
    state = h = None
    for t in range(n_ctx - 1):
        h, state = model.encoder.step(unit(frames[t]), vectors[:, t], state)
    out = VideoSamples(context)
    n = len(context)
    if model.kind != "vpn":
        draw = lambda h: model.frame.sample(n, h, temperature, generator)
    elif sampler == "cached":
        draw = partial(VpnSampler(model.frame, n).frame, temperature=temperature, generator=generator)
    else:
        image_sampler = "cached" if sampler == "generic-cached" else "windowed"
        draw = lambda h: model.frame.sample(n, h, temperature, generator, sampler=image_sampler)
    for t in range(n_ctx, n_ctx + n_frames):
        t0 = time.perf_counter()
        h, state = model.encoder.step(unit(frames[t - 1]), vectors[:, t - 1], state)
        smp = draw(h)
        frames.append(smp.images)
        out.evaluations.append(smp.evaluations + 1)  # + the encoder step
        synchronize(device)  # a GPU's queued work belongs to this frame's time
        out.seconds.append(time.perf_counter() - t0)
    out.frames = torch.stack(frames, dim=1)
    return out
