"""The benchmark harness (benchmarks/harness.py): rotation order, medians and spreads from their definitions, and
that interleaved rotated repeats give the known cost ratio of fake sides on a fake clock, even when the machine's
speed drifts or the first call of each round pays a penalty."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("bench_harness", REPO / "benchmarks" / "harness.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod


harness = _load()


class FakeMachine:
    """A clock that advances only when a side runs: by the side's cost times the machine's slowness, plus a penalty
    for the first call of each round (a cold cache). Records the order of the calls."""

    def __init__(self, slowdown_per_call: float = 0.0, first_penalty: float = 0.0, sides_per_round: int = 1):
        self.now, self.calls = 0.0, []
        self.slowdown, self.penalty, self.per_round = slowdown_per_call, first_penalty, sides_per_round
        self.timed_calls, self.penalised = 0, []

    def clock(self) -> float:
        return self.now

    def side(self, name: str, cost_s: float):
        def run() -> str:
            self.calls.append(name)
            first = self.timed_calls % self.per_round == 0
            if first and self.penalty:
                self.penalised.append(name)
            self.now += cost_s * (1.0 + self.slowdown * self.timed_calls) + (self.penalty if first else 0.0)
            self.timed_calls += 1
            return name

        return run


def test_rotations_start_each_repeat_one_side_later():
    assert harness.rotations(["a", "b", "c"], 5) == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
        ["b", "c", "a"],
    ]
    order = harness.rotations(["a", "b", "c", "d"], 8)
    assert all(sorted(o) == ["a", "b", "c", "d"] for o in order)
    assert [o[0] for o in order].count("c") == 2  # each side first equally often over a multiple of the sides


def test_compare_runs_warmup_then_interleaved_rotated_repeats():
    m = FakeMachine()
    sides = {"ours": m.side("ours", 0.001), "b": m.side("b", 0.002), "c": m.side("c", 0.003)}
    res = harness.compare(sides, repeats=3, warmup=2, clock=m.clock, between=None)
    warm, timed = m.calls[:6], m.calls[6:]
    assert warm == ["ours", "b", "c"] * 2
    assert timed == ["ours", "b", "c", "b", "c", "ours", "c", "ours", "b"]
    assert res.order == [["ours", "b", "c"], ["b", "c", "ours"], ["c", "ours", "b"]]
    assert res.outputs["b"] == ["b"] * 3 and res.last("c") == "c"


def test_known_cost_ratio_is_recovered_with_drift_and_a_cold_first_call():
    # the machine gets 1% slower per call and the first call of each round pays 5 ms: the medians' ratio stays
    # within about one round's drift (3%) of the true 1 : 2 : 4, and the penalty falls on each side equally often
    m = FakeMachine(slowdown_per_call=0.01, first_penalty=0.005, sides_per_round=3)
    sides = {"ours": m.side("ours", 0.010), "twice": m.side("twice", 0.020), "four": m.side("four", 0.040)}
    res = harness.compare(sides, repeats=9, warmup=0, clock=m.clock, between=None)
    speed = res.speedup("ours")
    assert speed["twice"] == pytest.approx(2.0, rel=0.04)
    assert speed["four"] == pytest.approx(4.0, rel=0.04)
    assert all(m.penalised.count(name) == 3 for name in sides)


def test_without_rotation_the_first_side_would_pay_every_penalty():
    # two sides of equal cost; rotated, each is first (+5 ms) in every other round, so the medians agree
    m = FakeMachine(first_penalty=0.005, sides_per_round=2)
    res = harness.compare(
        {"a": m.side("a", 0.010), "b": m.side("b", 0.010)}, repeats=4, warmup=0, clock=m.clock, between=None
    )
    for name in ("a", "b"):
        assert sorted(res.timings[name].times_ms) == [pytest.approx(10.0)] * 2 + [pytest.approx(15.0)] * 2
    assert res.speedup("a")["b"] == pytest.approx(1.0)
    # the same machine with a fixed order: "a" pays every penalty and looks 1.5x slower
    m = FakeMachine(first_penalty=0.005, sides_per_round=2)
    a, b = m.side("a", 0.010), m.side("b", 0.010)
    fixed = [(harness.timed(a, clock=m.clock)[1], harness.timed(b, clock=m.clock)[1]) for _ in range(4)]
    assert all(ta == pytest.approx(15.0) and tb == pytest.approx(10.0) for ta, tb in fixed)


def test_timing_median_spread_and_quartiles_from_their_definitions():
    t = harness.Timing([5.0, 1.0, 4.0, 2.0, 3.0])
    assert t.median_ms == 3.0 and t.min_ms == 1.0 and t.max_ms == 5.0
    assert t.iqr_ms == (2.0, 4.0)  # inclusive quartiles of 1..5: positions 1 and 3 of the sorted repeats
    even = harness.Timing([4.0, 1.0, 3.0, 2.0])
    assert even.median_ms == 2.5  # the mean of the two middle repeats
    q1, q3 = even.iqr_ms  # sorted 1,2,3,4: positions 0.75 and 2.25 -> 1.75 and 3.25
    assert (q1, q3) == (pytest.approx(1.75), pytest.approx(3.25))
    s = harness.summarize([1.23456, 2.0], digits=2)  # quartiles at 1/4 and 3/4 of the way from 1.23456 to 2
    assert s == {"median_ms": 1.62, "min_max_ms": [1.23, 2.0], "iqr_ms": [1.43, 1.81], "times_ms": [1.23, 2.0]}
    assert harness.Timing([7.0]).iqr_ms == (7.0, 7.0)


def test_median_ms_of_one_side_and_bad_arguments():
    m = FakeMachine()
    costs = iter([0.003, 0.001, 0.002, 0.009])  # warm-up, then three timed calls

    def side() -> None:
        m.now += next(costs)

    assert harness.median_ms(side, 3, clock=m.clock) == pytest.approx(statistics.median([1.0, 2.0, 9.0]))
    with pytest.raises(ValueError, match="at least one side"):
        harness.compare({}, repeats=3)
    with pytest.raises(ValueError, match="one repeat"):
        harness.compare({"a": lambda: None}, repeats=0)


def test_real_clock_orders_sides_of_different_cost():
    # real work of about 1 : 8 cost on the real clock; a busy machine blurs the ratio, not the order
    def work(n: int) -> float:
        return sum(i * 0.5 for i in range(n))

    res = harness.compare({"ours": lambda: work(20_000), "slow": lambda: work(160_000)}, repeats=4)
    assert res.speedup()["slow"] > 2.0
    assert res.load_before is None or len(res.load_before) == 3


def test_session_writes_one_record_with_command_load_and_environment(tmp_path):
    s = harness.Session("demo", threads=1, argv=[str(REPO / "benchmarks" / "demo.py"), "--note", "two words"])
    assert s.command == "python benchmarks/demo.py --note 'two words'"
    path = s.write(tmp_path / "demo.json", {"cases": [{"case": "x", "ours_ms": 1.0}], "repeats": 3})
    rec = json.loads(path.read_text())
    assert rec["benchmark"] == "demo" and rec["repeats"] == 3 and rec["cases"][0]["case"] == "x"
    for key in (
        "hardware",
        "torch",
        "threads",
        "date",
        "load_average_at_start",
        "load_average_at_end",
        "wall_time_s",
        "command",
    ):
        assert key in rec, key
    assert rec["threads"] == 1
