"""A stand-in for MNIST when no dataset is present: scikit-learn's bundled 8x8 digits (UCI optdigits test
set, 1,797 images) brought to MNIST's format, so a demo runs with nothing downloaded.

Like MNIST, each digit fills a 20x20 box (bilinear upsampling of the 8x8 image) centred in a 28x28 frame,
ink = 255 on 0. It is far smaller and blurrier than MNIST: use it only to exercise code, never for results.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import DatasetError

_BOX = 20
_PAD = (28 - _BOX) // 2


def load_digits_fallback() -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (1797, 28, 28) and labels int64 (1797,) from scikit-learn's digits."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DatasetError(
            "the digits fallback needs scikit-learn (`pip install scikit-learn`); "
            "or get MNIST with `icml17 data download mnist`"
        ) from e
    bunch = load_digits()
    small = np.rint(bunch.images * (255 / 16)).astype(np.uint8)  # values 0..16 -> 0..255
    images = np.zeros((len(small), 28, 28), dtype=np.uint8)
    for i, img in enumerate(small):
        big = Image.fromarray(img).resize((_BOX, _BOX), Image.Resampling.BILINEAR)
        images[i, _PAD : _PAD + _BOX, _PAD : _PAD + _BOX] = np.asarray(big)
    return images, bunch.target.astype(np.int64)
