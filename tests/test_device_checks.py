"""The prepared GPU run, end to end on the CPU at tiny sizes, so that a lent GPU's minutes are not lost to a typo.

The same script, the same steps and the same record writing as on the GPU machine; only ``--device cpu --tiny``
differ. Every step must pass and write its record."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_checks_run_end_to_end_on_the_cpu(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO / "src"),
    }
    env.pop("ICML17_DEVICE", None)
    proc = subprocess.run(
        ["sh", "benchmarks/device-checks.sh", "--device", "cpu", "--tiny"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "every step passed on cpu" in proc.stdout
    records = sorted(tmp_path.glob("*.json"))
    assert len(records) >= 7, [r.name for r in records]  # five systems, torchrun, the video Table 4 run
    for path in records:
        record = json.loads(path.read_text())
        assert record["device"] == "cpu" and "CPU" in record["hardware"], path.name


def test_device_checks_refuse_an_unknown_argument():
    proc = subprocess.run(["sh", "benchmarks/device-checks.sh", "--gpu"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown argument --gpu" in proc.stderr
