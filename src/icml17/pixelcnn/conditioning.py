"""Context encoders: every factor of the model (base PixelCNN and every upscaling group) takes the context c
(Reed et al. 2017, section 3.2).

- ``class``: a label embedding (B,) int64 -> (B, D).
- ``text``: characters (padded to ``text_len``; the paper pads to 201) -> 3-layer character CNN -> GRU ->
  average pooling over the non-padding time steps -> (B, D). Captions may be given as strings or as
  (B, T) int64 character codes.
- ``spatial``: a (B, P, S, S) float map (keypoints / segmentation in the paper, a digit mask here) -> ResNet
  features (B, D, S, S), resized bilinearly to every scale (``resize_map``).
A vector context becomes a bias in every layer, a map a 1x1-convolved bias (PixelCNN conditioning, van den
Oord et al. 2016, section 2.3).
- ``text+spatial`` (Table 1's text-and-structure conditioning): a pair ``(captions, map)``; the caption vector
  biases every layer and the map's features enter as above. The paper tiles the text vector over the map and
  depth-concatenates the two; a per-layer bias from the vector is the same function class for the first
  layer that reads them (a linear map of a spatially constant block is a constant bias), and keeps one code path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from icml17.core.config import ConfigError
from icml17.pixelcnn.layers import ResNet

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCAB = 128  # ASCII; code 0 is padding
KINDS = ("none", "class", "text", "spatial", "text+spatial")


def caption_for_label(label: int) -> str:
    """MNIST label -> caption, e.g. 7 -> 'a handwritten seven'."""
    return f"a handwritten {DIGIT_WORDS[int(label)]}"


def encode_captions(captions: Sequence[str], length: int) -> Tensor:
    """Strings -> (B, length) int64 ASCII codes, right-padded with 0 (longer captions are cut)."""
    out = torch.zeros(len(captions), length, dtype=torch.long)
    for i, text in enumerate(captions):
        codes = [min(ord(ch), VOCAB - 1) for ch in text[:length]]
        out[i, : len(codes)] = torch.tensor(codes, dtype=torch.long)
    return out


def resize_map(features: Tensor | None, size: int) -> Tensor | None:
    """(B, D, S, S) -> (B, D, size, size), bilinear (antialiased when shrinking)."""
    if features is None or features.shape[-1] == size:
        return features
    return F.interpolate(
        features, size=(size, size), mode="bilinear", align_corners=False, antialias=size < features.shape[-1]
    )


class TextEncoder(nn.Module):
    def __init__(self, dim: int, length: int):
        super().__init__()
        self.length = length
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=1) for _ in range(3))
        # time-major: the same computation as batch_first=True (which transposes the input to (T, B, D) and the
        # output back in place, an in-place view change the stand-in device harness cannot follow)
        self.gru = nn.GRU(dim, dim)

    def forward(self, codes: Tensor) -> Tensor:  # (B, T) -> (B, D)
        keep = (codes > 0).to(self.embed.weight.dtype)  # (B, T)
        h = self.embed(codes).transpose(1, 2)  # (B, D, T)
        for conv in self.convs:
            h = F.relu(conv(h))
        h, _ = self.gru(h.permute(2, 0, 1))  # (T, B, D)
        h = h.transpose(0, 1)  # (B, T, D)
        return (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1.0)


class ContextEncoder(nn.Module):
    """Raw context -> ``(vec (B, D) | None, map (B, D, S, S) | None)``, validating shapes and ranges."""

    def __init__(
        self,
        kind: str = "none",
        dim: int = 32,
        n_classes: int = 10,
        text_len: int = 32,
        map_channels: int = 1,
        map_size: int = 28,
        map_blocks: int = 2,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"condition must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.dim = kind, dim
        self.n_classes, self.text_len, self.map_channels, self.map_size = n_classes, text_len, map_channels, map_size
        if kind == "class":
            self.net = nn.Embedding(n_classes, dim)
        elif kind in ("text", "text+spatial"):
            self.net = TextEncoder(dim, text_len)
        elif kind == "spatial":
            self.net = ResNet(map_channels, dim, map_blocks)
        if kind == "text+spatial":
            self.map_net = ResNet(map_channels, dim, map_blocks)

    @property
    def vec_dim(self) -> int:
        return self.dim if self.kind in ("class", "text", "text+spatial") else 0

    @property
    def map_dim(self) -> int:
        return self.dim if self.kind in ("spatial", "text+spatial") else 0

    def expected(self) -> str:
        text = f"captions: a list of B strings or an int64 tensor of shape (B, {self.text_len})"
        spatial = f"a float tensor of shape (B, {self.map_channels}, {self.map_size}, {self.map_size})"
        return {
            "none": "no context (None)",
            "class": f"class labels: int64 tensor of shape (B,) with values in [0, {self.n_classes})",
            "text": text,
            "spatial": spatial,
            "text+spatial": f"a pair (captions, map): {text}, and {spatial}",
        }[self.kind]

    def forward(self, context: object, batch: int) -> tuple[Tensor | None, Tensor | None]:
        if self.kind == "none":
            if context is not None:
                raise ValueError(f"this model is unconditional; got a context of type {type(context).__name__}")
            return None, None
        if context is None:
            raise ValueError(f"this model needs a context: {self.expected()} with B = {batch}")
        if self.kind == "class":
            return self._labels(context, batch), None
        if self.kind == "text":
            return self._captions(context, batch), None
        if self.kind == "spatial":
            return None, self._map(self.net, context, batch)
        if not (isinstance(context, (tuple, list)) and len(context) == 2):
            raise ValueError(f"expected {self.expected()}, got {type(context).__name__}")
        return self._captions(context[0], batch), self._map(self.map_net, context[1], batch)

    def _labels(self, context: object, batch: int) -> Tensor:
        if not isinstance(context, Tensor) or context.shape != (batch,) or context.is_floating_point():
            raise ValueError(f"expected {self.expected()} with B = {batch}, got {_describe(context)}")
        if len(context):
            lo, hi = torch.stack(torch.aminmax(context)).cpu().tolist()  # one copy to the host
            if lo < 0 or hi >= self.n_classes:
                raise ValueError(f"class labels must lie in [0, {self.n_classes}), got range [{lo}, {hi}]")
        return self.net(context)

    def _captions(self, context: object, batch: int) -> Tensor:
        if isinstance(context, (list, tuple)):
            if not all(isinstance(c, str) for c in context):
                raise ValueError(f"expected {self.expected()}")
            context = encode_captions(context, self.text_len).to(next(self.parameters()).device)
        if not isinstance(context, Tensor) or context.shape != (batch, self.text_len) or context.is_floating_point():
            raise ValueError(f"expected {self.expected()} with B = {batch}, got {_describe(context)}")
        return self.net(context.clamp(0, VOCAB - 1))

    def _map(self, net: nn.Module, context: object, batch: int) -> Tensor:
        shape = (batch, self.map_channels, self.map_size, self.map_size)
        if not isinstance(context, Tensor) or tuple(context.shape) != shape or not context.is_floating_point():
            raise ValueError(f"expected {self.expected()} with B = {batch}, got {_describe(context)}")
        return net(context.to(next(self.parameters()).dtype))


def _describe(context: object) -> str:
    if isinstance(context, Tensor):
        return f"{tuple(context.shape)} {context.dtype}"
    return type(context).__name__
