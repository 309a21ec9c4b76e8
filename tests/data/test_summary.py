"""``describe_datasets`` (behind ``icml17 data info``): what is found, missing or damaged, never raising."""

import gzip
import shutil

import pytest

from icml17.data import describe_datasets, make_synthetic_miniimagenet


def test_real_data(real_data_dir):
    report = {e["name"]: e for e in describe_datasets(real_data_dir)}
    assert report["omniglot"]["found"] and report["omniglot"]["status"] == "found"
    assert report["omniglot"]["summary"].startswith("1623 characters x 20 drawings")
    assert report["mnist"]["summary"] == "60,000 train / 10,000 test images of 28x28"
    assert report["cifar10-subset"]["summary"] == "4,000 train / 1,000 test images of 3x32x32"
    assert report["cifar10-subset"]["size_bytes"] == 12_292_000 + 3_073_000 + 60
    cifar10 = report["cifar10"]
    assert cifar10["status"] == "missing" and not cifar10["found"] and cifar10["summary"] is None
    assert "icml17 data download cifar10" in cifar10["how_to_get"]
    assert report["miniimagenet"]["status"] == "missing"


def test_synthetic_data(synthetic_data_dir):
    report = {e["name"]: e for e in describe_datasets(synthetic_data_dir)}
    assert {n: report[n]["status"] for n in ("omniglot", "mnist", "cifar10-subset", "miniimagenet", "cifar10")} == {
        "omniglot": "found",
        "mnist": "found",
        "cifar10-subset": "found",
        "miniimagenet": "found",
        "cifar10": "missing",
    }
    assert report["mnist"]["summary"] == "60,000 train / 10,000 test images of 28x28"
    assert report["cifar10-subset"]["summary"] == "500 train / 200 test images of 3x32x32"


def test_empty_and_damaged(tmp_path):
    report = describe_datasets(tmp_path)
    assert {e["status"] for e in report if e["name"] != "digits-fallback"} == {"missing"}
    assert all(e["how_to_get"] for e in report)
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"junk")
    make_synthetic_miniimagenet(tmp_path, classes_per_split=(2, 1, 1), images_per_class=2)
    report = {e["name"]: e for e in describe_datasets(tmp_path)}
    assert report["mnist"]["status"] == "invalid" and not report["mnist"]["found"]
    assert "train-images-idx3-ubyte.gz" in report["mnist"]["summary"]
    assert report["miniimagenet"]["found"]
    assert report["miniimagenet"]["summary"] == "train 2 classes x 2, val 1 classes x 2, test 1 classes x 2"


@pytest.fixture
def mnist_copy(synthetic_data_dir, tmp_path):
    shutil.copytree(synthetic_data_dir / "mnist", tmp_path / "mnist")
    return tmp_path / "mnist"


def _mnist_entry(data_dir):
    return {e["name"]: e for e in describe_datasets(data_dir)}["mnist"]


def test_half_truncated_mnist_is_damaged_not_found(mnist_copy, tmp_path):
    """The defect: the header promised 10,000 images, half the payload was there, and `data info` said found."""
    path = mnist_copy / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: 16 + 5_000 * 784]))  # a well-formed gzip of half the IDX file
    entry = _mnist_entry(tmp_path)
    assert entry["status"] == "invalid" and not entry["found"]
    summary = entry["summary"]
    assert "t10k-images-idx3-ubyte.gz is damaged" in summary
    assert "promises 10,000 images (7,840,000 bytes after the header) but it holds 3,920,000" in summary
    assert f"Download it again: get it with `icml17 data download mnist --data-dir {tmp_path}`" in summary


def test_cut_gzip_stream_is_truncated(mnist_copy, tmp_path):
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a download cut half-way: the gzip stream has no end
    entry = _mnist_entry(tmp_path)
    assert entry["status"] == "invalid"
    assert "train-labels-idx1-ubyte.gz is truncated" in entry["summary"]
    assert "icml17 data download mnist" in entry["summary"]


def test_mnist_of_unofficial_size_is_not_found(mnist_copy, tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = gzip.decompress((mnist_copy / name).read_bytes())
        header = 16 if "images" in name else 8
        n = 100
        head = raw[:4] + n.to_bytes(4, "big") + raw[8:header]
        (mnist_copy / name).write_bytes(gzip.compress(head + raw[header : header + n * (784 if header == 16 else 1)]))
    entry = _mnist_entry(tmp_path)
    assert entry["status"] == "invalid" and "holds 100 images, expected the official 10,000" in entry["summary"]
