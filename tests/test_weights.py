"""Shipped weights: intact, loadable without pickles, and reproducing the records they name."""

import json
from pathlib import Path

import pytest

from icml17 import weights

REPO = Path(__file__).resolve().parents[1]


def test_manifest_files_match_their_checksums_and_records_exist():
    entries = weights.manifest()
    assert {"sinusoid-k10", "omniglot-5w1s", "binarized-mnist-typeA", "small-batch", "large-batch"} <= set(entries)
    total = 0
    for name, e in entries.items():
        path = weights.WEIGHTS_DIR / e["file"]
        assert path.suffix == ".safetensors" and weights.sha256(path) == e["sha256"], name
        assert (REPO / e["record"]).is_file(), e["record"]
        total += path.stat().st_size
    assert total < 8 * 2**20  # a few MB in all


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    entry = weights.manifest()["sinusoid-k10"]
    damaged = tmp_path / entry["file"]
    data = bytearray((weights.WEIGHTS_DIR / entry["file"]).read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights, "manifest", lambda: {"sinusoid-k10": entry})
    with pytest.raises(weights.WeightsError, match="checksum"):
        weights.load_weights("sinusoid-k10", "maml")


def test_weights_of_another_system_are_refused():
    with pytest.raises(weights.WeightsError, match="no shipped pixelcnn weights named 'sinusoid-k10'"):
        weights.load_weights("sinusoid-k10", "pixelcnn")


def test_sinusoid_weights_reproduce_their_record_exactly():
    from icml17.maml.evaluate import evaluate, load_shipped

    record = json.loads((REPO / "results/maml/sinusoid-k10-step1.json").read_text())
    result = evaluate(load_shipped("sinusoid-k10"), tasks=record["n_eval"], steps=10)
    assert result["mean"][1] == pytest.approx(record["value"], rel=1e-6)
    assert result["ci95"][1] == pytest.approx(record["ci95"], rel=1e-6)


@pytest.mark.parametrize("name", ["small-batch", "large-batch"])
def test_sharpness_minima_reproduce_their_record(real_data_dir, name):
    from icml17.sharpness.evaluate import evaluate, load_shipped

    record = json.loads((REPO / "results/sharpness/radial-ranking.json").read_text())["theta"][name]
    out = evaluate(load_shipped(name), real_data_dir)
    for key in ("lambda_max", "trace", "epsilon", "loss"):
        assert out[key] == pytest.approx(record[key], rel=1e-5), key
