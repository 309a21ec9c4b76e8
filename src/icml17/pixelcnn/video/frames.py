"""Per-frame models: p(frame_t | context map of frames < t), one per row of the paper's Table 2.

Every frame model takes the encoder's map (B, F, S/2, S/2) as a spatial context (through the package's
``ContextEncoder``, a small ResNet) and exposes the interface of the image models: ``factors(v, context)``
for :func:`icml17.pixelcnn.factored.factored_log_prob` (exact log-likelihood) and ``sample(n, context, ...)``.

- ``o_t``  (:class:`GroupFrame`): the frame's four pixel groups (Fig. 2) on the S/2 x S/2 grid, all predicted
  by type-A group networks (:class:`icml17.pixelcnn.multiscale.GroupNet`): group 1, the upper-left corners at
  full resolution, from the context alone ("predicted directly from previous frames", section 4.3), then groups
  2, 3, 4 from the earlier groups and the context. Four evaluations per frame whatever its size: O(T).
- ``o_tlogn`` (:class:`icml17.pixelcnn.multiscale.MultiscalePixelCNN`, type A): the multiscale upscaler from a
  base resolution, every factor conditioned on the context: O(log N) evaluations per frame, O(T log N) in all.
- ``convlstm`` (:class:`IndependentFrame`): every pixel predicted independently from the context (the O(T)
  baseline of Table 2): one evaluation per frame.
- ``vpn`` (:class:`icml17.pixelcnn.pixelcnn.PixelCNN`): a full gated PixelCNN decoder over the frame
  conditioned on the context, as in the Video Pixel Network: one evaluation per pixel, O(TN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from icml17.core.config import ConfigError
from icml17.pixelcnn.conditioning import ContextEncoder
from icml17.pixelcnn.factored import (
    GROUP_OFFSETS,
    Factor,
    LogProb,
    factored_log_prob,
    group_view,
)
from icml17.pixelcnn.heads import make_head, to_unit
from icml17.pixelcnn.multiscale import GroupNet, MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.sampling import Samples, put_where

FRAME_MODELS = ("o_t", "o_tlogn", "convlstm", "vpn")
PAPER_HEADS = {"o_t": "logistic", "o_tlogn": "softmax", "convlstm": "logistic", "vpn": "softmax"}


def _context_encoder(map_dim: int, size: int, hidden: int, blocks: int) -> ContextEncoder:
    return ContextEncoder("spatial", dim=hidden, map_channels=map_dim, map_size=size // 2, map_blocks=blocks)


class _FrameBase(nn.Module):
    """Shared fields and the exact log-likelihood of the two frame models written here."""

    def __init__(self, image_size: int, n_channels: int, bits: int, head: str, n_mix: int):
        super().__init__()
        if image_size < 2 or image_size % 2:
            raise ConfigError(f"frames must have an even size >= 2 (2x2 pixel groups), got {image_size}")
        self.image_size, self.n_channels, self.levels = image_size, n_channels, 2**bits
        self.head = make_head(head, n_channels, self.levels, n_mix)

    @property
    def dims(self) -> int:
        return self.n_channels * self.image_size**2

    def encode_context(self, context: object, batch: int) -> tuple[Tensor | None, Tensor | None]:
        return self.context(context, batch)

    def log_prob(self, x: Tensor, context: object = None) -> LogProb:
        return factored_log_prob(self, x, context)


class GroupFrame(_FrameBase):
    """The O(T) frame model: four type-A group networks on the (S/2 x S/2) grid of 2x2 tiles."""

    def __init__(
        self,
        image_size: int,
        n_channels: int = 1,
        bits: int = 8,
        head: str = "logistic",
        hidden: int = 32,
        resnet_blocks: int = 2,
        n_mix: int = 5,
        map_dim: int = 32,
    ):
        super().__init__(image_size, n_channels, bits, head, n_mix)
        self.context = _context_encoder(map_dim, image_size, hidden, resnet_blocks)
        self.groups = nn.ModuleList(
            GroupNet(g - 1, n_channels, self.head, "a", hidden, resnet_blocks, 1, 1, 3, 0, hidden) for g in (1, 2, 3, 4)
        )

    def coords(self, g: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """(K, K) full-resolution rows and columns of group ``g``'s pixels, on ``device``."""
        dr, dc = GROUP_OFFSETS[g]
        i = torch.arange(self.image_size // 2, device=device)
        return torch.meshgrid(2 * i + dr, 2 * i + dc, indexing="ij")

    def _prev(self, v: Tensor, g: int) -> Tensor:
        """(B, (g-1) C, K, K): the groups before ``g`` (none for group 1)."""
        k = self.image_size // 2
        parts = [group_view(v, p) for p in range(1, g)]
        return torch.cat(parts, dim=1) if parts else v.new_zeros(v.shape[0], 0, k, k)

    def features(self, g: int, prev: Tensor, cmap: Tensor) -> Tensor:
        """Group ``g``'s features from the earlier groups ``prev`` (B, (g-1) C, K, K; empty for g = 1) and the
        context map."""
        return self.groups[g - 1].features(prev.to(cmap.dtype), None, cmap)

    def factors(self, v: Tensor, context: object = None) -> list[Factor]:
        """Four factors, in parallel from the whole frame ``v`` (B, C, S, S) in [-1, 1]."""
        _, cmap = self.encode_context(context, v.shape[0])
        return [
            Factor(
                f"group{g}",
                self.groups[g - 1].params(self.features(g, self._prev(v, g), cmap), group_view(v, g)),
                *self.coords(g, v.device),
            )
            for g in (1, 2, 3, 4)
        ]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        context: object = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sampler: str = "cached",
    ) -> Samples:
        """Groups 1..4 in turn, each in one evaluation (C for a per-channel head); ``sampler`` is unused."""
        _, cmap = self.encode_context(context, n)
        dtype = next(self.parameters()).dtype
        x = torch.zeros(n, self.n_channels, self.image_size, self.image_size, dtype=torch.long, device=cmap.device)
        channels = list(range(self.n_channels)) if self.head.sequential_channels else [None]
        everywhere = torch.ones(self.image_size // 2, self.image_size // 2, dtype=torch.bool, device=x.device)
        evals = 0
        for g in (1, 2, 3, 4):
            net = self.groups[g - 1]
            h = self.features(g, to_unit(self._prev(x, g), self.levels, dtype), cmap)
            own = group_view(x, g)
            for c in channels:
                smp = self.head.sample(net.params(h, to_unit(own, self.levels, dtype)), temperature, generator)
                put_where(own, smp, everywhere, c)
                evals += 1
        return Samples(x, evals, [x.clone()])


class IndependentFrame(_FrameBase):
    """The ConvLSTM baseline: every pixel's distribution read from the context map alone."""

    def __init__(
        self,
        image_size: int,
        n_channels: int = 1,
        bits: int = 8,
        head: str = "logistic",
        hidden: int = 32,
        resnet_blocks: int = 2,
        n_mix: int = 5,
        map_dim: int = 32,
    ):
        super().__init__(image_size, n_channels, bits, head, n_mix)
        self.context = _context_encoder(map_dim, image_size, hidden, resnet_blocks)
        self.out = nn.Conv2d(hidden, 4 * self.head.n_params, 1)  # then depth-to-space: (P, S, S)

    def factors(self, v: Tensor, context: object = None) -> list[Factor]:
        _, cmap = self.encode_context(context, v.shape[0])
        s = torch.arange(self.image_size, device=v.device)
        rows, cols = torch.meshgrid(s, s, indexing="ij")
        return [Factor("pixels", F.pixel_shuffle(self.out(cmap), 2), rows, cols)]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        context: object = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        sampler: str = "cached",
    ) -> Samples:
        """One evaluation: the parameters do not depend on the frame; ``sampler`` is unused."""
        _, cmap = self.encode_context(context, n)
        x = self.head.sample(F.pixel_shuffle(self.out(cmap), 2), temperature, generator)
        return Samples(x, 1, [x.clone()])


