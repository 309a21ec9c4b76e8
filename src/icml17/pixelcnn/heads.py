"""Output distributions over discrete sub-pixels: 256-way (any L-way) softmax, discretized logistic mixture,
Bernoulli. Every network of the package ends in one of these heads.

A head maps network outputs ``params`` (B, P, H, W) and integer images ``x`` (B, C, H, W) in ``[0, L)`` to
per-pixel log-probabilities (B, H, W) (channels summed), and samples images from ``params``.

- ``SoftmaxHead`` (PixelCNN, van den Oord et al. 2016a): P = C * L logits laid out (C, L); channel c of a
  pixel is predicted by output colour group c, so the network's channel masks make it see channels < c only.
  Sampling needs one network evaluation per channel (``sequential_channels``).
- ``LogisticMixtureHead`` (PixelCNN++, Salimans et al. 2017, section 2.1-2.2): K components, each with a mean
  and log-scale per channel and C(C-1)/2 linear coefficients that make channel c's mean depend on the
  (already known) channels before it; one network evaluation samples all channels. Numerical guards: log-scales
  clamped below at -7; edge bins 0 and L-1 extend to -inf/+inf via softplus forms (``logsigmoid``); mixture
  combined by log-sum-exp. Deviation from PixelCNN++: instead of the mid-bin log-density fallback for bins of
  mass < 1e-5 we use the exact identity ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a))``
  which has no cancellation, so the mass of every bin is accurate and the head sums to one exactly.
- ``BernoulliHead``: binary images (L = 2), one logit per channel.

Temperature T scales logits by 1/T (and logistic scales by T); T = 1 samples the model exactly.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gumbel_argmax(logits: Tensor, dim: int, generator: torch.Generator | None) -> Tensor:
    """Exact categorical sample along ``dim`` by the Gumbel-max trick (works on any shape, takes a generator)."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    u = u.clamp(torch.finfo(logits.dtype).tiny, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(dim)


def to_unit(x: Tensor, levels: int, dtype: torch.dtype | None = None) -> Tensor:
    """Integer sub-pixels in ``[0, L)`` -> floats in ``[-1, 1]`` (bin centres), in ``dtype`` (default float)."""
    return x.to(dtype or torch.get_default_dtype()) * (2.0 / (levels - 1)) - 1.0


class Head(abc.ABC):
    """Interface of an output distribution over discrete sub-pixels; see the module docstring for the three.

    Attributes:
        n_params: P, the network outputs the head reads per pixel.
        color_groups: how many colour groups the network's channel masks must keep apart (C, or 1 when one
            evaluation predicts every channel).
        sequential_channels: sampling a pixel needs one evaluation per channel.

    Args:
        n_channels: C, channels per pixel.
        levels: L, values per sub-pixel (2^bits).

    Raises:
        ValueError: fewer than 2 levels.
    """

    n_params: int
    color_groups: int
    sequential_channels: bool

    def __init__(self, n_channels: int, levels: int):
        if levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.n_channels, self.levels = n_channels, levels

    @abc.abstractmethod
    def out_groups(self) -> Tensor:
        """The colour group of each of the P outputs, (P,) int64: output p may see channels below its group."""

    def output_color(self) -> Tensor:
        """Sub-pixel channel each output predicts first (for causality checks): ``(P,)``."""
        return self.out_groups()

    @abc.abstractmethod
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Log-probability of every pixel, its channels summed.

        Args:
            params: network outputs, (B, P, H, W).
            x: integer images, (B, C, H, W) in [0, L).

        Returns:
            (B, H, W) log-probabilities in nats.
        """

    @abc.abstractmethod
    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Integer sub-pixels drawn from the distribution ``params`` describe.

        With per-channel heads (``sequential_channels``) only the channels the outputs could see are valid;
        samplers call it once per channel.

        Args:
            params: network outputs, (B, P, H, W).
            temperature: 1 samples the model exactly; lower is greedier.
            generator: the random stream (None: the global one).

        Returns:
            (B, C, H, W) int64 in [0, L).
        """


