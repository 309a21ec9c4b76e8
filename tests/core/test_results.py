"""Records are written, checked and read by icml17.core.results; the results pages and tables (icml17.pages) are
built from records only: every value shown must come from a record's field."""

import json
from pathlib import Path

import pytest

from icml17.core.results import read_records, write_record
from icml17.core.seeds import family
from icml17.pages import bench_page, bench_table, headline_table, results_page, results_table, update_block


def _bench_record():
    return {
        "benchmark": "maml",
        "hardware": "test-cpu",
        "cases": [
            {
                "case": "omniglot-5w1s",
                "ours_ms": 100.0,
                "baselines_ms": {"per-task-loop": 250.0},
                "speedup": {"per-task-loop": 2.5},
                "peak_mem_mb": {"ours": 40.0, "per-task-loop": 10.0},
                "variants": [
                    {
                        "label": "chunks of 4 tasks",
                        "ours_ms": 125.0,
                        "peak_mem_mb": 12.0,
                        "baseline": "per-task-loop",
                        "speedup": 2.0,
                    }
                ],
            }
        ],
    }


def test_bench_table_shows_speedup_memory_and_chunked_rows():
    lines = bench_table([_bench_record()]).splitlines()
    assert lines[2] == "| maml | omniglot-5w1s | 100 | per-task-loop | 250 | 2.5x | 40 / 10 | test-cpu |"
    assert lines[3] == (
        "| maml | omniglot-5w1s, chunks of 4 tasks | 125 | per-task-loop | 250 | 2.0x | 12 / 10 | test-cpu |"
    )
    assert len(lines) == 4


def test_bench_table_labels_extrapolated_baselines():
    rec = {
        "benchmark": "pixelcnn-sampling",
        "cases": [
            {
                "case": "32x32",
                "ours_ms": 10.0,
                "baselines_ms": {"full": 1000.0},
                "speedup": {"full": 100.0},
                "full_s_extrapolated_from_n_evals": 64,
            }
        ],
    }
    assert "1000 (extrapolated from 64 timed evaluations) | 100.0x | - |" in bench_table([rec])


def test_results_table_and_generated_block_come_from_records(tmp_path):
    write_record(
        tmp_path / "results" / "maml" / "a.json",
        {
            "system": "maml",
            "experiment": "omniglot-5w1s",
            "metric": "accuracy",
            "value": 0.9712,
            "ci95": 0.0061,
            "paper": 0.987,
            "paper_source": "Finn et al. 2017, Table 1",
            "n_eval": 600,
            "iterations": 12000,
            "wall_time_s": 600.0,
            "seed": 0,
            "command": "icml17 maml eval",
        },
    )
    records = read_records(tmp_path / "results")
    assert (
        "| maml | omniglot-5w1s | accuracy | 97.1% ± 0.6 | 98.7% (Finn et al. 2017, Table 1) | 600 | 12000 | 10.0 min |"
    ) in results_table(records)
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- results:start -->\nstale\n<!-- results:end -->\noutro\n")
    assert update_block(page, results_page(records))
    text = page.read_text()
    assert "stale" not in text and "97.1% ± 0.6" in text and text.startswith("intro") and text.endswith("outro\n")
    assert not update_block(page, results_page(records))  # unchanged: not rewritten
    assert json.loads((tmp_path / "results" / "maml" / "a.json").read_text())["hardware"]  # environment added


def test_quick_records_never_reach_a_page(tmp_path):
    """A --quick run (tiny sizes, for tests) writes a record marked quick: it is not a result."""
    for name, quick in (("real", False), ("tiny", True)):
        write_record(
            tmp_path / "results" / f"{name}.json",
            {
                "system": "sharpness",
                "experiment": f"alpha-{name}",
                "metric": "ratio",
                "value": 6096.0 if not quick else 64.07,
                "seed": 0,
                "quick": quick,
                "command": "icml17 sharpness reproduce",
            },
        )
    block = results_page(read_records(tmp_path / "results"))
    assert "alpha-real" in block and "alpha-tiny" not in block
    assert len(read_records(tmp_path / "results", quick=True)) == 2


def test_update_block_refuses_a_page_without_markers_and_creates_a_missing_one(tmp_path):
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        update_block(tmp_path / "README.md", "block")
    with pytest.raises(FileNotFoundError):
        update_block(tmp_path / "absent.md", "block")
    assert update_block(tmp_path / "new" / "page.md", "the block", new_page="# Title")
    assert (tmp_path / "new" / "page.md").read_text() == (
        "# Title\n\n<!-- results:start -->\nthe block\n<!-- results:end -->\n"
    )


def _record(experiment, value, seed=0, **extra):
    return {
        "system": "x",
        "experiment": experiment,
        "metric": "mse",
        "value": value,
        "seed": seed,
        "command": f"run {experiment}",
        **extra,
    }


def test_headline_table_keeps_its_order_and_links_to_the_families():
    records = [_record("b", 2.0), _record("a", 1.0, paper=0.5, paper_source="Someone 2017, Table 9")]
    table = headline_table(records, ["b", "a"])
    assert table.index("[b](#b)") < table.index("[a](#a)") and "Published numbers: Someone 2017, Table 9." in table
    two = headline_table([*records, _record("c", 3.0, paper=1.0, paper_source="Other 2017")], ["a", "c"])
    assert "Published numbers, from:\n\n- Someone 2017, Table 9\n- Other 2017" in two
    with pytest.raises(ValueError, match="without a record: d"):
        headline_table(records, ["d"])


