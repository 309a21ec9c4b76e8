"""The networks of MAML's supervised experiments (Finn et al. 2017, section 5 and appendix A.1).

Each is a plain ``nn.Module``; the MAML engine runs it through ``torch.func.functional_call`` with adapted
parameter dicts, so nothing here knows about meta-learning.

Faithful to the reference TensorFlow code (cbfinn/maml, ``maml.py``):

* ``mlp``: 1 -> 40 -> 40 -> 1 with ReLU, no normalisation (the reference's sinusoid command passes
  ``--norm=None``); weights truncated-normal with std 0.01 (cut at 2 std), biases zero.
* ``conv4-omniglot``: 4 x [3x3 conv, 64 filters, stride 2, TF "SAME" padding -> batch norm -> ReLU], features
  mean-pooled over space, then a linear head. 28 -> 14 -> 7 -> 4 -> 2 pixels.
* ``conv4-miniimagenet``: 4 x [3x3 conv, 32 filters, stride 1 -> batch norm -> ReLU -> 2x2 max-pool], features
  flattened (32 * 5 * 5 = 800), then a linear head. 84 -> 42 -> 21 -> 10 -> 5 pixels.
* Conv weights: Glorot/Xavier uniform (``xavier_initializer_conv2d``); conv biases zero (kept, as in the
  reference, although the following batch norm cancels them).
* Heads: Omniglot ``w5 ~ N(0, 1)`` (``tf.random_normal``), MiniImagenet Glorot uniform; biases zero.
* Batch norm: ``tf.contrib.layers.batch_norm`` defaults, i.e. offset only (no scale), epsilon 1e-3, and always
  the statistics of the current batch ("transductive", no running averages). See ``engine.BN_POLICIES``.

Stride-2 convolutions pad like TF's "SAME" (extra pixel at the bottom/right when the total is odd), so the
feature maps line up with the reference's pixel for pixel rather than PyTorch's symmetric padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("mlp", "conv4-omniglot", "conv4-miniimagenet")


class SamePad2d(nn.Module):
    """Zero padding equal to TensorFlow's ``padding='SAME'`` for a given kernel and stride."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
            out = math.ceil(size / self.stride)
            total = max((out - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


class BatchNormOffset(nn.Module):
    """Batch norm with batch statistics, a learned offset and no scale (TF ``batch_norm`` defaults)."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        # Written out rather than F.batch_norm(weight=None): its double backward fails without a weight.
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) + self.bias.view(1, -1, 1, 1)


class ConvBlock(nn.Module):
    """3x3 conv -> batch norm -> ReLU (-> 2x2 max-pool)."""

    def __init__(self, c_in: int, c_out: int, *, stride: int, pool: bool):
        super().__init__()
        self.pad = SamePad2d(3, stride)
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride)
        self.norm = BatchNormOffset(c_out)
        self.pool = pool
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(self.pad(x))))
        return F.max_pool2d(x, 2) if self.pool else x


class Conv4(nn.Module):
    """Four conv blocks and a linear head; ``pool='mean'`` (Omniglot) or ``'flatten'`` (MiniImagenet)."""

    def __init__(
        self, in_channels: int, ways: int, *, filters: int, stride: int, max_pool: bool, features: str, image_size: int
    ):
        super().__init__()
        self.blocks = nn.Sequential(
            *[ConvBlock(in_channels if i == 0 else filters, filters, stride=stride, pool=max_pool) for i in range(4)]
        )
        self.features = features
        side = image_size
        for _ in range(4):
            side = math.ceil(side / stride)
            side = side // 2 if max_pool else side
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for four blocks")
        dim = filters if features == "mean" else filters * side * side
        self.head = nn.Linear(dim, ways)
        if features == "mean":
            nn.init.normal_(self.head.weight, 0.0, 1.0)
        else:
            nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, ways)
        h = self.blocks(x)
        h = h.mean(dim=(-2, -1)) if self.features == "mean" else h.flatten(1)
        return self.head(h)


class MLP(nn.Module):
    """ReLU MLP ``in -> hidden... -> out`` with the reference's truncated-normal(0.01) weights."""

    def __init__(self, in_features: int = 1, hidden: tuple[int, ...] = (40, 40), out_features: int = 1):
        super().__init__()
        sizes = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, out)
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


def build_maml_model(
    name: str, *, ways: int = 1, in_channels: int = 1, image_size: int = 28, in_features: int = 1
) -> nn.Module:
    """One of the paper's networks (:data:`MODELS`), initialised as the reference code does.

    Args:
        name: ``"mlp"`` (sinusoids), ``"conv4-omniglot"`` or ``"conv4-miniimagenet"``.
        ways: outputs of the classifiers (N of N-way); the MLP has one output.
        in_channels: image channels of the conv networks (1 for Omniglot, 3 for MiniImagenet).
        image_size: image side of the conv networks (sets the MiniImagenet head's input size).
        in_features: inputs of the MLP.

    Returns:
        A plain ``nn.Module`` (float32, CPU).

    Raises:
        ValueError: an unknown ``name``, or an image too small for four blocks.

    Examples:
        >>> import torch
        >>> build_maml_model("conv4-omniglot", ways=5)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 5])
    """
    if name == "mlp":
        return MLP(in_features, (40, 40), 1)
    if name == "conv4-omniglot":
        return Conv4(in_channels, ways, filters=64, stride=2, max_pool=False, features="mean", image_size=image_size)
    if name == "conv4-miniimagenet":
        return Conv4(in_channels, ways, filters=32, stride=1, max_pool=True, features="flatten", image_size=image_size)
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")


def is_norm_parameter(name: str, module: nn.Module) -> bool:
    """True for parameters owned by normalisation layers (not adapted in the reference's inner loop)."""
    owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
    return isinstance(owner, (BatchNormOffset, nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
