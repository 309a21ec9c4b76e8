"""The README's Python snippet for the sharpness toolkit, run as written (on a smaller MNIST subset)."""

from __future__ import annotations

import torch
from torch import nn

from icml17.core.curvature import HessianOperator, hutchinson, lanczos
from icml17.sharpness import AlphaScaling, build_model, check_invariance, measure
from icml17.sharpness.data import mnist_subset


def test_readme_snippet(mnist_dir):
    ce = nn.functional.cross_entropy
    x, y = mnist_subset(mnist_dir, "train", n=128)  # (128, 1, 28, 28), (128,)
    model = build_model("mlp-784-32-10")
    op = HessianOperator(model, ce, (x, y), dtype=torch.float64)
    top = lanczos(op, k=3, tol=1e-6)  # top.eigenvalues: 3 floats, descending
    tr = hutchinson(op, n_probes=16)  # tr.estimate, tr.stderr, tr.n_hvp
    out = measure(model, ce, (x, y), ["lambda_max", "adaptive_lambda_max"])
    report = check_invariance(model, ce, (x, y), [AlphaScaling.pair(a, 2) for a in (0.1, 10.0)], "lambda_max")
    assert len(top.eigenvalues) == 3 and top.eigenvalues[0] >= top.eigenvalues[1] >= top.eigenvalues[2]
    assert tr.n_hvp == 16 and out["mode"] == "eval"
    assert abs(out["lambda_max"] - top.eigenvalues[0]) / top.eigenvalues[0] < 1e-2
    assert report.spread > 10 and all(r.outputs_preserved for r in report.rows)
    assert "spread" in report.table()
