"""Seed families and comparisons: every expected number below is worked out by hand from tiny synthetic families
(means, ranges, pairings by enumeration, the t-interval from its formula with scipy.stats.t's quantile)."""

import json
import math

import numpy as np
import pytest
from scipy.stats import t

from icml17.cli import main
from icml17.core.errors import UserError
from icml17.core.seeds import (
    compare,
    comparison_key,
    family,
    load_family,
    pairings,
    ranges_apart,
    summarise,
    t_interval,
    task_paired,
    update_summary,
)


def _write(directory, name, seed, **fields):
    """A record of ``name`` for ``seed`` where the layout puts it (seed 0: DIR/NAME.json, k: DIR/seeds/...)."""
    path = directory / f"{name}.json" if seed == 0 else directory / "seeds" / f"{name}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "system": "toy",
        "experiment": name if seed == 0 else f"{name}-seed{seed}",
        "metric": "return",
        "seed": seed,
        "command": f"train {name} {seed}",
        "higher_is_better": True,
        "hardware": "cpu A",
        **fields,
    }
    path.write_text(json.dumps(record))


def _family(directory, name, values, returns=None, per_task=None):
    for seed, value in enumerate(values):
        extra = {}
        if returns is not None:
            extra["returns"] = returns[seed]
        if per_task is not None:
            extra["per_task_returns"] = per_task[seed]
        _write(directory, name, seed, value=value, iterations=10, n_eval=3, **extra)


def test_a_family_is_seed_zero_beside_its_seeds_folder(tmp_path):
    _family(tmp_path, "nav", [1.0, 2.0, 4.0])
    _write(tmp_path, "nav-pretrained", 1, value=9.0)  # a sibling family, not a seed of nav
    _write(tmp_path, "navx", 1, value=9.0)
    (tmp_path / "nav-seeds.json").write_text("{}")  # a summary beside the records
    fam = load_family(tmp_path, "nav")
    assert fam.seeds == (0, 1, 2) and [r["value"] for r in fam.records] == [1.0, 2.0, 4.0]
    _write(tmp_path, "only-seeds", 1, value=1.0)
    (tmp_path / "seeds" / "only-seeds-seed0.json").write_text(json.dumps({"seed": 0, "value": 0.0}))
    assert load_family(tmp_path, "only-seeds").seeds == (0, 1)  # seed 0 filed under seeds/ when alone
    assert family("nav-seed12") == "nav" and family("seeds") == "seeds"


def test_a_family_refuses_missing_doubled_or_misfiled_records(tmp_path):
    with pytest.raises(UserError, match="no records of 'absent'"):
        load_family(tmp_path, "absent")
    _write(tmp_path, "two", 0, value=1.0)
    (tmp_path / "seeds").mkdir(exist_ok=True)
    (tmp_path / "seeds" / "two-seed0.json").write_text(json.dumps({"seed": 0, "value": 1.0}))
    with pytest.raises(UserError, match="two records for seed 0"):
        load_family(tmp_path, "two")
    (tmp_path / "seeds" / "bad-seed3.json").write_text(json.dumps({"seed": 1, "value": 1.0}))
    with pytest.raises(UserError, match="filed as seed 3 but its record says seed 1"):
        load_family(tmp_path, "bad")


