"""The lean VPN sampler draws exactly the windowed sampler's frames (the definition: the decoder rerun on the rows
each pixel needs) from the same generator state, over seeds, batch 1 and 5, widths, depths, heads, channels and
both float types, and leaves the generator where the windowed sampler leaves it."""

from __future__ import annotations

import pytest
import torch

from icml17.pixelcnn.pixelcnn import PixelCNN
from icml17.pixelcnn.video import VideoModel, sample_video
from icml17.pixelcnn.video.vpn_sampler import VpnSampler

# (frame size, width, gated blocks, batch, dtype, head, channels)
CONFIGS = [
    (8, 16, 2, 1, torch.float64, "softmax", 1),
    (8, 16, 2, 5, torch.float64, "softmax", 1),
    (8, 32, 4, 1, torch.float32, "softmax", 1),
    (8, 32, 4, 5, torch.float32, "softmax", 1),
    (6, 8, 3, 5, torch.float32, "softmax", 1),
    (6, 12, 3, 2, torch.float64, "softmax", 3),  # per-channel steps, colour-masked centre taps
    (8, 16, 2, 5, torch.float64, "logistic", 1),  # every channel in one step, through head.sample
    (6, 12, 2, 1, torch.float64, "logistic", 3),
]


def vpn(size: int, hidden: int, layers: int, dtype, head: str, channels: int) -> VideoModel:
    torch.manual_seed(0)
    return (
        VideoModel(
            "vpn", size, channels, 8, head, 2, hidden=hidden, encoder_hidden=8, layers=layers, resnet_blocks=1, n_mix=2
        )
        .to(dtype)
        .eval()
    )


def sharpen(model: VideoModel, scale: float = 8.0) -> None:
    """Scale the output layer so the pixel distributions are peaked, as a trained model's are (random weights give
    near-uniform ones, where any sampler error would hide among equally likely values)."""
    with torch.no_grad():
        model.frame.net.out2.weight.mul_(scale)


@pytest.mark.parametrize("size, hidden, layers, batch, dtype, head, channels", CONFIGS)
def test_lean_sampler_draws_the_windowed_frames(size, hidden, layers, batch, dtype, head, channels):
    model = vpn(size, hidden, layers, dtype, head, channels)
    sharpen(model)
    context = torch.randn(batch, 8, size // 2, size // 2, dtype=dtype, generator=torch.Generator().manual_seed(9))
    lean = VpnSampler(model.frame, batch)  # one sampler for several frames: its buffers are reused
    for seed in range(4):
        g_ref, g_lean = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        want = model.frame.sample(batch, context, 1.0, g_ref, sampler="windowed")
        got = lean.frame(context, 1.0, g_lean)
        assert torch.equal(got.images, want.images), f"seed {seed}: {(got.images != want.images).sum()} differ"
        assert got.evaluations == want.evaluations == size * size * (channels if head == "softmax" else 1)
        assert torch.equal(g_ref.get_state(), g_lean.get_state())  # the same draws, no more, no fewer
    assert want.images.unique().numel() > 4  # not a degenerate frame


def test_lean_sampler_at_a_temperature_and_through_sample_video():
    model = vpn(8, 16, 2, torch.float64, "softmax", 1)
    g = torch.Generator().manual_seed(1)
    ctx = torch.randint(0, 256, (5, 2, 1, 8, 8), generator=g)
    a, s = torch.randn(5, 5, 5, generator=g, dtype=torch.float64), torch.rand(5, 5, 5, generator=g)
    for temperature in (1.0, 0.7):
        runs = {
            name: sample_video(model, ctx, a, s, 3, temperature, torch.Generator().manual_seed(4), name)
            for name in ("cached", "windowed", "generic-cached")
        }
        assert torch.equal(runs["cached"].frames, runs["windowed"].frames)
        assert torch.equal(runs["generic-cached"].frames, runs["windowed"].frames)
        assert runs["cached"].evaluations == runs["windowed"].evaluations == [65] * 3


@pytest.mark.parametrize("condition", [None, {"kind": "class", "dim": 8, "n_classes": 3}])
def test_the_other_conditionings_of_a_gated_pixelcnn(condition):
    """Unconditional and vector-conditioned nets take the other bias paths (the VPN's is a spatial map)."""
    torch.manual_seed(2)
    net = PixelCNN(6, 1, 8, "softmax", hidden=16, layers=3, condition=condition).double().eval()
    with torch.no_grad():
        net.net.out2.weight.mul_(8.0)
    context = None if condition is None else torch.tensor([0, 2, 1, 1, 0])
    for seed in range(3):
        want = net.sample(5, context, 1.0, torch.Generator().manual_seed(seed), sampler="windowed")
        got = VpnSampler(net, 5).frame(context, 1.0, torch.Generator().manual_seed(seed))
        assert torch.equal(got.images, want.images)


def test_row_noise_drawn_at_once_equals_a_draw_per_step():
    """The bulk path's premise: a CPU generator fills one tensor with the numbers of one call per step."""
    bulk = torch.rand((8, 5, 1, 256), generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    steps = torch.stack([torch.rand((5, 1, 256, 1, 1), generator=g)[..., 0, 0] for _ in range(8)])
    assert torch.equal(bulk, steps)
