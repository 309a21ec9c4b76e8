"""Every sharpness path on another device: the measures, the transforms and the invariance checker, training, the
shipped weights and the ``measure`` command, run on the stand-in device of :mod:`icml17.core.devicecheck`.

The stand-in computes on the CPU but refuses, as CUDA would, a CPU tensor or CPU generator beside the model's
tensors; so a run there that completes, keeps its outputs on the device and gives the CPU run's numbers (float64,
relative 1e-12: the same operations on the same values) shows that every tensor is made where the model is. The
engine's own products and estimators are checked the same way in ``tests/core/test_curvature.py``."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from icml17.core.checkpoint import load_checkpoint
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.sharpness.invariance import check_invariance
from icml17.sharpness.keskar import keskar_sharpness, random_subspace
from icml17.sharpness.measures import MEASURES, MeasureOptions, measure
from icml17.sharpness.models import mlp
from icml17.sharpness.radial import Radial
from icml17.sharpness.train import TrainConfig, accuracy, train_classifier
from icml17.sharpness.transforms import (
    AlphaScaling,
    BatchNormScaling,
    InputMap,
    PerNeuronScaling,
)

CE = nn.functional.cross_entropy
REL = 1e-12
# few steps of everything: the point is where the tensors live, not convergence
FEW = MeasureOptions(lanczos_tol=1e-6, max_iter=8, k=2, probes=6, eps=0.05, keskar_p=4, ascent_steps=3)


@pytest.fixture(autouse=True)
def _swap_parameters_on_conversion(monkeypatch):
    """``module.to(dtype)`` (float32 weights measured in float64) changes a stand-in parameter's dtype in place
    only when modules swap parameters; through ``set_data`` the stand-in would keep float32 values behind a
    float64 dtype. Real device tensors need no switch."""
    monkeypatch.setattr(torch.__future__, "_swap_module_params_on_conversion", True)


def tiny_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return mlp((6, 8, 3)).double()


def tiny_cnn() -> nn.Sequential:
    """Conv (stride 2) -> ReLU -> Conv -> ReLU -> Flatten -> Linear on 1 x 7 x 7 images: 42 + 38 + 27 parameters."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)
    ).double()


