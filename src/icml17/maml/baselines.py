"""Sinusoid baselines of Finn et al. 2017, section 5.1 (Figures 2 and 3).

* ``pretrained``: one 40-40 ReLU network regressing all tasks at once (fresh tasks every step, MSE, Adam
  0.001), then at test time fine-tuned on the K support points by gradient descent. Its step size is tuned
  automatically, as the paper says: for every K and step count, the step size from :data:`STEP_SIZES` with the
  lowest MSE on 200 validation tasks (a separate seed) is used on the test tasks.
* ``oracle``: the same network receiving amplitude and phase as extra inputs (x, A, phase) -> y; it needs no
  adaptation, so its test MSE is one number.

Both train through ``run_loop`` (resumable) and evaluate on exactly the test tasks of ``maml eval``. Training takes
a ``device`` (the network is initialised on the CPU and moved; tasks are drawn on the CPU and each step's batch
moved once); evaluation follows the network's device.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from icml17.core import device as devices
from icml17.core.checkpoint import load_checkpoint
from icml17.core.loop import GeneratorState, LoopResult, run_loop
from icml17.core.results import write_record
from icml17.core.runs import CHECKPOINT_FILE
from icml17.core.stats import mean_ci95
from icml17.data.sinusoid import sample_sinusoid_tasks
from icml17.maml.engine import MAML, model_device
from icml17.maml.evaluate import TEST_SEED
from icml17.maml.losses import mse
from icml17.maml.models import MLP
from icml17.maml.presets import make_config
from icml17.maml.tasks import make_task_source
from icml17.maml.train import evaluate_tasks, iter_tasks

STEP_SIZES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
VALIDATION_SEED = 777
BATCH_TASKS, BATCH_POINTS = 25, 10  # per training step: 25 fresh tasks x 10 points, like MAML's meta-batch


def oracle_inputs(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """(T, P, 1) inputs -> (T, P, 3): x with the task's amplitude and phase appended."""
    return torch.cat([x, amplitude.view(-1, 1, 1).expand_as(x), phase.view(-1, 1, 1).expand_as(x)], dim=-1)


def _moved(*tensors: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """CPU-drawn tensors on ``device`` (pinned, asynchronous copies to a GPU)."""
    return [devices.to_device(devices.pin(t, device), device) for t in tensors]


def train_baseline(
    kind: str,
    run_dir: Path,
    *,
    iterations: int,
    seed: int = 0,
    progress: bool = True,
    resume: bool = True,
    device: torch.device | str | None = None,
) -> tuple[MLP, LoopResult]:
    """Train the pretrained (1 input) or oracle (3 inputs) network with ``run_loop`` on ``device`` (default CPU)."""
    if kind not in ("pretrained", "oracle"):
        raise ValueError(f"unknown baseline {kind!r}")
    device = torch.device("cpu") if device is None else torch.device(device)
    torch.manual_seed(seed)
    model = MLP(3 if kind == "oracle" else 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)

    def step(_: int) -> dict[str, float]:
        b = sample_sinusoid_tasks(BATCH_TASKS, BATCH_POINTS, 1, gen)  # drawn on the CPU: the same on every device
        x = oracle_inputs(b.support_x, b.info["amplitude"], b.info["phase"]) if kind == "oracle" else b.support_x
        x, y = _moved(x, b.support_y, device=device)
        loss = mse(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"mse": loss.item()}

    result = run_loop(
        run_dir,
        iterations,
        step,
        {"model": model, "optimizer": optimizer, "tasks": GeneratorState(gen)},
        config={"baseline": kind, "seed": seed, "batch": [BATCH_TASKS, BATCH_POINTS]},
        log_every=100,
        checkpoint_every=5000,
        progress=progress,
        desc=kind,
        resume=resume,
    )
    return model, result


def load_baseline(run_dir: Path, kind: str, device: torch.device | str | None = None) -> MLP:
    """The trained network of a baseline run directory (read on the CPU, moved to ``device``)."""
    model = MLP(3 if kind == "oracle" else 1)
    model.load_state_dict(load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)["state"]["model"])
    return model if device is None else model.to(device)


