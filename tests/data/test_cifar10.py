"""CIFAR-10 binary batches: the record layout (label byte + channel-major planes), the real subset's contents,
the full/subset variants, and DatasetError for missing, truncated, gapped or non-CIFAR-10 batches."""

import shutil

import numpy as np
import pytest

from icml17.data import CIFAR10_CLASSES, DatasetError, load_cifar10

RECORD = 3073


def _raw(data_dir, name):
    return (data_dir / "cifar10-subset" / "cifar-10-batches-bin" / name).read_bytes()


def _check_layout(x, y, raw, n):
    assert x.shape == (n, 3, 32, 32) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    # Labels are the first byte of every 3073-byte record.
    assert y.tolist() == list(raw[::RECORD])
    # Channel-major: the first 1024 pixel bytes are the red plane, row by row.
    assert x[0, 0].tobytes() == raw[1:1025] and x[-1, 2, 31, 31] == raw[-1]
    assert x.flags.c_contiguous


@pytest.mark.parametrize(("split", "batch"), [("train", "data_batch_1.bin"), ("test", "test_batch.bin")])
def test_records_decode_to_labels_and_channel_major_planes(synthetic_data_dir, split, batch):
    raw = _raw(synthetic_data_dir, batch)
    x, y = load_cifar10(synthetic_data_dir, split)
    _check_layout(x, y, raw, len(raw) // RECORD)


@pytest.mark.parametrize(
    ("split", "batch", "n", "first_labels"),
    [("train", "data_batch_1.bin", 4000, [6, 9, 9, 4, 1]), ("test", "test_batch.bin", 1000, [3, 8, 8, 0, 6])],
)
def test_real_subset_matches_file_bytes(real_data_dir, split, batch, n, first_labels):
    x, y = load_cifar10(real_data_dir, split)
    _check_layout(x, y, _raw(real_data_dir, batch), n)
    assert y[:5].tolist() == first_labels


def test_real_classes_match_meta(real_data_dir):
    meta = _raw(real_data_dir, "batches.meta.txt").decode().split()
    assert list(CIFAR10_CLASSES) == meta


def test_full_variant_absent(synthetic_data_dir):
    message = r"cifar10/cifar-10-batches-bin not found.*icml17 data download cifar10"
    with pytest.raises(DatasetError, match=message):
        load_cifar10(synthetic_data_dir, variant="full")


def test_gap_in_training_batches(synthetic_data_dir, tmp_path):
    folder = tmp_path / "cifar10-subset" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    source = synthetic_data_dir / "cifar10-subset" / "cifar-10-batches-bin" / "data_batch_1.bin"
    shutil.copy(source, folder / "data_batch_2.bin")
    with pytest.raises(DatasetError, match=r"training batches \[2\], expected data_batch_1\.\.2\.bin"):
        load_cifar10(tmp_path, "train")


def test_bad_label_rejected(tmp_path):
    folder = tmp_path / "cifar10-subset" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    (folder / "test_batch.bin").write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(DatasetError, match=r"test_batch\.bin has label 12, expected 0\.\.9"):
        load_cifar10(tmp_path, "test")


def test_truncated_and_missing_batch(synthetic_data_dir, tmp_path):
    folder = tmp_path / "cifar10-subset" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    raw = _raw(synthetic_data_dir, "test_batch.bin")
    (folder / "test_batch.bin").write_bytes(raw[: 2 * 3073 + 100])
    message = r"test_batch\.bin holds 6246 bytes, expected a positive multiple of .*3073"
    with pytest.raises(DatasetError, match=message):
        load_cifar10(tmp_path, "test")
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match=r"test_batch\.bin not found"):
        load_cifar10(tmp_path, "test")
