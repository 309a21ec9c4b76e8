"""Parallel multiscale PixelCNN (Reed et al. 2017, section 3, Figs. 2-3).

Pyramid: the full image x (B, C, S, S) with S = base * 2^n_scales is quantized once; level l is the
sub-sampled grid ``x[..., ::2^(n-l), ::2^(n-l)]`` (level 0 = base, level n = x), so lower resolutions come
from the quantized full image, as in the paper's likelihood protocol.

Groups (Fig. 2): at level l the 2x2 tiles' corners form group 1 = upper-left (= level l-1), 2 = upper-right,
3 = lower-left, 4 = lower-right. Factorisation (eq. 2):

    log p(x | c) = log p_base(level 0 | c) + sum_{l=1..n} sum_{g=2,3,4} log p(group_g^l | groups_<g^l, c)

Every group factor sees all pixels of earlier groups, including those below and right of it.

Upscaling networks (Fig. 3), one per (level, group), all fed the context:
- features: a ResNet over the earlier groups, stacked as channels on the K x K group grid (K = size of
  level l-1), plus the constant ones channel and the resized spatial context; a context vector biases every
  residual block. Deviation: Fig. 3 runs the ResNet on the merged K x 2K (then 2K x 2K) image; stacking the
  groups as channels of the K x K grid ("space-to-depth") carries exactly the same pixels, and "split/merge"
  remain pure indexing, so no parameters are attached to them.
- type A: two masked 1x1 layers map the features to the group's distribution. Pixels of a group are
  conditionally independent given earlier groups; only the channel order inside a pixel is kept (channel
  masking: G sees R, B sees R and G), so sampling a group costs 1 evaluation (logistic mixture) or C
  (softmax / Bernoulli).
- type B: the feature map is cut into contiguous M x M patches (padded with constant zeros up to a multiple
  of M when K is not; padded pixels are never modelled); a shallow gated PixelCNN with weights shared across
  patches models each patch in raster order, reading the features as a spatial condition. Sampling a group
  costs M^2 (x C) small evaluations, all patches in parallel.
The base model is a full gated PixelCNN (``GatedPixelCNN``) at base x base.

Sampling walks the same order (base pixels, then per level groups 2, 3, 4): O(1) evaluations per level,
O(log N) in total (``icml17.pixelcnn.sampling.sample_multiscale``); type B's patch steps run from activation
caches by default (``icml17.pixelcnn.cached.sample_patches_cached``, the same samples as rerunning the shallow
PixelCNN per step). The group and patch layout helpers
(``group_view``, ``to_patches``, ``from_patches``) live in :mod:`icml17.pixelcnn.factored`, shared with the sampler.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from icml17.core.config import ConfigError
from icml17.pixelcnn.cached import sample_grid_cached, sample_patches_cached
from icml17.pixelcnn.conditioning import ContextEncoder, resize_map
from icml17.pixelcnn.factored import (
    GROUP_OFFSETS,
    Factor,
    LogProb,
    check_images,
    factored_log_prob,
    from_patches,
    group_view,
    raster_rank,
    to_patches,
)
from icml17.pixelcnn.heads import Head, make_head
from icml17.pixelcnn.layers import ResNet, masked_pointwise, pointwise_by_matmul
from icml17.pixelcnn.masks import channel_groups
from icml17.pixelcnn.pixelcnn import GatedPixelCNN
from icml17.pixelcnn.sampling import Samples, sample_multiscale, sample_patches_windowed


class GroupNet(nn.Module):
    """One factor p(group_g | groups_<g, c) on a K x K grid, type 'a' or 'b'."""

    def __init__(
        self,
        n_prev: int,
        n_channels: int,
        head: Head,
        variant: str,
        hidden: int,
        blocks: int,
        shallow_layers: int,
        patch: int,
        kernel: int,
        vec_dim: int,
        map_dim: int,
    ):
        super().__init__()
        self.variant, self.patch, self.head = variant, patch, head
        self.resnet = ResNet(n_prev * n_channels + 1 + map_dim, hidden, blocks, vec_dim)
        n_colors = head.color_groups
        if variant == "a":
            hid = hidden - hidden % n_colors
            own = torch.arange(n_channels) if n_colors == n_channels else torch.zeros(n_channels, dtype=torch.long)
            in_groups = torch.cat([torch.full((hidden,), -1), own])  # features known, own channels masked
            hid_groups = channel_groups(hid, n_colors)
            self.out1 = masked_pointwise(in_groups, hid_groups, "A")
            self.out2 = masked_pointwise(hid_groups, head.out_groups(), "B")
        elif variant == "b":
            self.shallow = GatedPixelCNN(n_channels, head, hidden, shallow_layers, kernel, 0, hidden)
        else:
            raise ConfigError(f"variant must be 'a' or 'b', got {variant!r}")

    def features(self, prev: Tensor, vec: Tensor | None, cmap: Tensor | None) -> Tensor:
        """prev (B, n_prev*C, K, K) in [-1, 1] -> (B, F, K, K); depends on earlier groups and context only."""
        parts = [prev, prev.new_ones(prev.shape[0], 1, *prev.shape[-2:])] + ([cmap] if cmap is not None else [])
        return self.resnet(torch.cat(parts, dim=1), vec)

    def patch_size(self, k: int) -> int:
        return min(self.patch, k)

    def params(self, h: Tensor, own: Tensor) -> Tensor:
        """Features (B, F, K, K) and the group's own pixels (B, C, K, K) in [-1, 1] -> (B, P, K, K)."""
        if self.variant == "a":
            return pointwise_by_matmul(self.out2, F.relu(pointwise_by_matmul(self.out1, torch.cat([h, own], dim=1))))
        m = self.patch_size(h.shape[-1])
        out = self.shallow(to_patches(own, m), None, to_patches(h, m))  # (B n^2, P, m, m)
        return from_patches(out, h.shape[0], h.shape[-1])

    def forward(self, prev: Tensor, own: Tensor, vec: Tensor | None, cmap: Tensor | None) -> Tensor:
        return self.params(self.features(prev, vec, cmap), own)


