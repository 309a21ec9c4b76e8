"""The factored-model base shared by the full and the multiscale PixelCNN and by their samplers.

Both models write ``log p(x | c)`` as a sum of factors, each a head's log-likelihood of one group of pixels
(:class:`Factor`, :func:`factored_log_prob`, :class:`LogProb`), take the same integer images
(:func:`check_images`) and order sub-pixels by rank (:func:`raster_rank`). The multiscale model and its sampler
also share the layout of a level's pixel groups and patches (:func:`group_view`, :func:`to_patches`,
:func:`from_patches`). Keeping these here lets the models import their samplers and the samplers use these
helpers without either importing the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from icml17.pixelcnn.heads import to_unit

GROUP_OFFSETS = {1: (0, 0), 2: (0, 1), 3: (1, 0), 4: (1, 1)}  # (row, col) inside each 2x2 tile


@dataclass
class LogProb:
    """Exact log-likelihood in nats, with the factors it is the sum of.

    Attributes:
        total: ``log p(x | c)`` of each image, (B,).
        terms: each factor's share, name -> (B,) (``"base"``, ``"scale1/group2"``, ...; ``"pixels"`` for the full
            model); they sum to ``total``.
        dims: sub-pixels per image, C * H * W.
    """

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    dims: int = 1  # sub-pixels per image, C * H * W

    def bits_per_dim(self) -> Tensor:
        """(B,) ``-log2 p(x) / (C H W)``, summed over all pixels of the full image."""
        return -self.total / (self.dims * math.log(2.0))


@dataclass
class Factor:
    """Outputs of one factor: ``params`` (B, P, h, w) predicting the full-resolution pixels ``rows, cols`` (h, w)."""

    name: str
    params: Tensor
    rows: Tensor
    cols: Tensor


def check_images(x: Tensor, n_channels: int, size: int, levels: int) -> None:
    """Raise ValueError unless ``x`` is an integer tensor (B, C, size, size) with values in ``[0, levels)``."""
    if not isinstance(x, Tensor) or x.is_floating_point() or x.dtype == torch.bool:
        raise ValueError(
            f"images must be an integer tensor of shape (B, {n_channels}, {size}, {size}) with values "
            f"in [0, {levels}), got {getattr(x, 'dtype', type(x))}"
        )
    if x.dim() != 4 or tuple(x.shape[1:]) != (n_channels, size, size):
        raise ValueError(f"images must have shape (B, {n_channels}, {size}, {size}), got {tuple(x.shape)}")
    if not x.numel():
        return
    lo, hi = torch.stack(torch.aminmax(x)).cpu().tolist()  # one copy to the host when x lives on a GPU
    if lo < 0 or hi >= levels:
        raise ValueError(
            f"pixel values must lie in [0, {levels}) ({int(math.log2(levels))}-bit), got range [{lo}, {hi}]"
        )


def factored_log_prob(model: nn.Module, x: Tensor, context: object = None) -> LogProb:
    """Exact ``log p(x | c)``: the sum over the model's factors (one per pixel group) of the head's log-likelihood
    of that group's pixels. Shared by the full and the multiscale PixelCNN, which differ only in their factors.

    Under autocast (bf16 / fp16 training) the networks run in half precision but every head scores in the model's
    own dtype: a discretized logistic's bins (2/255 wide) are below bf16's resolution near 1."""
    check_images(x, model.n_channels, model.image_size, model.levels)
    dtype = next(model.parameters()).dtype
    terms = {
        f.name: model.head.log_prob(f.params.to(dtype), x[:, :, f.rows, f.cols]).sum((1, 2))
        for f in model.factors(to_unit(x, model.levels, dtype), context)
    }
    return LogProb(sum(terms.values()), terms, model.dims)


def raster_rank(n_channels: int, size: int) -> Tensor:
    """(C, H, W) position of every sub-pixel in raster-then-channel order."""
    pix = torch.arange(size * size).view(1, size, size)
    return pix * n_channels + torch.arange(n_channels).view(-1, 1, 1)


def group_view(level: Tensor, g: int) -> Tensor:
    """(B, C, 2K, 2K) -> (B, C, K, K) view of group ``g`` (writes go through to ``level``)."""
    dr, dc = GROUP_OFFSETS[g]
    return level[:, :, dr::2, dc::2]


def to_patches(t: Tensor, m: int) -> Tensor:
    """(B, D, K, K) -> (B * n * n, D, m, m) with n = ceil(K / m), zero-padded at the bottom/right."""
    b, d, k, _ = t.shape
    kp = -(-k // m) * m
    t = F.pad(t, (0, kp - k, 0, kp - k))
    n = kp // m
    return t.view(b, d, n, m, n, m).permute(0, 2, 4, 1, 3, 5).reshape(b * n * n, d, m, m)


def from_patches(t: Tensor, batch: int, k: int) -> Tensor:
    """Inverse of :func:`to_patches`, cropped back to (B, D, K, K)."""
    m, d = t.shape[-1], t.shape[1]
    n = -(-k // m)
    t = t.view(batch, n, n, d, m, m).permute(0, 3, 1, 4, 2, 5).reshape(batch, d, n * m, n * m)
    return t[:, :, :k, :k]
