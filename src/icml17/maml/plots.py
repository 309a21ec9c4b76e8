"""Figures: sinusoid adaptation (Finn et al. 2017, Figure 2), MSE vs gradient steps (Figure 3), and learning
curves of classification runs. Plotting only: models, curves and metrics come in as arguments or files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from icml17.core.config import ConfigError
from icml17.core.loop import read_metrics
from icml17.core.report import plt, save_figure
from icml17.data.sinusoid import X_RANGE, sample_sinusoid_tasks, sinusoid
from icml17.maml.engine import adapt
from icml17.maml.losses import mse

FIG2_STEPS = (0, 1, 10)


def adaptation_predictions(
    model: torch.nn.Module,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    grid: torch.Tensor,
    lr: float,
    steps: tuple[int, ...] = FIG2_STEPS,
) -> dict[int, np.ndarray]:
    """Predictions on ``grid`` (G, 1) after each number of gradient steps in ``steps`` on the support set (computed
    on the model's device; the inputs may be on the CPU)."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    device = next(iter(params.values())).device
    support_x, support_y, grid = support_x.to(device), support_y.to(device), grid.to(device)

    def forward(p, x):
        return torch.func.functional_call(model, p, (x,))

    path = adapt(
        params,
        support_x,
        support_y,
        forward=forward,
        loss_fn=mse,
        steps=max(steps),
        lr=lr,
        first_order=True,
        trajectory=True,
    )
    with torch.no_grad():
        return {k: forward(path[k], grid)[:, 0].cpu().numpy() for k in steps}


def plot_fig2(models: dict[str, tuple[torch.nn.Module, float]], shots: int, path: str | Path, seed: int = 3) -> Path:
    """One sinusoid task, K points; per model (name -> (model, step size)) a panel with pre-update, 1 and 10
    steps, and the ground truth."""
    tasks = sample_sinusoid_tasks(20, shots, 1, torch.Generator().manual_seed(seed))
    pick = int(torch.nonzero(tasks.info["amplitude"] > 2.0)[0])  # a task with a clearly visible wave
    task = tasks[pick]
    grid = torch.linspace(*X_RANGE, 200).unsqueeze(-1)
    truth = sinusoid(grid, task.info["amplitude"], task.info["phase"])[:, 0].numpy()
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, (name, (model, lr)) in zip(axes[0], models.items()):
        preds = adaptation_predictions(model, task.support_x[0], task.support_y[0], grid, lr)
        ax.plot(grid[:, 0], truth, color="red", lw=2, label="ground truth")
        for k, style in zip(FIG2_STEPS, (":", "--", "-")):
            label = "pre-update" if k == 0 else f"{k} grad step{'s' if k > 1 else ''}"
            ax.plot(grid[:, 0], preds[k], style, color="tab:green", lw=1.5, label=label)
        ax.scatter(
            task.support_x[0, :, 0],
            task.support_y[0, :, 0],
            marker="^",
            color="purple",
            zorder=3,
            label="used for grad",
        )
        ax.set_title(f"{name}, K={shots}, step size={lr:g}")
        ax.set_xlim(*X_RANGE)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)


def plot_fig3(curves: dict[str, tuple[list[float], list[float]]], shots: int, path: str | Path) -> Path:
    """MSE (mean +- 95% interval over test tasks) vs number of gradient steps; ``oracle`` may be flat."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, (mean, ci) in curves.items():
        steps = np.arange(len(mean))
        ax.errorbar(steps, mean, yerr=ci, marker="o" if len(mean) > 1 else None, ms=3, capsize=2, label=name)
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("mean squared error")
    ax.set_title(f"k-shot regression, k={shots}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(y)))
    return np.convolve(y, np.ones(window) / window, mode="valid")


def plot_learning_curves(run_dir: str | Path, path: str | Path) -> Path:
    """Training loss and score (moving average) and periodic validation scores of one run."""
    train, evals = read_metrics(run_dir, "train"), read_metrics(run_dir, "eval")
    score = "accuracy" if train and "accuracy" in train[0] else "mse"
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        steps = np.array([r["step"] for r in train])
        window = max(1, len(train) // 100)
        for key, ax in (("loss", a), (score, b)):
            y = _smooth(np.array([r[key] for r in train]), window)
            ax.plot(steps[len(steps) - len(y) :], y, lw=1, label=f"train {key} (meta-batch)")
    for key in sorted({k for r in evals for k in r if k.startswith(score)}):
        b.plot(
            [r["step"] for r in evals],
            [r[key] for r in evals],
            marker="o",
            ms=3,
            label=f"validation, {key.removeprefix(score + '_').replace('step', '')} steps",
        )
    a.set_xlabel("meta-iteration")
    b.set_xlabel("meta-iteration")
    a.set_ylabel("query loss")
    b.set_ylabel(score)
    b.legend(fontsize=7)
    fig.suptitle(Path(run_dir).name)
    return save_figure(fig, path)


def plot_run(run_dir: Path, baselines_dir: Path | None = None, out_dir: Path | None = None) -> list[Path]:
    """All figures for a run directory (sinusoid runs: Figures 2 and 3 when the baselines are available)."""
    from icml17.maml.baselines import load_baseline
    from icml17.maml.evaluate import load_run

    trained = load_run(run_dir)  # first: a missing run is an error before anything is written
    if baselines_dir is not None and not Path(baselines_dir).is_dir():
        raise ConfigError(
            f"baselines_dir {baselines_dir} is not a folder; pass the folder of `icml17 maml baseline` "
            f"runs (default runs/maml/baselines) or leave it out",
            param="baselines_dir",
        )
    out_dir = out_dir or run_dir
    written = [plot_learning_curves(run_dir, out_dir / "learning-curves.png")]
    cfg, engine = trained.cfg, trained.engine
    if cfg.task != "sinusoid":
        return written
    models = {"MAML": (engine.model, cfg.inner_lr)}
    curves = {}
    eval_path = run_dir / f"eval-test-q{cfg.eval_queries}.json"
    if eval_path.is_file():
        ev = json.loads(eval_path.read_text())
        curves["MAML (ours)"] = (ev["mean"], ev["ci95"])
    if baselines_dir is not None:
        pre_eval = baselines_dir / "pretrained" / f"eval-k{cfg.shots}.json"
        if pre_eval.is_file():
            ev = json.loads(pre_eval.read_text())
            models["pretrained"] = (load_baseline(baselines_dir / "pretrained", "pretrained"), ev["step_size"][1])
            curves[f"pretrained, step={ev['step_size'][1]:g}"] = (ev["mean"], ev["ci95"])
        oracle_eval = baselines_dir / "oracle" / "eval.json"
        if oracle_eval.is_file() and curves:
            ev = json.loads(oracle_eval.read_text())
            n = len(next(iter(curves.values()))[0])
            curves["oracle"] = ([ev["mean"]] * n, [ev["ci95"]] * n)
    written.append(plot_fig2(models, cfg.shots, out_dir / "fig2-adaptation.png"))
    if curves:
        written.append(plot_fig3(curves, cfg.shots, out_dir / "fig3-mse-vs-steps.png"))
    return written
