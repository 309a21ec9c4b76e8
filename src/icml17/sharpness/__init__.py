"""Sharpness under reparametrization (Dinh, Pascanu, Bengio, Bengio, ICML 2017: "Sharp Minima Can Generalize
For Deep Nets"): flatness measures, function-preserving transforms, an invariance checker and reproductions.

The Python face: :func:`measure` computes any of the named ``MEASURES`` (``lambda_max``, ``trace``,
``epsilon``, ``keskar``, the scale-aware ``adaptive_*``, ...) of your model on your data, with
:class:`MeasureOptions`; the transforms (:class:`AlphaScaling`, :class:`PerNeuronScaling`,
:class:`BatchNormScaling`, :class:`InputMap`, :class:`Radial`) return a :class:`Reparametrized` model computing
the same function, and :func:`check_invariance` reports what each does to a measure. ``PRESETS`` names the small
MNIST networks of the reproductions, built by :func:`build_sharpness_model`. Hessian products and spectra come
from :mod:`icml17.core.curvature`.

The measures built to survive those transforms (adaptive worst- and average-case sharpness, normalized sharpness,
relative flatness, the Fisher-Rao norm, Jiang et al.'s PAC-Bayes flatness) sit in one :data:`REGISTRY` with the
older ones, behind :func:`compute_measures`; :func:`run_invariance_study` puts every measure through every
transform (``TRANSFORMS`` names the transforms it applies), and :func:`run_correlation` asks which of them ranks
networks by their generalisation gap.
"""

from icml17.sharpness.adaptive import AdaptiveHessian
from icml17.sharpness.ball import ball_sharpness, second_order_sharpness
from icml17.sharpness.correlation import (
    GridConfig,
    build_grid_model,
    cifar_cnn,
    estimate_wall_time,
    granulated_tau,
    kendall_statistics,
    run_correlation,
    train_to_criterion,
)
from icml17.sharpness.invariance import InvarianceReport, check_invariance
from icml17.sharpness.invariance_study import (
    InvarianceStudyConfig,
    run_invariance_study,
    strict_json,
    study_transform,
    sweep_values,
    sweep_verdict,
)
from icml17.sharpness.keskar import keskar_sharpness, random_subspace
from icml17.sharpness.measures import MEASURES, MeasureOptions, measure
from icml17.sharpness.models import mlp, small_cnn
from icml17.sharpness.pacbayes import PacBayesFlatness, SigmaSearch, pacbayes_flatness, sigma_search
from icml17.sharpness.perturbation import (
    PerturbationSharpness,
    apgd,
    apgd_checkpoints,
    average_case_sharpness,
    perturbation_scale,
    worst_case_sharpness,
)
from icml17.sharpness.presets import PRESETS, build_sharpness_model
from icml17.sharpness.radial import Radial, RadialReparam
from icml17.sharpness.registry import (
    REGISTRY,
    TRANSFORMS,
    FlatnessOptions,
    MeasureSpec,
    check_measure_names,
    compute_measure,
    compute_measures,
)
from icml17.sharpness.scale_invariant import (
    FisherRao,
    NormalizedSharpness,
    NotApplicable,
    RelativeFlatness,
    exact_diagonal_reason,
    fisher_rao_norm,
    hessian_diagonal,
    last_linear,
    min_row_column,
    normalized_sharpness,
    relative_flatness,
)
from icml17.sharpness.transforms import (
    AlphaScaling,
    BatchNormScaling,
    InputMap,
    PerNeuronScaling,
    Reparametrized,
    TransformError,
)

__all__ = [
    "MEASURES",
    "PRESETS",
    "AdaptiveHessian",
    "AlphaScaling",
    "BatchNormScaling",
    "InputMap",
    "InvarianceReport",
    "MeasureOptions",
    "PerNeuronScaling",
    "Radial",
    "RadialReparam",
    "Reparametrized",
    "TransformError",
    "ball_sharpness",
    "build_sharpness_model",
    "check_invariance",
    "keskar_sharpness",
    "measure",
    "mlp",
    "random_subspace",
    "second_order_sharpness",
    "small_cnn",
    # the measures that answered Dinh et al., their registry, and the invariance and correlation studies
    "REGISTRY",
    "TRANSFORMS",
    "FisherRao",
    "FlatnessOptions",
    "GridConfig",
    "InvarianceStudyConfig",
    "MeasureSpec",
    "NormalizedSharpness",
    "NotApplicable",
    "PacBayesFlatness",
    "PerturbationSharpness",
    "RelativeFlatness",
    "SigmaSearch",
    "apgd",
    "apgd_checkpoints",
    "average_case_sharpness",
    "build_grid_model",
    "check_measure_names",
    "cifar_cnn",
    "compute_measure",
    "compute_measures",
    "estimate_wall_time",
    "exact_diagonal_reason",
    "fisher_rao_norm",
    "granulated_tau",
    "hessian_diagonal",
    "kendall_statistics",
    "last_linear",
    "min_row_column",
    "normalized_sharpness",
    "pacbayes_flatness",
    "perturbation_scale",
    "relative_flatness",
    "run_correlation",
    "run_invariance_study",
    "sigma_search",
    "strict_json",
    "study_transform",
    "sweep_values",
    "sweep_verdict",
    "train_to_criterion",
    "worst_case_sharpness",
]
