"""Mini-ImageNet (Vinyals et al. 2016) in the split of Ravi & Larochelle (2017), as used by MAML (section 5.2).

Layout under the data root::

    miniimagenet/train.csv, val.csv, test.csv   header ``filename,label``; 64 / 16 / 20 classes x 600 images
    miniimagenet/images/<filename>              JPEG images (84x84 after the reference's preprocessing)

Images of another size are resized with PIL's LANCZOS filter, as the MAML reference's ``proc_images.py`` does.
Decoded splits are cached in ``cache_dir()``.

The real dataset cannot be obtained in this project's environment; ``make_synthetic_miniimagenet`` writes a
small copy in the exact layout, which the tests load.
"""

from __future__ import annotations

import csv
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError, diagnose, how_to_get
from .paths import load_cached, resolve_data_dir, save_cached, source_key

SPLITS = ("train", "val", "test")
ORIGINAL_SIZE = 84

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error)


@dataclass(frozen=True, eq=False)
class MiniImageNet:
    """One split of Mini-ImageNet, grouped by class.

    Attributes:
        images: uint8 (C, N, 3, S, S): C classes, N images per class, RGB.
        class_names: the C WordNet ids ('n01532829'), sorted; images within a class keep the csv order.
    """

    images: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]

    @property
    def images_per_class(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]


def load_miniimagenet(
    data_dir: str | Path | None = None, split: str = "train", image_size: int = ORIGINAL_SIZE
) -> MiniImageNet:
    """Load ``split`` ('train', 'val', 'test') at ``image_size`` x ``image_size``.

    Raises DatasetError if the csv or an image is missing or unreadable, or classes hold unequal counts.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    root = resolve_data_dir(data_dir) / "miniimagenet"
    csv_path = root / f"{split}.csv"
    where = how_to_get("miniimagenet")
    by_class = read_split_csv(csv_path, where)
    class_names = sorted(by_class)
    counts = {len(v) for v in by_class.values()}
    if len(counts) != 1:
        raise DatasetError(
            f"Mini-ImageNet file {csv_path}: classes hold unequal numbers of images ({sorted(counts)}), "
            f"expected the same count for every class (600 in the real split); {where}"
        )
    paths = [root / "images" / name for c in class_names for name in by_class[c]]
    for p in paths:
        if not p.is_file():
            raise DatasetError(f"Mini-ImageNet image {p} (listed in {csv_path}) not found; {where}")

    stem = f"miniimagenet-{split}-{image_size}"
    key = source_key([csv_path, *paths], image_size)
    cached = load_cached(stem, key)
    if cached is None:
        images = np.stack([_decode_image(p, image_size, where) for p in paths])
        images = images.reshape(len(class_names), -1, *images.shape[1:])  # (C, N, 3, S, S)
        cached = {"images": images, "class_names": np.array(class_names)}
        save_cached(stem, key, cached)
    return MiniImageNet(images=cached["images"], class_names=[str(c) for c in cached["class_names"]])


def read_split_csv(path: Path, where: str) -> dict[str, list[str]]:
    """``{label: [filename, ...]}`` in file order, from a ``filename,label`` csv."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    except FileNotFoundError as e:
        raise DatasetError(
            f"Mini-ImageNet split file {path} not found: expected {path.name} with header 'filename,label' in "
            f"the data folder's miniimagenet/; {diagnose('miniimagenet', path, path.parent.parent) or where}",
            param="data_dir",
        ) from e
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"Mini-ImageNet split file {path} cannot be read ({e}); {where}") from e
    if not rows or rows[0] != ["filename", "label"]:
        raise DatasetError(
            f"Mini-ImageNet split file {path} starts with {rows[0] if rows else 'nothing'}, "
            f"expected the header 'filename,label'; {where}"
        )
    by_class: dict[str, list[str]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2 or not row[0] or not row[1]:
            raise DatasetError(f"Mini-ImageNet split file {path}, row {line}: {row}, expected 'filename,label'")
        by_class.setdefault(row[1], []).append(row[0])
    if not by_class:
        raise DatasetError(f"Mini-ImageNet split file {path} lists no images; {where}")
    return by_class


def _decode_image(path: Path, image_size: int, where: str) -> np.ndarray:
    """uint8 (3, S, S) RGB."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
            return np.asarray(im).transpose(2, 0, 1)
    except _DECODE_ERRORS as e:
        raise DatasetError(f"Mini-ImageNet image {path} cannot be decoded ({e}); {where}") from e


def make_synthetic_miniimagenet(
    root: Path,
    classes_per_split: tuple[int, int, int] = (6, 3, 3),
    images_per_class: int = 25,
    seed: int = 0,
    *,
    image_size: int = ORIGINAL_SIZE,
) -> Path:
    """Write a small synthetic Mini-ImageNet under ``root/miniimagenet`` in the exact layout; returns that folder.

    Each class is a colour plus a stripe orientation, each image adds noise, so classes are separable. Class
    ids look like WordNet ids (``n9xxxxxxx``) and file names follow the real ``<wnid><8 digits>.jpg``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "miniimagenet"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    k = 0
    for split, n_classes in zip(SPLITS, classes_per_split, strict=True):
        lines = ["filename,label"]
        for _ in range(n_classes):
            wnid = f"n9{k:07d}"
            colour = rng.integers(40, 216, size=3)
            angle = rng.uniform(0, np.pi)
            stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.4)[..., None]  # (S, S, 1)
            for i in range(images_per_class):
                pixels = colour + 40 * stripes + rng.normal(0, 12, size=(image_size, image_size, 3))
                name = f"{wnid}{i + 1:08d}.jpg"
                image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                image.save(folder / "images" / name, quality=95)
                lines.append(f"{name},{wnid}")
            k += 1
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder
