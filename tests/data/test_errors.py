"""Missing, truncated and corrupt files raise DatasetError naming the file; no zipfile/gzip/numpy error escapes."""

import gzip
import shutil
import struct
import zipfile

import pytest

from icml17.data import DatasetError, load_cifar10, load_mnist, load_omniglot
from icml17.data import omniglot as omniglot_module


def test_truncated_omniglot_zip(shared_data_dir, tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    for name in ("images_background.zip", "images_evaluation.zip"):
        head = (shared_data_dir / "omniglot" / name).read_bytes()[: 1 << 20]
        (folder / name).write_bytes(head)
    with pytest.raises(DatasetError, match=r"images_background\.zip is not a readable zip.*truncated") as info:
        load_omniglot(tmp_path)
    assert isinstance(info.value.__cause__, zipfile.BadZipFile)
    assert "icml17 data download omniglot" in str(info.value)


def test_corrupt_member_in_intact_zip(tmp_path, monkeypatch, private_cache, write_omniglot_zip):
    monkeypatch.setattr(omniglot_module, "SPLITS", (("images_background", 1, 1), ("images_evaluation", 1, 1)))
    write_omniglot_zip(tmp_path / "omniglot" / "images_background.zip", "images_background", {"Latin": 1})
    bad = tmp_path / "omniglot" / "images_evaluation.zip"
    write_omniglot_zip(bad, "images_evaluation", {"ULOG": 1})
    data = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as zf:
        info = zf.infolist()[5]
    start = info.header_offset + 30 + len(info.filename) + 40  # inside the member's data
    data[start : start + 16] = bytes(16)
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"images_evaluation\.zip: member {info.filename} is corrupt"):
        load_omniglot(tmp_path)


def test_missing_omniglot(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_omniglot(tmp_path)
    message = str(info.value)
    assert "images_background.zip not found" in message
    assert f"icml17 data download omniglot --data-dir {tmp_path}" in message and "ICML17_DATA" in message


def _mnist_copy(shared_data_dir, tmp_path):
    shutil.copytree(shared_data_dir / "mnist", tmp_path / "mnist")
    for f in (tmp_path / "mnist").iterdir():
        f.chmod(0o644)  # the shared copy is read-only
    return tmp_path / "mnist"


def test_wrong_idx_header(shared_data_dir, tmp_path):
    folder = _mnist_copy(shared_data_dir, tmp_path)
    labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    # A labels file where the images file belongs: magic 2049 instead of 2051.
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz has IDX magic number 2049, expected 2051"):
        load_mnist(tmp_path, "test")


def test_wrong_idx_length(shared_data_dir, tmp_path):
    folder = _mnist_copy(shared_data_dir, tmp_path)
    labels = gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels[:-10]))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz holds 9998 bytes, expected 10008"):
        load_mnist(tmp_path, "test")
    # A well-formed file with the wrong number of examples.
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, 3) + bytes(3)))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz holds 3 labels.*expected 10000"):
        load_mnist(tmp_path, "test")


def test_truncated_and_non_gzip(shared_data_dir, tmp_path):
    folder = _mnist_copy(shared_data_dir, tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50_000])
    message = r"t10k-images-idx3-ubyte\.gz is not a readable gzip.*truncated"
    with pytest.raises(DatasetError, match=message) as info:
        load_mnist(tmp_path, "test")
    assert isinstance(info.value.__cause__, EOFError)
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz is not a readable gzip") as info:
        load_mnist(tmp_path, "test")
    assert isinstance(info.value.__cause__, gzip.BadGzipFile)


def test_missing_mnist(tmp_path):
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz not found.*icml17 data download mnist"):
        load_mnist(tmp_path)


def test_truncated_cifar_batch(shared_data_dir, tmp_path):
    folder = tmp_path / "cifar10-subset" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    raw = (shared_data_dir / "cifar10-subset" / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(raw[: 2 * 3073 + 100])
    message = r"test_batch\.bin holds 6246 bytes, expected a positive multiple of .*3073"
    with pytest.raises(DatasetError, match=message):
        load_cifar10(tmp_path, "test")
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match=r"test_batch\.bin not found"):
        load_cifar10(tmp_path, "test")
