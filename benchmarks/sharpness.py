"""Curvature engine vs the curvature libraries people use, at equal accuracy, in one run.

Models: the ``mlp-784-100-10`` preset (79,510 parameters) and ``cnn-small`` (two stride-2 5x5 convolutions and a
linear layer, 5,994 parameters), each trained for 300 SGD steps on 2,000 MNIST images and measured on one fixed
batch of those images (512; 128 with ``--quick``), in float32, eval mode, one thread. Cases per model:
``lambda-max`` (top eigenvalue, each side's best eigensolver), ``lambda-max, power iteration`` (the same algorithm
on every side: the products compared), ``top-5`` (five largest eigenvalues) and ``trace``.

The sides (every timed call includes its setup: building the operator, caching the primal pass or the gradient
graph):

- ``ours``: :class:`~icml17.core.curvature.HessianOperator` with its default products (for these
  ``nn.Sequential`` chains: layerwise, the primal forward/backward cached once per batch, a per-layer R-operator
  pass per ``H v``, a forward-only second-order pass per ``v^T H v``), with :func:`lanczos` (full
  reorthogonalisation), :func:`power_iteration` and :func:`hutchinson` (32 probes per block, through ``quadform``).
- ``double-backward``: the same estimators as ours, same seeds (same start vectors and probes), on a hand-written
  reverse-over-reverse product: the gradient graph built once with ``create_graph=True`` and differentiated again
  per product with ``retain_graph=True``. Same algorithm, other product: the product's share.
- ``pyhessian`` (PyPI ``pyhessian``): ``hessian(model, criterion, data=batch, cuda=False)`` builds the gradient
  graph once (``loss.backward(create_graph=True)``) and each product is a double-backward through it, i.e. the
  same product as ``double-backward``. Eigenvalues: its power iteration (``eigenvalues``, deflated for
  ``top_n=5``; it has no Lanczos). Trace: its Hutchinson, ``trace(maxIter=N, tol=-inf)`` (exactly N probes).
- ``hessian-eigenthings`` (PyPI ``hessian-eigenthings``, 1.0.0a5: PyPI has only the 1.0 alphas):
  ``HessianOperator(model, [batch], supervised_loss(CE))`` recomputes forward, gradient (``create_graph``) and
  double backward for every product (no graph reuse); ``lanczos(which="LA", reorthogonalize=True)``,
  ``power_iteration_one``, ``hutchinson``.
- ``curvlinops`` (PyPI ``curvlinops-for-pytorch``): ``HessianLinearOperator(model, CrossEntropyLoss(), params,
  [batch], check_deterministic=False)``, products by ``vmap``-ed ``jvp`` of ``jacrev`` (forward-over-reverse,
  recomputed per product). Eigenvalues: its documented route, ``scipy.sparse.linalg.eigsh(H.to_scipy(),
  which="LA", tol=...)`` (ARPACK, implicitly restarted Lanczos, default ``ncv`` = max(2k+1, 20), so at least 20
  products); it has no power iteration (that row is absent). Trace: ``hutchinson_trace(H, N)`` (all N probes in one
  vmapped product).

Peers are imported as installed (never copied). ``pip install -e '.[bench]'`` brings PyHessian and
hessian-eigenthings; curvlinops is not in the extra because its dependency backpack-for-pytorch requires
torchvision, for which pip replaces torch, so it is installed by hand with ``--no-deps`` (see ``PEERS``). A peer that
cannot be imported, or fails at run time with this torch, has no row: ``peers`` and each case's ``absent`` say why.

Exact references (``models.<name>.reference``). ``cnn-small``, full run: the dense float64 Hessian, built from
double-backward rows (independent of our products), its eigenvalues by ``eigvalsh`` and its trace; cached in
``runs/sharpness/bench-cnn-small/`` per (weights, batch), ~10 min once on one thread. The MLP (too big for dense):
eigenvalues by float64 Lanczos to residual <= 1e-10 |theta|, checked against scipy's ARPACK on float64
double-backward products; trace = the sum of the Hessian's diagonal, which for these ReLU networks equals the
Gauss-Newton diagonal (each parameter enters the output piecewise linearly, so d^2 f / d theta_i^2 = 0 almost
everywhere), computed exactly from per-example Jacobians in float64 and checked against e_i^T H e_i from float64
double-backward products on 16 random coordinates (and, in the full run, against the CNN's dense trace).
``--quick`` uses the Lanczos/diagonal reference for the CNN too (or a cached dense one).

Equal accuracy. Eigenvalue cases: relative error <= 1e-3 against the reference (``top-5``: the largest of the five
relative errors). Each side is calibrated before timing (untimed) to the least work that meets the bound at its
fixed seed, through the knob the library offers: where it can run a given number of steps (ours and
double-backward: ``lanczos`` / ``power_iteration`` with ``tol=0``; hessian-eigenthings: ``lanczos(max_iter)``,
``power_iteration_one(tol=0, max_iter)``; PyHessian: ``eigenvalues(top_n=1, tol=0, maxIter)``), the smallest step
count, by doubling then bisection (the top Ritz values and the Rayleigh quotient only improve with steps); where it
stops on a tolerance (curvlinops' ARPACK ``tol``; PyHessian's deflated ``top_n=5``, whose ``tol`` stops each
eigenvalue on its own), the loosest of 1e-1, 5e-2, 2e-2, 1e-2, ... Every side thus gets the same oracle stopping
point (without the exact value a user stops later, on every side); the achieved error, setting, product count and
the calibration trail are recorded beside each time. Our Lanczos and hessian-eigenthings' draw the same start vector
(``torch.randn(n)`` from a generator seeded 0), so at equal steps they give the same Ritz values and differ only in
cost. A side that cannot reach the bound (1,000 iterations, 300 Lanczos steps, or a calibration run over the
budget) is not timed against ours: it is listed under ``not_at_bound`` with the error it reached. Trace: the same
estimator with the same number of Rademacher probes on every side (100; 32 with ``--quick``), so the expected error
is the same; the achieved error, the standard error and the error in standard errors are recorded.
``double-backward`` uses exactly our probes: its estimate equals ours up to rounding (``agree``).

Devices: ``--device`` (default ``cpu``; ``cuda`` on a GPU) puts the model, the batch and every side's products
there (PyHessian with ``cuda=True``; hessian-eigenthings and curvlinops follow the model), the exact reference
included; the networks are trained on the CPU as before, so every device measures the same weights. Timings on a
GPU synchronise it before and after every timed call. ``benchmarks/gpu/sharpness.py`` runs this on a lent GPU.

Times: medians over repeats (5; 2 with ``--quick``), all sides interleaved with their order rotated per repeat,
``torch.set_num_threads(1)`` and one BLAS thread for numpy/scipy; the load average at start and end. ``speedup`` is
baseline ms / our ms; ``ms_per_hvp`` is time / products (setup and bookkeeping included). Per model,
``product_ms`` and ``setup_plus_one_product_ms`` time one product on each side; per Lanczos case,
``lanczos_bookkeeping_ms`` runs our lanczos and hessian-eigenthings' for the timed step counts on a diagonal
operator of the same size (the estimator's own cost, without the Hessian).

What bounds our speed on the MLP. Every exact Hessian-vector product of this MLP costs at least two (batch x 784 x
100) matrix products, the first layer's tangent ``V_1 x`` and its weight gradient ``delta'^T x`` (measured:
``first_layer_gemm_pair_ms``); the rest is small. Our layerwise product does those two and little else, and so does a
double-backward through a retained graph (PyHessian, ``double-backward``): the primal pass our cache saves is one
forward, which the retained graph keeps too. So per product we are level with PyHessian on the MLP
(``product_ms``), and about 2x cheaper than hessian-eigenthings (which recomputes forward and backward, about four
such matrix products) and curvlinops. At equal Lanczos steps, what is left is the estimator's bookkeeping: our
``lanczos`` restacks its whole basis column by column and reorthogonalises twice at every step, which at n = 79,510
costs about as much as a product at batch 512 and several times hessian-eigenthings' bookkeeping
(``lanczos_bookkeeping_ms``). Hence on the MLP: against PyHessian the speedup is the algorithm's (Lanczos' few
steps vs power iteration's many); against hessian-eigenthings about 1x at batch 512 (its 2x dearer products vs our
dearer bookkeeping) and at or below 1x at batch 128, where products are cheap and bookkeeping dominates (top-5,
with 16 steps, is where it shows most). On the CNN the
convolutions' primal work is a larger share of a product, the cached primal pass pays, and we lead every peer.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # numpy / scipy (ARPACK for curvlinops) on one thread, like torch

import argparse
import copy
import gc
import hashlib
import importlib
import importlib.metadata
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import nn
from torch.func import functional_call, jacrev, vmap

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from icml17.core import device as devices
from icml17.core.curvature import HessianOperator, hutchinson, lanczos, power_iteration
from icml17.core.results import environment, load_average, write_record
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.models import count_parameters
from icml17.sharpness.presets import build_model
from icml17.sharpness.train import TrainConfig, train_classifier

CE = nn.functional.cross_entropy
MODELS = ("mlp-784-100-10", "cnn-small")
CASES = ("lambda-max", "lambda-max, power iteration", "top-5", "trace")
CPU = torch.device("cpu")
BOUND = 1e-3  # relative error of every eigenvalue case
TOLS = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 1e-6, 1e-7, 1e-8)  # loosest first
PI_MAX_ITER = 1000  # power iteration, every side (PyHessian's default is 100)
LANCZOS_MAX_ITER = 300
DENSE_MAX_PARAMS = 10_000  # dense float64 reference up to this size (cnn-small: 5,994)
REF_K = 6  # reference eigenvalues (top-5 plus one)
# name -> (module, distribution on PyPI, how to install it)
PEERS = {"pyhessian": ("pyhessian", "PyHessian", "pip install -e '.[bench]'"),
         "hessian-eigenthings": ("hessian_eigenthings", "hessian-eigenthings", "pip install -e '.[bench]'"),
         "curvlinops": ("curvlinops", "curvlinops-for-pytorch",
                        ("not in the bench extra: its dependency backpack-for-pytorch requires torchvision, for which "
                         "pip replaces torch; install without dependencies: pip install --no-deps "
                         "curvlinops-for-pytorch backpack-for-pytorch unfoldNd einconv einops linear_operator "
                         "opt-einsum"))}
BASELINES = ("double-backward", *PEERS)

warnings.filterwarnings("ignore", message=".*create_graph=True.*")  # PyHessian's backward(create_graph=True)


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
            out.append(v[..., i:i + p.numel()].reshape(*lead, *p.shape))
            i += p.numel()
        return out

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        cols = []
        for j in range(vectors.shape[1]):
            hv = torch.autograd.grad(self.grads, self.params, self._split(vectors[:, j].to(self.dtype)),
                                     retain_graph=True)
            cols.append(torch.cat([h.reshape(-1) for h in hv]))
            self.n_hvp += 1
        return torch.stack(cols, dim=1)

    def rows(self, block: torch.Tensor) -> torch.Tensor:
        """(b, n) -> (b, n): the products of a block of vectors in one batched double-backward."""
        hv = torch.autograd.grad(self.grads, self.params, self._split(block, (block.shape[0],)), retain_graph=True,
                                 is_grads_batched=True)
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
        xc = x[start:start + chunk].double()
        with torch.no_grad():
            prob = torch.softmax(m64(xc), dim=-1)[:, :, None]  # (B, C, 1)
        J = jac(params, xc)
        for n, Jn in J.items():
            Jn = Jn.flatten(2)  # (B, C, P_n)
            diag[n] += ((prob * Jn ** 2).sum(1) - (prob * Jn).sum(1) ** 2).sum(0)
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
    H = torch.cat([db.rows(eye[i:i + 32]) for i in range(0, db.size, 32)])
    asym = float((H - H.T).norm() / H.norm())
    H = (H + H.T) / 2
    eig = torch.linalg.eigvalsh(H)
    out = {"eigenvalues_top": eig.flip(0)[:10].tolist(), "lambda_min": float(eig[0]), "trace": float(H.trace()),
           "relative_asymmetry": asym, "seconds": round(time.perf_counter() - t, 1)}
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
    ref["lanczos_float64"] = {"eigenvalues": r.eigenvalues, "n_hvp": op.n_hvp, "converged": r.converged,
                              "max_relative_residual": rel_res, "seconds": round(time.perf_counter() - t, 1)}
    t = time.perf_counter()
    db = DoubleBackward(p.model, p.x, p.y, dtype=torch.float64)
    A = LinearOperator((db.size, db.size), dtype=np.float64, matvec=lambda v: db.matmat(
        torch.from_numpy(np.asarray(v).reshape(-1, 1)).to(db.device))[:, 0].cpu().numpy())
    v0 = np.random.default_rng(7).standard_normal(db.size)
    arpack = sorted(eigsh(A, k=REF_K, which="LA", tol=1e-12, v0=v0, return_eigenvectors=False), reverse=True)
    ref["check_arpack_double_backward_float64"] = {
        "eigenvalues": [float(v) for v in arpack], "n_hvp": db.n_hvp, "seconds": round(time.perf_counter() - t, 1),
        "max_relative_difference_to_lanczos": max(abs(a - b) / abs(b) for a, b in zip(arpack, r.eigenvalues))}
    # exact trace: the Hessian diagonal (= Gauss-Newton diagonal here), checked on random coordinates
    t = time.perf_counter()
    diag = ggn_diagonal(p.model, p.x, p.y)
    coords = torch.randperm(db.size, generator=torch.Generator().manual_seed(5))[:16].to(db.device)
    E = torch.zeros(db.size, len(coords), dtype=torch.float64, device=db.device)
    E[coords, torch.arange(len(coords), device=db.device)] = 1.0
    h_ii = db.matmat(E)[coords, torch.arange(len(coords), device=db.device)]
    ref["trace_from_diagonal"] = {
        "trace": float(diag.sum()), "seconds": round(time.perf_counter() - t, 1),
        "check_16_coordinates_max_abs_difference_over_mean_abs_diagonal":
            float((h_ii - diag[coords]).abs().max() / diag.abs().mean())}
    if dense:
        d = dense_reference(p, cache)
        ref["dense_float64"] = d
        ref["eigenvalues"], ref["trace"] = d["eigenvalues_top"][:REF_K], d["trace"]
        ref["method"] = "dense float64 Hessian (double-backward rows), eigvalsh and trace"
        ref["check_lanczos_vs_dense_max_relative_difference"] = max(
            abs(a - b) / abs(b) for a, b in zip(r.eigenvalues, ref["eigenvalues"]))
        ref["check_diagonal_trace_vs_dense_relative_difference"] = abs(diag.sum().item() - d["trace"]) / abs(d["trace"])
    else:
        ref["eigenvalues"], ref["trace"] = r.eigenvalues, float(diag.sum())
        ref["method"] = ("float64 Lanczos (residual <= 1e-10 |theta|) for eigenvalues; trace = sum of the exact "
                         "Hessian diagonal (Gauss-Newton diagonal from per-example Jacobians, float64)")
    p.reference = ref


# ---------------------------------------------------------------------------------------------------------------
# the sides

@dataclass
class Out:
    value: Any  # eigenvalues (descending list) or the trace estimate
    n_hvp: int
    stderr: float | None = None


@dataclass
class Method:
    name: str
    describe: str
    run: Callable[[Any], Out]
    knobs: Sequence[Any] = ()  # loosest first
    steps: tuple[int, int] | None = None  # an integer knob (Lanczos steps): (smallest, largest)
    fixed: Any = None  # no knob: this setting
    knob: str = "tol"


class _Counting:
    """Counts the calls of a function (PyHessian's product, which it does not count itself)."""

    def __init__(self, fn: Callable):
        self.fn, self.n = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.n += 1
        return self.fn(*args, **kwargs)


def load_peers() -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    mods, versions, absent = {}, {}, {}
    for name, (module, dist, how) in PEERS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mods[name] = importlib.import_module(module)
                versions[name] = importlib.metadata.version(dist)
        except Exception as e:  # noqa: BLE001  (not installed, or broken with this torch: no row, the reason)
            absent[name] = f"{dist} not importable with torch {torch.__version__} ({type(e).__name__}: {e}); {how}"
    if "pyhessian" in mods:
        mod = importlib.import_module("pyhessian.hessian")
        mod.hessian_vector_product = _Counting(mod.hessian_vector_product)
        mods["pyhessian"] = mod
    if "curvlinops" in mods:
        mods["curvlinops"] = importlib.import_module("curvlinops")
    return mods, versions, absent


def ours_eig(p: Problem, k: int) -> Method:
    def run(steps: int) -> Out:
        op = HessianOperator(p.model, CE, (p.x, p.y))
        r = lanczos(op, k, tol=0.0, max_iter=steps, seed=0)  # tol=0: exactly `steps` steps
        return Out(r.eigenvalues, op.n_hvp)
    return Method("ours", "lanczos (full reorthogonalisation) for a fixed number of steps, layerwise products "
                          "(primal cached once)", run, steps=(k, LANCZOS_MAX_ITER), knob="steps")


def db_eig(p: Problem, k: int) -> Method:
    def run(steps: int) -> Out:
        op = DoubleBackward(p.model, p.x, p.y)
        r = lanczos(op, k, tol=0.0, max_iter=steps, seed=0)
        return Out(r.eigenvalues, op.n_hvp)
    return Method("double-backward", "our lanczos (same start vector, fixed steps) on double-backward products, "
                                     "gradient graph built once", run, steps=(k, LANCZOS_MAX_ITER), knob="steps")


def ours_power(p: Problem) -> Method:
    def run(steps: int) -> Out:
        op = HessianOperator(p.model, CE, (p.x, p.y))
        r = power_iteration(op, tol=0.0, max_iter=steps, seed=0)  # tol=0: `steps` iterations
        return Out(r.eigenvalues, op.n_hvp)
    return Method("ours", "power_iteration for a fixed number of iterations, layerwise products", run,
                  steps=(2, PI_MAX_ITER), knob="iterations")


def db_power(p: Problem) -> Method:
    def run(steps: int) -> Out:
        op = DoubleBackward(p.model, p.x, p.y)
        r = power_iteration(op, tol=0.0, max_iter=steps, seed=0)
        return Out(r.eigenvalues, op.n_hvp)
    return Method("double-backward", "our power_iteration (same start, fixed iterations) on double-backward "
                                     "products", run, steps=(2, PI_MAX_ITER), knob="iterations")


def _pyhessian(p: Problem, mod: Any) -> Any:
    for q in p.pyhessian_model.parameters():
        q.grad = None  # PyHessian's backward accumulates into .grad: start clean every time
    return mod.hessian(p.pyhessian_model, nn.CrossEntropyLoss(), data=(p.x, p.y), cuda=p.device.type == "cuda")


def _pyhessian_done(p: Problem) -> None:
    for q in p.pyhessian_model.parameters():
        q.grad = None  # drop the graph PyHessian left in .grad


def pyhessian_eig(p: Problem, mod: Any, k: int) -> Method:
    def run(knob: float) -> Out:
        torch.manual_seed(0)  # PyHessian draws its start vectors from the global generator
        mod.hessian_vector_product.n = 0
        h = _pyhessian(p, mod)
        if k == 1:  # tol=0: exactly maxIter iterations
            values, _ = h.eigenvalues(maxIter=knob, tol=0.0, top_n=1)
        else:  # deflated: its relative-change tol stops each eigenvalue on its own
            values, _ = h.eigenvalues(maxIter=PI_MAX_ITER, tol=knob, top_n=k)
        _pyhessian_done(p)
        return Out(sorted(values, reverse=True), mod.hessian_vector_product.n)
    common = "double-backward products through a gradient graph built once"
    if k == 1:
        return Method("pyhessian", f"hessian(...).eigenvalues(top_n=1, tol=0, maxIter): power iteration for a fixed "
                                   f"number of iterations; {common}", run, steps=(2, PI_MAX_ITER), knob="maxIter")
    return Method("pyhessian", f"hessian(...).eigenvalues(top_n={k}, maxIter={PI_MAX_ITER}, tol): deflated power "
                               f"iteration, each eigenvalue stopped on its relative-change tol; {common}", run, TOLS)


def he_eig(p: Problem, mod: Any, k: int) -> Method:
    def run(steps: int) -> Out:
        op = mod.HessianOperator(p.model, [(p.x, p.y)], mod.supervised_loss(CE))
        r = mod.lanczos(op, k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
        return Out(sorted(r.eigenvalues.tolist(), reverse=True), r.iterations)
    return Method("hessian-eigenthings", "lanczos(which='LA', reorthogonalize=True) for max_iter steps; each product "
                                         "recomputes forward, gradient and double backward",
                  run, steps=(k, LANCZOS_MAX_ITER), knob="max_iter")


def he_power(p: Problem, mod: Any) -> Method:
    def run(steps: int) -> Out:
        op = mod.HessianOperator(p.model, [(p.x, p.y)], mod.supervised_loss(CE))
        lam, _, _, iters, _ = mod.power_iteration_one(op, max_iter=steps, tol=0.0, seed=0)  # tol=0: max_iter
        return Out([lam], iters)
    return Method("hessian-eigenthings", "power_iteration_one(tol=0, max_iter) for a fixed number of iterations; "
                                         "products recompute forward and backward", run, steps=(2, PI_MAX_ITER),
                  knob="max_iter")


def _curvlinops_op(p: Problem, mod: Any) -> Any:
    return mod.HessianLinearOperator(p.model, nn.CrossEntropyLoss(), p.params, [(p.x, p.y)],
                                     check_deterministic=False, num_data=len(p.y))


def curvlinops_eig(p: Problem, mod: Any, k: int) -> Method:
    v0 = np.random.default_rng(0).standard_normal(p.size)

    def run(tol: float) -> Out:
        A = _curvlinops_op(p, mod).to_scipy()
        count = [0]

        def matvec(v: np.ndarray) -> np.ndarray:
            count[0] += 1
            return A.matvec(v)

        values = eigsh(LinearOperator(A.shape, matvec=matvec, dtype=A.dtype), k=k, which="LA", tol=tol, v0=v0)[0]
        return Out(sorted(values.tolist(), reverse=True), count[0])
    return Method("curvlinops", "scipy eigsh(H.to_scipy(), which='LA', tol) (ARPACK restarted Lanczos, default "
                                "ncv); products: vmapped jvp of jacrev", run, TOLS)


def trace_methods(p: Problem, mods: dict[str, Any], probes: int) -> list[Method]:
    def ours(_: Any) -> Out:
        op = HessianOperator(p.model, CE, (p.x, p.y))
        r = hutchinson(op, probes, block=32, seed=1)
        return Out(r.estimate, op.n_hvp, r.stderr)

    def db(_: Any) -> Out:
        r = hutchinson(DoubleBackward(p.model, p.x, p.y), probes, block=32, seed=1)
        return Out(r.estimate, probes, r.stderr)

    out = [Method("ours", f"Hutchinson, {probes} Rademacher probes, v^T H v by the forward-only second-order "
                          "pass (HessianOperator.quadform), 32 per block", ours, fixed=probes, knob="probes"),
           Method("double-backward", f"our Hutchinson with the same {probes} probes, v . (H v) by double-backward",
                  db, fixed=probes, knob="probes")]
    if "pyhessian" in mods:
        mod = mods["pyhessian"]

        def pyh(_: Any) -> Out:
            torch.manual_seed(1)
            s = _pyhessian(p, mod).trace(maxIter=probes, tol=-math.inf)  # tol=-inf: exactly maxIter probes
            _pyhessian_done(p)
            return Out(float(np.mean(s)), len(s), float(np.std(s, ddof=1) / math.sqrt(len(s))))
        out.append(Method("pyhessian", f"hessian(...).trace(maxIter={probes}, tol=-inf): Hutchinson, "
                                       f"{probes} Rademacher probes, double-backward", pyh, fixed=probes,
                          knob="probes"))
    if "hessian-eigenthings" in mods:
        mod_he = mods["hessian-eigenthings"]

        def he(_: Any) -> Out:
            op = mod_he.HessianOperator(p.model, [(p.x, p.y)], mod_he.supervised_loss(CE))
            r = mod_he.hutchinson(op, num_samples=probes, seed=1)
            return Out(r.estimate, probes, r.stderr)
        out.append(Method("hessian-eigenthings", f"hutchinson(num_samples={probes}), Rademacher", he, fixed=probes,
                          knob="probes"))
    if "curvlinops" in mods:
        mod_cl = mods["curvlinops"]

        def cl(_: Any) -> Out:
            torch.manual_seed(1)
            est = mod_cl.hutchinson_trace(_curvlinops_op(p, mod_cl), probes)
            return Out(float(est), probes)
        out.append(Method("curvlinops", f"hutchinson_trace(H, {probes}), Rademacher, one vmapped product", cl,
                          fixed=probes, knob="probes"))
    return out


def eig_methods(p: Problem, mods: dict[str, Any], label: str, k: int) -> list[Method]:
    if label.endswith("power iteration"):
        out = [ours_power(p), db_power(p)]
        if "pyhessian" in mods:
            out.append(pyhessian_eig(p, mods["pyhessian"], 1))
        if "hessian-eigenthings" in mods:
            out.append(he_power(p, mods["hessian-eigenthings"]))
        return out
    out = [ours_eig(p, k), db_eig(p, k)]
    if "pyhessian" in mods:
        out.append(pyhessian_eig(p, mods["pyhessian"], k))
    if "hessian-eigenthings" in mods:
        out.append(he_eig(p, mods["hessian-eigenthings"], k))
    if "curvlinops" in mods:
        out.append(curvlinops_eig(p, mods["curvlinops"], k))
    return out


# ---------------------------------------------------------------------------------------------------------------
# calibration, timing, one case

def eig_error(ref: Sequence[float], k: int) -> Callable[[Out], float]:
    def err(out: Out) -> float:
        vals = list(out.value)
        if len(vals) < k:
            return math.inf
        return max(abs(v - r) / abs(r) for v, r in zip(vals[:k], ref[:k]))
    return err


def calibrate(m: Method, error: Callable[[Out], float], budget_s: float) -> tuple[Any, bool, list]:
    """The loosest setting of ``m``'s knob that meets BOUND (untimed), or the best one tried."""
    tried: list[list[Any]] = []

    def trial(knob: Any) -> tuple[bool, float]:
        t = time.perf_counter()
        out = m.run(knob)
        dt = time.perf_counter() - t
        e = error(out)
        tried.append([knob, e, out.n_hvp])
        return e <= BOUND, dt

    if m.steps is not None:  # step counts: the top Ritz values / Rayleigh quotients improve with steps: bisect
        lo, s = m.steps[0] - 1, m.steps[0]
        while True:
            ok, dt = trial(s)
            if ok:
                break
            lo = s
            if s >= m.steps[1] or dt > budget_s:
                return min(tried, key=lambda t: t[1])[0], False, tried
            s = min(2 * s, m.steps[1])
        hi = s
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, _ = trial(mid)
            lo, hi = (lo, mid) if ok else (mid, hi)
        return hi, True, tried
    for knob in m.knobs:
        ok, dt = trial(knob)
        if ok:
            return knob, True, tried
        if dt > budget_s:
            break
    return min(tried, key=lambda t: t[1])[0], False, tried


def run_case(label: str, methods: list[Method], error: Callable[[Out], float] | None, repeats: int, budget_s: float,
             absent: dict[str, str], extra: dict[str, Any], device: torch.device = CPU,
             ) -> tuple[dict[str, Any], dict[str, Out]]:
    absent = dict(absent)
    t_case = time.perf_counter()
    chosen: list[tuple[Method, Any]] = []
    met: dict[str, bool] = {}
    calibration: dict[str, list] = {}
    for m in methods:
        try:
            if m.fixed is not None:
                m.run(m.fixed)  # warm-up
                chosen.append((m, m.fixed))
                continue
            setting, ok, tried = calibrate(m, error, budget_s)
        except Exception as e:  # a peer that fails with this torch / model: no row, with the reason
            if m.name == "ours":
                raise
            absent[m.name] = f"failed: {type(e).__name__}: {e}"
            continue
        chosen.append((m, setting))
        met[m.name] = ok
        calibration[m.name] = [[k, float(f"{e:.3g}"), n] for k, e, n in tried]
    calibration_s = time.perf_counter() - t_case
    times: dict[str, list[float]] = {m.name: [] for m, _ in chosen}
    outs: dict[str, Out] = {}
    for r in range(repeats):
        shift = r % len(chosen)
        for m, setting in chosen[shift:] + chosen[:shift]:  # interleaved, order rotated per repeat
            gc.collect()
            outs[m.name], ms_taken = _timed_ms(lambda m=m, setting=setting: m.run(setting), device)
            times[m.name].append(ms_taken)
    ms = {name: statistics.median(ts) for name, ts in times.items()}
    errors = {name: error(o) if error is not None else None for name, o in outs.items()}
    case: dict[str, Any] = {"case": label, "ours_ms": round(ms["ours"], 2), "baselines_ms": {}, "speedup": {}}
    not_at_bound: dict[str, Any] = {}
    for m, setting in chosen:
        if m.name == "ours":
            continue
        if met.get(m.name, True):
            case["baselines_ms"][m.name] = round(ms[m.name], 2)
            case["speedup"][m.name] = round(ms[m.name] / ms["ours"], 2)
        else:
            not_at_bound[m.name] = {"ms": round(ms[m.name], 2), "relative_error": errors[m.name],
                                    "setting": f"{m.knob}={setting}"}
    case.update(extra)
    case["relative_error"] = {name: e for name, e in errors.items()}
    case["setting"] = {m.name: f"{m.knob}={s}" for m, s in chosen}
    case["n_hvp"] = {name: o.n_hvp for name, o in outs.items()}
    case["ms_per_hvp"] = {name: round(ms[name] / max(o.n_hvp, 1), 3) for name, o in outs.items()}
    case["times_ms"] = {name: [round(t, 2) for t in ts] for name, ts in times.items()}
    if not met.get("ours", True):
        case["ours_not_at_bound"] = True
    if not_at_bound:
        case["not_at_bound"] = not_at_bound
    if calibration:
        case["calibration (setting, relative error, n_hvp)"] = calibration
    case["method"] = {m.name: m.describe for m, _ in chosen}
    if absent:
        case["absent"] = absent
    case["wall_s"] = {"calibration": round(calibration_s, 1), "total": round(time.perf_counter() - t_case, 1)}
    return case, outs


# ---------------------------------------------------------------------------------------------------------------
# where the time goes: one product on each side, and the estimators' own bookkeeping

def _timed_ms(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall time in ms, the device synchronised before and after (queued work counted)."""
    devices.synchronize(device)
    t = time.perf_counter()
    out = fn()
    devices.synchronize(device)
    return out, (time.perf_counter() - t) * 1e3


def _median_ms(fn: Callable[[], Any], n: int, device: torch.device = CPU) -> float:
    fn()
    return round(statistics.median(_timed_ms(fn, device)[1] for _ in range(n)), 3)


def product_costs(p: Problem, mods: dict[str, Any], n: int) -> dict[str, Any]:
    """Per side: one Hessian-vector product after setup, and setup plus one product (float32, medians)."""
    v = torch.randn(p.size, generator=torch.Generator().manual_seed(3)).to(p.device)
    V32 = (torch.randint(0, 2, (p.size, 32), generator=torch.Generator().manual_seed(4)) * 2 - 1).float().to(p.device)
    ours = HessianOperator(p.model, CE, (p.x, p.y))
    db = DoubleBackward(p.model, p.x, p.y)
    prod = {"ours": lambda: ours.matmat(v[:, None]), "double-backward": lambda: db.matmat(v[:, None])}
    setup = {"ours": lambda: HessianOperator(p.model, CE, (p.x, p.y)).matmat(v[:, None]),
             "double-backward": lambda: DoubleBackward(p.model, p.x, p.y).matmat(v[:, None])}
    if "pyhessian" in mods:
        mod = mods["pyhessian"]
        h = _pyhessian(p, mod)
        vl = db._split(v)
        prod["pyhessian"] = lambda: mod.hessian_vector_product(h.gradsH, h.params, vl)

        def pyh_setup() -> None:
            h2 = _pyhessian(p, mod)
            mod.hessian_vector_product(h2.gradsH, h2.params, vl)
        setup["pyhessian"] = pyh_setup
    if "hessian-eigenthings" in mods:
        he = mods["hessian-eigenthings"]
        heop = he.HessianOperator(p.model, [(p.x, p.y)], he.supervised_loss(CE))
        prod["hessian-eigenthings"] = lambda: heop.matvec(v)
        setup["hessian-eigenthings"] = lambda: he.HessianOperator(p.model, [(p.x, p.y)],
                                                                  he.supervised_loss(CE)).matvec(v)
    if "curvlinops" in mods:
        H = _curvlinops_op(p, mods["curvlinops"])
        prod["curvlinops"] = lambda: H @ v
        setup["curvlinops"] = lambda: _curvlinops_op(p, mods["curvlinops"]) @ v
    d = p.device
    out = {"product_ms": {k: _median_ms(f, n, d) for k, f in prod.items()},
           "setup_plus_one_product_ms": {k: _median_ms(f, max(3, n // 4), d) for k, f in setup.items()},
           "ours_block_of_32_per_vector_ms": {
               "H v (matmat)": round(_median_ms(lambda: ours.matmat(V32), 3, d) / 32, 3),
               "v^T H v (quadform)": round(_median_ms(lambda: ours.quadform(V32), 3, d) / 32, 3)}}
    if "pyhessian" in mods:
        _pyhessian_done(p)
    return out


class _Diagonal:
    """A diagonal operator of a model's size: runs an estimator's bookkeeping with (almost) free products."""

    def __init__(self, size: int, device: torch.device = CPU):
        self.size, self.dtype, self.device = size, torch.float32, torch.device(device)
        self.d = torch.linspace(1.0, 2.0, size, device=self.device)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.d[:, None] * vectors


def lanczos_bookkeeping(size: int, k: int, steps: dict[str, str], mods: dict[str, Any],
                        device: torch.device = CPU) -> dict[str, float]:
    """Our lanczos and hessian-eigenthings' for the step counts timed, on a diagonal operator of the same size:
    the estimators' own cost (orthogonalisation, Ritz values), without the Hessian's products."""
    diag = _Diagonal(size, device)
    out = {}
    if "ours" in steps:
        m = int(steps["ours"].split("=")[1])
        out["ours"] = _median_ms(lambda: lanczos(diag, k, tol=0.0, max_iter=m, seed=0), 5, device)
    if "hessian-eigenthings" in steps and "hessian-eigenthings" in mods:
        he = mods["hessian-eigenthings"]
        m = int(steps["hessian-eigenthings"].split("=")[1])
        op = he.LambdaOperator(lambda u: diag.d * u, size=size, device=device)
        out["hessian-eigenthings"] = _median_ms(
            lambda: he.lanczos(op, k=k, max_iter=m, which="LA", seed=0, reorthogonalize=True), 5, device)
    return out


# ---------------------------------------------------------------------------------------------------------------

def prepare(name: str, x: torch.Tensor, y: torch.Tensor, batch: int,
            device: torch.device = CPU) -> Problem:
    """The preset trained on the CPU (cached under runs/: the same weights for every device), then put with its
    measured batch on ``device``."""
    model = build_model(name, 0)
    train_classifier(model, x, y, TrainConfig(name, 300, 64, lr=0.1), ROOT / "runs" / "sharpness" / f"bench-{name}",
                     device="cpu")
    model.to(device).eval()
    for q in model.parameters():
        q.grad = None
    p = Problem(name, model, x[:batch].contiguous().to(device), y[:batch].contiguous().to(device), device=device)
    p.pyhessian_model = copy.deepcopy(model)
    p.info = {"parameters": p.size, "training": "300 SGD steps (batch 64, lr 0.1) on 2,000 MNIST training images",
              "measured_on": f"the first {batch} of those images, float32, eval mode, {device}"}
    if isinstance(model[1], nn.Linear):  # the MLP: the floor of one product (see the docstring)
        a = p.x.flatten(1)
        w = model[1].weight.detach()
        d = torch.randn(batch, w.shape[0]).to(device)

        def pair() -> None:
            a @ w.T
            d.T @ a
        p.info["first_layer_gemm_pair_ms"] = _median_ms(pair, 20, device)
    return p


def run_benchmark(models: Sequence[str], x: torch.Tensor, y: torch.Tensor, *, batch: int, probes: int, repeats: int,
                  budget_s: float, dense: bool | None, threads: int, reference_threads: int | None = None,
                  device: torch.device = CPU, cases: Sequence[str] = CASES,
                  product_repeats: int = 50) -> dict[str, Any]:
    """Every case of ``cases`` on every model of ``models``, all sides on ``device``: the record's ``models`` and
    ``cases`` (see the module docstring). ``dense`` None: the dense reference where a cached one exists."""
    mods, versions, absent = load_peers()
    peers = {name: ({"version": versions[name]} if name in versions else {"absent": absent[name]}) for name in PEERS}
    out_cases, out_models = [], {}
    for name in models:
        torch.set_num_threads(threads)
        p = prepare(name, x, y, batch, device)
        torch.set_num_threads(reference_threads or threads)
        t = time.perf_counter()
        cache = ROOT / "runs" / "sharpness" / f"bench-{name}"
        use_dense = p.size <= DENSE_MAX_PARAMS and (dense or (dense is None and dense_cache(p, cache).exists()))
        compute_reference(p, use_dense, cache)
        torch.set_num_threads(threads)
        p.info["reference"] = {**p.reference, "seconds_total": round(time.perf_counter() - t, 1)}
        p.info.update(product_costs(p, mods, product_repeats))
        out_models[name] = p.info
        ref = p.reference
        print(f"{name}: {p.size} parameters on {device}; reference ({ref['method'].split(';')[0]}): "
              f"top-5 {[round(v, 4) for v in ref['eigenvalues'][:5]]}, trace {ref['trace']:.4f}", flush=True)
        print(f"  reference {p.info['reference']['seconds_total']:.0f} s; one product (ms): {p.info['product_ms']}; "
              f"setup + one product (ms): "
              f"{p.info['setup_plus_one_product_ms']}", flush=True)

        acc = (f"relative error <= {BOUND:g} against the reference; each side calibrated (untimed) to the least "
               "work that meets it (smallest step count, or loosest tolerance)")
        for label, k in (("lambda-max", 1), ("lambda-max, power iteration", 1), ("top-5", 5)):
            if label not in cases:
                continue
            case_absent = dict(absent)
            if label.endswith("power iteration") and "curvlinops" in mods:
                case_absent["curvlinops"] = "no power iteration in curvlinops (its eigenvalue route is scipy eigsh)"
            extra = {"model": name, "accuracy": acc, "reference_eigenvalues": ref["eigenvalues"][:k]}
            case, _ = run_case(f"{name}: {label}", eig_methods(p, mods, label, k), eig_error(ref["eigenvalues"], k),
                               repeats, budget_s, case_absent, extra, device)
            if label != "lambda-max, power iteration":
                case["lanczos_bookkeeping_ms (same steps, diagonal operator)"] = lanczos_bookkeeping(
                    p.size, k, case["setting"], mods, device)
            out_cases.append(case)
            print_case(case)
        if "trace" not in cases:
            continue
        tr_methods = trace_methods(p, mods, probes)
        extra = {"model": name, "accuracy": f"{probes} Rademacher probes on every side (same estimator, same "
                                            f"expected error); achieved errors and standard errors recorded",
                 "reference_trace": ref["trace"]}
        case, outs = run_case(f"{name}: trace", tr_methods, lambda o, t=ref["trace"]: abs(o.value - t) / abs(t),
                              repeats, budget_s, absent, extra, device)
        case["estimates"] = {n: {"estimate": o.value, "stderr": o.stderr} for n, o in outs.items()}
        case["error_in_standard_errors"] = {n: abs(o.value - ref["trace"]) / o.stderr for n, o in outs.items()
                                            if o.stderr}
        ours_est = case["estimates"]["ours"]["estimate"]
        if "double-backward" in case["estimates"]:
            case["agree"] = abs(case["estimates"]["double-backward"]["estimate"] - ours_est) / abs(ours_est) < 1e-4
        out_cases.append(case)
        print_case(out_cases[-1])
    return {"peers": peers, "models": out_models, "cases": out_cases}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="batch 128, 32 probes, 2 repeats, Lanczos/diagonal reference (a minute or two)")
    ap.add_argument("--batch", type=int, default=None, help="images in the measured batch (default 512, quick 128)")
    ap.add_argument("--dense", action=argparse.BooleanOptionalAction, default=None,
                    help="dense float64 reference for models up to 10k parameters (default: on, off with --quick)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps: every side runs there")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference-threads", type=int, default=None,
                    help="threads for the untimed reference (default: --threads; more only on a quiet machine)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "sharpness.json")
    args = ap.parse_args()
    device = devices.resolve(args.device)
    batch = args.batch or (128 if args.quick else 512)
    probes, repeats, budget_s = (32, 2, 20.0) if args.quick else (100, 5, 120.0)
    dense = (not args.quick) if args.dense is None else args.dense
    if args.quick and args.dense is None:
        dense = None  # a cached dense reference is used, none is computed
    env_start = environment(device)
    t_start = time.perf_counter()
    x, y = mnist_subset(args.data_dir, "train", 2000, 0)
    result = run_benchmark(args.models, x, y, batch=batch, probes=probes, repeats=repeats, budget_s=budget_s,
                           dense=dense, threads=args.threads, reference_threads=args.reference_threads, device=device,
                           cases=args.cases, product_repeats=20 if args.quick else 50)
    record = {"benchmark": "sharpness", "command": "python benchmarks/sharpness.py " + " ".join(sys.argv[1:]),
              "threads": args.threads, "batch": batch, "repeats": repeats, "trace_probes": probes,
              "accuracy_bound": BOUND, "peers": result["peers"], "models": result["models"],
              "load_average_at_start": env_start["load_average"], "load_average_at_end": load_average(),
              "wall_time_s": round(time.perf_counter() - t_start, 1), "cases": result["cases"]}
    write_record(args.out, record, device=device)
    print(f"load average at start {env_start['load_average']}, at end {load_average()}; "
          f"{record['wall_time_s']:.0f} s; wrote {args.out}")
    return 0


def print_case(c: dict[str, Any]) -> None:
    print(f"  {c['case']}  (ours {c['ours_ms']:.1f} ms, rel. error {c['relative_error']['ours']:.1e}, "
          f"{c['n_hvp']['ours']} products, {c['setting']['ours']}; {c['wall_s']['total']:.0f} s)")
    for name in BASELINES:
        if name in c["baselines_ms"]:
            print(f"    {name:20s} {c['baselines_ms'][name]:10.1f} ms  speedup {c['speedup'][name]:6.2f}x  "
                  f"rel. error {c['relative_error'][name]:.1e}  {c['n_hvp'][name]:4d} products  {c['setting'][name]}")
        elif name in c.get("not_at_bound", {}):
            nb = c["not_at_bound"][name]
            print(f"    {name:20s} not at the bound: rel. error {nb['relative_error']:.1e} at {nb['setting']} "
                  f"({nb['ms']:.1f} ms)")
        elif name in c.get("absent", {}):
            print(f"    {name:20s} absent: {c['absent'][name][:100]}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