def finetune_curve(model: MLP, shots: int, lr: float, steps: int, split_seed: int, tasks: int) -> torch.Tensor:
    """Per-task query MSE after 0..steps fine-tuning steps with step size ``lr``: (tasks, steps + 1)."""
    cfg = make_config(f"sinusoid-k{shots}") if shots in (5, 10, 20) else None
    if cfg is None:
        raise ValueError(f"no sinusoid preset for K={shots}")
    engine = MAML(model, loss_fn=mse, score_fn=mse, inner_lr=lr)
    return evaluate_tasks(
        engine, make_task_source(cfg), "test", tasks, steps, torch.Generator().manual_seed(split_seed)
    ).score


def evaluate_pretrained(model: MLP, shots: int, steps: int = 10, tasks: int = 600) -> dict:
    """Tune the step size on validation tasks for each step count, then score the test tasks."""
    val = {lr: finetune_curve(model, shots, lr, steps, VALIDATION_SEED, 200).mean(0) for lr in STEP_SIZES}
    out = {
        "shots": shots,
        "steps": list(range(steps + 1)),
        "mean": [],
        "ci95": [],
        "step_size": [],
        "validation": {str(lr): v.cpu().tolist() for lr, v in val.items()},
    }
    test = {}
    for k in range(steps + 1):
        best = min(STEP_SIZES, key=lambda lr: val[lr][k].item())
        if best not in test:
            test[best] = finetune_curve(model, shots, best, steps, TEST_SEED, tasks)
        m, c = mean_ci95(test[best][:, k].cpu().numpy())
        out["mean"].append(m)
        out["ci95"].append(c)
        out["step_size"].append(best)
    return out


def evaluate_oracle(model: MLP, tasks: int = 600) -> dict:
    """Query MSE of the oracle on the test tasks (those of ``maml eval`` for sinusoid-k10), on its device."""
    source = make_task_source(make_config("sinusoid-k10"))
    device = model_device(model)
    errors = []
    with torch.no_grad():
        for b in iter_tasks(source, "test", tasks, torch.Generator().manual_seed(TEST_SEED)):
            x, y = _moved(oracle_inputs(b.query_x, b.info["amplitude"], b.info["phase"]), b.query_y, device=device)
            errors.append((model(x) - y).pow(2).mean(dim=(1, 2)))
    m, c = mean_ci95(torch.cat(errors).cpu().numpy())
    return {"mean": m, "ci95": c}


def _write_json(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def run_baseline(
    kind: str,
    shots_list: list[int],
    run_dir: Path,
    *,
    iterations: int = 70000,
    seed: int = 0,
    record_dir: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    resume: bool = True,
    device: torch.device | str | None = None,
) -> list[Path]:
    """Train (or resume) a baseline on ``device`` (default CPU), evaluate it, print the results and write
    ``run_dir/eval*.json`` and optional result records; returns the files written."""
    device = torch.device("cpu") if device is None else torch.device(device)
    model, trained = train_baseline(
        kind, run_dir, iterations=iterations, seed=seed, progress=progress, resume=resume, device=device
    )
    written = []
    if kind == "oracle":
        res = evaluate_oracle(model)
        written.append(_write_json(run_dir / "eval.json", res))
        records = [("sinusoid-oracle", res["mean"], res["ci95"], None)]
        print(f"oracle: query MSE {res['mean']:.4f} +- {res['ci95']:.4f}")
    else:
        records = []
        for shots in shots_list:
            res = evaluate_pretrained(model, shots)
            written.append(_write_json(run_dir / f"eval-k{shots}.json", res))
            print(
                f"pretrained, K={shots}: query MSE after 1 step {res['mean'][1]:.4f} +- {res['ci95'][1]:.4f}, after "
                f"10 steps {res['mean'][10]:.4f} +- {res['ci95'][10]:.4f} (step sizes {res['step_size'][1]:g}, "
                f"{res['step_size'][10]:g})"
            )
            for k in (1, 10):
                records.append(
                    (f"sinusoid-k{shots}-step{k}-pretrained", res["mean"][k], res["ci95"][k], res["step_size"][k])
                )
    if record_dir is not None:
        for name, value, ci, lr in records:
            written.append(
                write_record(
                    Path(record_dir) / f"{name}.json",
                    {
                        "system": "maml",
                        "experiment": name,
                        "metric": "mse",
                        "value": value,
                        "ci95": ci,
                        "paper": None,
                        "paper_ci95": None,
                        "higher_is_better": False,
                        "n_eval": 600,
                        "iterations": trained.steps_done,
                        "wall_time_s": round(trained.wall_time_s, 1),
                        "seed": seed,
                        "command": command,
                        **({"finetune_step_size": lr} if lr is not None else {}),
                    },
                    device=device,
                )
            )
    return written
