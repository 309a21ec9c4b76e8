from pathlib import Path

import numpy as np

from icml17.data import cache_dir, resolve_data_dir
from icml17.data.paths import load_cached, save_cached, source_key


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("ICML17_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("ICML17_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "icml17" / "data"


def test_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ICML17_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ICML17_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "icml17" / "cache"


def test_source_key_tracks_size_and_mtime(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    k = source_key([f], 28)
    assert k == source_key([f], 28) and k != source_key([f], 105)
    f.write_bytes(b"abcd")
    assert source_key([f], 28) != k


def test_save_load_roundtrip_and_stale_removal(private_cache):
    arrays = {"x": np.arange(6, dtype=np.uint8).reshape(2, 3), "names": np.array(["a", "bc"])}
    save_cached("thing", "0123456789abcdef", arrays)
    loaded = load_cached("thing", "0123456789abcdef")
    np.testing.assert_array_equal(loaded["x"], arrays["x"])
    assert loaded["names"].tolist() == ["a", "bc"]
    assert load_cached("thing", "fedcba9876543210") is None
    save_cached("thing-other", "0000000000000000", arrays)
    save_cached("thing", "fedcba9876543210", arrays)
    names = sorted(p.name for p in Path(private_cache).iterdir())
    # The stale key of "thing" is gone; "thing-other" is a different stem and stays; no temp files remain.
    assert names == ["thing-fedcba9876543210.npz", "thing-other-0000000000000000.npz"]


def test_damaged_cache_is_a_miss(private_cache):
    save_cached("thing", "0123456789abcdef", {"x": np.zeros(3)})
    path = private_cache / "thing-0123456789abcdef.npz"
    path.write_bytes(path.read_bytes()[:20])
    assert load_cached("thing", "0123456789abcdef") is None
    assert not path.exists()
