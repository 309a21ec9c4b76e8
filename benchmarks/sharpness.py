"""Curvature engine vs the curvature libraries people use, at equal accuracy, in one run.

Models ``mlp-784-100-10`` (79,510 parameters) and ``cnn-small`` (5,994), trained briefly on MNIST and measured on
one fixed batch (512; 128 with ``--quick``), float32, eval mode, one thread. Cases per model: ``lambda-max`` (each
side's fastest eigensolver), ``lambda-max, power iteration`` (the same algorithm on every side: the products
compared), ``top-5`` and ``trace``. Eigenvalue sides are calibrated, untimed, to the least work that meets a relative
error of 1e-3 against an exact float64 reference (:mod:`sharpness_refs`), through every knob their library offers
(:mod:`sharpness_peers`), and timed at the fastest setting found; traces use the same number of Rademacher probes
on every side. All sides are timed interleaved, in rotated order, by ``benchmarks/harness.py``. The method, the
sides and what bounds the ratios are on the documentation's benchmarks page (docs/benchmarks.md, "Sharpness").

    python benchmarks/sharpness.py [--quick] [--models cnn-small] [--device cuda] [--note "..."]
        ->  results/bench/sharpness.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # numpy / scipy (ARPACK for curvlinops) on one thread, like torch

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # loaded by path from benchmarks/gpu/ too
    sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from sharpness_peers import (  # noqa: E402
    BASELINES,
    PEERS,
    Knob,
    Out,
    ProductLimit,
    Side,
    eigen_sides,
    lanczos_bookkeeping,
    load_peers,
    product_costs,
    product_limit,
    trace_sides,
)
from sharpness_refs import CPU, DENSE_MAX_PARAMS, ROOT, compute_reference, dense_cache, prepare  # noqa: E402

from icml17.core import device as devices  # noqa: E402
from icml17.sharpness.data import mnist_subset  # noqa: E402

MODELS = ("mlp-784-100-10", "cnn-small")
CASES = ("lambda-max", "lambda-max, power iteration", "top-5", "trace")
BOUND = 1e-3  # relative error of every eigenvalue case
# the speedup ours should reach over the fastest peer library, per model (not for the power-iteration case, which
# compares products under one algorithm)
TARGETS = {"cnn-small": 2.0, "mlp-784-100-10": 1.2}
FINALIST_SLACK = 1.5  # settings within this factor of a side's fewest products are timed to pick the fastest,
FINALISTS = 3  # at most this many of them (the fewest products first)


def _num(x: float) -> float | None:
    """A finite float for the record, None for an infinite error (JSON has no infinity)."""
    return float(f"{x:.3g}") if math.isfinite(x) else None


@dataclass
class Calibrated:
    """A side at its best setting: the knob and setting chosen, whether they meet the bound, what was tried."""

    side: Side
    knob: Knob
    setting: Any
    met: bool
    n_hvp: int
    error: float
    trails: dict[str, list] = field(default_factory=dict)  # knob -> [[setting, relative error, n_hvp], ...]
    finalists_ms: dict[str, float] = field(default_factory=dict)  # knob=setting -> median ms (when several)

    @property
    def label(self) -> str:
        return f"{self.knob.label}={self.setting}"

    def run(self) -> Out:
        return self.knob.run(self.setting)

    def record(self) -> dict[str, Any]:
        out = {
            "chosen": self.label,
            "met_bound": self.met,
            "relative_error": _num(self.error),
            "n_hvp": self.n_hvp,
            "tried (setting, relative error, n_hvp)": self.trails,
        }
        if self.finalists_ms:
            out["finalists_median_ms"] = self.finalists_ms
        return out


def calibrate_knob(
    knob: Knob,
    error: Callable[[Out], float],
    budget_s: float,
    max_hvp: float = math.inf,
) -> tuple[Any, bool, list[list[Any]]]:
    """The least work of one knob that meets :data:`BOUND` (untimed): the smallest step count (doubling, then
    bisection: the top Ritz values and the Rayleigh quotient only improve with steps) or the first of its values
    (loosest first) that meets it. Gives up on a knob once a trial costs more than ``budget_s`` seconds or
    ``max_hvp`` products (another knob of the side already did better than that).

    Returns:
        (setting or None, met, the trials as [setting, relative error, products]).
    """
    tried: list[list[Any]] = []

    def trial(setting: Any) -> tuple[bool, float, int]:
        t = time.perf_counter()
        try:
            with product_limit(max_hvp):
                out = knob.run(setting)
        except ProductLimit:  # could no longer win: recorded as not at the bound, and the knob stops
            tried.append([setting, math.inf, int(max_hvp) + 1])
            return False, math.inf, int(max_hvp) + 1
        dt = time.perf_counter() - t
        e = error(out)
        tried.append([setting, e, out.n_hvp])
        return e <= BOUND, dt, out.n_hvp

    if knob.steps is not None:
        lo, s = knob.steps[0] - 1, knob.steps[0]
        while True:
            ok, dt, n = trial(s)
            if ok:
                break
            lo = s
            if s >= knob.steps[1] or dt > budget_s or n > max_hvp:
                return None, False, tried
            s = min(2 * s, knob.steps[1])
        hi = s
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, _, _ = trial(mid)
            lo, hi = (lo, mid) if ok else (mid, hi)
        return hi, True, tried
    for value in knob.values:
        ok, dt, n = trial(value)
        if ok:
            return value, True, tried
        if dt > budget_s or n > max_hvp:
            break
    return None, False, tried


def calibrate(
    side: Side, error: Callable[[Out], float] | None, budget_s: float, device: torch.device = CPU
) -> Calibrated:
    """``side`` at its best setting for :data:`BOUND`: every knob calibrated (:func:`calibrate_knob`); of those that
    meet the bound, the ones within :data:`FINALIST_SLACK` of the fewest products are timed (median of 3) and the
    fastest is chosen (at most :data:`FINALISTS`, the fewest products first). A side that meets it nowhere gets its
    most accurate trial (``met`` False)."""
    first = side.knobs[0]
    if first.fixed is not None:
        return Calibrated(side, first, first.fixed, True, 0, math.nan)
    best, met, trails = math.inf, [], {}
    trials: list[tuple[Knob, Any, float, int]] = []
    for knob in side.knobs:
        setting, ok, tried = calibrate_knob(knob, error, budget_s, FINALIST_SLACK * best)
        trails[knob.label] = [[s, _num(e), n] for s, e, n in tried]
        trials += [(knob, s, e, n) for s, e, n in tried]
        if ok:
            e, n = next((e, n) for s, e, n in reversed(tried) if s == setting)
            met.append((knob, setting, e, n))
            best = min(best, n)
    if not met:
        knob, s, e, n = min(trials, key=lambda t: t[2])
        return Calibrated(side, knob, s, False, n, e, trails)
    finalists = sorted((m for m in met if m[3] <= FINALIST_SLACK * best), key=lambda m: m[3])[:FINALISTS]
    chosen, times = finalists[0], {}
    if len(finalists) > 1:
        calls = {f"{k.label}={s}": (lambda k=k, s=s: k.run(s)) for k, s, _, _ in finalists}
        cmp = harness.compare(calls, repeats=3, warmup=0, device=device)
        times = {name: round(ms, 2) for name, ms in cmp.median_ms().items()}
        fastest = min(times, key=times.get)
        chosen = next(f for f in finalists if f"{f[0].label}={f[1]}" == fastest)
    knob, setting, e, n = chosen
    return Calibrated(side, knob, setting, True, n, e, trails, times)


def run_case(
    label: str,
    sides: list[Side],
    error: Callable[[Out], float] | None,
    repeats: int,
    budget_s: float,
    absent: dict[str, str],
    extra: dict[str, Any],
    device: torch.device = CPU,
) -> tuple[dict[str, Any], dict[str, Out]]:
    """One case: every side calibrated (untimed), then all timed by :func:`harness.compare` (a warm-up each, then
    ``repeats`` interleaved rounds in rotated order). A peer that fails has no row, with the reason."""
    absent = dict(absent)
    t_case = time.perf_counter()
    chosen: list[Calibrated] = []
    for side in sides:
        try:
            chosen.append(calibrate(side, error, budget_s, device))
        except Exception as e:  # a peer that fails with this torch / model: no row, with the reason
            if side.name == "ours":
                raise
            absent[side.name] = f"failed: {type(e).__name__}: {e}"
    calibration_s = time.perf_counter() - t_case
    cmp = harness.compare({c.side.name: c.run for c in chosen}, repeats=repeats, warmup=1, device=device)
    outs = {c.side.name: cmp.last(c.side.name) for c in chosen}
    ms = cmp.median_ms()
    errors = {name: (error(o) if error is not None else None) for name, o in outs.items()}
    case: dict[str, Any] = {"case": label, "ours_ms": round(ms["ours"], 2), "baselines_ms": {}, "speedup": {}}
    not_at_bound: dict[str, Any] = {}
    for c in chosen:
        name = c.side.name
        if name == "ours":
            continue
        if c.met:
            case["baselines_ms"][name] = round(ms[name], 2)
            case["speedup"][name] = round(ms[name] / ms["ours"], 2)
        else:
            not_at_bound[name] = {"ms": round(ms[name], 2), "relative_error": _num(errors[name]), "setting": c.label}
    case.update(extra)
    case["relative_error"] = {name: (_num(e) if e is not None else None) for name, e in errors.items()}
    case["setting"] = {c.side.name: c.label for c in chosen}
    case["n_hvp"] = {name: o.n_hvp for name, o in outs.items()}
    case["ms_per_hvp"] = {name: round(ms[name] / max(o.n_hvp, 1), 3) for name, o in outs.items()}
    case["timing"] = cmp.summary(digits=2)
    if not chosen[0].met:
        case["ours_not_at_bound"] = True
    if not_at_bound:
        case["not_at_bound"] = not_at_bound
    if error is not None:
        case["calibration"] = {c.side.name: c.record() for c in chosen}
    case["method"] = {c.side.name: c.knob.describe for c in chosen}
    if absent:
        case["absent"] = absent
    case["wall_s"] = {"calibration": round(calibration_s, 1), "total": round(time.perf_counter() - t_case, 1)}
    case["_chosen"] = {c.side.name: (c.knob.label, c.setting) for c in chosen}
    return case, outs


def eig_error(ref: Sequence[float], k: int) -> Callable[[Out], float]:
    """The largest relative error of the top ``k`` eigenvalues (infinite when fewer came back)."""

    def err(out: Out) -> float:
        vals = list(out.value)
        if len(vals) < k:
            return math.inf
        return max(abs(v - r) / abs(r) for v, r in zip(vals[:k], ref[:k]))

    return err


def target(case: dict[str, Any], model: str) -> dict[str, Any]:
    """Ours against the fastest peer library at the bound, and the goal for the model; beside it, ours against the
    hand-written double-backward (our estimators on another product: the product's share, not a library)."""
    speed = {name: x for name, x in case["speedup"].items() if name in PEERS}
    out: dict[str, Any] = {"goal": TARGETS[model], "fastest_peer": None, "met": None}
    if speed:
        fastest = min(speed, key=speed.get)
        out.update(fastest_peer=fastest, speedup=speed[fastest], met=speed[fastest] >= TARGETS[model])
    if "double-backward" in case["speedup"]:
        out["speedup_over_double_backward"] = case["speedup"]["double-backward"]
    return out


def run_benchmark(
    models: Sequence[str],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch: int,
    probes: int,
    repeats: int,
    budget_s: float,
    dense: bool | None,
    threads: int,
    reference_threads: int | None = None,
    device: torch.device = CPU,
    cases: Sequence[str] = CASES,
    product_repeats: int = 50,
) -> dict[str, Any]:
    """Every case of ``cases`` on every model of ``models``, all sides on ``device``: the record's ``peers``,
    ``models`` and ``cases``. ``dense`` None: the dense reference where a cached one exists."""
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
        print(
            f"{name}: {p.size} parameters on {device}; reference ({ref['method'].split(';')[0]}): "
            f"top-5 {[round(v, 4) for v in ref['eigenvalues'][:5]]}, trace {ref['trace']:.4f}",
            flush=True,
        )
        print(
            f"  reference {p.info['reference']['seconds_total']:.0f} s; one product (ms): {p.info['product_ms']}; "
            f"setup + one product (ms): {p.info['setup_plus_one_product_ms']}",
            flush=True,
        )
        acc = (
            f"relative error <= {BOUND:g} against the reference; each side calibrated (untimed) through every knob "
            "its library offers to the least work that meets it, then timed at its fastest such setting"
        )
        for label, k in (("lambda-max", 1), ("lambda-max, power iteration", 1), ("top-5", 5)):
            if label not in cases:
                continue
            case_absent = dict(absent)
            if label.endswith("power iteration") and "curvlinops" in mods:
                case_absent["curvlinops"] = "no power iteration in curvlinops (its eigenvalue route is scipy eigsh)"
            extra = {"model": name, "accuracy": acc, "reference_eigenvalues": ref["eigenvalues"][:k]}
            case, _ = run_case(
                f"{name}: {label}",
                eigen_sides(p, mods, label, k),
                eig_error(ref["eigenvalues"], k),
                repeats,
                budget_s,
                case_absent,
                extra,
                device,
            )
            chosen = case.pop("_chosen")
            if not label.endswith("power iteration"):
                case["target"] = target(case, name)
                case["lanczos_bookkeeping_ms (same steps, diagonal operator)"] = lanczos_bookkeeping(
                    p.size, k, chosen, mods, device
                )
            out_cases.append(case)
            print_case(case)
        if "trace" not in cases:
            continue
        extra = {
            "model": name,
            "accuracy": f"{probes} Rademacher probes on every side (same estimator, same "
            f"expected error); achieved errors and standard errors recorded",
            "reference_trace": ref["trace"],
        }
        case, outs = run_case(
            f"{name}: trace",
            trace_sides(p, mods, probes),
            lambda o, t=ref["trace"]: abs(o.value - t) / abs(t),
            repeats,
            budget_s,
            absent,
            extra,
            device,
        )
        case.pop("_chosen")
        case["target"] = target(case, name)
        case["estimates"] = {n: {"estimate": o.value, "stderr": o.stderr} for n, o in outs.items()}
        case["error_in_standard_errors"] = {
            n: abs(o.value - ref["trace"]) / o.stderr for n, o in outs.items() if o.stderr
        }
        ours_est = case["estimates"]["ours"]["estimate"]
        if "double-backward" in case["estimates"]:
            case["agree"] = abs(case["estimates"]["double-backward"]["estimate"] - ours_est) / abs(ours_est) < 1e-4
        out_cases.append(case)
        print_case(case)
    return {"peers": peers, "models": out_models, "cases": out_cases}


def print_case(c: dict[str, Any]) -> None:
    err = c["relative_error"]["ours"]
    print(
        f"  {c['case']}  (ours {c['ours_ms']:.1f} ms, rel. error {err if err is not None else float('inf'):.1e}, "
        f"{c['n_hvp']['ours']} products, {c['setting']['ours']}; {c['wall_s']['total']:.0f} s)"
    )
    for name in BASELINES:
        if name in c["baselines_ms"]:
            print(
                f"    {name:20s} {c['baselines_ms'][name]:10.1f} ms  speedup {c['speedup'][name]:6.2f}x  "
                f"rel. error {c['relative_error'][name]:.1e}  {c['n_hvp'][name]:4d} products  {c['setting'][name]}"
            )
        elif name in c.get("not_at_bound", {}):
            nb = c["not_at_bound"][name]
            print(
                f"    {name:20s} not at the bound: rel. error {nb['relative_error']} at {nb['setting']} "
                f"({nb['ms']:.1f} ms)"
            )
        elif name in c.get("absent", {}):
            print(f"    {name:20s} absent: {c['absent'][name][:100]}")
    if "target" in c:
        print(f"    target: {c['target']}")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="batch 128, 32 probes, Lanczos/diagonal reference (a few minutes)"
    )
    ap.add_argument("--batch", type=int, default=None, help="images in the measured batch (default 512, quick 128)")
    ap.add_argument(
        "--dense",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dense float64 reference for models up to 10k parameters (default: on, off with --quick)",
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10, quick 5)")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps: every side runs there")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--reference-threads",
        type=int,
        default=None,
        help="threads for the untimed reference (default: --threads; more only on a quiet machine)",
    )
    ap.add_argument("--note", default="", help="e.g. what else was running on the machine")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "sharpness.json")
    args = ap.parse_args()
    device = devices.resolve(args.device)
    session = harness.Session("sharpness", device=device, threads=args.threads)
    batch = args.batch or (128 if args.quick else 512)
    probes, budget_s = (32, 60.0) if args.quick else (100, 300.0)  # seconds per calibration trial, at most
    repeats = args.repeats or (5 if args.quick else 10)
    dense = (not args.quick) if args.dense is None else args.dense
    if args.quick and args.dense is None:
        dense = None  # a cached dense reference is used, none is computed
    x, y = mnist_subset(args.data_dir, "train", 2000, 0)
    result = run_benchmark(
        args.models,
        x,
        y,
        batch=batch,
        probes=probes,
        repeats=repeats,
        budget_s=budget_s,
        dense=dense,
        threads=args.threads,
        reference_threads=args.reference_threads,
        device=device,
        cases=args.cases,
        product_repeats=20 if args.quick else 50,
    )
    targets = {c["case"]: c["target"] for c in result["cases"] if "target" in c}
    session.write(
        args.out,
        {
            "threads": args.threads,
            "batch": batch,
            "repeats": repeats,
            "trace_probes": probes,
            "accuracy_bound": BOUND,
            "targets": targets,
            "note": args.note,
            "peers": result["peers"],
            "models": result["models"],
            "cases": result["cases"],
        },
    )
    missed = [case for case, t in targets.items() if t["met"] is False]
    print(f"targets missed: {missed}" if missed else "every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
