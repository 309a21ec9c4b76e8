"""Activation-caching samplers for gated PixelCNNs (Ramachandran et al. 2017, "Fast generation for convolutional
autoregressive models"): the full PixelCNN's (the strongest O(N) baseline to compare the multiscale model
against), the multiscale model's base and type B's shallow patch PixelCNN's.

Why: the windowed sampler (:func:`icml17.pixelcnn.sampling.sample_full`) reruns the network on the receptive
rows at full width for every sub-pixel, O(L R W k F^2) work per step, nearly all of it recomputing activations
that did not change. In ``GatedPixelCNN`` (L gated blocks, k x k vertical and 1 x k horizontal kernels,
p = k // 2, F features) two facts make a per-pixel cache exact:

- vertical stack: ``v_l`` at row i depends on image rows < i only, so every layer's vertical activations of row
  i (and their 1x1 link into the horizontal stack) are computed once when row i starts, batched over the row,
  from a rolling window holding the rows i-p..i of the layer's input;
- horizontal stack: ``h_{l+1}`` at (i, j) depends on ``h_l`` at (i, j-p..j) and the link at (i, j), so the current
  row of each layer's input suffices, and one sampling step computes one position of every layer and the output
  layers: O(L k F^2) work, the network at one pixel.

How a step runs (:class:`RasterCache`): everything it touches is made once per call (buffers, weight matrices,
the views a step reads), so a step is a fixed list of about 40 tensor operations and no module calls. Per
layer: one copy gathers the taps at columns j-p..j of the layer's input row (pixel-major, so the taps are
adjacent), one matrix product ``[1, taps] @ [bias; W]`` is the masked horizontal convolution, then the link and
conditioning additions, the gate, one product for the 1x1 output layer and the residual. The head is sampled
by :class:`icml17.pixelcnn.sampling.MixtureSampler` (the logistic mixture's ``sample`` with its buffers made
once, the same draws and codes) or ``head.sample``.

Steps, random draws and ``evaluations`` are those of the windowed sampler: raster order, one step per pixel
(per channel for softmax / Bernoulli heads, which recompute the pixel's horizontal stack after each channel),
the head drawing from (B, P, 1, 1) parameters once per step; known pixels (completion) cost no step, only a
cache update when an unknown pixel follows them in their row. The multiscale model's base
(:func:`sample_grid_cached`) and type B (:func:`sample_patches_cached`, all n P^2 patches of a group as the
batch) run the same caches.

Exactness. Every activation comes from the operations ``forward`` uses (the same masked weight ``w * mask`` and
bias, the same gates, residual and conditioning additions in the same order) applied to exactly the inputs it
reads; inputs hidden by a mask meet zero weights only, and products with a zero weight are left out (they add
nothing). So every step samples the network's distribution from the same random numbers as the windowed
sampler, and the images are the same. The floats agree bit for bit where the arithmetic is the same, which on a
CPU in float32 was checked (and is tested): oneDNN's direct convolutions sum each output as one fused
multiply-add chain that starts from the bias and runs over (channel block of 8, 16 with AVX-512; kernel row;
kernel column; channel in the block), and MKL's matrix product sums each output as one chain in the order of
the inner dimension when that has at most 192 terms and the product at least 12 columns; so the products here
take their inner dimension in the convolution's order with the bias first, are padded to at least 16 columns
(``_MIN_COLUMNS``) and stay within 192 terms for widths up to 88 with 3 x 3 kernels. The vertical stacks run
through ``F.conv2d`` on the kernel rows the masks leave. Gates run ``tanh`` and ``sigmoid`` over whole SIMD
steps (``_SIMD_RUN``) and the head reads its parameters with a non-unit stride, as it reads the windowed
sampler's slice of an output map, so elementwise functions take the same vector or scalar path. The 1x1
convolutions agree at batch >= 16. Elsewhere (float64, where the network's convolutions use another GEMM;
batches below 16; wider networks; GPUs, whose libraries pick algorithms by shape) the floats may differ in the
last bits, and a sample only where a draw lands within that rounding (~1e-16 relative in float64) of a decision
boundary: the tests check the parameters agree to 1e-12 and the images exactly, over many seeds, heads and
conditionings, in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from icml17.pixelcnn.factored import to_patches
from icml17.pixelcnn.heads import Head, to_unit
from icml17.pixelcnn.sampling import (
    Samples,
    head_sampler,
    patch_params,
    patch_positions_to_sample,
    prepare,
    put_where,
)

# torch.sigmoid and torch.tanh run 2 SIMD vectors per loop step and send the rest of each contiguous run through
# a scalar formula that may round differently. The network's gate tensors are whole multiples of a step at the
# widths the bit-for-bit claim covers; a pixel's (B, F) rows are when F spans a whole number of 128 bytes (2
# vectors of up to 64 bytes), else they go through scratch buffers whose runs are multiples of 64 elements.
_SIMD_RUN = 64
_SIMD_BYTES = 128
# MKL sums each output of a matrix product as one chain in the order of the inner dimension when that has at most
# 192 terms and the product at least 12 columns (checked for 16 to 480 rows); a narrower product is summed in
# another order: every product here has at least 16 columns, zero columns padding it
_MIN_COLUMNS = 16


def _channel_block(t: Tensor) -> int:
    """oneDNN's input-channel block on ``t``'s device: its direct CPU convolutions sum the taps block by block
    (block, kernel row, kernel column, channel in the block), 16 channels per block with AVX-512, else 8."""
    if t.device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return 16
    return 8


def _horizontal_taps(conv, n_in: int, block: int, p: int, width: int) -> Tensor:
    """A gated block's masked ``1 x k`` horizontal convolution as one matrix, (1 + n_in / block (p+1) block,
    2 width): the bias row, then the taps at columns j-p..j in oneDNN's summation order (block, tap, channel).

    Its product with ``[1, taps]`` sums bias, then taps, in the order of the convolution, which is why the
    bias is a row and not a separate addition. Taps right of the centre are masked to zero and left out (a zero
    product adds nothing); ``n_in`` and ``width`` pad the input channels and each gate half with zeros."""
    w = conv.weight * conv.mask  # (2F, C_in, 1, k): the product MaskedConv2d.forward forms
    f, c_in = w.shape[0] // 2, w.shape[1]
    nb = n_in // block
    taps = w.new_zeros(2, width, n_in, p + 1)
    taps[:, :f, :c_in] = w[:, :, 0, : p + 1].reshape(2, f, c_in, p + 1)
    out = w.new_zeros(1 + nb * (p + 1) * block, 2, width)
    out[0, :, :f] = conv.bias.view(2, f)
    out[1:] = taps.view(2, width, nb, block, p + 1).permute(2, 4, 3, 0, 1).reshape(-1, 2, width)
    return out.view(out.shape[0], 2 * width)


def _pointwise_weights(weight: Tensor, bias: Tensor, n_in: int, n_out: int) -> Tensor:
    """A 1x1 convolution's (masked) weight (O, I, 1, 1) and bias as one matrix (1 + n_in, n_out): the bias row,
    then the weight transposed, zero rows and columns padding I and O."""
    out = weight.new_zeros(1 + n_in, n_out)
    out[0, : weight.shape[0]] = bias
    out[1 : 1 + weight.shape[1], : weight.shape[0]] = weight[:, :, 0, 0].t()
    return out


class _LayerStep(NamedTuple):
    """What a step of :meth:`RasterCache.pixel` reads and writes in one gated layer (made once per cache)."""

    gather_to: Tensor  # (B, blocks, p + 1, block): the taps' place in ``taps``
    gather_from: list[Tensor]  # per column j: the layer's input at columns j-p..j, in that layout
    taps: Tensor  # (B, 1 + K): [1, taps]
    w_h: Tensor  # (1 + K, 2 fp): bias and masked horizontal taps (:func:`_horizontal_taps`)
    pre: Tensor  # (B, 2 fp): the horizontal pre-activation, then the gate's halves in place
    pre_a: Tensor  # (B, fp): its tanh half
    pre_b: Tensor  # (B, fp): its sigmoid half
    gated: Tensor  # (B, 1 + fp): [1, gate]
    gate_out: Tensor  # (B, fp): the gate's place in ``gated``
    w_o: Tensor  # (1 + fp, fp): the 1x1 output layer
    h_new: Tensor  # (B, fp): its result
    link: list[Tensor]  # per column: link(v_pre) of the row, (B, 2 fp)
    cond: list[Tensor] | None  # per column: the horizontal conditioning bias, (B, 2 fp)
    h_in: list[Tensor] | None  # per column: h_l, the residual's input (None for the first block)
    h_out: list[Tensor]  # per column: where h_{l+1} goes


class RasterCache:
    """Activation caches of a ``GatedPixelCNN`` over a canvas sampled in raster order.

    Call :meth:`begin_row` for rows 0, 1, ... in order (it computes the row's vertical stacks from the rows
    above), then :meth:`pixel` at columns left to right, and :meth:`write` each sampled value before the next
    step. All buffers, weight matrices and the views a step reads are made here once, so a step is a fixed
    list of tensor operations: per layer one gather of the receptive taps, two matrix products (horizontal
    convolution, 1x1 output) and the gate, residual and additions ``forward`` makes, in its order.

    Args:
        net: the ``GatedPixelCNN`` to sample (the full model's network, or type B's shallow one).
        v: (B, C, H, W) the net's input in [-1, 1]; only sub-pixels already fixed are read.
        cond: the net's conditioning biases ``net.condition(vec, cmap)``, (B, 4 F L, 1 | H, 1 | W), or None.
    """

    @torch.no_grad()
    def __init__(self, net, v: Tensor, cond: Tensor | None):
        b, c, h, w = v.shape
        k = net.kernel
        p = k // 2
        f, n_layers = net.hidden, net.n_layers
        block = _channel_block(v)
        fp = max(_MIN_COLUMNS, -(-f // block) * block)  # features padded to whole channel blocks
        self.k, self.p, self.width, self.channels = k, p, w, c
        self.n_layers = n_layers
        opts = {"dtype": v.dtype, "device": v.device}
        # the network's input cat([v, ones]) with its zero padding: rows/cols p..p+H-1 hold the image
        self.inp = v.new_zeros(b, c + 1, h + 2 * p, w + 2 * p)
        self.inp[:, :c, p : p + h, p : p + w] = v
        self.inp[:, c, p : p + h, p : p + w] = 1.0

        # vertical stacks, a row at a time, on the kernel rows the masks leave (rows above for the first layer,
        # rows above and the row itself after): the later layers through F.conv2d as forward runs them, the first
        # (at most one channel block of input) as one product over the row in the convolution's order
        first_rows = p if p else k
        v_weights = [
            (blk.v_conv.weight * blk.v_conv.mask)[:, :, : (p + 1 if layer else first_rows)]
            for layer, blk in enumerate(net.blocks)
        ]
        self.v_conv = list(zip(v_weights, (blk.v_conv.bias for blk in net.blocks)))
        self.first_rows = first_rows
        self._first_by_product = p > 0 and c + 1 <= block
        if self._first_by_product:  # [1, taps of rows i-p..i-1 at columns j-p..j+p] (kernel row, column, channel)
            taps = v_weights[0].new_zeros(2 * f, p, k, block)
            taps[..., : c + 1] = v_weights[0].permute(0, 2, 3, 1)
            self._v_first_w = torch.cat([self.v_conv[0][1][None], taps.reshape(2 * f, -1).t()])
            self._v_first_in = torch.zeros(w, b, 1 + p * k * block, **opts)
            self._v_first_in[:, :, 0] = 1.0
            self._v_first_taps = self._v_first_in[:, :, 1:].view(w, b, p, k, block)[..., : c + 1]
        # the row's vertical pre-activations, column-major behind a ones column: the link's input
        self._v_pre = torch.ones(w, b, 1 + 2 * f, **opts)
        link_w = v_weights[0].new_zeros(n_layers, 1 + 2 * f, 2, fp)  # into link_cols' (2, fp) layout
        for layer, blk in enumerate(net.blocks):
            link_w[layer, 0, :, :f] = blk.link.bias.view(2, f)
            link_w[layer, 1:, :, :f] = blk.link.weight[:, :, 0, 0].t().reshape(2 * f, 2, f)
        self._link_w = link_w.view(n_layers, 1 + 2 * f, 2 * fp)
        # rows i-p..i of every later layer's vertical input
        self.v_win = [None] + [torch.zeros(b, f, p + 1, w + 2 * p, **opts) for _ in range(1, n_layers)]
        self.spatial = cond is not None and cond.shape[-2] > 1
        self.cond_v: list[Tensor | None] = [None] * n_layers
        self.cond_h: list[Tensor | None] = [None] * n_layers
        if cond is not None:
            chunks = cond.chunk(2 * n_layers, dim=1)
            self.cond_v, self.cond_h = list(chunks[0::2]), list(chunks[1::2])

        # horizontal stacks: each layer's input row, pixel-major (B, W + 2p, channels padded to whole blocks),
        # zero in the p padding columns on either side
        widths = [-(-(c + 1) // block) * block] + [fp] * (n_layers - 1)
        self.rows = [torch.zeros(b, w + 2 * p, width, **opts) for width in widths]
        # the row's link(v_pre) and horizontal conditioning per column, (W, B, 2, fp), written by begin_row
        self.link_cols = [torch.zeros(w, b, 2, fp, **opts) for _ in range(n_layers)]
        self.cond_cols: list[Tensor | None] = [None] * n_layers
        self._out = torch.ones(b, 1 + fp, **opts)  # [1, relu(h_L)]: the output layers' input
        self._out_h = self._out[:, 1:]
        # h_l at (row, j) for every layer l >= 1, then h_L (written straight into the output layers' input)
        at = [[row[:, p + j] for j in range(w)] for row in self.rows[1:]] + [[self._out_h] * w]
        # per layer, what a step reads and writes (see pixel())
        self._layers = []
        for layer, blk in enumerate(net.blocks):
            nb = widths[layer] // block
            taps = torch.ones(b, 1 + nb * (p + 1) * block, **opts)  # [1, taps at j-p..j]
            pre = torch.empty(b, 2 * fp, **opts)
            gated = torch.ones(b, 1 + fp, **opts)  # [1, gate]
            link = [t.view(b, 2 * fp) for t in self.link_cols[layer].unbind(0)]
            cond_at = None
            if self.cond_h[layer] is not None:
                if self.spatial:
                    self.cond_cols[layer] = torch.zeros(w, b, 2, fp, **opts)
                    cond_at = [t.view(b, 2 * fp) for t in self.cond_cols[layer].unbind(0)]
                else:
                    const = torch.zeros(b, 2, fp, **opts)
                    const[:, :, :f] = self.cond_h[layer].reshape(b, 2, f)
                    cond_at = [const.view(b, 2 * fp)] * w
            self._layers.append(
                _LayerStep(
                    gather_to=taps[:, 1:].view(b, nb, p + 1, block),
                    gather_from=[
                        self.rows[layer][:, j : j + p + 1].view(b, p + 1, nb, block).transpose(1, 2) for j in range(w)
                    ],
                    taps=taps,
                    w_h=_horizontal_taps(blk.h_conv, widths[layer], block, p, fp),
                    pre=pre,
                    pre_a=pre[:, :fp],
                    pre_b=pre[:, fp:],
                    gated=gated,
                    gate_out=gated[:, 1:],
                    w_o=_pointwise_weights(blk.h_out.weight * blk.h_out.mask, blk.h_out.bias, fp, fp),
                    h_new=torch.empty(b, fp, **opts),
                    link=link,
                    cond=cond_at,
                    h_in=None if layer == 0 else at[layer - 1],  # the first block has no residual
                    h_out=at[layer],
                )
            )
        self._out1 = torch.ones(b, 1 + fp, **opts)
        self._out1_h = self._out1[:, 1:]
        self._w1 = _pointwise_weights(net.out1.weight * net.out1.mask, net.out1.bias, fp, fp)
        n_params = net.out2.weight.shape[0]
        self._w2 = _pointwise_weights(net.out2.weight * net.out2.mask, net.out2.bias, fp, max(_MIN_COLUMNS, n_params))
        self._out2 = torch.empty(b, self._w2.shape[1], **opts)
        self._out2_params = self._out2[:, :n_params]
        # the head reads its parameters with a non-unit stride, as it reads the windowed sampler's slice of a
        # whole output map: elementwise functions then take the same (scalar) path on both
        self._params = torch.empty(b, n_params, 2, **opts)[:, :, 0]
        self.params = self._params[:, :, None, None]  # (B, P, 1, 1): what pixel() returns
        self._aligned = fp * v.element_size() % _SIMD_BYTES == 0
        if not self._aligned:  # gate halves through runs of whole SIMD steps
            run = -(-b * fp // _SIMD_RUN) * _SIMD_RUN
            self._gate_flat = torch.zeros(2, run, **opts)
            self._gate_in = self._gate_flat[:, : b * fp].view(2, b, fp)
        self._in_at = [self.rows[0][:, p + j, :c] for j in range(w)]  # (B, C): where a pixel's values go
        self.row = -1
        self._scratch: dict[tuple[torch.Size, int], tuple[Tensor, Tensor]] = {}

    def _simd(self, fn, t: Tensor, slot: int) -> Tensor:
        """``fn(t)`` (an elementwise torch function) through the SIMD path for every element (see ``_SIMD_RUN``): a
        view of a scratch buffer kept per shape and ``slot``, valid until the next call with them."""
        key = (t.shape, slot)
        scratch = self._scratch.get(key)
        if scratch is None:
            flat = t.new_zeros(-(-t.numel() // _SIMD_RUN) * _SIMD_RUN)
            scratch = self._scratch[key] = (flat, flat[: t.numel()].view(t.shape))
        flat, out = scratch
        out.copy_(t)
        fn(flat, out=flat)
        return out

    def _gate(self, pre: Tensor) -> Tensor:
        """``tanh(a) * sigmoid(b)`` on the two halves of the last dimension, the numbers ``GatedBlock._gate``
        gives there."""
        a, b = pre.chunk(2, dim=-1)
        return self._simd(torch.tanh, a, 0) * self._simd(torch.sigmoid, b, 1)

    @torch.no_grad()
    def begin_row(self, i: int) -> None:
        """Vertical stacks of row ``i`` for every layer and their links into the horizontal stacks.

        Args:
            i: the row about to be sampled; rows start in order 0, 1, ..., and only rows above ``i`` are read.

        Raises:
            ValueError: ``i`` is not the row after the last one begun.
        """
        if i != self.row + 1:
            raise ValueError(f"rows must start in order: expected row {self.row + 1}, got {i}")
        p, w, c = self.p, self.width, self.channels
        if self.row >= 0:  # the row just sampled, into the canvas the vertical stacks read
            self.inp[:, :c, self.row + p, p : p + w] = self.rows[0][:, p : p + w, :c].transpose(1, 2)
        self.row = i
        self.rows[0][:, :, : c + 1] = self.inp[:, :, i + p].transpose(1, 2)  # layer 0's horizontal input
        b, k = self.inp.shape[0], self.k
        f = self._v_pre.shape[2] // 2
        pre = self._v_pre[:, :, 1:]  # (W, B, 2F): the layer's vertical pre-activations along the row
        gated = None  # (W, B, F): the gated vertical stack, the next layer's input
        for layer in range(self.n_layers):
            if layer == 0 and self._first_by_product:
                self._v_first_taps.copy_(self.inp[:, :, i : i + p].unfold(3, k, 1).permute(3, 0, 2, 4, 1))
                torch.mm(self._v_first_in.view(w * b, -1), self._v_first_w, out=pre.view(w * b, -1))
            else:
                if layer == 0:
                    win = self.inp.narrow(2, i + p - self.first_rows if p else i, self.first_rows)
                else:
                    win = self.v_win[layer]
                    if p:  # shift the rows above up by one
                        win[:, :, :p] = win[:, :, 1:].clone() if p > 1 else win[:, :, 1:]
                    win[:, :, p, p : p + w] = gated.permute(1, 2, 0)
                pre.copy_(F.conv2d(win, *self.v_conv[layer])[:, :, 0].permute(2, 0, 1))  # (B, 2F, 1, W) -> (W, B, 2F)
            torch.mm(self._v_pre.view(w * b, -1), self._link_w[layer], out=self.link_cols[layer].view(w * b, -1))
            cv, ch = self.cond_v[layer], self.cond_h[layer]
            if self.spatial:
                self.cond_cols[layer][:, :, :, :f] = ch[:, :, i].reshape(b, 2, f, w).permute(3, 0, 1, 2)
            if layer + 1 < self.n_layers:  # the last layer's vertical output feeds nothing
                v = pre
                if cv is not None:  # forward's v_pre + cond_v
                    v = v + (cv[:, :, i].permute(2, 0, 1) if self.spatial else cv[:, :, 0, 0])
                gated = self._gate(v)  # (W, B, F)

    @torch.no_grad()
    def pixel(self, j: int, output: bool = True) -> Tensor | None:
        """Horizontal stacks at (row, ``j``) for every layer, kept for the pixels to its right.

        Args:
            j: the column, visited left to right after :meth:`begin_row`.
            output: compute the head parameters there; False for a known pixel whose stacks later pixels need
                (the last layer, which feeds only the outputs, is then skipped).

        Returns:
            The head parameters (B, P, 1, 1) (a view of a buffer the next call overwrites), or None.
        """
        mm, add = torch.mm, torch.add
        layers = self._layers if output else self._layers[:-1]
        for step in layers:
            step.gather_to.copy_(step.gather_from[j])
            mm(step.taps, step.w_h, out=step.pre)  # h_conv(h) over columns j-p..j
            step.pre.add_(step.link[j])
            if step.cond is not None:
                step.pre.add_(step.cond[j])
            if self._aligned:
                torch.tanh(step.pre_a, out=step.pre_a)
                torch.sigmoid(step.pre_b, out=step.pre_b)
                torch.mul(step.pre_a, step.pre_b, out=step.gate_out)
            else:
                self._gate_in.copy_(step.pre.view(-1, 2, step.pre_a.shape[1]).transpose(0, 1))
                torch.tanh(self._gate_flat[0], out=self._gate_flat[0])
                torch.sigmoid(self._gate_flat[1], out=self._gate_flat[1])
                torch.mul(self._gate_in[0], self._gate_in[1], out=step.gate_out)
            if step.h_in is None:  # the first block: h_1 = h_out(gate)
                mm(step.gated, step.w_o, out=step.h_out[j])
            else:  # h_{l+1} = h_l + h_out(gate)
                mm(step.gated, step.w_o, out=step.h_new)
                add(step.h_in[j], step.h_new, out=step.h_out[j])
        if not output:
            return None
        out_h, out1_h = self._out_h, self._out1_h
        out_h.clamp_min_(0)  # relu, as torch.relu computes it
        mm(self._out, self._w1, out=out1_h)
        out1_h.clamp_min_(0)
        mm(self._out1, self._w2, out=self._out2)
        self._params.copy_(self._out2_params)
        return self.params

    def write(self, j: int, v: Tensor, channel: int | None = None) -> None:
        """Fix sub-pixels at (row, ``j``).

        Args:
            j: the column.
            v: (B, C) values in [-1, 1].
            channel: write only this channel (per-channel heads), or every channel when None.
        """
        if channel is None:
            self._in_at[j].copy_(v)
        else:
            self._in_at[j][:, channel] = v[:, channel]


def sample_grid_cached(
    net,
    head: Head,
    x: Tensor,
    known: Tensor,
    vec: Tensor | None,
    cmap: Tensor | None,
    levels: int,
    temperature: float,
    generator: torch.Generator | None,
) -> int:
    """Raster-order sampling from activation caches: :func:`icml17.pixelcnn.sampling.sample_grid`'s samples
    and evaluations for the same generator state.

    Args:
        net: the ``GatedPixelCNN`` (a full model's network or a multiscale model's base).
        head: its output distribution.
        x: (n, C, H, W) int64 images, sampled in place where ``known`` is False.
        known: (H, W) bool, the given pixels (all before the missing ones in raster order).
        vec: the context vector (n, D) or None.
        cmap: the context map (n, D, H, W) or None.
        levels: L, values per sub-pixel.
        temperature: 1 samples the model exactly.
        generator: the random stream, on the model's device (None: the global one).

    Returns:
        The sequential evaluations: one per missing pixel, times C for per-channel heads.
    """
    n, n_ch, h, w = x.shape
    channels = list(range(n_ch)) if head.sequential_channels else [None]
    dtype = next(net.parameters()).dtype
    cache = RasterCache(net, to_unit(x, levels, dtype), net.condition(vec, cmap))
    table = to_unit(torch.arange(levels, device=x.device), levels, dtype)  # code -> value, as to_unit maps it
    draw = head_sampler(head, cache.params, temperature, generator)  # the head at whatever the cache computed
    todo = (~known).cpu().tolist()  # host lists: the loop branches on them once per pixel
    rows = [i for i in range(h) if any(todo[i])]
    row = x.new_empty(w, n, n_ch)  # the row's codes, pixel-major: one copy back into x per row
    at = row.unbind(0)
    evals = 0
    for i in range(rows[-1] + 1 if rows else 0):  # rows below the last unknown pixel are never needed
        cache.begin_row(i)
        cols = [j for j in range(w) if todo[i][j]]
        if not cols:
            continue  # a known row: its vertical stack is all later rows need
        row.copy_(x[:, :, i].permute(2, 0, 1))
        for j in range(cols[-1] + 1):
            if not todo[i][j]:
                cache.pixel(j, output=False)  # a known pixel left of unknown ones: cache its horizontal stack
                continue
            for c in channels:
                cache.pixel(j)
                s = draw().reshape(n, n_ch)
                evals += 1
                if c is None:
                    at[j].copy_(s)
                else:
                    at[j][:, c] = s[:, c]
                cache.write(j, torch.take(table, s), c)
        x[:, :, i] = row.permute(1, 2, 0)
    return evals


@torch.no_grad()
def sample_full_cached(
    model,
    n: int,
    context: object = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    given: Tensor | None = None,
    known: Tensor | None = None,
) -> Samples:
    """Samples of a full ``PixelCNN`` from per-layer activation caches (the model's default sampler).

    The same images and ``evaluations`` as :func:`icml17.pixelcnn.sampling.sample_full` for the same arguments
    and generator state.

    Args:
        model: the ``PixelCNN``.
        n: images to sample.
        context: the model's context for ``n`` images, or None.
        temperature: 1 samples the model exactly.
        generator: the random stream, on the model's device (None: the global one).
        given: (n, C, S, S) images whose ``known`` pixels are kept (a completion), or None.
        known: (S, S) bool mask of the given pixels (a top part in raster order), or None.

    Returns:
        :class:`icml17.pixelcnn.sampling.Samples` with one evaluation per sampled pixel (times C for per-channel
        heads).

    Raises:
        ValueError: bad arguments (see :func:`icml17.pixelcnn.sampling.prepare`).

    Examples:
        >>> import torch
        >>> from icml17.pixelcnn import PixelCNN
        >>> model = PixelCNN(4, n_channels=1, bits=1, head="bernoulli", hidden=8, layers=2)
        >>> s = sample_full_cached(model, 2, generator=torch.Generator().manual_seed(0))
        >>> s.images.shape, s.evaluations
        (torch.Size([2, 1, 4, 4]), 16)
    """
    x, known, vec, cmap = prepare(model, n, context, temperature, given, known)
    evals = sample_grid_cached(model.net, model.head, x, known, vec, cmap, model.levels, temperature, generator)
    return Samples(x, evals, [x.clone()])


def sample_patches_cached(
    net,
    head: Head,
    own: Tensor,
    h: Tensor,
    todo: Tensor,
    levels: int,
    temperature: float,
    generator: torch.Generator | None,
) -> int:
    """Type B's patch steps from activation caches, with all n P^2 patches of the group as one batch.

    :func:`icml17.pixelcnn.sampling.sample_patches_windowed`'s samples, steps and evaluations; a patch position
    is one step of every patch.

    Args:
        net: the group's ``GroupNet`` (type B).
        head: the output distribution.
        own: (n, C, K, K) the group's pixels, a view sampled in place where ``todo``.
        h: (n, F, K, K) the group's features.
        todo: (K, K) bool, the pixels to sample.
        levels: L, values per sub-pixel.
        temperature: 1 samples the model exactly.
        generator: the random stream (None: the global one).

    Returns:
        The evaluations: one per patch position with a pixel to sample (times C for per-channel heads).
    """
    n, n_ch, k = own.shape[0], own.shape[1], own.shape[-1]
    channels = list(range(n_ch)) if head.sequential_channels else [None]
    m = net.patch_size(k)
    npatch = -(-k // m)
    table = to_unit(torch.arange(levels, device=own.device), levels, h.dtype)  # code -> value, as to_unit maps it
    cache = RasterCache(
        net.shallow, to_patches(torch.take(table, own), m), net.shallow.condition(None, to_patches(h, m))
    )
    host = todo.cpu()  # one copy: the loop branches on it per step
    todo_at = patch_positions_to_sample(host, m)
    whole = bool(host.all())  # no pixel given: a step writes its samples without a mask
    at_shape = {}  # per shape (K', K') of the group pixels at a patch position: head sampler, values written
    evals = 0
    for pi in range(m):
        cache.begin_row(pi)
        for pj in range(m):
            if not todo_at[pi][pj]:
                cache.pixel(pj, output=False)  # all given here: cache the patches' horizontal stacks
                continue
            step = todo[pi::m, pj::m]  # (K', K') the group's pixels at this patch position
            if step.shape not in at_shape:
                params = patch_params(cache.params[:, :, 0, 0], n, npatch, step)  # (n, Pp, K', K')
                values = h.new_zeros(n, npatch, npatch, n_ch)  # the patches' pixel, zero where the grid is padded
                at_shape[step.shape] = (
                    head_sampler(head, params, temperature, generator),
                    values[:, : step.shape[0], : step.shape[1]],
                    values.view(-1, n_ch),
                )
            draw, dst, flat = at_shape[step.shape]
            at = own[:, :, pi::m, pj::m]
            for c in channels:
                cache.pixel(pj)
                evals += 1
                if whole and c is None:
                    at.copy_(draw())
                else:
                    put_where(at, draw(), step, c)
                dst.copy_(torch.take(table, at).permute(0, 2, 3, 1))
                cache.write(pj, flat)
    return evals
