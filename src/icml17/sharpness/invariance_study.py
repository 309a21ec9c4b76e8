"""Every registered measure through every function-preserving transform of the library, on trained minima.

Three small networks are trained on a seeded MNIST subset (SGD, cached in the run directory): a ReLU MLP
(784-100-10), the small CNN (two stride-2 convolutions) and an MLP with batch norm (784-32x5-10, Keskar's F1
shape at width 32), and measured on the first 256 training images (two batches of 128). Each transform that
applies to a network is swept over four orders of magnitude of its parameter p (the sweep 10^-2, 1, 10^2), the
identity in the sweep:

- ``alpha``: layer-wise T_alpha with alphas (p, 1, ..., 1/p), p in 10^-2..10^2 (Dinh et al. 2017, section 5);
- ``per-neuron``: every hidden unit scaled by its own factor p^u, u ~ U(-1, 1) seeded, p in {1, 10^2};
- ``bn-scale``: every batch norm's scale and shift times p, the next layer's weights over p, p in 10^-2..10^2;
- ``input-scale``: pixels times p with the first layer's weights over p (appendix D's input maps), p in 10^-2..10^2;
- ``radial``: the radial map of appendix A centred on the minimum, rho / r_hat = p in {10^-1, 1, 10}, radius
  delta = 10 |theta| (beyond delta the map is the identity: with a small delta, measures that probe far from the
  minimum, such as the PAC-Bayes noise, would not see it).

Every measure is computed in float64 on the transformed network (and its transformed inputs), after checking that
its outputs equal the original's to 1e-10. Jiang et al.'s bisections run to their full depth here (their early stop,
within 0.01 of the target deviation, would hide any change smaller than a bisection step). The verdict of a
(measure, transform) cell, from the values v(p) over the sweep:

- ``unchanged``: max_p |v(p) / v(1) - 1| <= ``TOLERANCE`` (1e-6, relative);
- ``arbitrary``: the measure follows the parameter: max/min over the sweep >= 10 and, at one end of the sweep, its
  log changes by at least half the log of p's last step (|d log v / d log p| >= 0.5): more sweep, more change;
- ``bounded``: changed beyond the tolerance, but neither.

A cell is ``n/a`` where the transform does not apply to the network (batch norm refuses T_alpha) or the measure
is not defined on the transformed network (the radial map leaves one flat parameter vector and no weight
matrices). Over the three networks a cell takes the strongest verdict seen (arbitrary > bounded > unchanged).
Where a measure's paper states invariance under a transform (:attr:`MeasureSpec.claimed_invariant`), the
record says whether the table confirms it. The record also holds each measure's wall time on the small CNN as a
ratio to lambda_max's (median of ``TIMING_REPEATS`` runs, measured back to back) and a convergence check of the
adaptive worst case's Auto-PGD against a finer search (10x the iterations, 4 restarts).
"""

from __future__ import annotations

import math
import statistics
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from icml17.core.device import to_device
from icml17.core.results import write_record
from icml17.sharpness.data import mnist_subset
from icml17.sharpness.invariance import output_difference
from icml17.sharpness.models import count_parameters
from icml17.sharpness.perturbation import worst_case_sharpness
from icml17.sharpness.presets import build_sharpness_model
from icml17.sharpness.radial import Radial
from icml17.sharpness.registry import (
    REGISTRY,
    TRANSFORMS,
    FlatnessOptions,
    compute_measure,
)
from icml17.sharpness.scale_invariant import NotApplicable
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
from icml17.sharpness.transforms import (
    AlphaScaling,
    BatchNormScaling,
    InputMap,
    PerNeuronScaling,
    Reparametrized,
    TransformError,
    relu_chain,
)

CE = nn.functional.cross_entropy
TOLERANCE = 1e-6  # relative: "unchanged" means within this of the untransformed value, at every sweep point
OUTPUT_TOLERANCE = 1e-10  # relative output difference above which a transform is not function-preserving
FOLLOW_SLOPE = 0.5  # |d log v / d log p| at a sweep end for "arbitrary"
FOLLOW_SPREAD = 10.0  # and max/min over the sweep at least this
TIMING_REPEATS = 3
SEVERITY = {"n/a": -1, "unchanged": 0, "bounded": 1, "arbitrary": 2}
NETWORKS = {"mlp": "mlp-784-100-10", "cnn": "cnn-small", "bn-mlp": "keskar-f1-narrow"}


