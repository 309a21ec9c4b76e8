"""The radial reparametrization of Dinh et al. 2017, appendix A (Figure 6), as a trainable wrapper.

For a chosen minimum theta_hat, a radius delta > 0 and r_hat, rho in ]0, delta[:

    psi(r) = rho r / r_hat                                      for 0 <= r <= r_hat
           = rho + (delta - rho) (r - r_hat) / (delta - r_hat)  for r_hat < r <= delta
           = r                                                  for r > delta
    g^-1(eta) = theta_hat + psi(|eta - theta_hat|) / |eta - theta_hat| (eta - theta_hat)

g^-1 is a bijection, the identity outside the ball B(theta_hat, delta) and a uniform scaling by rho / r_hat
inside B(theta_hat, r_hat) (in eta-distance). A model with parameters eta computes f(x; g^-1(eta)); at
eta = theta_hat it is the same function, and its Hessian there is (rho / r_hat)^2 H(theta_hat): rho > r_hat makes
the minimum sharper, rho < r_hat flatter, while every minimum farther than delta keeps its curvature. (The
appendix's OCR is damaged; this is the consistent reading recorded in the project notes.)

Implementation note: the scale psi(r)/r is evaluated as the constant rho / r_hat inside r_hat, and r is
clamped to r_hat before the square root elsewhere, so that forward-over-reverse derivatives stay finite at
the centre (where |eta - theta_hat| = 0).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call

from icml17.core.functional import Params, flatten, unflatten
from icml17.sharpness.transforms import Reparametrized, TransformError


def check_radii(delta: float, rho: float, r_hat: float) -> None:
    if not (delta > 0 and 0 < rho < delta and 0 < r_hat < delta):
        raise TransformError(
            f"the radial map needs delta > 0 and rho, r_hat in ]0, delta[; got delta={delta}, rho={rho}, r_hat={r_hat}"
        )


def psi(r: torch.Tensor, delta: float, rho: float, r_hat: float) -> torch.Tensor:
    inner = rho * r / r_hat
    middle = rho + (delta - rho) * (r - r_hat) / (delta - r_hat)
    return torch.where(r <= r_hat, inner, torch.where(r <= delta, middle, r))


def psi_inverse(s: torch.Tensor, delta: float, rho: float, r_hat: float) -> torch.Tensor:
    inner = r_hat * s / rho
    middle = r_hat + (delta - r_hat) * (s - rho) / (delta - rho)
    return torch.where(s <= rho, inner, torch.where(s <= delta, middle, s))


def radial_map(eta: torch.Tensor, center: torch.Tensor, delta: float, rho: float, r_hat: float) -> torch.Tensor:
    """g^-1(eta) for flat vectors (the new parameters -> the original ones)."""
    d = eta - center
    r2 = (d * d).sum()
    r = torch.sqrt(torch.clamp(r2, min=r_hat**2))  # constant inside r_hat: finite derivatives at the centre
    factor = torch.where(
        r2 <= r_hat**2, torch.as_tensor(rho / r_hat, dtype=eta.dtype, device=eta.device), psi(r, delta, rho, r_hat) / r
    )
    return center + factor * d


def radial_map_inverse(
    theta: torch.Tensor,
    center: torch.Tensor,
    delta: float,
    rho: float,
    r_hat: float,
) -> torch.Tensor:
    """g(theta): the original parameters -> the new ones."""
    d = theta - center
    s = d.norm()
    if float(s) == 0.0:
        return center.clone()
    return center + psi_inverse(s, delta, rho, r_hat) / s * d


class RadialReparam(nn.Module):
    """``model`` reparametrized by g^-1 around ``center``; its only trainable parameter is ``eta`` (flat).

    The wrapped model is a frozen copy; ``eta`` starts at g(theta) for the model's current parameters, so the
    wrapper computes exactly the model's function until it is trained.

    Args:
        model: the network to wrap (copied).
        center: theta_hat, the minimum the map is centred on (name -> tensor, every trainable parameter).
        delta: the radius outside which the map is the identity.
        rho: the image of ``r_hat``, in ]0, delta[.
        r_hat: the radius inside which the map is a uniform scaling by rho / r_hat, in ]0, delta[.

    Raises:
        TransformError: radii out of range, or a centre that lacks some parameter.
    """

    def __init__(self, model: nn.Module, center: Params, delta: float, rho: float, r_hat: float):
        super().__init__()
        check_radii(delta, rho, r_hat)
        self.base = copy.deepcopy(model).requires_grad_(False)
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        missing = sorted(set(self.names) - set(center))
        if missing:
            raise TransformError(f"the centre lacks parameters {missing}")
        self.delta, self.rho, self.r_hat = float(delta), float(rho), float(r_hat)
        theta = flatten({n: p.detach() for n, p in self.base.named_parameters() if n in self.names})
        self.register_buffer("center", flatten({n: center[n].detach() for n in self.names}).to(theta))
        self.eta = nn.Parameter(radial_map_inverse(theta, self.center, self.delta, self.rho, self.r_hat))

    def theta(self) -> Params:
        """The original network's parameters g^-1(eta), as a dict."""
        like = {n: p for n, p in self.base.named_parameters() if n in self.names}
        return unflatten(radial_map(self.eta, self.center, self.delta, self.rho, self.r_hat), like)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The original network with parameters g^-1(eta).

        Args:
            x: its inputs.

        Returns:
            Its outputs.
        """
        return functional_call(self.base, self.theta(), (x,), strict=False)


class Radial:
    """The radial transform of appendix A as a transform for :func:`check_invariance`.

    Args:
        delta: the radius outside which the map is the identity.
        rho: the image of ``r_hat``, in ]0, delta[; rho > r_hat makes the minimum sharper.
        r_hat: the radius of uniform scaling by rho / r_hat, in ]0, delta[.
        center: theta_hat (default: the transformed model's own parameters).

    Raises:
        TransformError: radii out of range.
    """

    def __init__(self, delta: float, rho: float, r_hat: float, center: Params | None = None):
        check_radii(delta, rho, r_hat)
        self.delta, self.rho, self.r_hat, self.center = delta, rho, r_hat, center
        self.name = f"radial(delta={delta:.3g}, rho/r_hat={rho / r_hat:.3g})"
        self.distance: float | None = None

    def __call__(self, model: nn.Module) -> Reparametrized:
        own = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        center = own if self.center is None else self.center
        wrapped = RadialReparam(model, center, self.delta, self.rho, self.r_hat)
        self.distance = float((wrapped.eta.detach() - wrapped.center).norm())
        return Reparametrized(wrapped, self.name, None, None)

    def expected_ratio(self, measure: str) -> float | None:
        """Exact ratios at a point inside r_hat (g^-1 is linear there) or beyond delta (identity).

        Args:
            measure: a name of :data:`icml17.sharpness.MEASURES`.

        Returns:
            The ratio, or None where the map is not linear at the point (or before a model was transformed).
        """
        if measure == "loss":
            return 1.0
        if self.distance is None:
            return None
        if self.distance > self.delta:
            return 1.0
        if self.distance >= self.r_hat:
            return None
        s = self.rho / self.r_hat
        ratios = {"lambda_max": s**2, "trace": s**2, "grad_norm": s}
        if self.distance == 0.0:  # eta = theta only at the centre itself
            ratios.update(adaptive_lambda_max=s**2, adaptive_trace=s**2)
        return ratios.get(measure)
