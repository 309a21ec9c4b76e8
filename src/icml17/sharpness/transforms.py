"""Function-preserving reparametrizations of rectified networks (Dinh et al. 2017, section 5 and appendices B-D).

- :class:`AlphaScaling`: layer-wise T_alpha. With alphas a_1..a_K (one per parametrized layer, prod a_k = 1),
  layer k's weights are multiplied by a_k and its bias by c_k = a_1 ... a_k (appendix C), since
  relu(a z) = a relu(z) for a > 0; the output bias is multiplied by c_K = 1.
- :class:`PerNeuronScaling`: hidden unit (or channel) j of layer k scales its incoming weights and bias by s_j,
  and the next layer's weights from it by 1 / s_j.
- :class:`InputMap`: a new input representation x' = A (x - mu) (standardization, whitening) with the
  compensating first layer W1' = W1 A^-1, b1' = b1 + W1 mu (appendix D; the shift mu is our addition so that
  centring is covered too).

- :class:`BatchNormScaling`: for Linear/Conv -> BatchNorm -> ReLU -> ... -> Linear/Conv chains (Keskar et al.'s
  F1): BN layer k's scale and shift times a_k and the next parametrized layer's weights times 1 / a_k. Since
  relu(a y) = a relu(y) for a > 0 and the batch norm's output is affine in (gamma, beta), the function is the
  same in eval and in train mode, with no buffer touched.

Every transform works on the model's device (its copy stays there; ``scale`` is on that device too); factors
drawn at random (per-neuron scaling) come from a seeded CPU generator and are moved, so they are the same everywhere.

The first three are diagonal in parameter space, theta' = D theta, and record D (``Reparametrized.scale``) so that
H(D theta) = D^-1 H(theta) D^-1 can be checked. They apply only to chains of Linear / Conv2d layers joined by
positively homogeneous modules (ReLU, LeakyReLU, max/avg pooling, Flatten, Dropout); anything else (tanh, GELU,
batch norm) does not commute with scaling and is refused with :class:`TransformError`. The radial map of
appendix A lives in :mod:`icml17.sharpness.radial`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from icml17.core.errors import UserError

HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)
PARAMETRIZED = (nn.Linear, nn.Conv2d)


class TransformError(UserError, ValueError):
    """The transform does not preserve the function of this architecture (or its arguments are invalid)."""


@dataclass
class Reparametrized:
    """What a transform returns: a model computing the same function as the original on ``inputs(x)``.

    Attributes:
        model: the transformed copy (the original is not changed).
        name: the transform's name, for reports.
        input_map: maps original inputs to the new model's (None: the identity).
        scale: for the diagonal transforms, the diagonal of D (theta' = D theta) per parameter name, so that
            H(D theta) = D^-1 H(theta) D^-1 can be checked; None otherwise.
    """

    model: nn.Module
    name: str
    input_map: Callable[[torch.Tensor], torch.Tensor] | None = None
    scale: dict[str, torch.Tensor] | None = None

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The new model's inputs for original inputs ``x``.

        Args:
            x: inputs of the original model.

        Returns:
            ``input_map(x)``, or ``x`` itself.
        """
        return x if self.input_map is None else self.input_map(x)


def relu_chain(model: nn.Module, what: str = "this transform") -> list[int]:
    """Indices of the Linear/Conv2d layers of a positively homogeneous ``nn.Sequential``; refuses the rest."""
    if not isinstance(model, nn.Sequential):
        children = ", ".join(f"{n}: {type(m).__name__}" for n, m in model.named_children()) or "none"
        raise TransformError(
            f"{what} needs an nn.Sequential chain of Linear/Conv2d and ReLU layers; "
            f"{type(model).__name__} is not one (its modules: {children}), and a forward() "
            f"with skips or other operations cannot be proven function-preserving here. Measure "
            f"it without the transform, or write it as an nn.Sequential"
        )
    layers = []
    for i, m in enumerate(model):
        if isinstance(m, PARAMETRIZED):
            layers.append(i)
        elif not isinstance(m, HOMOGENEOUS):
            raise TransformError(
                f"{what} preserves the function only across positively homogeneous modules "
                f"(ReLU, LeakyReLU, pooling, Flatten, Dropout); module {i} is {type(m).__name__}, for which "
                f"f(a z) != a f(z) - rescaling around it would change the network's outputs"
            )
    if not layers:
        raise TransformError(f"{what}: the model has no Linear or Conv2d layer")
    return layers


def _out_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _expand_input_scale(prev: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The previous layer's unit scales laid out along ``layer``'s weight input axis."""
    if isinstance(layer, nn.Conv2d):
        return prev.reshape(1, -1, 1, 1)
    per_unit = layer.in_features // prev.numel()  # conv channels flattened: channel-major blocks
    if per_unit * prev.numel() != layer.in_features:
        raise TransformError(f"cannot match {prev.numel()} units to a Linear layer with {layer.in_features} inputs")
    return prev.repeat_interleave(per_unit).reshape(1, -1)


def scale_units(model: nn.Sequential, unit_scales: Sequence[torch.Tensor], name: str) -> Reparametrized:
    """Multiply the output of every parametrized layer k by ``unit_scales[k]`` (positive, per unit).

    Layer k's weights become s_k[out] / s_{k-1}[in] * W_k and its bias s_k * b_k; the last scale must be 1
    so that the network's output is unchanged.
    """
    layers = relu_chain(model, name)
    if len(unit_scales) != len(layers):
        raise TransformError(f"{name}: {len(layers)} parametrized layers but {len(unit_scales)} scales given")
    new = copy.deepcopy(model)
    scale: dict[str, torch.Tensor] = {}
    prev = None
    for idx, s in zip(layers, unit_scales):
        layer = new[idx]
        w = layer.weight
        s = torch.as_tensor(s, dtype=w.dtype, device=w.device).expand(_out_units(layer))
        if bool((s <= 0).any()):
            raise TransformError(f"{name}: scales must be positive (relu(a z) = a relu(z) needs a > 0)")
        factor = s.reshape(-1, *[1] * (w.dim() - 1))
        if prev is not None:
            factor = factor / _expand_input_scale(prev, layer)
        factor = factor.expand_as(w)
        scale[f"{idx}.weight"] = factor.clone()
        with torch.no_grad():
            w.mul_(factor)
            if layer.bias is not None:
                layer.bias.mul_(s)
                scale[f"{idx}.bias"] = s.clone()
        prev = s
    last = torch.as_tensor(unit_scales[-1], dtype=torch.float64)
    if not torch.allclose(last, torch.ones_like(last), rtol=1e-6, atol=0):
        raise TransformError(
            f"{name}: the output layer's scale must be 1 (the product of the alphas), got "
            f"{last.flatten()[:3].tolist()}; the outputs would be rescaled"
        )
    return Reparametrized(new, name, None, scale)


class AlphaScaling:
    """Layer-wise T_alpha: layer k's weights times a_k, its bias times a_1...a_k; needs prod a_k = 1.

    The paper's construction: the same function, any lambda_max you like (it grows like alpha^2 for the
    pair (alpha, 1/alpha)).

    Args:
        alphas: one positive factor per Linear/Conv2d layer of an ``nn.Sequential`` ReLU chain, product 1.

    Raises:
        TransformError: a factor that is not positive; when applied, a model that is not such a chain, a
            wrong number of factors, or a product other than 1.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> new = AlphaScaling.pair(10.0, 2)(net)          # alphas (10, 1/10)
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(new.model(new.inputs(x)), net(x), atol=1e-5)   # the same function
        True
        >>> w0, w2 = new.model[0].weight, new.model[2].weight
        >>> torch.allclose(w0, 10 * net[0].weight), torch.allclose(w2, net[2].weight / 10)
        (True, True)
    """

    def __init__(self, alphas: Sequence[float]):
        self.alphas = [float(a) for a in alphas]
        if any(not a > 0 for a in self.alphas):
            raise TransformError(f"alphas must be positive, got {self.alphas}")
        self.name = "alpha(" + ",".join(f"{a:g}" for a in self.alphas) + ")"

    @classmethod
    def pair(cls, alpha: float, n_layers: int) -> AlphaScaling:
        """(alpha, 1, ..., 1, 1/alpha): the paper's T_alpha for one hidden layer, extended to depth.

        Args:
            alpha: the first layer's factor, > 0.
            n_layers: the model's Linear/Conv2d layers (>= 2).

        Returns:
            The transform.

        Raises:
            TransformError: fewer than two layers.
        """
        if n_layers < 2:
            raise TransformError("alpha-scaling needs at least two parametrized layers")
        return cls([alpha] + [1.0] * (n_layers - 2) + [1.0 / alpha])

    def __call__(self, model: nn.Module) -> Reparametrized:
        layers = relu_chain(model, "alpha-scaling")
        if len(layers) != len(self.alphas):
            raise TransformError(
                f"alpha-scaling: the model has {len(layers)} parametrized layers, {len(self.alphas)} alphas given"
            )
        cumulative = torch.tensor(self.alphas, dtype=torch.float64).cumprod(0)
        if not math.isclose(float(cumulative[-1]), 1.0, rel_tol=1e-9):
            raise TransformError(
                f"alpha-scaling: the product of the alphas must be 1 for the output to be "
                f"unchanged, got {float(cumulative[-1]):.6g}"
            )
        # float64 scales: a float32 alpha would be rounded before a float64 model is scaled by it
        return scale_units(
            model, [c.clone() for c in cumulative[:-1]] + [torch.tensor(1.0, dtype=torch.float64)], self.name
        )

    def expected_ratio(self, measure: str) -> float | None:
        """The ratio transformed / original that ``measure`` must show, where the theory gives one.

        Args:
            measure: a name of :data:`icml17.sharpness.MEASURES`.

        Returns:
            1 for the loss and the scale-aware (adaptive) measures; None for the Euclidean ones, which it changes
            at will.
        """
        return 1.0 if measure.startswith("adaptive") or measure == "loss" else None


NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


class BatchNormScaling:
    """gamma_k, beta_k of the k-th affine batch norm times a_k; the next Linear/Conv2d's weights times 1/a_k.

    Between the batch norm and that layer only positively homogeneous modules may stand (ReLU, pooling,
    Flatten, ...); anything else is refused naming the module. The same function in eval and train mode.

    Args:
        alphas: one positive factor per batch-norm layer.

    Raises:
        TransformError: a factor that is not positive; when applied, a model it does not fit.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)).eval()
        >>> new = BatchNormScaling([3.0])(net)
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(new.model(x), net(x), atol=1e-5), torch.allclose(new.model[1].weight, 3 * net[1].weight)
        (True, True)
    """

    def __init__(self, alphas: Sequence[float]):
        self.alphas = [float(a) for a in alphas]
        if any(not a > 0 for a in self.alphas):
            raise TransformError(f"batch-norm scaling needs positive alphas (relu(a y) = a relu(y)), got {self.alphas}")
        self.name = "bn-scale(" + ",".join(f"{a:g}" for a in self.alphas) + ")"

    @staticmethod
    def pairs(model: nn.Module) -> list[tuple[int, int]]:
        """(batch-norm index, index of the parametrized layer that reads it) for every batch norm of the chain.

        Args:
            model: an ``nn.Sequential`` with affine batch norms.

        Returns:
            One pair per batch norm, in order.

        Raises:
            TransformError: not a chain, a batch norm without affine parameters, a module between it and the
                next layer that is not positively homogeneous, or no batch norm at all.
        """
        if not isinstance(model, nn.Sequential):
            raise TransformError(f"batch-norm scaling needs an nn.Sequential chain; {type(model).__name__} is not one")
        out = []
        for i, m in enumerate(model):
            if not isinstance(m, NORMS):
                continue
            if not m.affine:
                raise TransformError(f"module {i} ({type(m).__name__}) has no affine scale and shift to rescale")
            for j in range(i + 1, len(model)):
                if isinstance(model[j], PARAMETRIZED):
                    out.append((i, j))
                    break
                if not isinstance(model[j], HOMOGENEOUS):
                    raise TransformError(
                        f"module {j} ({type(model[j]).__name__}) stands between batch norm {i} and "
                        f"the next layer and is not positively homogeneous; rescaling across it "
                        f"would change the outputs"
                    )
            else:
                raise TransformError(f"batch norm {i} feeds no Linear/Conv2d layer that could compensate its scale")
        if not out:
            raise TransformError("the model has no batch-norm layer to rescale")
        return out

    def __call__(self, model: nn.Module) -> Reparametrized:
        pairs = self.pairs(model)
        if len(pairs) != len(self.alphas):
            raise TransformError(
                f"batch-norm scaling: the model has {len(pairs)} batch-norm layers, {len(self.alphas)} alphas given"
            )
        new = copy.deepcopy(model)
        scale: dict[str, torch.Tensor] = {}
        for (i, j), a in zip(pairs, self.alphas):
            norm, layer = new[i], new[j]
            a64 = torch.tensor(a, dtype=torch.float64)  # float64: a float32 alpha would round before a float64 model
            with torch.no_grad():
                for name in ("weight", "bias"):
                    getattr(norm, name).mul_(a64.to(norm.weight.dtype))
                    scale[f"{i}.{name}"] = torch.full_like(getattr(norm, name), a)
                layer.weight.div_(a64.to(layer.weight.dtype))
                scale[f"{j}.weight"] = torch.full_like(layer.weight, 1.0 / a)
        return Reparametrized(new, self.name, None, scale)

    def expected_ratio(self, measure: str) -> float | None:
        """The ratio transformed / original that ``measure`` must show, where the theory gives one.

        Args:
            measure: a name of :data:`icml17.sharpness.MEASURES`.

        Returns:
            1 for the loss and the scale-aware (adaptive) measures; None for the Euclidean ones.
        """
        return _diagonal_expected_ratio(measure)


class PerNeuronScaling:
    """Every hidden unit j gets its own positive factor s_j = exp(U(-log_range, log_range)) (seeded).

    Unit j's incoming weights and bias are multiplied by s_j and the next layer's weights from it divided by s_j.

    Args:
        log_range: the factors' log spread (1: factors in [1/e, e]).
        seed: the seed of the factors (a CPU generator: the same factors on every device).

    Examples:
        >>> import math, torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> new = PerNeuronScaling(log_range=1.0, seed=0)(net)
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(new.model(x), net(x), atol=1e-5)
        True
        >>> s = new.scale["0.bias"]                       # one factor per hidden unit
        >>> s.shape, bool(((s >= 1 / math.e) & (s <= math.e)).all())
        (torch.Size([8]), True)
    """

    def __init__(self, log_range: float = 1.0, seed: int = 0):
        self.log_range, self.seed = float(log_range), seed
        self.name = f"per-neuron(+-{log_range:g} nats, seed {seed})"

    def __call__(self, model: nn.Module) -> Reparametrized:
        layers = relu_chain(model, "per-neuron scaling")
        gen = torch.Generator().manual_seed(self.seed)
        scales = [
            torch.exp((torch.rand(_out_units(model[i]), generator=gen, dtype=torch.float64) * 2 - 1) * self.log_range)
            for i in layers[:-1]
        ]
        return scale_units(model, scales + [torch.tensor(1.0)], self.name)

    def expected_ratio(self, measure: str) -> float | None:
        """The ratio transformed / original that ``measure`` must show, where the theory gives one.

        Args:
            measure: a name of :data:`icml17.sharpness.MEASURES`.

        Returns:
            1 for the loss and the scale-aware (adaptive) measures; None for the Euclidean ones.
        """
        return _diagonal_expected_ratio(measure)


def _diagonal_expected_ratio(measure: str) -> float | None:
    """A rescaling diagonal in parameter space, like T_alpha, leaves diag(|theta|) H diag(|theta|) unchanged:
    1 for the loss and the scale-aware (adaptive) measures, None (no prediction) for the Euclidean ones."""
    return 1.0 if measure.startswith("adaptive") or measure == "loss" else None


class InputMap:
    """x' = A (x - mu) on flattened inputs, with the first Linear layer compensating (appendix D).

    A new representation of the same data (standardization, whitening) and a model that computes the same
    function on it, with different curvature.

    Args:
        matrix: A, square and invertible, (d, d) for d input features.
        shift: mu, (d,) (default: zeros).
        name: the transform's name, for reports.

    Raises:
        TransformError: a matrix that is not square; when applied, a model whose first layer is not a Linear
            layer on d flattened features.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).double()
        >>> data = torch.randn(100, 4, dtype=torch.float64) * 5 + 3
        >>> new = InputMap.standardize(data)(net)
        >>> z = new.inputs(data)                          # mean 0, standard deviation 1 per feature
        >>> torch.allclose(new.model(z), net(data)), torch.allclose(z.std(0), torch.ones(4, dtype=torch.float64))
        (True, True)
    """

    def __init__(self, matrix: torch.Tensor, shift: torch.Tensor | None = None, name: str = "input-map"):
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise TransformError(f"the input map must be a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix.double()
        self.shift = (
            torch.zeros(matrix.shape[0], dtype=torch.float64, device=matrix.device) if shift is None else shift.double()
        )
        self.name = name

    @classmethod
    def standardize(cls, x: torch.Tensor, min_std: float = 1e-2) -> InputMap:
        """Per-feature (x - mean) / max(std, min_std).

        Args:
            x: examples, (N, ...), flattened per example.
            min_std: the smallest standard deviation divided by (constant pixels would blow up otherwise).

        Returns:
            The transform.
        """
        flat = x.reshape(len(x), -1).double()
        std = flat.std(0).clamp_min(min_std)
        return cls(torch.diag(1.0 / std), flat.mean(0), "standardize")

    @classmethod
    def whiten(cls, x: torch.Tensor, eps: float = 1e-2) -> InputMap:
        """ZCA whitening (Sigma + eps I)^(-1/2) (x - mean).

        Args:
            x: examples, (N, ...), flattened per example.
            eps: added to the covariance's diagonal (keeps the map finite where features are constant).

        Returns:
            The transform.
        """
        flat = x.reshape(len(x), -1).double()
        mean = flat.mean(0)
        cov = torch.cov((flat - mean).T)
        evals, evecs = torch.linalg.eigh(cov + eps * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device))
        return cls(evecs @ torch.diag(evals.rsqrt()) @ evecs.T, mean, f"whiten(eps={eps:g})")

    def __call__(self, model: nn.Module) -> Reparametrized:
        layers = relu_chain(model, "an input map")
        first = layers[0]
        if not isinstance(model[first], nn.Linear) or any(
            not isinstance(m, (nn.Flatten, nn.Identity)) for m in list(model)[:first]
        ):
            raise TransformError(
                "an input map needs a first Linear layer on flattened inputs (a conv layer's "
                "zero padding and weight sharing do not commute with a general linear map)"
            )
        d = self.matrix.shape[0]
        if model[first].in_features != d:
            raise TransformError(
                f"the input map acts on {d} features, the first layer takes {model[first].in_features}"
            )
        new = copy.deepcopy(model)
        layer = new[first]
        w = layer.weight.detach().double().clone()  # (h, d); a copy: the weight is overwritten below
        placed: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

        def on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
            """(A, mu) on ``device``, moved once per device."""
            if device not in placed:
                placed[device] = (self.matrix.to(device), self.shift.to(device))
            return placed[device]

        matrix, shift = on(w.device)
        with torch.no_grad():
            w_new = torch.linalg.solve(matrix.T, w.T).T  # W A^-1
            layer.weight.copy_(w_new.to(layer.weight.dtype))
            if layer.bias is None:
                if bool(shift.abs().max() > 0):
                    raise TransformError("a shifted input map needs a bias in the first layer")
            else:
                layer.bias.add_((w @ shift).to(layer.bias.dtype))

        def input_map(x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(len(x), -1)
            matrix, shift = on(x.device)
            return ((flat.double() - shift) @ matrix.T).to(x.dtype)

        return Reparametrized(new, self.name, input_map, None)

    def expected_ratio(self, measure: str) -> float | None:
        """The ratio transformed / original that ``measure`` must show, where the theory gives one.

        Args:
            measure: a name of :data:`icml17.sharpness.MEASURES`.

        Returns:
            1 for the loss; None for every curvature measure (an input map is not a diagonal rescaling).
        """
        return 1.0 if measure == "loss" else None