@dataclass(frozen=True)
class InvarianceStudyConfig:
    """The invariance study's sizes.

    Attributes:
        n_train: MNIST training images (a seeded subset) the networks are trained on.
        n_measure: the first images of that subset every measure is computed on.
        batch: the batch size of the measured data (the worst cases are per batch).
        steps: SGD steps of each training (batch 64, learning rate 0.1).
        sweep: the sweep's exponents e: p = 10^e (the radial map uses e / 2, 10^-1..10^1).
        seed: the seed of the subset, the initialisations and every measure.
    """

    n_train: int = 2000
    n_measure: int = 256
    batch: int = 128
    steps: int = 1500
    sweep: tuple[float, ...] = (-2.0, 0.0, 2.0)
    seed: int = 0

    @classmethod
    def quick(cls) -> InvarianceStudyConfig:
        """Tiny sizes for tests (not results).

        Returns:
            The quick configuration.
        """
        return cls(n_train=200, n_measure=64, batch=32, steps=60, sweep=(-2.0, 0.0, 2.0))


def study_transform(kind: str, p: float, model: nn.Module, seed: int = 0) -> Reparametrized:
    """The study's transform ``kind`` at parameter p, applied to ``model`` (see the module docstring).

    Args:
        kind: a name of :data:`~icml17.sharpness.registry.TRANSFORMS`.
        p: the transform's parameter (1: the identity, except that the copy is still made).
        model: the network (not changed).
        seed: per-neuron scaling's seed.

    Returns:
        The transformed copy.

    Raises:
        TransformError: the transform does not apply to ``model``.
        ValueError: an unknown ``kind``.
    """
    if kind == "alpha":
        return AlphaScaling.pair(p, len(relu_chain(model, "alpha-scaling")))(model)
    if kind == "per-neuron":
        return PerNeuronScaling(log_range=math.log(p), seed=seed)(model)
    if kind == "bn-scale":
        return BatchNormScaling([p] * len(BatchNormScaling.pairs(model)))(model)
    if kind == "input-scale":
        first = relu_chain(model, "an input map")[0]
        d = model[first].in_features if isinstance(model[first], nn.Linear) else 0
        if not d:
            raise TransformError("an input map needs a first Linear layer")
        return InputMap(p * torch.eye(d, dtype=torch.float64), name=f"input x {p:g}")(model)
    if kind == "radial":
        # the map is the identity beyond delta: a radius of 10 |theta| keeps the measures' probes (noise of norm
        # up to about |theta|) inside the ball, where it scales parameter space by p
        delta = 10 * float(torch.cat([q.detach().reshape(-1) for q in model.parameters()]).norm())
        rho, r_hat = (0.9 * delta, 0.9 * delta / p) if p >= 1 else (0.9 * delta * p, 0.9 * delta)
        return Radial(delta, rho, r_hat)(model)
    raise ValueError(f"unknown transform {kind!r}; choose from {TRANSFORMS}")


def sweep_values(kind: str, sweep: Sequence[float]) -> list[float]:
    """The transform's parameter values for the sweep exponents (see the module docstring).

    Args:
        kind: a name of :data:`TRANSFORMS`.
        sweep: exponents e, 0 among them.

    Returns:
        p for each exponent; per-neuron's spread uses |e| (a factor range, 1 for none), the radial map e / 2.
    """
    if kind == "per-neuron":
        return sorted({10.0 ** abs(e) for e in sweep})
    if kind == "radial":
        return [10.0 ** (e / 2) for e in sweep]
    return [10.0**e for e in sweep]


