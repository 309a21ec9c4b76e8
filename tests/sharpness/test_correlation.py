"""The correlation protocol: Kendall's tau and its granulated form against hand counts, the stopping criterion,
and the tiny grid end to end on synthetic MNIST and CIFAR-10."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from icml17.sharpness.correlation import (
    HYPERPARAMETERS,
    GridConfig,
    build_grid_model,
    granulated_tau,
    kendall_statistics,
    train_to_criterion,
)


def _hand_tau(a: list[float], b: list[float]) -> float:
    """(concordant - discordant) / number of pairs, for values without ties."""
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum((a[i] - a[j]) * (b[i] - b[j]) > 0 for i, j in pairs) - sum(
        (a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs
    )
    return s / len(pairs)


def _models() -> list[dict]:
    """A 2^4 grid, one seed: the gap rises with the batch size and the learning rate; the measure "m" rises with
    the batch size and falls with the learning rate; "w" follows the width only."""
    out = []
    for b, lr, w, wd in itertools.product((32, 256), (0.02, 0.1), (64, 256), (0.0, 5e-4)):
        gap = 0.1 * (b == 256) + 0.05 * (lr == 0.1) + 0.001 * (w == 256) + 0.0001 * (wd > 0)
        out.append(
            {
                "batch_size": b,
                "lr": lr,
                "width": w,
                "weight_decay": wd,
                "seed": 0,
                "gap": gap,
                "measures": {
                    "m": 1.0 * (b == 256) - 0.5 * (lr == 0.1) + 0.01 * (w == 256) + 0.001 * (wd > 0),
                    "w": float(w) + 0.1 * (b == 256) + 0.01 * (lr == 0.1) + 0.001 * (wd > 0),
                },
            }
        )
    return out


def test_overall_tau_is_the_hand_count_and_granulated_tau_reads_each_hyperparameter():
    models = _models()
    stats = kendall_statistics(models, ["m", "w"], bootstrap=200)
    for name in ("m", "w"):
        assert stats[name]["tau"] == pytest.approx(
            _hand_tau([m["measures"][name] for m in models], [m["gap"] for m in models])
        )
        lo, hi = stats[name]["tau_ci95"]
        assert lo <= stats[name]["tau"] <= hi
    # within a group only one hyperparameter moves: m agrees with the gap on the batch size, the width and the
    # weight decay, and disagrees on the learning rate
    psi = {h: stats["m"]["psi"][h]["value"] for h in HYPERPARAMETERS}
    assert psi == {"batch_size": 1.0, "lr": -1.0, "width": 1.0, "weight_decay": 1.0}
    assert stats["m"]["psi"]["lr"]["groups"] == 8 and stats["m"]["Psi"] == 0.5
    assert all(stats["w"]["psi"][h]["value"] == 1.0 for h in HYPERPARAMETERS)
    assert granulated_tau(models, "m", "lr") == [-1.0] * 8


def test_training_stops_at_the_criterion_or_the_epoch_limit():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    config = {"family": "mnist-mlp", "batch_size": 16, "lr": 0.1, "width": 32, "weight_decay": 0.0, "seed": 0}
    easy = train_to_criterion(build_grid_model(config), x, y, config, GridConfig(stop_loss=2.0, max_epochs=200))
    assert easy["converged"] and easy["train_loss"] <= 2.0 and easy["epochs"] < 200
    hard = train_to_criterion(build_grid_model(config), x, y, config, GridConfig(stop_loss=1e-9, max_epochs=2))
    assert not hard["converged"] and hard["epochs"] == 2 and hard["steps"] == 8


def test_quick_grid_end_to_end(synthetic_data_dir, tmp_path, capsys):
    from icml17.cli import main

    out = tmp_path / "res"
    args = ["sharpness", "reproduce", "--which", "correlation", "--quick", "--record", str(out)]
    args += ["--data-dir", str(synthetic_data_dir), "--run-dir", str(tmp_path / "runs")]
    assert main(args) == 0
    record = json.loads((out / "correlation.json").read_text())
    assert (out / "correlation.png").stat().st_size > 1000 and record["quick"] and record["coverage"]["complete"]
    cfg = GridConfig.quick()
    assert len(record["models"]) == sum(len(cfg.configs(f)) for f in cfg.families)
    for m in record["models"]:
        assert set(HYPERPARAMETERS) <= set(m) and "gap" in m and "seed" in m
        if m["converged"]:
            assert set(m["measures"]) == set(cfg.measures)
    for family in cfg.families:
        assert set(record["statistics"][family]) == set(cfg.measures)
    # rerunning reads every network from its cache
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads((out / "correlation.json").read_text())["models"] == record["models"]


def _tiny_grid() -> GridConfig:
    from dataclasses import replace

    # every network meets this loose criterion, so every one is measured
    return replace(GridConfig.quick(), measures=("loss", "lambda_max"), bootstrap=20, stop_loss=5.0)


def _without_timing(record: dict) -> dict:
    """The record's results: the statistics and every network's numbers, less wall times and timing fields."""
    models = [{k: v for k, v in m.items() if k not in ("wall_time_s", "seconds")} for m in record["models"]]
    return {"statistics": record["statistics"], "models": models, "coverage": record["coverage"]}


def test_a_killed_grid_resumes_without_retraining_and_ends_as_an_uninterrupted_run(
    synthetic_data_dir, tmp_path, monkeypatch
):
    from icml17.sharpness import correlation

    cfg = _tiny_grid()
    n_grid = sum(len(cfg.configs(f)) for f in cfg.families)
    quiet = lambda line: None  # noqa: E731
    correlation.run_correlation(tmp_path / "a", synthetic_data_dir, tmp_path / "ra", cfg=cfg, command="test", log=quiet)
    whole = json.loads((tmp_path / "a" / "correlation.json").read_text())
    assert whole["coverage"] == {
        "networks_done": n_grid,
        "networks_in_grid": n_grid,
        "complete": True,
        "per_family": {f: {"done": len(cfg.configs(f)), "in_grid": len(cfg.configs(f))} for f in cfg.families},
    }

    def killed(line: str) -> None:  # the log line comes after the network's result is on disk: kill there
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        correlation.run_correlation(
            tmp_path / "b", synthetic_data_dir, tmp_path / "rb", cfg=cfg, command="test", log=killed
        )
    saved = sorted((tmp_path / "rb").rglob("result.json"))
    assert len(saved) == 1 and not list((tmp_path / "rb").rglob("*.tmp"))
    first = saved[0].read_text()
    assert json.loads(first)["converged"] and set(json.loads(first)["measures"]) == {"loss", "lambda_max"}
    trained = []
    real = correlation.train_to_criterion
    monkeypatch.setattr(
        correlation,
        "train_to_criterion",
        lambda model, x, y, config, c: trained.append(config) or real(model, x, y, config, c),
    )
    correlation.run_correlation(tmp_path / "b", synthetic_data_dir, tmp_path / "rb", cfg=cfg, command="test", log=quiet)
    first_config = cfg.configs(cfg.families[0])[0]
    assert len(trained) == n_grid - 1 and first_config not in trained
    assert saved[0].read_text() == first  # read back, not retrained
    resumed = json.loads((tmp_path / "b" / "correlation.json").read_text())
    assert _without_timing(resumed) == _without_timing(whole)


def test_one_family_alone_gives_a_record_that_says_it_is_partial(synthetic_data_dir, tmp_path):
    from icml17.core.config import ConfigError
    from icml17.sharpness.correlation import run_correlation

    cfg = _tiny_grid()
    quiet = lambda line: None  # noqa: E731
    mlp, cnn = (len(cfg.configs(f)) for f in ("mnist-mlp", "cifar-cnn"))
    run_correlation(
        tmp_path / "o", synthetic_data_dir, tmp_path / "r", cfg=cfg, command="test", families=["mnist-mlp"], log=quiet
    )
    part = json.loads((tmp_path / "o" / "correlation.json").read_text())
    assert part["coverage"]["networks_done"] == mlp and part["coverage"]["networks_in_grid"] == mlp + cnn
    assert part["coverage"]["complete"] is False and "PARTIAL GRID" in part["claim"]
    assert set(part["statistics"]) == {"mnist-mlp"} and {m["family"] for m in part["models"]} == {"mnist-mlp"}
    # the other family in a later session completes the grid, the first read from disk
    run_correlation(
        tmp_path / "o", synthetic_data_dir, tmp_path / "r", cfg=cfg, command="test", families=["cifar-cnn"], log=quiet
    )
    full = json.loads((tmp_path / "o" / "correlation.json").read_text())
    assert full["coverage"]["complete"] is True and full["coverage"]["networks_done"] == mlp + cnn
    assert set(full["statistics"]) == set(cfg.families) and "PARTIAL" not in full["claim"]
    assert full["statistics"]["mnist-mlp"] == part["statistics"]["mnist-mlp"]
    with pytest.raises(ConfigError, match="families .* not in the grid"):
        run_correlation(
            tmp_path / "o", synthetic_data_dir, tmp_path / "r", cfg=cfg, command="test", families=["svhn"], log=quiet
        )
