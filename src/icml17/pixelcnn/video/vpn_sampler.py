"""The lean O(TN) caching sampler of the Video-Pixel-Network baseline: the strongest per-pixel sampler we could
write for ``vpn`` frames, so that the O(T) / O(T log N) speed-ups are measured against the best of its kind.

It caches what :class:`icml17.pixelcnn.cached.RasterCache` caches (Ramachandran et al. 2017: each layer's vertical
stack once per row, each layer's horizontal stack at the pixels already sampled) but spends a pixel step on as
few kernel calls as the arithmetic needs, because on a CPU a call costs microseconds of dispatch whatever its
size and a step's arithmetic is only a few thousand multiply-adds per layer:

- every weight is a matrix prepared once per :func:`~icml17.pixelcnn.video.sampling.sample_video` call
  (``w * mask``, the masked taps dropped: the horizontal 1 x k kernels keep their p + 1 left-and-centre taps, the
  vertical k x k kernels the rows above / up to the centre), biases appended as a last row where the input
  carries a constant 1;
- the vertical stacks of a row are one matrix product per layer over the row's im2col (channels-last buffers),
  and so is the link into the horizontal stack, whose result, with the convolution's bias and the spatial
  conditioning, is the per-pixel bias of the row;
- the horizontal stacks live position-major, (B, p + W, F) per layer, so a pixel's p + 1 input taps are one
  strided (B, (p + 1) F) matrix: a layer at one pixel is an in-place ``addmm_`` onto its bias, ``tanh_`` and
  ``glu`` for the gate, and one product for the 1 x 1 output with the residual as its bias;
- every view and buffer is made once: a step is 4 calls per layer and 7 for the head, no module, no allocation;
- the softmax head's Gumbel noise for a whole row is drawn in one call on the CPU, where the generator fills a
  tensor element by element (the same numbers as one call per step, in the same order; tested), transformed at
  once, and the step's logits are accumulated onto it.
  Elsewhere (a GPU's generator), and for the other heads, each step draws its own through ``head.sample``.

Samples are those of the windowed sampler (:func:`icml17.pixelcnn.sampling.sample_full`) for the same generator
state: the same steps and draws, and the same function at every step up to float rounding (matrix products sum
in another order than the convolution routines), so a sample could differ only where a draw lands within that
rounding of a decision boundary (tested equal over seeds, batch 1 and 5, float32 and float64).
"""

from __future__ import annotations

import torch
from torch import Tensor

from icml17.pixelcnn.heads import SoftmaxHead
from icml17.pixelcnn.sampling import Samples

_glu = torch._C._nn.glu  # F.glu's kernel, which takes ``out=`` (F.glu does not): a * sigmoid(b) in one call


