"""The image PixelCNN on another device: under ``stand_in_device()`` (a CPU tensor beside the model's tensors fails as
CUDA fails) training, the exact likelihood and every sampler run with the model on ``STAND_IN``, leave their outputs
there, and give exactly the CPU run's numbers and images for the same seeds (the same operations on the same
values: tolerance 0; text-conditioned training 1e-6, see there). Samplers copy to the host a bounded number of times,
not once per pixel. Planted bugs (index grids and batches left on the CPU, a CPU generator for device noise) are
caught. Mixed precision: bf16 trains, fp16 is refused on the CPU, the likelihood stays fp32 inside autocast, and an
out-of-memory step names batch_size."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from pcnn_helpers import make_context, tiny_model

from icml17.core.device import DeviceError, generator
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.pixelcnn import data as pdata
from icml17.pixelcnn import train as ptrain
from icml17.pixelcnn.evaluate import likelihood, load_run
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.presets import build_pixelcnn_model, make_config

TINY = {"hidden": 4, "layers": 1, "resnet_blocks": 1, "shallow_layers": 1, "n_mix": 1, "cond_dim": 4, "text_len": 8}


def tiny_config(model: str, condition: str = "none", **extra):
    """A 28x28 config small enough for the harness (float32, as trained)."""
    return make_config("mnist", model, {**TINY, "condition": condition, **extra})


def quantized_images(cfg, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return pdata.quantize(cfg, raw, None), torch.randint(0, 10, (n,), generator=g)


# ------------------------------------------------------------------------------------------------ likelihood
@pytest.mark.parametrize(
    "model,condition", [("full", "class"), ("multiscale-a", "text+spatial"), ("multiscale-b", "spatial")]
)
def test_likelihood_on_the_stand_in_equals_the_cpu(model, condition):
    cfg = tiny_config(model, condition)
    torch.manual_seed(0)
    cpu_model = build_pixelcnn_model(cfg).eval()
    images, labels = quantized_images(cfg, 5)
    expected = likelihood(cpu_model, cfg, images, labels, batch_size=3)
    with stand_in_device():
        dev_model = copy.deepcopy(cpu_model).to(STAND_IN)
        got = likelihood(dev_model, cfg, images, labels, batch_size=3)  # CPU images: moved batch by batch
        lp = dev_model.log_prob(
            pdata.to_model_device(images, STAND_IN),
            pdata.to_model_device(pdata.make_context(cfg, labels, images), STAND_IN),
        )
        assert lp.total.device == STAND_IN and all(t.device == STAND_IN for t in lp.terms.values())
    assert got == expected  # every number, every factor: exact


def test_likelihood_stays_fp32_inside_autocast():
    cfg = tiny_config("multiscale-b")
    torch.manual_seed(0)
    model = build_pixelcnn_model(cfg).eval()
    images, labels = quantized_images(cfg, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = likelihood(model, cfg, images, labels)
    assert inside == likelihood(model, cfg, images, labels)


# ------------------------------------------------------------------------------------------------- training
def _train(cfg, run_dir: Path, device=None, precision: str = "fp32"):
    result = ptrain.train(cfg, run_dir, None, resume=False, progress=False, device=device, precision=precision)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return result, lines


def _digits(model: str, condition: str = "none", **extra):
    return make_config(
        "digits-demo",
        model,
        {
            **TINY,
            "batch_size": 2,
            "eval_images": 3,
            "iterations": 2,
            "eval_every": 2,
            "checkpoint_every": 2,
            "condition": condition,
            **extra,
        },
    )


@pytest.mark.parametrize("model,condition", [("multiscale-a", "class"), ("full", "text")])
def test_training_on_the_stand_in_equals_the_cpu(tmp_path, model, condition):
    cfg = _digits(model, condition)
    _, cpu_lines = _train(cfg, tmp_path / "cpu")
    with stand_in_device():
        result, dev_lines = _train(cfg, tmp_path / "dev", STAND_IN)
    assert result.steps_done == 2
    # the checkpoint written from the device holds CPU tensors; reloaded on the CPU it is the CPU run's model
    cpu_state = load_run(tmp_path / "cpu").model.state_dict()
    dev_state = load_run(tmp_path / "dev").model.state_dict()
    if condition != "text":  # losses, gradient norms, learning rates, the periodic likelihood, weights: exact
        assert dev_lines == cpu_lines
        assert all(torch.equal(cpu_state[k], dev_state[k]) for k in cpu_state)
        return
    # captions: on the CPU nn.GRU runs a fused kernel that a tensor reporting another device does not take (its
    # gates are then computed op by op), so the text encoder agrees to float32 rounding, not bit for bit
    assert [x.keys() for x in dev_lines] == [x.keys() for x in cpu_lines]
    for got, want in zip(dev_lines, cpu_lines):
        assert got["split"] == want["split"]
        numbers = lambda line: {k: v for k, v in line.items() if k != "split"}  # noqa: E731
        assert numbers(got) == pytest.approx(numbers(want), rel=1e-6, abs=1e-6)
    assert all(torch.allclose(cpu_state[k], dev_state[k], rtol=0, atol=1e-6) for k in cpu_state)


def test_bf16_trains_fp16_is_refused_on_the_cpu(tmp_path):
    cfg = _digits("multiscale-a", iterations=1, eval_every=1, checkpoint_every=1)
    _, fp32 = _train(cfg, tmp_path / "fp32")
    _, bf16 = _train(cfg, tmp_path / "bf16", precision="bf16")
    # the same initial weights and batch: the half-precision forward is close, the likelihood exact fp32 code
    assert abs(bf16[0]["bits_per_dim"] - fp32[0]["bits_per_dim"]) < 0.05
    assert abs(bf16[1]["bits_per_dim"] - fp32[1]["bits_per_dim"]) < 0.05
    with pytest.raises(DeviceError, match="fp16 needs a GPU"):
        ptrain.train(cfg, tmp_path / "fp16", None, resume=False, progress=False, precision="fp16")
    assert not (tmp_path / "fp16").exists()  # refused before any work


def test_cli_precision_fp16_on_the_cpu_is_one_line_before_any_work(tmp_path, capsys):
    from icml17.cli import main

    code = main(
        [
            "pixelcnn",
            "train",
            "--preset",
            "digits-demo",
            "--iterations",
            "1",
            "--run-dir",
            str(tmp_path / "run"),
            "--precision",
            "fp16",
            "--device",
            "cpu",
        ]
    )
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "fp16 needs a GPU" in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_out_of_memory_in_a_training_step_names_the_batch_size(tmp_path, monkeypatch):
    from icml17.core.device import OutOfMemory

    def full(self, x, context=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(ptrain._LogProb, "forward", full)
    with pytest.raises(OutOfMemory, match=r"lower batch_size or hidden") as e:
        _train(_digits("multiscale-a"), tmp_path / "run")
    assert e.value.params == ("batch_size", "hidden")  # the CLI names their --set keys


def test_planted_bug_batch_left_on_the_cpu_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(ptrain, "to_model_device", lambda batch, device: batch)  # forget the per-step copy
    with stand_in_device(), pytest.raises(WrongDeviceError):
        _train(_digits("multiscale-a"), tmp_path / "dev", STAND_IN)


# -------------------------------------------------------------------------------------------------- samplers
SAMPLERS = [  # kind, head, channels, condition, sampler
    ("a", "logistic", 1, "none", "cached"),  # type A
    ("b", "softmax", 3, "none", "windowed"),  # type B, rerun per patch step
    ("b", "logistic", 3, "none", "cached"),  # type B from activation caches
    ("full", "logistic", 3, "none", "windowed"),  # the O(N) windowed sampler
    ("full", "softmax", 3, "none", "cached"),  # the O(N) cached sampler, one step per channel
    ("b", "logistic", 1, "class", "cached"),  # conditioned: a class vector
    ("a", "softmax", 1, "text", "cached"),  # conditioned: captions given as strings
    ("full", "bernoulli", 1, "spatial", "cached"),  # conditioned: a spatial map
    ("b", "softmax", 1, "text+spatial", "windowed"),
]


def _model(kind, head, channels, condition):
    bits = 1 if head == "bernoulli" else 2
    return tiny_model(kind, 4, channels, bits, head, condition)


def _context_on(context, device):
    return pdata.to_model_device(context, device)


@pytest.mark.parametrize("kind,head,channels,condition,sampler", SAMPLERS)
def test_samplers_on_the_stand_in_draw_the_cpu_images(kind, head, channels, condition, sampler):
    cpu_model = _model(kind, head, channels, condition)
    n = 3
    context = make_context(cpu_model, n)
    expected = cpu_model.sample(n, context, 1.0, generator("cpu", 5), sampler=sampler)
    with stand_in_device() as mode:
        dev_model = copy.deepcopy(cpu_model).to(STAND_IN)
        got = dev_model.sample(n, _context_on(context, STAND_IN), 1.0, generator(STAND_IN, 5), sampler=sampler)
        assert got.images.device == STAND_IN and all(lv.device == STAND_IN for lv in got.coarse_to_fine)
    assert torch.equal(values(got.images), expected.images)
    assert [torch.equal(values(a), b) for a, b in zip(got.coarse_to_fine, expected.coarse_to_fine)] == [True] * len(
        expected.coarse_to_fine
    )
    assert got.evaluations == expected.evaluations
    # branching on host copies made once per call or per group, never one per pixel or patch step
    groups = 3 * getattr(cpu_model, "n_scales", 0)
    assert mode.transfers_to_cpu <= 4 + groups, mode.transfers_to_cpu


@pytest.mark.parametrize("variant", ["a", "b"])
def test_super_resolution_and_completion_on_the_stand_in(variant):
    cpu_model = _model(variant, "logistic", 3, "none")
    g = torch.Generator().manual_seed(3)
    low = torch.randint(0, cpu_model.levels, (2, 3, 1, 1), generator=g)  # base grid 1x1 of a 4x4 image
    expected = cpu_model.super_resolve(low, None, 1.0, generator("cpu", 2))
    given = torch.randint(0, cpu_model.levels, (2, 3, 4, 4), generator=g)
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[::2, ::2] = True  # level 1 given: complete the groups of the last scale
    completed = cpu_model.sample(2, None, 1.0, generator("cpu", 4), given, known)
    with stand_in_device():
        dev_model = copy.deepcopy(cpu_model).to(STAND_IN)
        got = dev_model.super_resolve(low.to(STAND_IN), None, 1.0, generator(STAND_IN, 2))
        got_completed = dev_model.sample(2, None, 1.0, generator(STAND_IN, 4), given, known)  # CPU given: moved
        assert got.images.device == STAND_IN and got_completed.images.device == STAND_IN
    assert torch.equal(values(got.images), expected.images)
    assert torch.equal(values(got_completed.images), completed.images)


def test_planted_bug_index_grid_on_the_cpu_is_caught(monkeypatch):
    real = MultiscalePixelCNN.coords
    monkeypatch.setattr(MultiscalePixelCNN, "coords", lambda self, level, g, device=None: real(self, level, g))
    cpu_model = _model("a", "logistic", 1, "none")
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    cpu_model.log_prob(x)  # on the CPU the bug is invisible
    with stand_in_device():
        dev_model = copy.deepcopy(cpu_model).to(STAND_IN)
        with pytest.raises(WrongDeviceError):
            dev_model.log_prob(x.to(STAND_IN))


def test_a_cpu_generator_for_stand_in_noise_is_caught():
    cpu_model = _model("b", "logistic", 1, "none")
    with stand_in_device():
        dev_model = copy.deepcopy(cpu_model).to(STAND_IN)
        with pytest.raises(WrongDeviceError):
            dev_model.sample(2, None, 1.0, torch.Generator().manual_seed(0))
