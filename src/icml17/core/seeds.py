"""Seed families and the comparisons between them: the statistics behind every "mean over seeds" in the results.

A *family* is one experiment run with several seeds. Its records follow one layout: seed 0 is
``<dir>/<name>.json`` and seed k is ``<dir>/seeds/<name>-seed<k>.json`` (seed 0 may also live there when there
is no ``<dir>/<name>.json``). Three questions are asked of families, always on fields the records already carry
(``value``, or a curve such as the returns after 0..3 steps), never on new measurements:

- **over seeds** (:func:`summarise`): per field, the values by seed, their mean, minimum and maximum;
- **between two families** (:func:`compare`): the gap of the means; in how many (seed of A, seed of B) pairings A
  is better and in how many worse; whether the two seed ranges are *apart* (every seed of one better than every
  seed of the other: the only claim a handful of seeds supports without a model of their spread);
- **paired by task** (:func:`task_paired`), where every record keeps per-task numbers on the same tasks: A minus B
  per task and seed pair (i, i), averaged over the pairs, then the mean over tasks with its 95% t-interval
  (:func:`t_interval`, sample standard deviation, n - 1 degrees of freedom) and the share of tasks where A is
  better.

"Better" follows the records' ``higher_is_better``. A *summary record* (:func:`update_summary`) holds family
summaries and comparisons side by side, each with the command that wrote it; writing one part keeps the others,
and drops parts whose families no longer have records. Records are written by :func:`icml17.core.results.write_record`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from icml17.core.errors import UserError
from icml17.core.results import write_record

DECIMALS = 4  # means, gaps and intervals are rounded to this many decimals (the records' own numbers are kept)
SEED_SUFFIX = re.compile(r"-seed(\d+)$")  # the experiment name of seed k is <family>-seed<k>
_SEED_FILE = re.compile(r"-seed(\d+)\.json$")


def family(experiment: str) -> str:
    """The family of an experiment: its name without a trailing ``-seedN`` (``point-nav-seed2`` -> ``point-nav``)."""
    return SEED_SUFFIX.sub("", experiment)


@dataclass(frozen=True)
class Family:
    """The records of one experiment over its seeds, in seed order.

    Attributes:
        name: the experiment name shared by the records (``point-nav``, ``mnist-typeA``).
        seeds: the seeds, ascending.
        records: one record per seed, in the order of ``seeds``.
    """

    name: str
    seeds: tuple[int, ...]
    records: tuple[dict[str, Any], ...]

    def has(self, key: str) -> bool:
        """Whether every record of the family carries the (dotted) field ``key``."""
        return all(_lookup(r, key) is not None for r in self.records)

    def values(self, key: str) -> np.ndarray:
        """The field ``key`` of every record, stacked: (seeds,) for a number, (seeds, n) for a curve.

        Raises:
            UserError: a record lacks the field, or its shape differs between seeds.
        """
        rows = []
        for seed, record in zip(self.seeds, self.records):
            value = _lookup(record, key)
            if value is None:
                raise UserError(
                    f"{self.name} seed {seed} has no field {key!r}: summarise fields every seed carries", param="fields"
                )
            rows.append(np.asarray(value, dtype=np.float64))
        if len({row.shape for row in rows}) > 1:
            raise UserError(
                f"{self.name}: field {key!r} has different shapes across seeds {[row.shape for row in rows]}",
                param="fields",
            )
        return np.stack(rows)

    def common(self, key: str) -> Any:
        """The field ``key`` when every record has the same value for it, else None."""
        values = [json.dumps(_lookup(r, key), sort_keys=True) for r in self.records]
        return _lookup(self.records[0], key) if len(set(values)) == 1 else None

    def hardware(self) -> list[str]:
        """Where the family's numbers were measured (each distinct ``hardware`` of its records)."""
        return sorted({part for r in self.records for part in str(r.get("hardware", "unknown")).split(" / ")})


