import os
import pickle

import pytest
import torch

from icml17.core import CheckpointError, load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this object would run ``os.system``: the classic checkpoint attack."""

    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_roundtrip_keeps_tensors_and_plain_values(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"step": 3, "w": torch.arange(4.0), "cfg": "{}", "l": [1, 2]})
    got = load_checkpoint(path)
    assert got["step"] == 3 and got["l"] == [1, 2] and torch.equal(got["w"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_tampered_checkpoint_with_pickle_payload_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "icml17-checkpoint/1", "step": 1, "x": _Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_raw_pickle_file_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_truncated_checkpoint_gives_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an icml17 checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
