"""Task sources for a :class:`MAMLConfig`: fresh sinusoids, or episode samplers over a dataset's splits.

Loads the dataset once, checks that the requested episodes fit the data (ways <= classes, shots + queries <=
examples per class) before any training starts, and hands out one sampler per split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from icml17.core.config import ConfigError
from icml17.data import load_cifar10, load_miniimagenet, load_omniglot
from icml17.data.episodes import EpisodeSampler, TaskBatch, omniglot_split, pool_from_labels
from icml17.data.sinusoid import sample_sinusoid_tasks
from icml17.maml.presets import MAMLConfig

Sampler = Callable[[int, torch.Generator], TaskBatch]


@dataclass
class TaskSource:
    """Where a run's tasks come from: one sampler for meta-training, one per evaluation split.

    Attributes:
        train: ``train(T, generator)`` returns a :class:`TaskBatch` of T meta-training tasks.
        eval: ``eval(split, T, generator, queries)`` returns T tasks of ``"val"`` or ``"test"`` (``queries``
            per class, None for the config's ``eval_queries``).
        input_shape: one example's shape, e.g. (1, 28, 28) or (1,) for sinusoids.
        num_classes: classes per split (empty for sinusoids).
    """

    train: Sampler
    eval: Callable[[str, int, torch.Generator, int | None], TaskBatch]
    input_shape: tuple[int, ...]
    num_classes: dict[str, int]


def _pools(cfg: MAMLConfig, data_dir: str | Path | None) -> dict[str, np.ndarray]:
    """Per split, images grouped by class: uint8 (C, M, channels, H, W)."""
    if cfg.task == "omniglot":
        data = load_omniglot(data_dir, image_size=cfg.image_size)
        split = omniglot_split(data.background, cfg.omniglot_split, cfg.split_seed)
        return {name: data.images[idx][:, :, None] for name, idx in split.items()}  # add a channel axis
    if cfg.task == "miniimagenet":
        return {
            split: load_miniimagenet(data_dir, split, image_size=cfg.image_size).images
            for split in ("train", "val", "test")
        }
    if cfg.task == "cifar10":
        # Smoke test: classes 0-4 of the training file for meta-training, 5-9 of the test file for meta-test
        # and validation, so train and test never share a class.
        x_tr, y_tr = load_cifar10(data_dir, "train")
        x_te, y_te = load_cifar10(data_dir, "test")
        test = pool_from_labels(x_te[y_te >= 5], y_te[y_te >= 5])
        return {"train": pool_from_labels(x_tr[y_tr < 5], y_tr[y_tr < 5]), "val": test, "test": test}
    raise ConfigError(f"task {cfg.task!r} has no dataset pools")


def make_task_source(cfg: MAMLConfig, data_dir: str | Path | None = None) -> TaskSource:
    """The task samplers of ``cfg``, checked against the data before any training starts.

    Args:
        cfg: the run's config; validated here, so one made with ``dataclasses.replace`` is checked too.
        data_dir: the dataset folder (default: ``$ICML17_DATA``, else the default folder); unused for sinusoids.

    Returns:
        A :class:`TaskSource`.

    Raises:
        ConfigError: an invalid config, or episodes that do not fit the data (more ways than classes, more
            shots and queries than examples per class).
        DatasetError: the dataset is missing or damaged.
    """
    cfg.validate()
    if cfg.task == "sinusoid":

        def train(T: int, g: torch.Generator) -> TaskBatch:
            return sample_sinusoid_tasks(T, cfg.shots, cfg.train_queries, g)

        def evaluate(split: str, T: int, g: torch.Generator, queries: int | None = None) -> TaskBatch:
            return sample_sinusoid_tasks(T, cfg.shots, queries or cfg.eval_queries, g)

        return TaskSource(train, evaluate, (1,), {})

    pools = _pools(cfg, data_dir)
    rotate = cfg.rotate and cfg.task == "omniglot"
    train_sampler = EpisodeSampler(
        pools["train"],
        ways=cfg.ways,
        shots=cfg.shots,
        queries=cfg.train_queries,
        rotate=rotate,
        preconvert=cfg.task != "miniimagenet",
        name=f"{cfg.task} meta-train split",
    )
    # MiniImagenet pools stay uint8 until gathered (a float copy of the train split would take 3 GB).
    eval_samplers: dict[tuple[str, int], EpisodeSampler] = {}

    def evaluate(split: str, T: int, g: torch.Generator, queries: int | None = None) -> TaskBatch:
        q = queries or cfg.eval_queries
        if (split, q) not in eval_samplers:
            eval_samplers[(split, q)] = EpisodeSampler(
                pools[split],
                ways=cfg.ways,
                shots=cfg.shots,
                queries=q,
                rotate=rotate,
                preconvert=cfg.task != "miniimagenet",
                name=f"{cfg.task} {split} split",
            )
        return eval_samplers[(split, q)].sample(T, g)

    for split in ("val", "test"):  # fail now, not after hours of training
        evaluate(split, 1, torch.Generator().manual_seed(0), None)
    shape = tuple(pools["train"].shape[2:])
    return TaskSource(train_sampler.sample, evaluate, shape, {k: v.shape[0] for k, v in pools.items()})
