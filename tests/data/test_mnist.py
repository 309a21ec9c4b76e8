import numpy as np
import pytest

from icml17.data import load_mnist


@pytest.fixture(scope="module")
def mnist_train(shared_data_dir):
    return load_mnist(shared_data_dir, "train")


def test_train_split(mnist_train):
    x, y = mnist_train
    assert x.shape == (60_000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (60_000,) and y.dtype == np.int64
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(y, minlength=10).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    pixels = x.astype(np.float64) / 255
    assert round(pixels.mean(), 4) == 0.1307
    assert round(pixels.std(), 4) == 0.3081
    assert x.flags.writeable  # torch.from_numpy warns on read-only arrays


def test_test_split(shared_data_dir):
    x, y = load_mnist(shared_data_dir, "test")
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert x.max() == 255 and x[0, 0, 0] == 0  # ink bright on a dark background


def test_unknown_split(shared_data_dir):
    with pytest.raises(ValueError, match="split"):
        load_mnist(shared_data_dir, "validation")