def test_results_page_folds_seeds_under_their_family():
    records = [
        _record("b", 2.0),
        _record("a", 1.0, paper=0.5, paper_source="Someone 2017, Table 9"),
        _record("a-seed2", 1.2, seed=2),
        _record("a-seed1", 1.1, seed=1),
        _record("c-seed0", 3.0),
    ]
    page = results_page(records)
    assert "5 records in 3 families" in page
    assert page.index("### a { #a }") < page.index("### b { #b }") < page.index("### c { #c }")
    family_a = page.split("### a { #a }", 1)[1].split("### ", 1)[0]
    table, folded = family_a.split('??? note "Seeds 1, 2 (2 records)"', 1)
    assert "| a | mse | 1 | 0.5 |" in table and "a-seed1" not in table
    assert folded.index("    | a-seed1 |") < folded.index("    | a-seed2 |")  # seeds in numeric order, indented
    assert "Someone 2017, Table 9" in family_a and "run a-seed2" in family_a  # sources; every command, folded
    assert '??? note "Seed 0 (1 record)"' in page.split("### c { #c }", 1)[1]  # a family of seeds only
    assert family("point-nav-seed12") == "point-nav" and family("seeds") == "seeds"


def test_results_page_escapes_text_that_would_break_a_table():
    page = results_page([_record("a", 1.0, metric="x | y <z>", hardware="cpu")])
    assert "x \\| y &lt;z&gt;" in page


def test_bench_page_has_a_section_per_run_with_its_command_and_note():
    page = bench_page(
        [
            {**_bench_record(), "threads": 2, "note": "quiet machine", "command": "python b.py"},
            {**_bench_record(), "threads": 1, "command": "python b.py --threads 1"},
        ]
    )
    assert page.index("### maml { #bench-maml }") < page.index("### maml, 2 threads { #bench-maml-2-threads }")
    assert "quiet machine" in page and "python b.py --threads 1" in page
    assert "| omniglot-5w1s | 100 | per-task-loop | 250 | 2.5x | 40 / 10 |" in page and "test-cpu, 2 threads." in page


BASE = {"system": "maml", "experiment": "x", "metric": "mse", "value": 0.5, "seed": 0, "command": "icml17 maml eval"}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"value": float("nan")}, "no finite value"),
        ({"value": None}, "no finite value"),
        ({"paper": 0.77}, "paper_source"),
        ({"command": ""}, "'command'"),
        ({"ci95": float("inf")}, "ci95"),
    ],
)
def test_write_record_refuses_records_that_do_not_fit_the_schema(tmp_path, change, needle):
    with pytest.raises(ValueError, match=needle):
        write_record(tmp_path / "r.json", {**BASE, **change})
    assert not (tmp_path / "r.json").exists()


def test_records_carry_the_load_average(tmp_path):
    rec = json.loads(write_record(tmp_path / "r.json", BASE).read_text())
    assert "load_average" in rec and "hardware" in rec and rec["value"] == 0.5


@pytest.mark.parametrize("module", ["results", "seeds"])
def test_core_records_know_no_system_names(module):
    """core is paper-agnostic: no benchmark keys, record fields or experiment names of a system are hard-coded in
    its record writer or its seed statistics (the pages, outside core, know them)."""
    import importlib

    path = Path(importlib.import_module(f"icml17.core.{module}").__file__)
    text = path.read_text().split('"""', 2)[2]  # the code, after the module docstring
    for name in (
        "maml",
        "pixelcnn",
        "sharpness",
        "per-task-loop",
        "omniglot",
        "chunk",
        "per_task_returns",
        "nats_per_subpixel",
    ):
        assert name not in text.lower(), name


def test_results_table_shows_return_curves_and_video_splits():
    rl = {
        "system": "maml-rl",
        "experiment": "point-nav",
        "metric": "return",
        "value": -11.0,
        "ci95": 1.0,
        "returns": [-40.0, -11.0, -4.0, -3.5],
        "paper": -11.7,
        "paper_returns": [-40.4, -11.7, -3.3, -3.2],
        "paper_source": "reference",
    }
    video = {
        "system": "pixelcnn",
        "experiment": "video-o_t",
        "metric": "nats_per_subpixel",
        "value": 0.45,
        "val": 0.45,
        "test_seen": 0.46,
        "test_novel": 0.52,
    }
    table = results_table([rl, video])
    assert "steps 0-3: -40.0, -11.0, -4.0, -3.5" in table and "steps 0-3: -40.4, -11.7, -3.3, -3.2" in table
    assert "test seen 0.46, novel 0.52" in table


def test_replacing_a_record_with_a_smaller_measurement_warns(tmp_path, capsys):
    rec = {**BASE, "n_eval": 10000, "iterations": 1000}
    write_record(tmp_path / "r.json", rec)
    assert "warning" not in capsys.readouterr().err
    write_record(tmp_path / "r.json", {**rec, "n_eval": 50})
    err = capsys.readouterr().err
    assert "smaller measurement (n_eval 10000 -> 50)" in err and "git checkout" in err
    write_record(tmp_path / "r.json", {**rec, "n_eval": 20000})  # a larger one replaces quietly
    assert "warning" not in capsys.readouterr().err
