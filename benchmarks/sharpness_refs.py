"""The sharpness benchmark's problems and their exact references (``benchmarks/sharpness.py`` times against them).

A :class:`Problem` is a preset trained for 300 SGD steps on 2,000 MNIST images (on the CPU, cached under
``runs/sharpness/bench-<name>``, so every device measures the same weights) and one fixed batch of those images.

References, in float64 and independent of the products being timed where it matters:

- ``cnn-small`` (5,994 parameters): the dense Hessian from batched double-backward rows (:class:`DoubleBackward`,
  not our products), its eigenvalues by ``eigvalsh`` and its trace; cached per (weights, batch) in
  ``runs/sharpness/bench-cnn-small/`` (about 10 minutes once on one thread).
- The MLP (79,510 parameters, too big for dense): eigenvalues by float64 Lanczos to a residual of 1e-10 |theta|,
  checked against scipy's ARPACK on float64 double-backward products; the trace is the sum of the Hessian's diagonal,
  which for these ReLU networks equals the Gauss-Newton diagonal (each parameter enters the output piecewise
  linearly, so d^2 f / d theta_i^2 = 0 almost everywhere), computed exactly from per-example Jacobians and checked
  against e_i^T H e_i on 16 random coordinates.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn
from torch.func import functional_call, jacrev, vmap

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from icml17.core.curvature import HessianOperator, lanczos  # noqa: E402
from icml17.sharpness.models import count_parameters  # noqa: E402
from icml17.sharpness.presets import build_sharpness_model  # noqa: E402
from icml17.sharpness.train import TrainConfig, train_classifier  # noqa: E402

CE = nn.functional.cross_entropy
CPU = torch.device("cpu")
DENSE_MAX_PARAMS = 10_000  # dense float64 reference up to this size (cnn-small: 5,994)
REF_K = 6  # reference eigenvalues (top-5 plus one)

# ---------------------------------------------------------------------------------------------------------------
# the hand-written double-backward product (baseline and, in float64, the dense reference)


class DoubleBackward:
    """Hessian products by differentiating the gradient again (reverse-over-reverse) through a gradient graph
    built once; a LinearOperator for our estimators (``matmat``, no ``quadform``)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None = None):
        if dtype is not None:
            model, x = copy.deepcopy(model).to(dtype), x.to(dtype)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.grads = torch.autograd.grad(CE(model(x), y), self.params, create_graph=True)
        self.size = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.n_hvp = 0

    def _split(self, v: torch.Tensor, lead: tuple[int, ...] = ()) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            out.append(v[..., i : i + p.numel()].reshape(*lead, *p.shape))
            i += p.numel()
        return out

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        cols = []
        for j in range(vectors.shape[1]):
            hv = torch.autograd.grad(
                self.grads, self.params, self._split(vectors[:, j].to(self.dtype)), retain_graph=True
            )
            cols.append(torch.cat([h.reshape(-1) for h in hv]))
            self.n_hvp += 1
        return torch.stack(cols, dim=1)

    def rows(self, block: torch.Tensor) -> torch.Tensor:
        """(b, n) -> (b, n): the products of a block of vectors in one batched double-backward."""
        hv = torch.autograd.grad(
            self.grads, self.params, self._split(block, (block.shape[0],)), retain_graph=True, is_grads_batched=True
        )
        self.n_hvp += block.shape[0]
        return torch.cat([h.reshape(block.shape[0], -1) for h in hv], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# the problems and their exact references


@dataclass
class Problem:
    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    pyhessian_model: nn.Module | None = None  # PyHessian writes .grad with a graph: its own copy
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def size(self) -> int:
        return count_parameters(self.model)

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]


