"""Figures 4 and 5 of Finn et al. (2017) for meta-RL: return versus policy-gradient steps for every method
(from the evaluation records), and 2D-navigation paths before and after 1 and 3 steps (from a trained run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from icml17.core.config import ConfigError
from icml17.core.report import plt, save_figure
from icml17.maml.rl.envs import PointNav, sample_tasks
from icml17.maml.rl.evaluate import eval_step_sizes, experiment_name, load_run
from icml17.maml.rl.policy import params_of
from icml17.maml.rl.published import PAPER_RETURNS
from icml17.maml.rl.train import adaptation_returns, make_sampler

LABELS = {"maml": "MAML", "pretrained": "pretrained", "random": "random initialisation", "oracle": "oracle"}


def return_curves(records_dir: str | Path, family: str) -> dict[str, dict]:
    """Figure 5's data for a record family, per method: ``{"mean", "low", "high", "what"}`` (lists over steps
    0..3).

    A method's curve comes from the summary record ``<family>-seeds.json`` (written by ``icml17 results seeds``)
    when it summarises that method's family: the mean over training seeds, bars from the worst to the best seed.
    Otherwise from the method's seed-0 record ``<family>[-method].json``: one run, bars its 95% interval over
    test tasks.

    Args:
        records_dir: the folder of the evaluation records, e.g. ``results/maml-rl``.
        family: the MAML record's name, e.g. ``point-nav``; the baselines' are ``<family>-<method>``.

    Returns:
        Method name -> curve, for the methods that have records.
    """
    records_dir = Path(records_dir)
    summary = records_dir / f"{family}-seeds.json"
    summarised = json.loads(summary.read_text()).get("families", {}) if summary.exists() else {}
    curves = {}
    for method in LABELS:
        name = experiment_name(family, method)
        returns = summarised.get(name, {}).get("fields", {}).get("returns")
        path = records_dir / f"{name}.json"
        if returns is not None:
            seeds = summarised[name]["seeds"]
            curves[method] = {
                "mean": returns["mean"],
                "low": returns["min"],
                "high": returns["max"],
                "what": f"{len(seeds)} seeds, worst to best",
            }
        elif path.exists():
            rec = json.loads(path.read_text())
            mean, ci = rec["returns"], rec["returns_ci95"]
            curves[method] = {
                "mean": mean,
                "low": [a - c for a, c in zip(mean, ci)],
                "high": [a + c for a, c in zip(mean, ci)],
                "what": "95% interval over tasks",
            }
    return curves


def plot_returns(records_dir: str | Path, preset: str, out: str | Path, family: str | None = None) -> Path:
    """Figure 5: mean return after 0..3 steps for each method of the record ``family`` (default: the preset's
    own records), the paper's curve for the preset dashed."""
    family = family or preset
    curves = return_curves(records_dir, family)
    if not curves:
        raise ConfigError(
            f"no {family}[-method].json records in {records_dir}: evaluate with `icml17 maml-rl eval "
            f"--preset {preset} --record {records_dir}` first, or pass other records_dir/family",
            param=("records_dir", "family"),
        )
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, c in curves.items():
        label = LABELS[method]
        if method == "oracle":  # told the task, never adapted: one number, drawn across the steps
            ax.axhline(c["mean"][0], color="black", linestyle=":", label=label)
            continue
        mean = np.asarray(c["mean"])
        bars = np.stack([mean - np.asarray(c["low"]), np.asarray(c["high"]) - mean])
        line = ax.errorbar(np.arange(len(mean)), mean, yerr=bars, marker="o", capsize=3, label=f"{label} ({c['what']})")
        paper = PAPER_RETURNS.get(experiment_name(preset, method))
        if paper is not None:
            ax.plot(
                np.arange(len(paper)),
                paper,
                linestyle="--",
                color=line[0].get_color(),
                alpha=0.6,
                label=f"{label} (paper)",
            )
    ax.set_xticks(range(max((len(c["mean"]) for c in curves.values()), default=1)))
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_title(family)
    ax.legend(fontsize=6)
    return save_figure(fig, out)


def plot_trajectories(
    run_dir: str | Path, out: str | Path, steps: tuple[int, ...] = (0, 1, 3), seed: int = 4, rollouts: int | None = None
) -> Path:
    """Figure 4: one test goal, one sampled path of the (stochastic) policy before adaptation and after 1 and 3
    steps; the legend gives each stage's mean return over its rollouts."""
    trained = load_run(run_dir)
    cfg = trained.cfg
    tasks = sample_tasks(cfg.env, 1, np.random.default_rng(seed))
    _, samples = adaptation_returns(
        cfg,
        trained.policy,
        params_of(trained.policy),
        make_sampler(cfg),
        tasks,
        rollouts or cfg.eval_rollouts,
        max(steps),
        eval_step_sizes(cfg.inner_lr, max(steps), env=cfg.env),
        torch.Generator().manual_seed(seed),
        np.random.default_rng(seed),
    )
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    reach = 0.6  # the goals' square [-0.5, 0.5]^2 with a margin, widened to hold every path drawn
    for k in steps:
        r = samples[k]
        n = int(r.mask[0, 0].sum())
        path = np.concatenate([np.zeros((1, 2)), r.obs[0, 0, 1:n, :2].numpy() if n > 1 else np.zeros((0, 2))])
        path = np.concatenate([path, path[-1:] + PointNav.move(r.actions[0, 0, n - 1, :2].numpy())])
        reach = max(reach, 1.05 * float(np.abs(path).max()))
        ax.plot(
            path[:, 0],
            path[:, 1],
            marker=".",
            markersize=3,
            label=f"{'pre-update' if k == 0 else f'{k} grad step' + ('s' if k > 1 else '')} "
            f"(return {r.returns()[0].mean().item():.1f})",
        )
    ax.scatter([tasks[0, 0]], [tasks[0, 1]], marker="*", s=250, color="k", zorder=5, label="goal")
    ax.set_xlim(-reach, reach)  # a square centred on the start, so distances read the same on both axes
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.legend(fontsize=7)
    ax.set_title(f"MAML, {trained.iterations} meta-iterations")
    return save_figure(fig, out)
