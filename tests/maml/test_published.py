"""Published numbers (``icml17.maml.published``): each names its source, applies at its step count, and is no part
of a training config; runs and shipped weights whose stored config still holds the retired ``paper`` fields load
and resume."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from icml17.cli import main
from icml17.core.checkpoint import load_checkpoint, save_checkpoint
from icml17.core.config import ConfigError
from icml17.core.runs import CHECKPOINT_FILE, check_resume
from icml17.maml.evaluate import load_run, load_shipped
from icml17.maml.presets import PRESETS, MAMLConfig
from icml17.maml.published import PUBLISHED, published

QUICK_SINE = ["--no-progress", "--set", "eval_every=5", "eval_tasks=5", "checkpoint_every=5", "log_every=1"]
# what a MAMLConfig stored before the published numbers left it held (the sinusoid-k5 preset's values then)
OLD_PAPER_FIELDS = {"paper": 1.13, "paper_ci95": 0.18, "paper_source": "Li et al. 2017 (Meta-SGD), Table 1, MAML row"}


def test_published_numbers_name_their_source():
    """The sinusoid numbers are Li et al.'s (Meta-SGD) table of MAML, not the MAML paper's (which has plots)."""
    for name, number in PUBLISHED.items():
        assert name in PRESETS, name
        expected = "Meta-SGD" if name.startswith("sinusoid") else "Finn et al. 2017"
        assert expected in number.source, name


def test_a_published_number_applies_at_its_step_count_only():
    assert published("omniglot-5w1s").value == 0.987 and published("omniglot-5w1s", steps=10).ci95 == 0.004
    assert published("sinusoid-k10", steps=1).value == 0.77 and published("sinusoid-k10", steps=10) is None
    assert published("cifar10-5w1s") is None and published("custom") is None


def test_no_published_number_is_part_of_a_training_config():
    names = {f.name for f in fields(MAMLConfig)}
    assert not names & set(OLD_PAPER_FIELDS)
    assert set(MAMLConfig.RETIRED) == set(OLD_PAPER_FIELDS)
    assert not set(MAMLConfig.RESUME_FREE) & set(OLD_PAPER_FIELDS)


def test_a_checkpoint_whose_config_holds_paper_numbers_loads_and_resumes(tmp_path):
    run = tmp_path / "run"
    train = ["maml", "train", "--preset", "sinusoid-k5", "--run-dir", str(run), *QUICK_SINE]
    assert main([*train, "--iterations", "2"]) == 0
    path = run / CHECKPOINT_FILE
    payload = load_checkpoint(path)
    stored = {**json.loads(payload["config"]), **OLD_PAPER_FIELDS}
    save_checkpoint(path, {**payload, "config": json.dumps(stored)})

    trained = load_run(run)
    assert trained.cfg.preset == "sinusoid-k5" and trained.iterations == 2
    check_resume(run, load_checkpoint(path), trained.cfg)
    assert main([*train, "--iterations", "4"]) == 0
    assert load_checkpoint(path)["step"] == 4
    # the retired keys alone are forgiven: a stored field that does change training still refuses the resume
    with pytest.raises(ConfigError, match=r"inner_lr: 0\.5 -> 0\.01"):
        check_resume(run, {"config": json.dumps({**stored, "inner_lr": 0.5}), "step": 2}, trained.cfg)


def test_shipped_weights_written_with_paper_numbers_still_load():
    from icml17.weights import load_weights

    assert "paper" in load_weights("sinusoid-k10", "maml").config  # exported before the numbers left the config
    shipped = load_shipped("sinusoid-k10")
    assert shipped.cfg.preset == "sinusoid-k10" and shipped.weights == "sinusoid-k10"
    assert shipped.engine is shipped.model
