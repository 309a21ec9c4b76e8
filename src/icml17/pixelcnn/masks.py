"""Causal masks for PixelCNN convolutions (van den Oord et al. 2016, "Conditional image generation with
PixelCNN decoders", section 2; used by every network of the multiscale model, Reed et al. 2017, section 3.1).

A mask is a 0/1 tensor shaped like a convolution weight ``(out, in, kh, kw)``; layers multiply it into the
weight inside ``forward`` (never by mutating ``.data``), so autograd, ``torch.func`` and compile see it.

Two spatial stacks remove the blind spot of stacked masked 3x3 kernels:
- vertical stack: taps in rows strictly above the centre (first layer) or up to and including the centre row
  (later layers, whose inputs already only see rows above), every column;
- horizontal stack: a ``1 x k`` kernel over the centre row, taps strictly left of the centre, plus the centre
  tap under the channel rule.

Channel rule (colour masking, PixelCNN section 2): every feature channel carries a colour group; a centre tap
from input group ``gi`` to output group ``go`` is kept when ``gi < go`` (mask "A") or ``gi <= go`` (mask "B").
Group ``-1`` marks inputs that are known before any channel of the current pixel (context features, the
constant ones channel) and is visible to every output. With one colour group (greyscale, or a logistic
mixture that couples channels itself) mask A hides the whole current pixel.
"""

from __future__ import annotations

import torch
from torch import Tensor


def channel_groups(n_channels: int, n_colors: int, n_chunks: int = 1) -> Tensor:
    """Colour group of each of ``n_channels`` features: ``n_chunks`` equal chunks (e.g. the two gate halves),
    each split into ``n_colors`` contiguous blocks. ``(n_channels,)`` int64."""
    if n_channels % (n_colors * n_chunks):
        raise ValueError(f"{n_channels} channels cannot be split into {n_chunks} chunks of {n_colors} colour groups")
    per_chunk = n_channels // n_chunks
    return (torch.arange(n_channels) % per_chunk) // (per_chunk // n_colors)


def channel_rule(in_groups: Tensor, out_groups: Tensor, mask_type: str) -> Tensor:
    """``(out, in)`` 0/1 matrix of the centre tap: A keeps ``gi < go``, B keeps ``gi <= go``; ``gi = -1`` always."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    gi, go = in_groups[None, :], out_groups[:, None]
    keep = (gi < go) if mask_type == "A" else (gi <= go)
    return (keep | (gi < 0)).float()


def vertical_mask(n_out: int, n_in: int, kernel: int, include_centre_row: bool) -> Tensor:
    """``(out, in, k, k)``: rows above the centre (and the centre row when ``include_centre_row``)."""
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd, got {kernel}")
    mask = torch.zeros(n_out, n_in, kernel, kernel)
    mask[:, :, : kernel // 2 + int(include_centre_row)] = 1.0
    return mask


def horizontal_mask(in_groups: Tensor, out_groups: Tensor, kernel: int, mask_type: str) -> Tensor:
    """``(out, in, 1, k)``: taps left of the centre, and the centre under the channel rule. ``kernel=1`` gives
    the masked 1x1 convolution used between channel groups."""
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd, got {kernel}")
    mask = torch.zeros(len(out_groups), len(in_groups), 1, kernel)
    mask[:, :, 0, : kernel // 2] = 1.0
    mask[:, :, 0, kernel // 2] = channel_rule(in_groups, out_groups, mask_type)
    return mask
