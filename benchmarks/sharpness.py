"""Speed of the curvature engine vs a straightforward double-backward implementation (PyHessian's approach).

Model: the `cnn-small` preset (two stride-2 5x5 convolutions and a linear layer, 5,994 parameters), briefly
trained on MNIST, measured on one batch of MNIST training images, in the same process and run:

- ``lambda-max``: time to the top Hessian eigenvalue to 1% relative accuracy. Ours: Lanczos on the operator's
  default products (``HessianOperator(product="auto")``: for this ``nn.Sequential`` chain the layerwise
  R-operator with the primal forward/backward cached once per batch), stopped when the a-posteriori
  eigenvalue error estimate residual^2 / gap falls below 1% (``stop="gap"``); the setup (one forward and
  backward) is inside the timing. Baseline: power iteration on double-backward products (the gradient graph
  built once with ``create_graph=True`` and reused with ``retain_graph=True``, also timed), stopped when the
  estimate changes by less than 1e-3 relative (PyHessian's default). Both are compared with a tight Lanczos
  reference (residual 1e-8); ``agree`` means both are within 1%. Also recorded: our power iteration on our
  products (the product's share of the speedup) and our Lanczos on the generic forward-over-reverse product
  (the algorithm's share).
- ``trace``: Hutchinson with the same Rademacher probes (same number, same draws). Ours: ``hutchinson`` takes
  the quadratic forms v^T H v the operator offers (``HessianOperator.quadform``: for this chain, the second
  derivative of t -> L(theta + t v) propagated forward through the cached primal pass, no reverse pass).
  Baseline: v . (H v) with one double-backward product per probe through the retained gradient graph. Same
  estimator and probes, so ``agree`` means the two estimates match to 1e-4 relative. Also recorded (once,
  not repeated): ours through full products H v (``v . op.matmat(v)``), to separate the quadratic form's
  share from the cached primal's.

Times are medians over repeats, ours and the baseline interleaved. Written independently of PyHessian (GPL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from icml17.core.curvature import HessianOperator, hutchinson, lanczos, power_iteration  # noqa: E402
from icml17.core.results import write_record  # noqa: E402
from icml17.sharpness.data import mnist_subset  # noqa: E402
from icml17.sharpness.models import count_parameters  # noqa: E402
from icml17.sharpness.presets import build_model  # noqa: E402
from icml17.sharpness.train import TrainConfig, train_classifier  # noqa: E402

CE = nn.functional.cross_entropy


class DoubleBackward:
    """Hessian-vector products by differentiating the gradient again (reverse-over-reverse), one at a time."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.grads = torch.autograd.grad(CE(model(x), y), self.params, create_graph=True)
        self.size = sum(p.numel() for p in self.params)
        self.n_hvp = 0

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        chunks, i = [], 0
        for p in self.params:
            chunks.append(v[i:i + p.numel()].view_as(p))
            i += p.numel()
        hv = torch.autograd.grad(self.grads, self.params, grad_outputs=chunks, retain_graph=True)
        self.n_hvp += 1
        return torch.cat([h.reshape(-1) for h in hv])


def baseline_power(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-3, max_iter: int = 100,
                   seed: int = 0) -> tuple[float, int]:
    db = DoubleBackward(model, x, y)
    v = torch.randn(db.size, generator=torch.Generator().manual_seed(seed))
    v /= v.norm()
    value = None
    for _ in range(max_iter):
        hv = db.hvp(v)
        new = float(v @ hv)
        v = hv / hv.norm()
        if value is not None and abs(new - value) / (abs(value) + 1e-6) < tol:
            value = new
            break
        value = new
    return value, db.n_hvp


def baseline_hutchinson(model: nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int, block: int,
                        seed: int) -> tuple[float, int]:
    """The same probes as :func:`hutchinson` (same generator, same block draws), one product each."""
    db = DoubleBackward(model, x, y)
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for start in range(0, probes, block):
        V = (torch.randint(0, 2, (db.size, min(block, probes - start)), generator=gen) * 2 - 1).float()
        for j in range(V.shape[1]):
            total += float(V[:, j] @ db.hvp(V[:, j]))
    return total / probes, db.n_hvp