class SoftmaxHead(Head):
    """An L-way softmax per channel (PixelCNN, van den Oord et al. 2016a); P = C * L logits laid out (C, L).

    Args:
        n_channels: C, channels per pixel.
        levels: L, values per sub-pixel.

    Examples:
        >>> import torch
        >>> head = SoftmaxHead(n_channels=1, levels=4)
        >>> head.log_prob(torch.zeros(1, 4, 1, 1), torch.tensor([[[[2]]]])).exp()   # uniform logits: 1/4
        tensor([[[0.2500]]])
    """

    sequential_channels = True

    def __init__(self, n_channels: int, levels: int = 256):
        super().__init__(n_channels, levels)
        self.n_params, self.color_groups = n_channels * levels, n_channels

    def out_groups(self) -> Tensor:
        return torch.arange(self.n_params) // self.levels

    def _logits(self, params: Tensor) -> Tensor:
        b, _, h, w = params.shape
        return params.view(b, self.n_channels, self.levels, h, w)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logp = F.log_softmax(self._logits(params), dim=2)  # (B, C, L, H, W)
        return logp.gather(2, x[:, :, None]).squeeze(2).sum(1)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        return gumbel_argmax(self._logits(params) / temperature, 2, generator)


class BernoulliHead(Head):
    """Binary images (L = 2): one logit per channel.

    Args:
        n_channels: C, channels per pixel.
        levels: must be 2.

    Raises:
        ValueError: ``levels`` is not 2.
    """

    sequential_channels = True

    def __init__(self, n_channels: int, levels: int = 2):
        if levels != 2:
            raise ValueError(f"the Bernoulli head models binary images (2 levels), got {levels}")
        super().__init__(n_channels, levels)
        self.n_params, self.color_groups = n_channels, n_channels

    def out_groups(self) -> Tensor:
        return torch.arange(self.n_channels)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        xf = x.to(params.dtype)
        return (xf * F.logsigmoid(params) + (1 - xf) * F.logsigmoid(-params)).sum(1)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(params.shape, generator=generator, dtype=params.dtype, device=params.device)
        return (u < torch.sigmoid(params / temperature)).long()


def _log_one_minus_exp_neg(log_d: Tensor) -> Tensor:
    """``log(1 - exp(-d))`` for ``d = exp(log_d) > 0``, accurate from tiny to large d, finite gradients."""
    small = log_d < -12.0  # 1 - exp(-d) = d (1 - d/2 + ...): log d to float64 precision below e^-12 ~ 6e-6
    d = torch.exp(log_d.clamp(min=-12.0))
    return torch.where(small, log_d - 0.5 * torch.exp(log_d.clamp(max=-12.0)), torch.log(-torch.expm1(-d)))


