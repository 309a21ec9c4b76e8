"""Omniglot (Lake et al. 2015) from the two official zips, as used for few-shot classification in MAML
(Finn et al. 2017, section 5.2).

Pixel convention: ink = 255 on a 0 background. The files are black ink on white; we invert, as the MAML
reference code does (``1 - x / 255``), so ``images / 255`` gives ink = 1.0.

Resizing: the MAML reference resizes with PIL's LANCZOS filter, which Pillow replaces by NEAREST for 1-bit
images. We apply the same nearest-neighbour map (source pixel ``floor((i + 0.5) * 105 / S)``, checked against
PIL in the tests), so 28x28 images equal the reference's pixel for pixel and stay binary.

Character order: background characters first, then evaluation; within each, sorted by alphabet name then
character folder. (The global ids in the file names follow another order; we do not use them.)
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError, how_to_get, not_found
from .paths import load_cached, resolve_data_dir, save_cached, source_key

ORIGINAL_SIZE = 105
N_DRAWINGS = 20
# (zip stem, characters, alphabets) of the official release.
SPLITS = (("images_background", 964, 30), ("images_evaluation", 659, 20))
N_CHARACTERS = sum(n for _, n, _ in SPLITS)

# What PIL and zipfile raise on damaged members; caught and re-raised as DatasetError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, zipfile.BadZipFile)


@dataclass(frozen=True, eq=False)
class Omniglot:
    """All 1623 Omniglot characters x 20 drawings.

    Attributes:
        images: uint8 (1623, 20, S, S), ink = 255, background = 0.
        alphabets: per character, its alphabet ('Latin').
        character_names: per character, 'Alphabet/characterNN' ('Latin/character01').
        background: bool (1623,), True for the 964 characters of images_background.
    """

    images: np.ndarray
    alphabets: list[str]
    character_names: list[str]
    background: np.ndarray

    @property
    def num_characters(self) -> int:
        return self.images.shape[0]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def alphabet_names(self) -> list[str]:
        """Distinct alphabets in character order (30 background, then 20 evaluation)."""
        return list(dict.fromkeys(self.alphabets))

    @property
    def background_indices(self) -> np.ndarray:
        return np.flatnonzero(self.background)

    @property
    def evaluation_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.background)


def omniglot_files(data_dir: str | Path | None = None) -> list[Path]:
    """Paths of the two zips under ``<data_dir>/omniglot/`` (they may not exist)."""
    root = resolve_data_dir(data_dir) / "omniglot"
    return [root / f"{stem}.zip" for stem, _, _ in SPLITS]


def load_omniglot(data_dir: str | Path | None = None, image_size: int = 28) -> Omniglot:
    """Load Omniglot at ``image_size`` x ``image_size`` (105 keeps the originals).

    The first call decodes the zips (about 10 s) and caches the result in ``cache_dir()``; later calls load
    the cache. Raises DatasetError if a zip is missing, damaged, or does not hold 1623 x 20 drawings.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    files = omniglot_files(data_dir)
    for f in files:
        if not f.is_file():
            raise not_found("Omniglot file", f, "omniglot", f.parent.parent)
    key = source_key(files)
    cached = load_cached(f"omniglot-{image_size}", key)
    if cached is not None:
        return _from_arrays(cached)

    original = load_cached(f"omniglot-{ORIGINAL_SIZE}", key)
    if original is None:
        original = _decode(files)
        save_cached(f"omniglot-{ORIGINAL_SIZE}", key, original)
    if image_size != ORIGINAL_SIZE:
        ink = np.unpackbits(original["ink_bits"], count=int(np.prod(original["shape"])))
        ink = ink.reshape(tuple(original["shape"]))
        idx = nearest_indices(ORIGINAL_SIZE, image_size)
        ink = ink[:, :, idx][:, :, :, idx]
        resized = {**original, "ink_bits": np.packbits(ink), "shape": np.array(ink.shape)}
        save_cached(f"omniglot-{image_size}", key, resized)
        return _from_arrays(resized)
    return _from_arrays(original)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Source pixel index for each target pixel under PIL's NEAREST resize: floor((i + 0.5) * source / target)."""
    return (2 * np.arange(target) + 1) * source // (2 * target)


