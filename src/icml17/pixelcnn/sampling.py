"""Batched samplers, counting sequential network evaluations (Reed et al. 2017, sections 3.1 and 4.5).

- ``sample_full``: the windowed O(N) PixelCNN sampler, one evaluation per pixel (per channel for softmax /
  Bernoulli heads). Output row i of the network depends only on rows ``i - receptive_rows .. i``, so each
  evaluation reruns the network on that window of rows instead of the whole image (which ``window=False`` does;
  the same samples, tested). It is the definition the activation-caching sampler
  (:mod:`icml17.pixelcnn.cached`, Ramachandran et al. 2017; the full model's default) is tested against.
- ``sample_multiscale``: base pixels with the same sampler at base resolution, then per level groups 2, 3, 4:
  one ResNet pass per group, then 1 (type A, logistic mixture) or C (softmax) head evaluations, or M^2 (x C)
  shallow-PixelCNN evaluations over all patches at once (type B; ``sample_patches_windowed`` here, or the
  cached ``icml17.pixelcnn.cached.sample_patches_cached`` passed in by the model): O(log N) evaluations.

Completion: ``given`` (n, C, S, S) and ``known`` (S, S) bool fix some pixels. That samples the exact
conditional only when every known sub-pixel comes no later in the model's order than every unknown one
(ties are allowed: equal ranks are conditionally independent), so other patterns are refused. Steps whose
pixels are all known are skipped (super-resolution costs only the missing levels).

Devices: every sampler runs where the model lives. Canvases and masks are made there (``given`` / ``known`` are
moved there), the noise comes from ``generator``, which must be made on that device
(``icml17.core.device.generator``), and the loops branch on host copies of the known-pixel mask made once per call
(and once per group for type B's patch positions), never a copy per pixel or step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from icml17.pixelcnn.conditioning import resize_map
from icml17.pixelcnn.factored import check_images, group_view, to_patches
from icml17.pixelcnn.heads import to_unit


@dataclass
class Samples:
    images: Tensor  # (n, C, S, S) int64
    evaluations: int  # sequential network evaluations (each recomputes the next pixels' distribution)
    levels: list[Tensor] = field(default_factory=list)  # coarse-to-fine: (n, C, K, K) per level


def prepare(model, n: int, context: object, temperature: float, given: Tensor | None, known: Tensor | None,
             ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Checked arguments of both samplers: (images to fill, known-pixel mask, context vector, context map)."""
    x, known = _canvas(model, n, temperature, given, known)
    vec, cmap = model.encode_context(context, n)
    return x, known, vec, cmap


def _canvas(model, n: int, temperature: float, given: Tensor | None, known: Tensor | None) -> tuple[Tensor, Tensor]:
    """The images to fill (n, C, S, S) and the known-pixel mask (S, S), after checking the completion pattern."""
    size, c = model.image_size, model.n_channels
    device = next(model.parameters()).device
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if (given is None) != (known is None):
        raise ValueError("pass both `given` (n, C, S, S) images and `known` (S, S) bool mask, or neither")
    if given is None:
        return torch.zeros(n, c, size, size, dtype=torch.long, device=device), \
            torch.zeros(size, size, dtype=torch.bool, device=device)
    check_images(given, c, size, model.levels)
    if given.shape[0] != n:
        raise ValueError(f"given has {given.shape[0]} images, expected n = {n}")
    if known.shape != (size, size) or known.dtype != torch.bool:
        raise ValueError(f"known must be a bool tensor of shape ({size}, {size}), got {tuple(known.shape)} {known.dtype}")
    rank = model.order_rank().to(known.device)
    if known.any() and (~known).any() and rank[:, known].max() > rank[:, ~known].min():
        raise ValueError("the model's order cannot complete this pattern: every given pixel must come before every "
                         "missing one (full PixelCNN: a top part in raster order; multiscale: a lower-resolution "
                         "grid or whole earlier groups)")
    return given.clone().to(device), known.to(device)


