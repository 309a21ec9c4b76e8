"""Experiment configuration and named presets for the PixelCNN system.

One frozen dataclass holds everything a run needs (data, model, optimisation, budget); presets override only
what differs from the defaults, and ``--set key=value`` overrides any field. Model types: ``full`` (O(N)
gated PixelCNN), ``multiscale-a`` and ``multiscale-b`` (Reed et al. 2017, Fig. 3 A/B).

Deviations from the paper's training set-up, forced by a 2-core CPU: small widths (32 instead of 128-256),
2 ResNet blocks per upscaler instead of 12, Adam (lr 1e-3, linear decay to 1e-4) instead of RMSprop with
batch 128 for 200K steps, and minutes instead of days of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from icml17.core.config import ConfigError, check_lr_schedule, config_from_dict

if TYPE_CHECKING:  # the models import torch; the configs do not
    from icml17.pixelcnn.multiscale import MultiscalePixelCNN
    from icml17.pixelcnn.pixelcnn import PixelCNN

IMAGE_SHAPES = {"mnist": (1, 28), "binarized-mnist": (1, 28), "cifar10-subset": (3, 32), "digits": (1, 28)}
MODEL_TYPES = ("full", "multiscale-a", "multiscale-b")
MULTISCALE_VARIANTS = {"multiscale-a": "a", "multiscale-b": "b"}  # model type -> MultiscalePixelCNN's variant


@dataclass(frozen=True)
class PixelCNNConfig:
    """Everything that defines a PixelCNN run: data, model, optimisation, budget.

    Validated when built, directly, by :func:`make_config` or by ``dataclasses.replace``: an impossible
    combination is refused at once, naming the field.

    Attributes:
        dataset: ``"mnist"``, ``"binarized-mnist"``, ``"cifar10-subset"`` or ``"digits"``.
        model: ``"full"`` (the O(N) gated PixelCNN), ``"multiscale-a"`` or ``"multiscale-b"`` (Fig. 3 A/B).
        condition: ``"none"``, ``"class"``, ``"text"``, ``"spatial"`` or ``"text+spatial"``.
        head: ``"softmax"``, ``"logistic"`` (mixture) or ``"bernoulli"`` (1-bit images).
        bits: bit depth of the modelled images (binarized-mnist: 1).
        base_size: multiscale: the base resolution (the image size must be base_size * 2^k, k >= 1).
        hidden: channels of every network (full, base, ResNets, shallow PixelCNNs).
        layers: gated blocks of the full or base PixelCNN.
        resnet_blocks: residual blocks per upscaling group network.
        shallow_layers: gated blocks of the type-B patch PixelCNN (the paper's is 4).
        patch: type B: M x M patches.
        n_mix: logistic mixture components.
        cond_dim: size of the context vector.
        text_len: captions padded or cut to this many characters (the paper's: 201).
        map_size: spatial condition: a digit-occupancy map of map_size x map_size.
        batch_size: images per training step.
        lr: Adam's initial learning rate.
        lr_final: the learning rate at the last iteration (linear decay from ``lr``).
        grad_clip: the largest gradient norm kept.
        iterations: training steps (they set the decay: a run resumes only with the same number).
        eval_every: steps between periodic evaluations.
        eval_images: test images scored at each periodic evaluation.
        checkpoint_every: steps between checkpoints.
        train_images: training images used (0: the whole training split).
        val_images: the last N training images held out for validation (0: none).
        seed: the seed of the run's random streams and initialisation.

    Raises:
        ConfigError: an impossible value or combination (e.g. a base size that does not divide the image).

    Examples:
        >>> PixelCNNConfig(dataset="mnist", model="multiscale-b", base_size=7).experiment
        'mnist-typeB'
        >>> PixelCNNConfig(dataset="mnist", base_size=5)
        Traceback (most recent call last):
        ...
        icml17.core.config.ConfigError: base_size=5 does not fit 28x28 images: ...
    """

    dataset: Literal["mnist", "binarized-mnist", "cifar10-subset", "digits"] = "mnist"
    model: Literal["full", "multiscale-a", "multiscale-b"] = "multiscale-b"
    condition: Literal["none", "class", "text", "spatial", "text+spatial"] = "none"
    head: Literal["softmax", "logistic", "bernoulli"] = "logistic"
    bits: int = 8  # bit depth of the modelled images (binarized-mnist: 1)
    base_size: int = 7  # multiscale: base resolution (image size = base * 2^k)
    hidden: int = 32  # channels of every network (full, base, ResNets, shallow PixelCNNs)
    layers: int = 4  # gated blocks of the full / base PixelCNN
    resnet_blocks: int = 2  # residual blocks per upscaling group network
    # gated blocks of the type-B patch PixelCNN. The paper's is 4; on MNIST at 1,000 steps 2 scored better over 3
    # seeds (1.258 vs 1.278 bits/dim, results/pixelcnn/likelihood-seeds.json) with 0.6 vs 1.0M parameters, and
    # every sequential patch step of sampling runs it: 2 is the default, --set shallow_layers=4 the paper's
    shallow_layers: int = 2
    patch: int = 4  # type B: M x M patches
    n_mix: int = 5  # logistic mixture components
    cond_dim: int = 32
    text_len: int = 32  # captions padded/cut to this many characters (paper: 201)
    map_size: int = 7  # spatial condition: digit-occupancy map of map_size x map_size
    batch_size: int = 32
    lr: float = 1e-3
    lr_final: float = 1e-4  # linear decay over ``iterations``
    grad_clip: float = 1.0
    iterations: int = 3000
    eval_every: int = 500
    eval_images: int = 256  # test images scored at each periodic eval (final numbers: `eval` command)
    checkpoint_every: int = 100
    train_images: int = 0  # 0: the whole training split
    val_images: int = 0  # the last N training images held out as a validation split (Table 1); 0: none
    seed: int = 0

    @property
    def image_shape(self) -> tuple[int, int]:
        """(channels, size)."""
        return IMAGE_SHAPES[self.dataset]

    @property
    def experiment(self) -> str:
        """Results-record and run-directory name, e.g. ``mnist-typeB``."""
        suffix = {"full": "full", "multiscale-a": "typeA", "multiscale-b": "typeB"}[self.model]
        cond = "" if self.condition == "none" else "-" + self.condition.replace("+", "-")
        return f"{self.dataset}{cond}-{suffix}"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def variant(self) -> str | None:
        """``"a"`` or ``"b"`` for the multiscale models, None for the full PixelCNN."""
        return MULTISCALE_VARIANTS.get(self.model)

    def validate(self) -> None:
        """Refuse impossible or inconsistent values (run when the config is built).

        Raises:
            ConfigError: the first problem found, naming the field and what it accepts.
        """
        if self.dataset not in IMAGE_SHAPES:
            raise ConfigError(f"dataset {self.dataset!r} is not one of {sorted(IMAGE_SHAPES)}", param="dataset")
        if self.model not in MODEL_TYPES:
            raise ConfigError(f"model {self.model!r} is not one of {MODEL_TYPES}", param="model")
        check_lr_schedule(self.lr, self.lr_final, self.grad_clip)
        if not 1 <= self.bits <= 8:
            raise ConfigError(f"bits must be in 1..8, got {self.bits}")
        if self.head == "bernoulli" and self.bits != 1:
            raise ConfigError(
                "head=bernoulli models binary images: set bits=1 (as the binarized-mnist preset does)", param="bits"
            )
        if self.dataset == "binarized-mnist" and self.bits != 1:
            raise ConfigError("binarized-mnist has 1-bit images: set bits=1")
        size = self.image_shape[1]
        if self.model != "full":
            k = size // self.base_size
            if size % self.base_size or k < 2 or k & (k - 1):
                raise ConfigError(
                    f"base_size={self.base_size} does not fit {size}x{size} images: the size must be "
                    f"base_size * 2^k with k >= 1 (e.g. base_size {size // 4} or {size // 2})"
                )
        for name in ("hidden", "layers", "batch_size", "iterations", "patch", "n_mix", "eval_images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("train_images", "val_images"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)} (0: all / none)")


PRESETS: dict[str, dict] = {
    "mnist": {"dataset": "mnist", "bits": 8, "head": "logistic", "base_size": 7},
    "binarized-mnist": {"dataset": "binarized-mnist", "bits": 1, "head": "bernoulli", "base_size": 7},
    "cifar10-subset": {"dataset": "cifar10-subset", "bits": 8, "head": "logistic", "base_size": 8},
    "mnist-class": {"dataset": "mnist", "condition": "class", "base_size": 7},
    "mnist-caption": {"dataset": "mnist", "condition": "text", "base_size": 7},
    "mnist-spatial": {"dataset": "mnist", "condition": "spatial", "base_size": 7},
    # Table 1's text-and-structure conditioning: the caption and a 7x7 digit-occupancy map together
    "mnist-text-spatial": {"dataset": "mnist", "condition": "text+spatial", "base_size": 7},
    "mnist-superres": {"dataset": "mnist", "base_size": 7},  # `sample` then upscales test images 7 -> 28
    "digits-demo": {"dataset": "digits", "base_size": 7, "iterations": 300, "eval_every": 100},
}


def make_config(preset: str, model: str | None = None, overrides: dict | None = None) -> PixelCNNConfig:
    """The config of a named preset, with its model type and some fields changed, validated.

    Args:
        preset: one of :data:`PRESETS` (``"mnist"``, ``"binarized-mnist"``, ...).
        model: ``"full"``, ``"multiscale-a"`` or ``"multiscale-b"`` (None: the preset's, multiscale-b).
        overrides: field -> value; strings are read as the field's type (as ``--set key=value`` does).

    Returns:
        A frozen :class:`PixelCNNConfig`.

    Raises:
        ConfigError: an unknown preset or field, or an impossible value.

    Examples:
        >>> cfg = make_config("binarized-mnist", "multiscale-a", {"hidden": 16})
        >>> cfg.bits, cfg.head, cfg.variant, cfg.hidden
        (1, 'bernoulli', 'a', 16)
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    data = {**PRESETS[preset], **({"model": model} if model else {}), **(overrides or {})}
    return config_from_dict(PixelCNNConfig, data)


def build_pixelcnn_model(cfg: PixelCNNConfig) -> PixelCNN | MultiscalePixelCNN:
    """The model a config describes: a :class:`PixelCNN` (``model="full"``) or a :class:`MultiscalePixelCNN`.

    Args:
        cfg: the config (validated again here, in case it was built by hand without its checks).

    Returns:
        The model, float32, on the CPU.

    Raises:
        ConfigError: an invalid config.

    Examples:
        >>> model = build_pixelcnn_model(make_config("mnist", "multiscale-a", {"hidden": 8}))
        >>> type(model).__name__, model.variant, model.n_scales
        ('MultiscalePixelCNN', 'a', 2)
    """
    cfg.validate()
    from icml17.pixelcnn.multiscale import MultiscalePixelCNN
    from icml17.pixelcnn.pixelcnn import PixelCNN

    channels, size = cfg.image_shape
    condition = {
        "kind": cfg.condition,
        "dim": cfg.cond_dim,
        "n_classes": 10,
        "text_len": cfg.text_len,
        "map_channels": 1,
        "map_size": cfg.map_size,
    }
    common = dict(
        image_size=size,
        n_channels=channels,
        bits=cfg.bits,
        head=cfg.head,
        hidden=cfg.hidden,
        n_mix=cfg.n_mix,
        condition=condition,
    )
    if cfg.model == "full":
        return PixelCNN(layers=cfg.layers, **common)
    return MultiscalePixelCNN(
        variant=MULTISCALE_VARIANTS[cfg.model],
        base_size=cfg.base_size,
        base_layers=cfg.layers,
        resnet_blocks=cfg.resnet_blocks,
        shallow_layers=cfg.shallow_layers,
        patch=cfg.patch,
        **common,
    )