def build_frame_model(
    kind: str,
    image_size: int,
    n_channels: int,
    bits: int,
    head: str,
    *,
    hidden: int,
    map_dim: int,
    layers: int,
    resnet_blocks: int,
    base_size: int,
    n_mix: int,
) -> nn.Module:
    """The frame model ``kind`` (one of :data:`FRAME_MODELS`) conditioned on maps of ``map_dim`` channels."""
    if kind not in FRAME_MODELS:
        raise ConfigError(f"unknown video model {kind!r}; choose one of {FRAME_MODELS}")
    head = head or PAPER_HEADS[kind]
    cond = {
        "kind": "spatial",
        "dim": hidden,
        "map_channels": map_dim,
        "map_size": image_size // 2,
        "map_blocks": resnet_blocks,
    }
    if kind == "o_t":
        return GroupFrame(image_size, n_channels, bits, head, hidden, resnet_blocks, n_mix, map_dim)
    if kind == "convlstm":
        return IndependentFrame(image_size, n_channels, bits, head, hidden, resnet_blocks, n_mix, map_dim)
    if kind == "vpn":
        return PixelCNN(image_size, n_channels, bits, head, hidden=hidden, layers=layers, n_mix=n_mix, condition=cond)
    return MultiscalePixelCNN(
        image_size,
        n_channels,
        bits,
        head,
        "a",
        base_size,
        hidden=hidden,
        base_layers=layers,
        resnet_blocks=resnet_blocks,
        n_mix=n_mix,
        condition=cond,
    )
