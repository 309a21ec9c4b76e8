"""MAML experiment configs and the named presets of the paper's supervised experiments.

Hyperparameters follow the reference code (cbfinn/maml) as tabulated in the MAML guide of the documentation and
the paper's section 5 / appendix A.1: meta-batch, inner steps (train / test), inner learning rate, Adam meta learning
rate 0.001, iterations, networks. Query examples per class: K for Omniglot at train and test (the reference
uses ``update_batch_size`` for both), 15 for MiniImagenet training and K at test (the reference's test
protocol); ``eval_queries=15`` is the documented variant with tighter intervals. MiniImagenet meta-batch: 4
for both shot counts, as in the reference code's commands (the paper's appendix says 2 for 5-shot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from icml17.core.config import ConfigError, override_config
from icml17.maml.engine import BN_POLICIES, LR_MODES
from icml17.maml.losses import LOSS_SCALES
from icml17.maml.models import MODELS

TASKS = ("sinusoid", "omniglot", "miniimagenet", "cifar10")


@dataclass(frozen=True)
class MAMLConfig:
    """Everything that defines a MAML run (the data directory is not part of it: it may move).

    Build one with :func:`make_config` (a preset with overrides, validated); a config made directly or with
    ``dataclasses.replace`` is validated where it is used (:func:`icml17.maml.train.train`,
    :func:`icml17.maml.tasks.make_task_source`).

    Attributes:
        preset: the preset's name (``"custom"`` for none); names the run directory and the records.
        task: ``"sinusoid"``, ``"omniglot"``, ``"miniimagenet"`` or ``"cifar10"``.
        model: ``"mlp"`` (sinusoids) or a conv4 network (:func:`icml17.maml.models.build_maml_model`).
        ways: N, classes per task (1 for sinusoids).
        shots: K, support examples per class (for sinusoids: support points).
        train_queries: query examples per class (sinusoids: points) in meta-training.
        eval_queries: query examples per class in evaluation.
        meta_batch: tasks per meta-iteration.
        inner_steps: inner gradient steps in meta-training.
        eval_inner_steps: inner gradient steps at test time.
        inner_lr: the inner step size alpha (its initial value when learned).
        inner_lr_mode: ``"fixed"``, ``"scalar"`` or ``"per-parameter"`` (Meta-SGD).
        first_order: first-order MAML (no gradient through the inner gradients).
        adapt: parameter-name prefixes adapted per task; empty: all except normalisation layers.
        meta_lr: Adam's learning rate for the meta-update.
        clip_value: clip meta-gradient entries to [-v, v] (the reference's MiniImagenet: 10); 0 turns it off.
        iterations: meta-iterations to train.
        bn_policy: ``"transductive"`` (the reference) or ``"per-query"`` (see :data:`icml17.maml.BN_POLICIES`).
        loss_scale: ``"reference"`` (cross-entropy summed and divided by K) or ``"mean"``.
        image_size: image side in pixels (28 Omniglot, 84 MiniImagenet).
        omniglot_split: ``"seeded"`` (1,100 / 100 / 423 characters) or ``"background"``.
        split_seed: the seed of the seeded Omniglot split.
        rotate: rotate each Omniglot class by a random multiple of 90 degrees (a new class).
        vectorize: run the tasks under ``vmap`` (True) or one by one.
        chunk_size: tasks per ``vmap`` chunk in meta-training (0: the whole meta-batch).
        eval_every: meta-iterations between validation evaluations (0: none).
        eval_tasks: validation tasks per periodic evaluation.
        checkpoint_every: meta-iterations between checkpoints.
        log_every: meta-iterations between metric lines.
        seed: the seed of every random stream of the run.

    The published numbers a run is compared with are not part of its config: :mod:`icml17.maml.published`.
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
    adapt: tuple[str, ...] = ()  # parameter-name prefixes to adapt; () = all except normalisation layers
    meta_lr: float = 0.001
    clip_value: float = 0.0  # clip meta-gradient entries to [-v, v] (reference MiniImagenet: 10); 0 = off
    iterations: int = 70000
    bn_policy: Literal["transductive", "per-query"] = "transductive"
    loss_scale: Literal["reference", "mean"] = "reference"
    image_size: int = 28
    omniglot_split: Literal["seeded", "background"] = "seeded"
    split_seed: int = 0
    rotate: bool = True
    vectorize: bool = True
    chunk_size: int = 0  # tasks per vmap chunk in meta-training (0 = the whole meta-batch)
    eval_every: int = 500
    eval_tasks: int = 100  # validation tasks per periodic evaluation
    checkpoint_every: int = 200
    log_every: int = 1
    seed: int = 0

    # Where a run stops and how its tasks are batched do not change what is trained: a run may be resumed with
    # other values of these (icml17.core.runs.check_resume).
    RESUME_FREE: ClassVar[tuple[str, ...]] = ("iterations", "vectorize", "chunk_size", "eval_tasks")
    # Fields of older configs that never changed what was trained (the published numbers, now in
    # icml17.maml.published): checkpoints that hold them still load and resume.
    RETIRED: ClassVar[tuple[str, ...]] = ("paper", "paper_ci95", "paper_source")

    def validate(self) -> None:
        """Refuse impossible or inconsistent values before any work.

        Raises:
            ConfigError: the first problem found, naming the field and what it accepts.
        """
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
            raise ConfigError(
                f"checkpoint_every and log_every must be >= 1, got {self.checkpoint_every}, {self.log_every}"
            )
        for name in ("inner_lr", "meta_lr", "clip_value"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.preset not in PRESETS and self.preset != "custom":
            raise ConfigError(
                f"preset {self.preset!r} is not a MAML preset; choose one of {', '.join(PRESETS)}", param="preset"
            )
        if not self.inner_lr > 0:
            raise ConfigError(f"inner_lr must be positive, got {self.inner_lr}")
        if not self.meta_lr > 0:
            raise ConfigError(f"meta_lr must be positive, got {self.meta_lr}")
        if self.clip_value < 0:
            raise ConfigError(f"clip_value must be >= 0 (0 turns clipping off), got {self.clip_value}")
        if (
            self.inner_lr_mode not in LR_MODES
            or self.bn_policy not in BN_POLICIES
            or self.loss_scale not in LOSS_SCALES
        ):
            raise ConfigError("inner_lr_mode, bn_policy or loss_scale has an unknown value")
        if (self.task == "sinusoid") != (self.model == "mlp"):
            raise ConfigError(
                f"task {self.task!r} does not fit model {self.model!r}: sinusoids use 'mlp', image tasks a conv4 model"
            )
        if self.task == "sinusoid" and self.ways != 1:
            raise ConfigError(f"sinusoid regression has one output; ways must be 1, got {self.ways}")

    @property
    def is_classification(self) -> bool:
        """True for the image tasks (accuracy), False for sinusoid regression (MSE)."""
        return self.task != "sinusoid"


def _sinusoid(k: int) -> MAMLConfig:
    return MAMLConfig(
        preset=f"sinusoid-k{k}",
        task="sinusoid",
        model="mlp",
        ways=1,
        shots=k,
        train_queries=k,
        eval_queries=100,
        meta_batch=25,
        inner_steps=1,
        eval_inner_steps=10,
        inner_lr=0.01,
        iterations=70000,
        eval_every=5000,
        eval_tasks=200,
        checkpoint_every=2000,
        log_every=10,
    )


def _omniglot(ways: int, shots: int) -> MAMLConfig:
    big = ways == 20
    return MAMLConfig(
        preset=f"omniglot-{ways}w{shots}s",
        task="omniglot",
        model="conv4-omniglot",
        ways=ways,
        shots=shots,
        train_queries=shots,
        eval_queries=shots,
        meta_batch=16 if big else 32,
        inner_steps=5 if big else 1,
        eval_inner_steps=10,
        inner_lr=0.1 if big else 0.4,
        iterations=60000,
        image_size=28,
        rotate=True,
        eval_every=250,
        eval_tasks=100,
        checkpoint_every=50,
        # vmap chunks of 8 tasks: fastest on the 2-core AMD EPYC CPU where it was measured
        # (results/bench/maml.json), half the memory of all tasks at once; other machines may differ
        chunk_size=8,
    )


def _miniimagenet(shots: int) -> MAMLConfig:
    return MAMLConfig(
        preset=f"miniimagenet-5w{shots}s",
        task="miniimagenet",
        model="conv4-miniimagenet",
        ways=5,
        shots=shots,
        train_queries=15,
        eval_queries=shots,
        meta_batch=4,
        inner_steps=5,
        eval_inner_steps=10,
        inner_lr=0.01,
        clip_value=10.0,
        iterations=60000,
        image_size=84,
        rotate=False,
        chunk_size=1,
        eval_every=500,
        eval_tasks=100,
        checkpoint_every=100,
    )


PRESETS: dict[str, MAMLConfig] = {
    c.preset: c
    for c in (
        # the settings of Finn et al. 2017 (their published numbers: icml17.maml.published)
        _sinusoid(5),
        _sinusoid(10),
        _sinusoid(20),
        _omniglot(5, 1),
        _omniglot(5, 5),
        _omniglot(20, 1),
        _omniglot(20, 5),
        _miniimagenet(1),
        _miniimagenet(5),
        # Smoke test on the CIFAR-10 subset (no paper number): 5-way 1-shot with the MiniImagenet network.
        MAMLConfig(
            preset="cifar10-5w1s",
            task="cifar10",
            model="conv4-miniimagenet",
            ways=5,
            shots=1,
            train_queries=15,
            eval_queries=1,
            meta_batch=4,
            inner_steps=5,
            eval_inner_steps=10,
            inner_lr=0.01,
            clip_value=10.0,
            iterations=2000,
            image_size=32,
            rotate=False,
            eval_every=200,
            eval_tasks=50,
            checkpoint_every=100,
        ),
    )
}


def make_config(preset: str, overrides: dict | None = None) -> MAMLConfig:
    """The config of a named preset, with some fields changed, validated.

    Args:
        preset: one of :data:`PRESETS` (``"sinusoid-k10"``, ``"omniglot-5w1s"``, ...).
        overrides: field -> value; strings are read as the field's type (as ``--set key=value`` does).

    Returns:
        A frozen :class:`MAMLConfig`.

    Raises:
        ConfigError: an unknown preset or field, or an impossible value.

    Examples:
        >>> cfg = make_config("omniglot-5w1s", {"meta_batch": 8})
        >>> cfg.ways, cfg.shots, cfg.meta_batch, cfg.inner_lr
        (5, 1, 8, 0.4)
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown MAML preset {preset!r}; choose one of {sorted(PRESETS)}")
    if not overrides:
        cfg = replace(PRESETS[preset])
        cfg.validate()
        return cfg
    return override_config(PRESETS[preset], overrides)
