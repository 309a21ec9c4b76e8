"""Synthetic datasets: written in the official formats (every loader reads them), seeded and reproducible
byte for byte, and learnable (each class has its own pattern)."""

import gzip
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from icml17.data import load_cifar10, load_miniimagenet, load_mnist, load_omniglot, omniglot, write_synthetic_datasets
from icml17.data.synthetic import write_omniglot_zip

MEMBER = re.compile(r"images_(background|evaluation)/[^/]+/character\d\d/\d{4}_\d\d\.png")


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_loader_reads_them(synthetic_data_dir):
    o = load_omniglot(synthetic_data_dir, image_size=28)
    assert o.images.shape == (1623, 20, 28, 28) and set(np.unique(o.images)) == {0, 255}
    assert o.background.sum() == 964 and len(o.alphabet_names) == 50
    assert 0.02 < (o.images == 255).mean() < 0.3  # ink is the minority, as in the real drawings
    for split, n in (("train", 60_000), ("test", 10_000)):
        x, y = load_mnist(synthetic_data_dir, split)
        assert x.shape == (n, 28, 28) and np.bincount(y).tolist() == [n // 10] * 10
        assert x[:, :1].max() == 0 and x[:, :, :1].max() == 0  # digits keep away from the frame
    for split, n in (("train", 500), ("test", 200)):
        x, y = load_cifar10(synthetic_data_dir, split)
        assert x.shape == (n, 3, 32, 32) and np.bincount(y).tolist() == [n // 10] * 10
    for split, classes in (("train", 8), ("val", 5), ("test", 5)):
        assert load_miniimagenet(synthetic_data_dir, split).images.shape == (classes, 25, 3, 84, 84)


def test_zips_follow_the_official_layout(synthetic_data_dir):
    path = synthetic_data_dir / "omniglot" / "images_evaluation.zip"
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # every member's CRC is right
        names = zf.namelist()
        assert len(names) == 659 * 20 and all(MEMBER.fullmatch(n) for n in names)
        assert names[0].endswith("/character01/0965_01.png")  # global ids continue after the 964 background ones
        with zf.open(names[0]) as f, Image.open(f) as im:
            assert im.format == "PNG" and im.mode == "1" and im.size == (105, 105)


def test_seeded_and_reproducible(tmp_path, synthetic_data_dir):
    a = _files(write_synthetic_datasets(tmp_path / "a", seed=0, only=["mnist", "cifar10-subset"]))
    b = _files(write_synthetic_datasets(tmp_path / "b", seed=0, only=["mnist", "cifar10-subset"]))
    c = _files(write_synthetic_datasets(tmp_path / "c", seed=1, only=["mnist", "cifar10-subset"]))
    assert a == b and a.keys() == c.keys() and all(a[k] != c[k] for k in a if not k.endswith("meta.txt"))
    # Writing a subset gives the same files as writing everything.
    assert a == {k: v for k, v in _files(synthetic_data_dir).items() if k in a}
    for seed in (0, 0, 1):
        write_omniglot_zip(tmp_path / f"z{seed}.zip", "images_background", {"Latin": 2}, seed=seed)
    assert (tmp_path / "z0.zip").read_bytes() != (tmp_path / "z1.zip").read_bytes()
    with pytest.raises(ValueError, match="imagenet"):
        write_synthetic_datasets(tmp_path, only=["imagenet"])


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y):
    train_x, test_x = train_x.reshape(len(train_x), -1).astype(np.float32), test_x.reshape(len(test_x), -1)
    centroids = np.stack([train_x[train_y == c].mean(0) for c in np.unique(train_y)])
    distances = ((test_x.astype(np.float32)[:, None] - centroids[None]) ** 2).sum(-1)
    return (distances.argmin(1) == test_y).mean()


def test_classes_are_learnable(synthetic_data_dir):
    x, y = load_mnist(synthetic_data_dir, "train")
    xt, yt = load_mnist(synthetic_data_dir, "test")
    assert _nearest_centroid_accuracy(x[:5000], y[:5000], xt[:1000], yt[:1000]) > 0.7  # chance: 0.1
    x, y = load_cifar10(synthetic_data_dir, "train")
    xt, yt = load_cifar10(synthetic_data_dir, "test")
    assert _nearest_centroid_accuracy(x, y, xt, yt) > 0.9
    # Omniglot, one-shot among 50 characters: drawing 1 of each is the example, the other 19 are queries.
    images = load_omniglot(synthetic_data_dir, image_size=28).images[:50].astype(np.float32) / 255
    shots, queries = images[:, 0], images[:, 1:].reshape(50 * 19, -1)
    labels = np.repeat(np.arange(50), 19)
    assert _nearest_centroid_accuracy(shots, np.arange(50), queries, labels) > 0.5  # chance: 0.02


def test_same_formats_as_the_real_files(synthetic_data_dir, real_data_dir):
    for name in ("images_background.zip", "images_evaluation.zip"):
        first = {}
        for root in (real_data_dir, synthetic_data_dir):
            with zipfile.ZipFile(root / "omniglot" / name) as zf:
                member = next(n for n in zf.namelist() if n.endswith(".png"))
                assert MEMBER.fullmatch(member), member
                with zf.open(member) as f, Image.open(f) as im:
                    first[root] = (im.format, im.mode, im.size)
        assert first[real_data_dir] == first[synthetic_data_dir]
    for path in sorted((real_data_dir / "mnist").glob("*.gz")):
        header = 16 if "images" in path.name else 8
        with gzip.open(path) as real, gzip.open(synthetic_data_dir / "mnist" / path.name) as ours:
            assert real.read(header) == ours.read(header)  # the same IDX headers: magic numbers, dimensions
    meta = "cifar10-subset/cifar-10-batches-bin/batches.meta.txt"
    assert (real_data_dir / meta).read_bytes() == (synthetic_data_dir / meta).read_bytes()
    assert omniglot.N_DRAWINGS == 20
