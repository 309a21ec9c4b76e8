"""Run directories, resume checks and trained runs: what every system shares between a training and its evaluation.

A run directory holds::

    config.json              the resolved config, its class and the command line (for people; never loaded back)
    metrics.jsonl            one JSON object per logged step
    checkpoints/last.pt      model/optimizer/RNG state, step, wall time and the config the run was trained with
    tensorboard/             event files, with --tensorboard
    previous/<time>/         what --no-resume moved aside (nothing computed is deleted)

Two rules keep a run honest. A resume is checked against the checkpoint's own config *before* anything is
written, and refused naming the keys that differ (keys that do not change what is trained, such as checkpoint
or evaluation intervals, may differ). Evaluation rebuilds the model from the checkpoint's own config, never from
``config.json``, which describes the last command that ran, not necessarily the weights.

:class:`TrainedRun` is the one type evaluation works on, whether the weights come from a run directory
(:func:`load_trained_run`) or from shipped weights (:func:`trained_from_weights`). This module imports neither
torch nor argparse: the command-line flags are in :mod:`icml17.cli_args`, thread settings in
:mod:`icml17.core.device`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from icml17.core.config import ConfigError, config_from_dict, config_to_dict, config_value

T = TypeVar("T")
ConfigT = TypeVar("ConfigT")
ModelT = TypeVar("ModelT")
TrainedT = TypeVar("TrainedT", bound="TrainedRun")

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = Path("checkpoints") / "last.pt"
TENSORBOARD_DIR = "tensorboard"
PREVIOUS_DIR = "previous"
RUNS_ROOT = Path("runs")

# Keys that say how often to report or save, never what is trained: a resume may change them.
ALWAYS_RESUME_FREE = ("checkpoint_every", "eval_every", "log_every")


# ------------------------------------------------------------------------------------------ run directory
class NotTrainedError(ConfigError):
    """The run directory holds no trained run (no last checkpoint)."""


def or_shipped_weights(load: Callable[[], T]) -> T:
    """``load()``; for the commands that also take ``--weights``, a missing run's error names that way too."""
    try:
        return load()
    except NotTrainedError as e:
        raise NotTrainedError(f"{e}; or use shipped weights (weights=NAME)", param=("run_dir", "weights")) from e


def refuse_other_run(run_dir: str | Path, holds: str, asked: str, fix: str) -> None:
    """A run evaluated as something it is not would print and record the wrong name: when the run ``holds``
    something other than what the flags ``asked`` for, stop and say ``fix``."""
    if holds != asked:
        raise ConfigError(f"{run_dir} holds a {holds} run, not {asked}: {fix}")


def default_run_dir(system: str, experiment: str) -> Path:
    """``runs/<system>/<experiment>``: the one default every command uses."""
    return RUNS_ROOT / system / experiment


def check_run_dir(run_dir: str | Path) -> Path:
    """A usable run directory path (it may not exist yet), or a ConfigError saying why not."""
    run_dir = Path(run_dir)
    blocker = file_in_the_way(run_dir)
    if blocker is not None:
        raise ConfigError(
            f"run directory {run_dir} cannot be used: {blocker} is a file; pass another run_dir", param="run_dir"
        )
    return run_dir


def file_in_the_way(folder: Path) -> Path | None:
    """The file (if any) at ``folder`` or above it that stops ``folder`` from being a directory."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


# ------------------------------------------------------------------------------------------ resume checks
def resume_free_keys(cfg: Any) -> tuple[str, ...]:
    """Config keys a resume may change: the intervals, plus the config class's own ``RESUME_FREE``."""
    return ALWAYS_RESUME_FREE + tuple(getattr(cfg, "RESUME_FREE", ()))


def config_values(cfg: Any) -> dict[str, Any]:
    """A config's fields as plain values (a dataclass config, or a mapping as it is)."""
    if dataclasses.is_dataclass(cfg):
        return config_to_dict(cfg)
    return dict(cfg or {})


