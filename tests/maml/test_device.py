"""MAML on another device: under ``stand_in_device()`` (a CPU tensor beside the model's tensors fails as CUDA fails)
the engine's meta-gradient, meta-training, evaluation, the sinusoid baselines and the Figure 2 predictions run with
the model on ``STAND_IN``, leave their outputs there, and give exactly the CPU run's numbers (the same operations
on the same values: tolerance 0). Tasks are drawn on the CPU and moved once per step; the inner loop copies nothing
back. A planted bug (a batch left on the CPU) is caught. Precision: half precision is refused for second-order
MAML before any work, bf16 trains first-order MAML, fp16 is refused on the CPU. Out of memory names the knob."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from icml17.cli import main
from icml17.core.device import DeviceError, OutOfMemory
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.data.episodes import TaskBatch
from icml17.maml import baselines
from icml17.maml import engine as maml_engine
from icml17.maml import tasks as maml_tasks
from icml17.maml.engine import MAML
from icml17.maml.evaluate import evaluate, load_run
from icml17.maml.losses import accuracy, cross_entropy
from icml17.maml.models import build_maml_model
from icml17.maml.plots import adaptation_predictions
from icml17.maml.presets import make_config
from icml17.maml.train import train


def _omniglot_engine(**kw) -> MAML:
    torch.manual_seed(0)
    model = build_maml_model("conv4-omniglot", ways=3, image_size=12)
    return MAML(
        model, loss_fn=lambda o, y: cross_entropy(o, y, shots=1), score_fn=accuracy, inner_steps=2, inner_lr=0.4, **kw
    )


def _episodes(tasks: int = 3, ways: int = 3, shots: int = 1, queries: int = 2, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).clone()
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1).clone()
    return TaskBatch(
        torch.rand(tasks, ways * shots, 1, 12, 12, generator=g),
        sy,
        torch.rand(tasks, ways * queries, 1, 12, 12, generator=g),
        qy,
    )


def _grads(engine: MAML) -> dict[str, torch.Tensor]:
    return {n: values(p.grad) for n, p in engine.named_parameters()}


# ----------------------------------------------------------------------------------------------- the engine
ENGINES = [
    {},  # second order, transductive batch norm, vmap over all tasks
    {"first_order": True, "lr_mode": "per-parameter", "bn_policy": "per-query"},
    {"lr_mode": "scalar", "chunk_size": 2},
    {"vectorize": False},
]


@pytest.mark.parametrize("kw", ENGINES)
def test_meta_gradient_on_the_stand_in_equals_the_cpu(kw):
    cpu = _omniglot_engine(**kw)
    batch = _episodes()
    expected = cpu.meta_backward(batch)
    with stand_in_device() as mode:
        dev = copy.deepcopy(cpu).to(STAND_IN)
        dev.zero_grad(set_to_none=True)
        got = dev.meta_backward(batch)  # a CPU batch: the engine moves it to its device once
        assert dev.device == STAND_IN and got.loss.device == STAND_IN and got.score.device == STAND_IN
        assert all(p.grad.device == STAND_IN for p in dev.parameters())
        assert mode.transfers_to_cpu == 0  # nothing copied back inside the inner loop
        curve = dev.evaluate(batch, 3)
        assert curve.score.device == STAND_IN
    assert torch.equal(values(got.loss), expected.loss) and torch.equal(values(got.score), expected.score)
    for name, g in _grads(cpu).items():
        assert torch.equal(_grads(dev)[name], g), name
    ref = cpu.evaluate(batch, 3)
    assert torch.equal(values(curve.loss), ref.loss) and torch.equal(values(curve.score), ref.score)


def test_planted_bug_batch_left_on_the_cpu_is_caught(monkeypatch):
    cpu = _omniglot_engine()
    batch = _episodes()
    monkeypatch.setattr(maml_engine, "batch_to", lambda batch, device: batch)  # forget the copy to the device
    cpu.meta_backward(batch)  # on the CPU the bug is invisible
    with stand_in_device():
        dev = copy.deepcopy(cpu).to(STAND_IN)
        with pytest.raises(WrongDeviceError):
            dev.meta_backward(batch)


# ------------------------------------------------------------------------------------------------- training
def _train(cfg, run_dir: Path, data_dir=None, device=None, precision: str = "fp32"):
    result = train(cfg, run_dir, data_dir, resume=False, progress=False, device=device, precision=precision)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return result, lines


def _sinusoid(**kw):
    return replace(
        make_config("sinusoid-k5"),
        **{
            "iterations": 3,
            "meta_batch": 4,
            "eval_every": 3,
            "eval_tasks": 4,
            "eval_inner_steps": 2,
            "checkpoint_every": 3,
            **kw,
        },
    )


def _omniglot(**kw):
    return replace(
        make_config("omniglot-5w1s"),
        **{
            "iterations": 2,
            "meta_batch": 2,
            "eval_every": 2,
            "eval_tasks": 2,
            "eval_inner_steps": 2,
            "checkpoint_every": 2,
            **kw,
        },
    )


def _same_checkpoints(a: Path, b: Path) -> bool:
    sa, sb = load_run(a).engine.state_dict(), load_run(b).engine.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sinusoid_training_and_evaluation_on_the_stand_in_equal_the_cpu(tmp_path):
    cfg = _sinusoid()
    _, cpu_lines = _train(cfg, tmp_path / "cpu")
    expected = evaluate(load_run(tmp_path / "cpu"), tasks=7, steps=3)
    with stand_in_device():
        result, dev_lines = _train(cfg, tmp_path / "dev", device=STAND_IN)
        trained = load_run(tmp_path / "dev", device=STAND_IN)  # a device-free checkpoint, moved to the device
        assert trained.engine.device == STAND_IN
        got = evaluate(trained, tasks=7, steps=3)
    assert result.steps_done == 3 and got.pop("wall_time_s") >= 0 and expected.pop("wall_time_s") >= 0
    assert dev_lines == cpu_lines  # training losses and the periodic validation MSE: exact
    assert _same_checkpoints(tmp_path / "cpu", tmp_path / "dev")
    assert got == expected
    # copies back to the host: one per step (the logged loss and score), never one per task or inner step
    copies = []
    for iterations in (2, 4):
        with stand_in_device() as mode:
            _train(
                replace(cfg, iterations=iterations, eval_every=0, checkpoint_every=100),
                tmp_path / f"count{iterations}",
                device=STAND_IN,
            )
        copies.append(mode.transfers_to_cpu)
    assert copies[1] - copies[0] == 2, copies


@pytest.mark.filterwarnings("ignore:for model.*meta parameter")  # torch warns, yet copies into stand-in weights
def test_a_cpu_checkpoint_resumes_on_the_stand_in_as_on_the_cpu(tmp_path):
    cfg = _sinusoid(iterations=4, eval_every=2, checkpoint_every=2, log_every=1)
    _, full = _train(cfg, tmp_path / "cpu")
    train(replace(cfg, iterations=2), tmp_path / "moved", progress=False)
    with stand_in_device():  # Adam's state and the task stream continue on the device
        train(cfg, tmp_path / "moved", progress=False, device=STAND_IN)
    assert [json.loads(x) for x in (tmp_path / "moved" / "metrics.jsonl").read_text().splitlines()] == full
    assert _same_checkpoints(tmp_path / "cpu", tmp_path / "moved")


def test_omniglot_training_on_the_stand_in_equals_the_cpu(tmp_path, monkeypatch):
    # Episodes (rotated characters) from a small pool of random images, so the test does not decode a dataset.
    g = torch.Generator().manual_seed(0)
    pools = {
        split: torch.randint(0, 256, (n, 4, 1, 28, 28), generator=g, dtype=torch.uint8).numpy()
        for split, n in (("train", 8), ("val", 6), ("test", 6))
    }
    monkeypatch.setattr(maml_tasks, "_pools", lambda cfg, data_dir: pools)
    cfg = _omniglot()
    _, cpu_lines = _train(cfg, tmp_path / "cpu")
    with stand_in_device():
        _, dev_lines = _train(cfg, tmp_path / "dev", device=STAND_IN)
    assert [r["step"] for r in dev_lines] == [1, 2, 2] and "accuracy_step2" in dev_lines[-1]
    assert dev_lines == cpu_lines
    assert _same_checkpoints(tmp_path / "cpu", tmp_path / "dev")


def test_given_episodes_score_on_the_stand_in_as_on_the_cpu(tmp_path):
    cfg = _sinusoid(iterations=1, eval_every=0, checkpoint_every=1)
    _train(cfg, tmp_path / "run")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 15, 1, generator=g) * 10 - 5
    episodes = TaskBatch(x[:, :5], torch.sin(x[:, :5]), x[:, 5:], torch.sin(x[:, 5:]))
    expected = evaluate(load_run(tmp_path / "run"), episodes=episodes, steps=2, chunk=3)
    with stand_in_device():
        got = evaluate(load_run(tmp_path / "run", device=STAND_IN), episodes=episodes, steps=2, chunk=3)
    assert got["mean"] == expected["mean"] and got["ci95"] == expected["ci95"] and got["tasks"] == 4


# ------------------------------------------------------------------------------------- baselines and plots
def test_baselines_on_the_stand_in_equal_the_cpu(tmp_path):
    expected = {}
    for kind in ("pretrained", "oracle"):
        model, _ = baselines.train_baseline(kind, tmp_path / f"cpu-{kind}", iterations=3, progress=False)
        expected[kind] = (model, _oracle(model) if kind == "oracle" else baselines.evaluate_pretrained(model, 5, 2, 9))
    with stand_in_device():
        for kind in ("pretrained", "oracle"):
            model, _ = baselines.train_baseline(
                kind, tmp_path / f"dev-{kind}", iterations=3, progress=False, device=STAND_IN
            )
            assert next(model.parameters()).device == STAND_IN
            got = _oracle(model) if kind == "oracle" else baselines.evaluate_pretrained(model, 5, 2, 9)
            assert got == expected[kind][1], kind
            state = {k: values(v) for k, v in model.state_dict().items()}
            assert all(torch.equal(state[k], v) for k, v in expected[kind][0].state_dict().items())


def _oracle(model):
    return baselines.evaluate_oracle(model, tasks=9)


def test_figure2_predictions_on_the_stand_in_equal_the_cpu():
    torch.manual_seed(0)
    model = build_maml_model("mlp")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, generator=g)
    grid = torch.linspace(-5, 5, 7).unsqueeze(-1)
    expected = adaptation_predictions(model, x, torch.sin(x), grid, 0.01)
    with stand_in_device():
        got = adaptation_predictions(copy.deepcopy(model).to(STAND_IN), x, torch.sin(x), grid, 0.01)
    assert got.keys() == expected.keys() and all((got[k] == expected[k]).all() for k in got)


# ------------------------------------------------------------------------------------------------ precision
def test_half_precision_is_refused_for_second_order_maml_before_any_work(tmp_path):
    with pytest.raises(DeviceError, match="double backward.*first_order=True"):
        train(_sinusoid(), tmp_path / "run", precision="bf16")
    assert not (tmp_path / "run").exists()
    with pytest.raises(DeviceError, match="double backward"):
        _omniglot_engine().meta_backward(_episodes(), precision="bf16")


def test_the_cli_refuses_half_precision_for_second_order_maml_in_one_line(tmp_path, capsys):
    code = main(
        [
            "maml",
            "train",
            "--preset",
            "sinusoid-k5",
            "--run-dir",
            str(tmp_path / "r"),
            "--iterations",
            "1",
            "--no-progress",
            "--device",
            "cpu",
            "--precision",
            "bf16",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "double backward" in err and "--set first_order=true" in err
    assert not (tmp_path / "r").exists()


def test_bf16_trains_first_order_maml_and_fp16_is_refused_on_the_cpu(tmp_path):
    cfg = _sinusoid(first_order=True, iterations=2, eval_every=2, checkpoint_every=2)
    _, fp32 = _train(cfg, tmp_path / "fp32")
    _, bf16 = _train(cfg, tmp_path / "bf16", precision="bf16")
    assert abs(bf16[0]["loss"] - fp32[0]["loss"]) < 0.05 * fp32[0]["loss"]  # same weights and tasks, bf16 forward
    assert bf16[-1]["split"] == "eval"  # evaluation is fp32; the weights differ by one bf16-computed update
    assert abs(bf16[-1]["mse_step2"] - fp32[-1]["mse_step2"]) < 0.1 * fp32[-1]["mse_step2"]
    with pytest.raises(DeviceError, match="fp16 needs a GPU"):
        train(cfg, tmp_path / "fp16", precision="fp16")
    assert not (tmp_path / "fp16").exists()


def test_out_of_memory_names_the_chunk_size(tmp_path, monkeypatch):
    def oom(self, *a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(MAML, "meta_backward", oom)
    with pytest.raises(OutOfMemory, match=r"chunk_size \(tasks meta-differentiated at once.*meta_batch") as e:
        _train(_sinusoid(), tmp_path / "run")
    assert e.value.params == ("chunk_size", "meta_batch")  # the CLI names their --set keys


def test_eval_chunk_size_does_not_change_the_scores(tmp_path, capsys):
    _train(_sinusoid(iterations=1, eval_every=0, checkpoint_every=1), tmp_path / "run")
    outs = []
    for extra in ([], ["--chunk-size", "2"]):
        assert main(["maml", "eval", "--run-dir", str(tmp_path / "run"), "--tasks", "5", "--steps", "2", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and "after 2 steps" in outs[0]
