import numpy as np
import pytest

from icml17.data import load_digits_fallback

pytest.importorskip("sklearn", reason="the digits fallback needs scikit-learn")


def test_mnist_like_format():
    x, y = load_digits_fallback()
    assert x.shape == (1797, 28, 28) and x.dtype == np.uint8
    assert y.shape == (1797,) and y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    assert y[:10].tolist() == list(range(10))
    # MNIST's framing: the digit lives in the central 20x20 box, the 4-pixel border is empty.
    assert x[:, :4].max() == 0 and x[:, -4:].max() == 0 and x[:, :, :4].max() == 0 and x[:, :, -4:].max() == 0
    assert x.max() == 255 and 0.05 < x.mean() / 255 < 0.3
