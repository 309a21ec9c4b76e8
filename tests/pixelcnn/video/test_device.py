"""The video models on another device, checked without a GPU: every public path (training, exact likelihood, the
checkpoint loaded onto the device, each sampler, the frame strip) runs with the model on the stand-in device of
:mod:`icml17.core.devicecheck`, where a tensor made on the CPU beside the model fails as CUDA would, and gives
exactly the numbers of the same run on the CPU (same seeds: same losses, weights, likelihoods and frames)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from icml17.cli import main
from icml17.core.config import ConfigError
from icml17.core.device import DeviceError, generator
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.pixelcnn.factored import GROUP_OFFSETS
from icml17.pixelcnn.video import FRAME_MODELS, VideoModel, sample_video
from icml17.pixelcnn.video.data import VideoSplit, load_video_split
from icml17.pixelcnn.video.encoder import FrameEncoder
from icml17.pixelcnn.video.evaluate import evaluate, likelihood, load_run
from icml17.pixelcnn.video.frames import GroupFrame
from icml17.pixelcnn.video.plots import sample_and_plot
from icml17.pixelcnn.video.presets import make_config
from icml17.pixelcnn.video.train import train

SIZE, T = 4, 4


def tiny(kind: str) -> VideoModel:
    torch.manual_seed(0)
    return VideoModel(
        kind, SIZE, 1, 8, context_frames=2, hidden=6, encoder_hidden=5, layers=2, resnet_blocks=1, base_size=2, n_mix=2
    ).eval()


def videos(n: int = 3) -> VideoSplit:
    g = torch.Generator().manual_seed(1)
    return VideoSplit(
        torch.randint(0, 256, (n, T, 1, SIZE, SIZE), generator=g),
        torch.randn(n, T, 5, generator=g),
        torch.rand(n, T, 5, generator=g),
    )


@pytest.mark.parametrize("kind", FRAME_MODELS)
def test_likelihood_on_the_device_equals_the_cpu(kind):
    data = videos()
    cpu_factors: dict[str, float] = {}
    cpu = likelihood(tiny(kind), data, batch_size=2, by_factor=cpu_factors)
    with stand_in_device() as mode:
        model = tiny(kind).to(STAND_IN)
        factors: dict[str, float] = {}
        got = likelihood(model, data, batch_size=2, by_factor=factors)  # CPU videos: moved batch by batch
        batches, per_batch = 2, mode.transfers_to_cpu
        lp = model.log_prob(*(t.to(STAND_IN) for t in (data.frames, data.actions, data.states)))
    assert got == cpu and factors == cpu_factors  # exact: same float64 sums in the same order
    assert lp.per_frame.device == STAND_IN and all(v.device == STAND_IN for v in lp.terms.values())
    # input checks (a few per batch) and one read of the sums at the end; nothing per factor or per frame
    assert per_batch <= 2 * batches + 1


@pytest.mark.parametrize(
    "kind, sampler",
    [
        ("o_t", "cached"),
        ("o_tlogn", "cached"),
        ("convlstm", "cached"),
        ("vpn", "cached"),
        ("vpn", "windowed"),
        ("vpn", "generic-cached"),
    ],
)
def test_every_sampler_on_the_device_draws_the_cpu_frames(kind, sampler):
    """Noise from a generator on the model's device, seeded alike, draws the same frames as on the CPU; the
    inputs may come from the CPU (moved once)."""
    data, n_frames = videos(2), 2
    ctx = data.frames[:, :2]
    want = sample_video(
        tiny(kind), ctx, data.actions, data.states, n_frames, generator=generator("cpu", 3), sampler=sampler
    )
    with stand_in_device() as mode:
        got = sample_video(
            tiny(kind).to(STAND_IN),
            ctx,
            data.actions,
            data.states,
            n_frames,
            generator=generator(STAND_IN, 3),
            sampler=sampler,
        )
    assert got.frames.device == STAND_IN
    assert torch.equal(values(got.frames), want.frames) and got.evaluations == want.evaluations
    # the input check, then at most a couple of reads per frame (the VPN: not one per pixel, 16 here)
    assert mode.transfers_to_cpu <= 1 + 2 * n_frames


def test_a_cpu_generator_is_refused_beside_a_device_model():
    data = videos(2)
    with stand_in_device(), pytest.raises(WrongDeviceError, match="generator"):
        sample_video(
            tiny("o_t").to(STAND_IN), data.frames[:, :2], data.actions, data.states, 1, generator=generator("cpu", 3)
        )


def test_the_convlstm_encoder_on_the_device_equals_the_cpu():
    torch.manual_seed(0)
    enc = FrameEncoder(1, 10, 5)
    x, v = torch.rand(2, 3, 1, SIZE, SIZE) * 2 - 1, torch.randn(2, 3, 10)
    want = enc(x, v)
    with stand_in_device():
        got = enc.to(STAND_IN)(x.to(STAND_IN), v.to(STAND_IN))
        assert got.device == STAND_IN
    assert torch.equal(values(got), want)


def test_frames_on_another_device_than_the_model_are_refused_by_name():
    data = videos(2)
    with stand_in_device(), pytest.raises(ConfigError, match="frames are on cpu, the model on meta"):
        tiny("o_t").to(STAND_IN).log_prob(data.frames, data.actions, data.states)


# ---------------------------------------------------------------------------------------- training, checkpoint
def tiny_config(**extra):
    return make_config(
        "tiny",
        "o_t",
        {
            "frame_size": 8,
            "frames": 4,
            "hidden": 4,
            "encoder_hidden": 4,
            "train_sequences": 8,
            "eval_sequences": 3,
            "eval_periodic": 2,
            "batch_size": 2,
            "iterations": 2,
            "eval_every": 2,
            "checkpoint_every": 2,
            **extra,
        },
    )


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_training_eval_and_samples_on_the_device_equal_the_cpu(tmp_path: Path, synthetic_data_dir: Path):
    """Two training steps and the periodic likelihood (same batches, drawn on the CPU), the checkpoint written
    from the device and loaded back onto it, ``evaluate`` and the frame strip: all equal to the CPU run."""
    cfg = tiny_config()
    train(cfg, tmp_path / "cpu", synthetic_data_dir, progress=False)
    cpu_run = load_run(tmp_path / "cpu")
    cpu_eval = evaluate(cpu_run, synthetic_data_dir)
    val = load_video_split(cfg, synthetic_data_dir, "val", 2)
    cpu_plot = sample_and_plot(cpu_run.model, val, tmp_path / "cpu-samples", n=2, seed=4)
    with stand_in_device():
        train(cfg, tmp_path / "dev", synthetic_data_dir, progress=False, device=STAND_IN)
        dev_run = load_run(tmp_path / "dev", device=STAND_IN)
        assert next(dev_run.model.parameters()).device == STAND_IN
        dev_eval = evaluate(dev_run, synthetic_data_dir)
        dev_plot = sample_and_plot(dev_run.model, val, tmp_path / "dev-samples", n=2, seed=4)
    assert metrics(tmp_path / "dev") == metrics(tmp_path / "cpu")  # losses, gradient norms, periodic likelihood
    a = torch.load(tmp_path / "cpu" / "checkpoints" / "last.pt", weights_only=True)["state"]
    b = torch.load(tmp_path / "dev" / "checkpoints" / "last.pt", weights_only=True)["state"]
    assert all(t.device.type == "cpu" for t in b["model"].values())  # device-free checkpoint
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert {k: v for k, v in dev_eval.items() if k != "eval_wall_time_s"} == {
        k: v for k, v in cpu_eval.items() if k != "eval_wall_time_s"
    }
    for name in ("strip", "gif"):
        assert Path(dev_plot[name]).read_bytes() == Path(cpu_plot[name]).read_bytes()


def test_mixed_precision_training_through_the_command(tmp_path: Path, synthetic_data_dir: Path, capsys):
    """``--precision bf16`` trains (CPU autocast); fp16 needs a GPU and says so before any work."""
    base = [
        "pixelcnn",
        "video",
        "train",
        "--preset",
        "tiny",
        "--data-dir",
        str(synthetic_data_dir),
        "--no-progress",
        "--iterations",
        "2",
        "--device",
        "cpu",
        "--set",
        "frame_size=8",
        "frames=4",
        "hidden=4",
        "encoder_hidden=4",
        "train_sequences=8",
        "eval_sequences=3",
        "eval_periodic=2",
        "batch_size=2",
        "eval_every=2",
        "checkpoint_every=2",
    ]
    assert main([*base, "--run-dir", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 2 and 0 < out["nats_per_subpixel"] < 10
    with pytest.raises(DeviceError, match="fp16 needs a GPU"):
        train(tiny_config(), tmp_path / "fp16", synthetic_data_dir, progress=False, precision="fp16")
    assert not (tmp_path / "fp16").exists()


# ---------------------------------------------------------------------------------------------- planted bugs
def _zeros_on_the_cpu(self, frame):  # the encoder's first state made without device=
    b, _, s, _ = frame.shape
    z = torch.zeros(b, self.hidden, s // 2, s // 2)
    return z, z


def _coords_on_the_cpu(self, g, device=None):  # the O(T) frame's pixel coordinates made without device=
    dr, dc = GROUP_OFFSETS[g]
    i = torch.arange(self.image_size // 2)
    return torch.meshgrid(2 * i + dr, 2 * i + dc, indexing="ij")


@pytest.mark.parametrize(
    "where, bug", [(FrameEncoder, ("initial_state", _zeros_on_the_cpu)), (GroupFrame, ("coords", _coords_on_the_cpu))]
)
def test_a_tensor_made_without_device_is_caught(monkeypatch, where, bug):
    """Plant the bug this harness exists for in a real creation site: the CPU passes, the device run fails."""
    monkeypatch.setattr(where, *bug)
    data = videos(2)
    tiny("o_t").log_prob(data.frames, data.actions, data.states)  # on the CPU nothing is wrong
    with stand_in_device(), pytest.raises(WrongDeviceError):
        tiny("o_t").to(STAND_IN).log_prob(*(t.to(STAND_IN) for t in (data.frames, data.actions, data.states)))
