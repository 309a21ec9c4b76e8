"""Full-resolution gated PixelCNN (van den Oord et al. 2016, "Conditional image generation with PixelCNN
decoders"): the O(N) baseline and the base-resolution model of the multiscale PixelCNN (Reed et al. 2017,
section 3.1, "down to a base resolution at which we use a standard PixelCNN").

Order: raster over pixels, then channels R < G < B (for per-channel heads; a logistic mixture models the
channels of a pixel jointly). ``log p(x) = sum_i log p(x_i | x_<i, c)`` is exact: every output is computed by
masked convolutions that see only earlier sub-pixels (proved in tests by the Jacobian being exactly zero
elsewhere), and each head is a normalised distribution, so the probabilities of all images sum to one.

The pieces both models share (``LogProb``, ``Factor``, input validation) live in :mod:`icml17.pixelcnn.factored`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from icml17.pixelcnn.cached import sample_full_cached
from icml17.pixelcnn.conditioning import ContextEncoder, resize_map
from icml17.pixelcnn.factored import Factor, LogProb, factored_log_prob, raster_rank
from icml17.pixelcnn.heads import Head, make_head
from icml17.pixelcnn.layers import GatedBlock, masked_pointwise
from icml17.pixelcnn.masks import channel_groups
from icml17.pixelcnn.sampling import Samples, sample_full


class GatedPixelCNN(nn.Module):
    """Network: v (B, C, H, W) in [-1, 1], vec (B, Dv) | None, cmap (B, Dm, H, W) | None -> params (B, P, H, W).

    ``n_layers`` gated blocks (the first reads the image with mask A), then two masked 1x1 layers to the head.
    Output row i depends on input rows ``i - receptive_rows .. i`` only.
    """

    def __init__(
        self,
        n_channels: int,
        head: Head,
        hidden: int,
        n_layers: int,
        kernel: int = 3,
        vec_dim: int = 0,
        map_dim: int = 0,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        n_colors = head.color_groups
        hidden = hidden - hidden % n_colors  # colour groups need equal splits
        self.hidden, self.n_layers, self.kernel = hidden, n_layers, kernel
        self.receptive_rows = n_layers * (kernel // 2)
        img_groups = torch.arange(n_channels) if n_colors == n_channels else torch.zeros(n_channels, dtype=torch.long)
        in_groups = torch.cat([img_groups, torch.tensor([-1])])  # + constant ones channel (PixelCNN++ padding fix)
        self.blocks = nn.ModuleList(
            GatedBlock(hidden, n_colors, kernel, first=(i == 0), in_groups=in_groups) for i in range(n_layers)
        )
        feat = channel_groups(hidden, n_colors)
        self.out1 = masked_pointwise(feat, feat, "B")
        self.out2 = masked_pointwise(feat, head.out_groups(), "B")
        self.vec = nn.Linear(vec_dim, 4 * hidden * n_layers) if vec_dim else None
        self.map = nn.Conv2d(map_dim, 4 * hidden * n_layers, 1) if map_dim else None

    def condition(self, vec: Tensor | None, cmap: Tensor | None) -> Tensor | None:
        """Per-layer conditioning biases (B, 4 F L, 1 | H, 1 | W); constant while sampling, so samplers cache it."""
        cond = None
        if self.vec is not None:
            cond = self.vec(vec)[:, :, None, None]  # (B, 4F L, 1, 1)
        if self.map is not None:
            m = self.map(cmap)  # (B, 4F L, H, W)
            cond = m if cond is None else cond + m
        return cond

    def forward(
        self, v: Tensor, vec: Tensor | None = None, cmap: Tensor | None = None, cond: Tensor | None = None
    ) -> Tensor:
        x = torch.cat([v, torch.ones_like(v[:, :1])], dim=1)  # (B, C + 1, H, W)
        if cond is None:
            cond = self.condition(vec, cmap)
        conds = cond.chunk(2 * self.n_layers, dim=1) if cond is not None else [None] * (2 * self.n_layers)
        vs, hs = x, x
        for i, block in enumerate(self.blocks):
            vs, hs = block(vs, hs, conds[2 * i], conds[2 * i + 1])
        return self.out2(F.relu(self.out1(F.relu(hs))))


class PixelCNN(nn.Module):
    """The O(N) model: one gated PixelCNN over the full image, conditioned on an optional context.

    The baseline the multiscale model is compared with: sampling takes one network evaluation per pixel (per
    channel for softmax and Bernoulli heads).

    Args:
        image_size: S, the images' side.
        n_channels: C, channels per pixel.
        bits: bit depth: sub-pixels take 2^bits values.
        head: ``"logistic"`` (mixture), ``"softmax"`` or ``"bernoulli"`` (bits=1).
        hidden: channels of the network.
        layers: gated blocks.
        kernel: the masked convolutions' kernel size.
        n_mix: logistic mixture components.
        condition: the context encoder's settings (``kind``, ``dim``, ``n_classes``, ...;
            :class:`icml17.pixelcnn.conditioning.ContextEncoder`); None: unconditional.

    Examples:
        >>> import torch
        >>> model = PixelCNN(8, n_channels=1, bits=1, head="bernoulli", hidden=8, layers=2)
        >>> x = torch.randint(0, 2, (3, 1, 8, 8))
        >>> model.log_prob(x).total.shape, model.sample(2).images.shape
        (torch.Size([3]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(
        self,
        image_size: int,
        n_channels: int = 1,
        bits: int = 8,
        head: str = "logistic",
        hidden: int = 32,
        layers: int = 4,
        kernel: int = 3,
        n_mix: int = 5,
        condition: dict | None = None,
    ):
        super().__init__()
        self.image_size, self.n_channels, self.levels = image_size, n_channels, 2**bits
        self.head = make_head(head, n_channels, self.levels, n_mix)
        self.context = ContextEncoder(**(condition or {}))
        self.net = GatedPixelCNN(
            n_channels, self.head, hidden, layers, kernel, self.context.vec_dim, self.context.map_dim
        )

    @property
    def dims(self) -> int:
        """Sub-pixels per image, C * S * S."""
        return self.n_channels * self.image_size**2

    def encode_context(self, context: object, batch: int) -> tuple[Tensor | None, Tensor | None]:
        """The context as the network reads it: a vector (B, Dv) and a map (B, Dm, S, S), each None when absent.

        Args:
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).
            batch: B, the number of images.

        Returns:
            ``(vec, cmap)``.
        """
        vec, cmap = self.context(context, batch)
        return vec, resize_map(cmap, self.image_size)

    def factors(self, v: Tensor, context: object = None) -> list[Factor]:
        """The model's one factor: the whole image.

        Args:
            v: images as floats in [-1, 1], (B, C, S, S) (differentiable: the causality tests use the Jacobian).
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).

        Returns:
            ``[Factor("pixels", ...)]``.
        """
        vec, cmap = self.encode_context(context, v.shape[0])
        s = torch.arange(self.image_size, device=v.device)
        rows, cols = torch.meshgrid(s, s, indexing="ij")
        return [Factor("pixels", self.net(v, vec, cmap), rows, cols)]

    def order_rank(self) -> Tensor:
        """(C, S, S) int64 rank of every sub-pixel in the model's order (raster, then channel)."""
        return raster_rank(self.n_channels, self.image_size)

    def log_prob(self, x: Tensor, context: object = None) -> LogProb:
        """Exact ``log p(x | c)`` in nats.

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
        """``n`` images, one sequential evaluation per pixel (per channel for softmax / Bernoulli heads).

        Every sampler gives the same images for the same generator state.

        Args:
            n: images to draw.
            context: the condition, or None for an unconditional model (class labels (B,), captions, occupancy
                maps, or a dict of them, as :class:`icml17.pixelcnn.conditioning.ContextEncoder` reads them).
            temperature: 1 samples the model exactly.
            generator: the random stream (None: the global one).
            given: images to complete, (n, C, S, S), read where ``known`` is True.
            known: (S, S) bool, the pixels of ``given`` to keep.
            window: False reruns the network on the whole image at each step (the plainest reference).
            sampler: ``"cached"`` (default: per-layer activation caches, the network at one pixel per step,
                :func:`icml17.pixelcnn.cached.sample_full_cached`) or ``"windowed"`` (reruns the network on the
                receptive rows, :func:`icml17.pixelcnn.sampling.sample_full`).

        Returns:
            :class:`~icml17.pixelcnn.Samples` with ``images`` (n, C, S, S) and the number of evaluations.

        Raises:
            ValueError: an unknown sampler.
        """
        if sampler not in ("cached", "windowed"):
            raise ValueError(f"sampler must be 'cached' or 'windowed', got {sampler!r}")
        if sampler == "cached" and window:
            return sample_full_cached(self, n, context, temperature, generator, given, known)
        return sample_full(self, n, context, temperature, generator, given, known, window)
