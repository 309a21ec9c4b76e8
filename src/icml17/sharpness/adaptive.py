"""Scale-aware curvature: the adaptive Hessian diag(|theta| + eta) H diag(|theta| + eta).

This is the second-order counterpart of adaptive sharpness (ASAM, Kwon et al. 2021). With eta = 0 it is exactly
invariant under any diagonal function-preserving rescaling theta -> D theta (alpha-scaling, per-neuron scaling),
because H(D theta) = D^-1 H(theta) D^-1 and |D theta| = D |theta|. It is not invariant under the radial map of
appendix A or under a change of input representation (appendix D), which are not diagonal rescalings.
"""

from __future__ import annotations

import torch

from icml17.core.curvature import HessianOperator
from icml17.core.functional import flatten


class AdaptiveHessian:
    """The operator v -> d * H (d * v) with d = |theta| + eta, on the same flat layout as ``op``.

    Its spectrum is what the estimators of :mod:`icml17.core.curvature` read (``lanczos(AdaptiveHessian(op), 1)``
    is ``adaptive_lambda_max``).

    Args:
        op: the Hessian at theta.
        eta: added to |theta| so that zero parameters still count (0: exactly invariant under diagonal
            rescalings).

    Raises:
        ValueError: ``eta`` < 0.
    """

    def __init__(self, op: HessianOperator, eta: float = 0.0):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.op, self.eta = op, eta
        self.scale = flatten(op.point).abs() + eta  # (n,)
        self.size, self.dtype, self.device = op.size, op.dtype, op.device

    @property
    def n_hvp(self) -> int:
        """Hessian-vector products computed so far (those of ``op``)."""
        return self.op.n_hvp

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """The operator applied to each column.

        Args:
            vectors: (n, k) on the operator's device and dtype.

        Returns:
            (n, k): ``d * H (d * vectors)``.
        """
        d = self.scale[:, None]
        return d * self.op.matmat(d * vectors)
