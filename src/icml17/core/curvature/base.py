"""The curvature package's shared vocabulary: batches, the operator and product interfaces, batch weighting.

Every other module of the package imports from here and this module imports none of them, so the operator,
the product strategies and the estimators can depend on one another's interfaces without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn

from icml17.core.functional import LossFn, Params

Batch = tuple[torch.Tensor, torch.Tensor]


class LinearOperator(Protocol):
    """What the estimators need: a symmetric operator on vectors of ``size`` applied to blocks of columns.

    Any object with these attributes qualifies (:class:`~icml17.core.curvature.operator.HessianOperator`,
    :class:`~icml17.core.curvature.function.ParamsOperator`, a dense matrix in
    :class:`~icml17.core.curvature.operator.DenseOperator`); the estimators draw their vectors on ``device`` in
    ``dtype``.

    Attributes:
        size: the dimension n of the vectors it acts on.
        dtype: the dtype of its products.
        device: where its products live.
    """

    size: int
    dtype: torch.dtype
    device: torch.device

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """The products with a block of columns.

        Args:
            vectors: ``(n, k)``, on ``device`` in ``dtype``.

        Returns:
            ``(n, k)``: column j is the operator times column j.
        """
        ...


class Evaluation(Protocol):
    """What a product strategy reads from :class:`~icml17.core.curvature.operator.ModelLoss`: the model, the
    loss, the point and the batches (``cacheable``: the data is a list, so per-batch state may be kept)."""

    model: nn.Module
    loss_fn: LossFn
    point: Params
    mode: str

    @property
    def cacheable(self) -> bool: ...

    def batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor, int]]: ...

    def batch_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def accumulate(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Any: ...

    def mean(self, acc: Any, total: int) -> Any: ...


class Products(Protocol):
    """A way of computing Hessian products, fixed when the loss is built (``method`` names it).

    Attributes:
        method: the strategy's name, recorded with every result (e.g. ``"layerwise"``).
    """

    method: str

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        """``H v`` for a block of k directions.

        Args:
            vectors: parameter dict whose tensors have a leading k axis.
            params: where H is taken; None: the loss's point.

        Returns:
            The k products, shaped like ``vectors``.
        """
        ...

    def quadform(self, vectors: Params) -> torch.Tensor:
        """The quadratic forms ``v^T H v`` at the loss's point.

        Args:
            vectors: parameter dict whose tensors have a leading k axis.

        Returns:
            ``(k,)``.
        """
        ...


def as_batches(data: Batch | Iterable[Batch]) -> list[Batch] | Iterable[Batch]:
    """The data of a loss as batches: one ``(x, y)`` batch becomes a one-element list.

    Args:
        data: one ``(x, y)`` pair of tensors, or an iterable of them (a list, a loader).

    Returns:
        ``[data]`` for one batch; ``data`` itself otherwise (a loader is not read here).
    """
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]
    return data


def scale_add(acc: Any, out: Any, n: float) -> Any:
    """acc + n * out over tensors, dicts and tuples of them (acc None: n * out)."""
    if isinstance(out, dict):
        return {k: scale_add(None if acc is None else acc[k], v, n) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(scale_add(None if acc is None else a, o, n) for a, o in zip(acc or [None] * len(out), out))
    return out * n if acc is None else acc + out * n


def _leaves(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, dict):
        return [t for k in tree for t in _leaves(tree[k])]
    if isinstance(tree, tuple):
        return [t for x in tree for t in _leaves(x)]
    return [tree]


def mean_over_data(acc: Any, total: int, sharded: bool) -> Any:
    """``acc / total``: the size-weighted sum of per-batch results over all examples divided by their number.

    With ``sharded`` each process holds a shard of the data (``torch.distributed``): the sums and the counts
    are all-reduced first, so every rank gets the mean over the whole dataset."""
    if acc is None and not sharded:
        raise ValueError("the dataset is empty: a loss (and its curvature) needs at least one example")
    if sharded:
        from icml17.core import distributed

        if acc is None:
            raise ValueError("this process's shard of the data is empty; give every rank at least one batch")
        leaves = _leaves(acc)
        flat = torch.cat(
            [t.reshape(-1).to(torch.float64) for t in leaves]
            + [torch.tensor([float(total)], dtype=torch.float64, device=leaves[0].device)]
        )
        distributed.all_reduce_sum(flat)
        total, i, reduced = int(flat[-1].item()), 0, []
        for t in leaves:
            reduced.append(flat[i : i + t.numel()].view_as(t).to(t.dtype))
            i += t.numel()
        acc = _rebuild(acc, iter(reduced))
    return scale_add(None, acc, 1.0 / total)


def _rebuild(tree: Any, leaves: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _rebuild(v, leaves) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_rebuild(x, leaves) for x in tree)
    return next(leaves)


@contextmanager
def module_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Every submodule in train (or eval) mode for the block, each one's own flag restored after it."""
    before = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in before:
            m.training = flag
