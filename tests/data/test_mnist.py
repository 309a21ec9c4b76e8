"""MNIST from the four gzipped IDX files: the real files' contents, and DatasetError (naming the file and how to
get it) for missing, truncated or mislabelled files; no gzip or numpy error escapes."""

import gzip
import shutil
import struct

import numpy as np
import pytest

from icml17.data import DatasetError, load_mnist


@pytest.fixture(scope="module")
def mnist_train(real_data_dir):
    return load_mnist(real_data_dir, "train")


def test_real_train_split(mnist_train):
    x, y = mnist_train
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60_000,) and y.dtype == np.int64
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(y, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    pixels = x.astype(np.float64) / 255
    assert round(pixels.mean(), 4) == 0.1307
    assert round(pixels.std(), 4) == 0.3081
    assert x.flags.writeable  # torch.from_numpy warns on read-only arrays


def test_real_test_split(real_data_dir):
    x, y = load_mnist(real_data_dir, "test")
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert x.max() == 255 and x[0, 0, 0] == 0  # ink bright on a dark background


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "validation")


@pytest.fixture
def mnist_copy(synthetic_data_dir, tmp_path):
    """A writable copy of the synthetic MNIST (official sizes) under tmp_path/mnist."""
    shutil.copytree(synthetic_data_dir / "mnist", tmp_path / "mnist")
    return tmp_path / "mnist"


def test_wrong_idx_header(mnist_copy, tmp_path):
    labels = gzip.decompress((mnist_copy / "t10k-labels-idx1-ubyte.gz").read_bytes())
    # A labels file where the images file belongs: magic 2049 instead of 2051.
    (mnist_copy / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz has IDX magic number 2049, expected 2051"):
        load_mnist(tmp_path, "test")


def test_wrong_idx_length(mnist_copy, tmp_path):
    labels = gzip.decompress((mnist_copy / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels[:-10]))
    message = r"t10k-labels-idx1-ubyte\.gz holds 9998 bytes, expected 10008.*truncated.*download it again"
    with pytest.raises(DatasetError, match=message):
        load_mnist(tmp_path, "test")
    # A well-formed file with the wrong number of examples.
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 2049, 3) + bytes(3)))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz holds 3 labels.*expected 10000"):
        load_mnist(tmp_path, "test")


def test_truncated_and_non_gzip(mnist_copy, tmp_path):
    path = mnist_copy / "t10k-images-idx3-ubyte.gz"
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