def family_paths(directory: str | Path, name: str) -> dict[int, Path]:
    """Seed -> record file of the family ``name`` under ``directory`` (empty when it has none).

    Raises:
        UserError: seed 0 is both ``<name>.json`` and ``seeds/<name>-seed0.json``.
    """
    directory = Path(directory)
    paths: dict[int, Path] = {}
    for path in sorted((directory / "seeds").glob(f"{_glob_escape(name)}-seed*.json")):
        match = _SEED_FILE.search(path.name)
        if match and path.name == f"{name}-seed{match.group(1)}.json":
            paths[int(match.group(1))] = path
    top = directory / f"{name}.json"
    if top.is_file():
        if 0 in paths:
            raise UserError(f"{name} has two records for seed 0 ({top} and {paths[0]}): keep one")
        paths[0] = top
    return dict(sorted(paths.items()))


def _glob_escape(name: str) -> str:
    """``name`` with the characters a glob pattern reads specially put in brackets."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def load_family(directory: str | Path, name: str) -> Family:
    """The records of the family ``name`` under ``directory``, by seed.

    Raises:
        UserError: no record of the family exists, or a record's ``seed`` differs from its file's.
    """
    paths = family_paths(directory, name)
    if not paths:
        raise UserError(
            f"no records of {name!r} in {directory} (looked for {name}.json and "
            f"seeds/{name}-seed<k>.json): check the family name and the directory",
            param="directory",
        )
    records = []
    for seed, path in paths.items():
        record = json.loads(path.read_text())
        if record.get("seed") is not None and record["seed"] != seed:
            raise UserError(f"{path} is filed as seed {seed} but its record says seed {record['seed']}: rename it")
        records.append(record)
    return Family(name, tuple(paths), tuple(records))


def over_seeds(values: np.ndarray) -> dict[str, Any]:
    """``values`` (seeds, ...) -> {"by_seed", "mean", "min", "max"}: the statistics elementwise over seeds, every
    number rounded to :data:`DECIMALS` (the records keep the exact ones)."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "by_seed": _round(values),
        "mean": _round(values.mean(0)),
        "min": _round(values.min(0)),
        "max": _round(values.max(0)),
    }


def summarise(family: Family, fields: Sequence[str], listed: Sequence[str] = ()) -> dict[str, Any]:
    """A family over its seeds: :func:`over_seeds` for each of ``fields``, and the per-seed values of ``listed``
    fields that are descriptions rather than measurements (iterations, step sizes), None where a seed lacks one.

    Returns:
        {"seeds", "fields": {field: over_seeds}, "per_seed": {field: [...]}, "metric", "higher_is_better",
        "n_eval", "hardware"}; ``n_eval`` is None unless every seed has the same.
    """
    out: dict[str, Any] = {
        "seeds": list(family.seeds),
        "fields": {key: over_seeds(family.values(key)) for key in fields},
    }
    present = [key for key in listed if any(_lookup(r, key) is not None for r in family.records)]
    if present:
        out["per_seed"] = {key: [_lookup(r, key) for r in family.records] for key in present}
    return {**out, **_describe([family])}


