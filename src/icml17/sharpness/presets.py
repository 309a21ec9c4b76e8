"""Named configurations of the sharpness system: the model presets (small MNIST networks, built by name
with a seed) and the protocol of the paper's reproductions (data subset sizes, training lengths, measure
options), which ``icml17 sharpness eval`` also uses so that shipped minima reproduce their records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from icml17.sharpness.measures import MeasureOptions
from icml17.sharpness.models import keskar_c1, keskar_f1, mlp, small_cnn

PRESETS: dict[str, Callable[[], nn.Sequential]] = {
    "mlp-784-100-100-10": lambda: mlp((784, 100, 100, 10)),
    "mlp-784-100-10": lambda: mlp((784, 100, 10)),
    "mlp-784-32-10": lambda: mlp((784, 32, 10)),
    "cnn-small": small_cnn,
    "keskar-f1": keskar_f1,  # Keskar et al. 2017's F1: 784-512x5-10 with batch norm (1.46M parameters)
    "keskar-f1-narrow": lambda: keskar_f1(width=32),  # the same shape at width 32, for quick runs and tests
    "keskar-c1": keskar_c1,  # Keskar et al.'s C1 scaled to one CPU core: 32 channels, hidden 192, 96 (CIFAR-10)
    "keskar-c1-narrow": lambda: keskar_c1(width=4, hidden=(16, 8)),  # the same shape, for quick runs and tests
}


def build_sharpness_model(name: str, seed: int = 0) -> nn.Sequential:
    """A preset network (:data:`PRESETS`) with weights initialised from ``seed``.

    Args:
        name: the preset's name, e.g. ``"mlp-784-32-10"`` or ``"cnn-small"``.
        seed: the initialisation's seed (the global random generator is left untouched).

    Returns:
        An ``nn.Sequential`` for MNIST images (N, 1, 28, 28).

    Raises:
        ValueError: an unknown name.

    Examples:
        >>> import torch
        >>> build_sharpness_model("mlp-784-32-10")(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> a, b = build_sharpness_model("cnn-small", 3), build_sharpness_model("cnn-small", 3)
        >>> torch.equal(a[0].weight, b[0].weight)       # the seed decides the weights
        True
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PRESETS[name]()


@dataclass(frozen=True)
class ReproConfig:
    """The reproductions' protocol: a seeded ``n_train`` MNIST subset, curvature on its first ``n_measure``."""

    n_train: int = 2000
    n_measure: int = 1000
    n_test: int = 2000
    seed: int = 0
    probes: int = 32
    sb_steps: int = 3000  # small-batch SGD: batch 8, ~12 epochs
    sb_batch: int = 8
    lb_steps: int = 2000  # large-batch SGD: half the subset per step, 1000 epochs (about the same final loss)
    lb_batch: int = 1000
    deep_steps: int = 1000
    lr: float = 0.1

    @property
    def measure_options(self) -> MeasureOptions:
        """How the reproductions measure (32 Hutchinson probes, Euclidean epsilon-ball radius 0.02)."""
        return MeasureOptions(probes=self.probes, seed=self.seed, eps=0.02)

    @classmethod
    def quick(cls) -> ReproConfig:
        return cls(
            n_train=300, n_measure=200, n_test=300, probes=8, sb_steps=150, lb_steps=100, lb_batch=150, deep_steps=150
        )
