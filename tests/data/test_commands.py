"""``icml17 data info`` and ``icml17 data download`` as the CLI calls them."""

import argparse
import json

import pytest

from icml17.data import DatasetError
from icml17.data.commands import register


def _run(argv):
    parser = argparse.ArgumentParser(prog="icml17")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_info(synthetic_data_dir, capsys):
    assert _run(["data", "info", "--data-dir", str(synthetic_data_dir)]) == 0
    out = capsys.readouterr().out
    assert f"data folder: {synthetic_data_dir}" in out
    assert "omniglot" in out and "1623 characters" in out and "500 train / 200 test" in out
    assert "icml17 data download cifar10" in out  # the full CIFAR-10 is missing there
    assert _run(["data", "info", "--data-dir", str(synthetic_data_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["found"] for r in rows}["mnist"] is True


def test_info_on_real_data(real_data_dir, capsys):
    assert _run(["data", "info", "--data-dir", str(real_data_dir), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["omniglot"]["found"] and rows["mnist"]["found"] and rows["cifar10-subset"]["found"]


def test_download_reports_failure(tmp_path):
    with pytest.raises(DatasetError, match="could not download"):
        _run(["data", "download", "mnist", "--data-dir", str(tmp_path), "--base-url", "http://127.0.0.1:9"])
    with pytest.raises(SystemExit):
        _run(["data", "download", "imagenet"])
