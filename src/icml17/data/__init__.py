"""Datasets in their official file formats: loaders with clear errors and decoded caches, downloads, summaries.

Loaders return uint8 numpy arrays (conversion to float tensors belongs to the caller); see each module's
docstring for its layout and pixel convention. ``write_synthetic_datasets`` writes made-up but learnable copies
of every dataset in the official formats (for tests, or to try the commands without downloading anything).
"""

from .cifar10 import CIFAR10_CLASSES, load_cifar10
from .digits import load_digits_fallback
from .download import DATASETS, download_dataset
from .errors import DatasetError
from .miniimagenet import MiniImageNet, load_miniimagenet, make_synthetic_miniimagenet
from .mnist import load_mnist
from .omniglot import Omniglot, load_omniglot
from .paths import cache_dir, resolve_data_dir
from .summary import describe_datasets
from .synthetic import write_synthetic_datasets

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "DatasetError",
    "MiniImageNet",
    "Omniglot",
    "cache_dir",
    "describe_datasets",
    "download_dataset",
    "load_cifar10",
    "load_digits_fallback",
    "load_miniimagenet",
    "load_mnist",
    "load_omniglot",
    "make_synthetic_miniimagenet",
    "resolve_data_dir",
    "write_synthetic_datasets",
]
