"""The invariance checker: does a flatness measure survive function-preserving reparametrizations?

For a measure and a list of transforms (:mod:`transforms`, :mod:`radial`): confirm on probe inputs that each
transformed model computes the same outputs (on its transformed inputs), recompute the measure on the
transformed model and data, and report every value, its ratio to the original, the analytic ratio where one is
known (``transform.expected_ratio``), and the spread max |value| / min |value| over the original and all
transforms. A spread of 1 means invariant; Dinh et al. 2017 show it is unbounded for lambda_max, trace and
epsilon-sharpness under alpha-scaling.

Everything runs on the model's device; probes and batches are moved there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from icml17.core.curvature import Batch, as_batches
from icml17.core.functional import LossFn
from icml17.sharpness.measures import MeasureOptions, check_names, measure
from icml17.sharpness.transforms import Reparametrized


class Transform(Protocol):
    name: str

    def __call__(self, model: nn.Module) -> Reparametrized: ...
    def expected_ratio(self, measure: str) -> float | None: ...


@dataclass
class InvarianceRow:
    """One transform's line of an :class:`InvarianceReport`.

    Attributes:
        transform: the transform's name.
        max_output_diff: max |f'(x') - f(x)| / max(1, max |f(x)|) on the probe inputs.
        outputs_preserved: ``max_output_diff`` is within the report's tolerance.
        value: the measure on the transformed model.
        ratio: ``value`` / the original's.
        expected_ratio: the ratio the theory predicts, None where it predicts none.
    """

    transform: str
    max_output_diff: float  # max |f'(x') - f(x)| / max(1, max |f(x)|) on the probe inputs
    outputs_preserved: bool
    value: float
    ratio: float
    expected_ratio: float | None


@dataclass
class InvarianceReport:
    """What :func:`check_invariance` found: the measure on the original model and on each transform.

    Attributes:
        measure: the measure's name.
        original: its value on the original model.
        rows: one :class:`InvarianceRow` per transform.
        tolerance: the relative output difference above which a transform does not preserve the function.
    """

    measure: str
    original: float
    rows: list[InvarianceRow] = field(default_factory=list)
    tolerance: float = 0.0

    @property
    def spread(self) -> float:
        """max |value| / min |value| over the original and every transform: 1 means invariant."""
        values = [abs(self.original)] + [abs(r.value) for r in self.rows]
        return max(values) / min(values) if min(values) > 0 else float("inf")

    def table(self) -> str:
        """The report as a text table: one line per transform with its output difference, value and ratios."""
        lines = [
            f"measure {self.measure}: original {self.original:.6g}, spread (max/min) {self.spread:.4g}",
            f"{'transform':<40} {'out diff':>10} {'value':>12} {'ratio':>10} {'expected':>10}",
        ]
        for r in self.rows:
            exp = "-" if r.expected_ratio is None else f"{r.expected_ratio:.4g}"
            lines.append(f"{r.transform:<40} {r.max_output_diff:>10.2e} {r.value:>12.6g} {r.ratio:>10.4g} {exp:>10}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready numbers (for records)."""
        return {
            "measure": self.measure,
            "original": self.original,
            "spread": self.spread,
            "tolerance": self.tolerance,
            "rows": [r.__dict__ for r in self.rows],
        }


def output_difference(
    model: nn.Module, rep: Reparametrized, probe: torch.Tensor, dtype: torch.dtype | None = None
) -> float:
    """max |rep.model(rep.inputs(x)) - model(x)| / max(1, max |model(x)|), both in eval mode, on the model's
    device (the probe is moved there)."""
    a, b = model, rep.model
    first = next(model.parameters(), None)
    if first is not None:
        probe = probe.to(first.device)
    if dtype is not None:
        a, b, probe = copy.deepcopy(a).to(dtype), copy.deepcopy(b).to(dtype), probe.to(dtype)
    with torch.no_grad():
        was_a, was_b = a.training, b.training
        a.eval(), b.eval()
        ref, out = a(probe), b(rep.inputs(probe))
        a.train(was_a), b.train(was_b)
    return float((out - ref).abs().max() / ref.abs().max().clamp_min(1.0))


def _map_data(data: Batch | Iterable[Batch], fn: Callable[[torch.Tensor], torch.Tensor]) -> list[Batch]:
    return [(fn(x), y) for x, y in as_batches(data)]


def check_invariance(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    transforms: Sequence[Transform],
    measure_name: str,
    *,
    probe: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
    options: MeasureOptions = MeasureOptions(),  # noqa: B008 (a frozen dataclass: one shared default is safe)
    tolerance: float | None = None,
) -> InvarianceReport:
    """Measure ``measure_name`` on ``model`` and on every transformed model; see the module docstring.

    Args:
        model: the network (not changed: each transform makes a copy).
        loss_fn: ``loss_fn(outputs, targets)``, a mean over the batch.
        data: one ``(inputs, targets)`` batch or an iterable of them; each transform maps the inputs it needs to.
        transforms: function-preserving transforms (:class:`AlphaScaling`, :class:`PerNeuronScaling`, ...).
        measure_name: one of :data:`MEASURES`.
        probe: inputs on which outputs are compared (default: the first batch's).
        dtype: compute in this dtype (default: the model's).
        options: how the measure is computed.
        tolerance: the relative output difference above which a transform counts as not function-preserving
            (default 1e-5, or 1e-10 in float64).

    Returns:
        An :class:`InvarianceReport`.

    Raises:
        ConfigError: an unknown measure.
        TransformError: a transform that does not apply to ``model``.
    """
    check_names([measure_name])
    batches = _map_data(data, lambda x: x)
    probe = batches[0][0] if probe is None else probe
    tolerance = tolerance if tolerance is not None else (1e-10 if dtype == torch.float64 else 1e-5)
    original = float(measure(model, loss_fn, batches, [measure_name], dtype=dtype, options=options)[measure_name])
    report = InvarianceReport(measure_name, original, tolerance=tolerance)
    for t in transforms:
        rep = t(model)
        diff = output_difference(model, rep, probe, dtype)
        value = float(
            measure(rep.model, loss_fn, _map_data(batches, rep.inputs), [measure_name], dtype=dtype, options=options)[
                measure_name
            ]
        )
        report.rows.append(
            InvarianceRow(
                t.name,
                diff,
                diff <= tolerance,
                value,
                value / original if original else float("nan"),
                t.expected_ratio(measure_name),
            )
        )
    return report
