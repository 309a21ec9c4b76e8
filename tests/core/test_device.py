"""The device rule every command shares, the stand-in device that catches tensors made on the wrong device, and
device-free checkpoints.

What a GPU would refuse is derived from CUDA's own rule (a CPU tensor of one or more dimensions beside device
tensors, a generator of another device), not from the harness's code."""

import argparse

import pytest
import torch
from torch import nn

from icml17.cli import build_parser, main
from icml17.core import device as devices
from icml17.core.checkpoint import load_checkpoint, save_checkpoint
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values


# ------------------------------------------------------------------------------------------ the device rule
def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve() == torch.device("cpu")
    assert devices.resolve("auto") == torch.device("cpu")


def test_the_flag_wins_over_the_environment_which_wins_over_auto(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match=devices.DEVICE_ENV):
        devices.resolve()  # the variable asks for CUDA, which is not here, and the message names the variable
    assert devices.resolve("cpu") == torch.device("cpu")


def test_auto_takes_the_gpu_when_one_is_visible(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve() == torch.device("cuda", 0)
    assert devices.resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(devices.DeviceError, match="2 GPU"):
        devices.resolve("cuda:2")


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("cuda", "CUDA is not available"),
        ("cuda:0", "CUDA is not available"),
        ("gpu", "not a device"),
        ("xpu", "cpu, cuda and mps"),
    ],
)
def test_devices_that_are_not_here_are_refused(monkeypatch, spec, needle):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match=needle):
        devices.resolve(spec)


def _computing_commands():
    """Every (system, command) parser that has --threads, i.e. computes: found from the parser, not listed by hand."""
    parser = build_parser()
    found = []
    for system, sub in _subparsers(parser).items():
        for name, p in _subparsers(sub).items():
            if any("--threads" in a.option_strings for a in p._actions):
                found.append((system, name, p))
            for inner, q in _subparsers(p).items():  # pixelcnn video train/eval/sample
                if any("--threads" in a.option_strings for a in q._actions):
                    found.append((system, f"{name} {inner}", q))
        if any("--threads" in a.option_strings for a in sub._actions):
            found.append((system, "", sub))
    return found


