"""The sides of the sharpness benchmark (``benchmarks/sharpness.py``): ours, a hand-written double-backward, and the
curvature libraries people use, each behind one small adapter.

A side is a list of :class:`Knob` s: each is one way its library lets a user set an eigensolver's work (a step
count, a tolerance, ARPACK's ``ncv`` and ``tol``), with the settings to try. The benchmark calibrates every knob
of a side to the least work that meets the accuracy bound and times the side at the fastest of them, so each
library runs at its own best settings. Every adapter builds what a user would build per call (the operator, the
cached primal pass or the gradient graph), so the timed call includes its setup.

Peers are imported as installed, never copied: ``pip install -e '.[bench]'`` brings PyHessian and
hessian-eigenthings; curvlinops is installed by hand (see :data:`PEERS`). A peer that cannot be imported has no
row, and the record says why.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import harness
import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from sharpness_refs import CE, CPU, DoubleBackward, Problem
from torch import nn

from icml17.core.curvature import HessianOperator, hutchinson, lanczos, power_iteration

# name -> (module, distribution on PyPI, how to install it)
PEERS = {
    "pyhessian": ("pyhessian", "PyHessian", "pip install -e '.[bench]'"),
    "hessian-eigenthings": ("hessian_eigenthings", "hessian-eigenthings", "pip install -e '.[bench]'"),
    "curvlinops": (
        "curvlinops",
        "curvlinops-for-pytorch",
        (
            "not in the bench extra: its dependency backpack-for-pytorch requires torchvision, for which "
            "pip replaces torch; install without dependencies: pip install --no-deps "
            "curvlinops-for-pytorch backpack-for-pytorch unfoldNd einconv einops linear_operator "
            "opt-einsum"
        ),
    ),
}
BASELINES = ("double-backward", *PEERS)
TOLS = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 1e-6, 1e-7, 1e-8)  # loosest first
PI_MAX_ITER = 1000  # power iteration, every side (PyHessian's default is 100)
LANCZOS_MAX_ITER = 300
ARPACK_RESTARTS = 300  # eigsh's maxiter: a setting that has not converged by then is not at the bound
# ARPACK's subspace sizes tried (ncv > k), its default max(2k + 1, 20) first: the products it needs bound the
# trials of the smaller ones, which ARPACK may restart many times
NCV = {1: (20, 16, 12, 10, 8, 6, 5, 4, 3, 2), 5: (20, 16, 14, 12, 10, 9, 8, 7, 6)}

warnings.filterwarnings("ignore", message=".*create_graph=True.*")  # PyHessian's backward(create_graph=True)


@dataclass
class Out:
    value: Any  # eigenvalues (descending list) or the trace estimate
    n_hvp: int
    stderr: float | None = None


@dataclass
class Knob:
    """One way to set a side's work, and the settings to try.

    Exactly one of ``steps`` (an integer count, bisected between its bounds), ``values`` (settings tried in order,
    loosest first) or ``fixed`` (no calibration: that setting) is set.
    """

    label: str  # e.g. "lanczos steps", "eigsh ncv=8, tol"
    run: Callable[[Any], Out]
    describe: str
    steps: tuple[int, int] | None = None
    values: Sequence[Any] = ()
    fixed: Any = None


@dataclass
class Side:
    name: str
    knobs: list[Knob]


class ProductLimit(Exception):
    """A calibration trial ran past the products another setting of its side already met the bound with."""


_LIMIT = [math.inf]


@contextmanager
def product_limit(n: float) -> Iterator[None]:
    """Within the block, a side whose products a peer library counts for us (PyHessian's, ARPACK's) raises
    :class:`ProductLimit` past ``n`` products: a tolerance that is not met only after thousands of products is
    abandoned at the first product that could no longer win. Step-count knobs bound their products themselves."""
    _LIMIT[0] = n
    try:
        yield
    finally:
        _LIMIT[0] = math.inf


def _counted(n: int) -> int:
    if n > _LIMIT[0]:
        raise ProductLimit(f"more than {_LIMIT[0]:g} products")
    return n


class _Counting:
    """Counts the calls of a function (PyHessian's product, which it does not count itself)."""

    def __init__(self, fn: Callable):
        self.fn, self.n = fn, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.n = _counted(self.n + 1)
        return self.fn(*args, **kwargs)


def load_peers() -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(modules, versions, reasons for the absent ones), by the names of :data:`PEERS`."""
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
        if not isinstance(mod.hessian_vector_product, _Counting):
            mod.hessian_vector_product = _Counting(mod.hessian_vector_product)
        mods["pyhessian"] = mod
    return mods, versions, absent


# ----------------------------------------------------------------------------------- ours and double-backward
# the same estimators (our lanczos / power_iteration / hutchinson, same seeds) on two products: the difference
# between these two sides is the product's


def _our_knobs(name: str, make: Callable[[], Any], k: int, power: bool, lanczos_too: bool, product: str) -> Side:
    knobs = []
    if lanczos_too:

        def run_lanczos(steps: int) -> Out:
            op = make()
            r = lanczos(op, k, tol=0.0, max_iter=steps, seed=0)  # tol=0: exactly `steps` steps
            return Out(r.eigenvalues, op.n_hvp)

        knobs.append(
            Knob(
                "lanczos steps",
                run_lanczos,
                f"lanczos (full reorthogonalisation), a fixed number of steps; {product}",
                steps=(k, LANCZOS_MAX_ITER),
            )
        )
    if power:

        def run_power(steps: int) -> Out:
            op = make()
            r = power_iteration(op, tol=0.0, max_iter=steps, seed=0)  # tol=0: exactly `steps` iterations
            return Out(r.eigenvalues, op.n_hvp)

        knobs.append(
            Knob(
                "power iterations",
                run_power,
                f"power_iteration, a fixed number of iterations; {product}",
                steps=(2, PI_MAX_ITER),
            )
        )
    return Side(name, knobs)


def ours(p: Problem, k: int, *, power: bool, lanczos_too: bool = True) -> Side:
    return _our_knobs(
        "ours",
        lambda: HessianOperator(p.model, CE, (p.x, p.y)),
        k,
        power,
        lanczos_too,
        "HessianOperator's default products (layerwise, primal cached once per batch)",
    )


def double_backward(p: Problem, k: int, *, power: bool, lanczos_too: bool = True) -> Side:
    return _our_knobs(
        "double-backward",
        lambda: DoubleBackward(p.model, p.x, p.y),
        k,
        power,
        lanczos_too,
        "double-backward products through a gradient graph built once (our estimators, same seeds)",
    )


# ----------------------------------------------------------------------------------------------------- PyHessian


def _pyhessian(p: Problem, mod: Any) -> Any:
    for q in p.pyhessian_model.parameters():
        q.grad = None  # PyHessian's backward accumulates into .grad: start clean every time
    return mod.hessian(p.pyhessian_model, nn.CrossEntropyLoss(), data=(p.x, p.y), cuda=p.device.type == "cuda")


def _pyhessian_done(p: Problem) -> None:
    for q in p.pyhessian_model.parameters():
        q.grad = None  # drop the graph PyHessian left in .grad


def pyhessian(p: Problem, mod: Any, k: int) -> Side:
    """``hessian(...).eigenvalues``: (deflated) power iteration, double-backward through a graph built once. Two
    knobs: ``maxIter`` with ``tol=0`` (exactly that many iterations per eigenvalue) and ``tol`` (its relative-change
    stop, each eigenvalue on its own) with ``maxIter`` 1,000."""

    def run(max_iter: int, tol: float) -> Out:
        torch.manual_seed(0)  # PyHessian draws its start vectors from the global generator
        mod.hessian_vector_product.n = 0
        h = _pyhessian(p, mod)
        values, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        _pyhessian_done(p)
        return Out(sorted(values, reverse=True), mod.hessian_vector_product.n)

    common = (
        f"hessian(...).eigenvalues(top_n={k}): {'deflated ' if k > 1 else ''}power iteration, double-backward "
        "products through a gradient graph built once"
    )
    return Side(
        "pyhessian",
        [  # tol first: its products bound the doubling of maxIter (deflated: k x maxIter)
            Knob(
                f"tol (maxIter={PI_MAX_ITER})",
                lambda t: run(PI_MAX_ITER, t),
                f"{common}; stopped on its relative-change tol per eigenvalue",
                values=TOLS,
            ),
            Knob(
                "maxIter (tol=0)",
                lambda m: run(m, 0.0),
                f"{common}; tol=0, maxIter iterations per eigenvalue",
                steps=(2, PI_MAX_ITER),
            ),
        ],
    )


# ------------------------------------------------------------------------------------------- hessian-eigenthings


def hessian_eigenthings(p: Problem, mod: Any, k: int, *, power: bool, lanczos_too: bool = True) -> Side:
    """``lanczos(which='LA', max_iter)`` with and without full reorthogonalisation (``max_iter`` is its step count;
    its ``tol`` only reports convergence), ``power_iteration_one(tol=0, max_iter)``; every product recomputes
    forward, gradient and double backward."""

    def op() -> Any:
        return mod.HessianOperator(p.model, [(p.x, p.y)], mod.supervised_loss(CE))

    def run_lanczos(steps: int, reorth: bool) -> Out:
        r = mod.lanczos(op(), k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=reorth)
        return Out(sorted(r.eigenvalues.tolist(), reverse=True), r.iterations)

    def run_power(steps: int) -> Out:
        lam, _, _, iters, _ = mod.power_iteration_one(op(), max_iter=steps, tol=0.0, seed=0)  # tol=0: max_iter
        return Out([lam], iters)

    knobs = []
    if lanczos_too:
        for reorth in (True, False):
            knobs.append(
                Knob(
                    f"lanczos max_iter (reorthogonalize={reorth})",
                    lambda s, r=reorth: run_lanczos(s, r),
                    f"lanczos(which='LA', reorthogonalize={reorth}) for max_iter steps; products recompute "
                    "forward and backward",
                    steps=(k, LANCZOS_MAX_ITER),
                )
            )
    if power:
        knobs.append(
            Knob(
                "power_iteration_one max_iter (tol=0)",
                run_power,
                "power_iteration_one(tol=0, max_iter); products recompute forward and backward",
                steps=(2, PI_MAX_ITER),
            )
        )
    return Side("hessian-eigenthings", knobs)


# ---------------------------------------------------------------------------------------------------- curvlinops


def _curvlinops_op(p: Problem, mod: Any) -> Any:
    return mod.HessianLinearOperator(
        p.model, nn.CrossEntropyLoss(), p.params, [(p.x, p.y)], check_deterministic=False, num_data=len(p.y)
    )


def curvlinops(p: Problem, mod: Any, k: int) -> Side:
    """Its documented eigenvalue route, ``scipy.sparse.linalg.eigsh(H.to_scipy(), which='LA')`` (ARPACK, implicitly
    restarted Lanczos): one knob per subspace size ``ncv`` (ARPACK's default is max(2k + 1, 20)), each with its
    ``tol``. Products: ``vmap``-ed ``jvp`` of ``jacrev``, recomputed per product. No power iteration."""
    v0 = np.random.default_rng(0).standard_normal(p.size)

    def run(ncv: int, tol: float) -> Out:
        A = _curvlinops_op(p, mod).to_scipy()
        count = [0]

        def matvec(v: np.ndarray) -> np.ndarray:
            count[0] = _counted(count[0] + 1)
            return A.matvec(v)

        op = LinearOperator(A.shape, matvec=matvec, dtype=A.dtype)
        try:
            values = eigsh(op, k=k, which="LA", tol=tol, v0=v0, ncv=ncv, maxiter=ARPACK_RESTARTS)[0]
        except ArpackNoConvergence:
            return Out([], count[0])  # not converged: no eigenvalues, an infinite error
        return Out(sorted(values.tolist(), reverse=True), count[0])

    return Side(
        "curvlinops",
        [
            Knob(
                f"eigsh ncv={ncv}, tol",
                lambda t, n=ncv: run(n, t),
                f"scipy eigsh(H.to_scipy(), k={k}, which='LA', ncv={ncv}, tol) (ARPACK); products: vmapped jvp of "
                "jacrev",
                values=TOLS,
            )
            for ncv in NCV[k]
            if ncv < p.size
        ],
    )


# ------------------------------------------------------------------------------------------------------ the cases


def eigen_sides(p: Problem, mods: dict[str, Any], label: str, k: int) -> list[Side]:
    """The sides of an eigenvalue case: ``lambda-max`` (every eigensolver each side has), ``lambda-max, power
    iteration`` (power iteration only: the same algorithm everywhere), ``top-5`` (each side's top-k solvers)."""
    power_only = label.endswith("power iteration")
    power = k == 1
    lanczos_too = not power_only
    sides = [
        ours(p, k, power=power, lanczos_too=lanczos_too),
        double_backward(p, k, power=power, lanczos_too=lanczos_too),
    ]
    if "pyhessian" in mods:
        sides.append(pyhessian(p, mods["pyhessian"], k))
    if "hessian-eigenthings" in mods:
        sides.append(hessian_eigenthings(p, mods["hessian-eigenthings"], k, power=power, lanczos_too=lanczos_too))
    if "curvlinops" in mods and not power_only:
        sides.append(curvlinops(p, mods["curvlinops"], k))
    return sides


def trace_sides(p: Problem, mods: dict[str, Any], probes: int) -> list[Side]:
    """Hutchinson with ``probes`` Rademacher probes on every side (same estimator, same expected error)."""

    def fixed(name: str, run: Callable[[Any], Out], describe: str) -> Side:
        return Side(name, [Knob("probes", run, describe, fixed=probes)])

    def run_ours(_: Any) -> Out:
        op = HessianOperator(p.model, CE, (p.x, p.y))
        r = hutchinson(op, probes, block=32, seed=1)
        return Out(r.estimate, op.n_hvp, r.stderr)

    def run_db(_: Any) -> Out:
        r = hutchinson(DoubleBackward(p.model, p.x, p.y), probes, block=32, seed=1)
        return Out(r.estimate, probes, r.stderr)

    sides = [
        fixed(
            "ours",
            run_ours,
            f"Hutchinson, {probes} Rademacher probes, v^T H v by the forward-only "
            "second-order pass (HessianOperator.quadform), 32 per block",
        ),
        fixed("double-backward", run_db, f"our Hutchinson with the same {probes} probes, v . (H v) by double-backward"),
    ]
    if "pyhessian" in mods:
        mod = mods["pyhessian"]

        def run_pyh(_: Any) -> Out:
            torch.manual_seed(1)
            s = _pyhessian(p, mod).trace(maxIter=probes, tol=-math.inf)  # tol=-inf: exactly maxIter probes
            _pyhessian_done(p)
            return Out(float(np.mean(s)), len(s), float(np.std(s, ddof=1) / math.sqrt(len(s))))

        sides.append(
            fixed("pyhessian", run_pyh, f"hessian(...).trace(maxIter={probes}, tol=-inf): Hutchinson, double-backward")
        )
    if "hessian-eigenthings" in mods:
        mod_he = mods["hessian-eigenthings"]

        def run_he(_: Any) -> Out:
            op = mod_he.HessianOperator(p.model, [(p.x, p.y)], mod_he.supervised_loss(CE))
            r = mod_he.hutchinson(op, num_samples=probes, seed=1)
            return Out(r.estimate, probes, r.stderr)

        sides.append(fixed("hessian-eigenthings", run_he, f"hutchinson(num_samples={probes}), Rademacher"))
    if "curvlinops" in mods:
        mod_cl = mods["curvlinops"]

        def run_cl(_: Any) -> Out:
            torch.manual_seed(1)
            return Out(float(mod_cl.hutchinson_trace(_curvlinops_op(p, mod_cl), probes)), probes)

        sides.append(fixed("curvlinops", run_cl, f"hutchinson_trace(H, {probes}), Rademacher, one vmapped product"))
    return sides


# ---------------------------------------------------------------------- where the time goes (diagnostics)


def product_costs(p: Problem, mods: dict[str, Any], n: int) -> dict[str, Any]:
    """Per side: one Hessian-vector product after setup, and setup plus one product (float32, medians)."""
    v = torch.randn(p.size, generator=torch.Generator().manual_seed(3)).to(p.device)
    V32 = (torch.randint(0, 2, (p.size, 32), generator=torch.Generator().manual_seed(4)) * 2 - 1).float().to(p.device)
    op = HessianOperator(p.model, CE, (p.x, p.y))
    db = DoubleBackward(p.model, p.x, p.y)
    prod = {"ours": lambda: op.matmat(v[:, None]), "double-backward": lambda: db.matmat(v[:, None])}
    setup = {
        "ours": lambda: HessianOperator(p.model, CE, (p.x, p.y)).matmat(v[:, None]),
        "double-backward": lambda: DoubleBackward(p.model, p.x, p.y).matmat(v[:, None]),
    }
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
        setup["hessian-eigenthings"] = lambda: he.HessianOperator(p.model, [(p.x, p.y)], he.supervised_loss(CE)).matvec(
            v
        )
    if "curvlinops" in mods:
        H = _curvlinops_op(p, mods["curvlinops"])
        prod["curvlinops"] = lambda: H @ v
        setup["curvlinops"] = lambda: _curvlinops_op(p, mods["curvlinops"]) @ v
    d = p.device
    product = harness.compare(prod, repeats=n, device=d)
    with_setup = harness.compare(setup, repeats=max(3, n // 4), device=d)
    out = {
        "product_ms": {k: round(t, 3) for k, t in product.median_ms().items()},
        "setup_plus_one_product_ms": {k: round(t, 3) for k, t in with_setup.median_ms().items()},
        "ours_block_of_32_per_vector_ms": {
            "H v (matmat)": round(harness.median_ms(lambda: op.matmat(V32), 3, device=d) / 32, 3),
            "v^T H v (quadform)": round(harness.median_ms(lambda: op.quadform(V32), 3, device=d) / 32, 3),
        },
    }
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


def lanczos_bookkeeping(
    size: int, k: int, steps: dict[str, tuple[str, int]], mods: dict[str, Any], device: torch.device = CPU
) -> dict[str, float]:
    """Our lanczos and hessian-eigenthings' for the step counts timed (``steps``: side -> (knob, setting)), on a
    diagonal operator of the same size: the estimators' own cost (orthogonalisation, Ritz values), without the
    Hessian's products."""
    diag = _Diagonal(size, device)
    sides: dict[str, Callable[[], Any]] = {}
    knob, m = steps.get("ours", ("", 0))
    if knob.startswith("lanczos"):
        sides["ours"] = lambda: lanczos(diag, k, tol=0.0, max_iter=m, seed=0)
    knob_he, m_he = steps.get("hessian-eigenthings", ("", 0))
    if knob_he.startswith("lanczos") and "hessian-eigenthings" in mods:
        he = mods["hessian-eigenthings"]
        op = he.LambdaOperator(lambda u: diag.d * u, size=size, device=device)
        reorth = "True" in knob_he
        sides["hessian-eigenthings"] = lambda: he.lanczos(
            op, k=k, max_iter=m_he, which="LA", seed=0, reorthogonalize=reorth
        )
    if not sides:
        return {}
    return {name: round(t, 3) for name, t in harness.compare(sides, repeats=5, device=device).median_ms().items()}
