"""MAML (Finn, Abbeel, Levine, ICML 2017): engine, models, presets, losses, training, evaluation, baselines.

The Python face: :class:`MAML` wraps any ``nn.Module``; :func:`adapt` is its inner loop as a pure function;
a :class:`TaskBatch` holds T tasks' support and query tensors; the losses are :func:`mse` (regression),
:class:`CrossEntropy` (classification, its shots bound; :func:`cross_entropy` unbound) and the score
:func:`accuracy`. :func:`make_config` turns one of the named ``PRESETS`` into a :class:`MAMLConfig`;
:func:`build_maml_model` builds the paper's networks. ``BN_POLICIES`` lists the batch-norm policies
(``"transductive"``, ``"per-query"``) and ``LOSS_SCALES`` the classification loss scales (``"reference"``,
``"mean"``). To train with checkpoints, resume and metrics, see :func:`icml17.core.run_loop` (the MAML guide has
an example) or ``icml17 maml train``.
"""

from icml17.data.episodes import TaskBatch
from icml17.maml.engine import BN_POLICIES, MAML, InnerLR, TaskMetrics, adapt
from icml17.maml.losses import LOSS_SCALES, CrossEntropy, accuracy, cross_entropy, mse
from icml17.maml.models import build_maml_model
from icml17.maml.presets import PRESETS, MAMLConfig, make_config

__all__ = [
    "BN_POLICIES",
    "LOSS_SCALES",
    "MAML",
    "PRESETS",
    "CrossEntropy",
    "InnerLR",
    "MAMLConfig",
    "TaskBatch",
    "TaskMetrics",
    "accuracy",
    "adapt",
    "build_maml_model",
    "cross_entropy",
    "make_config",
    "mse",
]
