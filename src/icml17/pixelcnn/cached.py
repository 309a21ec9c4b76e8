"""Activation-caching samplers for gated PixelCNNs (Ramachandran et al. 2017, "Fast generation for convolutional
autoregressive models"): the full PixelCNN's (the strongest O(N) baseline to compare the multiscale model
against) and type B's shallow patch PixelCNN's.

Why: the windowed sampler (:func:`icml17.pixelcnn.sampling.sample_full`) reruns the network on the receptive
rows at full width for every sub-pixel, O(L R W k F^2) work per step, nearly all of it recomputing activations
that did not change. In ``GatedPixelCNN`` (L gated blocks, k x k vertical and 1 x k horizontal kernels,
p = k // 2, F features) two facts make a per-pixel cache exact:

- vertical stack: ``v_l`` at row i depends on image rows < i only, so every layer's vertical activations of row
  i (and their 1x1 link into the horizontal stack) are computed once when row i starts, from a rolling window
  holding the rows i-p..i of the layer's input, ``(B, F, k, W + 2p)``;
- horizontal stack: ``h_{l+1}`` at (i, j) depends on ``h_l`` at (i, j-p..j) and the link at (i, j), so a padded
  copy of the current row of each layer's input, ``(B, F, 1, W + 2p)``, suffices, and one sampling step
  computes one position of every layer and the output layers: O(L k F^2) work, the network at one pixel.

Steps, random draws and ``evaluations`` are those of the windowed sampler: raster order, one step per pixel
(per channel for softmax / Bernoulli heads, which recompute the pixel's horizontal stack after each channel),
``head.sample`` called on (B, P, 1, 1) parameters once per step; known pixels (completion) cost no step, only
a cache update when an unknown pixel follows them in their row. Type B (:func:`sample_patches_cached`) runs the
same caches over the shallow PixelCNN with all n P^2 patches of a group as the batch.

Exactness. Every activation comes from the operation ``forward`` uses (the same masked weight ``w * mask`` and
bias through ``F.conv2d``, the same gates, residual and conditioning additions in the same order) applied to
exactly the window of inputs it reads, zero padded where the network pads with zeros; inputs hidden by a mask
meet zero weights only. So every step samples the network's distribution from the same random numbers as the
windowed sampler, and the images are the same. The floats agree bit for bit wherever the backend computes an
output element the same way whatever the tensor around it: on CPU the oneDNN convolutions (float32, batch >= 2,
1x1 ones at batch >= 16 or with several threads) with a hidden width that is a multiple of the SIMD width, as in
the benchmark (checked in the tests). Elsewhere they may differ in the last bit: MKL's GEMM fallback (float64,
small float32 batches) sums one output position in another order than a row of them, ``torch.sigmoid`` rounds
the odd-sized end of a tensor through a scalar path (avoided here, see ``_SIMD_RUN``, but not in the network's
own tensors when F H W is odd-sized), and cuDNN picks algorithms by shape. A sample can then differ only if a
draw lands within that rounding (~1e-16 relative in float64) of a decision boundary: the tests check the
parameters agree to 1e-12 and the integers exactly, over many seeds, heads and conditionings, in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from icml17.pixelcnn.factored import to_patches
from icml17.pixelcnn.heads import Head, to_unit
from icml17.pixelcnn.sampling import Samples, patch_params, patch_positions_to_sample, prepare, put_where

# torch.sigmoid's SIMD loop takes 2 vectors per iteration and rounds the remainder of each contiguous run
# through a scalar formula with another exp; the network's gate tensors are whole multiples of that, a pixel's
# (B, F) often is not. Padding every run to a multiple of 64 elements (2 vectors of up to 32 lanes) sends every
# element through the SIMD path, as in the network.
_SIMD_RUN = 64


class RasterCache:
    """Activation caches of a ``GatedPixelCNN`` ``net`` over a canvas sampled in raster order.

    ``v``: (B, C, H, W) the net's input in [-1, 1] (only sub-pixels already fixed are read); ``cond``: the net's
    conditioning biases ``net.condition(vec, cmap)`` (B, 4 F L, 1 | H, 1 | W) or None. Call
    :meth:`begin_row` for rows 0, 1, ... in order (it reads rows above only), then :meth:`pixel` at columns
    left to right, and :meth:`write` each sampled value before the next step.
    """

    def __init__(self, net, v: Tensor, cond: Tensor | None):
        b, c, h, w = v.shape
        self.n_layers, self.dtype = net.n_layers, v.dtype
        self.k = net.kernel
        p = self.p = net.kernel // 2
        self.width = w
        # the network's input cat([v, ones]) with its zero padding: rows/cols p..p+H-1 hold the image
        self.inp = v.new_zeros(b, c + 1, h + 2 * p, w + 2 * p)
        self.inp[:, :c, p:p + h, p:p + w] = v
        self.inp[:, c, p:p + h, p:p + w] = 1.0
        # masked weights once per call: the same products MaskedConv2d.forward forms, bit for bit
        masked = lambda m: (m.weight * m.mask, m.bias)
        plain = lambda m: (m.weight, m.bias)
        self.v_conv = [masked(blk.v_conv) for blk in net.blocks]
        self.h_conv = [masked(blk.h_conv) for blk in net.blocks]
        self.link = [plain(blk.link) for blk in net.blocks]
        self.h_out = [masked(blk.h_out) for blk in net.blocks]
        self.out1, self.out2 = masked(net.out1), masked(net.out2)
        feat = net.hidden
        self.cond_v = self.cond_h = [None] * self.n_layers
        self.spatial = cond is not None and cond.shape[-2] > 1
        if cond is not None:
            chunks = cond.chunk(2 * self.n_layers, dim=1)
            self.cond_v, self.cond_h = list(chunks[0::2]), list(chunks[1::2])
        # rows i-p..i+p of every later layer's vertical input (rows below i stay zero: the mask hides them)
        self.v_win = [None] + [torch.zeros(b, feat, self.k, w + 2 * p, dtype=v.dtype, device=v.device)
                               for _ in range(1, self.n_layers)]
        # the current row of every later layer's horizontal input, zero padded by p on both sides
        self.h_row = [None] + [torch.zeros(b, feat, 1, w + 2 * p, dtype=v.dtype, device=v.device)
                               for _ in range(1, self.n_layers)]
        self.link_row: list[Tensor | None] = [None] * self.n_layers  # (B, 2F, 1, W) link(v_pre) of the row
        self.cond_h_row: list[Tensor | None] = [None] * self.n_layers  # (B, 2F, 1, 1 | W) the row's bias
        self.row = -1
        self._scratch: dict[torch.Size, tuple[Tensor, Tensor]] = {}

    def _sigmoid(self, t: Tensor) -> Tensor:
        """``torch.sigmoid(t)`` through the SIMD path for every element (see ``_SIMD_RUN``): a view of a scratch
        buffer kept per shape (a pixel's, a row's), valid until the next call with that shape."""
        scratch = self._scratch.get(t.shape)
        if scratch is None:
            flat = t.new_zeros(-(-t.numel() // _SIMD_RUN) * _SIMD_RUN)
            scratch = self._scratch[t.shape] = (flat, flat[:t.numel()].view(t.shape))
        flat, out = scratch
        out.copy_(t)
        torch.sigmoid(flat, out=flat)
        return out

    def _gate(self, pre: Tensor) -> Tensor:
        """``tanh(a) * sigmoid(b)`` on the two channel halves, the numbers ``GatedBlock._gate`` gives there."""
        a, b = pre.chunk(2, dim=1)
        return torch.tanh(a) * self._sigmoid(b)

    def begin_row(self, i: int) -> None:
        """Vertical stack of row ``i`` for every layer and its link into the horizontal stack (reads rows < i)."""
        if i != self.row + 1:
            raise ValueError(f"rows must start in order: expected row {self.row + 1}, got {i}")
        self.row, k, p = i, self.k, self.p
        self.h_row[0] = self.inp.narrow(2, i + p, 1)  # the image row: layer 0's horizontal input
        gated = None
        for l in range(self.n_layers):
            if l == 0:
                win = self.inp.narrow(2, i, k)  # image rows i-p..i+p; mask A reads those above i only
            else:
                win = self.v_win[l]
                if p:
                    win[:, :, :p] = win[:, :, 1:p + 1].clone()  # shift the rows above up by one
                win[:, :, p:p + 1, p:p + self.width] = gated
            pre = F.conv2d(win, *self.v_conv[l])  # (B, 2F, 1, W)
            self.link_row[l] = F.conv2d(pre, *self.link[l])
            cv, ch = self.cond_v[l], self.cond_h[l]
            self.cond_h_row[l] = ch.narrow(2, i, 1) if self.spatial else ch
            if l + 1 < self.n_layers:  # the last layer's vertical output feeds nothing
                if cv is not None:
                    pre = pre + (cv.narrow(2, i, 1) if self.spatial else cv)
                gated = self._gate(pre)

    def pixel(self, j: int, output: bool = True) -> Tensor | None:
        """Horizontal stack at (row, ``j``) for every layer, kept for the pixels to its right; with ``output``
        the head parameters (B, P, 1, 1) there, else None (a cache update for a known pixel)."""
        k, p, last = self.k, self.p, self.n_layers - 1
        hs = None
        for l in range(self.n_layers):
            row = self.h_row[l]
            # h_conv(h) + link(v_pre), then + cond: forward's additions in forward's order (in place: same sums)
            pre = F.conv2d(row.narrow(3, j, k), *self.h_conv[l]).add_(self.link_row[l].narrow(3, j, 1))
            ch = self.cond_h_row[l]
            if ch is not None:
                pre.add_(ch.narrow(3, j, 1) if self.spatial else ch)
            new = F.conv2d(self._gate(pre), *self.h_out[l])  # (B, F, 1, 1)
            if l == last:
                hs = new if l == 0 else row.narrow(3, p + j, 1) + new
            else:  # h_{l+1} at (i, j), written where the next layer and the pixels to the right read it
                hs = self.h_row[l + 1].narrow(3, p + j, 1)
                if l == 0:
                    hs.copy_(new)
                else:
                    torch.add(row.narrow(3, p + j, 1), new, out=hs)
        if not output:
            return None
        return F.conv2d(F.relu(F.conv2d(F.relu(hs), *self.out1)), *self.out2)

    def write(self, j: int, v: Tensor, channel: int | None = None) -> None:
        """Fix sub-pixels at (row, ``j``): ``v`` (B, C) in [-1, 1], all channels or only ``channel``."""
        i, p = self.row + self.p, self.p + j
        if channel is None:
            self.inp[:, :v.shape[1], i, p] = v
        else:
            self.inp[:, channel, i, p] = v[:, channel]


def sample_grid_cached(net, head: Head, x: Tensor, known: Tensor, vec: Tensor | None, cmap: Tensor | None,
                       levels: int, temperature: float, generator: torch.Generator | None) -> int:
    """Raster-order sampling of ``x`` (n, C, H, W) in place, as ``sampling.sample_grid`` does it but from the
    activation caches; returns the number of sequential evaluations (the same as ``sample_grid``)."""
    h, w = x.shape[-2:]
    channels = list(range(x.shape[1])) if head.sequential_channels else [None]
    cache = RasterCache(net, to_unit(x, levels, next(net.parameters()).dtype), net.condition(vec, cmap))
    todo = (~known).cpu().tolist()  # host lists: the loop branches on them once per pixel
    rows = [i for i in range(h) if any(todo[i])]
    evals = 0
    for i in range(rows[-1] + 1 if rows else 0):  # rows below the last unknown pixel are never needed
        cache.begin_row(i)
        cols = [j for j in range(w) if todo[i][j]]
        if not cols:
            continue  # a known row: its vertical stack is all later rows need
        for j in range(cols[-1] + 1):
            if not todo[i][j]:
                cache.pixel(j, output=False)  # a known pixel left of unknown ones: cache its horizontal stack
                continue
            for c in channels:
                s = head.sample(cache.pixel(j), temperature, generator)[:, :, 0, 0]  # (n, C)
                evals += 1
                if c is None:
                    x[:, :, i, j] = s
                else:
                    x[:, c, i, j] = s[:, c]
                cache.write(j, to_unit(s, levels, cache.dtype), c)
    return evals


@torch.no_grad()
def sample_full_cached(model, n: int, context: object = None, temperature: float = 1.0,
                       generator: torch.Generator | None = None, given: Tensor | None = None,
                       known: Tensor | None = None) -> Samples:
    """Samples of a full ``PixelCNN``, equal to :func:`icml17.pixelcnn.sampling.sample_full`'s for the same
    arguments and generator state (same ``evaluations``), from per-layer activation caches."""
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    evals = sample_grid_cached(model.net, model.head, x, known, vec, cmap, model.levels, temperature, generator)
    return Samples(x, evals, [x.clone()])


def sample_patches_cached(net, head: Head, own: Tensor, h: Tensor, todo: Tensor, levels: int, temperature: float,
                          generator: torch.Generator | None) -> int:
    """Type B from activation caches: :func:`icml17.pixelcnn.sampling.sample_patches_windowed`'s samples, steps
    and evaluations, with the shallow PixelCNN's caches over all n P^2 patches as one batch (a patch position
    is one step of every patch). ``own`` (n, C, K, K): the group, a view written in place; ``h`` (n, F, K, K)
    its features; ``todo`` (K, K) the pixels to sample."""
    n, k = own.shape[0], own.shape[-1]
    channels = list(range(own.shape[1])) if head.sequential_channels else [None]
    m = net.patch_size(k)
    npatch = -(-k // m)
    unit = lambda t: to_unit(t, levels, h.dtype)
    cache = RasterCache(net.shallow, to_patches(unit(own), m), net.shallow.condition(None, to_patches(h, m)))
    todo_at = patch_positions_to_sample(todo, m)
    evals = 0
    for pi in range(m):
        cache.begin_row(pi)
        for pj in range(m):
            step = todo[pi::m, pj::m]  # (K', K') the group's pixels at this patch position
            if not todo_at[pi][pj]:
                cache.pixel(pj, output=False)  # all given here: cache the patches' horizontal stacks
                continue
            for c in channels:
                params = patch_params(cache.pixel(pj)[:, :, 0, 0], n, npatch, step)  # (n, Pp, K', K')
                evals += 1
                at = own[:, :, pi::m, pj::m]
                put_where(at, head.sample(params, temperature, generator), step, c)
                # the patches' pixel (pi, pj) as to_patches lays it out: zero where the grid is padded
                v = F.pad(unit(at), (0, npatch - at.shape[-1], 0, npatch - at.shape[-2]))  # (n, C, P, P)
                cache.write(pj, v.permute(0, 2, 3, 1).reshape(n * npatch * npatch, -1))
    return evals
