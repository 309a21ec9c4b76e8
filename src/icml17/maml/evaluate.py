"""Meta-test evaluation as in the reference protocol (Finn et al. 2017, section 5.2 and appendix A.1).

600 fresh test tasks; each is adapted with the test number of inner steps (10) on its support set and scored
on its query set; reported: the mean over tasks with its 95% interval, 1.96 * std / sqrt(600). Query examples
per class default to the preset's ``eval_queries`` (K, as the reference); ``queries=15`` is the variant with
15 per class. Sinusoid scores are MSE on 100 random query points per task. Scores are kept for every step
0..steps, so one evaluation gives the step-1 and step-10 numbers (and Figure 3's curve).

The model comes from a run directory's checkpoint (rebuilt from the checkpoint's own config) or from shipped
weights; the tasks come from the dataset or from a file of given episodes (:func:`load_episodes`).

Devices: ``load_run`` / ``load_shipped`` read the weights on the CPU and move the engine to ``device``; evaluation
follows the engine's device, in fp32, with the test tasks drawn on the CPU (the same tasks on every device). Out of
memory, lower the engine's ``chunk_size`` (``maml eval --chunk-size N``), which does not change the scores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from icml17.core import device as devices
from icml17.core.config import ConfigError
from icml17.core.results import write_record
from icml17.core.runs import TrainedRun, load_trained_run, trained_from_weights
from icml17.core.stats import mean_ci95
from icml17.data.episodes import TaskBatch
from icml17.maml.engine import MAML
from icml17.maml.losses import make_losses
from icml17.maml.presets import MAMLConfig
from icml17.maml.published import published
from icml17.maml.tasks import make_task_source
from icml17.maml.train import build_engine, evaluate_tasks

TEST_SEED = 20170306  # the test tasks of every evaluation (fixed, so runs are compared on the same tasks)
EVAL_MEMORY_KNOBS = "the engine's chunk_size (tasks adapted at once; the scores do not change)"
EPISODE_KEYS = ("support_x", "support_y", "query_x", "query_y")


class Trained(TrainedRun[MAMLConfig, MAML]):
    """A meta-trained engine and where it came from (:class:`~icml17.core.runs.TrainedRun`; ``engine`` names its
    model)."""

    @property
    def engine(self) -> MAML:
        return self.model


def input_shape(cfg: MAMLConfig) -> tuple[int, ...]:
    """One example's shape, known from the config alone (so evaluation on given episodes needs no dataset)."""
    if cfg.task == "sinusoid":
        return (1,)
    channels = 1 if cfg.task == "omniglot" else 3
    return (channels, cfg.image_size, cfg.image_size)


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> Trained:
    """The engine of a run directory's last checkpoint, rebuilt from the checkpoint's own config, loaded on the
    CPU and moved to ``device`` (default: the CPU)."""
    return load_trained_run(run_dir, MAMLConfig, "engine", "maml", _build, device=device, kind=Trained)


def load_shipped(name: str, device: torch.device | str | None = None) -> Trained:
    """The engine of the shipped weights ``name`` (``icml17.weights``), moved to ``device`` (default: the CPU)."""
    from icml17.weights import load_weights

    return trained_from_weights(load_weights(name, "maml"), MAMLConfig, _build, device=device, kind=Trained)


def _build(cfg: MAMLConfig) -> MAML:
    return build_engine(cfg, input_shape(cfg))


