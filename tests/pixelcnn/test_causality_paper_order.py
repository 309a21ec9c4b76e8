"""Causality of the multiscale PixelCNN against the order written in the paper, not the model's own.

The allowed set of every predicted sub-pixel is derived here from Reed et al. 2017's grouping (section 3, Fig. 2),
independently of ``multiscale.py``'s ``order_rank``:

* a full-resolution pixel (r, c) first appears at the coarsest level whose grid contains it (level l has spacing
  2^(n - l)); at level 0 (the base) pixels come in raster order, channel by channel;
* at a level l >= 1 it belongs to group 2, 3 or 4 by its row/column parity on the level-l grid;
  (level, group) pairs are ordered lexicographically and every earlier pair is visible in full;
* inside one group, type A pixels are conditionally independent (a sub-pixel sees only earlier channels of its own
  pixel); type B cuts the group's K x K grid into contiguous M x M patches and models each patch in raster order,
  so a sub-pixel also sees earlier pixels of its own patch, and nothing of another patch of its group;
* channels in R, G, B order.

Each output of every factor is tied to the sub-pixel it predicts (its rows/cols and the head's output channel);
its Jacobian row must vanish (exactly, float64) outside the allowed set, and non-vacuity is checked: the factors
do depend on earlier pixels, within-patch dependencies exist for type B.
"""

from __future__ import annotations

import pytest
import torch
from pcnn_helpers import tiny_model


def paper_position(r: int, c: int, size: int, base: int) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """(level, group, group-grid (i, j), base-grid (r, c)) of full-resolution pixel (r, c), from the paper."""
    n = (size // base).bit_length() - 1
    for level in range(n + 1):
        step = 2 ** (n - level)
        if r % step == 0 and c % step == 0:
            if level == 0:
                return 0, 0, (r // step, c // step), (r // step, c // step)
            rr, cc = r // step, c // step
            group = {(0, 1): 2, (1, 0): 3, (1, 1): 4}[(rr % 2, cc % 2)]
            return level, group, (rr // 2, cc // 2), (-1, -1)
    raise AssertionError("unreachable")


def allowed(
    out: tuple[int, int, int], inp: tuple[int, int, int], size: int, base: int, variant: str, patch: int
) -> bool:
    """May the prediction of sub-pixel ``out`` = (channel, r, c) depend on input sub-pixel ``inp``?"""
    (co, ro, wo), (ci, ri, wi) = out, inp
    lo, go, (io, jo), bo = paper_position(ro, wo, size, base)
    li, gi, (ii, ji), bi = paper_position(ri, wi, size, base)
    if (li, gi) != (lo, go):
        return (li, gi) < (lo, go)
    if (ri, wi) == (ro, wo):
        return ci < co
    if lo == 0:  # the base: raster order
        return bi < bo
    if variant == "a":
        return False
    same_patch = (ii // patch, ji // patch) == (io // patch, jo // patch)
    return same_patch and (ii % patch, ji % patch) < (io % patch, jo % patch)


def jacobian_rows(model) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Jacobian (outputs, C*S*S) of every factor output w.r.t. the image, and the sub-pixel each output predicts."""
    c, s = model.n_channels, model.image_size
    v0 = torch.rand(1, c, s, s, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fn = lambda v: torch.cat([f.params.reshape(-1) for f in model.factors(v)])  # noqa: E731
    jac = torch.autograd.functional.jacobian(fn, v0, vectorize=True, strategy="forward-mode").reshape(-1, c * s * s)
    color = model.head.output_color()
    targets = []
    for f in model.factors(v0):
        p, h, w = f.params.shape[1:]
        rows, cols = f.rows.expand(h, w), f.cols.expand(h, w)
        targets += [
            (int(color[k]), int(rows[y, x]), int(cols[y, x])) for k in range(p) for y in range(h) for x in range(w)
        ]
    return jac, targets


@pytest.mark.parametrize(
    "variant,size,base,patch,channels,head",
    [
        ("a", 8, 2, 2, 3, "softmax"),
        ("a", 8, 1, 2, 3, "logistic"),
        ("b", 8, 2, 2, 3, "softmax"),  # level 2: a 4x4 group grid in four 2x2 patches
        ("b", 16, 2, 3, 1, "bernoulli"),  # patch 3 does not divide K = 4 or 8: padded patches
    ],
)
def test_no_output_sees_what_the_papers_order_hides(variant, size, base, patch, channels, head):
    model = tiny_model(variant, size, channels, 1 if head == "bernoulli" else 2, head, base=base, patch=patch)
    jac, targets = jacobian_rows(model)
    inputs = [(ch, r, c) for ch in range(channels) for r in range(size) for c in range(size)]
    mask = torch.tensor([[allowed(t, i, size, base, variant, patch) for i in inputs] for t in targets])
    leaks = (jac != 0) & ~mask
    assert not leaks.any(), (
        f"{int(leaks.sum())} forbidden dependencies, e.g. output {targets[int(leaks.any(1).nonzero()[0])]} sees "
        f"{inputs[int(leaks[leaks.any(1).nonzero()[0, 0]].nonzero()[0])]}"
    )
    # not vacuous: every group after the base does read earlier groups (a tiny random net has dead ReLUs, so
    # this is asked of each group as a whole, not of every output), and type B uses its own patch
    key = [paper_position(r, c, size, base)[:2] for _, r, c in targets]
    earlier = torch.tensor([[paper_position(r, c, size, base)[:2] < k for _, r, c in inputs] for k in key])
    for group in sorted(set(key) - {(0, 0)}):
        rows = torch.tensor([k == group for k in key])
        assert ((jac[rows] != 0) & earlier[rows]).any(), f"group {group} reads no earlier group"
    if variant == "b":
        within = torch.tensor(
            [
                [allowed(t, i, size, base, "b", patch) and not allowed(t, i, size, base, "a", patch) for i in inputs]
                for t in targets
            ]
        )
        assert ((jac != 0) & within).any()


def test_the_paper_order_itself():
    """The derivation above, on the paper's 4x4 picture with a 1x1 base (Fig. 2): a hand-checked sample."""
    pos = lambda r, c: paper_position(r, c, 4, 1)[:2]  # noqa: E731
    assert pos(0, 0) == (0, 0)
    assert [pos(0, 2), pos(2, 0), pos(2, 2)] == [(1, 2), (1, 3), (1, 4)]
    assert [pos(0, 1), pos(1, 0), pos(1, 1), pos(3, 3)] == [(2, 2), (2, 3), (2, 4), (2, 4)]
    # group 2 of level 2 sees group-1 pixels below and right of it (here: (2, 2)), not group 3's (1, 0)
    assert allowed((0, 0, 1), (0, 2, 2), 4, 1, "a", 2) and not allowed((0, 0, 1), (0, 1, 0), 4, 1, "a", 2)
    # type B: (0, 3) is after (0, 1) in the same 2x2 patch of group 2's grid; type A keeps them independent
    assert allowed((0, 0, 3), (0, 0, 1), 4, 1, "b", 2) and not allowed((0, 0, 3), (0, 0, 1), 4, 1, "a", 2)
