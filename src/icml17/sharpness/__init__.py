"""Sharpness under reparametrization (Dinh, Pascanu, Bengio, Bengio, ICML 2017: "Sharp Minima Can Generalize
For Deep Nets"): flatness measures, function-preserving transforms, an invariance checker and reproductions."""

from icml17.sharpness.adaptive import AdaptiveHessian
from icml17.sharpness.ball import ball_sharpness, second_order_sharpness
from icml17.sharpness.invariance import InvarianceReport, check_invariance
from icml17.sharpness.keskar import keskar_sharpness, random_subspace
from icml17.sharpness.measures import MEASURES, MeasureOptions, measure
from icml17.sharpness.models import mlp, small_cnn
from icml17.sharpness.presets import PRESETS, build_model
from icml17.sharpness.radial import Radial, RadialReparam
from icml17.sharpness.transforms import AlphaScaling, BatchNormScaling, InputMap, PerNeuronScaling, Reparametrized, TransformError

__all__ = [
    "AdaptiveHessian", "AlphaScaling", "BatchNormScaling", "InputMap", "InvarianceReport", "MEASURES", "MeasureOptions", "PRESETS",
    "PerNeuronScaling", "Radial", "RadialReparam", "Reparametrized", "TransformError", "ball_sharpness",
    "build_model", "check_invariance", "keskar_sharpness", "measure", "mlp", "random_subspace",
    "second_order_sharpness", "small_cnn",
]