def test_summary_over_seeds_gives_mean_min_max_per_field(tmp_path):
    _family(tmp_path, "nav", [1.0, 2.0, 4.0], returns=[[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    out = summarise(load_family(tmp_path, "nav"), ["value", "returns"], listed=["iterations", "step_size"])
    assert out["seeds"] == [0, 1, 2]
    assert out["fields"]["value"] == {"by_seed": [1.0, 2.0, 4.0], "mean": 2.3333, "min": 1.0, "max": 4.0}  # 7/3
    assert out["fields"]["returns"] == {
        "by_seed": [[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]],
        "mean": [2.0, 4.0],
        "min": [0.0, 1.0],
        "max": [4.0, 8.0],
    }
    assert out["per_seed"] == {"iterations": [10, 10, 10]}  # step_size: no seed has it
    assert out["metric"] == "return" and out["n_eval"] == 3 and out["hardware"] == ["cpu A"]


def test_pairings_count_every_seed_pair_and_follow_the_direction():
    a, b = np.array([1.0, 3.0, 5.0]), np.array([2.0, 4.0])
    # pairs (a, b): (1,2) (1,4) (3,2) (3,4) (5,2) (5,4): a higher in 3, lower in 3
    assert [int(x) for x in pairings(a, b)] == [3, 3]
    assert [int(x) for x in pairings(np.array([2.0, 5.0]), np.array([2.0]))] == [1, 0]  # a tie counts for neither
    assert [int(x) for x in pairings(np.array([2.0, 5.0]), np.array([2.0]), higher_is_better=False)] == [0, 1]
    ahead, behind = pairings(np.array([[1.0, 9.0], [3.0, 0.0]]), np.array([[2.0, 5.0]]))  # per column
    assert ahead.tolist() == [1, 1] and behind.tolist() == [1, 1]


def test_ranges_apart_only_when_every_seed_of_one_beats_every_seed_of_the_other():
    assert ranges_apart(np.array([1.0, 2.0]), np.array([3.0, 4.0])).item()
    assert ranges_apart(np.array([5.0, 6.0]), np.array([3.0, 4.0])).item()
    assert not ranges_apart(np.array([1.0, 3.0]), np.array([2.0, 4.0])).item()
    assert not ranges_apart(np.array([1.0, 2.0]), np.array([2.0, 4.0])).item()  # touching ranges overlap


def test_t_interval_is_students_with_the_sample_deviation():
    d = [1.0, 2.0, 4.0, 7.0]  # mean 3.5; squared deviations 6.25, 2.25, 0.25, 12.25: s^2 = 21 / 3 = 7
    mean, half = t_interval(d)
    assert mean == 3.5
    assert half == pytest.approx(t.ppf(0.975, 3) * math.sqrt(7.0) / math.sqrt(4.0), rel=1e-12)
    assert half == pytest.approx(3.182446305 * math.sqrt(7) / 2, rel=1e-8)  # t(0.975, 3 dof) from a table
    with pytest.raises(ValueError, match="at least two"):
        t_interval([1.0])


def test_task_paired_averages_seed_pairs_then_takes_the_t_interval_over_tasks(tmp_path):
    # 2 seeds x 3 tasks x 2 steps
    a = [[[0.0, 4.0], [1.0, 5.0], [2.0, 9.0]], [[0.0, 6.0], [1.0, 3.0], [2.0, 7.0]]]
    b = [[[0.0, 1.0], [1.0, 2.0], [1.0, 3.0]], [[0.0, 3.0], [1.0, 2.0], [3.0, 1.0]]]
    _family(tmp_path, "m", [4.0, 6.0], per_task=a)
    _family(tmp_path, "p", [1.0, 3.0], per_task=b)
    out = task_paired(load_family(tmp_path, "m"), load_family(tmp_path, "p"), "per_task_returns")
    # step 0: seed diffs (0, 0, 1) and (0, 0, -1) -> averaged (0, 0, 0); step 1: (3, 3, 6) and (3, 1, 6) -> (3, 2, 6)
    step1 = np.array([3.0, 2.0, 6.0])  # mean 11/3, sample variance ((2/3)^2 + (5/3)^2 + (7/3)^2) / 2 = 13/3
    half = t.ppf(0.975, 2) * math.sqrt(13 / 3) / math.sqrt(3)
    assert step1.std(ddof=1) == pytest.approx(math.sqrt(13 / 3))
    assert out["tasks"] == 3 and out["seed_pairs"] == [0, 1] and out["field"] == "per_task_returns"
    assert out["mean"] == [0.0, round(11 / 3, 4)] and out["ci95"] == [0.0, round(half, 4)]
    assert out["share_ahead"] == [0.0, 1.0]
    _write(tmp_path, "q", 0, value=1.0, per_task_returns=b[0])
    with pytest.raises(UserError, match="needs the same seeds"):
        task_paired(load_family(tmp_path, "m"), load_family(tmp_path, "q"), "per_task_returns")


def test_compare_gives_gap_pairings_and_ranges(tmp_path):
    _family(tmp_path, "m", [5.0, 6.0, 7.0], returns=[[0.0, 5.0], [0.0, 6.0], [1.0, 7.0]])
    _family(tmp_path, "p", [1.0, 6.5, 2.0], returns=[[0.0, 1.0], [2.0, 6.5], [0.0, 2.0]])
    out = compare(load_family(tmp_path, "m"), load_family(tmp_path, "p"), ["value", "returns"])
    value = out["fields"]["value"]
    assert value["gap_of_means"] == pytest.approx(18 / 3 - 9.5 / 3, abs=5e-5)
    # m's 5, 6, 7 against p's 1, 6.5, 2: m higher in 2 + 2 + 3 = 7 of 9, lower in 2
    assert (value["pairings_ahead"], value["pairings_behind"], value["pairings"]) == (7, 2, 9)
    assert value["ranges_apart"] is False
    # step 0: m's 0, 0, 1 against p's 0, 2, 0: higher in 2 (1 > 0 twice), lower in 3 (each m below 2); step 1 as value
    returns = out["fields"]["returns"]
    assert returns["pairings_ahead"] == [2, 7] and returns["pairings_behind"] == [3, 2]
    assert returns["ranges_apart"] == [False, False]
    assert "task_paired" not in out and out["iterations"] == [[10, 10, 10], [10, 10, 10]]
    assert comparison_key("cheetah-vel", "cheetah-vel-pretrained") == "cheetah-vel - pretrained"
    assert comparison_key("a", "b") == "a - b"


def test_a_summary_record_keeps_its_other_parts_and_drops_retired_ones(tmp_path):
    _family(tmp_path, "m", [5.0, 7.0])
    _family(tmp_path, "p", [1.0, 2.0])
    _family(tmp_path, "old", [0.0])
    m, p, old = (load_family(tmp_path, n) for n in ("m", "p", "old"))
    path = tmp_path / "summary.json"
    update_summary(
        path, tmp_path, "icml17 results seeds m p old", families={f.name: summarise(f, ["value"]) for f in (m, p, old)}
    )
    update_summary(
        path, tmp_path, "icml17 results paired m p", comparisons={"m - p": compare(m, p, ["value"])}, headline="m - p"
    )
    record = json.loads(path.read_text())
    assert record["value"] == 4.5 and record["headline"] == "m - p"  # (5 + 7) / 2 - (1 + 2) / 2
    assert list(record["families"]) == ["m", "p", "old"] and record["seeds"] == [0, 1]
    assert record["command"] == "icml17 results seeds m p old; icml17 results paired m p"
    assert record["system"] == "toy" and record["seed"] is None and record["n_eval"] == 3
    (tmp_path / "old.json").unlink()  # a retired family: its summary goes at the next write
    record["learning_curve"] = {"250": 0.5}
    path.write_text(json.dumps(record))
    update_summary(
        path, tmp_path, "icml17 results seeds m", families={"m": summarise(m, ["value"])}, keep=["learning_curve"]
    )
    record = json.loads(path.read_text())
    assert list(record["families"]) == ["m", "p"] and record["learning_curve"] == {"250": 0.5}
    assert record["kept"] == ["learning_curve"] and record["value"] == 4.5  # the headline stays
    with pytest.raises(UserError, match="no field absent to keep"):
        update_summary(path, tmp_path, "x", keep=["absent"])


def test_results_seeds_and_paired_from_the_command_line(tmp_path, capsys):
    per_task = [[[0.0, 2.0], [0.0, 4.0]], [[0.0, 3.0], [0.0, 5.0]]]
    _family(tmp_path, "nav", [3.0, 4.0], returns=[[0.0, 3.0], [0.0, 4.0]], per_task=per_task)
    _family(
        tmp_path,
        "nav-pretrained",
        [1.0, 2.0],
        returns=[[0.0, 1.0], [0.0, 2.0]],
        per_task=[[[0.0, 1.0], [0.0, 1.0]], [[0.0, 2.0], [0.0, 2.0]]],
    )
    assert main(["results", "seeds", "nav", "--record", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "nav-seeds.json").read_text())
    assert record["families"]["nav"]["fields"]["returns"]["mean"] == [0.0, 3.5]
    assert record["command"] == f"icml17 results seeds nav --record {tmp_path}"
    assert main(["results", "paired", "nav", "nav-pretrained", "--record", str(tmp_path)]) == 0
    part = json.loads((tmp_path / "paired.json").read_text())["comparisons"]["nav - pretrained"]
    # per task, step 1: seed 0 diffs (1, 3), seed 1 diffs (1, 3): averaged (1, 3), mean 2, s = sqrt(2)
    assert part["task_paired"]["mean"] == [0.0, 2.0]
    assert part["task_paired"]["ci95"][1] == round(t.ppf(0.975, 1) * math.sqrt(2) / math.sqrt(2), 4)
    assert part["fields"]["value"]["pairings_ahead"] == 4 and part["fields"]["value"]["ranges_apart"] is True
    capsys.readouterr()
    assert main(["results", "paired", "nav", "--record", str(tmp_path)]) == 2
    assert "in pairs" in capsys.readouterr().err
    assert main(["results", "seeds", "nope", "--record", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no records of 'nope'" in err
