"""Trained runs (``icml17.core.runs``): a run directory's checkpoint rebuilt from its own config, shipped weights
alike, and the errors of a missing or foreign run. (Resume checks: tests/core/test_loop.py.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from icml17.core.checkpoint import save_checkpoint
from icml17.core.config import ConfigError
from icml17.core.runs import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    NotTrainedError,
    TrainedRun,
    load_trained_run,
    or_shipped_weights,
    read_trained_run,
    trained_from_weights,
    write_config,
)


@dataclass(frozen=True)
class _Cfg:
    width: int = 3
    iterations: int = 10
    RESUME_FREE: ClassVar[tuple[str, ...]] = ("iterations",)
    RETIRED: ClassVar[tuple[str, ...]] = ("paper",)


def _build(cfg: _Cfg) -> nn.Linear:
    return nn.Linear(2, cfg.width)


class _Named(TrainedRun[_Cfg, nn.Linear]):
    @property
    def layer(self) -> nn.Linear:
        return self.model


def _write_run(run_dir, cfg: _Cfg, state: dict, **stored) -> None:
    save_checkpoint(
        run_dir / CHECKPOINT_FILE,
        {"step": 7, "wall_time_s": 1.5, "state": {"net": state}, "config": json.dumps({"width": cfg.width, **stored})},
    )


def test_a_run_is_rebuilt_from_its_checkpoints_config_not_config_json(tmp_path):
    torch.manual_seed(0)
    trained_net = _build(_Cfg(width=4))
    _write_run(tmp_path, _Cfg(width=4), trained_net.state_dict(), iterations=7, paper=0.5)
    write_config(tmp_path, _Cfg(width=9), ["icml17", "x", "train"])  # a later command's config.json: ignored
    run = load_trained_run(tmp_path, _Cfg, "net", "toy", _build, kind=_Named)
    assert isinstance(run, _Named) and run.layer is run.model
    assert run.cfg == _Cfg(width=4, iterations=7)
    assert (run.iterations, run.wall_time_s, run.train_command) == (7, 1.5, "icml17 x train")
    assert run.device == torch.device("cpu")
    for name, value in trained_net.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], value)


def test_a_resume_free_key_missing_from_an_old_checkpoint_comes_from_config_json(tmp_path):
    _write_run(tmp_path, _Cfg(), _build(_Cfg()).state_dict())
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"config": {"width": 3, "iterations": 99}}))
    assert read_trained_run(tmp_path, _Cfg, "net", "toy").cfg.iterations == 99


def test_a_missing_or_foreign_run_is_one_clear_error(tmp_path):
    with pytest.raises(NotTrainedError, match=r"is not a trained toy run .*icml17 toy train --run-dir"):
        read_trained_run(tmp_path / "nothing", _Cfg, "net", "toy")
    with pytest.raises(NotTrainedError, match=r"; or use shipped weights") as e:
        or_shipped_weights(lambda: read_trained_run(tmp_path / "nothing", _Cfg, "net", "toy"))
    assert "weights" in e.value.params  # the CLI names its --weights
    with pytest.raises(NotTrainedError, match=r"; make one$"):
        read_trained_run(tmp_path / "nothing", _Cfg, "net", "toy", how_to_train="make one")
    _write_run(tmp_path, _Cfg(), _build(_Cfg()).state_dict())
    with pytest.raises(ConfigError, match=r"is not a toy checkpoint \(it holds no 'engine' state\)"):
        read_trained_run(tmp_path, _Cfg, "engine", "toy")


@dataclass
class _Weights:
    name: str
    config: dict
    state: dict
    iterations: int = 5
    wall_time_s: float = 2.0
    train_command: str = "icml17 toy train"
    record: str = "results/toy/x.json"


def test_shipped_weights_become_the_same_trained_run_and_only_retired_keys_are_forgiven():
    net = _build(_Cfg(width=2))
    run = trained_from_weights(_Weights("w", {"width": 2, "paper": 0.1}, net.state_dict()), _Cfg, _build)
    assert type(run) is TrainedRun and run.cfg == _Cfg(width=2)
    assert (run.weights, run.record, run.iterations) == ("w", "results/toy/x.json", 5)
    assert torch.equal(run.model.weight, net.weight)
    with pytest.raises(ConfigError, match="depth"):
        trained_from_weights(_Weights("w", {"width": 2, "depth": 1}, net.state_dict()), _Cfg, _build)
