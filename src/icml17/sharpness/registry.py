"""One registry of flatness measures: name -> a function of (model, loss, data) with a uniform signature.

Every entry of :data:`REGISTRY` is a :class:`MeasureSpec` whose ``fn(model, loss_fn, data, options, dtype, mode)``
returns a float, with the paper it comes from, a cost note, and the transforms under which its paper states it
is invariant (the invariance study checks each claim). The Euclidean and Keskar measures, and the adaptive
Hessian's lambda_max, are the ones :func:`icml17.sharpness.measure` computes, exposed through the same
interface; the others live in :mod:`~icml17.sharpness.perturbation` (adaptive sharpness),
:mod:`~icml17.sharpness.scale_invariant` (normalized sharpness, relative flatness, Fisher-Rao norm) and
:mod:`~icml17.sharpness.pacbayes` (Jiang et al.'s measures). ``icml17 sharpness measure --measures all`` and the
invariance and correlation studies all go through :func:`compute_measures`.

Defaults (:class:`FlatnessOptions`) are for small MNIST and CIFAR networks; the radii are ours, chosen so that
the loss increases of the small trained networks of the studies are of order 0.01-1 (neither zero nor
saturated). Change them for other scales.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from icml17.core.config import ConfigError
from icml17.core.curvature import Batch
from icml17.core.functional import LossFn
from icml17.sharpness.measures import MEASURES, MeasureOptions, measure
from icml17.sharpness.pacbayes import pacbayes_flatness
from icml17.sharpness.perturbation import average_case_sharpness, worst_case_sharpness
from icml17.sharpness.scale_invariant import (
    NotApplicable,
    fisher_rao_norm,
    normalized_sharpness,
    relative_flatness,
)

# the function-preserving transforms of the library, by the names the invariance study uses
TRANSFORMS = ("alpha", "per-neuron", "bn-scale", "input-scale", "radial")
DIAGONAL = ("alpha", "per-neuron", "bn-scale")


@dataclass(frozen=True)
class FlatnessOptions:
    """How :func:`compute_measures` computes each measure (radii, budgets, seeds).

    Attributes:
        lanczos_tol: Lanczos's relative Ritz residual (``lambda_max``, ``adaptive_lambda_max``).
        max_iter: Lanczos iterations at most.
        probes: Hutchinson probes (``trace``).
        eps: the Euclidean ball's radius (``epsilon``).
        keskar_eps: the Keskar box's relative size.
        ascent_steps: gradient-ascent steps of ``epsilon``.
        rho_linf: the adaptive l-infinity worst case's radius.
        rho_l2: the adaptive l2 worst case's radius.
        rho_avg: the adaptive average case's noise scale.
        eta: ASAM's offset in c = |w| + eta (0: exactly invariant under rescalings).
        apgd_steps: Auto-PGD iterations per batch (Andriushchenko et al.: 20).
        apgd_restarts: Auto-PGD random starts per batch, the best kept (1: a lower bound that may stop at a lesser
            local maximum; see the tests).
        avg_samples: Monte Carlo draws of the average case.
        pacbayes_target: Jiang et al.'s deviation d of the training error.
        pacbayes_tolerance: their search's stopping tolerance on the deviation (0.01; the invariance study runs the
            search to full depth, 1e-9, so that a change smaller than the early stop still shows).
        pacbayes_samples: Monte Carlo draws per noise level (Jiang et al.: 10).
        mag_eps: the magnitude-aware offset (Jiang et al.: 1e-3).
        seed: the seed of every random draw.
    """

    lanczos_tol: float = 1e-3
    max_iter: int = 100
    probes: int = 64
    eps: float = 0.05
    keskar_eps: float = 1e-3
    ascent_steps: int = 20
    rho_linf: float = 0.02
    rho_l2: float = 0.5
    rho_avg: float = 0.2
    eta: float = 0.0
    apgd_steps: int = 20
    apgd_restarts: int = 1
    avg_samples: int = 16
    pacbayes_target: float = 0.1
    pacbayes_tolerance: float = 0.01
    pacbayes_samples: int = 10
    mag_eps: float = 1e-3
    seed: int = 0

    def measure_options(self) -> MeasureOptions:
        """The options of :func:`icml17.sharpness.measure` that these correspond to.

        Returns:
            A :class:`MeasureOptions`.
        """
        return MeasureOptions(
            lanczos_tol=self.lanczos_tol,
            max_iter=self.max_iter,
            probes=self.probes,
            eps=self.eps,
            keskar_eps=self.keskar_eps,
            ascent_steps=self.ascent_steps,
            seed=self.seed,
        )


_MeasureFn = Callable[[nn.Module, LossFn, "Batch | Iterable[Batch]", FlatnessOptions, "torch.dtype | None", str], float]


@dataclass(frozen=True)
class MeasureSpec:
    """One measure of the registry.

    Attributes:
        name: its name on the command line.
        fn: ``fn(model, loss_fn, data, options, dtype, mode) -> float``.
        reference: the paper that defines it.
        formula: the quantity, in one line.
        cost: what it spends, in products or passes.
        claimed_invariant: the transforms of :data:`TRANSFORMS` under which its paper (or, for the library's own
            measures, the theory in their module) states the value does not change.
    """

    name: str
    fn: _MeasureFn
    reference: str
    formula: str
    cost: str
    claimed_invariant: tuple[str, ...] = field(default_factory=tuple)


def _legacy(name: str) -> _MeasureFn:
    def fn(model, loss_fn, data, options, dtype, mode):
        return float(
            measure(model, loss_fn, data, [name], dtype=dtype, mode=mode, options=options.measure_options())[name]
        )

    return fn


def _spec(
    name: str, fn: _MeasureFn, reference: str, formula: str, cost: str, claimed: tuple[str, ...] = ()
) -> MeasureSpec:
    return MeasureSpec(name, fn, reference, formula, cost, claimed)


# the new measures, one line each: (model, loss_fn, data, options, dtype, mode) -> float
def _worst_linf(m, loss_fn, d, o, dtype, mode):
    return worst_case_sharpness(m, loss_fn, d, rho=o.rho_linf, norm="linf", eta=o.eta, steps=o.apgd_steps,
                                restarts=o.apgd_restarts, seed=o.seed, dtype=dtype, mode=mode).value  # fmt: skip


def _worst_l2(m, loss_fn, d, o, dtype, mode):
    return worst_case_sharpness(m, loss_fn, d, rho=o.rho_l2, norm="l2", eta=o.eta, steps=o.apgd_steps,
                                restarts=o.apgd_restarts, seed=o.seed, dtype=dtype, mode=mode).value  # fmt: skip


def _avg(m, loss_fn, d, o, dtype, mode):
    return average_case_sharpness(m, loss_fn, d, rho=o.rho_avg, samples=o.avg_samples, eta=o.eta, seed=o.seed,
                                  dtype=dtype, mode=mode).value  # fmt: skip


def _normalized(m, loss_fn, d, o, dtype, mode):
    return normalized_sharpness(m, loss_fn, d, probes=o.probes, seed=o.seed, dtype=dtype, mode=mode).value


def _relative(m, loss_fn, d, o, dtype, mode):
    return relative_flatness(m, loss_fn, d, dtype=dtype, mode=mode).value


def _relative_raw(m, loss_fn, d, o, dtype, mode):
    return relative_flatness(m, loss_fn, d, normalize_features=False, dtype=dtype, mode=mode).value


def _fisher_rao(m, loss_fn, d, o, dtype, mode):
    return fisher_rao_norm(m, loss_fn, d, dtype=dtype, mode=mode).value


def _jiang(kind: str) -> _MeasureFn:
    def fn(m, loss_fn, d, o, dtype, mode):
        return pacbayes_flatness(m, loss_fn, d, kind=kind, target=o.pacbayes_target, tolerance=o.pacbayes_tolerance,
                                 samples=o.pacbayes_samples, eps=o.mag_eps, seed=o.seed, dtype=dtype,
                                 mode=mode).value  # fmt: skip

    return fn


# fmt: off
REGISTRY: dict[str, MeasureSpec] = {s.name: s for s in [
    _spec("loss", _legacy("loss"), "-", "L(w), the mean loss", "one pass over the data", TRANSFORMS),
    _spec("lambda_max", _legacy("lambda_max"), "Dinh et al. 2017, section 4", "largest eigenvalue of the Hessian",
          "Lanczos: ~10-30 Hessian-vector products"),
    _spec("trace", _legacy("trace"), "Dinh et al. 2017, section 4", "tr(H), Hutchinson",
          "`probes` Hessian-vector products (64)"),
    _spec("epsilon", _legacy("epsilon"), "Keskar et al. 2017 (ball form, Dinh et al. 2017 section 4)",
          "max over |d|_2 <= eps of (L(w + d) - L(w)) / (1 + L(w))",
          "Lanczos for the start, then 2 x 20 gradient evaluations"),
    _spec("keskar", _legacy("keskar"), "Keskar et al. 2017, Metric 2.1 (A = I)",
          "max over |y_i| <= eps(|w_i| + 1) of (L(w + y) - L(w)) / (1 + L(w))",
          "10 L-BFGS-B iterations (~12 gradient evaluations)"),
    _spec("adaptive_lambda_max", _legacy("adaptive_lambda_max"), "this library (second-order ASAM)",
          "largest eigenvalue of diag(|w|) H diag(|w|)", "Lanczos: ~10-30 Hessian-vector products", DIAGONAL),
    _spec("adaptive_worst_linf", _worst_linf, "Kwon et al. 2021 (ASAM); Andriushchenko et al. 2023",
          "mean over batches of max over |d / |w||_inf <= rho of L_B(w + d) - L_B(w)",
          "Auto-PGD: 21 gradient evaluations per batch", DIAGONAL),
    _spec("adaptive_worst_l2", _worst_l2, "Kwon et al. 2021 (ASAM); Andriushchenko et al. 2023",
          "mean over batches of max over |d / |w||_2 <= rho of L_B(w + d) - L_B(w)",
          "Auto-PGD: 21 gradient evaluations per batch", DIAGONAL),
    _spec("adaptive_avg", _avg, "Andriushchenko et al. 2023", "E over z ~ N(0, I) of L(w + rho |w| z) - L(w)",
          "`avg_samples` loss evaluations (16)", DIAGONAL),
    _spec("normalized_sharpness", _normalized, "Tsuzuku, Sato, Sugiyama 2020",
          "sum over weight matrices of min over a, b > 0 of sum_ij h_ij a_i b_j + W_ij^2 / (a_i b_j)",
          "exact Hessian diagonal: per-example gradients, one per output class", DIAGONAL),
    _spec("relative_flatness", _relative, "Petzka, Kamp, Adilova, Sminchisescu, Boley 2021",
          "sum_{s,s'} <w_s, w_s'> tr(H_{s,s'}) of the last layer, features at unit std",
          "one forward pass and one second-order pass per output unit", DIAGONAL),
    _spec("relative_flatness_raw", _relative_raw, "Petzka et al. 2021 (without feature normalisation)",
          "sum_{s,s'} <w_s, w_s'> tr(H_{s,s'}) of the last layer, raw features",
          "one forward pass and one second-order pass per output unit", ("alpha", "bn-scale")),
    _spec("fisher_rao", _fisher_rao, "Liang, Poggio, Rakhlin, Stokes 2019",
          "sqrt(E[<w, grad_w l(x, y)>^2]), y from the data", "one forward-mode pass over the data",
          ("alpha", "per-neuron")),
    _spec("pacbayes_flatness", _jiang("pacbayes"), "Jiang et al. 2020 (pacbayes.flatness)",
          "1 / sigma'^2, sigma' the largest sigma with |E error(w + N(0, sigma^2 I)) - error(w)| = 0.1",
          "up to 15 x 10 passes over the data"),
    _spec("pacbayes_mag_flatness", _jiang("pacbayes_mag"), "Jiang et al. 2020 (pacbayes.mag.flatness)",
          "1 / alpha'^2 with noise variance alpha^2 w_i^2 + eps^2", "up to 15 x 10 passes over the data"),
    _spec("mag_sharpness", _jiang("mag_sharpness"), "Jiang et al. 2020 (mag.sharpness.flatness)",
          "1 / alpha'^2 with the worst u in |u_i| <= alpha |w_i| + eps",
          "up to 15 x 11 gradient evaluations over the data"),
]}
# fmt: on


def check_measure_names(names: Iterable[str]) -> list[str]:
    """The measures asked for, ``"all"`` expanded to every registered one (in registry order).

    Args:
        names: registry names, names of :data:`icml17.sharpness.MEASURES`, or ``"all"``.

    Returns:
        The names, without repeats, in the order given.

    Raises:
        ConfigError: an unknown name, or none.
    """
    out: list[str] = []
    for n in names:
        for m in REGISTRY if n == "all" else [n]:
            if m not in out:
                out.append(m)
    known = set(REGISTRY) | set(MEASURES)
    unknown = [n for n in out if n not in known]
    if unknown:
        raise ConfigError(f"unknown measure(s) {unknown}; choose from {sorted(known)} or 'all'")
    if not out:
        raise ConfigError(f"no measure asked for; choose from {sorted(known)} or 'all'")
    return out


def compute_measure(
    name: str,
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    *,
    options: FlatnessOptions = FlatnessOptions(),
    dtype: torch.dtype | None = None,
    mode: str = "eval",
) -> float:
    """One registered measure of ``model`` at its current parameters.

    Args:
        name: a key of :data:`REGISTRY`.
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        options: radii, budgets and seeds.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.

    Returns:
        The value.

    Raises:
        ConfigError: an unknown name.
        NotApplicable: the measure is not defined for this model (the message says why).
    """
    if name not in REGISTRY:
        raise ConfigError(f"unknown measure {name!r}; choose from {sorted(REGISTRY)}")
    return float(REGISTRY[name].fn(model, loss_fn, data, options, dtype, mode))


def compute_measures(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    names: Sequence[str],
    *,
    options: FlatnessOptions = FlatnessOptions(),
    dtype: torch.dtype | None = None,
    mode: str = "eval",
    sharded: bool = False,
) -> dict[str, Any]:
    """Several measures, each timed, those undefined for the model reported with the reason.

    Names of :data:`icml17.sharpness.MEASURES` (``lambda_max``, ``topk``, ``keskar_random``, ...) are computed by
    :func:`icml17.sharpness.measure`, one call per name, with its fields (``n_params``, ``n_hvp``, ``hvp_method``,
    ``trace_stderr``, ``units``); the others by the registry.

    Args:
        model: the network (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a batch mean.
        data: one ``(x, y)`` batch or several.
        names: measure names, or ``["all"]``.
        options: radii, budgets and seeds.
        dtype: compute in this dtype (default: the model's).
        mode: ``"eval"`` or ``"train"``.
        sharded: the data is this rank's shard (torch.distributed); only :func:`icml17.sharpness.measure`'s
            measures support it.

    Returns:
        ``{name: value}`` for every measure computed, plus ``seconds`` (wall time per measure; none for
        measure()'s names on sharded data, computed in one call), ``not_applicable`` (name -> reason), ``mode``,
        ``dtype`` and ``options``, and measure()'s fields where any of its names was asked for.

    Raises:
        ConfigError: unknown names, or registry-only measures asked for on sharded data.
    """
    names = check_measure_names(names)
    if sharded and any(n not in MEASURES for n in names):
        raise ConfigError(
            f"{[n for n in names if n not in MEASURES]} do not run on data sharded over processes: "
            "measure them in one process"
        )
    out: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    known = [n for n in names if n in MEASURES]
    if known:  # measure()'s own: one call per name, timed (one call for all when sharded: every rank makes it)
        n_hvp = 0
        for group in [known] if sharded else [[n] for n in known]:
            t0 = time.perf_counter()
            got = measure(
                model, loss_fn, data, group, dtype=dtype, mode=mode, options=options.measure_options(), sharded=sharded
            )
            n_hvp += got.pop("n_hvp")
            got.pop("options", None)
            out.setdefault("units", {}).update(got.pop("units", {}))
            out.update(got)
            if len(group) == 1:
                seconds[group[0]] = round(time.perf_counter() - t0, 4)
        out["n_hvp"] = n_hvp
        if not out["units"]:
            del out["units"]
    for n in (n for n in names if n not in MEASURES):
        t0 = time.perf_counter()
        try:
            out[n] = compute_measure(n, model, loss_fn, data, options=options, dtype=dtype, mode=mode)
        except NotApplicable as e:
            skipped[n] = str(e)
            continue
        seconds[n] = round(time.perf_counter() - t0, 4)
    first = next(model.parameters(), None)
    out.update(
        {
            "n_params": sum(p.numel() for p in model.parameters()),
            "mode": mode,
            "dtype": str(dtype or (first.dtype if first is not None else torch.float32)).replace("torch.", ""),
            "seconds": seconds,
            "not_applicable": skipped,
            "options": asdict(options),
        }
    )
    return out