class MultiscalePixelCNN(nn.Module):
    """The parallel multiscale PixelCNN: a base PixelCNN at ``base_size``, then x2 upscaling steps of three
    group networks each, to ``image_size`` (see the module docstring for the factorisation).

    Exact likelihoods like the full PixelCNN, but sampling takes O(log N) sequential network evaluations instead
    of O(N): type A samples a whole pixel group at once, type B its M x M patches in parallel.

    Args:
        image_size: S, the images' side; must be ``base_size * 2^k`` with k >= 1.
        n_channels: C, channels per pixel.
        bits: bit depth: sub-pixels take 2^bits values.
        head: ``"logistic"`` (mixture), ``"softmax"`` or ``"bernoulli"`` (bits=1).
        variant: ``"a"`` (groups conditionally independent given earlier groups) or ``"b"`` (a shallow PixelCNN
            over each patch).
        base_size: the base resolution, modelled by a full gated PixelCNN.
        hidden: channels of every network.
        base_layers: gated blocks of the base PixelCNN.
        resnet_blocks: residual blocks per group network.
        shallow_layers: gated blocks of type B's patch PixelCNN.
        patch: type B: M, the side of the patches.
        kernel: the masked convolutions' kernel size.
        n_mix: logistic mixture components.
        condition: the context encoder's settings (``kind``, ``dim``, ``n_classes``, ...;
            :class:`icml17.pixelcnn.conditioning.ContextEncoder`); None: unconditional.

    Raises:
        ConfigError: an image size that is not ``base_size * 2^k``, or an unknown variant.

    Examples:
        Scales 7 -> 14 -> 28: a base PixelCNN and two upscaling steps, each of three groups:

        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = MultiscalePixelCNN(28, n_channels=1, bits=1, head="bernoulli", variant="a", base_size=7,
        ...                            hidden=8, base_layers=1, resnet_blocks=1)
        >>> lp = model.log_prob(torch.randint(0, 2, (2, 1, 28, 28)))
        >>> lp.total.shape, len(lp.terms), torch.allclose(lp.total, sum(lp.terms.values()))
        (torch.Size([2]), 7, True)
        >>> s = model.sample(2)
        >>> s.images.shape, s.evaluations       # 49 base pixels one by one, then one evaluation per group
        (torch.Size([2, 1, 28, 28]), 55)
    """

    def __init__(
        self,
        image_size: int,
        n_channels: int = 1,
        bits: int = 8,
        head: str = "logistic",
        variant: str = "b",
        base_size: int = 7,
        hidden: int = 32,
        base_layers: int = 4,
        resnet_blocks: int = 2,
        shallow_layers: int = 2,
        patch: int = 4,
        kernel: int = 3,
        n_mix: int = 5,
        condition: dict | None = None,
    ):
        super().__init__()
        ratio = image_size / base_size
        n_scales = round(math.log2(ratio)) if ratio >= 1 else -1
        if n_scales < 1 or base_size * 2**n_scales != image_size:
            raise ConfigError(
                f"image size {image_size} must be base_size * 2^k with k >= 1 (base_size "
                f"{base_size}: valid sizes {[base_size * 2**k for k in range(1, 6)]})"
            )
        self.image_size, self.n_channels, self.levels = image_size, n_channels, 2**bits
        self.base_size, self.n_scales, self.variant = base_size, n_scales, variant
        self.head = make_head(head, n_channels, self.levels, n_mix)
        self.context = ContextEncoder(**(condition or {}))
        vd, md = self.context.vec_dim, self.context.map_dim
        self.base = GatedPixelCNN(n_channels, self.head, hidden, base_layers, kernel, vd, md)
        self.groups = nn.ModuleList(
            GroupNet(
                g - 1, n_channels, self.head, variant, hidden, resnet_blocks, shallow_layers, patch, kernel, vd, md
            )
            for _ in range(n_scales)
            for g in (2, 3, 4)
        )

    @property
    def dims(self) -> int:
        """Sub-pixels per image, C * S * S."""
        return self.n_channels * self.image_size**2

    def size(self, level: int) -> int:
        """The side of pyramid level ``level`` (0: the base).

        Args:
            level: 0 .. n_scales.

        Returns:
            ``base_size * 2^level``.
        """
        return self.base_size * 2**level

    def stride(self, level: int) -> int:
        """The full-resolution step between neighbouring pixels of level ``level``.

        Args:
            level: 0 .. n_scales.

        Returns:
            ``2^(n_scales - level)``.
        """
        return 2 ** (self.n_scales - level)

    def group_net(self, level: int, g: int) -> GroupNet:
        """The network of factor p(group ``g`` of level ``level`` | earlier groups, c).

        Args:
            level: 1 .. n_scales.
            g: 2, 3 or 4 (group 1 is the previous level).

        Returns:
            Its :class:`GroupNet`.
        """
        return self.groups[(level - 1) * 3 + g - 2]

    def level_view(self, x: Tensor, level: int) -> Tensor:
        """The pixels of level ``level`` in full-resolution images, a strided view.

        Args:
            x: (B, C, S, S) images (integers or floats).
            level: 0 .. n_scales.

        Returns:
            (B, C, size(level), size(level)).
        """
        st = self.stride(level)
        return x[:, :, ::st, ::st]

    def coords(self, level: int, g: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Full-resolution coordinates of the pixels of group ``g`` at ``level``.

        Args:
            level: 0 (the base) .. n_scales.
            g: 1 at level 0; 2, 3 or 4 above.
            device: where to build them (default: the CPU; the images' device where they index images).

        Returns:
            ``(rows, cols)``, each (K, K).
        """
        st = self.stride(level)
        if level == 0:
            i = torch.arange(self.base_size, device=device) * st
            return torch.meshgrid(i, i, indexing="ij")
        dr, dc = GROUP_OFFSETS[g]
        i = torch.arange(self.size(level - 1), device=device)
        return torch.meshgrid((2 * i + dr) * st, (2 * i + dc) * st, indexing="ij")

    def encode_context(self, context: object, batch: int) -> tuple[Tensor | None, Tensor | None]:
        """The context as the networks read it: a vector (B, Dv) and a map (B, Dm, h, w), each None when absent.

        Args:
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).
            batch: B, the number of images.

        Returns:
            ``(vec, cmap)``.
        """
        return self.context(context, batch)

    def factors(self, v: Tensor, context: object = None) -> list[Factor]:
        """All factors (base, then every level's groups 2, 3, 4), computed in parallel from the full image.

        Args:
            v: images as floats in [-1, 1], (B, C, S, S).
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).

        Returns:
            One :class:`~icml17.pixelcnn.factored.Factor` per factor, in the model's order.
        """
        vec, cmap = self.encode_context(context, v.shape[0])
        rows, cols = self.coords(0, 1, v.device)
        out = [Factor("base", self.base(self.level_view(v, 0), vec, resize_map(cmap, self.base_size)), rows, cols)]
        for level in range(1, self.n_scales + 1):
            lv = self.level_view(v, level)
            cm = resize_map(cmap, self.size(level - 1))
            for g in (2, 3, 4):
                prev = torch.cat([group_view(lv, p) for p in range(1, g)], dim=1)  # (B, (g-1) C, K, K)
                params = self.group_net(level, g)(prev, group_view(lv, g), vec, cm)
                out.append(Factor(f"scale{level}/group{g}", params, *self.coords(level, g, v.device)))
        return out

    def log_prob(self, x: Tensor, context: object = None) -> LogProb:
        """Exact ``log p(x | c)`` in nats with the per-(scale, group) breakdown in ``terms``.

        Args:
            x: integer images, (B, C, S, S) in [0, 2^bits).
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).

        Returns:
            A :class:`~icml17.pixelcnn.LogProb`.

        Raises:
            ValueError: images of the wrong dtype, shape or range.
        """
        return factored_log_prob(self, x, context)

    def order_rank(self) -> Tensor:
        """(C, S, S) int64 rank of every sub-pixel in (scale, group, patch position, channel) order; sub-pixels
        of equal rank (same type-A group and channel) are conditionally independent given lower ranks."""
        c = self.n_channels
        rank = torch.zeros(c, self.image_size, self.image_size, dtype=torch.long)
        rows, cols = self.coords(0, 1)
        rank[:, rows, cols] = raster_rank(c, self.base_size)
        start = c * self.base_size**2
        chan = torch.arange(c).view(-1, 1, 1)
        for level in range(1, self.n_scales + 1):
            k = self.size(level - 1)
            m = self.group_net(level, 2).patch_size(k) if self.variant == "b" else 1
            i = torch.arange(k)
            pos = ((i % m).view(-1, 1) * m + (i % m).view(1, -1)) if m > 1 else torch.zeros(k, k, dtype=torch.long)
            for g in (2, 3, 4):
                rows, cols = self.coords(level, g)
                rank[:, rows, cols] = start + pos * c + chan
                start += m * m * c
        return rank

    def sample(
        self,
        n: int,
        context: object = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: Tensor | None = None,
        known: Tensor | None = None,
        window: bool = True,
        sampler: str = "cached",
    ) -> Samples:
        """Samples coarse to fine in O(log N) sequential evaluations, every scale kept.

        Args:
            n: images to draw.
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).
            temperature: 1 samples the model exactly.
            generator: the random stream (None: the global one).
            given: images to complete, (n, C, S, S), read where ``known`` is True (super-resolution).
            known: (S, S) bool, the pixels of ``given`` to keep.
            window: the base PixelCNN's sampler (False: rerun on the whole base image each step).
            sampler: how the base and type B's patches are walked, both giving the same images for the same
                generator state: ``"cached"`` (default; activations cached per layer,
                :func:`icml17.pixelcnn.cached.sample_grid_cached` for the base when ``window`` is True and
                :func:`icml17.pixelcnn.cached.sample_patches_cached`) or ``"windowed"`` (rerun on the rows each
                step needs).

        Returns:
            :class:`~icml17.pixelcnn.Samples`: the images (n, C, S, S), every scale coarse to fine, and the number
            of sequential evaluations.

        Raises:
            ValueError: an unknown sampler.
        """
        patches = {"cached": sample_patches_cached, "windowed": sample_patches_windowed}
        if sampler not in patches:
            raise ValueError(f"sampler must be 'cached' or 'windowed', got {sampler!r}")
        grid = sample_grid_cached if sampler == "cached" and window else None
        return sample_multiscale(self, n, context, temperature, generator, given, known, window, patches[sampler], grid)

    def super_resolve(
        self, low: Tensor, context: object = None, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Samples:
        """Sample full-resolution images that keep the pixels of low-resolution ones (super-resolution).

        Args:
            low: integer images (B, C, K, K), K one of the pyramid's sizes below S.
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).
            temperature: 1 samples the model exactly.
            generator: the random stream (None: the global one).

        Returns:
            :class:`~icml17.pixelcnn.Samples` (B, C, S, S).

        Raises:
            ValueError: a size that is not one of the pyramid's, or values out of range.
        """
        sizes = [self.size(lv) for lv in range(self.n_scales)]
        if low.dim() != 4 or low.shape[-1] not in sizes or low.shape[-2] != low.shape[-1]:
            raise ValueError(
                f"low-resolution images must have shape (B, {self.n_channels}, K, K) with K in {sizes}, "
                f"got {tuple(low.shape)}"
            )
        check_images(low, self.n_channels, low.shape[-1], self.levels)
        st = self.image_size // low.shape[-1]
        given = low.new_zeros(low.shape[0], self.n_channels, self.image_size, self.image_size)
        given[:, :, ::st, ::st] = low
        known = torch.zeros(self.image_size, self.image_size, dtype=torch.bool, device=low.device)
        known[::st, ::st] = True
        return self.sample(low.shape[0], context, temperature, generator, given, known)
