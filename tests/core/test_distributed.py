"""torch.distributed with two gloo processes on this machine: the same results as one process, rank-0 I/O,
and a killed rank that ends the run cleanly and resumes.

The expected values come from a plain single-process run of the same global batches (the definition of data
parallelism), not from the distributed code."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from icml17.core.checkpoint import load_checkpoint
from icml17.core.loop import read_metrics

SCRIPT = Path(__file__).with_name("distributed_script.py")
SRC = Path(__file__).resolve().parents[2] / "src"
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "ICML17_DIST_TIMEOUT": "30"}

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")


def _single(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout
    )


def _torchrun(*args, wait=True, timeout=300):
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node=2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        str(SCRIPT),
        *map(str, args),
    ]
    proc = subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    if wait:
        out, err = proc.communicate(timeout=timeout)
        proc.out, proc.err = out, err
    return proc


def _state(run_dir, key):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"][key]


@pytest.mark.parametrize("system, key", [("maml", "engine"), ("pixelcnn", "model")])
def test_two_processes_match_one_process_in_float64(tmp_path, system, key):
    one, two = tmp_path / "one", tmp_path / "two"
    r = _single(system, one, "--iterations", 3, "--float64")
    assert r.returncode == 0, r.stderr
    p = _torchrun(system, two, "--iterations", 3, "--float64")
    assert p.returncode == 0, p.err
    a, b = _state(one, key), _state(two, key)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == torch.float64
        torch.testing.assert_close(b[name], a[name], rtol=1e-6, atol=1e-9, msg=name)
    la, lb = read_metrics(one), read_metrics(two)
    assert [r["step"] for r in la] == [r["step"] for r in lb]  # rank 0 alone wrote one log, step by step
    for ra, rb in zip(la, lb):
        for k, v in ra.items():
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, rel=1e-6, abs=1e-9), (ra["step"], k)
    assert load_checkpoint(two / "checkpoints" / "last.pt")["world_size"] == 2


def test_sharded_hessian_products_equal_full_data_products(tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    r = _single("curvature", one)
    assert r.returncode == 0, r.stderr
    p = _torchrun("curvature", two)
    assert p.returncode == 0, p.err
    a, b = torch.load(one), torch.load(two)
    torch.testing.assert_close(b["hv"], a["hv"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(b["top"], a["top"], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(b["trace"], a["trace"], rtol=1e-10, atol=1e-12)


def test_killed_rank_stops_the_other_and_the_rerun_resumes_to_the_same_result(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    ref = _torchrun("maml", reference, "--iterations", 12, "--cli")
    assert ref.returncode == 0, ref.err
    # rank 0 alone prints: each evaluation line and the result line once, not once per process
    assert ref.out.count("] step 12:") == 1 and ref.out.count("12/12 iterations") == 1, ref.out
    proc = _torchrun("maml", killed, "--iterations", 12, "--sleep", "0.4", "--cli", wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoints" / "last.pt").exists():
        time.sleep(0.1)
    time.sleep(0.5)
    # kill -9 the rank-1 worker (a child of torchrun running the script)
    children = subprocess.run(["pgrep", "-f", f"{SCRIPT} maml {killed}"], capture_output=True, text=True).stdout.split()
    workers = [int(c) for c in children if int(c) != proc.pid]
    assert len(workers) == 2, children
    ranks = {}
    for pid in workers:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ranks[int(next(e for e in env if e.startswith(b"RANK=")).split(b"=")[1])] = pid
    t0 = time.time()
    os.kill(ranks[1], signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert time.time() - t0 < 90  # bounded: no hang
    assert proc.returncode != 0
    assert "a peer process failed or timed out" in err or "SIGTERM received" in err, err[-2000:]
    step = load_checkpoint(killed / "checkpoints" / "last.pt")["step"]  # intact, loadable
    assert 0 < step < 12
    again = _torchrun("maml", killed, "--iterations", 12, "--cli")
    assert again.returncode == 0, again.err
    ra, rb = read_metrics(reference), read_metrics(killed)
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    for x, y in zip(ra, rb):
        for k, v in x.items():
            if isinstance(v, float):
                assert y[k] == pytest.approx(v, rel=1e-5), (x["step"], k)


def test_ranks_started_with_different_configs_are_refused_before_work(tmp_path):
    p = _torchrun("maml", tmp_path / "run", "--iterations", 4, "--cli", "--skew", timeout=180)
    assert p.returncode != 0
    assert "were started with a different config from rank 0" in p.err, p.err[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_meta_batch_that_does_not_split_is_refused_before_work(tmp_path):
    code = (
        "from icml17.core import distributed as d\n"
        "import sys\n"
        "d._CONTEXT = d.Context(rank=0, world_size=3)\n"
        "try:\n    d.check_divisible('meta_batch', 25)\nexcept d.DistributedError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert "meta_batch=25 is not divisible by the 3 processes; use meta_batch=24" in out.stdout


def test_nccl_on_cpu_is_refused(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = (
        "import os\nos.environ.update(WORLD_SIZE='2', RANK='0', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', "
        "MASTER_PORT='29999')\nfrom icml17.core import distributed as d\n"
        "try:\n    d.setup('nccl')\nexcept d.DistributedError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert "nccl backend needs GPUs" in out.stdout


def test_sharpness_measure_under_torchrun_equals_one_process(tmp_path, synthetic_data_dir):
    """The CLI shares the batches out over the ranks and all-reduces: the same measures as one process."""
    import json

    args = [
        "-m",
        "icml17",
        "sharpness",
        "measure",
        "--model",
        "mlp-784-32-10",
        "--examples",
        "120",
        "--batch-size",
        "20",
        "--measures",
        "loss,lambda_max,trace",
        "--probes",
        "8",
        "--dtype",
        "float64",
        "--data-dir",
        str(synthetic_data_dir),
        "--out",
    ]
    one = subprocess.run(
        [sys.executable, *args, str(tmp_path / "one.json")], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            str(TORCHRUN),
            "--nproc_per_node=2",
            "--master_port",
            str(29700 + os.getpid() % 200),
            *args,
            str(tmp_path / "two.json"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    for key in ("loss", "lambda_max", "trace"):
        assert b[key] == pytest.approx(a[key], rel=1e-9), key