def sweep_verdict(params: Sequence[float], values: Sequence[float], tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The verdict of one (measure, transform) sweep (see the module docstring).

    Args:
        params: the transform's parameter values, ascending, the identity (1) among them.
        values: the measure at each.
        tolerance: the relative change allowed for "unchanged".

    Returns:
        ``{"verdict", "max_rel_change", "spread", "end_slope"}``.

    Raises:
        ValueError: no identity in ``params``, or lengths that differ.
    """
    if len(params) != len(values) or 1.0 not in params:
        raise ValueError("need one value per parameter, the identity (p = 1) among them")
    v0 = values[list(params).index(1.0)]
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        return {"verdict": "arbitrary", "max_rel_change": math.inf, "spread": math.inf, "end_slope": math.inf}
    change = float(np.max(np.abs(v / v0 - 1))) if v0 != 0 else (0.0 if np.all(v == 0) else math.inf)
    a = np.abs(v)
    spread = float(a.max() / a.min()) if a.min() > 0 else math.inf
    logp = np.log(np.asarray(params, dtype=float))
    with np.errstate(divide="ignore"):
        la = np.log(a)
    slopes = [abs((la[j] - la[i]) / (logp[j] - logp[i])) for i, j in ((0, 1), (-2, -1)) if len(v) > 1]
    slope = float(max(slopes)) if slopes else 0.0
    if change <= tolerance:
        kind = "unchanged"
    elif spread >= FOLLOW_SPREAD and slope >= FOLLOW_SLOPE:
        kind = "arbitrary"
    else:
        kind = "bounded"
    return {"verdict": kind, "max_rel_change": change, "spread": spread, "end_slope": slope}


class _Study:
    """Trained networks, their measured data, and the sweeps (see the module docstring)."""

    def __init__(
        self,
        cfg: InvarianceStudyConfig,
        data_dir: Path | None,
        run_root: Path,
        quick: bool,
        options: FlatnessOptions,
        device: torch.device,
    ):
        self.cfg, self.run_root, self.quick, self.options, self.device = cfg, run_root, quick, options, device
        x, y = to_device(mnist_subset(data_dir, "train", cfg.n_train, cfg.seed), device)
        self.x, self.y = x, y
        self.x_test, self.y_test = to_device(mnist_subset(data_dir, "test", min(cfg.n_train, 10000), cfg.seed), device)
        xm, ym = x[: cfg.n_measure].double(), y[: cfg.n_measure]
        self.batches = [(xm[i : i + cfg.batch], ym[i : i + cfg.batch]) for i in range(0, len(ym), cfg.batch)]
        self.trainings: dict[str, dict[str, Any]] = {}
        self.models: dict[str, nn.Module] = {}

    def trained(self, name: str) -> nn.Module:
        if name in self.models:
            return self.models[name]
        preset = NETWORKS[name]
        model = build_sharpness_model(preset, self.cfg.seed)
        tcfg = TrainConfig(preset, self.cfg.steps, 64, lr=0.1, seed=self.cfg.seed, n_train=self.cfg.n_train)
        tag = "quick-" if self.quick else ""
        result = train_classifier(
            model, self.x, self.y, tcfg, self.run_root / f"{tag}invariance-{name}", device=self.device
        )
        model.eval()
        with torch.no_grad():
            train_loss = float(CE(model(self.x), self.y))
        self.trainings[name] = {
            **asdict(tcfg),
            "n_params": count_parameters(model),
            "train_loss": train_loss,
            "train_accuracy": accuracy(model, self.x, self.y),
            "test_accuracy": accuracy(model, self.x_test, self.y_test),
            "wall_time_s": round(result.wall_time_s, 2),
        }
        self.models[name] = model.double().eval()
        return self.models[name]

    def value(self, name: str, rep: nn.Module | Reparametrized, options: FlatnessOptions | None = None) -> float | str:
        """The measure on a (transformed) network, or why it is not defined there."""
        model, inputs = (rep.model, rep.inputs) if isinstance(rep, Reparametrized) else (rep, lambda t: t)
        data = [(inputs(x), y) for x, y in self.batches]
        try:
            return compute_measure(name, model, CE, data, options=options or self.options, dtype=torch.float64)
        except NotApplicable as e:
            return f"n/a: {e}"


def _run_sweeps(
    study: _Study,
    names: Sequence[str],
    transforms: Sequence[str],
    networks: Sequence[str],
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Every (network, transform, measure) sweep: values, output checks and verdicts.

    Args:
        study: the trained networks and data.
        names: registry measure names.
        transforms: names of :data:`TRANSFORMS`.
        networks: names of :data:`NETWORKS`.
        log: progress lines.

    Returns:
        network -> transform -> ``{"params", "max_output_diff", "measures": {name: {"values", verdict fields}}}``
        or ``{"n/a": reason}``.

    Raises:
        RuntimeError: a transform that changed the network's outputs beyond :data:`OUTPUT_TOLERANCE`.
    """
    out: dict[str, Any] = {}
    for net in networks:
        model = study.trained(net)
        probe = study.batches[0][0]
        base = {n: study.value(n, model) for n in names}
        out[net] = {"at_identity": base}
        for kind in transforms:
            params = sweep_values(kind, study.cfg.sweep)
            try:
                reps = {p: (None if p == 1.0 else study_transform(kind, p, model, study.cfg.seed)) for p in params}
            except TransformError as e:
                out[net][kind] = {"n/a": str(e)}
                continue
            diffs = {p: 0.0 if r is None else output_difference(model, r, probe) for p, r in reps.items()}
            if max(diffs.values()) > OUTPUT_TOLERANCE:
                raise RuntimeError(f"{kind} changed the outputs of {net} by {max(diffs.values()):.2e}")
            cell: dict[str, Any] = {"params": params, "max_output_diff": max(diffs.values()), "measures": {}}
            for n in names:
                t0 = time.perf_counter()
                values = [base[n] if r is None else study.value(n, r) for r in reps.values()]
                reason = next((v for v in values if isinstance(v, str)), None)
                if reason is not None:
                    cell["measures"][n] = {"verdict": "n/a", "reason": reason}
                else:
                    cell["measures"][n] = {"values": values, **sweep_verdict(params, values)}
                log(
                    f"{net:7s} {kind:12s} {n:24s} {cell['measures'][n]['verdict']:10s} {time.perf_counter() - t0:6.1f}s"
                )
            out[net][kind] = cell
    return out


def _table(sweeps: dict[str, Any], names: Sequence[str], transforms: Sequence[str]) -> dict[str, dict[str, Any]]:
    """measure -> transform -> the strongest verdict over the networks, with its spread and the paper's claim.

    Args:
        sweeps: :func:`_run_sweeps`'s result.
        names: measure names (rows).
        transforms: transform names (columns).

    Returns:
        The table: each cell ``{"verdict", "spread", "networks": {network: verdict}, "claimed",
        "claim_confirmed"}`` (``claim_confirmed`` None where the paper claims nothing or the cell is n/a).
    """
    rows: dict[str, dict[str, Any]] = {}
    for n in names:
        rows[n] = {}
        for kind in transforms:
            per_net, spread = {}, 1.0
            for net, cells in sweeps.items():
                cell = cells.get(kind, {})
                m = cell.get("measures", {}).get(n)
                if m is None:
                    continue
                per_net[net] = m["verdict"]
                if m["verdict"] != "n/a":
                    spread = max(spread, m["spread"])
            strongest = max(per_net.values(), key=SEVERITY.get, default="n/a")
            claimed = kind in REGISTRY[n].claimed_invariant
            rows[n][kind] = {
                "verdict": strongest,
                "spread": spread,
                "networks": per_net,
                "claimed": claimed,
                "claim_confirmed": (strongest == "unchanged") if claimed and strongest != "n/a" else None,
            }
    return rows


def _cost_ratios(
    study: _Study, names: Sequence[str], options: FlatnessOptions, network: str = "cnn"
) -> dict[str, dict[str, float]]:
    """Each measure's wall time on ``network`` (median of :data:`TIMING_REPEATS`) and its ratio to lambda_max's.

    Args:
        study: the trained networks and data.
        names: measure names.
        options: the options timed (the registry's defaults, not the sweeps' full-depth searches).
        network: the network timed (the small CNN).

    Returns:
        name -> ``{"seconds", "ratio_to_lambda_max"}`` (measures undefined on the network are left out).
    """
    model = study.trained(network)
    seconds: dict[str, float] = {}
    for n in dict.fromkeys(["lambda_max", *names]):
        runs = []
        for _ in range(TIMING_REPEATS):
            t0 = time.perf_counter()
            if isinstance(study.value(n, model, options), str):
                break
            runs.append(time.perf_counter() - t0)
        if runs:
            seconds[n] = statistics.median(runs)
    return {
        n: {"seconds": round(s, 4), "ratio_to_lambda_max": round(s / seconds["lambda_max"], 2)}
        for n, s in seconds.items()
    }


def _apgd_convergence(study: _Study, network: str = "cnn") -> dict[str, Any]:
    """Auto-PGD's worst case (the options' iterations) against a finer search on ``network``: ten times the
    iterations from four seeds, the best kept. Both are lower bounds on the maximum; the gap says how far the
    measure's budget is from what more search finds.

    Args:
        study: the trained networks and data.
        network: the network searched.

    Returns:
        Per norm: the measure's value, the finer search's, and their relative gap.
    """
    model = study.trained(network)
    o = study.options
    out = {}
    for norm, rho in (("linf", o.rho_linf), ("l2", o.rho_l2)):
        base = worst_case_sharpness(
            model, CE, study.batches, rho=rho, norm=norm, steps=o.apgd_steps, seed=o.seed, dtype=torch.float64
        ).value
        fine = max(
            worst_case_sharpness(
                model,
                CE,
                study.batches,
                rho=rho,
                norm=norm,
                steps=10 * o.apgd_steps,
                seed=o.seed + s,
                dtype=torch.float64,
            ).value
            for s in range(4)
        )
        out[norm] = {
            "rho": rho,
            "steps": o.apgd_steps,
            "value": base,
            "finer_search": fine,
            "finer_steps": 10 * o.apgd_steps,
            "finer_restarts": 4,
            "relative_gap": (fine - base) / fine if fine > 0 else 0.0,
        }
    return out


def _figure(rows: dict[str, dict[str, Any]], transforms: Sequence[str], sweeps: dict[str, Any], path: Path) -> Path:
    """The table as a coloured grid (log10 of the spread in each cell), beside the alpha sweep on the MLP."""
    import matplotlib.pyplot as plt

    from icml17.core.report import save_figure

    names = list(rows)
    colours = {"n/a": "#dddddd", "unchanged": "#4daf4a", "bounded": "#ffbf00", "arbitrary": "#e41a1c"}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 0.42 * len(names) + 1.8), gridspec_kw={"width_ratios": [1.1, 1]})
    for i, n in enumerate(names):
        for j, kind in enumerate(transforms):
            c = rows[n][kind]
            ax.add_patch(plt.Rectangle((j, i), 1, 1, color=colours[c["verdict"]], ec="white"))
            text = (
                "n/a"
                if c["verdict"] == "n/a"
                else (
                    "="
                    if c["verdict"] == "unchanged"
                    else f"x{c['spread']:.2g}"
                    if math.isfinite(c["spread"])
                    else "inf"
                )
            )
            if c["claimed"]:
                text += " *" if c["claim_confirmed"] else " !"
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
    ax.set_xlim(0, len(transforms))
    ax.set_ylim(len(names), 0)
    ax.set_xticks(np.arange(len(transforms)) + 0.5, transforms, fontsize=8)
    ax.set_yticks(np.arange(len(names)) + 0.5, names, fontsize=8)
    ax.set_title(
        "verdict over the sweep (green unchanged, amber bounded, red arbitrary);\n"
        "x: max/min over the sweep; *: the paper's invariance claim confirmed, !: refuted",
        fontsize=8,
    )
    mlp = sweeps.get("mlp", {}).get("alpha", {})
    flat = [n for n, m in mlp.get("measures", {}).items() if m["verdict"] == "unchanged"]
    styles = iter([(c, ls) for ls in ("-", "--", ":") for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]])
    for n, m in mlp.get("measures", {}).items():
        if m["verdict"] not in ("n/a", "unchanged"):
            v = np.abs(np.asarray(m["values"], dtype=float))
            v0 = v[list(mlp["params"]).index(1.0)]
            colour, ls = next(styles)
            bx.loglog(mlp["params"], v / v0 if v0 > 0 else v, "o", ls=ls, color=colour, ms=3, lw=1, label=n)
    if flat:
        bx.loglog(mlp["params"], np.ones(len(mlp["params"])), "s-", color="#4daf4a", lw=2, ms=4,
                  label=textwrap.fill(f"{len(flat)} unchanged: " + ", ".join(flat), 70))  # fmt: skip
    bx.set_xlabel("alpha (T_alpha = (alpha, 1/alpha) on the 784-100-10 MLP)")
    bx.set_ylabel("value / value at alpha = 1")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