class _ProductsOnly:
    """An operator seen through ``matmat`` only (hides ``quadform``): Hutchinson then uses v . (H v)."""

    def __init__(self, op: HessianOperator):
        self.op, self.size, self.dtype, self.device = op, op.size, op.dtype, op.device

    @property
    def n_hvp(self) -> int:
        return self.op.n_hvp

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.op.matmat(vectors)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller batch, fewer probes and repeats")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "sharpness.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch, probes, repeats = (256, 64, 3) if args.quick else (512, 100, 5)  # 100 probes: PyHessian's maxIter

    x, y = mnist_subset(args.data_dir, "train", 2000, 0)
    model = build_model("cnn-small", 0)
    train_classifier(model, x, y, TrainConfig("cnn-small", 300, 64, lr=0.1), ROOT / "runs" / "sharpness" / "bench-cnn")
    model.eval()
    data = (x[:batch], y[:batch])
    op = lambda **kw: HessianOperator(model, CE, data, **kw)  # noqa: E731

    reference = lanczos(op(), 1, tol=1e-8, max_iter=300).eigenvalues[0]
    cases = []

    # lambda-max: interleave ours / baseline / our power iteration
    load_start = os.getloadavg()[0]
    method = op().method
    ours_t, base_t, pow_t, generic_t = [], [], [], []
    for r in range(repeats):
        ms, ours = timed(lambda: lanczos(op(), 1, tol=1e-2, stop="gap"), 1)
        ours_t.append(ms)
        ms, base = timed(lambda: baseline_power(model, *data), 1)
        base_t.append(ms)
        ms, ours_pow = timed(lambda: power_iteration(op(), tol=1e-3, max_iter=100), 1)
        pow_t.append(ms)
        if r < 2:
            ms, generic = timed(lambda: lanczos(op(product="forward-over-reverse"), 1, tol=1e-2, stop="gap"), 1)
            generic_t.append(ms)
    err = {"ours": abs(ours.eigenvalues[0] - reference) / reference, "double-backward": abs(base[0] - reference) / reference,
           "ours-power-iteration": abs(ours_pow.eigenvalues[0] - reference) / reference,
           "ours-forward-over-reverse": abs(generic.eigenvalues[0] - reference) / reference}
    g = statistics.median(generic_t)
    o, b, p = statistics.median(ours_t), statistics.median(base_t), statistics.median(pow_t)
    cases.append({"case": "lambda-max", "ours_ms": round(o, 1), "baselines_ms": {"double-backward": round(b, 1)},
                  "speedup": {"double-backward": round(b / o, 2)},
                  "agree": err["ours"] < 0.01 and err["double-backward"] < 0.01,
                  "n_hvp": {"ours": ours.n_hvp, "double-backward": base[1], "ours-power-iteration": ours_pow.n_hvp,
                            "ours-forward-over-reverse": generic.n_hvp},
                  "relative_error_vs_reference": err, "reference_lambda_max": reference,
                  "ours_power_iteration_ms": round(p, 1), "ours_forward_over_reverse_ms": round(g, 1),
                  "ms_per_hvp (setup included)": {
                      "ours": round(o / ours.n_hvp, 1), "double-backward": round(b / base[1], 1),
                      "ours-power-iteration": round(p / ours_pow.n_hvp, 1),
                      "ours-forward-over-reverse": round(g / generic.n_hvp, 1)},
                  "product_method": method,
                  "method": {"ours": f"Lanczos (full reorth.), {method} HVP, stop when residual^2/gap < 1e-2 "
                                     "relative",
                             "double-backward": "power iteration, double-backward HVP, stop at rel. change 1e-3",
                             "ours-power-iteration": f"power iteration (same rule as the baseline), {method} HVP",
                             "ours-forward-over-reverse": "our Lanczos on the generic jvp(grad) product"}})

    # trace: identical Hutchinson probes
    block = 32
    ours_t, base_t = [], []
    for _ in range(max(2, repeats - 2)):
        ms, ours_tr = timed(lambda: hutchinson(op(), probes, block=block, seed=1), 1)
        ours_t.append(ms)
        ms, base_tr = timed(lambda: baseline_hutchinson(model, *data, probes, block, seed=1), 1)
        base_t.append(ms)
    hv_op = op()
    hv_ms, hv_tr = timed(lambda: hutchinson(_ProductsOnly(hv_op), probes, block=block, seed=1), 1)
    o, b = statistics.median(ours_t), statistics.median(base_t)
    cases.append({"case": "trace", "ours_ms": round(o, 1), "baselines_ms": {"double-backward": round(b, 1)},
                  "speedup": {"double-backward": round(b / o, 2)},
                  "agree": abs(ours_tr.estimate - base_tr[0]) / abs(base_tr[0]) < 1e-4,
                  "n_hvp": {"ours": ours_tr.n_hvp, "double-backward": base_tr[1], "ours-hvp": hv_tr.n_hvp},
                  "estimates": {"ours": ours_tr.estimate, "double-backward": base_tr[0], "stderr": ours_tr.stderr,
                                "ours-hvp": hv_tr.estimate},
                  "ours_hvp_ms (one run)": round(hv_ms, 1),
                  "ms_per_hvp (setup included)": {"ours (quadratic form)": round(o / probes, 1),
                                                  "double-backward": round(b / probes, 1),
                                                  "ours-hvp": round(hv_ms / probes, 1)},
                  "product_method": method,
                  "method": {"ours": f"Hutchinson, {probes} Rademacher probes, v^T H v from the {method} "
                                     "second-order forward pass (HessianOperator.quadform), primal cached once",
                             "double-backward": "the same probes, v . (H v) with one double-backward product each",
                             "ours-hvp": f"the same probes, v . (H v) with {method} products (op.matmat)"}})

    record = {"benchmark": "sharpness", "command": "python benchmarks/sharpness.py" + (" --quick" if args.quick else ""),
              "model": f"cnn-small ({count_parameters(model)} parameters), 300 SGD steps on 2,000 MNIST images",
              "batch": batch, "repeats": repeats, "load_average_1min_at_start": round(load_start, 2),
              "load_average_1min_at_end": round(os.getloadavg()[0], 2),
              "cases": cases}
    write_record(args.out, record)
    for c in cases:
        print(f"{c['case']}: ours {c['ours_ms']} ms, double-backward {c['baselines_ms']['double-backward']} ms, "
              f"speedup {c['speedup']['double-backward']}x, n_hvp {c['n_hvp']}, agree {c['agree']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
