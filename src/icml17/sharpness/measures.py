"""Named flatness measures of (model, loss, data), computed the same way everywhere (CLI, checker, reproductions).

Euclidean measures (Dinh et al. 2017, section 4): ``lambda_max`` (Lanczos), ``topk``, ``trace`` (Hutchinson),
``trace_hutchpp``, ``epsilon`` (ball epsilon-sharpness), ``keskar`` / ``keskar_random`` (Keskar et al. 2017,
Metric 2.1 with A = I or a random n x 100 matrix), ``grad_norm`` (Theorem 6). Scale-aware measures:
``adaptive_lambda_max``, ``adaptive_trace`` (diag(|theta|) H diag(|theta|)) and ``adaptive_sharpness`` (ASAM).
``loss`` is reported for reference. Every result records the mode (eval by default), dtype and HVP count.
Every measure runs on the model's device (the batches are moved there), always in float32 or float64: curvature is
never computed under autocast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from icml17.core.config import ConfigError
from icml17.core.curvature import Batch, HessianOperator, hutchinson, hutchpp, lanczos
from icml17.core.functional import LossFn, flatten
from icml17.sharpness.adaptive import AdaptiveHessian
from icml17.sharpness.ball import ball_sharpness
from icml17.sharpness.keskar import keskar_sharpness, random_subspace

MEASURES = (
    "loss",
    "grad_norm",
    "lambda_max",
    "topk",
    "trace",
    "trace_hutchpp",
    "epsilon",
    "keskar",
    "keskar_random",
    "adaptive_lambda_max",
    "adaptive_trace",
    "adaptive_sharpness",
)


# One convention for every "how much can the loss rise nearby" measure: a fraction of (1 + loss). Keskar et al.
# print their phi times 100; multiply by 100 to compare with their tables.
RELATIVE_INCREASES = ("epsilon", "keskar", "keskar_random", "adaptive_sharpness")
UNITS = "fraction: (max nearby loss - loss) / (1 + loss)"


@dataclass(frozen=True)
class MeasureOptions:
    """How :func:`measure` computes each measure.

    Attributes:
        lanczos_tol: Lanczos's stopping rule, the relative Ritz residual.
        max_iter: Lanczos iterations at most.
        k: eigenvalues of ``topk``.
        probes: Hutchinson probes, or Hutch++ matrix-vector products.
        eps: the epsilon-sharpness radius (Euclidean).
        keskar_eps: the Keskar box's relative size.
        keskar_p: the random subspace's dimension of ``keskar_random``.
        adaptive_rho: the adaptive sharpness radius.
        ascent_steps: gradient-ascent steps of the ball measures.
        seed: the seed of every random probe and start.
    """

    lanczos_tol: float = 1e-3  # relative Ritz residual
    max_iter: int = 100
    k: int = 5  # for topk
    probes: int = 64  # Hutchinson probes / Hutch++ matvecs
    eps: float = 0.05  # epsilon-sharpness radius (Euclidean)
    keskar_eps: float = 1e-3
    keskar_p: int = 100
    adaptive_rho: float = 0.05
    ascent_steps: int = 20
    seed: int = 0


def check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise ConfigError(f"unknown measure(s) {unknown}; choose from {list(MEASURES)}")
    if not names:
        raise ConfigError(f"no measure asked for; choose from {list(MEASURES)}")
    return names


def measure(
    model: nn.Module,
    loss_fn: LossFn,
    data: Batch | Iterable[Batch],
    names: Sequence[str],
    *,
    dtype: torch.dtype | None = None,
    mode: str = "eval",
    options: MeasureOptions = MeasureOptions(),
    sharded: bool = False,
) -> dict[str, Any]:
    """The requested flatness measures of ``model`` at its current parameters, on ``data``.

    Every Hessian product is exact (forward-over-reverse, no finite differences); the curvature is never
    computed under autocast.

    Args:
        model: the network, measured as it is (not changed).
        loss_fn: ``loss_fn(outputs, targets)``, a mean over the batch.
        data: one ``(inputs, targets)`` batch or an iterable of them; the loss is their mean.
        names: names from :data:`MEASURES` (``"lambda_max"``, ``"trace"``, ``"epsilon"``, ...).
        dtype: compute in this dtype (default: the model's; float64 for tight comparisons).
        mode: ``"eval"`` (default) or ``"train"``: the model's mode while measuring (batch norm, dropout).
        options: how each measure is computed (probes, radii, tolerances, seed).
        sharded: ``data`` is this process's share of a dataset split over torch.distributed ranks; every loss,
            gradient and Hessian product is then the whole dataset's (all ranks must call with the same options).

    Returns:
        The measures by name, plus ``mode``, ``dtype``, ``n_params``, ``n_hvp`` (Hessian-vector products),
        ``hvp_method`` and ``options``; ``trace`` comes with ``trace_stderr``, the ball measures with ``units``.

    Raises:
        ConfigError: an unknown measure name, or none; parameters holding NaN or infinite values (named).

    Examples:
        For a linear least-squares model the Hessian is 2 X^T X / n, whatever the weights:

        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Linear(3, 1, bias=False).double()
        >>> x, y = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 1, dtype=torch.float64)
        >>> out = measure(model, nn.functional.mse_loss, (x, y), ["lambda_max", "loss"])
        >>> top = torch.linalg.eigvalsh(2 * x.T @ x / 50)[-1].item()
        >>> abs(out["lambda_max"] - top) / top < 1e-6, out["mode"], out["n_params"]
        (True, 'eval', 3)
    """
    names = check_names(names)
    bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:  # else the solver fails deep inside, naming no parameter
        raise ConfigError(
            f"the model's parameter{'s' if len(bad) > 1 else ''} {', '.join(bad[:5])}"
            f"{f' (and {len(bad) - 5} more)' if len(bad) > 5 else ''} hold{'' if len(bad) > 1 else 's'} "
            f"NaN or infinite values: no curvature is defined there; measure finite weights"
        )
    op = HessianOperator(model, loss_fn, data, dtype=dtype, mode=mode, sharded=sharded)
    o = options
    out: dict[str, Any] = {"mode": mode, "dtype": str(op.dtype).replace("torch.", ""), "n_params": op.size}
    adaptive = AdaptiveHessian(op)
    for name in names:
        if name == "loss":
            out[name] = float(op.loss.loss())
        elif name == "grad_norm":
            out[name] = float(flatten(op.loss.loss_and_grad()[1]).norm())
        elif name == "lambda_max":
            out[name] = lanczos(op, 1, tol=o.lanczos_tol, max_iter=o.max_iter, seed=o.seed).eigenvalues[0]
        elif name == "topk":
            out[name] = lanczos(op, o.k, tol=o.lanczos_tol, max_iter=o.max_iter, seed=o.seed).eigenvalues
        elif name == "trace":
            tr = hutchinson(op, o.probes, seed=o.seed)
            out[name], out["trace_stderr"] = tr.estimate, tr.stderr
        elif name == "trace_hutchpp":
            out[name] = hutchpp(op, o.probes, seed=o.seed).estimate
        elif name == "epsilon":
            top = lanczos(op, 1, tol=o.lanczos_tol, max_iter=o.max_iter, seed=o.seed).eigenvectors[:, 0]
            out[name] = ball_sharpness(op.loss, o.eps, steps=o.ascent_steps, directions=(top, -top), seed=o.seed).value
        elif name == "keskar":
            out[name] = keskar_sharpness(op.loss, o.keskar_eps, seed=o.seed).value
        elif name == "keskar_random":
            A = random_subspace(op.size, o.keskar_p, seed=o.seed, dtype=op.dtype)
            out[name] = keskar_sharpness(op.loss, o.keskar_eps, subspace=A, seed=o.seed).value
        elif name == "adaptive_lambda_max":
            out[name] = lanczos(adaptive, 1, tol=o.lanczos_tol, max_iter=o.max_iter, seed=o.seed).eigenvalues[0]
        elif name == "adaptive_trace":
            out[name] = hutchinson(adaptive, o.probes, seed=o.seed).estimate
        elif name == "adaptive_sharpness":
            out[name] = ball_sharpness(
                op.loss, o.adaptive_rho, scale=adaptive.scale, steps=o.ascent_steps, seed=o.seed
            ).value
    relative = [n for n in names if n in RELATIVE_INCREASES]
    if relative:
        out["units"] = {n: UNITS for n in relative}
    out["n_hvp"] = op.n_hvp
    out["hvp_method"] = op.loss.method
    out["options"] = asdict(o)
    return out
