import csv
import os

import numpy as np
import pytest
from PIL import Image

from icml17.data import DatasetError, load_miniimagenet, make_synthetic_miniimagenet
from icml17.data import miniimagenet as mi_module


@pytest.fixture
def synthetic(tmp_path, private_cache):
    make_synthetic_miniimagenet(tmp_path, classes_per_split=(4, 2, 2), images_per_class=5, seed=3)
    return tmp_path


def _csv(root, split):
    with (root / "miniimagenet" / f"{split}.csv").open() as f:
        return list(csv.reader(f))


def test_layout_of_synthetic_copy(synthetic):
    folder = synthetic / "miniimagenet"
    rows = _csv(synthetic, "train")
    assert rows[0] == ["filename", "label"] and len(rows) == 1 + 4 * 5
    name, label = rows[1]
    assert name.startswith(label) and name.endswith(".jpg") and len(name) == len(label) + 8 + 4
    with Image.open(folder / "images" / name) as im:
        assert im.format == "JPEG" and im.size == (84, 84) and im.mode == "RGB"
    all_labels = [{r[1] for r in _csv(synthetic, s)[1:]} for s in ("train", "val", "test")]
    assert [len(s) for s in all_labels] == [4, 2, 2]
    assert not (all_labels[0] & all_labels[1] or all_labels[0] & all_labels[2] or all_labels[1] & all_labels[2])


@pytest.mark.parametrize(("split", "n_classes"), [("train", 4), ("val", 2), ("test", 2)])
def test_load_groups_by_class(synthetic, split, n_classes):
    m = load_miniimagenet(synthetic, split)
    assert m.images.shape == (n_classes, 5, 3, 84, 84) and m.images.dtype == np.uint8
    assert (m.num_classes, m.images_per_class, m.image_size) == (n_classes, 5, 84)
    rows = _csv(synthetic, split)[1:]
    assert m.class_names == sorted({label for _, label in rows})
    # Image j of class c is the j-th csv row of that class, decoded independently here.
    c = n_classes - 1
    files = [f for f, label in rows if label == m.class_names[c]]
    with Image.open(synthetic / "miniimagenet" / "images" / files[2]) as im:
        expected = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(m.images[c, 2], expected)


def test_classes_are_distinguishable(synthetic):
    m = load_miniimagenet(synthetic, "train")
    means = m.images.astype(np.float64).mean(axis=(1, 3, 4))  # (C, 3) mean colour per class
    within = m.images.astype(np.float64).mean(axis=(3, 4)).std(axis=1).max()
    gaps = [np.abs(means[i] - means[j]).max() for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 3 * within


def test_resizes_other_sizes(tmp_path, private_cache):
    make_synthetic_miniimagenet(tmp_path, classes_per_split=(2, 1, 1), images_per_class=3, image_size=100)
    assert load_miniimagenet(tmp_path, "train").images.shape == (2, 3, 3, 84, 84)
    assert load_miniimagenet(tmp_path, "val", image_size=32).images.shape == (1, 3, 3, 32, 32)


def _fail(*args, **kwargs):
    raise AssertionError("decoder called although a valid cache exists")


def test_cache_served_then_invalidated(synthetic, private_cache, monkeypatch):
    first = load_miniimagenet(synthetic, "val")
    assert len(list(private_cache.glob("miniimagenet-val-84-*.npz"))) == 1
    monkeypatch.setattr(mi_module, "_decode_image", _fail)
    again = load_miniimagenet(synthetic, "val")
    np.testing.assert_array_equal(again.images, first.images)
    assert again.class_names == first.class_names
    # Touching one image changes the key: the split is decoded again.
    image = synthetic / "miniimagenet" / "images" / _csv(synthetic, "val")[1][0]
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AssertionError, match="decoder called"):
        load_miniimagenet(synthetic, "val")


def test_missing_csv(tmp_path):
    with pytest.raises(DatasetError, match=r"miniimagenet/train\.csv not found.*filename,label"):
        load_miniimagenet(tmp_path, "train")


def test_missing_image(synthetic):
    name = _csv(synthetic, "test")[3][0]
    (synthetic / "miniimagenet" / "images" / name).unlink()
    with pytest.raises(DatasetError, match=rf"{name} \(listed in .*test\.csv\) not found"):
        load_miniimagenet(synthetic, "test")


def test_corrupt_image(synthetic):
    name = _csv(synthetic, "test")[2][0]
    (synthetic / "miniimagenet" / "images" / name).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match=rf"{name} cannot be decoded") as info:
        load_miniimagenet(synthetic, "test")
    assert isinstance(info.value.__cause__, OSError)


def test_bad_header_and_unequal_classes(synthetic):
    path = synthetic / "miniimagenet" / "val.csv"
    rows = path.read_text().splitlines()
    path.write_text("\n".join(["image,class", *rows[1:]]))
    with pytest.raises(DatasetError, match="expected the header 'filename,label'"):
        load_miniimagenet(synthetic, "val")
    path.write_text("\n".join(rows[:-1]))
    with pytest.raises(DatasetError, match=r"unequal numbers of images \(\[4, 5\]\)"):
        load_miniimagenet(synthetic, "val")
