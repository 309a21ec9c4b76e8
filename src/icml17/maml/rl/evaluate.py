"""Meta-test evaluation as in Figure 5 of Finn et al. (2017).

40 held-out test tasks (a fixed seed, so every method sees the same tasks); on each, the policy samples a batch,
takes a policy-gradient step on it, samples again with the adapted policy, and so on: the mean return of the
batch's rollouts after 0, 1, 2 and 3 steps, averaged over tasks, with its 95% interval over tasks
(:func:`icml17.core.stats.mean_ci95`). A batch is ``eval_rollouts`` full rollouts, or for 2D navigation the
reference's batch of 4,000 time steps of whole paths (``EVAL_BATCH_STEPS``,
:meth:`icml17.maml.rl.sampler.Sampler.sample_steps`): 40 copies per task restart paths that end at the goal until
the finished paths hold 4,000 steps, then the paths in flight run to their end and every path counts, as rllab's
``BatchSampler`` (``sample_paths(max_samples=4000)``) collects the reference's test batches. The mean over the
batch's paths estimates the expected return of an episode. (Until issue 28 the paths still running at 4,000
steps were dropped: that discards the long episodes a step budget cuts and keeps the short ones, and scored
MAML's adapted policies 0.5-0.8 higher than the reference's rule.) The methods:

Step sizes as the reference's test scripts (``test_maml_point.py``, ``test_maml_cheetah.py``: VPG whose first
step uses the step size and every later step half of it): step 1 with ``lr``, steps 2 and 3 with ``lr / 2``.

- ``maml``: the meta-trained policy, adapted with the inner learning rate it was trained with;
- ``pretrained``: one policy trained on all tasks without adaptation (``mode=pretrained``), fine-tuned with the
  step size that does best on a small grid over separate validation tasks;
- ``random``: a freshly initialised policy, the same tuning;
- ``oracle``: a policy trained with the task in its observation (``mode=oracle``), not adapted: it is told the
  task, and the reference's test scripts run it for no gradient step (its one number is a horizontal line in
  Figure 5).

``per_horizon`` (``--per-horizon``) replaces these step sizes by the paper's tuning of its baselines ("fine-tuned with
a manually tuned step size") applied to every method alike, MAML's first step included: for each number of
steps k, the one size (used for all k steps) of the grid with the best mean return after k steps on the
validation tasks. A user asking "which initialisation is best after k steps?" gets each method at its best for
that k, not at a size chosen for a different horizon.

Devices: evaluation computes on the device of the trained policy (:func:`load_run` and :func:`random_init` take
``device``); the environments, the test tasks and the action noise are the CPU's, so every device evaluates on
the same tasks and episodes. Returned numbers are on the CPU.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from icml17.core.config import ConfigError
from icml17.core.device import explain_out_of_memory
from icml17.core.results import write_record
from icml17.core.runs import TrainedRun, load_trained_run
from icml17.core.stats import mean_ci95
from icml17.maml.rl.envs import sample_tasks
from icml17.maml.rl.policy import GaussianMLPPolicy, params_of
from icml17.maml.rl.presets import (
    LR_GRID,
    TUNE_TASKS,
    MAMLRLConfig,
    later_step_factor,
    make_config,
)
from icml17.maml.rl.published import PAPER_ORACLE, PAPER_RETURNS, PAPER_SOURCE
from icml17.maml.rl.train import adaptation_returns, build_policy, make_sampler

TEST_SEED = 20170306  # the test tasks of every evaluation
VALIDATION_SEED = 20170307  # the tasks on which pretrained / random step sizes are tuned
METHODS = ("maml", "pretrained", "random", "oracle")
# The reference's test batches in time steps (test_maml_point.py: batch_size=4000 with horizon 100: whole paths until
# they hold 4,000 steps, the paths in flight finished; here 40 copies per task restarting paths that reach the goal);
# environments not listed: eval_rollouts full rollouts (their paths run to the horizon, where both ways give the
# same batches).
EVAL_BATCH_STEPS = {"point-nav": 4000}


def eval_step_sizes(lr: float, steps: int, later: float | None = None, env: str = "point-nav") -> list[float]:
    """The first step at ``lr``, later ones at ``later`` (default: the reference's test-script rule for ``env``:
    half of ``lr``, 0.01 of it for ant forward/backward; :func:`presets.later_step_factor`)."""
    later = lr * later_step_factor(env) if later is None else later
    return [lr] + [later] * max(steps - 1, 0)


class Trained(TrainedRun[MAMLRLConfig, GaussianMLPPolicy]):
    """A meta-trained (or freshly initialised) policy and where it came from (:class:`~icml17.core.runs.TrainedRun`;
    ``policy`` names its model)."""

    @property
    def policy(self) -> GaussianMLPPolicy:
        return self.model


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> Trained:
    """The policy of a run directory's last checkpoint, rebuilt from the checkpoint's own config.

    Args:
        run_dir: a run directory written by :func:`icml17.maml.rl.train.train`.
        device: where the policy computes (default: the CPU; the checkpoint loads on any device).

    Returns:
        A :class:`Trained` run: its ``cfg``, ``policy``, iterations and wall time.

    Raises:
        NotTrainedError: ``run_dir`` holds no checkpoint.
        CheckpointError: the checkpoint is damaged or not a maml-rl run's.
    """
    return load_trained_run(run_dir, MAMLRLConfig, "policy", "maml-rl", build_policy, device=device, kind=Trained)


def random_init(preset: str, seed: int = 0, device: torch.device | str | None = None) -> Trained:
    """A freshly initialised policy (the "random initialisation" baseline) on ``device``: nothing is trained."""
    cfg = replace(make_config(preset), seed=seed)
    return Trained(cfg, build_policy(cfg, device=device), 0, 0.0, "")


def batch_steps_of(env: str, batch_steps: int | None) -> int:
    """The evaluation batch in time steps: ``batch_steps`` if given, else the reference's for ``env`` (0: full
    rollouts)."""
    return EVAL_BATCH_STEPS.get(env, 0) if batch_steps is None else batch_steps


def curve(
    trained: Trained,
    tasks: int,
    steps: int,
    lr: float,
    seed: int,
    rollouts: int | None = None,
    batch_steps: int | None = None,
    later: float | None = None,
) -> torch.Tensor:
    """Mean return per task after 0..steps steps on ``tasks`` tasks drawn from ``seed``: (tasks, steps + 1), on
    the CPU; computed on the policy's device."""
    cfg = trained.cfg
    task_array = sample_tasks(cfg.env, tasks, np.random.default_rng(seed))
    with explain_out_of_memory("tasks or batch_steps", trained.device):
        returns, _ = adaptation_returns(
            cfg,
            trained.policy,
            params_of(trained.policy),
            make_sampler(cfg),
            task_array,
            rollouts or cfg.eval_rollouts,
            steps,
            eval_step_sizes(lr, steps, later, cfg.env),
            torch.Generator().manual_seed(seed),
            np.random.default_rng(seed + 1),
            batch_steps_of(cfg.env, batch_steps),
        )
    return returns.cpu()


