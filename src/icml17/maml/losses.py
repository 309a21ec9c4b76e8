"""Task losses of MAML's supervised experiments (Finn et al. 2017, section 3.1, equations 2 and 3).

* Regression: mean squared error, mean-reduced over the points (the reference's ``tf.reduce_mean``).
* Classification, ``scale='reference'``: cross-entropy summed over the examples and divided by K (shots). The
  reference code divides the per-example loss vector by ``update_batch_size`` and ``tf.gradients`` sums it, so
  its loss is ``N * mean CE`` on the support set; the inner learning rates of the paper (0.4 for Omniglot
  5-way) are for this scaling. With ``scale='mean'`` the loss is the plain mean, ``N`` times smaller: multiply
  the inner learning rate by ``N`` for the same update. Applied identically to the query (outer) loss, where
  with Adam the scale only matters through gradient clipping.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from icml17.core.config import ConfigError
from icml17.core.functional import LossFn

LOSS_SCALES = ("reference", "mean")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all points (the sinusoid loss and score).

    Args:
        pred: predictions, (B, D).
        target: targets of the same shape.

    Returns:
        A 0-dim tensor.
    """
    return (pred - target).pow(2).mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, *, shots: int, scale: str = "reference") -> torch.Tensor:
    """Cross-entropy of ``logits`` against ``labels``, scaled as the module docstring explains.

    To hand it to :class:`~icml17.maml.MAML`, bind ``shots`` first: :class:`CrossEntropy` does, and checks its
    values when it is built rather than inside ``vmap``.

    Args:
        logits: (B, N) for N ways.
        labels: (B,) class indices in [0, N).
        shots: K, the examples per class of the support set; the reference scale divides the sum by it.
        scale: ``"reference"`` (sum / K, the scale of the paper's inner learning rates) or ``"mean"``.

    Returns:
        A 0-dim tensor.

    Raises:
        ValueError: ``scale`` is not one of :data:`LOSS_SCALES`.
    """
    if scale == "reference":
        return F.cross_entropy(logits, labels, reduction="sum") / shots
    if scale == "mean":
        return F.cross_entropy(logits, labels)
    raise ValueError(f"unknown loss scale {scale!r}; choose one of {LOSS_SCALES}")


@dataclass(frozen=True)
class CrossEntropy:
    """The classification loss with its shots bound: ``CrossEntropy(shots=K)(logits, labels)``.

    A loss that ``MAML`` calls must take ``(prediction, target)`` only; this one needs K, so it is given at
    construction, where a wrong value is reported at once rather than from inside ``vmap`` at the first step.

    Attributes:
        shots: K, the examples per class of the support set (>= 1).
        scale: ``"reference"`` (cross-entropy summed and divided by K) or ``"mean"``; see :func:`cross_entropy`.

    Raises:
        ConfigError: ``shots`` < 1 or an unknown ``scale``.

    Examples:
        >>> import torch
        >>> loss = CrossEntropy(shots=2)
        >>> logits, labels = torch.zeros(4, 2), torch.tensor([0, 0, 1, 1])   # two ways, two shots
        >>> round(loss(logits, labels).item(), 4)   # 4 x log(2) / 2, i.e. N times the mean
        1.3863
        >>> CrossEntropy(shots=0)
        Traceback (most recent call last):
        ...
        icml17.core.config.ConfigError: shots must be >= 1 (the examples per class of a task's support set), got 0
    """

    shots: int
    scale: str = "reference"

    def __post_init__(self) -> None:
        if isinstance(self.shots, bool) or not isinstance(self.shots, int) or self.shots < 1:
            raise ConfigError(f"shots must be >= 1 (the examples per class of a task's support set), got {self.shots}")
        if self.scale not in LOSS_SCALES:
            raise ConfigError(f"scale {self.scale!r} is not one of {LOSS_SCALES}")

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, labels, shots=self.shots, scale=self.scale)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions (the classification score).

    Args:
        logits: (B, N).
        labels: (B,) class indices.

    Returns:
        A 0-dim tensor of the logits' dtype.
    """
    return (logits.argmax(-1) == labels).to(logits.dtype).mean()


def make_losses(task: str, shots: int, scale: str = "reference") -> tuple[LossFn, LossFn, str]:
    """The loss, the score and the score's name for a task family: regression scores MSE, classification accuracy.

    Args:
        task: ``"sinusoid"`` or an image task (``"omniglot"``, ``"miniimagenet"``, ``"cifar10"``).
        shots: K of the classification loss.
        scale: the classification loss scale, one of :data:`LOSS_SCALES`.

    Returns:
        ``(loss_fn, score_fn, score_name)``.
    """
    if task == "sinusoid":
        return mse, mse, "mse"
    return CrossEntropy(shots, scale), accuracy, "accuracy"


def check_loss_fn(fn: LossFn, name: str = "loss_fn") -> None:
    """Refuse a loss that cannot be called as ``fn(prediction, target)`` before it runs inside ``vmap``.

    Args:
        fn: the loss or score to check.
        name: the parameter it was passed as, for the message.

    Raises:
        ConfigError: ``fn`` is not callable, or needs arguments beyond the two (``cross_entropy`` without
            ``shots=``, for instance).
    """
    if not callable(fn):
        raise ConfigError(f"{name} must be a function of (prediction, target), got {type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_kw = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    extra = [p.name for p in positional[2:] if p.default is p.empty]
    label = getattr(fn, "__name__", type(fn).__name__)
    if required_kw or extra:
        hint = " (use CrossEntropy(shots=K))" if "shots" in required_kw + extra else ""
        raise ConfigError(
            f"{name} {label} needs {', '.join(required_kw + extra)}=...; bind it before passing the "
            f"loss, e.g. functools.partial({label}, {(required_kw + extra)[0]}=...){hint}"
        )
    if len(positional) < 2:
        raise ConfigError(f"{name} {label} must take two arguments (prediction, target), it takes {len(positional)}")
