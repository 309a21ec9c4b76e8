"""The sampling benchmark's extrapolation helpers (benchmarks/pixelcnn-sampling.py): a band of rows is rows x
width evaluations of the windowed sampler (x channels for a softmax head), the last ``cols`` pixels of one row
are ``cols`` of them, and the band lies below the first receptive rows, where every evaluation costs the same."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from pcnn_helpers import tiny_model

REPO = Path(__file__).resolve().parents[2]


def _load():
    path = REPO / "benchmarks" / "pixelcnn-sampling.py"
    spec = importlib.util.spec_from_file_location("bench_pixelcnn_sampling", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load()


def test_band_counts_the_evaluations_it_samples():
    model = tiny_model("full", 6, 3, 1, "softmax")  # 2 layers: receptive rows 2
    known = bench.band_known(model, 2)
    assert (~known).nonzero()[:, 0].unique().tolist() == [2, 3]  # below the receptive rows, in the middle
    assert bench.sample_band(model, 2, known, None) == 2 * 6 * 3
    one_row = bench.band_known(model, 1, cols=4)
    assert (~one_row).nonzero().tolist() == [[3, 2], [3, 3], [3, 4], [3, 5]]  # the last 4 pixels of one row
    assert bench.sample_band(model, 2, one_row, None, window=False) == 4 * 3


def test_band_refuses_columns_it_cannot_take():
    model = tiny_model("full", 6, 1, 1, "bernoulli")
    with pytest.raises(ValueError, match="cols=7"):
        bench.band_known(model, 1, cols=7)
    with pytest.raises(ValueError, match="needs rows=1"):
        bench.band_known(model, 2, cols=3)