class LogisticMixtureHead(Head):
    """Discretized logistic mixture (PixelCNN++); one evaluation samples every channel of a pixel.

    The params layout is ``[logits K | means K*C | log_scales K*C | coeffs K*C(C-1)/2]``.

    Args:
        n_channels: C, channels per pixel.
        levels: L, values per sub-pixel.
        n_mix: K, mixture components.
    """

    sequential_channels = False
    color_groups = 1
    min_log_scale = -7.0

    def __init__(self, n_channels: int, levels: int = 256, n_mix: int = 5):
        super().__init__(n_channels, levels)
        self.n_mix = n_mix
        self.n_coeffs = n_channels * (n_channels - 1) // 2
        self.n_params = n_mix * (1 + 2 * n_channels + self.n_coeffs)

    def out_groups(self) -> Tensor:
        return torch.zeros(self.n_params, dtype=torch.long)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        b, _, h, w = params.shape
        k, c = self.n_mix, self.n_channels
        logits, means, log_s, coeffs = params.split([k, k * c, k * c, k * self.n_coeffs], dim=1)
        log_s = log_s.view(b, k, c, h, w).clamp(min=self.min_log_scale)
        return logits, means.view(b, k, c, h, w), log_s, torch.tanh(coeffs.view(b, k, self.n_coeffs, h, w))

    def _channel_means(self, means: Tensor, coeffs: Tensor, xu: Tensor) -> Tensor:
        """Mean of channel c shifted by sum_{c'<c} coeff * x_c' (PixelCNN++ eq. 3). xu: (B, 1, C, H, W)."""
        out, i = [means[:, :, 0]], 0
        for c in range(1, self.n_channels):
            m = means[:, :, c]
            for cp in range(c):
                m = m + coeffs[:, :, i] * xu[:, :, cp]
                i += 1
            out.append(m)
        return torch.stack(out, dim=2)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits, means, log_s, coeffs = self._split(params)
        xu = to_unit(x, self.levels, params.dtype)[:, None]  # (B, 1, C, H, W)
        centred = xu - self._channel_means(means, coeffs, xu)
        inv_s = torch.exp(-log_s)
        half = 1.0 / (self.levels - 1)
        plus, minus = inv_s * (centred + half), inv_s * (centred - half)
        # log(sigma(plus) - sigma(minus)) = logsig(plus) + logsig(-minus) + log(1 - exp(-(plus - minus)))
        log_width = math.log(2.0 * half) - log_s  # log(plus - minus)
        mid = F.logsigmoid(plus) + F.logsigmoid(-minus) + _log_one_minus_exp_neg(log_width)
        lower = F.logsigmoid(plus)  # bin 0 covers (-inf, -1 + half]
        upper = F.logsigmoid(-minus)  # bin L-1 covers [1 - half, inf)
        xb = x[:, None].expand_as(mid)
        log_mass = torch.where(xb == 0, lower, torch.where(xb == self.levels - 1, upper, mid))
        joint = log_mass.sum(2) + F.log_softmax(logits, dim=1)  # (B, K, H, W)
        return torch.logsumexp(joint, dim=1)

    def sample(self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        logits, means, log_s, coeffs = self._split(params)
        k = gumbel_argmax(logits / temperature, 1, generator)[:, None, None]  # (B, 1, 1, H, W)
        pick = lambda t: t.gather(1, k.expand(-1, 1, t.shape[2], -1, -1))  # (B, 1, C', H, W)
        means, log_s, coeffs = pick(means), pick(log_s), pick(coeffs)
        u = torch.rand(means.shape, generator=generator, dtype=means.dtype, device=means.device)
        eps = torch.finfo(means.dtype).eps
        u = u.clamp(eps, 1 - eps)
        noise = torch.exp(log_s) * temperature * (torch.log(u) - torch.log1p(-u))
        qs, xu = [], []
        for c in range(self.n_channels):  # later channels use the quantized earlier ones, as log_prob does
            m, i = means[:, :, c], c * (c - 1) // 2  # channel c's mean, the sums of _channel_means in its order
            for cp in range(c):
                m = m + coeffs[:, :, i + cp] * xu[cp]
            q = torch.round(((m + noise[:, :, c]).clamp(-1, 1) + 1) * (self.levels - 1) / 2).long()
            qs.append(q)
            xu.append(to_unit(q, self.levels, means.dtype))
        return torch.stack(qs, dim=1)[:, :, 0]


def make_head(kind: str, n_channels: int, levels: int, n_mix: int = 5) -> Head:
    """The head named ``kind``.

    Args:
        kind: ``"softmax"``, ``"logistic"`` or ``"bernoulli"``.
        n_channels: C, channels per pixel.
        levels: L, values per sub-pixel.
        n_mix: mixture components of the logistic head.

    Returns:
        A :class:`Head`.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind == "softmax":
        return SoftmaxHead(n_channels, levels)
    if kind == "logistic":
        return LogisticMixtureHead(n_channels, levels, n_mix)
    if kind == "bernoulli":
        return BernoulliHead(n_channels, levels)
    raise ValueError(f"head must be 'softmax', 'logistic' or 'bernoulli', got {kind!r}")
