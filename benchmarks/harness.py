"""One way to time a benchmark's sides and write its record, shared by every script under ``benchmarks/``.

Why each piece is there:

- **Warm-up**: each side runs ``warmup`` times untimed first (lazy initialisation, allocator growth, oneDNN
  primitive caches), so the first timed repeat is not an outlier that only one side pays.
- **Interleaved, rotated repeats**: repeat ``r`` runs every side once, starting at side ``r mod n``
  (:func:`rotations`). A change of machine load during the run then falls on every side alike, and no side is
  always the one that runs first after another side has evicted the caches. Take ``repeats`` a multiple of the
  number of sides so that each side starts a round equally often.
- **Median and spread**: a side's time is the median of its repeats (robust to the odd preempted repeat); the
  record keeps min-max and the interquartile range beside it (:class:`Timing`), so a reader sees how noisy the
  machine was, and every single time.
- **Load average before and after** (:class:`Session`, :func:`compare`): ratios measured on a busy machine are
  noisier, and absolute times slower; the record says how busy it was.
- **Device queues**: every timed call synchronises the device before and after (:func:`timed`), so queued GPU
  work is counted where it was issued.
- **One record writer**: :meth:`Session.write` goes through ``icml17.core.results.write_record`` (hardware,
  threads, torch version and date from ``environment``), adding the command, the wall time and the load average at
  start and end.

Sides that must run in processes of their own (peak memory, torchrun) use :func:`rotations` for the order of
their rounds and :func:`summarize` for the times they report.

Example:
    >>> import harness
    >>> session = harness.Session("demo", threads=1)  # environment and load average now
    >>> result = harness.compare({"ours": lambda: sum(range(100)), "loop": lambda: sum(list(range(100)))},
    ...                          repeats=4)
    >>> sorted(result.timings)
    ['loop', 'ours']
    >>> result.speedup()["loop"] > 0  # loop's median over ours'
    True
    >>> session.write("/tmp/demo.json", {"cases": [{"case": "sum", "ours_ms": result.timings["ours"].median_ms}],
    ...                                  "timing": result.summary()})  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

_SRC = Path(__file__).resolve().parents[1] / "src"
if str(_SRC) not in sys.path:  # the scripts run from a checkout without an installed package too
    sys.path.insert(0, str(_SRC))

from icml17.core.device import synchronize  # noqa: E402
from icml17.core.results import environment, load_average, write_record  # noqa: E402

Clock = Callable[[], float]  # seconds, monotonic


def rotations(names: Sequence[str], repeats: int) -> list[list[str]]:
    """The order of the sides in each repeat: repeat ``r`` starts at side ``r mod len(names)``.

    Args:
        names: the sides, in their listed order.
        repeats: how many rounds.

    Returns:
        ``repeats`` lists, each a rotation of ``names``.

    Example:
        >>> rotations(["a", "b", "c"], 4)
        [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b'], ['a', 'b', 'c']]
    """
    names = list(names)
    if not names:
        return [[] for _ in range(repeats)]
    return [names[r % len(names) :] + names[: r % len(names)] for r in range(repeats)]


@dataclass
class Timing:
    """The repeats of one side, in milliseconds, in the order they ran."""

    times_ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    @property
    def iqr_ms(self) -> tuple[float, float]:
        """First and third quartile (inclusive method: the quartiles of the repeats themselves, interpolated)."""
        if len(self.times_ms) < 2:
            return self.times_ms[0], self.times_ms[0]
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q1, q3

    def summary(self, digits: int = 3) -> dict[str, Any]:
        """For a record: median, min-max, interquartile range and every repeat (ms)."""

        def r(v: float) -> float:
            return round(v, digits)

        q1, q3 = self.iqr_ms
        return {
            "median_ms": r(self.median_ms),
            "min_max_ms": [r(self.min_ms), r(self.max_ms)],
            "iqr_ms": [r(q1), r(q3)],
            "times_ms": [r(t) for t in self.times_ms],
        }


def summarize(times_ms: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """:meth:`Timing.summary` of times measured elsewhere (a subprocess, a torchrun rank)."""
    return Timing(list(times_ms)).summary(digits)


def timed(
    fn: Callable[[], Any],
    device: str | torch.device = "cpu",
    clock: Clock = time.perf_counter,
) -> tuple[Any, float]:
    """``fn()`` and its wall time in ms, the device synchronised before and after (queued work counted).

    Args:
        fn: the call to time, without arguments.
        device: where its work runs; a GPU is synchronised, the CPU is not.
        clock: seconds (a fake one in tests).

    Returns:
        ``(fn(), milliseconds)``.
    """
    synchronize(torch.device(device))
    t = clock()
    out = fn()
    synchronize(torch.device(device))
    return out, (clock() - t) * 1e3


@dataclass
class Comparison:
    """What :func:`compare` measured: per side its timings and outputs, the order run, the load around it."""

    timings: dict[str, Timing]
    outputs: dict[str, list[Any]]  # every timed call's return value, per side
    order: list[list[str]]  # the sides' order in each repeat
    load_before: list[float] | None = None
    load_after: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def median_ms(self) -> dict[str, float]:
        return {name: t.median_ms for name, t in self.timings.items()}

    def speedup(self, ours: str = "ours") -> dict[str, float]:
        """Every other side's median over ``ours``' median (above 1: ours is faster)."""
        base = self.timings[ours].median_ms
        return {name: t.median_ms / base for name, t in self.timings.items() if name != ours}

    def last(self, name: str) -> Any:
        """The last output of side ``name``."""
        return self.outputs[name][-1]

    def summary(self, digits: int = 3) -> dict[str, Any]:
        """For a record: each side's :meth:`Timing.summary` and the load average before and after."""
        return {
            "timings": {name: t.summary(digits) for name, t in self.timings.items()},
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
        }


def compare(
    sides: Mapping[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    between: Callable[[], Any] | None = gc.collect,
    clock: Clock = time.perf_counter,
) -> Comparison:
    """Time every side ``repeats`` times, interleaved, the order rotated per repeat, after ``warmup`` untimed calls.

    Args:
        sides: name -> a call without arguments (it builds what it needs: whatever a user would pay is timed).
        repeats: timed calls per side (a multiple of ``len(sides)`` gives each side the first slot equally often).
        warmup: untimed calls per side first, in the listed order.
        device: the sides' device (synchronised around every timed call).
        between: run untimed before every timed call (default: a garbage collection, so one side's garbage is not
            collected during another's timing); None for nothing.
        clock: seconds (a fake one in tests).

    Returns:
        A :class:`Comparison`: medians, spreads, all outputs, the order, the load average before and after.

    Raises:
        ValueError: no sides, or fewer than one repeat.
    """
    if not sides or repeats < 1:
        raise ValueError(f"compare needs at least one side and one repeat (got {len(sides)} sides, {repeats} repeats)")
    load_before = load_average()
    for _ in range(warmup):
        for fn in sides.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, list[Any]] = {name: [] for name in sides}
    order = rotations(list(sides), repeats)
    for names in order:
        for name in names:
            if between is not None:
                between()
            out, ms = timed(sides[name], device, clock)
            times[name].append(ms)
            outputs[name].append(out)
    return Comparison({name: Timing(ts) for name, ts in times.items()}, outputs, order, load_before, load_average())


def median_ms(
    fn: Callable[[], Any],
    repeats: int,
    *,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    clock: Clock = time.perf_counter,
) -> float:
    """The median of ``repeats`` timed calls of one side after ``warmup`` untimed ones (ms)."""
    return (
        compare({"side": fn}, repeats=repeats, warmup=warmup, device=device, between=None, clock=clock)
        .timings["side"]
        .median_ms
    )


def machine_scaling(n: int, size: int, reps: int) -> dict:
    """What ``n`` processes can gain here right now at best: a 1-thread float32 matmul's GFLOP/s alone, and the sum
    over ``n`` such processes running at once (on ``n`` free cores, ``n`` times the single rate).

    Args:
        n: processes run at once.
        size: the matmul's square size.
        reps: timed matmuls per process (after one warm-up).

    Returns:
        The rate of one process, the sum of ``n`` processes' rates, and their ratio to ``n`` times the single rate.
    """
    code = (
        f"import torch, time; torch.set_num_threads(1); a = torch.randn({size}, {size}); a @ a; "
        f"t = time.perf_counter(); [a @ a for _ in range({reps})]; "
        f"print({reps} * 2 * {size} ** 3 / (time.perf_counter() - t) / 1e9)"
    )
    cmd = [sys.executable, "-c", code]
    alone = float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    together = sum(float(p.communicate()[0]) for p in procs)
    return {
        "matmul_gflops_1_process": round(alone, 1),
        f"matmul_gflops_{n}_processes_sum": round(together, 1),
        "parallel_efficiency": round(together / (n * alone), 2),
    }


class Session:
    """One benchmark run: the environment and load average when it starts; :meth:`write` adds the load average at
    the end and the wall time, and writes through the project's record writer.

    Args:
        name: the benchmark's name (the record's ``benchmark`` field, which puts the record among the speed tables
            of docs/benchmarks.md); None for a record that compares no sides (a profile).
        device: where the sides run (the record's hardware line).
        threads: torch threads for the whole run (set here; None leaves torch's setting).
        argv: the script and its arguments (default ``sys.argv``), for the record's ``command``.
    """

    def __init__(
        self,
        name: str | None,
        *,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        argv: Sequence[str] | None = None,
    ):
        if threads is not None:
            torch.set_num_threads(threads)
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, str(threads))  # numpy/scipy loaded later, and child processes
        self.name, self.device = name, torch.device(device)
        argv = list(sys.argv if argv is None else argv)
        script = Path(argv[0]) if argv else Path(name or "benchmark")
        try:
            script = script.resolve().relative_to(Path(__file__).resolve().parents[1])
        except ValueError:
            pass
        self.command = shlex.join(["python", str(script), *argv[1:]])
        self.start = environment(self.device)
        self._t0 = time.perf_counter()

    def fields(self) -> dict[str, Any]:
        """The fields :meth:`write` adds: command, load average at start and now, wall time so far."""
        return {
            **({"benchmark": self.name} if self.name else {}),
            "command": self.command,
            "load_average_at_start": self.start["load_average"],
            "load_average_at_end": load_average(),
            "wall_time_s": round(time.perf_counter() - self._t0, 1),
        }

    def write(self, path: str | Path, record: Mapping[str, Any]) -> Path:
        """Write ``record`` with :meth:`fields` (the record's own keys win) and the environment."""
        out = write_record(path, {**self.fields(), **record}, device=self.device)
        print(f"load average {self.start['load_average']} -> {load_average()}; wrote {out}", file=sys.stderr)
        return out