def _from_arrays(a: dict[str, np.ndarray]) -> Omniglot:
    shape = tuple(int(s) for s in a["shape"])
    images = np.unpackbits(a["ink_bits"], count=int(np.prod(shape))).reshape(shape)
    images *= 255  # {0, 1} -> {0, 255} in place
    return Omniglot(
        images=images,
        alphabets=[str(s) for s in a["alphabets"]],
        character_names=[str(s) for s in a["character_names"]],
        background=a["background"].astype(bool),
    )


def _decode(files: list[Path]) -> dict[str, np.ndarray]:
    """Decode both zips into packed ink bits (1623, 20, 105, 105) plus names."""
    inks, names, background = [], [], []
    for path, (stem, n_chars, n_alphabets) in zip(files, SPLITS, strict=True):
        ink, chars = _decode_zip(path, stem, n_chars, n_alphabets)
        inks.append(ink)
        names += chars
        background += [stem == "images_background"] * len(chars)
    ink = np.concatenate(inks)
    return {
        "ink_bits": np.packbits(ink),
        "shape": np.array(ink.shape),
        "alphabets": np.array([n.split("/")[0] for n in names]),
        "character_names": np.array(names),
        "background": np.array(background),
    }


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open an Omniglot zip, turning zipfile's errors into DatasetError."""
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(
            f"Omniglot file {path} is not a readable zip ({e}); it may be truncated. "
            f"Expected the official {path.name}; {how_to_get('omniglot', path.parent.parent)}"
        ) from e


def _decode_zip(path: Path, stem: str, n_chars: int, n_alphabets: int) -> tuple[np.ndarray, list[str]]:
    where = how_to_get("omniglot", path.parent.parent)
    with open_zip(path) as zf:
        members = index_zip(zf, path, stem, n_chars, n_alphabets)
        ink = np.empty((n_chars, N_DRAWINGS, ORIGINAL_SIZE, ORIGINAL_SIZE), dtype=bool)
        for c, drawings in enumerate(members.values()):
            for d, info in enumerate(drawings):
                ink[c, d] = _decode_png(zf, info, path, where)
    return ink, [f"{a}/{c}" for a, c in members]


def index_zip(
    zf: zipfile.ZipFile, path: Path, stem: str, n_chars: int, n_alphabets: int
) -> dict[tuple[str, str], list[zipfile.ZipInfo]]:
    """``{(alphabet, character): [20 drawings]}`` sorted, after checking the counts of the official layout."""
    where = how_to_get("omniglot", path.parent.parent)
    members: dict[tuple[str, str], list[zipfile.ZipInfo]] = {}
    for info in zf.infolist():
        parts = info.filename.split("/")
        if len(parts) == 4 and parts[0] == stem and parts[3].endswith(".png"):
            members.setdefault((parts[1], parts[2]), []).append(info)
    n_found_alphabets = len({a for a, _ in members})
    if len(members) != n_chars or n_found_alphabets != n_alphabets:
        raise DatasetError(
            f"Omniglot file {path}: expected {n_chars} characters in {n_alphabets} alphabets under "
            f"{stem}/<Alphabet>/characterNN/, found {len(members)} in {n_found_alphabets}; {where}"
        )
    for char, drawings in members.items():
        if len(drawings) != N_DRAWINGS:
            raise DatasetError(
                f"Omniglot file {path}: character {'/'.join(char)} has {len(drawings)} drawings, "
                f"expected {N_DRAWINGS}; {where}"
            )
    return {char: sorted(members[char], key=lambda i: i.filename) for char in sorted(members)}


def _decode_png(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(zf.read(info))) as im:
            if im.size != (ORIGINAL_SIZE, ORIGINAL_SIZE):
                raise DatasetError(
                    f"Omniglot file {path}: {info.filename} is {im.size[0]}x{im.size[1]}, "
                    f"expected {ORIGINAL_SIZE}x{ORIGINAL_SIZE}; {where}"
                )
            # Black ink on white: ink where the grey level is dark. convert('L') keeps 1-bit images exact.
            return np.asarray(im.convert("L")) < 128
    except _DECODE_ERRORS as e:
        raise DatasetError(f"Omniglot file {path}: member {info.filename} is corrupt ({e}); {where}") from e