def put_where(dst: Tensor, src: Tensor, where: Tensor, channel: int | None) -> None:
    """dst[:, c] = src[:, c] where ``where`` (K, K) (all channels when ``channel`` is None); dst may be a view."""
    if channel is None:
        dst.copy_(torch.where(where, src, dst))
    else:
        dst[:, channel] = torch.where(where, src[:, channel], dst[:, channel])


def sample_grid(net, head, x: Tensor, known: Tensor, vec: Tensor | None, cmap: Tensor | None, levels: int,
                temperature: float, generator: torch.Generator | None, window: bool = True) -> int:
    """Raster-order sampling of ``x`` (n, C, H, W) in place with a gated PixelCNN ``net``; returns evaluations."""
    h, w = x.shape[-2:]
    dtype = next(net.parameters()).dtype
    channels = list(range(x.shape[1])) if head.sequential_channels else [None]
    cond = net.condition(vec, cmap)  # (n, 4 F L, 1 | H, 1 | W), computed once
    spatial = cond is not None and cond.shape[-2] > 1
    todo = (~known).cpu().tolist()  # one copy to the host: the loop branches on it once per pixel
    evals = 0
    for i in range(h):
        r0 = max(0, i - net.receptive_rows) if window else 0
        r1 = i + 1 if window else h
        for j in range(w):
            if not todo[i][j]:
                continue
            for c in channels:
                params = net(to_unit(x[:, :, r0:r1], levels, dtype),
                             cond=cond[:, :, r0:r1] if spatial else cond)
                evals += 1
                s = head.sample(params[:, :, i - r0: i - r0 + 1, j: j + 1], temperature, generator)  # (n, C, 1, 1)
                if c is None:
                    x[:, :, i, j] = s[:, :, 0, 0]
                else:
                    x[:, c, i, j] = s[:, c, 0, 0]
    return evals


@torch.no_grad()
def sample_full(model, n: int, context: object = None, temperature: float = 1.0,
                generator: torch.Generator | None = None, given: Tensor | None = None,
                known: Tensor | None = None, window: bool = True) -> Samples:
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    evals = sample_grid(model.net, model.head, x, known, vec, cmap, model.levels, temperature, generator, window)
    return Samples(x, evals, [x.clone()])


def patch_params(out: Tensor, n: int, npatch: int, step: Tensor) -> Tensor:
    """A type-B step's outputs at one patch position, (n P^2, Pp) in ``to_patches`` order (P = ``npatch``), as
    the head parameters of the group pixels there: (n, Pp, K', K') with ``step`` (K', K') their todo mask."""
    return out.view(n, npatch, npatch, -1).permute(0, 3, 1, 2)[:, :, :step.shape[0], :step.shape[1]]


def patch_positions_to_sample(todo: Tensor, m: int) -> list[list[bool]]:
    """``[pi][pj]``: whether any pixel of the (K, K) mask ``todo`` sits at patch position (pi, pj) of the M x M
    patches; read from one host copy of ``todo`` (the samplers branch on it per step)."""
    host = todo.cpu()
    return [[bool(host[pi::m, pj::m].any()) for pj in range(m)] for pi in range(m)]


