"""Small MNIST networks for the sharpness experiments, as plain ``nn.Sequential`` chains.

The transforms of :mod:`icml17.sharpness.transforms` walk such chains layer by layer, so every preset is a
sequence of ``Flatten`` / ``Linear`` / ``Conv2d`` / ``ReLU`` modules with biases (Dinh et al. 2017, appendix B
treats the bias explicitly). All presets take images shaped (N, 1, 28, 28) or already flat (N, 784). ``keskar_f1``
is the one exception to "only homogeneous modules": it has batch norm, as Keskar et al.'s F1 does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def mlp(widths: Sequence[int] = (784, 100, 100, 10), activation: str = "relu") -> nn.Sequential:
    """Flatten -> Linear -> act -> ... -> Linear, PyTorch's default initialisation.

    Args:
        widths: input, hidden and output sizes.
        activation: ``"relu"`` (the transforms need it), ``"tanh"`` or ``"gelu"``.

    Returns:
        An ``nn.Sequential``.

    Raises:
        ValueError: fewer than two widths, or an unknown activation.
    """
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def small_cnn(channels: Sequence[int] = (8, 16), classes: int = 10) -> nn.Sequential:
    """Two stride-2 5x5 convolutions with ReLU, then a linear classifier: 28 -> 12 -> 4 spatially.

    Args:
        channels: the two convolutions' output channels.
        classes: outputs.

    Returns:
        An ``nn.Sequential`` for (N, 1, 28, 28) images.
    """
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 5, stride=2),
        nn.ReLU(),  # (N, c1, 12, 12)
        nn.Conv2d(c1, c2, 5, stride=2),
        nn.ReLU(),  # (N, c2, 4, 4)
        nn.Flatten(),
        nn.Linear(c2 * 16, classes),
    )


def keskar_f1(width: int = 512, depth: int = 5, classes: int = 10) -> nn.Sequential:
    """Keskar et al. 2017's F1 (their Table 1): a 784-512x5-10 fully connected MNIST network, each hidden layer
    Linear -> BatchNorm1d -> ReLU. Batch norm is not positively homogeneous in its input, so T_alpha does not
    apply; :class:`icml17.sharpness.transforms.BatchNormScaling` is the function-preserving rescaling for it."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = 784
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, classes))
    return nn.Sequential(*layers)


def keskar_c1(width: int = 32, hidden: tuple[int, int] = (192, 96), classes: int = 10) -> nn.Sequential:
    """Keskar et al. 2017's C1 (their Table 1: a shallow AlexNet-like CIFAR-10 network, two 5x5 convolutions of 64
    channels with 3x3 max pooling, then fully connected layers of 384 and 192), scaled to one CPU core: ``width``
    channels per convolution (theirs 64) and hidden layers ``hidden`` (theirs 384, 192); every convolution and
    hidden layer is followed by batch norm and ReLU, so :class:`icml17.sharpness.transforms.BatchNormScaling`
    applies. Input (N, 3, 32, 32); 32 -> 15 -> 7 pixels after the two stride-2 poolings."""
    layers: list[nn.Module] = []
    channels = 3
    for _ in range(2):
        layers += [nn.Conv2d(channels, width, 5, padding=2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2)]
        channels = width
    layers.append(nn.Flatten())
    fan_in = width * 7 * 7
    for h in hidden:
        layers += [nn.Linear(fan_in, h), nn.BatchNorm1d(h), nn.ReLU()]
        fan_in = h
    layers.append(nn.Linear(fan_in, classes))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
