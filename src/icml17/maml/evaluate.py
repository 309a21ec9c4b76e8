"""Meta-test evaluation as in the reference protocol (Finn et al. 2017, section 5.2 and appendix A.1).

600 fresh test tasks; each is adapted with the test number of inner steps (10) on its support set and scored
on its query set; reported: the mean over tasks with its 95% interval, 1.96 * std / sqrt(600). Query examples
per class default to the preset's ``eval_queries`` (K, as the reference); ``queries=15`` is the variant with
15 per class. Sinusoid scores are MSE on 100 random query points per task. Scores are kept for every step
0..steps, so one evaluation gives the step-1 and step-10 numbers (and Figure 3's curve).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from icml17.core.checkpoint import load_checkpoint
from icml17.core.config import ConfigError, config_from_dict
from icml17.core.loop import CHECKPOINT_NAME
from icml17.core.results import write_record
from icml17.core.stats import mean_ci95
from icml17.maml.engine import MAML
from icml17.maml.losses import make_losses
from icml17.maml.presets import MAMLConfig
from icml17.maml.tasks import make_task_source
from icml17.maml.train import build_engine, evaluate_tasks

TEST_SEED = 20170306  # the test tasks of every evaluation (fixed, so runs are compared on the same tasks)


def load_run(run_dir: str | Path, input_shape: tuple[int, ...] | None = None,
             data_dir: str | Path | None = None) -> tuple[MAMLConfig, MAML, dict[str, Any]]:
    """(config, engine with the checkpoint's weights, checkpoint info {step, wall_time_s, argv})."""
    run_dir = Path(run_dir)
    cfg_path, ckpt_path = run_dir / "config.json", run_dir / "checkpoints" / CHECKPOINT_NAME
    if not cfg_path.is_file() or not ckpt_path.is_file():
        raise ConfigError(f"{run_dir} is not a trained MAML run (needs config.json and checkpoints/{CHECKPOINT_NAME})")
    record = json.loads(cfg_path.read_text())
    cfg = config_from_dict(MAMLConfig, record["config"])
    if input_shape is None:
        input_shape = make_task_source(cfg, data_dir).input_shape
    engine = build_engine(cfg, input_shape)
    ckpt = load_checkpoint(ckpt_path)
    engine.load_state_dict(ckpt["state"]["engine"])
    return cfg, engine, {"step": int(ckpt["step"]), "wall_time_s": float(ckpt.get("wall_time_s", 0.0)),
                         "argv": record.get("argv", [])}


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None, *, tasks: int = 600,
                 queries: int | None = None, steps: int | None = None, split: str = "test",
                 seed: int = TEST_SEED) -> dict[str, Any]:
    """Evaluate a run; returns {"metric", "steps": [0..S], "mean": [...], "ci95": [...], ...} and writes it
    to ``run_dir/eval-<split>-q<queries>.json``."""
    if tasks < 1:
        raise ConfigError(f"--tasks must be >= 1, got {tasks}")
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else None
    if record is None:
        raise ConfigError(f"{run_dir} has no config.json; train first")
    cfg = config_from_dict(MAMLConfig, record["config"])
    source = make_task_source(cfg, data_dir)
    cfg, engine, info = load_run(run_dir, source.input_shape)
    steps = cfg.eval_inner_steps if steps is None else steps
    queries = queries or cfg.eval_queries
    _, _, metric = make_losses(cfg.task, cfg.shots, cfg.loss_scale)
    m = evaluate_tasks(engine, source, split, tasks, steps, torch.Generator().manual_seed(seed), queries=queries)
    stats = [mean_ci95(m.score[:, k].numpy()) for k in range(steps + 1)]
    result = {"preset": cfg.preset, "metric": metric, "split": split, "tasks": tasks, "queries": queries,
              "steps": list(range(steps + 1)), "mean": [s[0] for s in stats], "ci95": [s[1] for s in stats],
              "iterations": info["step"], "wall_time_s": info["wall_time_s"], "train_argv": info["argv"],
              "seed": cfg.seed}
    (run_dir / f"eval-{split}-q{queries}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def experiment_names(cfg: MAMLConfig, queries: int, steps: int) -> dict[int, str]:
    """Which inner-step counts become records, and their experiment names (DESIGN.md naming)."""
    variant = "" if queries == cfg.eval_queries else f"-q{queries}"
    if cfg.task == "sinusoid":
        return {k: f"{cfg.preset}-step{k}{variant}" for k in (1, 10) if k <= steps}
    return {steps: f"{cfg.preset}{variant}"}


def write_records(result: dict[str, Any], cfg: MAMLConfig, out_dir: str | Path, command: str) -> list[Path]:
    """One ``results/maml/<experiment>.json`` per reported step count."""
    paths = []
    for k, name in experiment_names(cfg, result["queries"], result["steps"][-1]).items():
        paper_applies = cfg.task != "sinusoid" or k == 1  # the quoted sinusoid numbers are one-step MSE
        paths.append(write_record(Path(out_dir) / f"{name}.json", {
            "system": "maml", "experiment": name, "metric": result["metric"], "value": result["mean"][k],
            "ci95": result["ci95"][k], "paper": cfg.paper if paper_applies else None,
            "paper_ci95": cfg.paper_ci95 if paper_applies else None,
            "higher_is_better": result["metric"] == "accuracy", "n_eval": result["tasks"],
            "iterations": result["iterations"], "wall_time_s": round(result["wall_time_s"], 1),
            "seed": result["seed"], "command": command,
        }))
    return paths
