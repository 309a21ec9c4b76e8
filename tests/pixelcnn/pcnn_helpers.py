"""Tiny models and brute-force references shared by the PixelCNN tests."""

from __future__ import annotations

import torch

from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.pixelcnn import PixelCNN


def tiny_model(
    kind: str,
    size: int,
    channels: int,
    bits: int,
    head: str,
    condition: str = "none",
    base: int = 1,
    patch: int = 2,
    seed: int = 0,
) -> torch.nn.Module:
    """A small float64 model: kind 'full', 'a' or 'b'."""
    torch.manual_seed(seed)
    cond = {"kind": condition, "dim": 6, "text_len": 24, "map_channels": 2, "map_size": size}
    if kind == "full":
        model = PixelCNN(size, channels, bits, head, hidden=6, layers=2, n_mix=2, condition=cond)
    else:
        model = MultiscalePixelCNN(
            size,
            channels,
            bits,
            head,
            kind,
            base,
            hidden=6,
            base_layers=2,
            resnet_blocks=1,
            shallow_layers=2,
            patch=patch,
            n_mix=2,
            condition=cond,
        )
    return model.double().eval()


def small_run_flags(data_dir, *sets: str) -> list:
    """CLI flags of a tiny, quick ``icml17 pixelcnn train`` on ``data_dir``, then ``--set`` of each of ``sets``."""
    base = ["hidden=8", "layers=2", "resnet_blocks=1", "batch_size=4", "eval_images=8", "eval_every=2", *sets]
    return ["--data-dir", data_dir, *(x for s in base for x in ("--set", s))]


def make_context(model, batch: int, seed: int = 1) -> object:
    enc = model.context
    g = torch.Generator().manual_seed(seed)
    if enc.kind == "class":
        return torch.full((batch,), 3, dtype=torch.long)
    if enc.kind == "text":
        return ["a handwritten three"] * batch
    if enc.kind in ("spatial", "text+spatial"):
        m = torch.rand(1, enc.map_channels, enc.map_size, enc.map_size, generator=g, dtype=torch.float64)
        m = m.expand(batch, -1, -1, -1)
        return m if enc.kind == "spatial" else (["a handwritten three"] * batch, m)
    return None


def all_images(channels: int, size: int, levels: int) -> torch.Tensor:
    """Every image (levels^(C S S), C, S, S) int64."""
    n = channels * size * size
    idx = torch.arange(levels**n)
    digits = (idx[:, None] // levels ** torch.arange(n)) % levels
    return digits.view(-1, channels, size, size)


def chi_square(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom, pooling bins with expected count < ``min_expected``."""
    n = counts.sum()
    expected = probs * n
    small = expected < min_expected
    obs = torch.cat([counts[~small], counts[small].sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    keep = exp > 0
    stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
    return float(stat), int(keep.sum()) - 1


def jacobian_and_ranks(model, context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Jacobian (outputs, inputs) of every factor's outputs w.r.t. the image, the order rank of the sub-pixel
    each output predicts, and the rank of every input sub-pixel."""
    c, s = model.n_channels, model.image_size
    rank = model.order_rank()
    v0 = torch.rand(1, c, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fn = lambda v: torch.cat([f.params.reshape(-1) for f in model.factors(v, context)])  # noqa: E731
    jac = torch.autograd.functional.jacobian(fn, v0, vectorize=True, strategy="forward-mode")
    jac = jac.reshape(-1, c * s * s)  # (outputs, inputs)
    color = model.head.output_color()
    own = []
    for f in model.factors(v0, context):
        p, h, w = f.params.shape[1:]
        where = color.view(p, 1, 1).expand(p, h, w), f.rows.expand(p, h, w), f.cols.expand(p, h, w)
        own.append(rank[where].reshape(-1))
    return jac, torch.cat(own), rank.reshape(-1)