def tiny_data(shape: tuple[int, ...], n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


MODELS = [(tiny_mlp, (6,)), (tiny_cnn, (1, 7, 7))]


def _on_device(model: nn.Module) -> bool:
    return all(p.device == STAND_IN for p in model.parameters())


@pytest.mark.parametrize("build,shape", MODELS, ids=["mlp", "cnn"])
def test_every_measure_on_a_device_equals_the_cpu(build, shape):
    x, y = tiny_data(shape)
    data = [(x[:5], y[:5]), (x[5:], y[5:])]
    cpu = measure(build(), CE, data, list(MEASURES), options=FEW)
    with stand_in_device():
        model = build().to(STAND_IN)
        dev = measure(model, CE, [(a.to(STAND_IN), b.to(STAND_IN)) for a, b in data], list(MEASURES), options=FEW)
        assert _on_device(model)
    assert dev.keys() == cpu.keys() and dev["n_hvp"] == cpu["n_hvp"]
    for name in MEASURES:
        assert dev[name] == pytest.approx(cpu[name], rel=REL, abs=1e-14), name


def test_keskar_phi_with_a_random_subspace_and_by_projected_ascent_on_a_device():
    from icml17.core.curvature import ModelLoss

    x, y = tiny_data((6,))
    A = random_subspace(sum(p.numel() for p in tiny_mlp().parameters()), 5, seed=3)

    def phis(model, data):
        loss = ModelLoss(model, CE, data)
        return [
            keskar_sharpness(loss, 1e-2, subspace=A, seed=1).value,
            keskar_sharpness(loss, 1e-2, method="projected", maxiter=4, seed=2).value,
        ]

    cpu = phis(tiny_mlp(), (x, y))
    with stand_in_device():
        dev = phis(tiny_mlp().to(STAND_IN), (x.to(STAND_IN), y.to(STAND_IN)))
    assert dev == pytest.approx(cpu, rel=REL)


def _bn_net() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double().eval()


def _transforms(build, x):
    """One of each kind the model admits (input maps need a first Linear layer on flat inputs)."""
    if build is _bn_net:
        return [BatchNormScaling([3.0])]
    out = [AlphaScaling.pair(4.0, 3 if build is tiny_cnn else 2), PerNeuronScaling(0.5, seed=1), Radial(0.5, 0.2, 0.1)]
    if build is tiny_mlp:
        out += [InputMap.standardize(x), InputMap.whiten(x, 0.1)]
    return out


@pytest.mark.parametrize("build,shape", [*MODELS, (_bn_net, (6,))], ids=["mlp", "cnn", "batch-norm"])
def test_transforms_and_the_invariance_checker_on_a_device_equal_the_cpu(build, shape):
    x, y = tiny_data(shape)
    name = "adaptive_lambda_max" if build is _bn_net else "lambda_max"
    cpu = check_invariance(build(), CE, (x, y), _transforms(build, x), name, dtype=torch.float64, options=FEW)
    with stand_in_device():
        model, xd, yd = build().to(STAND_IN), x.to(STAND_IN), y.to(STAND_IN)
        transforms = _transforms(build, xd)  # input maps fitted on the device's data
        for t in transforms:
            rep = t(model)
            assert _on_device(rep.model) and all(s.device == STAND_IN for s in (rep.scale or {}).values())
            assert rep.inputs(xd).device == STAND_IN
        dev = check_invariance(model, CE, (xd, yd), transforms, name, dtype=torch.float64, options=FEW)
    assert dev.original == pytest.approx(cpu.original, rel=REL)
    for d, c in zip(dev.rows, cpu.rows, strict=True):
        assert d.transform == c.transform and d.outputs_preserved and c.outputs_preserved
        assert d.value == pytest.approx(c.value, rel=REL) and d.max_output_diff == pytest.approx(
            c.max_output_diff, abs=1e-15
        )


def test_the_radial_map_on_a_device_equals_the_cpu():
    """The radial wrapper is not a plain chain: its products are the generic ones, in both modes."""
    from icml17.core.curvature import HessianOperator, lanczos

    x, y = tiny_data((6,))

    def run(model, x, y):
        rep = Radial(0.5, 0.2, 0.1)(model)
        m = measure(rep.model, CE, (x, y), ["loss", "grad_norm"])
        values = [m["loss"], m["grad_norm"]]
        for product in ("forward-over-reverse", "reverse-over-reverse"):
            op = HessianOperator(rep.model, CE, (x, y), product=product)
            values += lanczos(op, 2, tol=0.0, max_iter=6).eigenvalues
        return values, rep

    cpu, _ = run(tiny_mlp(), x, y)
    with stand_in_device():
        dev, rep = run(tiny_mlp().to(STAND_IN), x.to(STAND_IN), y.to(STAND_IN))
        assert _on_device(rep.model) and rep.model.center.device == STAND_IN
    assert dev == pytest.approx(cpu, rel=REL)


# torch warns on load_state_dict into parameters whose device is "meta" (the stand-in's name); the values are copied
@pytest.mark.filterwarnings("ignore:for .*meta parameter:UserWarning")
def test_training_and_accuracy_on_a_device_equal_the_cpu_and_its_checkpoint_loads_anywhere(tmp_path):
    x, y = tiny_data((6,), n=20)
    cfg = TrainConfig("tiny", 6, 8, lr=0.3, momentum=0.9)  # momentum: optimizer state in the checkpoint
    cpu = tiny_mlp()
    train_classifier(cpu, x, y, cfg, tmp_path / "cpu")
    with stand_in_device():
        model = tiny_mlp()
        train_classifier(model, x, y, cfg, tmp_path / "dev", device=STAND_IN)  # CPU model and data in: moved
        assert _on_device(model)
        dev_params = {n: values(p.detach()).clone() for n, p in model.named_parameters()}
        dev_accuracy = accuracy(model, x, y)  # CPU data: moved to the model
        resumed = tiny_mlp().to(STAND_IN)
        train_classifier(resumed, x, y, cfg, tmp_path / "cpu")  # the CPU run's checkpoint, loaded on the device
        assert _on_device(resumed)
        resumed_params = {n: values(p.detach()).clone() for n, p in resumed.named_parameters()}
    for n, p in cpu.named_parameters():
        assert torch.allclose(dev_params[n], p.detach(), rtol=REL, atol=1e-14), n
        assert torch.equal(resumed_params[n], p.detach()), n
    assert dev_accuracy == accuracy(cpu, x, y)
    saved = load_checkpoint(tmp_path / "dev" / "checkpoints" / "last.pt")  # device-free: readable on the CPU
    assert all(t.device.type == "cpu" for t in saved["state"]["model"].values())


def test_shipped_weights_load_on_a_device():
    from icml17.sharpness.evaluate import load_shipped

    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 10
    cpu = load_shipped("large-batch")
    ref = measure(cpu.model, CE, (x, y), ["loss", "grad_norm", "lambda_max"], options=FEW)
    with stand_in_device():
        trained = load_shipped("large-batch", STAND_IN)
        assert _on_device(trained.model)
        dev = measure(trained.model, CE, (x, y), ["loss", "grad_norm", "lambda_max"], options=FEW)
    for name in ("loss", "grad_norm", "lambda_max"):
        assert dev[name] == pytest.approx(ref[name], rel=1e-6), name  # float32 weights: same ops, same rounding


def test_measure_command_on_the_device_equals_the_cpu(synthetic_data_dir, tmp_path, monkeypatch):
    from icml17.cli import main

    monkeypatch.chdir(tmp_path)  # --train-steps writes its run under runs/

    def run(device: str) -> dict:
        out = tmp_path / f"{device}.json"
        argv = [
            "sharpness",
            "measure",
            "--model",
            "mlp-784-32-10",
            "--train-steps",
            "2",
            "--alpha",
            "2",
            "--examples",
            "24",
            "--batch-size",
            "16",
            "--measures",
            "loss,lambda_max,trace,epsilon",
            "--probes",
            "4",
            "--dtype",
            "float64",
            "--data-dir",
            str(synthetic_data_dir),
            "--threads",
            "1",
            "--device",
            device,
            "--out",
            str(out),
        ]
        assert main(argv) == 0
        return json.loads(out.read_text())

    cpu = run("cpu")
    (tmp_path / "runs").rename(tmp_path / "runs-cpu")  # the device run trains afresh, not resumes
    with stand_in_device():
        dev = run(str(STAND_IN))
    assert cpu["device"] == "cpu" and dev["device"] == str(STAND_IN)
    for name in ("loss", "lambda_max", "trace", "epsilon", "accuracy"):
        assert dev[name] == pytest.approx(cpu[name], rel=1e-9), name


def test_planted_bug_training_data_left_on_the_cpu_is_caught(tmp_path, monkeypatch):
    """Plant the bug class in a real creation site: the training loop's one move of the dataset skipped. The
    stand-in device refuses it, as a GPU would."""
    from icml17.sharpness import train

    x, y = tiny_data((6,))
    monkeypatch.setattr(train, "to_device", lambda tree, device, non_blocking=None: tree)
    with stand_in_device(), pytest.raises(WrongDeviceError):
        train_classifier(tiny_mlp(), x, y, TrainConfig("tiny", 2, 4), tmp_path, device=STAND_IN)


def test_a_reproduction_on_a_device_equals_the_cpu_and_names_the_device(synthetic_data_dir, tmp_path):
    from icml17.sharpness.presets import ReproConfig
    from icml17.sharpness.reproductions import Context, theorem6

    cfg = ReproConfig(n_train=48, n_measure=24, n_test=48, probes=4, sb_steps=4, sb_batch=8)

    def run(device, where):
        ctx = Context(cfg, synthetic_data_dir, tmp_path / where / "runs", tmp_path / where, "test", True, device)
        return json.loads(theorem6(ctx).with_suffix(".json").read_text())

    cpu = run(None, "cpu")
    with stand_in_device():
        dev = run(STAND_IN, "dev")
    assert cpu["device"] == "cpu" and dev["device"] == str(STAND_IN)
    for key in ("train_loss", "train_accuracy", "test_accuracy"):
        assert dev["models"]["small-batch"][key] == pytest.approx(cpu["models"]["small-batch"][key], rel=1e-6)
    for d, c in zip(dev["rows"], cpu["rows"], strict=True):  # float32 model: same operations, same rounding
        assert d["grad_norm"] == pytest.approx(c["grad_norm"], rel=1e-6)
        assert d["analytic"] == pytest.approx(c["analytic"], rel=1e-6)


@pytest.mark.slow
def test_the_demo_section_runs_on_a_device(synthetic_data_dir, tmp_path):
    from icml17.core.report import Report
    from icml17.sharpness.demo import demo_section

    with stand_in_device():
        text = demo_section(
            Report(tmp_path),
            tmp_path / "sharpness",
            synthetic_data_dir,
            quick=True,
            log=lambda *_: None,
            device=STAND_IN,
        )
    assert "alpha" in text
