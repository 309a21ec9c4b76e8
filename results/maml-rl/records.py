"""What the 2D-navigation result scripts share: where a family's per-seed records live, which run a record
evaluated, and how seed pairings are counted. Scripts run as ``python results/maml-rl/<script>.py`` from the repo
root, so this folder is on their import path."""
import json
import re
from pathlib import Path

import numpy as np

from icml17.maml.rl.evaluate import experiment_name

ROOT = Path("results/maml-rl")


def record_of(family: str, method: str, seed: int) -> dict:
    """Seed 0's record is ``<family>[-method].json``, seed k's ``seeds/<family>[-method]-seed<k>.json``."""
    name = experiment_name(family, method)
    return json.loads((ROOT / f"{name}.json" if seed == 0 else ROOT / "seeds" / f"{name}-seed{seed}.json").read_text())


def run_dir_of(record: dict) -> str:
    """The run directory the record's evaluation read (the last --run-dir of its command)."""
    return re.findall(r"--run-dir (\S+)", record["command"])[-1]


def pairings_ahead(ours: np.ndarray, theirs: np.ndarray) -> list[int]:
    """(seeds, steps) returns of two methods: per step, in how many (our seed, their seed) pairs ours is higher."""
    return [int((ours[:, None, k] > theirs[None, :, k]).sum()) for k in range(ours.shape[1])]