def ggn_diagonal(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """diag(J^T H_out J) averaged over the batch, in float64, from per-example Jacobians (torch.func): the exact
    Hessian diagonal of the mean cross-entropy for ReLU networks (d^2 f / d theta_i^2 = 0 almost everywhere)."""
    m64 = copy.deepcopy(model).double().eval()
    params = {n: p.detach() for n, p in m64.named_parameters()}

    def logits(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return functional_call(m64, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(logits), in_dims=(None, 0))
    diag = {n: torch.zeros(p.numel(), dtype=torch.float64, device=p.device) for n, p in params.items()}
    for start in range(0, len(y), chunk):
        xc = x[start : start + chunk].double()
        with torch.no_grad():
            prob = torch.softmax(m64(xc), dim=-1)[:, :, None]  # (B, C, 1)
        J = jac(params, xc)
        for n, Jn in J.items():
            Jn = Jn.flatten(2)  # (B, C, P_n)
            diag[n] += ((prob * Jn**2).sum(1) - (prob * Jn).sum(1) ** 2).sum(0)
    return torch.cat([d for d in diag.values()]) / len(y)


def batch_key(p: Problem) -> str:
    h = hashlib.sha256()
    for t in [*(q.detach() for q in p.model.state_dict().values()), p.x, p.y]:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def dense_cache(p: Problem, cache: Path) -> Path:
    return cache / f"reference-dense-{batch_key(p)}.json"


def dense_reference(p: Problem, cache: Path) -> dict[str, Any]:
    """Eigenvalues and trace of the dense float64 Hessian (rows by batched double-backward), cached per
    (weights, batch)."""
    path = dense_cache(p, cache)
    if path.exists():
        return {**json.loads(path.read_text()), "cached": str(path.relative_to(ROOT))}
    t = time.perf_counter()
    db = DoubleBackward(p.model, p.x, p.y, dtype=torch.float64)
    eye = torch.eye(db.size, dtype=torch.float64, device=db.device)
    H = torch.cat([db.rows(eye[i : i + 32]) for i in range(0, db.size, 32)])
    asym = float((H - H.T).norm() / H.norm())
    H = (H + H.T) / 2
    eig = torch.linalg.eigvalsh(H)
    out = {
        "eigenvalues_top": eig.flip(0)[:10].tolist(),
        "lambda_min": float(eig[0]),
        "trace": float(H.trace()),
        "relative_asymmetry": asym,
        "seconds": round(time.perf_counter() - t, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def compute_reference(p: Problem, dense: bool, cache: Path) -> None:
    ref: dict[str, Any] = {}
    # float64 Lanczos (our operator), and an independent check: ARPACK on float64 double-backward products
    t = time.perf_counter()
    op = HessianOperator(p.model, CE, (p.x, p.y), dtype=torch.float64)
    r = lanczos(op, REF_K, tol=1e-10, stop="residual", max_iter=600, seed=123)
    rel_res = max(res / abs(v) for res, v in zip(r.residuals, r.eigenvalues)) if r.residuals else 0.0
    ref["lanczos_float64"] = {
        "eigenvalues": r.eigenvalues,
        "n_hvp": op.n_hvp,
        "converged": r.converged,
        "max_relative_residual": rel_res,
        "seconds": round(time.perf_counter() - t, 1),
    }
    t = time.perf_counter()
    db = DoubleBackward(p.model, p.x, p.y, dtype=torch.float64)
    A = LinearOperator(
        (db.size, db.size),
        dtype=np.float64,
        matvec=lambda v: db.matmat(torch.from_numpy(np.asarray(v).reshape(-1, 1)).to(db.device))[:, 0].cpu().numpy(),
    )
    v0 = np.random.default_rng(7).standard_normal(db.size)
    arpack = sorted(eigsh(A, k=REF_K, which="LA", tol=1e-12, v0=v0, return_eigenvectors=False), reverse=True)
    ref["check_arpack_double_backward_float64"] = {
        "eigenvalues": [float(v) for v in arpack],
        "n_hvp": db.n_hvp,
        "seconds": round(time.perf_counter() - t, 1),
        "max_relative_difference_to_lanczos": max(abs(a - b) / abs(b) for a, b in zip(arpack, r.eigenvalues)),
    }
    # exact trace: the Hessian diagonal (= Gauss-Newton diagonal here), checked on random coordinates
    t = time.perf_counter()
    diag = ggn_diagonal(p.model, p.x, p.y)
    coords = torch.randperm(db.size, generator=torch.Generator().manual_seed(5))[:16].to(db.device)
    E = torch.zeros(db.size, len(coords), dtype=torch.float64, device=db.device)
    E[coords, torch.arange(len(coords), device=db.device)] = 1.0
    h_ii = db.matmat(E)[coords, torch.arange(len(coords), device=db.device)]
    ref["trace_from_diagonal"] = {
        "trace": float(diag.sum()),
        "seconds": round(time.perf_counter() - t, 1),
        "check_16_coordinates_max_abs_difference_over_mean_abs_diagonal": float(
            (h_ii - diag[coords]).abs().max() / diag.abs().mean()
        ),
    }
    if dense:
        d = dense_reference(p, cache)
        ref["dense_float64"] = d
        ref["eigenvalues"], ref["trace"] = d["eigenvalues_top"][:REF_K], d["trace"]
        ref["method"] = "dense float64 Hessian (double-backward rows), eigvalsh and trace"
        ref["check_lanczos_vs_dense_max_relative_difference"] = max(
            abs(a - b) / abs(b) for a, b in zip(r.eigenvalues, ref["eigenvalues"])
        )
        ref["check_diagonal_trace_vs_dense_relative_difference"] = abs(diag.sum().item() - d["trace"]) / abs(d["trace"])
    else:
        ref["eigenvalues"], ref["trace"] = r.eigenvalues, float(diag.sum())
        ref["method"] = (
            "float64 Lanczos (residual <= 1e-10 |theta|) for eigenvalues; trace = sum of the exact "
            "Hessian diagonal (Gauss-Newton diagonal from per-example Jacobians, float64)"
        )
    p.reference = ref


def prepare(name: str, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device = CPU) -> Problem:
    """The preset trained on the CPU (cached under runs/: the same weights for every device), then put with its
    measured batch on ``device``."""
    model = build_sharpness_model(name, 0)
    train_classifier(
        model, x, y, TrainConfig(name, 300, 64, lr=0.1), ROOT / "runs" / "sharpness" / f"bench-{name}", device="cpu"
    )
    model.to(device).eval()
    for q in model.parameters():
        q.grad = None
    p = Problem(name, model, x[:batch].contiguous().to(device), y[:batch].contiguous().to(device), device=device)
    p.pyhessian_model = copy.deepcopy(model)
    p.info = {
        "parameters": p.size,
        "training": "300 SGD steps (batch 64, lr 0.1) on 2,000 MNIST training images",
        "measured_on": f"the first {batch} of those images, float32, eval mode, {device}",
    }
    if isinstance(model[1], nn.Linear):  # the MLP: the floor of one product (see docs/benchmarks.md)
        a = p.x.flatten(1)
        w = model[1].weight.detach()
        d = torch.randn(batch, w.shape[0]).to(device)

        def pair() -> None:
            a @ w.T
            d.T @ a

        p.info["first_layer_gemm_pair_ms"] = round(harness.median_ms(pair, 20, device=device), 3)
    return p