def load_episodes(path: str | Path) -> TaskBatch:
    """Given test episodes from an ``.npz`` file with four arrays (T tasks, S support and Q query examples):

    ``support_x`` (T, S, *x) and ``query_x`` (T, Q, *x): float32 inputs, images as (C, H, W) in [0, 1] with ink
    = 1 on a 0 background for Omniglot (the layout our samplers produce); sinusoid inputs (T, S, 1).
    ``support_y`` (T, S) and ``query_y`` (T, Q): int64 class indices in [0, ways) per task; sinusoid targets
    (T, S, 1) float32. Written by ``numpy.savez(path, support_x=..., support_y=..., query_x=..., query_y=...)``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"episodes file {path} not found" + (" (it is a folder)" if path.is_dir() else ""))
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # every .npz is a zip archive; a .npy, a text file or an empty one is not
        raise ConfigError(
            f"{path} is not a .npz archive of episodes: write the four arrays with "
            f"numpy.savez(path, support_x=..., support_y=..., query_x=..., query_y=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in EPISODE_KEYS if k not in npz.files]
            if missing:
                raise ConfigError(
                    f"{path} lacks arrays {missing}; it needs {list(EPISODE_KEYS)}, written by "
                    f"numpy.savez(path, support_x=..., support_y=..., query_x=..., query_y=...)"
                )
            arrays = {k: torch.from_numpy(np.ascontiguousarray(npz[k])) for k in EPISODE_KEYS}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable .npz file of episodes: {e}") from e
    sx, sy, qx, qy = (arrays[k] for k in EPISODE_KEYS)
    if sx.shape[:2] != sy.shape[:2] or qx.shape[:2] != qy.shape[:2] or sx.shape[0] != qx.shape[0]:
        raise ConfigError(
            f"{path}: support/query arrays disagree on tasks or examples: support_x {tuple(sx.shape)}, "
            f"support_y {tuple(sy.shape)}, query_x {tuple(qx.shape)}, query_y {tuple(qy.shape)}"
        )
    if sx.shape[2:] != qx.shape[2:]:
        raise ConfigError(f"{path}: support inputs {tuple(sx.shape[2:])} and query inputs {tuple(qx.shape[2:])} differ")
    if sx.dim() < 2 or 0 in (sx.shape[0], sx.shape[1], qx.shape[1]):
        raise ConfigError(
            f"{path} holds no episodes to score: support_x {tuple(sx.shape)}, query_x {tuple(qx.shape)} "
            f"(tasks, examples, ...); write at least one task with support and query examples"
        )
    for name, a in zip(EPISODE_KEYS, (sx, sy, qx, qy), strict=True):
        if a.is_floating_point() and not bool(torch.isfinite(a).all()):
            bad = int((~torch.isfinite(a)).sum())
            raise ConfigError(
                f"{path}: {name} holds {bad} NaN or infinite values (of {a.numel()}); scores of such "
                f"episodes mean nothing: fix or drop those tasks"
            )
    for name, x in (("support_x", sx), ("query_x", qx)):
        if x.dim() == 5 and x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ConfigError(
                f"{path}: images must be floats in [0, 1], {name} holds values in [{float(x.min()):g}, "
                f"{float(x.max()):g}]: divide 8-bit images by 255"
            )
    floats = lambda t: t.to(torch.float32)  # noqa: E731
    labels = (lambda t: t.to(torch.int64)) if not sy.is_floating_point() else floats
    return TaskBatch(floats(sx), labels(sy), floats(qx), labels(qy))


def check_episodes(trained: Trained, batch: TaskBatch) -> None:
    """Refuse episodes that do not fit the model: input shape, number of ways, label values."""
    cfg, shape = trained.cfg, input_shape(trained.cfg)
    if tuple(batch.support_x.shape[2:]) != shape:
        raise ConfigError(
            f"episodes have inputs of shape {tuple(batch.support_x.shape[2:])}, the model ({cfg.preset}) takes {shape}"
        )
    if not cfg.is_classification:
        return
    for name, y in (("support_y", batch.support_y), ("query_y", batch.query_y)):
        if y.is_floating_point():
            raise ConfigError(f"{name} must hold integer class indices for {cfg.preset}")
        if int(y.min()) < 0 or int(y.max()) >= cfg.ways:
            raise ConfigError(
                f"{name} holds labels {int(y.min())}..{int(y.max())}, but the model is "
                f"{cfg.ways}-way: labels must lie in [0, {cfg.ways}) (relabel each task's classes "
                f"0..{cfg.ways - 1})"
            )
    ways_seen = int(batch.support_y[0].unique().numel())
    if ways_seen != cfg.ways:
        raise ConfigError(
            f"the first task's support set has {ways_seen} classes; the model ({cfg.preset}) is {cfg.ways}-way"
        )


def evaluate(
    trained: Trained,
    data_dir: str | Path | None = None,
    *,
    tasks: int = 600,
    queries: int | None = None,
    steps: int | None = None,
    split: str = "test",
    seed: int = TEST_SEED,
    episodes: TaskBatch | None = None,
    chunk: int = 50,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Scores after 0..steps inner steps: {"metric", "steps", "mean", "ci95", "tasks", "queries", ...}, computed
    on the engine's device.

    ``progress``: a bar on stderr counts the tasks scored (600 Omniglot tasks take about a minute on a CPU),
    cleared when the evaluation ends; None (the default) shows it when stderr is a terminal, so logs and captured
    output stay clean."""
    cfg, engine = trained.cfg, trained.engine
    steps = cfg.eval_inner_steps if steps is None else steps
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}", param="steps")
    if tasks < 1 or (queries is not None and queries < 1):
        raise ConfigError(f"tasks and queries must be >= 1, got {tasks} and {queries}", param=("tasks", "queries"))
    _, _, metric = make_losses(cfg.task, cfg.shots, cfg.loss_scale)
    if episodes is not None:
        check_episodes(trained, episodes)
        ways = max(cfg.ways, 1)
        queries = episodes.query_x.shape[1] // ways
        parts = []
        with (
            devices.explain_out_of_memory(EVAL_MEMORY_KNOBS, engine.device),
            _bar(episodes.num_tasks, cfg, progress) as bar,
        ):
            for i in range(0, episodes.num_tasks, chunk):
                parts.append(engine.evaluate(episodes[i : i + chunk], steps).score)
                bar.update(parts[-1].shape[0])
        scores = torch.cat(parts)
        tasks, split = episodes.num_tasks, "given-episodes"
    else:
        queries = queries or cfg.eval_queries
        source = make_task_source(cfg, data_dir)
        with devices.explain_out_of_memory(EVAL_MEMORY_KNOBS, engine.device), _bar(tasks, cfg, progress) as bar:
            scores = evaluate_tasks(
                engine,
                source,
                split,
                tasks,
                steps,
                torch.Generator().manual_seed(seed),
                queries=queries,
                chunk=chunk,
                done=bar.update,
            ).score
    scores = scores.cpu()  # one copy back for the statistics
    stats = [mean_ci95(scores[:, k].numpy()) for k in range(steps + 1)]
    return {
        "preset": cfg.preset,
        "metric": metric,
        "split": split,
        "tasks": tasks,
        "queries": queries,
        "steps": list(range(steps + 1)),
        "mean": [s[0] for s in stats],
        "ci95": [s[1] for s in stats],
        "iterations": trained.iterations,
        "wall_time_s": trained.wall_time_s,
        "seed": cfg.seed,
        "weights": trained.weights,
    }


