"""The registry of measures: one signature for every measure, names checked in one line, undefined measures
reported with their reason, and the library's older measures passed through unchanged."""

from __future__ import annotations

import math

import pytest
from torch import nn

from icml17.core.config import ConfigError
from icml17.sharpness import measure
from icml17.sharpness.radial import Radial
from icml17.sharpness.registry import (
    REGISTRY,
    TRANSFORMS,
    FlatnessOptions,
    check_measure_names,
    compute_measure,
    compute_measures,
)

CE = nn.functional.cross_entropy
FAST = FlatnessOptions(probes=8, apgd_steps=5, avg_samples=4, pacbayes_samples=2)


def test_names_expand_all_and_refuse_unknown_ones_in_one_line():
    assert check_measure_names(["all"]) == list(REGISTRY)
    assert check_measure_names(["topk", "lambda_max", "lambda_max"]) == ["topk", "lambda_max"]
    with pytest.raises(ConfigError, match="unknown measure") as e:
        check_measure_names(["lambda_max", "flatness"])
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="no measure"):
        check_measure_names([])


def test_every_spec_is_complete():
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.reference and spec.formula and spec.cost
        assert set(spec.claimed_invariant) <= set(TRANSFORMS)


def test_every_measure_runs_through_the_one_signature(trained_net, tiny_data):
    net = trained_net(100)
    out = compute_measures(net, CE, tiny_data, ["all"], options=FAST)
    assert not out["not_applicable"] and set(out["seconds"]) == set(REGISTRY)
    for name in REGISTRY:
        assert isinstance(out[name], float) and math.isfinite(out[name]), name
    assert out["dtype"] == "float64" and out["mode"] == "eval"


def test_older_measures_are_passed_through_unchanged(trained_net, tiny_data):
    net = trained_net(100)
    old = measure(net, CE, tiny_data, ["lambda_max", "keskar", "topk"], options=FAST.measure_options())
    assert compute_measure("lambda_max", net, CE, tiny_data, options=FAST) == old["lambda_max"]
    new = compute_measures(net, CE, tiny_data, ["topk", "keskar"], options=FAST)
    assert new["topk"] == old["topk"] and new["keskar"] == old["keskar"]


def test_measures_undefined_for_the_model_are_reported_not_raised(trained_net, tiny_data):
    wrapped = Radial(1.0, 0.5, 0.1)(trained_net(100)).model  # one flat parameter vector: no weight matrix
    out = compute_measures(
        wrapped, CE, tiny_data, ["lambda_max", "normalized_sharpness", "relative_flatness"], options=FAST
    )
    assert out["lambda_max"] > 0
    assert set(out["not_applicable"]) == {"normalized_sharpness", "relative_flatness"}
    assert "weight matrix" in out["not_applicable"]["normalized_sharpness"]
    with pytest.raises(ConfigError, match="one process"):
        compute_measures(wrapped, CE, tiny_data, ["fisher_rao"], sharded=True)
    with pytest.raises(ConfigError, match="unknown measure"):
        compute_measure("flatness", wrapped, CE, tiny_data)