def config_differences(stored: Mapping[str, Any], current: Mapping[str, Any], free: Iterable[str] = ()) -> list[str]:
    """``['inner_lr: 0.4 -> 0.1', ...]`` for every key whose value differs, except ``free`` keys."""
    free = set(free)
    out = []
    for key in sorted(set(stored) | set(current)):
        if key in free:
            continue
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a, default=str) != json.dumps(b, default=str):
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def checkpoint_config(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The config stored in a checkpoint (a JSON string, so the file stays loadable with weights_only)."""
    raw = ckpt.get("config")
    if isinstance(raw, str):
        return json.loads(raw) if raw else {}
    return dict(raw or {})


def _with_added_defaults(stored: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """``stored`` plus the default of every config field added after it was written: those runs trained with it."""
    if not dataclasses.is_dataclass(cfg):
        return stored
    added = {}
    for f in dataclasses.fields(cfg):
        if f.name in stored:
            continue
        if f.default is not dataclasses.MISSING:
            added[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            added[f.name] = f.default_factory()
    return {**{k: config_value(v) for k, v in added.items()}, **stored}


def _without_retired(stored: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """``stored`` less the keys its config class has retired (``RETIRED``: fields that never changed what was
    trained, such as a published number once kept in the config), so old checkpoints and shipped weights still
    load and resume."""
    retired = set(getattr(cfg, "RETIRED", ()))
    return {k: v for k, v in stored.items() if k not in retired}


def check_resume(run_dir: Path, ckpt: Mapping[str, Any], cfg: Any) -> None:
    """Refuse to resume ``ckpt`` with a config that changes what is trained; name the keys and the fixes."""
    stored = _with_added_defaults(_without_retired(checkpoint_config(ckpt), cfg), cfg)
    diffs = config_differences(stored, config_values(cfg), resume_free_keys(cfg))
    if diffs:
        raise ConfigError(
            f"{run_dir} holds a checkpoint (step {int(ckpt.get('step', 0))}) trained with another config: "
            f"{'; '.join(diffs)}. Resuming would mix two experiments: use another run_dir, pass resume=False to "
            f"start over (the old run is kept under {run_dir / PREVIOUS_DIR}), or undo those changes",
            param=("run_dir", "resume"),
        )


def set_aside_previous(run_dir: Path) -> Path | None:
    """Move an earlier run's checkpoint, log, config and event files to ``previous/<time>/`` (--no-resume)."""
    names = [CONFIG_FILE, METRICS_FILE, str(CHECKPOINT_FILE.parent), TENSORBOARD_DIR]
    present = [n for n in names if (run_dir / n).exists()]
    if not present:
        return None
    dest = run_dir / PREVIOUS_DIR / _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    dest.mkdir(parents=True)
    for n in present:
        shutil.move(str(run_dir / n), str(dest / n))
    return dest


def write_config(run_dir: Path, cfg: Any, argv: list[str] | None) -> Path:
    """``config.json``: the resolved config, its class and the command line (written after resume checks)."""
    path = run_dir / CONFIG_FILE
    record = {
        "config_class": type(cfg).__name__ if dataclasses.is_dataclass(cfg) else None,
        "config": config_values(cfg),
        "argv": list(argv) if argv is not None else None,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def read_argv(run_dir: str | Path) -> list[str]:
    """The command line recorded in ``config.json`` (empty when unknown)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return list(json.loads(path.read_text()).get("argv") or [])
    except (OSError, json.JSONDecodeError):
        return []


def load_run_config(config_cls: type, run_dir: str | Path, ckpt: Mapping[str, Any]) -> Any:
    """Rebuild the config a checkpoint was trained with.

    Checkpoints written before the full config was stored lack the resume-free keys (``iterations`` for
    MAML); those few are filled from ``config.json`` or the class defaults, which do not change the weights.
    Keys the class no longer has (a retired field, such as a published number) are dropped.
    """
    values = checkpoint_config(ckpt)
    known = {f.name for f in dataclasses.fields(config_cls)}
    missing = known - set(values)
    if missing:
        try:
            written = json.loads((Path(run_dir) / CONFIG_FILE).read_text()).get("config", {})
        except (OSError, json.JSONDecodeError):
            written = {}
        free = set(ALWAYS_RESUME_FREE) | set(getattr(config_cls, "RESUME_FREE", ()))
        values.update({k: written[k] for k in missing & free if k in written})
    return config_from_dict(config_cls, {k: v for k, v in values.items() if k in known})


# ------------------------------------------------------------------------------------------- trained runs
@dataclasses.dataclass
class TrainedRun(Generic[ConfigT, ModelT]):
    """Trained weights and where they came from: what evaluation, plots and records need.

    Attributes:
        cfg: the config the weights were trained with (from the checkpoint, never from ``config.json``).
        model: the model rebuilt from ``cfg`` with the weights loaded (:func:`read_trained_run` leaves the state
            dict here, before a model is built).
        iterations: training steps behind the weights.
        wall_time_s: the training's wall time, summed over resumes.
        train_command: the command that trained them (from ``config.json``; empty when unknown).
        weights: the shipped weights' name, when loaded from the package.
        record: the results record shipped weights reproduce.
    """

    cfg: ConfigT
    model: ModelT
    iterations: int = 0
    wall_time_s: float = 0.0
    train_command: str = ""
    weights: str | None = None
    record: str | None = None

    @property
    def device(self) -> Any:
        """The device the model computes on (that of its parameters)."""
        return next(self.model.parameters()).device  # type: ignore[attr-defined]


def read_trained_run(
    run_dir: str | Path, config_cls: type[ConfigT], state_key: str, system: str, how_to_train: str | None = None
) -> TrainedRun[ConfigT, dict[str, Any]]:
    """Read ``run_dir``'s last checkpoint and the config it was trained with (never ``config.json``'s); the
    returned run's ``model`` is the checkpoint's ``state_key`` state dict.

    Args:
        how_to_train: ends the error for a missing run (default: the system's train command).

    Raises:
        NotTrainedError: ``run_dir`` holds no last checkpoint.
        ConfigError: the checkpoint holds no ``state_key`` state (another system's run).
    """
    from icml17.core.checkpoint import load_checkpoint

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        how_to_train = how_to_train or f"train it first with `icml17 {system} train --run-dir {run_dir} ...`"
        raise NotTrainedError(f"{run_dir} is not a trained {system} run (no {CHECKPOINT_FILE}); {how_to_train}")
    ckpt = load_checkpoint(path)
    if state_key not in ckpt.get("state", {}):
        raise ConfigError(f"{path} is not a {system} checkpoint (it holds no {state_key!r} state)")
    return TrainedRun(
        load_run_config(config_cls, run_dir, ckpt),
        ckpt["state"][state_key],
        int(ckpt["step"]),
        float(ckpt.get("wall_time_s", 0.0)),
        " ".join(read_argv(run_dir)),
    )


def with_model(
    run: TrainedRun[ConfigT, Any],
    build: Callable[[ConfigT], ModelT],
    device: Any = None,
    kind: type[TrainedT] = TrainedRun,
) -> TrainedT:
    """``run`` with its state dict loaded into ``build(run.cfg)``, moved to ``device`` when one is given (the
    weights are read on the CPU whatever device wrote them), as a ``kind`` (a system's named subclass).

    Raises:
        CheckpointError: the stored weights do not fit the model their config builds (keys or shapes, named), or
            hold NaN or infinite values (the arrays named).
    """
    model: Any = build(run.cfg)
    check_state_fits(
        model.state_dict(), run.model, f"shipped weights {run.weights!r}" if run.weights else "the run's checkpoint"
    )
    model.load_state_dict(run.model)
    if device is not None:
        model = model.to(device)
    return kind(
        run.cfg, model, run.iterations, run.wall_time_s, run.train_command, weights=run.weights, record=run.record
    )


def check_state_fits(expected: Mapping[str, Any], state: Mapping[str, Any], what: str) -> None:
    """Refuse, in one line naming the arrays, a state dict that ``load_state_dict`` would reject with a
    multi-line dump (missing or unexpected keys, other shapes) or accept although it is unusable (NaN, inf)."""
    from icml17.core.checkpoint import CheckpointError

    def some(names: list[str]) -> str:
        return ", ".join(names[:4]) + (f" (and {len(names) - 4} more)" if len(names) > 4 else "")

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} where the model has {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and hasattr(v, "shape") and tuple(getattr(state[k], "shape", ())) != tuple(v.shape)
    ]
    problems = [
        f"missing {some(missing)}" if missing else "",
        f"unexpected {some(unexpected)}" if unexpected else "",
        f"shapes differ: {some(shapes)}" if shapes else "",
    ]
    if any(problems):
        raise CheckpointError(
            f"{what} do{'es' if what.startswith('the') else ''} not fit the model its config "
            f"builds ({'; '.join(p for p in problems if p)}): changed after training, or another "
            f"model's"
        )
    bad = [
        k for k, v in state.items() if getattr(v, "is_floating_point", lambda: False)() and not bool(v.isfinite().all())
    ]
    if bad:
        raise CheckpointError(
            f"{what} hold{'s' if what.startswith('the') else ''} NaN or infinite values in "
            f"{some(bad)}: retrain, or evaluate an earlier checkpoint"
        )


def load_trained_run(
    run_dir: str | Path,
    config_cls: type[ConfigT],
    state_key: str,
    system: str,
    build: Callable[[ConfigT], ModelT],
    *,
    device: Any = None,
    how_to_train: str | None = None,
    kind: type[TrainedT] = TrainedRun,
) -> TrainedT:
    """The model of ``run_dir``'s last checkpoint, rebuilt by ``build`` from the checkpoint's own config, on
    ``device`` (default: where ``build`` put it, the CPU). See :func:`read_trained_run` for the errors.

    Examples:
        ``load_trained_run("runs/maml/sinusoid-k10", MAMLConfig, "engine", "maml", build_engine_for)``
    """
    return with_model(read_trained_run(run_dir, config_cls, state_key, system, how_to_train), build, device, kind)


class _Weights(Protocol):
    name: str
    config: dict[str, Any]
    state: dict[str, Any]
    iterations: int
    wall_time_s: float
    train_command: str
    record: str


def trained_from_weights(
    weights: _Weights,
    config_cls: type[ConfigT],
    build: Callable[[ConfigT], ModelT],
    *,
    device: Any = None,
    kind: type[TrainedT] = TrainedRun,
) -> TrainedT:
    """Shipped weights (:func:`icml17.weights.load_weights`) as a trained run, rebuilt by ``build`` from their
    config, on ``device`` (default: the CPU)."""
    cfg = config_from_dict(config_cls, _without_retired(weights.config, config_cls))
    run = TrainedRun(
        cfg,
        weights.state,
        weights.iterations,
        weights.wall_time_s,
        weights.train_command,
        weights=weights.name,
        record=weights.record,
    )
    return with_model(run, build, device, kind)
