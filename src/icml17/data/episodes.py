"""N-way K-shot episodes for few-shot classification (MAML, Finn et al. 2017, sections 3.1 and 5.2).

A *pool* holds the images of one split grouped by class: (C, M, channels, H, W), C classes with M examples
each. An episode picks N distinct classes, assigns them the labels 0..N-1 in random order (so labels are
permuted per task), and draws K support plus Q query examples per class without replacement. For Omniglot
each picked class is also rotated by a random multiple of 90 degrees (at train and test time, as the reference
code does): a rotated character counts as a new class.

Everything is sampled as index tensors with an explicit ``torch.Generator`` and gathered from the preloaded
pool in one indexing operation; there is no per-image Python loop. Output: a :class:`TaskBatch` with a
leading task axis, ready for ``vmap``.

Omniglot splits (:func:`omniglot_split`): ``"seeded"`` (default) shuffles the 1623 characters with a seed and
takes 1100 for meta-training, the next 100 for validation and the remaining 423 for meta-testing, the sizes of
the reference code (whose exact split depends on directory order and cannot be reproduced); ``"background"``
meta-trains on the 964 background characters (the last 100 of a seeded shuffle held out for validation) and
meta-tests on the 659 evaluation characters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from icml17.core.config import ConfigError

OMNIGLOT_SPLITS = ("seeded", "background")
OMNIGLOT_TRAIN, OMNIGLOT_VAL = 1100, 100


@dataclass
class TaskBatch:
    """A meta-batch of T tasks, each with a support set (to adapt on) and a query set (to score on).

    The leading axis is the task axis, which :class:`icml17.maml.MAML` maps over with ``vmap``. Slicing
    (``batch[2:4]``) slices every tensor along it.

    Attributes:
        support_x: support inputs, (T, S, ...): S = N * K examples for N-way K-shot, K points for sinusoids.
        support_y: support targets, (T, S) class indices in [0, N), or (T, S, 1) regression targets.
        query_x: query inputs, (T, Q, ...).
        query_y: query targets, (T, Q) or (T, Q, 1).
        info: per-task extras, each with the leading task axis (class ids and rotations for episodes, amplitude
            and phase for sinusoids); not read by the engine.

    Examples:
        Three 2-way 1-shot tasks of 4x4 images, from your own tensors:

        >>> import torch
        >>> x = torch.rand(3, 4, 1, 4, 4)                       # (T, examples, C, H, W)
        >>> y = torch.tensor([0, 1, 0, 1]).expand(3, 4)         # (T, examples)
        >>> batch = TaskBatch(x[:, :2], y[:, :2], x[:, 2:], y[:, 2:])
        >>> batch.num_tasks, batch[1:].support_x.shape
        (3, torch.Size([2, 2, 1, 4, 4]))
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        """T, the number of tasks."""
        return self.support_x.shape[0]

    def __getitem__(self, index: slice) -> TaskBatch:
        if not isinstance(index, slice):
            index = slice(index, index + 1)
        return self.map(lambda t: t[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> TaskBatch:
        """The batch on ``device`` and/or in ``dtype``.

        Args:
            device: where to move every tensor (None: where it is).
            dtype: converts the floating-point tensors only, so class labels stay int64 (None: unchanged).

        Returns:
            A new :class:`TaskBatch`.
        """

        def conv(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if (dtype is not None and t.is_floating_point()) else None)

        return self.map(conv)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TaskBatch:
        """The batch with ``fn`` applied to every tensor: the support and query sets, then each ``info`` entry.

        Args:
            fn: tensor -> tensor (a slice, a move, a conversion).

        Returns:
            A new :class:`TaskBatch`.
        """
        return replace(
            self,
            support_x=fn(self.support_x),
            support_y=fn(self.support_y),
            query_x=fn(self.query_x),
            query_y=fn(self.query_y),
            info={k: fn(v) for k, v in self.info.items()},
        )


class EpisodeSampler:
    """Samples N-way K-shot episodes from a class pool.

    pool: (C, M, channels, H, W) uint8 (scaled by 1/255 into float32) or floating point. With ``preconvert``
    the whole pool is converted to float once, so sampling is an index draw plus one gather.
    """

    def __init__(
        self,
        pool: torch.Tensor | np.ndarray,
        *,
        ways: int,
        shots: int,
        queries: int,
        rotate: bool = False,
        preconvert: bool = True,
        name: str = "pool",
    ):
        pool = torch.as_tensor(pool)
        if pool.ndim != 5:
            raise ConfigError(
                f"{name}: expected a pool shaped (classes, examples, channels, H, W), got {tuple(pool.shape)}"
            )
        classes, per_class = pool.shape[:2]
        if ways < 1 or shots < 1 or queries < 1:
            raise ConfigError(f"{name}: ways, shots and queries must be >= 1, got {ways}, {shots}, {queries}")
        if ways > classes:
            raise ConfigError(
                f"{name}: {ways}-way tasks need {ways} classes but the split has only {classes}; "
                f"lower ways or use a larger split",
                param="ways",
            )
        if shots + queries > per_class:
            raise ConfigError(
                f"{name}: {shots} shots + {queries} queries = {shots + queries} examples per class, "
                f"but each class has only {per_class}; lower shots or queries"
            )
        if rotate and pool.shape[-1] != pool.shape[-2]:
            raise ConfigError(f"{name}: rotations need square images, got {tuple(pool.shape[-2:])}")
        self.scale = 1.0 / 255.0 if pool.dtype == torch.uint8 else 1.0
        if preconvert and not pool.is_floating_point():
            pool = pool.to(torch.float32) * self.scale
            self.scale = 1.0
        self.pool, self.ways, self.shots, self.queries, self.rotate = pool, ways, shots, queries, rotate
        self.name = name

    @property
    def num_classes(self) -> int:
        return self.pool.shape[0]

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """T episodes: support_x (T, N*K, c, H, W), support_y (T, N*K), query_x (T, N*Q, c, H, W), query_y (T, N*Q).

        Examples are ordered class-major (all K of label 0, then label 1, ...). ``info`` holds ``classes``
        (T, N), the pool class behind each label, and ``rotations`` (T, N), quarter turns (zeros without
        rotation).
        """
        T, N, K, Q = num_tasks, self.ways, self.shots, self.queries
        C, M = self.pool.shape[:2]
        classes = torch.rand(T, C, generator=generator).argsort(dim=1)[:, :N]  # (T, N) distinct
        examples = torch.rand(T, N, M, generator=generator).argsort(dim=2)[:, :, : K + Q]  # (T, N, K+Q)
        x = self.pool[classes.unsqueeze(-1), examples]  # (T, N, K+Q, c, H, W)
        if not x.is_floating_point():
            x = x.to(torch.float32) * self.scale
        rotations = torch.zeros(T, N, dtype=torch.int64)
        if self.rotate:
            rotations = torch.randint(0, 4, (T, N), generator=generator)
            for quarter in (1, 2, 3):
                mask = rotations == quarter
                if mask.any():
                    x[mask] = torch.rot90(x[mask], quarter, dims=(-2, -1))
        labels = torch.arange(N).view(1, N, 1).expand(T, N, K + Q)
        shape = x.shape[3:]
        return TaskBatch(
            support_x=x[:, :, :K].reshape(T, N * K, *shape),
            support_y=labels[:, :, :K].reshape(T, N * K),
            query_x=x[:, :, K:].reshape(T, N * Q, *shape),
            query_y=labels[:, :, K:].reshape(T, N * Q),
            info={"classes": classes, "rotations": rotations},
        )


def omniglot_split(background: np.ndarray, split: str = "seeded", seed: int = 0) -> dict[str, np.ndarray]:
    """Character indices for meta-train / validation / meta-test (see the module docstring).

    background: bool (1623,) from ``load_omniglot``. The three index sets are disjoint and sorted.
    """
    n = len(background)
    rng = np.random.default_rng(seed)
    if split == "seeded":
        order = rng.permutation(n)
        parts = (
            order[:OMNIGLOT_TRAIN],
            order[OMNIGLOT_TRAIN : OMNIGLOT_TRAIN + OMNIGLOT_VAL],
            order[OMNIGLOT_TRAIN + OMNIGLOT_VAL :],
        )
    elif split == "background":
        bg = rng.permutation(np.flatnonzero(background))
        parts = bg[:-OMNIGLOT_VAL], bg[-OMNIGLOT_VAL:], np.flatnonzero(~np.asarray(background))
    else:
        raise ConfigError(f"unknown Omniglot split {split!r}; choose one of {OMNIGLOT_SPLITS}")
    return {name: np.sort(p) for name, p in zip(("train", "val", "test"), parts)}


def pool_from_labels(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Group (N, c, H, W) images by integer label into (C, M, c, H, W), M = the smallest class count."""
    classes = np.unique(labels)
    per_class = min(int((labels == c).sum()) for c in classes)
    return np.stack([images[labels == c][:per_class] for c in classes])
