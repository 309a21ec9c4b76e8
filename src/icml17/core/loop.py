"""The one training loop every system uses.

Read top to bottom: resume (if a checkpoint exists) -> for each step: train step -> NaN guard -> log ->
periodic eval -> periodic checkpoint. The caller supplies a ``train_step(step) -> metrics`` closure and the
objects whose state must survive a restart (model, optimizer, generators); the loop owns the run directory:

    run_dir/metrics.jsonl        one JSON object per logged step ({"step", "split", ...metrics})
    run_dir/checkpoints/last.pt  model/optimizer/RNG states, step and config, replaced atomically

Resume is exact: every random stream is either an explicit generator registered in ``state`` or one of the
global RNGs (torch, numpy, python), all of which are checkpointed; metric lines written after the checkpoint
(work that a kill threw away) are dropped on resume, so a killed-and-resumed run writes the same log as an
uninterrupted one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from icml17.core import distributed
from icml17.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from icml17.core.errors import UserError
from icml17.core.runs import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    check_resume,
    check_run_dir,
    config_values,
    set_aside_previous,
    write_config,
)


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class NonFiniteError(UserError, FloatingPointError):
    """A metric became NaN or infinite; the last good checkpoint is kept."""


class GeneratorState:
    """Adapts a ``torch.Generator`` or ``numpy.random.Generator`` to the state_dict protocol.

    Register every explicit random stream of a run in :func:`run_loop`'s ``state`` through it, so that a resumed
    run draws what an uninterrupted one would.

    Args:
        generator: the stream to checkpoint (it is read and restored in place).
    """

    def __init__(self, generator: torch.Generator | np.random.Generator):
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        """The generator's state: a tensor for torch, a JSON string for numpy (loadable with ``weights_only``)."""
        if isinstance(self.generator, torch.Generator):
            return {"torch": self.generator.get_state()}
        # numpy states hold 128-bit ints; JSON keeps the checkpoint loadable with weights_only=True
        return {"numpy": json.dumps(self.generator.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator in place.

        Args:
            state: what :meth:`state_dict` returned.
        """
        if isinstance(self.generator, torch.Generator):
            self.generator.set_state(state["torch"])
        else:
            self.generator.bit_generator.state = json.loads(state["numpy"])


def _global_rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(np.random.get_state(legacy=False), default=_np_default),
        "python": json.dumps(random.getstate()),
    }


def _np_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(type(obj))


def _set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = json.loads(state["numpy"])
    np.random.set_state(
        (
            np_state["bit_generator"],
            np.array(np_state["state"]["key"], dtype=np.uint32),
            np_state["state"]["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    py = json.loads(state["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


@dataclass
class LoopResult:
    """What :func:`run_loop` did.

    Attributes:
        steps_done: the last step trained (equal to ``total_steps`` unless stopped early).
        resumed_from: the checkpoint's step this attempt started from (0 for a fresh run).
        wall_time_s: seconds of training over all attempts of the run, resumed ones included.
        last_metrics: the last step's metrics.
        first_metrics: this attempt's first step's metrics.
        last_eval: the last periodic evaluation's metrics.
        run_dir: the run directory.
        interrupted: stopped by SIGINT or SIGTERM after saving a checkpoint.
    """

    steps_done: int
    resumed_from: int
    wall_time_s: float  # over all attempts of this run, resumed ones included
    last_metrics: dict[str, float] = field(default_factory=dict)
    first_metrics: dict[str, float] = field(default_factory=dict)  # of this attempt's first step
    last_eval: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM after saving a checkpoint


def _is_finite(metrics: Mapping[str, Any]) -> bool:
    return all(math.isfinite(float(v)) for v in metrics.values() if isinstance(v, (int, float)))


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines of steps already covered by the checkpoint; drop the rest (and any torn line)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("step", 0) <= step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(x + "\n" for x in kept))
    tmp.replace(path)


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _unwritable(run_dir: Path, e: OSError, kept: str) -> UserError:
    """One line for a run directory that cannot be written, saying what survived and what to do."""
    what = e.strerror or str(e)
    where = f" ({e.filename})" if e.filename else ""
    fix = (
        "free some space and rerun the same command, or pass another run_dir"
        if e.errno in (errno.ENOSPC, errno.EDQUOT)
        else "pass a run_dir on a writable disk"
    )
    return UserError(f"cannot write the run directory {run_dir}: {what}{where}; {kept}; {fix}", param="run_dir")


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


class _StopSignals:
    """Turn the first SIGINT/SIGTERM into a request to stop after the current step (which then checkpoints);
    a second one interrupts at once. Only the main thread can install handlers; elsewhere this is inert."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _agree(metrics: dict[str, Any], received: int | None, out_of_time: bool) -> tuple[dict[str, Any], int | None, bool]:
    """All-reduce the step's numeric metrics (mean over ranks) and the stop flags (any rank)."""
    keys = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    t = torch.tensor(
        [float(metrics[k]) for k in keys] + [float(received or 0), float(out_of_time)],
        dtype=torch.float64,
        device=distributed.device(),
    )
    distributed.all_reduce_sum(t)
    n = distributed.context().world_size
    merged = {**metrics, **{k: (t[i] / n).item() for i, k in enumerate(keys)}}
    signum = int(t[-2].item()) and (received or int(signal.SIGTERM))
    return merged, signum or None, bool(t[-1].item())


def _tensorboard_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise UserError(
            "tensorboard=True needs the tensorboard package: pip install 'icml17[tensorboard]' "
            "(or pip install tensorboard)",
            param="tensorboard",
        ) from e
    return SummaryWriter


def run_loop(
    run_dir: str | Path,
    total_steps: int,
    train_step: Callable[[int], Mapping[str, Any]],
    state: Mapping[str, Stateful],
    *,
    config: Any = None,
    argv: list[str] | None = None,
    eval_fn: Callable[[int], Mapping[str, Any]] | None = None,
    eval_every: int = 0,
    checkpoint_every: int = 100,
    log_every: int = 1,
    resume: bool = True,
    progress: bool = True,
    desc: str = "train",
    time_budget_s: float | None = None,
    tensorboard: bool = False,
) -> LoopResult:
    """Run ``train_step(step)`` for steps ``[start, total_steps)`` with logging, eval and checkpoints.

    The way to train your own model with what every ``icml17`` command gets: resume from the last checkpoint
    (rerun the same call), ``metrics.jsonl``, periodic evaluation, a NaN guard, SIGINT/SIGTERM handling and a
    time budget. Resuming is checked against ``config`` before anything is written
    (:func:`icml17.core.runs.check_resume`); ``config.json`` is written only once the run is accepted. Under
    torchrun (:mod:`icml17.core.distributed`) every rank runs this loop: all resume from the same checkpoint; the
    step's metrics are averaged over ranks (so the NaN guard and stops agree); rank 0 alone writes the log,
    config, checkpoints, TensorBoard events and progress bar, and the others wait for each checkpoint.

    Args:
        run_dir: the run directory (created): ``metrics.jsonl``, ``checkpoints/last.pt``, ``config.json``.
        total_steps: train until this step; a resumed run starts at its checkpoint's step.
        train_step: ``train_step(step) -> {name: number}``, one optimisation step; tensors are read with ``item``.
        state: everything that must survive a restart, by name: objects with ``state_dict`` and
            ``load_state_dict`` (model, optimizer, :class:`GeneratorState` for each explicit random stream).
            The global torch, numpy and Python generators are checkpointed too.
        config: a config dataclass or dict, stored in every checkpoint; a resume with another config is refused.
        argv: the command line, stored in ``config.json``.
        eval_fn: ``eval_fn(step) -> {name: number}``, logged with ``split="eval"``.
        eval_every: steps between evaluations (0: none; the last step is always evaluated when > 0).
        checkpoint_every: steps between checkpoints (the last step always gets one).
        log_every: steps between metric lines.
        resume: resume from ``run_dir``'s checkpoint; False moves an earlier run aside (to ``previous/``).
        progress: show a progress bar.
        desc: the progress bar's label.
        time_budget_s: stop after this many seconds of this attempt, with a checkpoint.
        tensorboard: also write TensorBoard event files.

    Returns:
        A :class:`LoopResult`.

    Raises:
        NonFiniteError: a metric became NaN or infinite (the last good checkpoint is kept).
        CheckpointError: the checkpoint is damaged (the message says how to start afresh), of another config, or
            lacks some of ``state``.
        ConfigError: ``run_dir`` cannot be used.
        UserError: ``run_dir`` cannot be written (a read-only file system, a full disk), saying what was kept.

    Examples:
        Three steps, then a rerun asked for five resumes at step 3:

        >>> import tempfile, torch
        >>> from icml17.core import run_loop
        >>> from icml17.core.loop import read_metrics
        >>> model = torch.nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> x, y = torch.randn(16, 2), torch.randn(16, 1)
        >>> def train_step(step):
        ...     loss = ((model(x) - y) ** 2).mean()
        ...     opt.zero_grad(); loss.backward(); opt.step()
        ...     return {"loss": loss}
        >>> tmp = tempfile.TemporaryDirectory()
        >>> run_loop(tmp.name, 3, train_step, {"model": model, "opt": opt}, progress=False).steps_done
        3
        >>> result = run_loop(tmp.name, 5, train_step, {"model": model, "opt": opt}, progress=False)
        >>> result.resumed_from, result.steps_done, [r["step"] for r in read_metrics(tmp.name)]
        (3, 5, [1, 2, 3, 4, 5])
        >>> tmp.cleanup()
    """
    if total_steps < 0:
        raise ValueError(f"total_steps must be >= 0, got {total_steps}")
    run_dir = check_run_dir(run_dir)
    ckpt_path = run_dir / CHECKPOINT_FILE
    log_path = run_dir / METRICS_FILE
    config_json = json.dumps(config_values(config), sort_keys=True, default=str)
    ctx = distributed.context()
    distributed.same_on_all_ranks(config_json, "config")
    main = ctx.is_main

    ckpt = None
    if resume and ckpt_path.exists():
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError as e:  # a damaged checkpoint need not end the run for good: say how to restart
            raise CheckpointError(
                f"{e}; to start this run afresh instead, pass resume=False (the old files are "
                f"set aside in {run_dir / 'previous'}, nothing is deleted)",
                param="resume",
            ) from e
        check_resume(run_dir, ckpt, config if config is not None else {})
        missing = sorted(set(state) - set(ckpt["state"]))
        if missing:
            raise CheckpointError(f"{ckpt_path} lacks state for {missing}; it was written by another kind of run")
    writer_class = _tensorboard_writer_class() if tensorboard and main else None  # fails before any work
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may move it aside
    done_before = ckpt is not None and int(ckpt["step"]) >= total_steps  # nothing left to train
    if main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            if ckpt is None:
                set_aside_previous(run_dir)  # a fresh run owns its directory; nothing earlier is deleted
            if done_before:  # config.json keeps describing the command that trained the run
                print(
                    f"{run_dir} is already trained to step {int(ckpt['step'])} (>= {total_steps}): nothing to "
                    f"do; pass more iterations to train on",
                    file=sys.stderr,
                )
            elif config is not None:
                write_config(run_dir, config, argv)
        except OSError as e:  # a read-only file system, a full disk, no permission
            raise _unwritable(run_dir, e, "nothing was trained") from e
    writer = writer_class(str(run_dir / TENSORBOARD_DIR)) if writer_class is not None else None

    start = 0
    prior_wall = 0.0  # wall time spent by earlier (killed or budget-stopped) attempts of this run
    if ckpt is not None:
        for name, obj in state.items():
            obj.load_state_dict(ckpt["state"][name])
        _set_global_rng_state(ckpt["rng"])
        start = int(ckpt["step"])
        prior_wall = float(ckpt.get("wall_time_s", 0.0))
        if main:
            _truncate_log(log_path, start)
        if int(ckpt.get("world_size", 1)) != ctx.world_size:
            raise CheckpointError(
                f"{ckpt_path} was written by a run of {ckpt.get('world_size', 1)} processes; "
                f"resume it with the same number (it has {ctx.world_size})"
            )

    def checkpoint(step: int) -> None:
        if not main:
            distributed.barrier()  # wait until rank 0's checkpoint is complete
            return
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "config": config_json,
                "config_class": type(config).__name__ if config is not None else None,
                "state": {name: obj.state_dict() for name, obj in state.items()},
                "rng": _global_rng_state(),
                "wall_time_s": prior_wall + time.perf_counter() - t0,
                "world_size": ctx.world_size,
            },
        )
        distributed.barrier()

    def log_line(record: dict[str, Any]) -> None:
        log.write(json.dumps(record) + "\n")
        if writer is not None:
            for k, v in record.items():
                if k not in ("step", "split") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    writer.add_scalar(f"{record['split']}/{k}", v, record["step"])

    result = LoopResult(steps_done=start, resumed_from=start, wall_time_s=0.0, run_dir=run_dir)
    t0 = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        initial=start,
        desc=desc,
        disable=not (progress and main),
        dynamic_ncols=True,
        mininterval=0.5,
    )
    say = bar.write if main else (lambda _: None)  # tqdm.write prints even from a disabled bar: rank 0 alone
    last_saved = start if ckpt is not None else None
    try:
        with open(log_path if main else os.devnull, "a", buffering=1) as log, _StopSignals() as stop:

            def kept() -> str:  # reads last_saved when a step fails
                return (
                    f"the last good checkpoint (step {last_saved}) is kept at {ckpt_path}"
                    if last_saved is not None
                    else f"no checkpoint was written yet (the first comes at step {min(checkpoint_every, total_steps)})"
                )

            for step in range(start, total_steps):
                try:
                    metrics = {k: _scalar(v) for k, v in train_step(step).items()}
                except FloatingPointError as e:  # e.g. a simulator's NaN: say where the run stands
                    if isinstance(e, NonFiniteError):
                        raise
                    raise NonFiniteError(f"step {step + 1} failed: {e}. Training stopped; {kept()}.") from e
                done = step + 1
                out_of_time = time_budget_s is not None and time.perf_counter() - t0 > time_budget_s
                if ctx.enabled:  # one view for all ranks: mean metrics, and stop when any rank must
                    metrics, received, out_of_time = _agree(metrics, stop.received, out_of_time)
                    stop.received = received
                if not _is_finite(metrics):
                    raise NonFiniteError(
                        f"non-finite metric at step {done}: {metrics}. Training stopped; {kept()}. Lower the "
                        f"learning rate or clip gradients, then resume or restart."
                    )
                result.last_metrics = metrics
                if step == start:
                    result.first_metrics = metrics
                if done % log_every == 0 or done == total_steps:
                    log_line({"step": done, "split": "train", **metrics})
                if eval_fn is not None and eval_every > 0 and (done % eval_every == 0 or done == total_steps):
                    ev = {k: _scalar(v) for k, v in eval_fn(done).items()}
                    result.last_eval = ev
                    log_line({"step": done, "split": "eval", **ev})
                    say(
                        f"[{desc}] step {done}: "
                        + ", ".join(f"{k}={v:.4g}" for k, v in ev.items() if isinstance(v, (int, float)))
                    )
                stopping = out_of_time or stop.received is not None
                if done % checkpoint_every == 0 or done == total_steps or stopping:
                    log.flush()
                    checkpoint(done)
                    last_saved = done
                bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in list(metrics.items())[:4] if isinstance(v, (int, float))}, refresh=False
                )
                bar.update(1)
                result.steps_done = done
                if stop.received is not None:
                    result.interrupted = True
                    say(
                        f"[{desc}] {signal.Signals(stop.received).name} received: checkpoint saved at step "
                        f"{done}; rerun the same command to resume"
                    )
                    break
                if out_of_time:
                    say(
                        f"[{desc}] time budget of {time_budget_s:.0f}s spent at step {done}; "
                        f"checkpoint saved, resume with the same command"
                    )
                    break
    except OSError as e:  # metrics.jsonl could not be written: a full disk, or one remounted read-only
        if e.errno not in _DISK_ERRNOS:
            raise
        kept = (
            f"the checkpoint of step {last_saved} is intact (metric lines after it, a torn one included, "
            f"are dropped on resume)"
            if last_saved is not None
            else "no checkpoint was written yet"
        )
        raise _unwritable(run_dir, e, kept) from e
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    result.wall_time_s = prior_wall + time.perf_counter() - t0
    return result


def read_metrics(run_dir: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    """The metric lines of a run, parsed.

    Args:
        run_dir: the run directory.
        split: ``"train"`` or ``"eval"`` to keep only those lines (None: all).

    Returns:
        One dict per line of ``metrics.jsonl`` (empty when there is none). A torn last line (a write cut short by
        a full disk or a kill, which a resume drops anyway) is left out.

    Raises:
        UserError: a line before the last is not JSON (the file was edited or damaged), named by its number.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise json.JSONDecodeError("not an object", line, 0)
        except json.JSONDecodeError as e:
            if number == len(lines):
                break  # torn by an interrupted write
            raise UserError(
                f"{path}, line {number}, is not a JSON metric line ({e.msg}): the log was edited or "
                f"damaged; delete that line, or retrain the run"
            ) from e
        rows.append(row)
    return [r for r in rows if split is None or r.get("split") == split]
