"""Video sampling: reproducible per seed, the VPN's two samplers draw the same frames, evaluation counts. (Every
sampler on another device than the CPU: ``test_device.py``.)"""

from __future__ import annotations

import pytest
import torch

from icml17.core.errors import UserError
from icml17.pixelcnn.video import VideoModel, sample_video


def model_and_inputs(kind: str, size: int = 8, hidden: int = 16, dtype=torch.float32):
    torch.manual_seed(0)
    model = (
        VideoModel(
            kind, size, 1, 8, context_frames=2, hidden=hidden, encoder_hidden=8, layers=2, resnet_blocks=1, base_size=2
        )
        .to(dtype)
        .eval()
    )
    g = torch.Generator().manual_seed(1)
    ctx = torch.randint(0, 256, (2, 2, 1, size, size), generator=g)
    a, s = torch.randn(2, 4, 5, generator=g), torch.rand(2, 4, 5, generator=g)
    return model, ctx, a, s


@pytest.mark.parametrize("kind", ["o_t", "o_tlogn", "convlstm", "vpn"])
def test_samples_are_reproducible_per_seed(kind):
    model, ctx, a, s = model_and_inputs(kind)
    run = lambda seed: sample_video(model, ctx, a, s, 2, generator=torch.Generator().manual_seed(seed))
    first, again, other = run(5), run(5), run(6)
    assert first.frames.shape == (2, 4, 1, 8, 8)
    assert torch.equal(first.frames[:, :2], ctx)
    assert torch.equal(first.frames, again.frames)
    assert not torch.equal(first.frames, other.frames)
    per_frame = {"o_t": 4, "o_tlogn": 2 * 2 + 3 * 2, "convlstm": 1, "vpn": 64}[kind]
    assert first.evaluations == [per_frame + 1] * 2  # + one encoder step


def test_vpn_cached_and_windowed_samplers_draw_the_same_frames():
    model, ctx, a, s = model_and_inputs("vpn")
    for seed in range(3):
        cached, windowed = (
            sample_video(model, ctx, a, s, 2, generator=torch.Generator().manual_seed(seed), sampler=name)
            for name in ("cached", "windowed")
        )
        assert torch.equal(cached.frames, windowed.frames)
        assert cached.evaluations == windowed.evaluations


def test_sampling_refuses_bad_requests():
    model, ctx, a, s = model_and_inputs("o_t")
    with pytest.raises(UserError, match="context frames"):
        sample_video(model, ctx[:, :1], a, s, 2)
    with pytest.raises(UserError, match="steps"):
        sample_video(model, ctx, a[:, :2], s[:, :2], 3)
    with pytest.raises(UserError, match="sampler"):
        sample_video(model, ctx, a, s, 1, sampler="fast")
    a_nan = a.clone()
    a_nan[0, 1, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        sample_video(model, ctx, a_nan, s, 1)


@pytest.mark.parametrize("kind", ["o_t", "o_tlogn", "convlstm"])
@pytest.mark.parametrize("sampler", ["windowed", "generic-cached"])
def test_a_vpn_sampler_asked_of_another_model_is_refused(kind, sampler):
    """Only the VPN has samplers to choose from; asking another model for one was silently ignored."""
    model, ctx, a, s = model_and_inputs(kind)
    with pytest.raises(UserError, match=f"sampler={sampler!r} chooses how the O\\(TN\\) vpn model is sampled"):
        sample_video(model, ctx, a, s, 1, sampler=sampler)
