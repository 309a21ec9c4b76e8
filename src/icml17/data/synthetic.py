"""Synthetic datasets in the official file formats, so that every loader, command and training loop can run
(in tests, or to try the commands) with nothing downloaded.

:func:`write_synthetic_datasets` writes, under one data root, the same files the real datasets ship as::

    omniglot/images_background.zip, images_evaluation.zip     105x105 1-bit PNGs, official layout
    mnist/train-images-idx3-ubyte.gz, ... (the four files)     gzipped IDX
    cifar10-subset/cifar-10-batches-bin/data_batch_1.bin, test_batch.bin, batches.meta.txt
    miniimagenet/train.csv, val.csv, test.csv, images/         (``make_synthetic_miniimagenet``)

The contents are made up but learnable: every class has its own pattern and every example a small random
variation of it, so a classifier or a meta-learner can in principle tell the classes apart.

- Omniglot: each character is three random pen strokes (quadratic Bezier curves); each of its 20 drawings
  moves the control points by a pixel or two and applies a small random rotation, scaling and shift.
- MNIST: each digit is a seven-segment glyph in MNIST's 20x20 box, in 12 styles (slant, width, pen); each
  image picks a style, a shift of up to one pixel each way and an ink intensity (432 variants per digit).
- CIFAR-10: each class is a colour and a stripe direction; each image adds noise and a random stripe phase.

Sizes: the Omniglot and MNIST loaders check the official counts (1623 characters in 30 + 20 alphabets, 60,000
/ 10,000 images) and the MAML Omniglot split takes 1100 / 100 / 423 characters, so those two have the official
counts (about 21 MB on disk together). The CIFAR-10 subset and Mini-ImageNet formats admit any count: 500 / 200
CIFAR images, and 8 / 5 / 5 Mini-ImageNet classes of 25 images (enough for 5-way, 5-shot, 15-query episodes in
every split). All four: about 27 MB.

Everything is seeded and the files are byte-for-byte reproducible (fixed zip and gzip timestamps). Writing all
four takes about 3 s on one CPU core (2 s of it Omniglot's 32,460 PNGs); decoding the synthetic Omniglot once
(``load_omniglot``, then cached) takes about 4 s more.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import cifar10, mnist, omniglot
from .miniimagenet import make_synthetic_miniimagenet

SYNTHETIC_DATASETS = ("omniglot", "mnist", "cifar10-subset", "miniimagenet")
CIFAR10_SIZES = {"train": 500, "test": 200}
MINIIMAGENET_CLASSES = (8, 5, 5)
MINIIMAGENET_IMAGES_PER_CLASS = 25


def write_synthetic_datasets(root: str | Path, seed: int = 0, *, only: Iterable[str] | None = None) -> Path:
    """Write the synthetic datasets under the data root ``root`` (created if needed) and return it.

    ``only`` restricts to some of ``SYNTHETIC_DATASETS`` ('omniglot', 'mnist', 'cifar10-subset',
    'miniimagenet'). Pass the returned folder as ``--data-dir`` / ``data_dir`` to any loader or command.
    """
    names = SYNTHETIC_DATASETS if only is None else tuple(only)
    unknown = sorted(set(names) - set(SYNTHETIC_DATASETS))
    if unknown:
        raise ValueError(f"unknown synthetic datasets {unknown}; choose from {SYNTHETIC_DATASETS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # Independent streams per dataset: asking for a subset does not change any dataset's contents.
    streams = dict(zip(SYNTHETIC_DATASETS, np.random.SeedSequence(seed).spawn(len(SYNTHETIC_DATASETS)), strict=True))
    if "omniglot" in names:
        write_synthetic_omniglot(root, np.random.default_rng(streams["omniglot"]))
    if "mnist" in names:
        write_synthetic_mnist(root, np.random.default_rng(streams["mnist"]))
    if "cifar10-subset" in names:
        write_synthetic_cifar10(root, np.random.default_rng(streams["cifar10-subset"]))
    if "miniimagenet" in names:
        mini_seed = int(np.random.default_rng(streams["miniimagenet"]).integers(2**31))
        make_synthetic_miniimagenet(root, MINIIMAGENET_CLASSES, MINIIMAGENET_IMAGES_PER_CLASS, mini_seed)
    return root


# --- Omniglot ------------------------------------------------------------------------------------------------

_STROKES = 3
_POINTS_PER_STROKE = 40


def write_synthetic_omniglot(root: Path, rng: np.random.Generator) -> Path:
    """Both Omniglot zips with the official counts (964 characters in 30 alphabets, 659 in 20); returns
    ``root/omniglot``. Alphabets are named ``Synthetic_alphabet_01`` .. ``_50``."""
    folder = Path(root) / "omniglot"
    first_alphabet, first_id = 1, 1
    for stem, n_chars, n_alphabets in omniglot.SPLITS:
        per_alphabet = [n_chars // n_alphabets + (i < n_chars % n_alphabets) for i in range(n_alphabets)]
        alphabets = {f"Synthetic_alphabet_{first_alphabet + i:02d}": n for i, n in enumerate(per_alphabet)}
        _write_zip(folder / f"{stem}.zip", _omniglot_members(stem, alphabets, rng, omniglot.N_DRAWINGS, first_id))
        first_alphabet, first_id = first_alphabet + n_alphabets, first_id + n_chars
    return folder


def write_omniglot_zip(
    path: str | Path,
    stem: str,
    alphabets: Mapping[str, int],
    *,
    seed: int = 0,
    drawings: int = omniglot.N_DRAWINGS,
    first_id: int = 1,
) -> Path:
    """One zip in the official layout with any counts (for tests of the loader's checks): ``stem`` is
    'images_background' or 'images_evaluation', ``alphabets`` maps alphabet name -> number of characters, each
    with ``drawings`` drawings; global character ids start at ``first_id``."""
    path = Path(path)
    _write_zip(path, _omniglot_members(stem, alphabets, np.random.default_rng(seed), drawings, first_id))
    return path


def _omniglot_members(
    stem: str, alphabets: Mapping[str, int], rng: np.random.Generator, drawings: int, first_id: int
) -> list[tuple[str, bytes]]:
    """(name, PNG bytes) of every drawing: ``stem/<alphabet>/characterNN/XXXX_YY.png``, XXXX the global id."""
    members = []
    global_id = first_id
    for alphabet, count in alphabets.items():
        pngs = _png_1bit(_character_drawings(rng, count, drawings))
        for c in range(count):
            for d in range(drawings):
                name = f"{stem}/{alphabet}/character{c + 1:02d}/{global_id:04d}_{d + 1:02d}.png"
                members.append((name, pngs[c * drawings + d]))
            global_id += 1
    return members


def _character_drawings(rng: np.random.Generator, characters: int, drawings: int) -> np.ndarray:
    """bool (characters * drawings, 105, 105), True = ink: each character's strokes drawn ``drawings`` times,
    each time with small variations."""
    size, n, m = omniglot.ORIGINAL_SIZE, drawings, characters * drawings
    control = rng.uniform(22, 83, size=(characters, 1, _STROKES, 3, 2))  # the characters
    control = control + rng.normal(0, 1.2, size=(characters, n, _STROKES, 3, 2))  # per drawing: wobble
    control = control.reshape(m, _STROKES, 3, 1, 2)
    t = np.linspace(0, 1, _POINTS_PER_STROKE)[:, None]
    p0, p1, p2 = control[:, :, 0], control[:, :, 1], control[:, :, 2]
    points = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2).reshape(m, -1, 2)
    # Per drawing: a small rotation, scaling and shift about the centre.
    angle = rng.normal(0, 0.06, size=m)
    scale = rng.uniform(0.92, 1.08, size=m)
    rotation = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], -1).reshape(m, 2, 2)
    centre = (size - 1) / 2
    points = (points - centre) @ (rotation * scale[:, None, None]) + centre + rng.uniform(-3, 3, size=(m, 1, 2))
    pixels = np.clip(np.rint(points), 1, size - 2).astype(np.intp)
    ink = np.zeros((m, size, size), dtype=bool)
    ink[np.arange(m)[:, None], pixels[..., 1], pixels[..., 0]] = True
    # The pen is 3 pixels wide: dilate by a 3x3 square (points stay one pixel inside the border).
    ink[:, 1:] |= ink[:, :-1].copy()
    ink[:, :-1] |= ink[:, 1:].copy()
    ink[:, :, 1:] |= ink[:, :, :-1].copy()
    ink[:, :, :-1] |= ink[:, :, 1:].copy()
    return ink


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_1bit(ink: np.ndarray) -> list[bytes]:
    """One 1-bit greyscale PNG per image of ink (N, H, W): white (1) background, black ink, as in the
    official Omniglot release."""
    n, height, width = ink.shape
    rows = np.packbits(~ink, axis=2)  # 1 = white; rows padded to bytes
    raw = np.concatenate([np.zeros((n, height, 1), np.uint8), rows], axis=2)  # filter type 0 before each row
    head = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    tail = _png_chunk(b"IEND", b"")
    return [head + _png_chunk(b"IDAT", zlib.compress(r.tobytes(), 1)) + tail for r in raw]


def _write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    """A zip of stored (uncompressed: PNGs are compressed already) members with a fixed timestamp.

    Written directly in the zip format (local headers, central directory, end record), which is several times
    faster than ``zipfile`` for tens of thousands of small members; ``zipfile`` reads it back.
    """
    dos_time, dos_date = 0, (1980 - 1980) << 9 | 1 << 5 | 1  # 1980-01-01 00:00:00
    path.parent.mkdir(parents=True, exist_ok=True)
    local, central = bytearray(), bytearray()
    for name, data in members:
        encoded = name.encode("ascii")
        crc = zlib.crc32(data)
        common = struct.pack("<HHHHHIIIH", 20, 0, 0, dos_time, dos_date, crc, len(data), len(data), len(encoded))
        central += b"PK\x01\x02" + struct.pack("<H", 20) + common + struct.pack("<HHHHII", 0, 0, 0, 0, 0, len(local))
        central += encoded
        local += b"PK\x03\x04" + common + struct.pack("<H", 0) + encoded + data
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))


# --- MNIST ---------------------------------------------------------------------------------------------------

# Seven-segment digits: segments a (top), b (top right), c (bottom right), d (bottom), e (bottom left),
# f (top left), g (middle).
_SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
             8: "abcdefg", 9: "abcdfg"}  # fmt: skip
_SEGMENT_ENDS = {"a": ((0, 0), (1, 0)), "b": ((1, 0), (1, 1)), "c": ((1, 1), (1, 2)), "d": ((0, 2), (1, 2)),
                 "e": ((0, 1), (0, 2)), "f": ((0, 0), (0, 1)), "g": ((0, 1), (1, 1))}  # fmt: skip
_MNIST_STYLES = [(slant, width, pen) for slant in (0.0, 0.2, 0.35) for width in (8, 11) for pen in (2, 3)]
_MNIST_INTENSITIES = (170, 200, 230, 255)


def _digit_templates() -> np.ndarray:
    """uint8 (10, variants, 28, 28): each digit in every style (inside MNIST's central 20x20 box), shifted by
    up to one pixel each way and drawn at several ink intensities."""
    styles = np.zeros((10, len(_MNIST_STYLES), 28, 28), dtype=np.float32)
    for digit, segments in _SEGMENTS.items():
        for s, (slant, width, pen) in enumerate(_MNIST_STYLES):
            im = Image.new("L", (28, 28), 0)
            draw = ImageDraw.Draw(im)
            top, height = 6, 16
            x0 = 14 - width / 2

            def at(u: float, v: float, top=top, height=height, x0=x0, width=width, slant=slant) -> tuple[float, float]:
                y = top + v * height / 2
                return x0 + u * width + slant * (top + height / 2 - y), y

            for seg in segments:
                (u0, v0), (u1, v1) = _SEGMENT_ENDS[seg]
                draw.line([at(u0, v0), at(u1, v1)], fill=255, width=pen)
            im = im.filter(ImageFilter.GaussianBlur(0.5))  # grey edges, like MNIST's anti-aliasing
            styles[digit, s] = np.where(np.asarray(im) < 16, 0, np.asarray(im))  # no faint blur tails
    # The glyphs keep 2 pixels away from the frame, so rolling them by one pixel wraps no ink around.
    shifted = [np.roll(styles, (dy, dx), axis=(2, 3)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    variants = np.stack(shifted, 2)[:, :, :, None] * (np.array(_MNIST_INTENSITIES, np.float32) / 255)[:, None, None]
    return np.rint(variants).astype(np.uint8).reshape(10, -1, 28, 28)


def write_synthetic_mnist(root: Path, rng: np.random.Generator) -> Path:
    """The four gzipped IDX files with 60,000 / 10,000 images; returns ``root/mnist``."""
    folder = Path(root) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    templates = _digit_templates()
    for split, (images_name, labels_name) in mnist.FILES.items():
        n = mnist.SIZES[split]
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)  # balanced classes in random order
        images = templates[labels, rng.integers(0, templates.shape[1], size=n)]
        _write_idx(folder / images_name, mnist.IMAGES_MAGIC, images)
        _write_idx(folder / labels_name, mnist.LABELS_MAGIC, labels)
    return folder


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as f:
        f.write(header)
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


# --- CIFAR-10 ------------------------------------------------------------------------------------------------


def write_synthetic_cifar10(root: Path, rng: np.random.Generator) -> Path:
    """A CIFAR-10 subset in the binary format (500 train / 200 test records); returns its batches folder."""
    folder = cifar10.cifar10_dir(root, "subset")
    folder.mkdir(parents=True, exist_ok=True)
    colours = rng.uniform(40, 215, size=(10, 3, 1, 1))
    angles = rng.uniform(0, np.pi, size=10)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    for split, name in (("train", "data_batch_1.bin"), ("test", "test_batch.bin")):
        n = CIFAR10_SIZES[split]
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        a = angles[labels][:, None, None]
        stripes = np.sin((np.cos(a) * xx + np.sin(a) * yy) * 0.8 + phase)[:, None]  # (n, 1, 32, 32)
        pixels = colours[labels] + 35 * stripes + rng.normal(0, 10, size=(n, 3, 32, 32))
        records = np.concatenate([labels[:, None], np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, -1)], 1)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("".join(f"{c}\n" for c in cifar10.CIFAR10_CLASSES))
    return folder
