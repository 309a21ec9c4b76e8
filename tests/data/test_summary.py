from icml17.data import describe_datasets, make_synthetic_miniimagenet


def test_shared_data(shared_data_dir):
    report = {e["name"]: e for e in describe_datasets(shared_data_dir)}
    assert report["omniglot"]["found"] and report["omniglot"]["status"] == "found"
    assert report["omniglot"]["summary"].startswith("1623 characters x 20 drawings")
    assert report["mnist"]["summary"] == "60,000 train / 10,000 test images of 28x28"
    assert report["cifar10-subset"]["summary"] == "4,000 train / 1,000 test images of 3x32x32"
    assert report["cifar10-subset"]["size_bytes"] == 12_292_000 + 3_073_000 + 60
    cifar10 = report["cifar10"]
    assert cifar10["status"] == "missing" and not cifar10["found"] and cifar10["summary"] is None
    assert "icml17 data download cifar10" in cifar10["how_to_get"]
    assert report["miniimagenet"]["status"] == "missing"


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
