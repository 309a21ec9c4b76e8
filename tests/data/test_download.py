"""Downloads against a local HTTP server on 127.0.0.1 that serves the synthetic files (or damaged copies); the
real files' canonical MNIST checksums are checked when the real datasets are present."""

import functools
import gzip
import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from icml17.data import DatasetError, download_dataset, load_cifar10, load_mnist
from icml17.data import cifar10 as cifar10_module
from icml17.data import download as download_module


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(directory) -> base URL`` of a server on 127.0.0.1, stopped after the test."""
    servers = []

    def start(directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


def _leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.startswith(".")]


@pytest.fixture
def synthetic_mnist_md5(synthetic_data_dir, monkeypatch):
    """The download's MD5 table pointed at the synthetic MNIST, so that the check itself is exercised."""
    table = {
        raw: hashlib.md5(gzip.decompress((synthetic_data_dir / "mnist" / f"{raw}.gz").read_bytes())).hexdigest()
        for raw in download_module.MNIST_MD5
    }
    monkeypatch.setattr(download_module, "MNIST_MD5", table)
    return table


def _download_mnist_and_compare(source: Path, serve, tmp_path: Path) -> None:
    """Download MNIST from a local server over ``source`` and check the files and decoded arrays match it."""
    folder = download_dataset("mnist", tmp_path, base_url=f"{serve(source)}/mnist")
    assert folder == tmp_path / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(os.listdir(source / "mnist"))
    for ours, ref in zip(load_mnist(tmp_path, "test"), load_mnist(source, "test")):
        np.testing.assert_array_equal(ours, ref)


def test_real_mnist_matches_the_canonical_checksums(real_data_dir, serve, tmp_path):
    _download_mnist_and_compare(real_data_dir, serve, tmp_path)


def test_mnist(synthetic_data_dir, synthetic_mnist_md5, serve, tmp_path):
    _download_mnist_and_compare(synthetic_data_dir, serve, tmp_path)
    # Present and valid: nothing is fetched again, so a dead host does not matter.
    download_dataset("mnist", tmp_path, base_url=_closed_port_url())
    assert _leftovers(tmp_path) == []


def test_omniglot(synthetic_data_dir, serve, tmp_path, monkeypatch):
    url = serve(synthetic_data_dir)
    monkeypatch.setenv("ICML17_DATA", str(tmp_path))  # data_dir=None resolves through the environment
    folder = download_dataset("omniglot", None, base_url=f"{url}/omniglot/")
    for name in ("images_background.zip", "images_evaluation.zip"):
        assert (folder / name).read_bytes() == (synthetic_data_dir / "omniglot" / name).read_bytes()
    assert _leftovers(tmp_path) == []


def test_corrupt_mnist_rejected(synthetic_data_dir, synthetic_mnist_md5, serve, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(synthetic_data_dir / "mnist", served)
    truncated = served / "train-labels-idx1-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:10_000])
    target = tmp_path / "data"
    message = r"train-labels-idx1-ubyte\.gz failed its check, not kept.*not a readable gzip"
    with pytest.raises(DatasetError, match=message):
        download_dataset("mnist", target, base_url=serve(served))
    assert not (target / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    assert _leftovers(target) == []
    # A well-formed gzip with the wrong content fails the MD5 check.
    truncated.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(8)))
    with pytest.raises(DatasetError, match=rf"MD5 .*expected {synthetic_mnist_md5['train-labels-idx1-ubyte']}"):
        download_dataset("mnist", target, base_url=serve(served))


def test_corrupt_omniglot_rejected(synthetic_data_dir, serve, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    whole = (synthetic_data_dir / "omniglot" / "images_background.zip").read_bytes()
    (served / "images_background.zip").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match=r"images_background\.zip failed its check.*not a readable zip"):
        download_dataset("omniglot", tmp_path / "data", base_url=serve(served))
    assert not (tmp_path / "data" / "omniglot" / "images_background.zip").exists()


def test_network_failures(tmp_path, serve):
    message = r"could not download http://127\.0\.0\.1:\d+/train-images-idx3-ubyte\.gz.*by hand"
    with pytest.raises(DatasetError, match=message):
        download_dataset("mnist", tmp_path, base_url=_closed_port_url())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"could not download .*images_background\.zip \(HTTP Error 404"):
        download_dataset("omniglot", tmp_path, base_url=serve(empty))
    assert _leftovers(tmp_path) == []


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="miniimagenet"):
        download_dataset("miniimagenet", tmp_path)


def _cifar_tarball(path, data_dir, records, extra=None, skip=()):
    """A cifar-10-binary.tar.gz in the official layout whose batches hold ``records`` records each."""
    raw = (data_dir / "cifar10-subset" / "cifar-10-batches-bin" / "data_batch_1.bin").read_bytes()
    members = {f"data_batch_{i}.bin": raw[(i - 1) * records * 3073 : i * records * 3073] for i in range(1, 6)}
    members["test_batch.bin"] = raw[-records * 3073 :]
    members["batches.meta.txt"] = b"airplane\n"
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            if name in skip:
                continue
            info = tarfile.TarInfo(name if name.startswith("..") else f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_cifar10_extracts_and_loads(synthetic_data_dir, serve, tmp_path, monkeypatch):
    # The real archive holds 5 x 10,000 training records; shrink the expectation to test the code path.
    monkeypatch.setattr(cifar10_module, "FULL_BATCH_RECORDS", 10)
    served = tmp_path / "served"
    served.mkdir()
    _cifar_tarball(served / "cifar-10-binary.tar.gz", synthetic_data_dir, 10, extra={"../escape.bin": b"x"})
    folder = download_dataset("cifar10", tmp_path / "data", base_url=serve(served))
    assert sorted(p.name for p in (folder / "cifar-10-batches-bin").iterdir()) == [
        "batches.meta.txt", "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
        "data_batch_5.bin", "test_batch.bin",
    ]  # fmt: skip
    assert not (tmp_path / "escape.bin").exists() and not (tmp_path / "data" / "escape.bin").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-bin"]  # archive and staging removed
    x, y = load_cifar10(tmp_path / "data", "train")  # the full copy is preferred when present
    x_sub, y_sub = load_cifar10(synthetic_data_dir, "train")
    assert x.shape == (50, 3, 32, 32)
    np.testing.assert_array_equal(x, x_sub[:50])
    np.testing.assert_array_equal(y, y_sub[:50])


def test_cifar10_incomplete_archive_rejected(synthetic_data_dir, serve, tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10_module, "FULL_BATCH_RECORDS", 10)
    served = tmp_path / "served"
    served.mkdir()
    _cifar_tarball(served / "cifar-10-binary.tar.gz", synthetic_data_dir, 10, skip=("data_batch_4.bin",))
    with pytest.raises(DatasetError, match=r"lacks cifar-10-batches-bin/data_batch_4\.bin"):
        download_dataset("cifar10", tmp_path / "data", base_url=serve(served))
    _cifar_tarball(served / "cifar-10-binary.tar.gz", synthetic_data_dir, 9)
    with pytest.raises(DatasetError, match=r"data_batch_1\.bin holds 9 records, expected 10"):
        download_dataset("cifar10", tmp_path / "data", base_url=serve(served))
    assert list((tmp_path / "data" / "cifar10").iterdir()) == []