def tune_lr(
    trained: Trained,
    grid: tuple[float, ...] = LR_GRID,
    tasks: int = TUNE_TASKS,
    steps: int = 3,
    batch_steps: int | None = None,
) -> tuple[float, dict[float, float]]:
    """The step size of ``grid`` with the best mean return over steps 1..steps on validation tasks."""
    scores = {
        lr: curve(trained, tasks, steps, lr, VALIDATION_SEED, batch_steps=batch_steps)[:, 1:].mean().item()
        for lr in grid
    }
    return max(scores, key=scores.get), scores


def tune_later_lr(
    trained: Trained,
    lr: float,
    grid: tuple[float, ...] = LR_GRID,
    tasks: int = TUNE_TASKS,
    steps: int = 3,
    batch_steps: int | None = None,
) -> tuple[float, dict[float, float]]:
    """With the first step at ``lr``: the later steps' size of ``grid`` with the best mean return over steps
    2..steps on the validation tasks (never the test tasks)."""
    scores = {
        later: curve(trained, tasks, steps, lr, VALIDATION_SEED, batch_steps=batch_steps, later=later)[:, 2:]
        .mean()
        .item()
        for later in grid
    }
    return max(scores, key=scores.get), scores


def tune_per_horizon(
    trained: Trained, grid: tuple[float, ...], tasks: int, steps: int, batch_steps: int | None = None
) -> tuple[list[float], dict[float, list[float]]]:
    """For k = 1..steps, the size of ``grid`` (every step at it) with the best mean validation return after k
    steps: (sizes by k, {size: mean validation return after 1..steps}). One validation curve per size serves
    every horizon: its column k is the return after k steps at that size."""
    scores = {
        lr: curve(trained, tasks, steps, lr, VALIDATION_SEED, batch_steps=batch_steps, later=lr).mean(0)[1:].tolist()
        for lr in grid
    }
    return [max(grid, key=lambda lr: scores[lr][k]) for k in range(steps)], scores


def per_horizon_curve(trained: Trained, sizes: list[float], tasks: int, batch_steps: int | None = None) -> torch.Tensor:
    """(tasks, len(sizes) + 1) test returns: column k from the curve with every step at ``sizes[k - 1]``;
    column 0 (before any step) does not depend on the size."""
    steps = len(sizes)
    curves = {
        lr: curve(trained, tasks, steps, lr, TEST_SEED, batch_steps=batch_steps, later=lr)
        for lr in dict.fromkeys(sizes)
    }
    first = curves[sizes[0]]
    return torch.stack([first[:, 0]] + [curves[lr][:, k] for k, lr in enumerate(sizes, start=1)], dim=1)


def evaluate(
    trained: Trained,
    method: str,
    *,
    tasks: int = 40,
    steps: int = 3,
    lr: float | None = None,
    tune_tasks: int | None = None,
    batch_steps: int | None = None,
    later_steps: str = "half",
    grid: tuple[float, ...] | None = None,
    per_horizon: bool = False,
) -> dict[str, Any]:
    """Figure 5's numbers for one method: the mean return after 0..steps policy-gradient steps on the test tasks.

    ``grid`` and ``tune_tasks``, given when nothing is tuned, are refused: a user who passes them expects them to
    change the result.

    Args:
        trained: the policy and its config (:func:`load_run`, or :func:`random_init` for the random baseline).
        method: ``"maml"``, ``"pretrained"``, ``"random"`` or ``"oracle"`` (not adapted: 0 steps).
        tasks: test tasks (a fixed seed: every method sees the same ones).
        steps: adaptation steps.
        lr: the first step's size (default: maml and oracle use the inner learning rate they were trained with;
            pretrained and random tune it on validation tasks).
        tune_tasks: validation tasks per tuning curve (default :data:`TUNE_TASKS`).
        batch_steps: the evaluation batch in time steps (default: the reference's for the environment, 0: full
            rollouts).
        later_steps: ``"half"`` (the reference's rule: later steps at a fraction of the first one's size) or
            ``"tuned"`` (their size chosen from ``grid`` on validation tasks, for every method alike).
        grid: the step sizes tried when tuning (default :data:`LR_GRID`).
        per_horizon: for each number of steps k, its own size for all k steps, chosen on the validation tasks
            for every method alike (``step_sizes_per_horizon`` in the result; ``lr`` is the 1-step choice).

    Returns:
        ``{"returns", "returns_ci95", "per_task", "lr", ...}``: returns and intervals after 0..steps steps.

    Raises:
        ConfigError: an unknown method, impossible sizes, or options that contradict each other.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}", param="method")
    if tasks < 1 or steps < 0:
        raise ConfigError(f"tasks must be >= 1 and steps >= 0, got {tasks} and {steps}", param=("tasks", "steps"))
    if batch_steps is not None and batch_steps < 0:
        raise ConfigError(f"batch_steps must be >= 0 (0: full rollouts), got {batch_steps}", param="batch_steps")
    if later_steps not in ("half", "tuned"):
        raise ConfigError(f"later_steps must be 'half' or 'tuned', got {later_steps!r}", param="later_steps")
    if per_horizon:
        _check_per_horizon(method, steps, lr, later_steps)
    if method == "oracle":
        if later_steps == "tuned":
            raise ConfigError(
                "the oracle is not adapted (its curve has no steps to tune): leave later_steps 'half'",
                param="later_steps",
            )
        steps = 0
    tunes_first = per_horizon or (lr is None and method in ("pretrained", "random") and steps >= 1)
    tunes_later = later_steps == "tuned" and steps >= 2
    if (grid is not None or tune_tasks is not None) and not (tunes_first or tunes_later):
        raise ConfigError(
            f"grid and tune_tasks choose step sizes, but nothing is tuned here ({method}"
            f"{' with a given lr' if lr is not None else ''}, later steps {later_steps!r}, {steps} "
            f"steps): pass later_steps='tuned' (with steps >= 2), or leave grid and tune_tasks unset",
            param=("grid", "tune_tasks", "later_steps"),
        )
    if grid is None:  # per horizon, every method may also take the step size MAML was meta-trained with
        grid = tuple(sorted(set(LR_GRID) | {trained.cfg.inner_lr})) if per_horizon else LR_GRID
    tune_tasks = TUNE_TASKS if tune_tasks is None else tune_tasks
    if not grid or not all(0 < x < float("inf") for x in grid) or tune_tasks < 1:
        raise ConfigError(
            f"the step-size grid needs finite sizes > 0 and tune_tasks >= 1, got {grid} and {tune_tasks}",
            param=("grid", "tune_tasks"),
        )
    scores = None
    if per_horizon:
        sizes, scores = tune_per_horizon(trained, grid, tune_tasks, steps, batch_steps)
        per_task = per_horizon_curve(trained, sizes, tasks, batch_steps)
        result = _result(
            trained,
            method,
            tasks,
            per_task,
            batch_steps,
            tune_tasks,
            lr=sizes[0],
            lr_scores=scores,
            later_lr=None,
            later_lr_scores=None,
            later_steps="per-horizon",
        )
        return {**result, "step_sizes_per_horizon": sizes}
    if tunes_first:
        lr, scores = tune_lr(trained, grid, tasks=tune_tasks, steps=steps, batch_steps=batch_steps)
    elif lr is None:  # maml and oracle adapt with their inner step; with 0 steps the size is never used
        lr = trained.cfg.inner_lr
    later, later_scores = lr * later_step_factor(trained.cfg.env), None
    if tunes_later:
        later, later_scores = tune_later_lr(trained, lr, grid, tasks=tune_tasks, steps=steps, batch_steps=batch_steps)
    per_task = curve(trained, tasks, steps, lr, TEST_SEED, batch_steps=batch_steps, later=later)
    return _result(
        trained,
        method,
        tasks,
        per_task,
        batch_steps,
        tune_tasks,
        lr=lr,
        lr_scores=scores,
        later_lr=later,
        later_lr_scores=later_scores,
        later_steps=later_steps,
    )


def _check_per_horizon(method: str, steps: int, lr: float | None, later_steps: str) -> None:
    """Refuse, before any rollout, what ``per_horizon`` cannot honour."""
    if method == "oracle":
        raise ConfigError(
            "the oracle is not adapted (no step size to tune): per_horizon does not apply", param="per_horizon"
        )
    if steps < 1:
        raise ConfigError(
            "per_horizon tunes a step size for each of 1..steps steps: give steps >= 1", param=("per_horizon", "steps")
        )
    if lr is not None:
        raise ConfigError(
            "per_horizon chooses the step size for each horizon on the validation tasks: leave lr unset",
            param=("per_horizon", "lr"),
        )
    if later_steps != "half":
        raise ConfigError(
            "per_horizon already tunes every step (one size for all k steps, per k): leave later_steps 'half'",
            param=("per_horizon", "later_steps"),
        )


def _result(
    trained: Trained,
    method: str,
    tasks: int,
    per_task: torch.Tensor,
    batch_steps: int | None,
    tune_tasks: int,
    *,
    lr: float,
    lr_scores: dict | None,
    later_lr: float | None,
    later_lr_scores: dict | None,
    later_steps: str,
) -> dict[str, Any]:
    """The result dictionary of :func:`evaluate` from the test returns ``per_task`` (tasks, steps + 1)."""
    stats = [mean_ci95(per_task[:, k].numpy()) for k in range(per_task.shape[1])]
    return {
        "preset": trained.cfg.preset,
        "method": method,
        "lr": lr,
        "lr_scores": lr_scores,
        "later_lr": later_lr,
        "later_lr_scores": later_lr_scores,
        "later_steps": later_steps,
        "tasks": tasks,
        "tune_tasks": tune_tasks if lr_scores or later_lr_scores else None,
        "rollouts": trained.cfg.eval_rollouts,
        "batch_steps": batch_steps_of(trained.cfg.env, batch_steps),
        "returns": [m for m, _ in stats],
        "returns_ci95": [c for _, c in stats],
        "per_task": per_task.tolist(),
    }


def experiment_name(preset: str, method: str) -> str:
    return preset if method == "maml" else f"{preset}-{method}"


def write_result_record(
    result: dict[str, Any], trained: Trained, record_dir: str | Path, command: str, name: str | None = None
) -> Path:
    """``record_dir/<name>.json`` in the project's record schema (``name`` defaults to ``<preset>[-method]``; the
    paper's numbers are those of the preset and method either way)."""
    standard = experiment_name(result["preset"], result["method"])
    name = name or standard
    returns, cis = result["returns"], result["returns_ci95"]
    paper_curve = PAPER_RETURNS.get(standard)
    record: dict[str, Any] = {
        "system": "maml-rl",
        "experiment": name,
        "metric": "return",
        "value": returns[1] if len(returns) > 1 else returns[0],
        "ci95": cis[1] if len(cis) > 1 else cis[0],
        "returns": returns,
        "returns_ci95": cis,
        "steps": list(range(len(returns))),
        "higher_is_better": True,
        "n_eval": result["tasks"],
        "rollouts_per_step": result["rollouts"],
        "batch_steps": result.get("batch_steps", 0),
        "step_size": result["lr"],
        "later_step_size": result.get("later_lr", result["lr"] * later_step_factor(trained.cfg.env)),
        "later_steps": result.get("later_steps", "half"),
        "iterations": trained.iterations,
        "wall_time_s": trained.wall_time_s,
        "seed": trained.cfg.seed,
        "command": command,
        "note": "gymnasium v5 MuJoCo models (not rllab's): compare with the paper in shape, not value"
        if trained.cfg.env != "point-nav"
        else "2D navigation as the reference code defines it",
    }
    if paper_curve is not None:
        record.update(paper=paper_curve[1], paper_returns=paper_curve, paper_source=PAPER_SOURCE)
    elif result["method"] == "oracle" and result["preset"] in PAPER_ORACLE:
        record.update(paper=PAPER_ORACLE[result["preset"]], paper_source=PAPER_SOURCE + "; the oracle's one number")
    # (tasks, steps + 1): where a mean hides a few diverging tasks, these show it
    record["per_task_returns"] = [[round(float(x), 2) for x in row] for row in result["per_task"]]
    if result.get("step_sizes_per_horizon"):
        # each horizon's own size; the grid's scores are the mean validation returns after 1..steps steps
        record["step_sizes_per_horizon"] = result["step_sizes_per_horizon"]
    if result.get("lr_scores"):
        record["step_size_grid"] = {str(k): v for k, v in result["lr_scores"].items()}
    if result.get("later_lr_scores"):
        record["later_step_size_grid"] = {str(k): v for k, v in result["later_lr_scores"].items()}
    if result.get("tune_tasks"):
        record["validation_tasks"] = result["tune_tasks"]
    return write_record(Path(record_dir) / f"{name}.json", record, device=trained.device)


def save_result(run_dir: str | Path, result: dict[str, Any]) -> Path:
    path = Path(run_dir) / f"result-{result['method']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in result.items() if k != "per_task"}, indent=2) + "\n")
    return path