def run_invariance_study(
    out_dir: Path,
    data_dir: Path | None,
    run_root: Path,
    *,
    names: Sequence[str] | None = None,
    transforms: Sequence[str] = TRANSFORMS,
    networks: Sequence[str] = tuple(NETWORKS),
    quick: bool = False,
    command: str = "",
    seed: int = 0,
    device: torch.device | str | None = None,
    options: FlatnessOptions | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the networks, run every sweep, write ``invariance.json`` and ``invariance.png`` into ``out_dir``.

    Args:
        out_dir: where the record and the figure go.
        data_dir: the MNIST folder's parent (None: the default data directory).
        run_root: the training cache.
        names: registry measures (default: all).
        transforms: names of :data:`TRANSFORMS`.
        networks: names of :data:`NETWORKS`.
        quick: tiny sizes, for tests (the record says so; not a result).
        command: the command line, for the record.
        seed: the seed of the data subset, the initialisations and the measures.
        device: where to train and measure (default the CPU).
        options: the sweeps' options (default :class:`FlatnessOptions` with ``seed``, and Jiang et al.'s searches
            run to full depth); the cost ratios always time the registry's defaults.
        log: progress lines.

    Returns:
        The figure's path (the record beside it).

    Raises:
        ConfigError: unknown measures, transforms or networks.
    """
    from icml17.core.config import ConfigError

    names = list(REGISTRY) if names is None else list(names)
    bad = (
        [n for n in names if n not in REGISTRY]
        + [t for t in transforms if t not in TRANSFORMS]
        + [n for n in networks if n not in NETWORKS]
    )
    if bad:
        raise ConfigError(
            f"unknown {bad}; measures from {sorted(REGISTRY)}, transforms from {list(TRANSFORMS)}, "
            f"networks from {list(NETWORKS)}"
        )
    t0 = time.perf_counter()
    cfg = InvarianceStudyConfig.quick() if quick else InvarianceStudyConfig()
    cfg = InvarianceStudyConfig(**{**asdict(cfg), "seed": seed})
    # the sweeps run Jiang et al.'s searches to full depth, so that changes below their early stop show
    options = options or FlatnessOptions(seed=seed, pacbayes_tolerance=1e-9)
    study = _Study(cfg, data_dir, Path(run_root), quick, options, torch.device(device or "cpu"))
    sweeps = _run_sweeps(study, names, transforms, networks, log)
    rows = _table(sweeps, names, transforms)
    costs = _cost_ratios(study, names, FlatnessOptions(seed=seed)) if "cnn" in networks else {}
    convergence = _apgd_convergence(study) if "cnn" in networks else {}
    claims = [
        (n, k, c["claim_confirmed"]) for n, r in rows.items() for k, c in r.items() if c["claim_confirmed"] is not None
    ]
    out_dir = Path(out_dir)
    fig = _figure(rows, transforms, sweeps, out_dir / "invariance.png")
    record = {
        "system": "sharpness",
        "experiment": "invariance",
        "metric": "claims_confirmed_fraction",
        "value": sum(ok for *_, ok in claims) / len(claims) if claims else 1.0,
        "higher_is_better": None,
        "claim": "which flatness measures survive which function-preserving reparametrizations",
        "verdict_rules": {
            "tolerance": TOLERANCE,
            "output_tolerance": OUTPUT_TOLERANCE,
            "arbitrary": f"spread >= {FOLLOW_SPREAD} and |d log v / d log p| >= {FOLLOW_SLOPE} at a sweep end",
            "dtype": "float64",
        },
        "table": rows,
        "claims_refuted": [[n, k] for n, k, ok in claims if not ok],
        "cost_on_small_cnn": costs,
        "apgd_convergence": convergence,
        "sweeps": sweeps,
        "networks": {k: NETWORKS[k] for k in networks},
        "models": study.trainings,
        "data": {
            "dataset": "mnist",
            "n_train": cfg.n_train,
            "n_measure": cfg.n_measure,
            "batch": cfg.batch,
            "subset_seed": cfg.seed,
        },
        "options": asdict(options),
        "quick": quick,
        "seed": seed,
        "command": command,
        "wall_time_s": round(time.perf_counter() - t0, 1),
        "figure": fig.name,
    }
    write_record(out_dir / "invariance.json", strict_json(record), device=study.device)
    return fig


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by the string ``"inf"`` / ``"nan"`` (strict JSON).

    Args:
        obj: nested dicts, lists and numbers.

    Returns:
        The same structure.
    """
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj
