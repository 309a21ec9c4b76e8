"""Curvature of a model's loss or of any function of parameters: exact Hessian-vector products, the spectral
estimators built on them, and conjugate gradient.

One factory, :class:`HessianOperator`, turns (model, loss, data) into a symmetric linear operator on the flat
parameter vector; :class:`FunctionHessian` does the same for any scalar function of a parameter dict (TRPO's
mean KL through an inner step). Products are exact (no finite differences: on ReLU networks a finite step can
cross an activation kink and inflate lambda_max several-fold). Modules:

- ``operator``: :class:`ModelLoss` (the mean loss over the data, as a function of a parameter dict) and
  :class:`HessianOperator`; also :class:`DenseOperator` and :func:`layer_blocks`.
- ``products``: how products are computed, one strategy chosen when the loss is built
  (:func:`choose_products`): forward-over-reverse ``jvp(grad(L))`` vmapped over probe blocks, reverse-over-reverse,
  or its linearized (traced once per batch) form; ``PRODUCTS`` lists the names a caller may ask for.
- ``layerwise``: exact products for plain ``nn.Sequential`` chains of Linear / Conv / Flatten / elementwise
  activations (every preset of :mod:`icml17.sharpness.models`): primal cached per batch, then a per-layer
  R-operator pass per ``H v`` and a forward-only second-order pass per ``v^T H v``.
- ``function``: the same for any scalar function of a parameter dict (:class:`FunctionHessian`), for a
  Gauss-Newton matrix ``J^T M J`` (:class:`GaussNewton`) and for any product on parameter dicts
  (:class:`ParamsOperator`), each with damping and a hook that reduces every product over processes.
- ``estimators``: power iteration, Lanczos, Hutchinson, Hutch++, stochastic Lanczos quadrature.
- ``solvers``: conjugate gradient (TRPO's natural-gradient step).
- ``base``: the shared vocabulary: ``Batch`` (an ``(x, y)`` pair of tensors), the operator and product
  interfaces; ``LossFn`` (``(prediction, target) -> scalar`` batch mean) comes from :mod:`icml17.core.functional`.

Deviation from PyHessian and similar tools: bias and normalisation parameters are not dropped; the operator
covers every parameter with ``requires_grad`` (or the named ones, for per-layer diagonal blocks), and the mode
(eval by default) and dtype are part of every result.
"""

from icml17.core.curvature.base import Batch, LinearOperator, Products, as_batches
from icml17.core.curvature.estimators import (
    EigenResult,
    SpectralDensity,
    TraceResult,
    hutchinson,
    hutchpp,
    lanczos,
    power_iteration,
    slq_density,
)
from icml17.core.curvature.function import FunctionHessian, GaussNewton, ParamsOperator
from icml17.core.curvature.layerwise import LayerwiseCurvature, layerwise_unsupported
from icml17.core.curvature.operator import DenseOperator, HessianOperator, ModelLoss, layer_blocks
from icml17.core.curvature.products import PRODUCTS, choose_products
from icml17.core.curvature.solvers import conjugate_gradient
from icml17.core.functional import LossFn

__all__ = [
    "Batch",
    "DenseOperator",
    "EigenResult",
    "FunctionHessian",
    "GaussNewton",
    "HessianOperator",
    "LayerwiseCurvature",
    "LinearOperator",
    "LossFn",
    "ModelLoss",
    "PRODUCTS",
    "ParamsOperator",
    "Products",
    "SpectralDensity",
    "TraceResult",
    "as_batches",
    "choose_products",
    "conjugate_gradient",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "layer_blocks",
    "layerwise_unsupported",
    "power_iteration",
    "slq_density",
]
