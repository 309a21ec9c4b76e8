"""Omniglot from the two official zips: the real release's counts, names and pixels (equal to the MAML
reference's resize), the decode cache, and DatasetError for missing, truncated, corrupt or miscounted zips."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icml17.data import DatasetError, load_omniglot
from icml17.data import omniglot as omniglot_module
from icml17.data.synthetic import write_omniglot_zip


@pytest.fixture(scope="module")
def omniglot28(real_data_dir):
    return load_omniglot(real_data_dir, image_size=28)


def _member(zip_path: Path, character: str, drawing: int) -> Image.Image:
    """The PNG of ``character`` ('Latin/character01'), drawing 1..20, read straight from the zip."""
    stem = zip_path.stem
    with zipfile.ZipFile(zip_path) as zf:
        prefix, suffix = f"{stem}/{character}/", f"_{drawing:02d}.png"
        (name,) = [n for n in zf.namelist() if n.startswith(prefix) and n.endswith(suffix)]
        with zf.open(name) as f:
            im = Image.open(f)
            im.load()
    return im


def test_real_counts_split_and_names(omniglot28):
    o = omniglot28
    assert o.images.shape == (1623, 20, 28, 28) and o.images.dtype == np.uint8
    assert o.num_characters == 1623 and o.image_size == 28
    assert o.background.dtype == bool and o.background.sum() == 964 and (~o.background).sum() == 659
    assert o.background[:964].all()  # background characters come first
    background_alphabets = {a for a, b in zip(o.alphabets, o.background, strict=True) if b}
    evaluation_alphabets = {a for a, b in zip(o.alphabets, o.background, strict=True) if not b}
    assert len(background_alphabets) == 30 and len(evaluation_alphabets) == 20
    assert {"Latin", "Greek", "Korean"} <= background_alphabets
    assert {"Angelic", "ULOG"} <= evaluation_alphabets
    assert len(o.alphabet_names) == 50
    assert len(set(o.character_names)) == 1623
    assert "Latin/character01" in o.character_names
    assert all(n.startswith(a + "/") for n, a in zip(o.character_names, o.alphabets, strict=True))
    # Deterministic order: sorted by (alphabet, character) within each split.
    for idx in (o.background_indices, o.evaluation_indices):
        keys = [tuple(o.character_names[i].split("/")) for i in idx]
        assert keys == sorted(keys)


def test_real_ink_is_bright_and_binary(omniglot28):
    values = np.unique(omniglot28.images)
    assert values.tolist() == [0, 255]
    ink_fraction = (omniglot28.images == 255).mean()
    assert 0.02 < ink_fraction < 0.3  # ink is the minority: the files' white background became 0


def test_real_28_equals_reference_pil_resize(omniglot28, real_data_dir):
    # The MAML reference calls resize((28, 28), LANCZOS) on the 1-bit PNGs; we must reproduce it exactly.
    zip_path = real_data_dir / "omniglot" / "images_background.zip"
    for character, drawing in [("Latin/character01", 1), ("Greek/character24", 20), ("Korean/character10", 7)]:
        im = _member(zip_path, character, drawing)
        reference = np.asarray(im.resize((28, 28), Image.Resampling.LANCZOS).convert("L")) < 128
        ours = omniglot28.images[omniglot28.character_names.index(character), drawing - 1] == 255
        np.testing.assert_array_equal(ours, reference)


def test_real_originals_at_105(real_data_dir):
    o = load_omniglot(real_data_dir, image_size=105)
    assert o.images.shape == (1623, 20, 105, 105) and o.images.dtype == np.uint8
    zip_path = real_data_dir / "omniglot" / "images_evaluation.zip"
    i = o.character_names.index("ULOG/character26")
    assert not o.background[i]
    for drawing in (1, 20):
        ink = np.asarray(_member(zip_path, "ULOG/character26", drawing).convert("L")) == 0
        np.testing.assert_array_equal(o.images[i, drawing - 1] == 255, ink)


def test_nearest_indices_match_pil_for_other_sizes():
    rng = np.random.default_rng(0)
    image = rng.random((105, 105)) > 0.5
    for size in (14, 28, 50, 84, 105, 210):
        idx = omniglot_module.nearest_indices(105, size)
        pil = np.asarray(Image.fromarray(image).convert("1").resize((size, size), Image.Resampling.NEAREST))
        np.testing.assert_array_equal(image[idx][:, idx], pil)


def test_invalid_image_size(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        load_omniglot(tmp_path, image_size=0)


@pytest.fixture
def tiny_omniglot(tmp_path, monkeypatch):
    """A 3-character Omniglot in the official layout, with the expected counts shrunk to match."""
    monkeypatch.setattr(omniglot_module, "SPLITS", (("images_background", 2, 1), ("images_evaluation", 1, 1)))
    write_omniglot_zip(tmp_path / "omniglot" / "images_background.zip", "images_background", {"Latin": 2})
    write_omniglot_zip(tmp_path / "omniglot" / "images_evaluation.zip", "images_evaluation", {"ULOG": 1}, seed=1)
    return tmp_path


def _fail(*args, **kwargs):
    raise AssertionError("decoder called although a valid cache exists")


def test_second_load_is_served_from_cache(tiny_omniglot, private_cache, monkeypatch):
    first = load_omniglot(tiny_omniglot, image_size=28)
    assert first.images.shape == (3, 20, 28, 28)
    assert first.character_names == ["Latin/character01", "Latin/character02", "ULOG/character01"]
    assert sorted(p.name.split("-")[1] for p in private_cache.glob("omniglot-*.npz")) == ["105", "28"]
    monkeypatch.setattr(omniglot_module, "_decode", _fail)
    again = load_omniglot(tiny_omniglot, image_size=28)
    np.testing.assert_array_equal(again.images, first.images)
    assert again.character_names == first.character_names
    # Another size is derived from the cached originals without decoding.
    assert load_omniglot(tiny_omniglot, image_size=14).images.shape == (3, 20, 14, 14)


def test_changed_source_invalidates_cache(tiny_omniglot, private_cache, monkeypatch):
    before = load_omniglot(tiny_omniglot, image_size=28)
    evaluation = tiny_omniglot / "omniglot" / "images_evaluation.zip"
    write_omniglot_zip(evaluation, "images_evaluation", {"ULOG": 1}, seed=7)
    after = load_omniglot(tiny_omniglot, image_size=28)
    assert not np.array_equal(after.images[2], before.images[2])
    np.testing.assert_array_equal(after.images[:2], before.images[:2])
    assert len(list(private_cache.glob("omniglot-28-*.npz"))) == 1  # the stale cache was removed
    write_omniglot_zip(evaluation, "images_evaluation", {"ULOG": 1}, seed=8)
    monkeypatch.setattr(omniglot_module, "_decode", _fail)
    with pytest.raises(AssertionError, match="decoder called"):
        load_omniglot(tiny_omniglot, image_size=28)


def test_missing_drawing_is_rejected(tiny_omniglot, private_cache):
    evaluation = tiny_omniglot / "omniglot" / "images_evaluation.zip"
    write_omniglot_zip(evaluation, "images_evaluation", {"ULOG": 1}, drawings=19)
    message = r"images_evaluation\.zip.*ULOG/character01 has 19 drawings, expected 20"
    with pytest.raises(DatasetError, match=message):
        load_omniglot(tiny_omniglot)


def test_official_counts_are_enforced(tmp_path, private_cache):
    write_omniglot_zip(tmp_path / "omniglot" / "images_background.zip", "images_background", {"Latin": 2})
    write_omniglot_zip(tmp_path / "omniglot" / "images_evaluation.zip", "images_evaluation", {"ULOG": 1})
    message = r"images_background\.zip: expected 964 characters in 30 alphabets.*found 2 in 1"
    with pytest.raises(DatasetError, match=message):
        load_omniglot(tmp_path)


def test_truncated_zip(synthetic_data_dir, tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    for name in ("images_background.zip", "images_evaluation.zip"):
        head = (synthetic_data_dir / "omniglot" / name).read_bytes()[: 1 << 20]
        (folder / name).write_bytes(head)
    with pytest.raises(DatasetError, match=r"images_background\.zip is not a readable zip.*truncated") as info:
        load_omniglot(tmp_path)
    assert isinstance(info.value.__cause__, zipfile.BadZipFile)
    assert "icml17 data download omniglot" in str(info.value)


def test_corrupt_member_in_intact_zip(tmp_path, monkeypatch, private_cache):
    monkeypatch.setattr(omniglot_module, "SPLITS", (("images_background", 1, 1), ("images_evaluation", 1, 1)))
    write_omniglot_zip(tmp_path / "omniglot" / "images_background.zip", "images_background", {"Latin": 1})
    bad = tmp_path / "omniglot" / "images_evaluation.zip"
    write_omniglot_zip(bad, "images_evaluation", {"ULOG": 1})
    data = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as zf:
        info = zf.infolist()[5]
    start = info.header_offset + 30 + len(info.filename) + 40  # inside the member's data
    data[start : start + 16] = bytes(16)
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"images_evaluation\.zip: member {info.filename} is corrupt"):
        load_omniglot(tmp_path)


def test_missing_zip(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_omniglot(tmp_path)
    message = str(info.value)
    assert "images_background.zip not found" in message
    assert f"icml17 data download omniglot --data-dir {tmp_path}" in message and "ICML17_DATA" in message
