"""Batched samplers, counting sequential network evaluations (Reed et al. 2017, sections 3.1 and 4.5).

- ``sample_full``: the windowed O(N) PixelCNN sampler, one evaluation per pixel (per channel for softmax /
  Bernoulli heads). Output row i of the network depends only on rows ``i - receptive_rows .. i``, so each
  evaluation reruns the network on that window of rows instead of the whole image (which ``window=False`` does;
  the same samples, tested). It is the definition the activation-caching sampler
  (:mod:`icml17.pixelcnn.cached`, Ramachandran et al. 2017; the full model's default) is tested against.
- ``sample_multiscale``: base pixels with a raster sampler at base resolution (``sample_grid`` here, or the
  caching ``icml17.pixelcnn.cached.sample_grid_cached`` passed in by the caller), then per level groups 2, 3, 4:
  one ResNet pass per group, then 1 (type A, logistic mixture) or C (softmax) head evaluations, or M^2 (x C)
  shallow-PixelCNN evaluations over all patches at once (type B; ``sample_patches_windowed`` here, or the
  cached ``icml17.pixelcnn.cached.sample_patches_cached`` passed in by the model): O(log N) evaluations.
- ``MixtureSampler``: the logistic mixture head's ``sample`` with its buffers made once, the same draws and
  codes bit for bit; the samplers that call the head many times on one buffer (the caching ones) use it.

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

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from icml17.pixelcnn.conditioning import resize_map
from icml17.pixelcnn.factored import check_images, group_view, to_patches
from icml17.pixelcnn.heads import Head, LogisticMixtureHead, to_unit


@dataclass
class Samples:
    """What a sampler returns.

    Attributes:
        images: (n, C, S, S) int64 in [0, L).
        evaluations: sequential network evaluations, each recomputing the next pixels' distribution (the
            cost the paper counts).
        coarse_to_fine: the images at every scale, coarsest first, (n, C, K, K) each; a full PixelCNN's has
            the images alone. (Named apart from ``model.levels``, the values per sub-pixel.)
    """

    images: Tensor
    evaluations: int
    coarse_to_fine: list[Tensor] = field(default_factory=list)


def prepare(
    model,
    n: int,
    context: object,
    temperature: float,
    given: Tensor | None,
    known: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """Check a sampler's arguments and make its canvas, where the model lives.

    Args:
        model: a ``PixelCNN`` or ``MultiscalePixelCNN``.
        n: images to sample.
        context: the model's context for ``n`` images, or None.
        temperature: must be > 0.
        given: (n, C, S, S) integer images whose ``known`` pixels are kept, or None.
        known: (S, S) bool mask of the given pixels, or None (both or neither).

    Returns:
        (images to fill (n, C, S, S) int64, known-pixel mask (S, S), context vector or None, context map or None).

    Raises:
        ValueError: a bad temperature, ``n``, images or mask, or a completion pattern the model's order cannot
            sample exactly (a given sub-pixel after a missing one).
    """
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
        return torch.zeros(n, c, size, size, dtype=torch.long, device=device), torch.zeros(
            size, size, dtype=torch.bool, device=device
        )
    check_images(given, c, size, model.levels)
    if given.shape[0] != n:
        raise ValueError(f"given has {given.shape[0]} images, expected n = {n}")
    if known.shape != (size, size) or known.dtype != torch.bool:
        raise ValueError(
            f"known must be a bool tensor of shape ({size}, {size}), got {tuple(known.shape)} {known.dtype}"
        )
    rank = model.order_rank().to(known.device)
    if known.any() and (~known).any() and rank[:, known].max() > rank[:, ~known].min():
        raise ValueError(
            "the model's order cannot complete this pattern: every given pixel must come before every "
            "missing one (full PixelCNN: a top part in raster order; multiscale: a lower-resolution "
            "grid or whole earlier groups)"
        )
    return given.clone().to(device), known.to(device)


def put_where(dst: Tensor, src: Tensor, where: Tensor, channel: int | None) -> None:
    """Write sampled values where a step samples: ``dst[:, c] = src[:, c]`` where ``where``.

    Args:
        dst: (n, C, K, K) images, written in place (may be a view).
        src: (n, C, K, K) sampled values.
        where: (K, K) bool, the pixels the step samples.
        channel: write only this channel (per-channel heads), or every channel when None.
    """
    if channel is None:
        dst.copy_(torch.where(where, src, dst))
    else:
        dst[:, channel] = torch.where(where, src[:, channel], dst[:, channel])


class MixtureSampler:
    """``LogisticMixtureHead.sample`` on one parameter buffer, bit for bit, with its buffers and views made once.

    A caching sampler calls the head once per step on a buffer the network rewrites, and the head's own method
    spends most of that call in view, split and stack calls around ~50 arithmetic operations. This runs the same
    operations in the same order on tensors of the same layouts (so every elementwise function takes the same
    SIMD or scalar path), draws the same random numbers from ``generator`` and returns the same codes; a
    temperature of 1 skips the divisions and products by 1, which return their input exactly.

    Args:
        head: a ``LogisticMixtureHead``.
        params: (B, P, H, W) the buffer (any strides) each call reads, as ``head.sample`` would.
        temperature: as ``head.sample``'s.
        generator: as ``head.sample``'s.

    Examples:
        >>> import torch
        >>> from icml17.pixelcnn.heads import LogisticMixtureHead
        >>> head, params = LogisticMixtureHead(3, 256, n_mix=5), torch.randn(4, 50, 1, 1)
        >>> draw = MixtureSampler(head, params, 1.0, torch.Generator().manual_seed(0))
        >>> torch.equal(draw(), head.sample(params, 1.0, torch.Generator().manual_seed(0)))
        True
    """

    def __init__(
        self, head: LogisticMixtureHead, params: Tensor, temperature: float, generator: torch.Generator | None
    ):
        b, _, h, w = params.shape
        k, c, nc = head.n_mix, head.n_channels, head.n_coeffs
        self.levels, self.min_log_scale = head.levels, head.min_log_scale
        self.temperature, self.generator = temperature, generator
        opts = {"dtype": params.dtype, "device": params.device}
        self.logits, means, log_s, coeffs = params.split([k, k * c, k * c, k * nc], dim=1)
        self.scaled = self.logits if temperature == 1.0 else torch.empty(b, k, h, w, **opts)
        self.tanh_in, self.tanh_out = coeffs.view(b, k, nc, h, w), torch.empty(b, k, nc, h, w, **opts)
        self.gumbel = torch.empty(b, k, h, w, **opts)
        self.pick = torch.empty(b, 1, h, w, dtype=torch.long, device=params.device)  # the component
        index = lambda size: self.pick.view(b, 1, 1, h, w).expand(b, 1, size, h, w)
        # (source, index, the picked component's values) for the means, log-scales and coefficients
        self.gathers = [
            (means.view(b, k, c, h, w), index(c), torch.empty(b, 1, c, h, w, **opts)),
            (log_s.view(b, k, c, h, w), index(c), torch.empty(b, 1, c, h, w, **opts)),
            (self.tanh_out, index(nc), torch.empty(b, 1, nc, h, w, **opts)),
        ]
        self.means, self.log_s, self.coeffs = (out[:, 0] for _, _, out in self.gathers)
        self.u = torch.empty(b, 1, c, h, w, **opts)
        self.u_channels = self.u[:, 0]
        self.noise, self.log_u = torch.empty(b, c, h, w, **opts), torch.empty(b, c, h, w, **opts)
        self.tiny, self.eps = torch.finfo(params.dtype).tiny, torch.finfo(params.dtype).eps
        self.q = torch.empty(b, c, h, w, **opts)  # each channel's value, rounded to its code
        x = torch.empty(b, c, h, w, **opts)  # the codes of earlier channels in [-1, 1]
        self.m, self.prod = torch.empty(b, h, w, **opts), torch.empty(b, h, w, **opts)
        self.codes = torch.empty(b, c, h, w, dtype=torch.long, device=params.device)
        # per channel: its mean, noise, value and unit value, then (coefficient, earlier unit value) pairs
        self.channels = [
            (
                self.means[:, ch],
                self.noise[:, ch],
                self.q[:, ch],
                x[:, ch],
                [(self.coeffs[:, ch * (ch - 1) // 2 + cp], x[:, cp]) for cp in range(ch)],
            )
            for ch in range(c)
        ]

    def __call__(self) -> Tensor:
        """Draw from the parameters ``params`` now holds.

        Returns:
            (B, C, H, W) int64 codes, a buffer the next call overwrites.
        """
        t, gen = self.temperature, self.generator
        torch.tanh(self.tanh_in, out=self.tanh_out)
        if t != 1.0:
            torch.div(self.logits, t, out=self.scaled)
        g = self.gumbel  # gumbel_argmax: logits - log(-log(u))
        torch.rand(g.shape, generator=gen, out=g)
        g.clamp_(self.tiny, 1.0)
        g.log_()
        g.neg_()
        g.log_()
        torch.sub(self.scaled, g, out=g)
        torch.argmax(g, 1, keepdim=True, out=self.pick)
        for source, index, out in self.gathers:
            torch.gather(source, 1, index, out=out)
        self.log_s.clamp_(min=self.min_log_scale)
        u, noise, log_u = self.u, self.noise, self.log_u
        torch.rand(u.shape, generator=gen, out=u)
        u.clamp_(self.eps, 1 - self.eps)
        torch.exp(self.log_s, out=noise)  # exp(log_s) * t * (log(u) - log1p(-u))
        if t != 1.0:
            noise.mul_(t)
        torch.log(self.u_channels, out=log_u)
        u.neg_()
        u.log1p_()
        log_u.sub_(self.u_channels)
        noise.mul_(log_u)
        m, prod, last = self.m, self.prod, len(self.channels) - 1
        for c, (mean, noise_c, q, x, terms) in enumerate(self.channels):  # later channels read earlier codes
            for i, (coeff, x_earlier) in enumerate(terms):  # m = mean + coeff * x + ..., summed in this order
                torch.mul(coeff, x_earlier, out=prod)
                torch.add(mean if i == 0 else m, prod, out=m)
            torch.add(m if terms else mean, noise_c, out=q)
            q.clamp_(-1, 1)
            q.add_(1)
            q.mul_(self.levels - 1)
            q.div_(2)
            q.round_()
            if c < last:  # to_unit(code)
                torch.mul(q, 2.0 / (self.levels - 1), out=x)
                x.sub_(1.0)
        self.codes.copy_(self.q)
        return self.codes


def head_sampler(
    head: Head, params: Tensor, temperature: float, generator: torch.Generator | None
) -> Callable[[], Tensor]:
    """A function drawing from ``head`` at whatever ``params`` holds when it is called.

    Args:
        head: the output distribution.
        params: (B, P, H, W) a buffer rewritten between calls.
        temperature: as ``head.sample``'s.
        generator: as ``head.sample``'s.

    Returns:
        A :class:`MixtureSampler` for the logistic mixture head's own ``sample`` (not one replaced on the
        instance), else a call of ``head.sample``; either returns (B, C, H, W) int64 codes.
    """
    if type(head) is LogisticMixtureHead and "sample" not in vars(head):
        return MixtureSampler(head, params, temperature, generator)
    return lambda: head.sample(params, temperature, generator)


def sample_grid(
    net,
    head: Head,
    x: Tensor,
    known: Tensor,
    vec: Tensor | None,
    cmap: Tensor | None,
    levels: int,
    temperature: float,
    generator: torch.Generator | None,
    window: bool = True,
) -> int:
    """Raster-order sampling with a gated PixelCNN, rerunning the network for every step (the definition).

    Args:
        net: the ``GatedPixelCNN``.
        head: its output distribution.
        x: (n, C, H, W) int64 images, sampled in place where ``known`` is False.
        known: (H, W) bool, the given pixels.
        vec: the context vector (n, D) or None.
        cmap: the context map (n, D, H, W) or None.
        levels: L, values per sub-pixel.
        temperature: 1 samples the model exactly.
        generator: the random stream, on the model's device (None: the global one).
        window: rerun the network on the receptive rows of each step only (the same samples, cheaper), else on
            the whole image.

    Returns:
        The sequential evaluations: one per missing pixel, times C for per-channel heads.
    """
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
                params = net(to_unit(x[:, :, r0:r1], levels, dtype), cond=cond[:, :, r0:r1] if spatial else cond)
                evals += 1
                s = head.sample(params[:, :, i - r0 : i - r0 + 1, j : j + 1], temperature, generator)  # (n, C, 1, 1)
                if c is None:
                    x[:, :, i, j] = s[:, :, 0, 0]
                else:
                    x[:, c, i, j] = s[:, c, 0, 0]
    return evals


@torch.no_grad()
def sample_full(
    model,
    n: int,
    context: object = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    given: Tensor | None = None,
    known: Tensor | None = None,
    window: bool = True,
) -> Samples:
    """Samples of a full ``PixelCNN`` from the windowed sampler, the definition the caching one is tested against.

    Args:
        model: the ``PixelCNN``.
        n: images to sample.
        context: the model's context for ``n`` images, or None.
        temperature: 1 samples the model exactly.
        generator: the random stream, on the model's device (None: the global one).
        given: (n, C, S, S) images whose ``known`` pixels are kept (a completion), or None.
        known: (S, S) bool mask of the given pixels, or None.
        window: rerun the network on the receptive rows of each step only (False: on the whole image).

    Returns:
        :class:`Samples` with one evaluation per sampled pixel (times C for per-channel heads).

    Raises:
        ValueError: bad arguments (see :func:`prepare`).
    """
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    evals = sample_grid(model.net, model.head, x, known, vec, cmap, model.levels, temperature, generator, window)
    return Samples(x, evals, [x.clone()])


def patch_params(out: Tensor, n: int, npatch: int, step: Tensor) -> Tensor:
    """A type-B step's outputs at one patch position, as the head parameters of the group pixels there.

    Args:
        out: (n P^2, Pp) outputs of every patch, in ``to_patches`` order (P = ``npatch`` patches a side).
        n: images.
        npatch: P.
        step: (K', K') the todo mask of the group pixels at this position (its shape crops padded patches).

    Returns:
        (n, Pp, K', K'), a view of ``out``.
    """
    return out.view(n, npatch, npatch, -1).permute(0, 3, 1, 2)[:, :, : step.shape[0], : step.shape[1]]


def patch_positions_to_sample(todo: Tensor, m: int) -> list[list[bool]]:
    """Which patch positions a type-B group must sample, read from one host copy of the mask.

    Args:
        todo: (K, K) bool, the group pixels to sample.
        m: M, the patch size.

    Returns:
        ``[pi][pj]``: whether any pixel of ``todo`` sits at position (pi, pj) of the M x M patches (the samplers
        branch on it per step).
    """
    host = todo.cpu()
    return [[bool(host[pi::m, pj::m].any()) for pj in range(m)] for pi in range(m)]


def sample_patches_windowed(
    net,
    head: Head,
    own: Tensor,
    h: Tensor,
    todo: Tensor,
    levels: int,
    temperature: float,
    generator: torch.Generator | None,
) -> int:
    """Type B's patch steps, rerunning the shallow PixelCNN on the patch rows each step needs (the definition).

    All M x M patches of the group are one batch, so a group costs M^2 (x C) evaluations.

    Args:
        net: the group's ``GroupNet`` (type B).
        head: the output distribution.
        own: (n, C, K, K) the group's pixels, a view sampled in place where ``todo``.
        h: (n, F, K, K) the group's features (the shallow PixelCNN's spatial condition).
        todo: (K, K) bool, the pixels to sample.
        levels: L, values per sub-pixel.
        temperature: 1 samples the model exactly.
        generator: the random stream (None: the global one).

    Returns:
        The evaluations: one per patch position with a pixel to sample (times C for per-channel heads).
    """
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
            out = net.shallow(v[:, :, r0 : pi + 1], cond=cond[:, :, r0 : pi + 1])
            evals += 1
            params = patch_params(out[:, :, pi - r0, pj], n, -(-k // m), step)
            put_where(own[:, :, pi::m, pj::m], head.sample(params, temperature, generator), step, c)
    return evals


@torch.no_grad()
def sample_multiscale(
    model,
    n: int,
    context: object = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    given: Tensor | None = None,
    known: Tensor | None = None,
    window: bool = True,
    patch_sampler: Callable[..., int] = sample_patches_windowed,
    grid_sampler: Callable[..., int] | None = None,
) -> Samples:
    """Samples of a ``MultiscalePixelCNN``: the base in raster order, then groups 2, 3, 4 of every level.

    The caller picks how the base and type B's patches are walked (the caching strategies live in
    :mod:`icml17.pixelcnn.cached`, which imports this module); every strategy gives the same samples for the same
    generator state.

    Args:
        model: the ``MultiscalePixelCNN``.
        n: images to sample.
        context: the model's context for ``n`` images, or None.
        temperature: 1 samples the model exactly.
        generator: the random stream, on the model's device (None: the global one).
        given: (n, C, S, S) images whose ``known`` pixels are kept (completion, super-resolution), or None.
        known: (S, S) bool mask of the given pixels, or None.
        window: the base's windowed sampler reruns the network on the receptive rows only (False: the whole
            base image); used when ``grid_sampler`` is None.
        patch_sampler: how type B samples a group's patches: :func:`sample_patches_windowed` or a function with
            its signature and results.
        grid_sampler: how the base is sampled: a function with the signature of :func:`sample_grid` without
            ``window`` (e.g. ``icml17.pixelcnn.cached.sample_grid_cached``), or None for :func:`sample_grid`.

    Returns:
        :class:`Samples` with the images at every scale and O(log N) evaluations.

    Raises:
        ValueError: bad arguments (see :func:`prepare`).
    """
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    known_host = known.cpu()  # which steps to skip, decided on the host without a copy per group
    head, levels = model.head, model.levels
    dtype = next(model.parameters()).dtype
    unit = lambda t: to_unit(t, levels, dtype)
    channels = list(range(model.n_channels)) if head.sequential_channels else [None]

    st = model.stride(0)
    base = x[:, :, ::st, ::st].clone()  # contiguous copy for the raster sampler
    base_args = (
        model.base,
        head,
        base,
        known[::st, ::st],
        vec,
        resize_map(cmap, model.base_size),
        levels,
        temperature,
        generator,
    )
    evals = sample_grid(*base_args, window) if grid_sampler is None else grid_sampler(*base_args)
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
                whole = not group_view(known_host[None, None, ::st, ::st], g).any()  # no pixel given
                for c in channels:
                    smp = head.sample(net.params(h, unit(own)), temperature, generator)
                    evals += 1
                    if whole and c is None:
                        own.copy_(smp)
                    else:
                        put_where(own, smp, todo, c)
                continue
            # the group's ResNet pass is a sequential network evaluation too, then the patch steps
            evals += 1 + patch_sampler(net, head, own, h, todo, levels, temperature, generator)
        coarse_to_fine.append(lv.clone())
    return Samples(x, evals, coarse_to_fine)
