"""The CLI as a new user meets it: fast --help, one-line errors naming the fix, nothing half-written."""

import errno
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from icml17.cli import main
from icml17.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"


def _cli(argv, capsys):
    """(exit code, stderr) of ``icml17 argv`` run in-process."""
    try:
        code = main(list(map(str, argv)))
    except SystemExit as e:  # argparse usage errors
        code = e.code
    err = capsys.readouterr().err
    return code, err


def _sinusoid_train(run_dir, *args) -> list[str]:
    """argv of ``icml17 maml train --preset sinusoid-k10 --run-dir run_dir *args``."""
    return [str(a) for a in ["maml", "train", "--preset", "sinusoid-k10", "--run-dir", run_dir, *args]]


def _one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in err


def test_help_does_not_import_torch():
    env = {**os.environ, "PYTHONPATH": str(SRC), "ICML17_THREADS": "abc"}  # a bad variable never breaks --help
    code = (
        "import sys; from icml17.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules, 'icml17 --help imported torch'"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr  # not timed: importing torch is what cost seconds, and it is checked
    sub = subprocess.run(
        [sys.executable, "-m", "icml17", "maml", "train", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sub.returncode == 0 and "--threads" in sub.stdout


@pytest.mark.parametrize("threads", ["0", "-1", "two"])
def test_invalid_thread_counts_are_one_line_errors(tmp_path, capsys, threads):
    code, err = _cli(
        _sinusoid_train(tmp_path / "r", "--iterations", 1, "--threads", threads),
        capsys,
    )
    _one_line_error(code, err, "--threads")
    assert not (tmp_path / "r").exists()  # refused before any work


def test_invalid_thread_environment_variable_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ICML17_THREADS", "abc")
    code, err = _cli(_sinusoid_train(tmp_path / "r", "--iterations", 1), capsys)
    _one_line_error(code, err, "ICML17_THREADS", "abc")


def test_default_is_one_thread(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ICML17_THREADS", raising=False)
    torch.set_num_threads(2)
    try:
        assert (
            _cli(
                _sinusoid_train(tmp_path / "r", "--iterations", 1, "--no-progress"),
                capsys,
            )[0]
            == 0
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_run_dir_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    code, err = _cli(_sinusoid_train(f, "--iterations", 1), capsys)
    _one_line_error(code, err, "is a file")


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["inner_lr=inf"], "inner_lr must be a finite number"),
        (["preset=omniglot-5w5s"], "--preset"),
        (["inner_lrs=0.1"], "unknown config key"),
    ],
)
def test_bad_overrides_are_refused_before_work(tmp_path, capsys, overrides, needle):
    code, err = _cli(
        _sinusoid_train(tmp_path / "r", "--iterations", 1, "--set", *overrides),
        capsys,
    )
    _one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_set_is_repeatable_and_multi_valued_alike(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        _cli(
            _sinusoid_train(a, "--iterations", 2, "--no-progress", "--set", "meta_batch=3", "--set", "inner_lr=0.02"),
            capsys,
        )[0]
        == 0
    )
    assert (
        _cli(
            _sinusoid_train(b, "--iterations", 2, "--no-progress", "--set", "meta_batch=3", "inner_lr=0.02"),
            capsys,
        )[0]
        == 0
    )
    ca, cb = (json.loads((d / "config.json").read_text())["config"] for d in (a, b))
    assert ca == cb and ca["meta_batch"] == 3 and ca["inner_lr"] == 0.02


@pytest.fixture()
def sinusoid_run(tmp_path, capsys):
    run = tmp_path / "sin"
    assert (
        _cli(
            _sinusoid_train(run, "--iterations", 20, "--no-progress", "--set", "checkpoint_every=10"),
            capsys,
        )[0]
        == 0
    )
    return run


@pytest.mark.parametrize(
    "flags, needle", [(["--steps", "-1"], "--steps"), (["--queries", "0"], "--queries"), (["--tasks", "0"], "--tasks")]
)
def test_eval_rejects_impossible_counts(sinusoid_run, capsys, tmp_path, flags, needle):
    code, err = _cli(["maml", "eval", "--run-dir", sinusoid_run, "--record", tmp_path / "rec", *flags], capsys)
    _one_line_error(code, err, needle)
    assert not (tmp_path / "rec").exists()


def test_eval_with_too_few_steps_for_a_record_writes_nothing(sinusoid_run, capsys, tmp_path):
    code, err = _cli(
        ["maml", "eval", "--run-dir", sinusoid_run, "--tasks", 5, "--steps", 0, "--record", tmp_path / "rec"], capsys
    )
    _one_line_error(code, err, "no record to write")
    assert not list((tmp_path / "rec").glob("*.json")) if (tmp_path / "rec").exists() else True


def test_refused_resume_keeps_config_and_eval_uses_the_checkpoint_config(sinusoid_run, capsys):
    before = (sinusoid_run / "config.json").read_text()
    # a resume with another inner learning rate is refused, naming the key, and config.json is untouched
    code, err = _cli(
        _sinusoid_train(sinusoid_run, "--iterations", 30, "--set", "inner_lr=0.5"),
        capsys,
    )
    _one_line_error(code, err, "inner_lr: 0.01 -> 0.5")
    assert (sinusoid_run / "config.json").read_text() == before
    # even a config.json edited by hand cannot change what eval loads: the checkpoint carries its own config
    edited = json.loads(before)
    edited["config"]["inner_lr"] = 0.5
    (sinusoid_run / "config.json").write_text(json.dumps(edited))
    out1 = subprocess_free_eval(sinusoid_run, capsys)
    (sinusoid_run / "config.json").write_text(before)
    out2 = subprocess_free_eval(sinusoid_run, capsys)
    assert out1 == out2


def subprocess_free_eval(run, capsys):
    assert _cli(["maml", "eval", "--run-dir", run, "--tasks", 20, "--steps", 1], capsys)[0] == 0
    return [line for line in capsys.readouterr().out.splitlines() if "after" in line]


def test_resume_may_extend_iterations_and_change_intervals(sinusoid_run, capsys):
    code, err = _cli(
        _sinusoid_train(
            sinusoid_run, "--iterations", 25, "--no-progress", "--set", "checkpoint_every=5", "eval_every=5"
        ),
        capsys,
    )
    assert code == 0, err
    assert load_checkpoint(sinusoid_run / "checkpoints" / "last.pt")["step"] == 25


def test_a_damaged_checkpoint_is_a_one_line_error_not_a_traceback(sinusoid_run, tmp_path, capsys):
    """CheckpointError is a RuntimeError too: it must reach the user-error handler, not the distributed one."""
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "last.pt").write_bytes(os.urandom(512))
    (broken / "config.json").write_text((sinusoid_run / "config.json").read_text())
    code, err = _cli(["maml", "eval", "--run-dir", broken], capsys)
    _one_line_error(code, err, "is not a checkpoint")


@pytest.mark.parametrize(
    "argv",
    [
        ["maml", "eval", "--weights", "sinusoid-k10", "--tasks", "2", "--record", "{file}"],
        ["maml-rl", "eval", "--preset", "point-nav", "--method", "random", "--record", "{file}/sub"],
        ["pixelcnn", "sample", "--weights", "binarized-mnist-typeA", "--out", "{file}"],
        ["sharpness", "measure", "--weights", "small-batch", "--out", "{dir}"],
        ["demo", "--run-dir", "{file}"],
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, monkeypatch, argv):
    """Results written to a file that is in the way failed only after the work (and lost it): now a parse error."""
    rl_evaluate = importlib.import_module("icml17.maml.rl.evaluate")  # the package exports a function of that name

    monkeypatch.setattr(rl_evaluate, "evaluate", lambda *a, **k: pytest.fail("work started before the check"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = _cli([a.format(file=afile, dir=tmp_path) for a in argv], capsys)
    _one_line_error(code, err, "afile" if "{dir}" not in argv else "is a folder")


@pytest.mark.parametrize(
    "argv, says, never",
    [
        (["maml", "eval", "--run-dir", "{missing}"], ["icml17 maml train", "shipped weights", "--weights"], []),
        (["maml", "plots", "--run-dir", "{missing}"], ["icml17 maml train"], ["--weights"]),
        (
            ["maml-rl", "eval", "--preset", "point-nav", "--run-dir", "{missing}"],
            ["icml17 maml-rl train"],
            ["--weights"],
        ),
        (
            ["sharpness", "eval", "--run-dir", "{missing}"],
            ["icml17 sharpness reproduce", "--weights NAME"],
            ["sharpness train"],
        ),
    ],
)
def test_a_missing_run_names_only_commands_and_flags_that_exist(tmp_path, capsys, argv, says, never):
    code, err = _cli([a.format(missing=tmp_path / "nope") for a in argv], capsys)
    _one_line_error(code, err, *says)
    assert not any(n in err for n in never), err


def test_export_refuses_a_missing_record_and_shipped_names_before_reading_the_run(tmp_path, capsys):
    from icml17.weights import manifest

    before = manifest()
    code, err = _cli(
        [
            "maml",
            "export",
            "--run-dir",
            tmp_path / "nope",
            "--name",
            "new-weights",
            "--reproduces",
            tmp_path / "none.json",
        ],
        capsys,
    )
    _one_line_error(code, err, "no such record")
    record = tmp_path / "rec.json"
    record.write_text("{}")
    code, err = _cli(
        ["maml", "export", "--run-dir", tmp_path / "nope", "--name", "sinusoid-k10", "--reproduces", record], capsys
    )
    _one_line_error(code, err, "already shipped", "--replace")
    assert manifest() == before


def test_maml_rl_eval_refuses_a_run_of_another_method_or_preset(tmp_path, capsys):
    run = tmp_path / "pn"
    assert (
        _cli(
            [
                "maml-rl",
                "train",
                "--preset",
                "point-nav",
                "--run-dir",
                run,
                "--iterations",
                1,
                "--no-progress",
                "--set",
                "meta_batch=2",
                "rollouts=2",
                "horizon=5",
                "hidden=8",
                "eval_every=0",
                "cg_iters=2",
            ],
            capsys,
        )[0]
        == 0
    )
    code, err = _cli(
        ["maml-rl", "eval", "--preset", "point-nav", "--method", "pretrained", "--run-dir", run, "--tasks", "1"], capsys
    )
    _one_line_error(code, err, "--mode maml", "--method maml")
    code, err = _cli(["maml-rl", "eval", "--preset", "cheetah-vel", "--run-dir", run, "--tasks", "1"], capsys)
    _one_line_error(code, err, "point-nav run", "--preset point-nav")


def test_maml_baseline_prints_its_results_and_starts_over_with_no_resume(tmp_path, capsys):
    argv = [
        "maml",
        "baseline",
        "--kind",
        "pretrained",
        "--iterations",
        "2",
        "--shots",
        "5",
        "--run-dir",
        str(tmp_path / "bl"),
        "--no-progress",
    ]
    assert main(argv) == 0
    assert "pretrained, K=5: query MSE after 1 step" in capsys.readouterr().out
    code, err = _cli([*argv, "--seed", "1"], capsys)
    _one_line_error(code, err, "--no-resume")  # the fix it names must exist
    assert main([*argv, "--seed", "1", "--no-resume"]) == 0
    assert (tmp_path / "bl" / "previous").is_dir()


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="is not a checkpoint") as info:
        load_checkpoint(path)
    assert "code" not in str(info.value)


def test_disk_full_while_checkpointing_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="disk full") as info:
        save_checkpoint(path, {"step": 2})
    assert "previous checkpoint" in str(info.value) and "intact" in str(info.value)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_data_dir_order_is_flag_then_environment(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("ICML17_DATA", str(empty))
    code, err = _cli(["pixelcnn", "train", "--preset", "mnist", "--run-dir", tmp_path / "r", "--iterations", 1], capsys)
    _one_line_error(code, err, str(empty))


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--threads", "0"],
        ["pixelcnn", "train", "--preset", "mnist", "--iterations", "1", "--threads", "-1"],
        ["sharpness", "measure", "--model", "mlp-784-32-10", "--threads", "0"],
    ],
)
def test_every_command_checks_threads(tmp_path, capsys, argv):
    code, err = _cli([*argv, "--data-dir", tmp_path], capsys)
    _one_line_error(code, err, "--threads")


def test_sharpness_alpha_must_be_positive(tmp_path, capsys):
    code, err = _cli(["sharpness", "measure", "--model", "mlp-784-32-10", "--alpha", "0"], capsys)
    _one_line_error(code, err, "--alpha", "> 0")


def test_tensorboard_logs_beside_metrics(tmp_path, capsys):
    pytest.importorskip("torch.utils.tensorboard")
    run = tmp_path / "tb"
    assert (
        _cli(
            _sinusoid_train(run, "--iterations", 3, "--no-progress", "--tensorboard", "--set", "log_every=1"),
            capsys,
        )[0]
        == 0
    )
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/mse")] == [1, 2, 3]


def test_reproduce_scripts_use_the_threads_their_records_ran_with():
    """Each record's training command is the one its reproduce.sh gives (same run directory, same threads)."""
    import re

    root = Path(__file__).resolve().parents[1] / "results"
    for script in root.glob("*/reproduce.sh"):
        text = script.read_text()
        for record in script.parent.glob("*.json"):
            command = json.loads(record.read_text()).get("command", "")
            train = command.split(";")[0]
            run = re.search(r"--run-dir (\S+)", train)
            threads = re.search(r"--threads (\d+)", train)
            if " train " not in train or not run or not threads:
                continue
            lines = [line for line in text.splitlines() if " train " in line and run.group(1) in line]
            for line in lines:
                assert f"--threads {threads.group(1)}" in line, (record.name, line)


@pytest.mark.parametrize(
    "flags, needle",
    [(["--grid", "0.1,abc"], "--grid"), (["--grid", "0.1,0"], "--grid"), (["--tune-tasks", "0"], "--tune-tasks")],
)
def test_maml_rl_eval_rejects_a_bad_step_size_grid(capsys, tmp_path, flags, needle):
    code, err = _cli(
        ["maml-rl", "eval", "--preset", "point-nav", "--method", "random", "--record", tmp_path / "rec", *flags], capsys
    )
    _one_line_error(code, err, needle)


def test_maml_rl_eval_hands_the_grid_and_validation_tasks_to_the_library(monkeypatch, capsys):
    ev = importlib.import_module("icml17.maml.rl.evaluate")

    seen = {}

    def fake_evaluate(trained, method, **kwargs):
        seen.update(kwargs, method=method)
        return {"returns": [-1.0], "returns_ci95": [0.0], "tasks": kwargs["tasks"], "lr": 0.1}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    code, err = _cli(
        [
            "maml-rl",
            "eval",
            "--preset",
            "point-nav",
            "--method",
            "random",
            "--later-steps",
            "tuned",
            "--grid",
            "0.02,0.2",
            "--tune-tasks",
            "7",
            "--tasks",
            "3",
        ],
        capsys,
    )
    assert code == 0, err
    assert seen["grid"] == (0.02, 0.2) and seen["tune_tasks"] == 7 and seen["tasks"] == 3
    assert seen["later_steps"] == "tuned" and seen["method"] == "random"
    code, err = _cli(["maml-rl", "eval", "--preset", "point-nav", "--method", "random"], capsys)
    assert code == 0, err
    assert seen["grid"] is None and seen["tune_tasks"] is None  # not given: the library's defaults apply


@pytest.mark.parametrize(
    "flags, needles",
    [
        # a fixed --lr with the half rule tunes nothing: --grid would be ignored, so the command stops and says why
        (["--lr", "0.1", "--grid", "0.02,0.2"], ["nothing is tuned", "later_steps='tuned'", "--later-steps"]),
        (["--per-horizon", "--lr", "0.1"], ["per_horizon", "leave lr unset", "(command line: --per-horizon, --lr)"]),
    ],
    ids=["grid-where-nothing-is-tuned", "per-horizon-with-a-fixed-step-size"],
)
def test_maml_rl_eval_refuses_flags_it_would_ignore(capsys, flags, needles):
    code, err = _cli(["maml-rl", "eval", "--preset", "point-nav", "--method", "random", *flags, "--tasks", "1"], capsys)
    _one_line_error(code, err, *needles)


def test_maml_rl_eval_per_horizon_reaches_the_library_and_prints_each_horizons_size(monkeypatch, capsys):
    ev = importlib.import_module("icml17.maml.rl.evaluate")

    seen = {}

    def fake_evaluate(trained, method, **kwargs):
        seen.update(kwargs)
        return {
            "returns": [-40.0, -12.0, -5.0],
            "returns_ci95": [1.0, 1.0, 1.0],
            "tasks": 3,
            "lr": 0.3,
            "step_sizes_per_horizon": [0.3, 0.2],
        }

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    assert (
        main(
            [
                "maml-rl",
                "eval",
                "--preset",
                "point-nav",
                "--method",
                "random",
                "--per-horizon",
                "--steps",
                "2",
                "--tasks",
                "3",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert seen["per_horizon"] is True
    assert "before any step" in lines[0] and "every step at 0.3" in lines[1] and "every step at 0.2" in lines[2]


def test_maml_rl_plots_draws_the_named_family(tmp_path, capsys):
    records = tmp_path / "records"
    records.mkdir()
    (records / "fam.json").write_text(json.dumps({"returns": [-40.0, -12.0], "returns_ci95": [4.0, 2.0]}))
    code, err = _cli(
        [
            "maml-rl",
            "plots",
            "--preset",
            "point-nav",
            "--family",
            "fam",
            "--records",
            records,
            "--run-dir",
            tmp_path / "no-run",
            "--out",
            tmp_path / "figs",
        ],
        capsys,
    )
    assert code == 0, err
    assert [p.name for p in (tmp_path / "figs").iterdir()] == ["fam-returns.png"]


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--iterations", "1", "--set", "iterations=3"], "both given: keep one"),
        (["--seed", "1", "--set", "seed=2"], "both given: keep one"),
        (["--set", "inner_lr=0.1", "--set", "inner_lr=0.2"], "given twice"),
    ],
)
def test_a_value_given_two_ways_is_refused_not_silently_resolved(tmp_path, capsys, flags, needle):
    code, err = _cli(_sinusoid_train(tmp_path / "r", *flags), capsys)
    _one_line_error(code, err, needle)
    assert not (tmp_path / "r").exists()


def test_rerunning_a_finished_run_with_fewer_iterations_says_so_and_keeps_its_config(tmp_path, capsys):
    run = tmp_path / "r"
    argv = _sinusoid_train(str(run), "--no-progress")
    assert main([*argv, "--iterations", "3"]) == 0
    config = (run / "config.json").read_text()
    capsys.readouterr()
    assert main([*argv, "--iterations", "2"]) == 0
    assert "already trained to step 3 (>= 2): nothing to do" in capsys.readouterr().err
    assert (run / "config.json").read_text() == config


def test_small_shell_edges(tmp_path, capsys):
    """A local folder as a download mirror; plots of records that are not there; a closed pipe."""
    from icml17.data.commands import _folder_url

    assert _folder_url(str(tmp_path)) == tmp_path.resolve().as_uri()
    assert _folder_url("https://example.org/mnist/") == "https://example.org/mnist/"
    code, err = _cli(
        [
            "maml-rl",
            "plots",
            "--preset",
            "point-nav",
            "--records",
            tmp_path / "none",
            "--run-dir",
            tmp_path / "no-run",
            "--out",
            tmp_path / "figs",
        ],
        capsys,
    )
    _one_line_error(code, err, "no point-nav[-method].json records")
    assert not (tmp_path / "figs").exists()
    # `icml17 results` prints the whole results block (more than a pipe holds): `| head -1` closes it early
    readme = tmp_path / "README.md"
    readme.write_text((SRC.parent / "README.md").read_text())
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        f"{sys.executable} -m icml17 results --readme {readme} --results {SRC.parent / 'results'} | head -1",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip() and "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr


def test_version_is_printed(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"icml17 {version('icml17')}"


def _script_commands(text: str) -> list[str]:
    """The ``icml17`` commands of a shell script, with the script's own variables filled in: plain assignments
    (``R=results/maml-rl``, ``G="--grid ..."``) and ``for VAR in WORDS`` loops, each word in turn. A command that
    needs anything else (``$(...)``, ``${...}``, a variable set otherwise) is left out."""
    import itertools
    import re
    import shlex

    known: dict[str, set[str]] = {}
    segments = [
        seg.strip()
        for line in re.sub(r"\s*\\\n\s*", " ", text).splitlines()
        for seg in re.split(r"\s*(?:;|&&)\s*", line.split(" #")[0].strip())
    ]
    for seg in segments:
        loop = re.fullmatch(r"for (\w+) in ([^$]*?)", seg)
        assign = re.fullmatch(r"(?:export )?([A-Za-z_]\w*)=(.*)", seg)
        if loop:
            known.setdefault(loop.group(1), set()).update(shlex.split(loop.group(2)))
        elif assign and "$" not in assign.group(2) and "`" not in assign.group(2):
            known.setdefault(assign.group(1), set()).add(" ".join(shlex.split(assign.group(2))))
    commands = []
    for seg in segments:
        if not seg.startswith("icml17 ") or "$(" in seg or "${" in seg:
            continue
        names = sorted(set(re.findall(r"\$(\w+)", seg)))
        if not all(name in known for name in names):
            continue
        for values in itertools.product(*(sorted(known[name]) for name in names)):
            command = seg
            for name, value in sorted(zip(names, values), key=lambda nv: -len(nv[0])):  # $RR before $R
                command = command.replace(f"${name}", value)
            commands.append(command)
    return commands


def test_every_literal_command_of_the_reproduce_scripts_parses():
    """The committed scripts must name only flags that exist (an export line once asked for a --replace that one
    system lacked), the summaries' ``icml17 results seeds | paired`` included. Variables the script sets itself
    (assignments, loop words) are filled in; commands built otherwise are left out."""
    import shlex

    from icml17.cli import build_parser

    checked = []
    for script in sorted((SRC.parent / "results").rglob("*.sh")):
        for command in _script_commands(script.read_text()):
            argv = shlex.split(command)[1:]
            build_parser(argv).parse_args(argv)  # SystemExit on an unknown flag or a bad value
            checked.append(command)
    assert len(checked) >= 40
    assert any(c.startswith("icml17 results seeds ") for c in checked), "no seed summary in the scripts"
    assert any(c.startswith("icml17 results paired ") for c in checked), "no paired comparison in the scripts"


def test_script_commands_fill_in_the_scripts_own_variables():
    text = (
        'R=results/x; G="--grid 0.1,0.2"\nfor f in a b; do\n  icml17 results seeds $f --record $R\ndone\n'
        "icml17 maml-rl eval $G --record $R  # note\nicml17 maml-rl eval $(out 0 x)\nN=$(echo 3)\n"
        "icml17 maml-rl train --iterations $N\nicml17 results \\\n  seeds c"
    )
    assert _script_commands(text) == [
        "icml17 results seeds a --record results/x",
        "icml17 results seeds b --record results/x",
        "icml17 maml-rl eval --grid 0.1,0.2 --record results/x",
        "icml17 results seeds c",
    ]


def test_results_holds_records_figures_and_reproduce_scripts_only():
    """Statistics over records live in the library (icml17 results seeds | paired), not in scripts beside them."""
    scripts = sorted(str(p.relative_to(SRC.parent)) for p in (SRC.parent / "results").rglob("*.py"))
    assert not scripts, f"move these into the library or experiments/: {scripts}"