def _bar(tasks: int, cfg: MAMLConfig, progress: bool | None) -> tqdm:
    """The evaluation's progress bar: on stderr, rank 0 only, drawn at once (the first chunk can take 20 s)."""
    from icml17.core import distributed

    disable = True if not distributed.context().is_main or progress is False else None if progress is None else False
    return tqdm(
        total=tasks,
        desc=f"maml eval {cfg.preset}",
        unit="task",
        leave=False,
        disable=disable,
        dynamic_ncols=True,
        mininterval=1.0,
    )


def save_result(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """``run_dir/eval-<split>-q<queries>.json``: the whole curve, read by ``icml17 maml plots``."""
    path = Path(run_dir) / f"eval-{result['split']}-q{result['queries']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def experiment_names(cfg: MAMLConfig, queries: int, steps: int) -> dict[int, str]:
    """Which inner-step counts become records, and their experiment names (``<preset>-step<k>``, one record per
    step count)."""
    variant = "" if queries == cfg.eval_queries else f"-q{queries}"
    if cfg.task == "sinusoid":
        return {k: f"{cfg.preset}-step{k}{variant}" for k in (1, 10) if k <= steps}
    return {steps: f"{cfg.preset}{variant}"}


def write_records(
    result: dict[str, Any], cfg: MAMLConfig, out_dir: str | Path, command: str, device: torch.device | str = "cpu"
) -> list[Path]:
    """One ``results/maml/<experiment>.json`` per reported step count (refused for given episodes, whose
    numbers are the user's own, and when no reported step count was evaluated); ``device`` computed the scores
    and its hardware is named in each record."""
    if result["split"] not in ("test", "val"):
        raise ConfigError(
            "records hold the protocol's scores on its test or validation tasks, not scores on given "
            "episodes: write no record for these",
            param="episodes",
        )
    names = experiment_names(cfg, result["queries"], result["steps"][-1])
    if not names:
        raise ConfigError(
            f"no record to write: {cfg.preset} records the scores after 1 and 10 steps, and "
            f"steps={result['steps'][-1]} evaluates fewer; raise steps",
            param="steps",
        )
    paths = []
    for k, name in names.items():
        paper = published(cfg.preset, steps=k)  # the quoted sinusoid numbers are one-step MSE
        paths.append(
            write_record(
                Path(out_dir) / f"{name}.json",
                {
                    "system": "maml",
                    "experiment": name,
                    "metric": result["metric"],
                    "value": result["mean"][k],
                    "ci95": result["ci95"][k],
                    "paper": paper and paper.value,
                    "paper_ci95": paper and paper.ci95,
                    "paper_source": paper and paper.source,
                    "higher_is_better": result["metric"] == "accuracy",
                    "n_eval": result["tasks"],
                    "split": result["split"],
                    "queries_per_class": result["queries"],
                    "inner_steps": k,
                    "iterations": result["iterations"],
                    "wall_time_s": round(result["wall_time_s"], 1),
                    "seed": result["seed"],
                    "weights": result["weights"],
                    "command": command,
                },
                device=device,
            )
        )
    return paths