def pairings(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Over every (seed of A, seed of B) pair: in how many A is better, and in how many B is (ties in neither).

    Args:
        a: (seeds of A, ...) values.
        b: (seeds of B, ...) values of the same trailing shape.

    Returns:
        Two integer arrays of the trailing shape.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = a[:, None] - b[None, :]  # (seeds of A, seeds of B, ...)
    if not higher_is_better:
        diff = -diff
    return (diff > 0).sum((0, 1)), (diff < 0).sum((0, 1))


def ranges_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether the seed ranges [min, max] of A and B do not overlap (elementwise): every seed of one is better
    than every seed of the other, whichever way is better."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a.min(0) > b.max(0)) | (a.max(0) < b.min(0))


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its ``level`` confidence interval from Student's t: ``t * s / sqrt(n)`` with
    the sample standard deviation ``s`` (n - 1 in the denominator) and n - 1 degrees of freedom. The interval
    for a mean of a few dozen paired differences, whose spread is itself estimated.

    Raises:
        ValueError: fewer than two values (no spread to estimate).
    """
    from scipy.stats import t  # lazily: scipy is slow to import and only summaries need it

    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"a t-interval needs at least two values, got {x.size}")
    half = float(t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return float(x.mean()), half


def task_paired(a: Family, b: Family, key: str, higher_is_better: bool = True) -> dict[str, Any]:
    """A minus B task by task on the per-task field ``key`` ((tasks, ...) in every record, the same tasks in
    both families): the difference per task and seed pair (i, i), averaged over the pairs, then per column its
    mean over tasks, 95% t-interval and the share of tasks where A is better.

    Raises:
        UserError: the two families have different seeds, or the per-task arrays differ in shape.
    """
    if a.seeds != b.seeds:
        raise UserError(
            f"pairing {a.name} with {b.name} by task needs the same seeds, got {list(a.seeds)} and {list(b.seeds)}",
            param="per_task",
        )
    da, db = a.values(key), b.values(key)  # (seeds, tasks, ...)
    if da.shape != db.shape:
        raise UserError(
            f"{a.name} and {b.name} have per-task {key!r} of shapes {da.shape[1:]} and {db.shape[1:]}: "
            f"pair families evaluated on the same tasks",
            param="per_task",
        )
    diff = (da - db).mean(0)  # (tasks, ...): each task's difference, averaged over the seed pairs
    columns = diff.reshape(diff.shape[0], -1).T  # one row per column of the per-task array
    stats = [t_interval(c) for c in columns]
    better = diff > 0 if higher_is_better else diff < 0
    shape = diff.shape[1:]
    return {
        "field": key,
        "seed_pairs": list(a.seeds),
        "tasks": int(diff.shape[0]),
        "mean": _round(np.reshape([m for m, _ in stats], shape)),
        "ci95": _round(np.reshape([h for _, h in stats], shape)),
        "share_ahead": _round(better.mean(0), 3),
    }


def compare(a: Family, b: Family, fields: Sequence[str], per_task: str | None = None) -> dict[str, Any]:
    """A against B over seeds on each of ``fields``, and by task on ``per_task`` when given.

    Returns:
        {"a", "b", "seeds": [seeds of A, seeds of B], "fields": {field: {"gap_of_means", "pairings_ahead",
        "pairings_behind", "pairings"[, "ranges_apart"]}}[, "task_paired"], "metric", "higher_is_better",
        "n_eval", "hardware"}. ``gap_of_means`` is mean(A) - mean(B); ``ranges_apart`` only where both families
        have at least two seeds.

    Raises:
        UserError: the two families disagree on ``higher_is_better`` or on a field's shape.
    """
    better = _higher_is_better([a, b])
    out: dict[str, Any] = {"a": a.name, "b": b.name, "seeds": [list(a.seeds), list(b.seeds)], "fields": {}}
    for key in fields:
        va, vb = a.values(key), b.values(key)
        if va.shape[1:] != vb.shape[1:]:
            raise UserError(
                f"{a.name} and {b.name} have {key!r} of shapes {va.shape[1:]} and {vb.shape[1:]}", param="fields"
            )
        ahead, behind = pairings(va, vb, better)
        entry = {
            "gap_of_means": _round(va.mean(0) - vb.mean(0)),
            "pairings_ahead": ahead.tolist(),
            "pairings_behind": behind.tolist(),
            "pairings": len(va) * len(vb),
        }
        if min(len(va), len(vb)) >= 2:
            entry["ranges_apart"] = ranges_apart(va, vb).tolist()
        out["fields"][key] = entry
    if per_task is not None:
        out["task_paired"] = task_paired(a, b, per_task, better)
    iterations = [[r.get("iterations") for r in f.records] for f in (a, b)]
    if any(i is not None for row in iterations for i in row):
        out["iterations"] = iterations
    return {**out, **_describe([a, b])}


def comparison_key(a: str, b: str) -> str:
    """How a comparison is named in a summary record: ``"A - B"``, B shortened to its suffix when it is A's
    sibling (``cheetah-vel`` and ``cheetah-vel-pretrained`` give ``"cheetah-vel - pretrained"``)."""
    return f"{a} - {b[len(a) + 1 :] if b.startswith(a + '-') else b}"


def update_summary(
    path: str | Path,
    directory: str | Path,
    command: str,
    *,
    families: Mapping[str, dict[str, Any]] | None = None,
    comparisons: Mapping[str, dict[str, Any]] | None = None,
    keep: Sequence[str] = (),
    headline: str | None = None,
) -> Path:
    """Write the summary record ``path``: the parts it holds already, with ``families`` (name -> :func:`summarise`)
    and ``comparisons`` (key -> :func:`compare`) added or replaced, each new part tagged with ``command``.

    Parts whose families have no records left under ``directory`` are dropped, so a retired family leaves no stale
    summary behind. The record's ``value`` is its *headline* part's: a comparison's gap of the means of ``value``,
    or a family's mean ``value``. The headline is ``headline`` when given (a part's name), else the one the record
    had, else its first comparison, else its first family.

    Args:
        path: the summary record, e.g. ``results/<system>/paired.json``.
        directory: where the families' records are (to find retired parts).
        command: the command line writing these parts (the record's ``command`` joins every part's).
        families: family summaries to add or replace.
        comparisons: comparisons to add or replace.
        keep: fields of the record being replaced to carry over unchanged, for facts that no family record holds
            (a run directory's learning curve, measured when the summary was first written); they stay kept.
        headline: the part whose numbers become the record's ``value``.

    Returns:
        The path written.

    Raises:
        UserError: a field named in ``keep`` or the ``headline`` does not exist, the headline part has no
            ``value`` field, or the parts belong to several systems.
    """
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    fams = {**old.get("families", {}), **{k: {**v, "command": command} for k, v in (families or {}).items()}}
    comps = {**old.get("comparisons", {}), **{k: {**v, "command": command} for k, v in (comparisons or {}).items()}}
    fams = {k: v for k, v in fams.items() if family_paths(directory, k)}
    comps = {k: v for k, v in comps.items() if all(family_paths(directory, f) for f in _compared(k, v, directory))}
    kept = list(dict.fromkeys([*old.get("kept", []), *keep]))
    missing = [k for k in kept if k not in old]
    if missing:
        raise UserError(f"{path} has no field {', '.join(missing)} to keep", param="keep")
    parts = {**fams, **comps}
    if headline is None:  # the one it had, else the first comparison (or family) that summarises value
        able = [k for k in (comps or fams) if "value" in parts[k].get("fields", {})]
        headline = old.get("headline") if old.get("headline") in parts else next(iter(able), None)
    if headline not in parts:
        raise UserError(
            f"{path}: no comparison or family {headline!r} to headline; choose one of {', '.join(parts) or '(none)'}",
            param="headline",
        )
    value, metric = _headline(headline, parts[headline], headline in comps)
    record: dict[str, Any] = {
        "system": _system(path, parts),
        "experiment": path.stem,
        "metric": metric,
        "value": value,
        "higher_is_better": parts[headline].get("higher_is_better", True),
        "seed": None,
        "seeds": sorted({s for p in parts.values() for s in _seeds_of(p)}),
        "hardware": " / ".join(sorted({h for p in parts.values() for h in p.get("hardware", [])})) or "unknown",
        "command": "; ".join(dict.fromkeys(p["command"] for p in parts.values() if p.get("command"))),
        "note": "summary over seeds (icml17.core.seeds). families: each field's values by seed, their mean, min "
        "and max. comparisons A - B: the gap of the means, the (seed of A, seed of B) pairings where A is "
        "better (pairings_ahead) or worse (pairings_behind), whether the seed ranges are apart; where the "
        "records keep per-task numbers, A minus B per task averaged over seed pairs (i, i), its mean and "
        "95% t-interval over tasks",
        "headline": headline,
    }
    n_eval = {p["n_eval"] for p in parts.values() if "n_eval" in p}
    if len(n_eval) == 1 and None not in n_eval:
        record["n_eval"] = n_eval.pop()
    if fams:
        record["families"] = fams
    if comps:
        record["comparisons"] = comps
    if kept:
        record.update({k: old[k] for k in kept}, kept=kept)
    return write_record(path, record)


def _headline(name: str, part: dict[str, Any], is_comparison: bool) -> tuple[float, str]:
    """(value, metric) of a summary record whose headline is ``part``."""
    value = part.get("fields", {}).get("value")
    if value is None:
        raise UserError(
            f"{name} has no summary of the field 'value' to headline: summarise 'value' too", param="fields"
        )
    if is_comparison:
        what = f"{part['a']} minus {part['b']}, difference of the means over seeds"
        return value["gap_of_means"], f"{part.get('metric')}, {what}"
    return value["mean"], f"{part.get('metric')}, {name}, mean over seeds"


def _seeds_of(part: dict[str, Any]) -> list[int]:
    """The seeds a part summarises (a family's, or both sides of a comparison's)."""
    seeds = part.get("seeds", [])
    return [s for side in seeds for s in side] if "a" in part else list(seeds)


def _compared(key: str, part: dict[str, Any], directory: str | Path) -> tuple[str, ...]:
    """The two families of a comparison; for a part written before comparisons named them (``"A - B"`` only),
    B is A's sibling ``A-B`` when that family exists, else ``B``."""
    if "a" in part and "b" in part:
        return part["a"], part["b"]
    a, _, b = key.partition(" - ")
    return a, (f"{a}-{b}" if family_paths(directory, f"{a}-{b}") else b)


def _system(path: Path, parts: Mapping[str, dict[str, Any]]) -> str:
    systems = {p["system"] for p in parts.values() if p.get("system")}
    if len(systems) != 1:
        raise UserError(
            f"{path}: its parts belong to {len(systems)} systems ({', '.join(sorted(systems))}): "
            f"summarise each system's families in a record of its own"
        )
    return systems.pop()


def _describe(families: Iterable[Family]) -> dict[str, Any]:
    """What every part of a summary says about its records: system, metric, direction, n_eval, hardware."""
    families = list(families)
    metric = {json.dumps(f.common("metric")) for f in families}
    n_eval = {json.dumps(f.common("n_eval")) for f in families}
    systems = {f.common("system") for f in families}
    return {
        "system": systems.pop() if len(systems) == 1 else None,
        "metric": json.loads(metric.pop()) if len(metric) == 1 else None,
        "higher_is_better": _higher_is_better(families),
        "n_eval": json.loads(n_eval.pop()) if len(n_eval) == 1 else None,
        "hardware": sorted({h for f in families for h in f.hardware()}),
    }


def _higher_is_better(families: Sequence[Family]) -> bool:
    directions = {r.get("higher_is_better", True) for f in families for r in f.records}
    if len(directions) != 1:
        raise UserError(
            f"{', '.join(f.name for f in families)} disagree on whether higher is better: compare records of one metric"
        )
    return bool(directions.pop())


def _lookup(record: Mapping[str, Any], key: str) -> Any:
    """A dotted field of a record (``by_split.test.loss``: ``record["by_split"]["test"]["loss"]``), None when absent."""
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _round(x: np.ndarray | float, decimals: int = DECIMALS) -> Any:
    """A float or an array rounded, as plain Python numbers (lists for arrays)."""
    rounded = np.round(np.asarray(x, dtype=np.float64), decimals)
    return rounded.tolist()
