"""MAML (Finn, Abbeel, Levine, ICML 2017): engine, models, presets, training, evaluation, baselines, plots."""

from icml17.maml.engine import BN_POLICIES, MAML, InnerLR, TaskMetrics, adapt
from icml17.maml.models import build_model
from icml17.maml.presets import PRESETS, MAMLConfig, get_preset

__all__ = ["BN_POLICIES", "MAML", "InnerLR", "MAMLConfig", "PRESETS", "TaskMetrics", "adapt", "build_model",
           "get_preset"]
