"""MAML experiment configs and the named presets of the paper's supervised experiments.

Hyperparameters follow the reference code (cbfinn/maml) as tabulated in the MAML guide of the documentation and the paper's
section 5 / appendix A.1: meta-batch, inner steps (train / test), inner learning rate, Adam meta learning
rate 0.001, iterations, networks. Query examples per class: K for Omniglot at train and test (the reference
uses ``update_batch_size`` for both), 15 for MiniImagenet training and K at test (the reference's test
protocol); ``eval_queries=15`` is the documented variant with tighter intervals. MiniImagenet meta-batch: 4
for both shot counts, as in the reference code's commands (the paper's appendix says 2 for 5-shot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from icml17.core.config import ConfigError
from icml17.maml.engine import BN_POLICIES, LR_MODES
from icml17.maml.losses import LOSS_SCALES
from icml17.maml.models import MODELS

TASKS = ("sinusoid", "omniglot", "miniimagenet", "cifar10")


@dataclass(frozen=True)
class MAMLConfig:
    """Everything that defines a MAML run (the data directory is not part of it: it may move).

    ways/shots/queries are per class for classification; for sinusoids ``shots`` is K points and
    ``train_queries``/``eval_queries`` the number of query points. ``paper``/``paper_ci95``: the published
    number for this setting (None where the paper gives none), copied into result records.
    """

    preset: str = "custom"
    task: Literal["sinusoid", "omniglot", "miniimagenet", "cifar10"] = "sinusoid"
    model: Literal["mlp", "conv4-omniglot", "conv4-miniimagenet"] = "mlp"
    ways: int = 1
    shots: int = 10
    train_queries: int = 10
    eval_queries: int = 10
    meta_batch: int = 25
    inner_steps: int = 1
    eval_inner_steps: int = 10
    inner_lr: float = 0.01
    inner_lr_mode: Literal["fixed", "scalar", "per-parameter"] = "fixed"
    first_order: bool = False
    adapt: tuple[str, ...] = ()       # parameter-name prefixes to adapt; () = all except normalisation layers
    meta_lr: float = 0.001
    clip_value: float = 0.0           # clip meta-gradient entries to [-v, v] (reference MiniImagenet: 10); 0 = off
    iterations: int = 70000
    bn_policy: Literal["transductive", "per-query"] = "transductive"
    loss_scale: Literal["reference", "mean"] = "reference"
    image_size: int = 28
    omniglot_split: Literal["seeded", "background"] = "seeded"
    split_seed: int = 0
    rotate: bool = True
    vectorize: bool = True
    chunk_size: int = 0               # tasks per vmap chunk in meta-training (0 = the whole meta-batch)
    eval_every: int = 500
    eval_tasks: int = 100             # validation tasks per periodic evaluation
    checkpoint_every: int = 200
    log_every: int = 1
    seed: int = 0
    paper: float | None = None
    paper_ci95: float | None = None
    paper_source: str | None = None   # which publication and table ``paper`` is quoted from

    # Where a run stops, how its tasks are batched and what it is compared with do not change what is trained:
    # a run may be resumed with other values of these (icml17.core.run.check_resume).
    RESUME_FREE: ClassVar[tuple[str, ...]] = ("iterations", "vectorize", "chunk_size", "eval_tasks", "paper",
                                              "paper_ci95", "paper_source")

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task {self.task!r} is not one of {TASKS}")
        if self.model not in MODELS:
            raise ConfigError(f"model {self.model!r} is not one of {MODELS}")
        for name in ("ways", "shots", "train_queries", "eval_queries", "meta_batch", "image_size", "eval_tasks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("inner_steps", "eval_inner_steps", "iterations", "chunk_size", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ConfigError(f"checkpoint_every and log_every must be >= 1, got {self.checkpoint_every}, "
                              f"{self.log_every}")
        for name in ("inner_lr", "meta_lr", "clip_value"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.preset not in PRESETS and self.preset != "custom":
            raise ConfigError(f"preset {self.preset!r} is not a MAML preset; choose one with --preset")
        if not self.inner_lr > 0:
            raise ConfigError(f"inner_lr must be positive, got {self.inner_lr}")
        if not self.meta_lr > 0:
            raise ConfigError(f"meta_lr must be positive, got {self.meta_lr}")
        if self.clip_value < 0:
            raise ConfigError(f"clip_value must be >= 0 (0 turns clipping off), got {self.clip_value}")
        if self.inner_lr_mode not in LR_MODES or self.bn_policy not in BN_POLICIES or self.loss_scale not in LOSS_SCALES:
            raise ConfigError("inner_lr_mode, bn_policy or loss_scale has an unknown value")
        if (self.task == "sinusoid") != (self.model == "mlp"):
            raise ConfigError(f"task {self.task!r} does not fit model {self.model!r}: sinusoids use 'mlp', "
                              f"image tasks a conv4 model")
        if self.task == "sinusoid" and self.ways != 1:
            raise ConfigError(f"sinusoid regression has one output; ways must be 1, got {self.ways}")

    @property
    def is_classification(self) -> bool:
        return self.task != "sinusoid"


MAML_PAPER = "Finn et al. 2017, Table 1"
# The MAML paper shows sinusoid results only as plots; Li et al. (2017, Meta-SGD) tabulate MAML's one-step MSE.
META_SGD = "Li et al. 2017 (Meta-SGD), Table 1, MAML row"


def _sinusoid(k: int, paper: float | None, ci: float | None) -> MAMLConfig:
    return MAMLConfig(preset=f"sinusoid-k{k}", task="sinusoid", model="mlp", ways=1, shots=k, train_queries=k,
                      eval_queries=100, meta_batch=25, inner_steps=1, eval_inner_steps=10, inner_lr=0.01,
                      iterations=70000, eval_every=5000, eval_tasks=200, checkpoint_every=2000, log_every=10,
                      paper=paper, paper_ci95=ci, paper_source=None if paper is None else META_SGD)


def _omniglot(ways: int, shots: int, paper: float, ci: float) -> MAMLConfig:
    big = ways == 20
    return MAMLConfig(preset=f"omniglot-{ways}w{shots}s", task="omniglot", model="conv4-omniglot", ways=ways,
                      shots=shots, train_queries=shots, eval_queries=shots, meta_batch=16 if big else 32,
                      inner_steps=5 if big else 1, eval_inner_steps=10, inner_lr=0.1 if big else 0.4,
                      iterations=60000, image_size=28, rotate=True, eval_every=250, eval_tasks=100,
                      checkpoint_every=50, paper=paper, paper_ci95=ci, paper_source=MAML_PAPER,
                      # vmap chunks of 8 tasks: fastest on the 2-core AMD EPYC CPU where it was measured
                      # (results/bench/maml.json), half the memory of all tasks at once; other machines may differ
                      chunk_size=8)


def _miniimagenet(shots: int, paper: float, ci: float) -> MAMLConfig:
    return MAMLConfig(preset=f"miniimagenet-5w{shots}s", task="miniimagenet", model="conv4-miniimagenet", ways=5,
                      shots=shots, train_queries=15, eval_queries=shots, meta_batch=4,
                      inner_steps=5, eval_inner_steps=10, inner_lr=0.01, clip_value=10.0, iterations=60000,
                      image_size=84, rotate=False, chunk_size=1, eval_every=500, eval_tasks=100,
                      checkpoint_every=100, paper=paper, paper_ci95=ci, paper_source=MAML_PAPER)


PRESETS: dict[str, MAMLConfig] = {c.preset: c for c in (
    # Li et al. 2017 (Meta-SGD), Table 1: MAML, one step, MSE with 95% interval (the MAML paper shows plots only).
    _sinusoid(5, 1.13, 0.18), _sinusoid(10, 0.77, 0.11), _sinusoid(20, 0.48, 0.08),
    # Finn et al. 2017, table 1.
    _omniglot(5, 1, 0.987, 0.004), _omniglot(5, 5, 0.999, 0.001),
    _omniglot(20, 1, 0.958, 0.003), _omniglot(20, 5, 0.989, 0.002),
    _miniimagenet(1, 0.4870, 0.0184), _miniimagenet(5, 0.6311, 0.0092),
    # Smoke test on the CIFAR-10 subset (no paper number): 5-way 1-shot with the MiniImagenet network.
    MAMLConfig(preset="cifar10-5w1s", task="cifar10", model="conv4-miniimagenet", ways=5, shots=1,
               train_queries=15, eval_queries=1, meta_batch=4, inner_steps=5, eval_inner_steps=10,
               inner_lr=0.01, clip_value=10.0, iterations=2000, image_size=32, rotate=False, eval_every=200,
               eval_tasks=50, checkpoint_every=100),
)}


def get_preset(name: str) -> MAMLConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown MAML preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name])