def sample_patches_windowed(net, head, own: Tensor, h: Tensor, todo: Tensor, levels: int, temperature: float,
                            generator: torch.Generator | None) -> int:
    """Type B: sample the group ``own`` (n, C, K, K) (a view; pixels where ``todo`` (K, K)) with the shallow
    PixelCNN over M x M patches, all patches at once, rerunning it on the patch rows each step needs: M^2 (x C)
    evaluations. ``h``: the group's features (n, F, K, K). Returns the evaluations."""
    n, k = own.shape[0], own.shape[-1]
    dtype = h.dtype
    channels = list(range(own.shape[1])) if head.sequential_channels else [None]
    m = net.patch_size(k)
    cond = net.shallow.condition(None, to_patches(h, m))  # (n P^2, 4 F L, m, m), P = ceil(K / m)
    todo_at = patch_positions_to_sample(todo, m)
    evals = 0
    for pos in range(m * m):
        pi, pj = divmod(pos, m)
        step = todo[pi::m, pj::m]  # (K', K') the pixels at this patch position
        if not todo_at[pi][pj]:
            continue
        r0 = max(0, pi - net.shallow.receptive_rows)  # rows of the patch that reach row pi
        for c in channels:
            v = to_patches(to_unit(own, levels, dtype), m)  # (n P^2, C, m, m)
            out = net.shallow(v[:, :, r0:pi + 1], cond=cond[:, :, r0:pi + 1])
            evals += 1
            params = patch_params(out[:, :, pi - r0, pj], n, -(-k // m), step)
            put_where(own[:, :, pi::m, pj::m], head.sample(params, temperature, generator), step, c)
    return evals


@torch.no_grad()
def sample_multiscale(model, n: int, context: object = None, temperature: float = 1.0,
                      generator: torch.Generator | None = None, given: Tensor | None = None,
                      known: Tensor | None = None, window: bool = True,
                      patch_sampler=sample_patches_windowed) -> Samples:
    """``patch_sampler``: how type B samples a group's patches, :func:`sample_patches_windowed` or a function
    with its signature and results (the model passes the cached one, :mod:`icml17.pixelcnn.cached`, which
    imports this module)."""
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    known_host = known.cpu()  # which steps to skip, decided on the host without a copy per group
    head, levels = model.head, model.levels
    dtype = next(model.parameters()).dtype
    unit = lambda t: to_unit(t, levels, dtype)
    channels = list(range(model.n_channels)) if head.sequential_channels else [None]

    st = model.stride(0)
    base = x[:, :, ::st, ::st].clone()  # contiguous copy for the windowed sampler
    evals = sample_grid(model.base, head, base, known[::st, ::st], vec, resize_map(cmap, model.base_size), levels,
                        temperature, generator, window)
    x[:, :, ::st, ::st] = base
    coarse_to_fine = [base.clone()]
    for level in range(1, model.n_scales + 1):
        lv = model.level_view(x, level)  # view: writes reach x
        st = model.stride(level)
        k = model.size(level - 1)
        cm = resize_map(cmap, k)
        for g in (2, 3, 4):
            if group_view(known_host[None, None, ::st, ::st], g).all():
                continue  # every pixel of the group is given
            todo = ~group_view(known[None, None, ::st, ::st], g)[0, 0]  # (K, K)
            net = model.group_net(level, g)
            h = net.features(torch.cat([unit(group_view(lv, p)) for p in range(1, g)], dim=1), vec, cm)
            own = group_view(lv, g)
            if net.variant == "a":
                for c in channels:
                    smp = head.sample(net.params(h, unit(own)), temperature, generator)
                    evals += 1
                    put_where(own, smp, todo, c)
                continue
            # the group's ResNet pass is a sequential network evaluation too, then the patch steps
            evals += 1 + patch_sampler(net, head, own, h, todo, levels, temperature, generator)
        coarse_to_fine.append(lv.clone())
    return Samples(x, evals, coarse_to_fine)


@torch.no_grad()
def time_full_sampler_band(model, n: int, rows: int, generator: torch.Generator | None = None,
                           window: bool = True, cols: int | None = None) -> tuple[float, int]:
    """(seconds, evaluations) to sample ``rows`` rows in the middle of a full PixelCNN's image (the others held
    fixed; ``cols``: only the last ``cols`` pixels of a single row). Every evaluation past the first
    ``receptive_rows`` rows costs the same, so ``seconds / evaluations * (pixels x channel steps)`` extrapolates
    the O(N) sampler when running it end to end takes too long."""
    import time

    s = model.image_size
    x = torch.zeros(n, model.n_channels, s, s, dtype=torch.long, device=next(model.parameters()).device)
    known = torch.ones(s, s, dtype=torch.bool, device=x.device)
    start = min(max(model.net.receptive_rows, s // 2 - rows // 2), s - rows)
    if cols is None:
        known[start:start + rows] = False
    else:
        if rows != 1 or not 1 <= cols <= s:
            raise ValueError(f"cols={cols} needs rows=1 and 1 <= cols <= {s}")
        known[start, s - cols:] = False
    t0 = time.perf_counter()
    evals = sample_grid(model.net, model.head, x, known, None, None, model.levels, 1.0, generator, window)
    return time.perf_counter() - t0, evals
