"""What a new user met when trying the library, each written down as it should be.

The library speaks Python (errors name parameters; the CLI adds the flags), data mistakes get their own fix,
the demo's report is faithful, help is fast and complete, and every refusal is one line that names the knob:
read-only or full run directories, weights that do not fit, empty or NaN episodes, sizes no memory holds.
"""

from __future__ import annotations

import argparse
import ast
import errno
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from icml17.cli import build_parser, main
from icml17.cli_args import describe
from icml17.core.checkpoint import CheckpointError
from icml17.core.config import ConfigError
from icml17.core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _cli(argv, capsys):
    """(exit code, stderr lines) of ``icml17 argv`` run in-process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ the library speaks Python
CLI_MODULES = {"commands.py", "cli.py", "cli_args.py", "cli_listing.py", "tables.py"}  # they own the flags
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _raised_texts(tree: ast.AST):
    """(line, text) of every string an exception is raised with, or that names what to lower when memory runs out."""
    for node in ast.walk(tree):
        args = []
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            args = node.exc.args
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "explain_out_of_memory"
        ):
            args = node.args[:1]
        for arg in args:
            text = "".join(n.value for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str))
            yield node.lineno, text


def test_library_errors_name_parameters_not_command_line_flags():
    found = []
    for path in sorted((SRC / "icml17").rglob("*.py")):
        if path.name in CLI_MODULES:
            continue
        for line, text in _raised_texts(ast.parse(path.read_text())):
            flags = FLAG.findall(re.sub(r"`[^`]*`", "", text))  # a whole shell command in backticks may quote flags
            if flags:
                found.append(f"{path.relative_to(SRC)}:{line} {flags}")
    assert not found, "library errors naming CLI flags (name the parameter and pass param=):\n" + "\n".join(found)


def test_the_cli_adds_the_flag_of_the_parameter_an_error_names():
    argv = ["maml-rl", "eval", "--preset", "point-nav", "--tune-tasks", "3"]
    parser = build_parser(argv)
    message = describe(ConfigError("tune_tasks must be >= 1", param=("tune_tasks", "later_steps")), parser, argv)
    assert message == "tune_tasks must be >= 1 (command line: --tune-tasks, --later-steps)"
    argv = ["maml", "train", "--preset", "sinusoid-k10"]  # a config field: --set, a negated flag: --no-resume
    parser = build_parser(argv)
    assert (
        describe(ConfigError("x", param=("meta_batch", "resume", "data_dir")), parser, argv)
        == "x (command line: --set meta_batch=..., --no-resume, --data-dir)"
    )
    assert describe(UserError("y"), parser, argv) == "y"


def test_a_config_error_from_the_library_reaches_the_user_with_its_flag(tmp_path, capsys):
    code, lines = _cli(
        ["maml-rl", "train", "--preset", "point-nav", "--set", "max_kl=-1", "--run-dir", tmp_path / "r"], capsys
    )
    assert code == 2 and len(lines) == 1, lines
    assert "max_kl must be a positive finite number" in lines[0]
    assert lines[0].endswith("(command line: --set max_kl=...)")
    assert not (tmp_path / "r").exists()


# -------------------------------------------------------------------------------- data folders gone wrong
def test_a_data_folder_that_is_a_file_too_deep_too_shallow_or_extracted_gets_its_own_fix(tmp_path, synthetic_data_dir):
    from icml17.data import DatasetError, load_omniglot

    def error(data_dir) -> str:
        with pytest.raises(DatasetError) as e:
            load_omniglot(data_dir)
        assert e.value.params == ("data_dir",)
        return str(e.value)

    a_file = tmp_path / "data.txt"
    a_file.write_text("")
    assert "is a file" in error(a_file) and "download" not in error(a_file)
    too_deep = synthetic_data_dir / "omniglot"
    message = error(too_deep)
    assert "the omniglot folder itself" in message and f"pass its parent {synthetic_data_dir.resolve()}" in message
    assert "download" not in message
    assert f"pass {synthetic_data_dir}" in error(synthetic_data_dir.parent)  # one level too shallow
    extracted = tmp_path / "extracted"
    (extracted / "omniglot" / "images_background" / "Latin").mkdir(parents=True)
    message = error(extracted)
    assert "is extracted" in message and "zip -qr images_background.zip images_background" in message
    assert "--data-dir" not in error(tmp_path / "nothing-here").replace("icml17 data download omniglot --data-dir", "")


# ------------------------------------------------------------------------------------------------ the demo
def test_the_demo_report_shows_text_in_angle_brackets(tmp_path):
    from icml17.core.report import Report

    report = Report(tmp_path, title="t")
    report.add("Data", "put it under <data-dir>/omniglot/ as images_background/<Alphabet>/characterNN, a < b & c")
    page = Path(report.write()).read_text()
    assert "&lt;data-dir&gt;/omniglot/" in page and "images_background/&lt;Alphabet&gt;/characterNN" in page
    assert "<data-dir>" not in page and "<Alphabet>" not in page


def test_the_demo_announces_no_omniglot_evaluation_it_then_skips(tmp_path):
    from icml17.maml import demo as maml_demo

    said = []
    text, images = maml_demo._omniglot(tmp_path, tmp_path / "no-data", 5, said.append, torch.device("cpu"))
    assert "Omniglot not found" in text and images == []
    assert not any("evaluating" in s for s in said) and any("not scored" in s for s in said), said


def test_the_demo_report_says_how_long_it_took_here_and_under_what_load(tmp_path):
    from icml17 import demo

    assert demo.run_demo(tmp_path / "demo", tmp_path / "no-data", quick=True, systems=[]) == 0
    text = (tmp_path / "demo" / "report.md").read_text()
    assert re.search(r"This tour took \d+ s here", text), text
    assert "about 100 s" not in build_parser(["demo"]).format_help()


def test_the_navigation_figure_holds_every_path_it_draws(tmp_path, monkeypatch):
    import icml17.maml.rl.plots as plots
    from icml17.maml.rl.evaluate import random_init

    trained = random_init("point-nav", seed=0)
    last = trained.policy.mean[-1]
    with torch.no_grad():  # a policy that heads off to the top right at full speed, far outside the goals' square
        last.weight.zero_()
        last.bias.fill_(10.0)
    monkeypatch.setattr(plots, "load_run", lambda run_dir: trained)
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    plots.plot_trajectories(tmp_path, tmp_path / "paths.png", rollouts=2)
    ax = figures[0].axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    far = 0.0
    for line in ax.lines:
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        far = max(far, np.abs(x).max(), np.abs(y).max())
        assert x.min() >= x0 and x.max() <= x1 and y.min() >= y0 and y.max() <= y1, line.get_label()
    assert far > 1.0  # the paths did leave the old fixed box [-0.6, 0.6]^2


@pytest.mark.slow
def test_the_demo_measures_the_shipped_minima_as_the_record_it_cites(real_data_dir):
    from icml17.sharpness import demo as sharpness_demo

    text, _ = sharpness_demo._shipped(real_data_dir, False, lambda _: None, torch.device("cpu"))
    record = json.loads((REPO / "results" / "sharpness" / "radial-ranking.json").read_text())["theta"]
    for name in ("small-batch", "large-batch"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} "))
        cells = [c.strip() for c in row.strip("|").split("|")]  # minimum, loss, lambda_max, trace, accuracy
        assert cells[2] == f"{record[name]['lambda_max']:.3g}" and cells[3] == f"{record[name]['trace']:.3g}", row


# ----------------------------------------------------------------------------------------- progress, help
def test_an_evaluation_shows_its_progress(capsys):
    from icml17.maml.evaluate import evaluate, load_shipped

    evaluate(load_shipped("sinusoid-k10"), tasks=4, steps=1, chunk=2, progress=True)
    err = capsys.readouterr().err
    assert "maml eval sinusoid-k10" in err and "/4 [" in err, err  # the bar, with the number of tasks
    for progress in (False, None):  # by default only on a terminal: logs and captured output stay clean
        evaluate(load_shipped("sinusoid-k10"), tasks=4, steps=1, progress=progress)
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("system", ["maml", "maml-rl", "pixelcnn", "sharpness"])
def test_listing_a_systems_commands_imports_no_torch_and_prints_what_the_full_parser_prints(system):
    code = (
        f"import sys\nfrom icml17.cli import main\ntry:\n    main([{system!r}, '--help'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\nassert 'torch' not in sys.modules, 'imported torch'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    full = build_parser()  # every command registered by its own module
    top = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert out.stdout == top.choices[system].format_help()


@pytest.mark.parametrize("command", ["data", "demo", "results"])
def test_the_help_of_a_command_without_subsystems_imports_no_torch(command):
    code = (
        f"import sys\nfrom icml17.cli import main\ntry:\n    main([{command!r}, '--help'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\nassert 'torch' not in sys.modules, 'imported torch'\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert f"usage: icml17 {command}" in out.stdout


@pytest.mark.parametrize(
    "argv, keys",
    [
        (["maml", "train"], ["meta_batch", "inner_lr", "first_order"]),
        (["maml-rl", "train"], ["meta_batch", "max_kl", "hvp_tasks"]),
        (["pixelcnn", "train"], ["batch_size", "hidden", "val_images"]),
        (["pixelcnn", "video", "train"], ["batch_size", "frame_size", "lr"]),
    ],
)
def test_the_help_of_a_training_command_lists_the_keys_set_accepts(argv, keys):
    parser = build_parser(argv)
    for token in argv:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[token]
    text = " ".join(parser.format_help().split())
    assert "--set keys" in text
    for key in keys:
        assert re.search(rf"\b{key}\b", text.split("--set keys", 1)[1]), key


# --------------------------------------------------------------------------------------- records, torchrun
def test_sharpness_reproduce_writes_under_results_only_when_asked(tmp_path, monkeypatch, capsys):
    import icml17.sharpness.reproductions as reproductions

    asked = []
    monkeypatch.setattr(reproductions, "reproduce", lambda which, out_dir, *a, **kw: asked.append(out_dir) or [])
    monkeypatch.chdir(tmp_path)
    assert main(["sharpness", "reproduce", "--which", "theorem6", "--run-dir", "runs/sharpness"]) == 0
    assert main(["sharpness", "reproduce", "--which", "theorem6", "--record", "results/sharpness"]) == 0
    assert [Path(p) for p in asked] == [Path("runs/sharpness/records"), Path("results/sharpness")]


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_torchrun_refuses_an_undividable_meta_batch_once_and_readme_says_what_to_do(tmp_path):
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node=2",
        "--master_port",
        str(29700 + os.getpid() % 200),
        "-m",
        "icml17",
        "maml",
        "train",
        "--preset",
        "sinusoid-k10",
        "--run-dir",
        str(tmp_path / "run"),
        "--iterations",
        "1",
    ]
    out = subprocess.run(
        cmd,
        env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    refusals = [line for line in (out.stdout + out.stderr).splitlines() if "is not divisible by the 2" in line]
    assert len(refusals) == 1 and "meta_batch=24" in refusals[0], out.stderr[-2000:]
    readme = (REPO / "README.md").read_text()
    assert "sinusoid" in readme.split("## Several processes", 1)[1] and "meta_batch=24" in readme


# ----------------------------------------------------------------------------------------- run directories
def test_a_run_directory_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    import icml17.core.loop as loop

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "run" / "config.json.tmp"))

    monkeypatch.setattr(loop, "write_config", read_only)
    with pytest.raises(
        UserError,
        match=r"cannot write the run directory .*Read-only file system.*nothing was "
        r"trained; pass a run_dir on a writable disk",
    ) as e:
        loop.run_loop(tmp_path / "run", 2, lambda step: {"loss": 1.0}, {}, config={"a": 1}, progress=False)
    assert e.value.params == ("run_dir",)


class _FillsUp:
    """A log file on a disk that fills after ``room`` characters: the write that does not fit is cut there."""

    def __init__(self, path, room):
        self.f, self.room = open(path, "a"), room

    def write(self, text):
        if len(text) > self.room:
            self.f.write(text[: self.room])
            self.f.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        return self.f.write(text)

    def flush(self):
        self.f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_a_full_disk_while_logging_is_one_line_and_the_torn_line_is_read_past(tmp_path, monkeypatch):
    import icml17.core.loop as loop

    real_open = open
    monkeypatch.setattr(
        loop,
        "open",
        lambda path, *a, **kw: (
            _FillsUp(path, 300) if str(path).endswith("metrics.jsonl") else real_open(path, *a, **kw)
        ),
        raising=False,
    )
    model = nn.Linear(1, 1)
    with pytest.raises(
        UserError,
        match=r"No space left on device; the checkpoint of step \d+ is intact .* free some "
        r"space and rerun the same command",
    ):
        loop.run_loop(
            tmp_path / "run",
            50,
            lambda step: {"loss": 1.0 / (step + 1)},
            {"model": model},
            checkpoint_every=2,
            progress=False,
        )
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    rows = loop.read_metrics(tmp_path / "run")
    assert len(rows) == len(lines) - 1 and [r["step"] for r in rows] == list(range(1, len(rows) + 1))
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 3}\n')  # damaged, not torn
    with pytest.raises(UserError, match=r"line 2, is not a JSON metric line"):
        loop.read_metrics(tmp_path / "run")
    monkeypatch.undo()
    result = loop.run_loop(tmp_path / "run2", 4, lambda step: {"loss": 1.0}, {"model": model}, progress=False)
    assert result.steps_done == 4


def test_a_truncated_checkpoint_on_resume_says_how_to_start_afresh(tmp_path):
    from icml17.core.loop import run_loop

    model = nn.Linear(2, 1)
    run_loop(tmp_path, 2, lambda step: {"loss": 1.0}, {"model": model}, progress=False)
    path = tmp_path / "checkpoints" / "last.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated or damaged.*pass resume=False") as e:
        run_loop(tmp_path, 4, lambda step: {"loss": 1.0}, {"model": model}, progress=False)
    argv = ["maml", "train", "--preset", "sinusoid-k10"]
    assert describe(e.value, build_parser(argv), argv).endswith("(command line: --no-resume)")
    assert (
        run_loop(tmp_path, 4, lambda step: {"loss": 1.0}, {"model": model}, resume=False, progress=False).steps_done
        == 4
    )


# ------------------------------------------------------------------------------------- weights and episodes
def test_stored_weights_that_do_not_fit_the_model_or_are_not_finite_are_named(tmp_path, capsys):
    from icml17.core.runs import TrainedRun, with_model
    from icml17.maml.presets import make_config
    from icml17.maml.train import train

    def build(cfg):
        return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))

    good = build(None).state_dict()
    cases = [
        ({k: v for k, v in good.items() if k != "2.bias"}, r"missing 2\.bias"),
        ({**good, "3.weight": torch.zeros(1)}, r"unexpected 3\.weight"),
        ({**good, "0.weight": torch.zeros(3, 5)}, r"0\.weight \(3, 5\) where the model has \(3, 2\)"),
        ({**good, "2.weight": torch.full((1, 3), float("nan"))}, r"NaN or infinite values in 2\.weight"),
    ]
    for state, message in cases:
        with pytest.raises(CheckpointError, match=message):
            with_model(TrainedRun(None, state), build)
    # end to end: a MAML run whose checkpoint was edited
    cfg = replace(make_config("sinusoid-k5"), iterations=1, meta_batch=2, eval_every=0, checkpoint_every=1)
    train(cfg, tmp_path / "run", resume=False, progress=False)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    first = next(iter(ckpt["state"]["engine"]))
    ckpt["state"]["engine"][first] = torch.zeros(7, 7)
    torch.save(ckpt, path)
    code, lines = _cli(["maml", "eval", "--run-dir", tmp_path / "run", "--tasks", "2"], capsys)
    assert code == 2 and len(lines) == 1 and f"{first} (7, 7) where the model has" in lines[0], lines


def test_nan_weights_are_named_when_measured():
    from icml17.sharpness import measure

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(ConfigError, match=r"parameter 2\.weight holds NaN or infinite values"):
        measure(model, nn.functional.cross_entropy, (torch.randn(8, 4), torch.randint(0, 3, (8,))), ["lambda_max"])


def _episodes(path, tasks=2, ways=5, nan=False):
    x = np.random.default_rng(0).random((tasks, ways, 1, 28, 28), dtype=np.float32)
    if nan and tasks:
        x[0, 0, 0, 0, 0] = np.nan
    y = np.tile(np.arange(ways), (tasks, 1))
    np.savez(path, support_x=x, support_y=y, query_x=x, query_y=y)
    return path


def test_episodes_with_no_task_or_with_nan_images_are_refused(tmp_path, capsys):
    from icml17.maml.evaluate import load_episodes

    with pytest.raises(ConfigError, match="holds no episodes to score"):
        load_episodes(_episodes(tmp_path / "none.npz", tasks=0))
    with pytest.raises(ConfigError, match=r"support_x holds 1 NaN or infinite values"):
        load_episodes(_episodes(tmp_path / "nan.npz", nan=True))
    code, lines = _cli(["maml", "eval", "--weights", "omniglot-5w1s", "--episodes", tmp_path / "none.npz"], capsys)
    assert code == 2 and len(lines) == 1 and "no episodes" in lines[0]


# --------------------------------------------------------------------------------------- sizes, settings
def test_a_size_no_memory_holds_names_its_knob():
    from icml17.core.device import OutOfMemory, explain_out_of_memory

    with pytest.raises(OutOfMemory, match=r"GB asked for at once\); lower meta_batch") as e:
        with explain_out_of_memory("meta_batch", "cpu", param="meta_batch"):
            torch.empty(2**62, dtype=torch.uint8)  # more than any address space: refused at once, everywhere
    assert e.value.params == ("meta_batch",)
    with pytest.raises(RuntimeError, match="something else"):  # other errors keep their traceback
        with explain_out_of_memory("meta_batch", "cpu"):
            raise RuntimeError("something else")


def _refused_allocation(*args, **kwargs):
    torch.empty(2**62, dtype=torch.uint8)


def test_huge_meta_batch_batch_size_and_sample_counts_name_their_knobs(tmp_path, monkeypatch, synthetic_data_dir):
    import icml17.maml.train as mtrain
    from icml17.core.device import OutOfMemory
    from icml17.maml.presets import make_config

    real = mtrain.make_task_source

    def huge(cfg, data_dir=None):  # the meta-batch's draw is where 1e9 tasks fail; the probe of 1 task works
        source = real(cfg, data_dir)
        draw = source.train
        source.train = lambda n, generator: draw(n, generator) if n == 1 else _refused_allocation()
        return source

    monkeypatch.setattr(mtrain, "make_task_source", huge)
    cfg = replace(make_config("sinusoid-k5"), iterations=1, meta_batch=10**9, eval_every=0)
    with pytest.raises(OutOfMemory, match=r"lower meta_batch \(the tasks drawn at each step\)") as e:
        mtrain.train(cfg, tmp_path / "maml", progress=False)
    assert e.value.params == ("meta_batch",)

    import icml17.pixelcnn.train as ptrain
    from icml17.pixelcnn.presets import make_config

    monkeypatch.setattr(ptrain, "quantize", _refused_allocation)
    cfg = make_config(
        "digits-demo",
        "multiscale-a",
        {
            "hidden": 4,
            "layers": 1,
            "resnet_blocks": 1,
            "n_mix": 1,
            "shallow_layers": 1,
            "iterations": 1,
            "batch_size": 10**8,
            "eval_images": 3,
            "eval_every": 0,
        },
    )
    with pytest.raises(OutOfMemory, match=r"lower batch_size \(the images drawn at each step\)") as e:
        ptrain.train(cfg, tmp_path / "pixelcnn", progress=False)
    assert e.value.params == ("batch_size",)

    from icml17.pixelcnn import plots as pplots
    from icml17.pixelcnn.evaluate import load_shipped

    trained = load_shipped("binarized-mnist-typeA")
    monkeypatch.setattr(trained.model, "sample", _refused_allocation)
    with pytest.raises(OutOfMemory, match=r"lower n, the number of images sampled at once"):
        pplots.sample_and_plot(trained, synthetic_data_dir, tmp_path / "samples", n=10**8)


def test_a_preset_keeps_its_environment(tmp_path, capsys):
    from icml17.maml.rl.presets import make_config

    with pytest.raises(ConfigError, match=r"env 'ant-vel' is not the environment of preset 'point-nav'") as e:
        make_config("point-nav", overrides={"env": "ant-vel"})
    assert e.value.params == ("preset",)
    assert make_config("ant-vel").env == "ant-vel"
    code, lines = _cli(
        ["maml-rl", "train", "--preset", "point-nav", "--set", "env=ant-vel", "--run-dir", tmp_path / "r"], capsys
    )
    assert code == 2 and len(lines) == 1 and lines[0].endswith("(command line: --preset)"), lines
    assert not (tmp_path / "r").exists()


def test_more_threads_than_cores_is_warned(capsys):
    from icml17.core.device import apply_threads

    before = torch.get_num_threads()
    try:
        apply_threads((os.cpu_count() or 1) + 1000)
    finally:
        torch.set_num_threads(before)
    assert "threads beyond the cores slow the work down" in capsys.readouterr().err