def _subparsers(p: argparse.ArgumentParser) -> dict:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def test_every_computing_command_takes_device():
    commands = _computing_commands()
    names = {f"{s} {c}".strip() for s, c, _ in commands}
    # the commands the issue names: train, eval, sample, measure, reproduce, baseline, demo
    for expected in (
        "demo",
        "maml train",
        "maml eval",
        "maml baseline",
        "maml-rl train",
        "maml-rl eval",
        "pixelcnn train",
        "pixelcnn eval",
        "pixelcnn sample",
        "sharpness measure",
        "sharpness reproduce",
    ):
        assert expected in names, sorted(names)
    for system, name, p in commands:
        options = {o for a in p._actions for o in a.option_strings}
        assert {"--device", "--threads", "--no-tf32"} <= options, (system, name)
        assert "--device" in p.format_help()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--quick"],
        ["maml", "train", "--preset", "sinusoid-k5", "--iterations", "1"],
        ["maml", "eval", "--weights", "sinusoid-k10", "--tasks", "2"],
        ["pixelcnn", "train", "--preset", "mnist", "--iterations", "1"],
        ["sharpness", "measure", "--model", "mlp-784-32-10"],
        ["maml-rl", "train", "--preset", "point-nav", "--iterations", "1"],
    ],
)
def test_device_cuda_without_cuda_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    try:
        code = main([*argv, "--device", "cuda"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "CUDA is not available" in lines[0], err
    assert not (tmp_path / "runs").exists()  # nothing was started


# ------------------------------------------------------------------------------------- the stand-in device
def _tiny_step(model, x, y, make_noise):
    loss = nn.functional.cross_entropy(model(x) + make_noise(x), y)
    loss.backward()
    return loss


def test_a_tensor_made_without_device_fails_on_the_stand_in_and_the_fixed_one_matches_the_cpu():
    torch.manual_seed(0)
    cpu_model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    x, y = torch.randn(5, 1, 6, 6), torch.randint(0, 4, (5,))
    good = lambda x: torch.zeros(x.shape[0], 4, device=x.device)  # noqa: E731
    planted = lambda x: torch.zeros(x.shape[0], 4)  # noqa: E731  the bug: made on the CPU whatever the model's device
    expected = _tiny_step(cpu_model, x, y, good)
    grads = [p.grad.clone() for p in cpu_model.parameters()]
    cpu_model.zero_grad()
    with stand_in_device():
        model = cpu_model.to(STAND_IN)
        xs, ys = x.to(STAND_IN), y.to(STAND_IN)
        with pytest.raises(WrongDeviceError, match=r"shape \(5, 4\)"):
            _tiny_step(model, xs, ys, planted)
        model.zero_grad()
        loss = _tiny_step(model, xs, ys, good)
        assert loss.device == STAND_IN and all(p.grad.device == STAND_IN for p in model.parameters())
        assert loss.item() == expected.item()
        for p, g in zip(model.parameters(), grads):
            assert torch.equal(values(p.grad), g)


def test_a_cpu_generator_cannot_draw_on_the_stand_in_device_and_vice_versa():
    with stand_in_device():
        there = torch.Generator(device=STAND_IN)
        here = torch.Generator()
        assert torch.rand(3, device=STAND_IN, generator=there).device == STAND_IN
        with pytest.raises(WrongDeviceError, match="generator"):
            torch.rand(3, device=STAND_IN, generator=here)
        with pytest.raises(WrongDeviceError, match="generator"):
            torch.rand(3, generator=there)
        assert isinstance(here, torch.Generator) and isinstance(there, torch.Generator)
    assert torch.Generator is torch._C.Generator  # restored


def test_transfers_are_legal_and_counted():
    with stand_in_device() as mode:
        w = torch.arange(4.0).to(STAND_IN)
        w + torch.tensor(2.0)  # a CPU scalar is accepted beside device tensors, as CUDA does
        assert mode.transfers_to_cpu == 0
        assert w.sum().item() == 6.0 and w.cpu().tolist() == [0.0, 1.0, 2.0, 3.0]
        assert mode.transfers_to_cpu == 2
        assert w.tolist() == [0.0, 1.0, 2.0, 3.0] and mode.transfers_to_cpu == 3
        buf = torch.empty(4, device=STAND_IN)
        buf.copy_(torch.ones(4))  # copy_ between devices is a transfer, not a mix
        assert values(buf).tolist() == [1.0] * 4


def test_functorch_and_both_ad_modes_run_on_the_stand_in_device():
    """The transforms the systems use (vmap for MAML, forward-over-reverse for curvature) work there, exactly."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    p = {k: v.detach() for k, v in m.named_parameters()}
    v = {k: torch.randn_like(t) for k, t in p.items()}

    def hvp(m, p, v, x, y):
        loss = lambda q: nn.functional.cross_entropy(torch.func.functional_call(m, q, (x,)), y)  # noqa: E731
        return torch.func.jvp(torch.func.grad(loss), (p,), (v,))[1]

    expected = hvp(m, p, v, x, y)
    with stand_in_device():
        ms = m.to(STAND_IN)
        got = hvp(
            ms,
            {k: t.to(STAND_IN) for k, t in p.items()},
            {k: t.to(STAND_IN) for k, t in v.items()},
            x.to(STAND_IN),
            y.to(STAND_IN),
        )
        batched = torch.func.vmap(lambda xi: ms(xi).sum())(x.to(STAND_IN))
        assert batched.device == STAND_IN
    for k in expected:
        assert torch.allclose(values(got[k]), expected[k], rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_written_from_the_device_loads_on_the_cpu_with_the_same_values(tmp_path):
    torch.manual_seed(2)
    m = nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    expected = {k: v.clone() for k, v in m.state_dict().items()}
    with stand_in_device():
        md = m.to(STAND_IN)
        opt = torch.optim.Adam(md.parameters(), lr=0.1)
        md(torch.ones(1, 3, device=STAND_IN)).sum().backward()
        opt.step()
        expected = {k: values(v).clone() for k, v in md.state_dict().items()}
        save_checkpoint(tmp_path / "last.pt", {"model": md.state_dict(), "optimizer": opt.state_dict()})
    loaded = load_checkpoint(tmp_path / "last.pt")
    for k, v in loaded["model"].items():
        assert v.device.type == "cpu" and torch.equal(v, expected[k])
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(loaded["model"])
    opt2 = torch.optim.Adam(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(loaded["optimizer"])  # resumes on the CPU
    assert opt2.state[fresh.weight]["exp_avg"].device.type == "cpu"


# ------------------------------------------------------------------------------------------ out of memory
def test_out_of_memory_names_the_knob_and_says_the_checkpoint_is_intact():
    with pytest.raises(devices.OutOfMemory, match=r"lower --set chunk_size.*checkpoint is intact"):
        with devices.explain_out_of_memory("--set chunk_size (tasks vectorised at once)", "cuda:0"):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_half_precision_is_refused_where_it_cannot_run():
    with pytest.raises(devices.DeviceError, match="needs a GPU"):
        devices.check_precision("fp16", torch.device("cpu"))
    with pytest.raises(devices.DeviceError, match="second-order"):
        devices.check_precision("bf16", torch.device("cpu"), allowed=("fp32",), why_not="second-order MAML")
    devices.check_precision("bf16", torch.device("cpu"))
    assert not devices.grad_scaler(torch.device("cpu"), "bf16").is_enabled()


def test_in_place_views_keep_the_stand_in_shape_and_a_batch_first_gru_matches_the_cpu():
    torch.manual_seed(3)
    gru, x = nn.GRU(3, 4, batch_first=True), torch.randn(2, 5, 3)
    out, _ = gru(x)
    out.sum().backward()
    expected = gru.weight_ih_l0.grad.clone()
    gru.zero_grad()
    with stand_in_device():
        t = torch.zeros(2, 3).to(STAND_IN)
        t.transpose_(0, 1)
        assert t.shape == values(t).shape == (3, 2)
        g = gru.to(STAND_IN)
        o, _ = g(x.to(STAND_IN))
        assert o.shape == values(o).shape == (2, 5, 4)
        o.sum().backward()
        # the CPU GRU runs a fused kernel that a stand-in tensor does not take: equal to rounding
        assert torch.allclose(values(g.weight_ih_l0.grad), expected, rtol=0, atol=1e-5)


def test_forward_mode_through_a_python_scalar_on_the_stand_in_device():
    """jvp of ``0.1 * w``: the scalar's tangent is a storage-less zero tensor, which must not reach a kernel."""
    w = torch.arange(3.0)
    expected = torch.func.jvp(lambda t: 0.1 * t, (w,), (w,))[1]
    with stand_in_device():
        ws = w.to(STAND_IN)
        got = torch.func.jvp(lambda t: 0.1 * t, (ws,), (ws,))[1]
        assert got.device == STAND_IN and torch.equal(values(got), expected)


@pytest.mark.parametrize(
    "training, no_tf32, expected", [(True, False, True), (True, True, False), (False, False, False)]
)
def test_tf32_only_for_training_and_never_when_asked_off(monkeypatch, training, no_tf32, expected):
    """Numbers a command reports (evaluations, likelihoods, curvature) are fp32: TF32 only speeds up training."""
    from icml17.cli_args import apply_compute

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    monkeypatch.setattr(devices, "resolve", lambda spec=None: torch.device("cuda", 0))
    try:
        args = argparse.Namespace(threads=None, device="cuda", no_tf32=no_tf32)
        assert apply_compute(args, training=training) == torch.device("cuda", 0)
        assert torch.backends.cuda.matmul.allow_tf32 is expected and torch.backends.cudnn.allow_tf32 is expected
        assert devices.tf32_enabled() is expected
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