class VpnSampler:
    """A VPN frame model's weights as matrices and the buffers for batches of ``n`` frames.

    Args:
        pixelcnn: the frame model, a :class:`icml17.pixelcnn.pixelcnn.PixelCNN` (``VideoModel("vpn").frame``).
        n: frames sampled at once (the video batch).
    """

    def __init__(self, pixelcnn, n: int):
        net, head = pixelcnn.net, pixelcnn.head
        p0 = next(net.parameters())
        dtype, device = p0.dtype, p0.device
        self.model, self.head, self.n = pixelcnn, head, n
        self.levels, self.C, self.S = pixelcnn.levels, pixelcnn.n_channels, pixelcnn.image_size
        self.L, self.k, self.p, self.Fh = net.n_layers, net.kernel, net.kernel // 2, net.hidden
        if self.p < 1:
            raise ValueError(f"the caching sampler needs kernels of size >= 3, got {net.kernel}")
        b, c, s, p, fh, L = n, self.C, self.S, self.p, self.Fh, self.L
        new = lambda *shape: torch.zeros(*shape, dtype=dtype, device=device)
        masked = lambda m: (m.weight * m.mask).detach()
        with_bias = lambda w, bias: torch.cat([w, bias.detach()[None]]).contiguous()  # (in + 1, out)
        self.softmax, self.seq = isinstance(head, SoftmaxHead), head.sequential_channels
        self.channels = list(range(c)) if self.seq else [None]

        # vertical stacks (per row): layer 0 reads image rows i-p..i-1, later layers v rows i-p..i; weights
        # (rows k F_in, 2F) in the im2col's (row, tap, channel) order
        self.v_w = [
            masked(blk.v_conv)[:, :, : p if layer == 0 else p + 1].permute(2, 3, 1, 0).reshape(-1, 2 * fh).contiguous()
            for layer, blk in enumerate(net.blocks)
        ]
        self.v_b = [blk.v_conv.bias.detach() for blk in net.blocks]
        self.link_w = [blk.link.weight.detach()[:, :, 0, 0].t() for blk in net.blocks]  # (2F, 2F), x @ w
        self.hl_b = [(blk.h_conv.bias + blk.link.bias).detach() for blk in net.blocks]  # every pixel's biases
        # horizontal stacks (per pixel): taps 0..p as one (F_in (p + 1), 2F) matrix, position-major like the rows
        self.h_w = [
            masked(blk.h_conv)[:, :, 0, : p + 1].permute(2, 1, 0).reshape(-1, 2 * fh).contiguous() for blk in net.blocks
        ]
        self.o_w = [with_bias(masked(blk.h_out)[:, :, 0, 0].t(), blk.h_out.bias) for blk in net.blocks]
        self.w1 = with_bias(masked(net.out1)[:, :, 0, 0].t(), net.out1.bias)
        w2 = with_bias(masked(net.out2)[:, :, 0, 0].t(), net.out2.bias)  # (F + 1, P)
        lv = self.levels  # softmax: channel c's logits only, the columns c L .. (c + 1) L
        self.w2 = [w2[:, ch * lv : (ch + 1) * lv].contiguous() for ch in range(c)] if self.softmax else [w2]
        self.table = torch.arange(lv, device=device).to(dtype) * (2.0 / (lv - 1)) - 1.0  # to_unit's values

        # buffers, channels last: the image canvas (layer 0's vertical input) with its ones channel and zero
        # padding, and each later layer's vertical input (the gated v of the layer before)
        self.canvas = new(b, s + p, s + 2 * p, c + 1)
        self.canvas[:, p:, p : p + s, c] = 1.0
        self.vbuf = [None] + [new(b, s + p, s + 2 * p, fh) for _ in range(1, L)]
        fin = [c + 1] + [fh] * (L - 1)
        self.hbuf = [new(b, p + s, f) for f in fin]  # position-major horizontal inputs, zero left padding
        self.hbuf[0][:, p:, c] = 1.0
        self.rowbias = [new(b, s, 2 * fh) for _ in range(L)]  # a row's per-pixel biases; a step adds onto them
        self.kept = [new(b, s, 2 * fh) for _ in range(L)] if len(self.channels) > 1 else None
        ones = lambda width: torch.cat([new(b, width), new(b, 1) + 1], 1)  # (B, width + 1), last column 1
        self.gate = [ones(fh) for _ in range(L)]
        self.hs, self.h1, self.r1, self.r2 = new(b, fh), new(b, fh), ones(fh), ones(fh)
        self.logits, self.val = new(b, self.w2[0].shape[1]), new(b)
        self.samples = torch.zeros(s, s, b, c, dtype=torch.long, device=device)  # (row, column, B, C)
        steps = s * len(self.channels)  # sampling steps per row
        self.noise = new(steps, b, c, lv)  # a row's negated Gumbel noise (the bulk path)
        self.idx = torch.zeros(steps, b, dtype=torch.long, device=device)  # a row's samples (the bulk path)

        # views made once: per column j and layer, (pre-activation = the row's bias there, its tanh half, input
        # taps, weight, gate, gate values, residual or None, output weight, output); h_L's output is self.hs
        st = lambda t, j, width: t.as_strided((b, width), (t.stride(0), 1), t.storage_offset() + j * t.stride(1))
        self.layer_args = [
            [
                (
                    self.rowbias[layer][:, j],
                    self.rowbias[layer][:, j, :fh],
                    st(self.hbuf[layer], j, (p + 1) * fin[layer]),
                    self.h_w[layer],
                    self.gate[layer],
                    self.gate[layer][:, :fh],
                    None if layer == 0 else self.hbuf[layer][:, p + j],
                    self.o_w[layer],
                    self.hs if layer == L - 1 else self.hbuf[layer + 1][:, p + j],
                )
                for layer in range(L)
            ]
            for j in range(s)
        ]
        self.pix0 = [[self.hbuf[0][:, p + j, ch] for ch in range(c)] for j in range(s)]
        self.noise_at = [[self.noise[k, :, ch] for ch in range(c)] for k in range(steps)]
        self.idx_at = list(self.idx)

    @torch.no_grad()
    def frame(self, context: object, temperature: float = 1.0, generator: torch.Generator | None = None) -> Samples:
        """Sample one frame per batch element.

        Args:
            context: the frame model's context, the encoder's map (B, F, S/2, S/2).
            temperature: > 0; 1 samples the model exactly.
            generator: the noise's generator, on the model's device.

        Returns:
            The frames (B, C, S, S) and their sequential evaluations (one per pixel, per channel for softmax).
        """
        vec, cmap = self.model.encode_context(context, self.n)
        net = self.model.net
        if vec is None and cmap is not None and net.map is not None:  # the video VPN: a map, no vector
            return self.sample(None, temperature, generator, cond_rows=self._map_rows(cmap))
        return self.sample(net.condition(vec, cmap), temperature, generator)

    def _map_rows(self, cmap: Tensor) -> Tensor:
        """``net.condition(None, cmap)`` computed rows first, (H, B W, 4 F L), as one matrix product: the layout the
        rows are read in (permuting the (B, 4 F L, H, W) biases instead costs a strided copy 4 F L / D_map times
        larger: 16 at width 32, depth 4)."""
        conv = self.model.net.map
        s, b = self.S, self.n
        rows = cmap.permute(2, 0, 3, 1).reshape(s * b * s, -1)  # (H B W, D_map)
        return torch.addmm(conv.bias, rows, conv.weight[:, :, 0, 0].t()).view(s, b * s, -1)

    def _begin_row(self, i: int, cond_h: list, cond_v: list) -> None:
        """Vertical stacks of row ``i`` and every layer's per-pixel bias of the row (reads rows < i only)."""
        p, s, k, b = self.p, self.S, self.k, self.n
        if i > 0:  # the finished row above enters layer 0's vertical input
            self.canvas[:, p + i - 1, p : p + s] = self.hbuf[0][:, p:]
        for layer in range(self.L):
            win = (
                self.canvas[:, i : i + p] if layer == 0 else self.vbuf[layer][:, i : i + p + 1]
            )  # (B, rows, W + 2p, F_in)
            cols = win.unfold(2, k, 1).permute(0, 2, 1, 4, 3).reshape(b * s, -1)  # (B W, rows k F_in)
            vpre = torch.addmm(self.v_b[layer], cols, self.v_w[layer])  # (B W, 2F)
            # per-pixel bias of the horizontal stack: link(v_pre) + the biases + conditioning
            torch.addmm(
                self.hl_b[layer] if cond_h[layer] is None else cond_h[layer][i],
                vpre,
                self.link_w[layer],
                out=self.rowbias[layer].view(b * s, -1),
            )
            if self.kept is not None:
                self.kept[layer].copy_(self.rowbias[layer])
            if layer + 1 < self.L:  # the last layer's vertical output feeds nothing
                if cond_v[layer] is not None:
                    vpre.add_(cond_v[layer][i])
                vpre[:, : self.Fh].tanh_()
                self.vbuf[layer + 1][:, p + i, p : p + s] = _glu(vpre, 1).view(b, s, -1)  # tanh(a) * sigmoid(b)

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
        cond_rows: Tensor | None = None,
    ) -> Samples:
        """Sample one frame per batch element from the net's conditioning biases.

        Args:
            cond: ``net.condition(vec, cmap)``, (B, 4 F L, 1 | H, 1 | W), or None for an unconditional net.
            temperature: > 0; 1 samples the model exactly.
            generator: the noise's generator, on the model's device.
            cond_rows: instead of ``cond``, the same biases rows first, (H, B W, 4 F L).

        Returns:
            The frames (B, C, S, S), drawn with the windowed sampler's steps and draws.
        """
        b, c, s, L = self.n, self.C, self.S, self.L
        for t in (self.canvas[..., :c], self.hbuf[0][..., :c], *self.vbuf[1:], *self.hbuf[1:]):
            t.zero_()  # a previous frame's values (the padding stays zero)
        cond_v, cond_h = [None] * L, [None] * L
        if cond is not None:
            cond_rows = cond.expand(-1, -1, s, s).permute(2, 0, 3, 1).reshape(s, b * s, -1)
        if cond_rows is not None:  # per layer, rows first: (H, B W, 2F), the horizontal one with the biases added
            chunks = cond_rows.chunk(2 * L, dim=2)
            for layer in range(L):
                cond_v[layer] = chunks[2 * layer]
                cond_h[layer] = chunks[2 * layer + 1] + self.hl_b[layer]
        channels = self.channels
        # bulk: the softmax head's noise drawn a row at a time (a CPU generator), the logits added onto it
        bulk = (
            self.softmax
            and generator is not None
            and generator.device.type == "cpu"
            and self.table.device.type == "cpu"
        )
        addmm, mm, glu, argmax, index_select, clamp_min = (
            torch.addmm,
            torch.mm,
            _glu,
            torch.argmax,
            torch.index_select,
            torch.clamp_min,
        )
        hs, h1, r1, r2, logits, val = self.hs, self.h1, self.r1, self.r2, self.logits, self.val
        r1v, r2v = r1[:, : self.Fh], r2[:, : self.Fh]
        w1, w2, table, pix0, kept = self.w1, self.w2, self.table, self.pix0, self.kept
        noise_at, idx_at, noise = self.noise_at, self.idx_at, self.noise
        tiny = torch.finfo(val.dtype).tiny
        for i in range(s):
            self._begin_row(i, cond_h, cond_v)
            if bulk:  # the row's -Gumbel noise, as head.sample draws it step by step: (steps, B, C, L)
                torch.rand(noise.shape, generator=generator, dtype=noise.dtype, out=noise)
                noise.clamp_(tiny, 1.0).log_().neg_().log_().neg_()
            out_row = self.samples[i]
            step = 0
            for j in range(s):
                layer_args = self.layer_args[j]
                for ch in channels:
                    if kept is not None and ch:  # a later channel of the pixel: its layers start again
                        for layer in range(L):
                            self.rowbias[layer][:, j] = kept[layer][:, j]
                    for pre, pa, taps, hw, gate, gv, hin, ow, hout in layer_args:
                        pre.addmm_(taps, hw)  # the layer's pre-activation at (i, j), onto the row's bias there
                        pa.tanh_()
                        glu(pre, 1, out=gv)  # tanh(a) * sigmoid(b)
                        if hin is None:
                            mm(gate, ow, out=hout)  # h_out(gate), its bias included
                        else:
                            addmm(hin, gate, ow, out=hout)  # h + h_out(gate): the residual
                    w = 0 if ch is None else ch  # the channel sampled (softmax: whose logits are computed)
                    clamp_min(hs, 0.0, out=r1v)
                    mm(r1, w1, out=h1)
                    clamp_min(h1, 0.0, out=r2v)
                    if bulk and temperature == 1.0:
                        z = noise_at[step][w]
                        z.addmm_(r2, w2[w])  # logits - Gumbel noise
                    else:
                        mm(r2, w2[w if self.softmax else 0], out=logits)
                        if bulk:
                            z = logits.div_(temperature).add_(noise_at[step][w])
                    if bulk:
                        idx = idx_at[step]
                        argmax(z, 1, out=idx)
                        index_select(table, 0, idx, out=val)
                        pix0[j][w].copy_(val)
                    else:
                        smp = self.head.sample(
                            logits[:, :, None, None] if not self.softmax else self._all_logits(logits, w),
                            temperature,
                            generator,
                        )[:, :, 0, 0]
                        for k in [w] if ch is not None else range(c):
                            out_row[j, :, k] = smp[:, k]
                            index_select(table, 0, smp[:, k], out=val)
                            pix0[j][k].copy_(val)
                    step += 1
            if bulk:
                out_row.copy_(self.idx.view(s, -1, b).transpose(1, 2))
        x = self.samples.permute(2, 3, 0, 1).clone()  # (B, C, H, W)
        return Samples(x, s * s * len(channels), [x.clone()])

    def _all_logits(self, logits: Tensor, ch: int) -> Tensor:
        """(B, C L, 1, 1) parameters for ``head.sample`` when only channel ``ch``'s were computed (the other
        channels' entries are never read for this step's channel, but their noise is drawn)."""
        full = logits.new_zeros(logits.shape[0], self.C * self.levels, 1, 1)
        full[:, ch * self.levels : (ch + 1) * self.levels, 0, 0] = logits
        return full
