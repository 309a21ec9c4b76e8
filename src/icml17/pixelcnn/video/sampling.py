"""Sampling a continuation frame by frame (Reed et al. 2017, section 4.5, Table 4's video rows).

Per generated frame: one ConvLSTM step on the previous frame (a network evaluation), then the frame model's
sampler: ``o_t`` 4 evaluations (x C for per-channel heads), ``o_tlogn`` base^2 + 3 per scale (x C for the
softmax head), ``convlstm`` 1, ``vpn`` one per pixel (x C). The VPN frame is sampled either as the paper did,
``sampler="windowed"`` (the decoder rerun for every pixel on the rows that pixel needs,
:func:`icml17.pixelcnn.sampling.sample_full`), or from activation caches, ``sampler="cached"``
(:func:`icml17.pixelcnn.cached.sample_full_cached`); both draw the same frames from the same generator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from icml17.core.config import ConfigError
from icml17.core.device import synchronize
from icml17.pixelcnn.heads import to_unit

SAMPLERS = ("cached", "windowed")


@dataclass
class VideoSamples:
    frames: Tensor  # (B, n_ctx + G, C, S, S) int64: the context frames, then the sampled ones
    evaluations: list[int] = field(default_factory=list)  # sequential network evaluations per sampled frame
    seconds: list[float] = field(default_factory=list)  # wall time per sampled frame (encoder step included)


@torch.no_grad()
def sample_video(model, context: Tensor, actions: Tensor, states: Tensor, n_frames: int,
                 temperature: float = 1.0, generator: torch.Generator | None = None,
                 sampler: str = "cached") -> VideoSamples:
    """Continue integer ``context`` frames (B, n_ctx, C, S, S) by ``n_frames`` frames, given ``actions`` and
    ``states`` (B, >= n_ctx + n_frames - 1, A) (step t's vectors enter the encoder with frame t).

    Runs on the model's device (the inputs are moved there once); ``generator``, when given, must be a generator
    of that device (:func:`icml17.core.device.generator`). The frames come back on the model's device."""
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if n_frames < 1:
        raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    n_ctx = model.context_frames
    if isinstance(context, Tensor) and context.dim() == 5 and context.shape[1] != n_ctx:
        raise ConfigError(f"the model continues {n_ctx} context frames; got {context.shape[1]}: pass exactly "
                          f"frames[:, :{n_ctx}]")
    device = next(model.parameters()).device
    context, actions, states = (x.to(device) if isinstance(x, Tensor) else x for x in (context, actions, states))
    model.check_inputs(context, actions, states, min_frames=n_ctx)
    if actions.shape[1] < n_ctx + n_frames - 1:
        raise ConfigError(f"{n_frames} new frames after {n_ctx} context frames need actions and states for "
                          f"{n_ctx + n_frames - 1} steps, got {actions.shape[1]}")
    dtype = next(model.parameters()).dtype
    unit = lambda x: to_unit(x, model.levels, dtype)
    vectors = torch.cat([actions, states], dim=-1).to(dtype)
    frames = [context[:, t] for t in range(n_ctx)]
    state = h = None
    for t in range(n_ctx - 1):
        h, state = model.encoder.step(unit(frames[t]), vectors[:, t], state)
    out = VideoSamples(context)
    kwargs = {"sampler": sampler} if model.kind == "vpn" else {}
    for t in range(n_ctx, n_ctx + n_frames):
        t0 = time.perf_counter()
        h, state = model.encoder.step(unit(frames[t - 1]), vectors[:, t - 1], state)
        smp = model.frame.sample(len(context), h, temperature, generator, **kwargs)
        frames.append(smp.images)
        out.evaluations.append(smp.evaluations + 1)  # + the encoder step
        synchronize(device)  # a GPU's queued work belongs to this frame's time
        out.seconds.append(time.perf_counter() - t0)
    out.frames = torch.stack(frames, dim=1)
    return out
