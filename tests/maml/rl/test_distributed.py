"""MAML-RL under torchrun with two gloo processes on this machine: the same parameters and metrics as one process
(float64), the stop of sharded training lanes agreed on every rank's count, a meta-batch that does not divide
refused before any work, and a killed rank that ends the run, whose rerun resumes to the same result.

The expected values come from a plain single-process run of the same command (the definition of sharding the
meta-batch), not from the distributed code."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from icml17.core.checkpoint import load_checkpoint
from icml17.core.loop import read_metrics

SCRIPT = Path(__file__).with_name("distributed_script.py")
SRC = Path(__file__).resolve().parents[3] / "src"
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "ICML17_DIST_TIMEOUT": "120"}
# point-nav's preset (time-step batches of packed lanes, Gauss-Newton curvature) made small; curvature products on
# one task of four, so that in every meta-iteration one rank computes none; evaluation tasks shared out too
SETTINGS = [
    "meta_batch=4",
    "rollouts=4",
    "horizon=20",
    "hidden=16",
    "cg_iters=5",
    "hvp_tasks=1",
    "eval_every=2",
    "eval_tasks=2",
    "eval_rollouts=3",
    "checkpoint_every=1",
]
ITERATIONS = 3
TIMING = ("env_steps_per_s", "sample_s", "iteration_s")

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")


def _port() -> str:
    """A port free right now, for torchrun's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _single(run_dir, *args, timeout=300):
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(run_dir), *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _torchrun(run_dir, *args, wait=True, timeout=300):
    cmd = [str(TORCHRUN), "--nproc_per_node=2", "--master_port", _port(), str(SCRIPT), str(run_dir), *map(str, args)]
    proc = subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    if wait:
        proc.out, proc.err = proc.communicate(timeout=timeout)
    return proc


def _policy(run_dir):
    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["state"]["policy"]


def _same_metrics(a, b, rel=1e-9, abs_=1e-10):
    ra, rb = read_metrics(a), read_metrics(b)
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    for x, y in zip(ra, rb):
        assert x.keys() == y.keys()
        for k, v in x.items():
            if k not in TIMING and isinstance(v, (int, float)):
                assert y[k] == pytest.approx(v, rel=rel, abs=abs_), (x["step"], x["split"], k)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process and two processes, the same command: (one, two, lanes of one, lanes of two)."""
    root = tmp_path_factory.mktemp("maml-rl-torchrun")
    args = ["--iterations", ITERATIONS, "--float64", "--set", *SETTINGS]
    one = _single(root / "one", *args, "--lanes", root / "lanes-one.pt")
    assert one.returncode == 0, one.stderr
    two = _torchrun(root / "two", *args, "--lanes", root / "lanes-two.pt")
    assert two.returncode == 0, two.err
    # rank 0 alone prints the result line
    assert two.out.count(f"{ITERATIONS}/{ITERATIONS} meta-iterations") == 1, two.out
    return root


def test_two_processes_give_the_one_process_parameters_and_metrics_in_float64(runs):
    a, b = _policy(runs / "one"), _policy(runs / "two")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == torch.float64
        torch.testing.assert_close(b[name], a[name], rtol=1e-10, atol=1e-10, msg=name)
    _same_metrics(runs / "one", runs / "two")
    train = read_metrics(runs / "two", "train")
    assert len(train) == ITERATIONS and all(r["step_accepted"] == 1 for r in train)  # real steps were taken
    assert load_checkpoint(runs / "two" / "checkpoints" / "last.pt")["world_size"] == 2


def test_sharded_training_lanes_stop_where_one_process_stops(runs):
    one, two = torch.load(runs / "lanes-one.pt"), torch.load(runs / "lanes-two.pt")
    assert one[0].shape[2] == 15  # the stop the script's docstring derives, after the earliest possible (13)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_a_meta_batch_the_processes_cannot_share_is_refused_in_one_line_before_work(tmp_path):
    settings = [x for x in SETTINGS if not x.startswith("meta_batch=")] + ["meta_batch=3"]
    p = _torchrun(tmp_path / "run", "--iterations", 2, "--set", *settings, timeout=180)
    assert p.returncode != 0
    expected = (
        "icml17 maml-rl: error: meta_batch=3 is not divisible by the 2 processes; use meta_batch=2 "
        "or a number of processes that divides 3 (command line: --set meta_batch=...)"
    )
    # a rank says it in one line and exits with the user-error status (torchrun may stop the other before it says
    # it too); the rest is torchrun's own report (its log lines and the launcher's traceback)
    before = p.err.split("Traceback (most recent call last)")[0].splitlines()
    said = [line for line in before if line.startswith("icml17 ")]
    assert said and all(line == expected for line in said), p.err[-3000:]
    assert "exitcode  : 2" in p.err, p.err[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_killed_rank_ends_the_run_and_the_rerun_resumes_to_the_same_result(runs, tmp_path):
    killed = tmp_path / "killed"
    args = ["--iterations", ITERATIONS, "--float64", "--set", *SETTINGS]
    proc = _torchrun(killed, *args, "--sleep", "0.6", wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    time.sleep(0.3)
    # kill -9 the rank-1 worker (a child of torchrun running the script)
    found = subprocess.run(
        ["pgrep", "-f", f"{SCRIPT} {killed}"], capture_output=True, text=True, check=False
    ).stdout.split()
    ranks = {}
    for pid in (int(x) for x in found if int(x) != proc.pid):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ranks[int(next(e for e in environ if e.startswith(b"RANK=")).split(b"=")[1])] = pid
    assert set(ranks) == {0, 1}, found
    t0 = time.time()
    os.kill(ranks[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=90)
    assert time.time() - t0 < 90  # bounded: no hang
    assert proc.returncode != 0
    assert "a peer process failed or timed out" in err or "SIGTERM received" in err, err[-2000:]
    step = load_checkpoint(killed / "checkpoints" / "last.pt")["step"]  # intact, loadable
    assert 0 < step < ITERATIONS
    again = _torchrun(killed, *args)
    assert again.returncode == 0, again.err
    _same_metrics(runs / "two", killed, rel=1e-12, abs_=1e-14)
    a, b = _policy(runs / "two"), _policy(killed)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-12, atol=1e-14, msg=name)
