"""The published numbers MAML's supervised records are compared with, in one place.

They are not part of a training config: a paper's number says nothing about what a run trains, so it is looked up
by the preset's name where a record is written (:func:`icml17.maml.evaluate.write_records`), and the records carry
it to the results pages.

Sources: Finn et al. 2017, Table 1 (Omniglot and MiniImagenet accuracies with 95% intervals). The MAML paper shows
its sinusoid results only as plots; Li et al. 2017 (Meta-SGD), Table 1, tabulates MAML's one-step MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

MAML_PAPER = "Finn et al. 2017, Table 1"
META_SGD = "Li et al. 2017 (Meta-SGD), Table 1, MAML row"


@dataclass(frozen=True)
class Published:
    """One published number.

    Attributes:
        value: the number (accuracy as a fraction, or MSE).
        ci95: its 95% interval as published.
        source: the publication and table it is quoted from.
        steps: the inner steps at test it was measured after (None: the protocol's, every reported step count).
    """

    value: float
    ci95: float | None
    source: str
    steps: int | None = None


PUBLISHED: dict[str, Published] = {
    # Li et al. 2017 (Meta-SGD), Table 1: MAML after one step, MSE with 95% interval
    "sinusoid-k5": Published(1.13, 0.18, META_SGD, steps=1),
    "sinusoid-k10": Published(0.77, 0.11, META_SGD, steps=1),
    "sinusoid-k20": Published(0.48, 0.08, META_SGD, steps=1),
    # Finn et al. 2017, Table 1
    "omniglot-5w1s": Published(0.987, 0.004, MAML_PAPER),
    "omniglot-5w5s": Published(0.999, 0.001, MAML_PAPER),
    "omniglot-20w1s": Published(0.958, 0.003, MAML_PAPER),
    "omniglot-20w5s": Published(0.989, 0.002, MAML_PAPER),
    "miniimagenet-5w1s": Published(0.4870, 0.0184, MAML_PAPER),
    "miniimagenet-5w5s": Published(0.6311, 0.0092, MAML_PAPER),
}


def published(preset: str, steps: int | None = None) -> Published | None:
    """The published number of ``preset`` after ``steps`` inner steps (None where the papers give none).

    Examples:
        >>> published("sinusoid-k10", steps=1).value, published("sinusoid-k10", steps=10)
        (0.77, None)
    """
    number = PUBLISHED.get(preset)
    if number is None or (steps is not None and number.steps is not None and steps != number.steps):
        return None
    return number
