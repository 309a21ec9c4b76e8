"""The Hessian of a model's loss as a linear operator: :class:`ModelLoss` evaluates the loss over the data,
:class:`HessianOperator` presents its Hessian at the point as a symmetric operator on flat vectors.

The data may be one ``(x, y)`` batch or an iterable of batches (a loader); products over a loader are
accumulated with weights ``n_b / N``, i.e. they are products with the Hessian of the mean loss over all
examples, assuming ``loss_fn`` returns the batch mean. How each product is computed is a strategy chosen once,
when the loss is built (:func:`~icml17.core.curvature.products.choose_products`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from icml17.core.curvature.base import Batch, as_batches, mean_over_data, module_mode, scale_add
from icml17.core.curvature.products import choose_products
from icml17.core.functional import LossFn, Params

_EMPTY = "the dataset is empty: a loss (and its curvature) needs at least one example"


def _train_mode_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose train-mode loss is a fixed function of the parameters, leaving the user's
    model untouched: batch norm uses the batch's statistics without updating running averages (in the copy
    they are dropped), and dropout is refused, since a fresh mask per product would make the Hessian random."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValueError(
                f"module {name or type(model).__name__} is dropout (p={m.p}): in train mode every "
                f"product would draw a new mask, so the Hessian would be random. Measure in eval "
                f"mode (dropout off), or set p=0"
            )
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return model


class ModelLoss:
    """The mean loss of ``model`` over ``data`` as a function of a parameter dict (one job: evaluate it).

    Products over several batches are weighted ``n_b / N`` (``loss_fn`` returns the batch mean), so they are
    products with the Hessian of the mean loss over all examples. ``self.method`` records the product strategy.
    Everything runs on the model's device: the batches are moved there (a list of batches once, here).

    Args:
        model: the network; run through ``functional_call`` and never modified.
        loss_fn: ``(prediction, target) -> scalar`` batch mean.
        data: one ``(x, y)`` batch or an iterable of batches (a loader is read once per pass).
        params: the names of the parameters that vary (default: all with ``requires_grad``); the others and the
            buffers stay at the module's values.
        dtype: e.g. ``torch.float64``: evaluate a converted copy of the model on converted inputs.
        mode: ``"eval"`` (batch norm uses running statistics, dropout is off) or ``"train"`` (batch norm uses
            each batch's statistics; the user's running statistics are never updated; dropout is refused).
        linearize: trace the forward-over-reverse product once per batch (pays off from a few dozen products).
        product: the strategy (:data:`PRODUCTS`; see :func:`~icml17.core.curvature.products.choose_products`):
            by default layerwise for the plain ``nn.Sequential`` chains it supports, else forward-over-reverse.
        sharded: ``data`` is this process's shard of a dataset split over ``torch.distributed`` ranks: every
            mean (loss, gradient, Hessian products) is all-reduced, so all ranks see the whole dataset's.

    Raises:
        ValueError: a bad ``mode``, float64 on MPS, no trainable parameters, unknown ``params``, an empty
            dataset, dropout in train mode, or a product strategy that cannot run (see ``choose_products``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Batch | Iterable[Batch],
        *,
        params: Sequence[str] | None = None,
        dtype: torch.dtype | None = None,
        mode: str = "eval",
        linearize: bool = False,
        product: str = "auto",
        sharded: bool = False,
    ):
        if mode not in ("eval", "train"):
            raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
        first = next(model.parameters(), None)
        if dtype == torch.float64 and first is not None and first.device.type == "mps":
            raise ValueError(
                "dtype=torch.float64 is not available on MPS (Apple GPUs have no float64): measure in "
                "float32, or move the model to the CPU"
            )
        if mode == "train":
            model = _train_mode_copy(model)
        if dtype is not None:
            model = (model if mode == "train" else copy.deepcopy(model)).to(dtype)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not trainable:
            raise ValueError(
                f"{type(model).__name__} has no parameters with requires_grad=True: there is no "
                "Hessian to measure (unfreeze the parameters to be measured)"
            )
        if params is not None:
            unknown = sorted(set(params) - set(trainable))
            if unknown:
                raise ValueError(f"unknown or frozen parameter names {unknown}; trainable: {sorted(trainable)}")
            trainable = {n: trainable[n] for n in params}
        self.model, self.loss_fn, self.mode, self.sharded = model, loss_fn, mode, sharded
        self.point: Params = {n: p.detach() for n, p in trainable.items()}
        # parameters outside the block stay fixed, detached so that products carry no autograd history
        self._fixed: Params = {n: p.detach() for n, p in model.named_parameters() if n not in self.point}
        self.dtype = next(iter(self.point.values())).dtype
        self.device = next(iter(self.point.values())).device
        self._data = as_batches(data)
        if isinstance(self._data, list):  # placed once, not on every pass over the data
            self._data = [self._place(x, y) for x, y in self._data]
        self.products = choose_products(self, product, linearize)
        if isinstance(self._data, list) and not sharded:  # a rank's shard may be empty; the dataset may not
            self._check_nonempty(self._data)

    @property
    def method(self) -> str:
        """The product strategy's name (one of :data:`PRODUCTS` but ``"auto"``, or the linearized form)."""
        return self.products.method

    @property
    def cacheable(self) -> bool:
        """The data is a list of batches: iterated again on every call, so per-batch state may be kept."""
        return isinstance(self._data, list)

    @staticmethod
    def _check_nonempty(batches: list[Batch]) -> None:
        if not batches or sum(int(x.shape[0]) for x, _ in batches) == 0:
            raise ValueError(_EMPTY)

    def mean(self, acc: Any, total: int) -> Any:
        """The mean over the dataset (all ranks' shards when ``sharded``). Every strategy ends its sums here.

        Args:
            acc: the size-weighted sum of per-batch results (a tensor, or dicts and tuples of them).
            total: the number of examples summed (this rank's).

        Returns:
            ``acc / total``, both summed over the ranks first when ``sharded``.

        Raises:
            ValueError: the dataset (or, sharded, this rank's shard) is empty.
        """
        return mean_over_data(acc, total, self.sharded)

    def _place(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        """A batch on the model's device, floating tensors in this loss's dtype (no copy where they already are)."""
        return (
            x.to(self.device, self.dtype if x.is_floating_point() else x.dtype),
            y.to(self.device, self.dtype if y.is_floating_point() else y.dtype),
        )

    def batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor, int]]:
        """Yields (x, y, n) with floating inputs cast to this loss's dtype and on the model's device (a list of
        batches was placed once, at construction; a loader's batches are moved as they come)."""
        seen = 0
        for x, y in self._data:
            x, y = self._place(x, y)
            if x.shape[0]:
                seen += int(x.shape[0])
                yield x, y, int(x.shape[0])
        if seen == 0 and not self.sharded:
            raise ValueError(_EMPTY)

    def batch_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of one batch, a pure function of ``params`` for torch.func.

        Args:
            params: the varying parameters (the fixed ones are the module's).
            x: the batch's inputs, placed (see :meth:`batches`).
            y: the batch's targets.

        Returns:
            The scalar batch loss.
        """
        return self.loss_fn(functional_call(self.model, {**self._fixed, **params}, (x,), strict=False), y)

    def accumulate(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> Any:
        """The mean of ``fn(x, y)`` over the batches weighted by their sizes, in this loss's mode.

        Args:
            fn: ``(x, y) -> result`` for one placed batch (a tensor, or dicts and tuples of them).

        Returns:
            The size-weighted mean of the results over the dataset.

        Raises:
            ValueError: the dataset is empty.
        """
        total, acc = 0, None
        with module_mode(self.model, self.mode == "train"):
            for x, y, n in self.batches():
                acc = scale_add(acc, fn(x, y), n)
                total += n
        return self.mean(acc, total)

    def loss(self, params: Params | None = None) -> torch.Tensor:
        """The mean loss over the data, without a graph.

        Args:
            params: where to evaluate it; None: the point.

        Returns:
            A scalar tensor.
        """
        params = self.point if params is None else params
        with torch.no_grad():
            return self.accumulate(lambda x, y: self.batch_loss(params, x, y))

    def loss_and_grad(self, params: Params | None = None) -> tuple[torch.Tensor, Params]:
        """The mean loss and its gradient (``torch.func.grad_and_value`` per batch, weighted by size).

        Args:
            params: where to evaluate them; None: the point.

        Returns:
            ``(loss, gradient)``, the gradient a dict shaped like ``params``.
        """
        params = self.point if params is None else params
        f = torch.func.grad_and_value(self.batch_loss)
        g, value = self.accumulate(lambda x, y: f(params, x, y))
        return value, g

    def hvp(self, vectors: Params, params: Params | None = None) -> Params:
        """Products ``H v`` by the strategy chosen at construction (``self.method``).

        Args:
            vectors: a block of k directions, a dict whose tensors have a leading k axis.
            params: where H is taken; None: the point (where layerwise and linearized products are cached).

        Returns:
            The k products, shaped like ``vectors``.
        """
        return self.products.hvp(vectors, params)

    def quadform(self, vectors: Params) -> torch.Tensor:
        """``v^T H v`` for a block of directions at the point. Layerwise: a forward-only second-order pass per
        direction; otherwise from :meth:`hvp`.

        Args:
            vectors: a dict whose tensors have a leading k axis.

        Returns:
            ``(k,)``.
        """
        return self.products.quadform(vectors)


class HessianOperator:
    """The Hessian of a :class:`ModelLoss` at its point, as a symmetric operator on flat vectors of ``size``.

    The flat layout is the measured parameters' ``named_parameters`` order. ``n_hvp`` counts Hessian-vector
    products (a block of k counts k; a quadratic form ``v^T H v`` from :meth:`quadform` counts as one).

    Args:
        model: the network (never modified).
        loss_fn: ``(prediction, target) -> scalar`` batch mean.
        data: one ``(x, y)`` batch or an iterable of batches.
        params: the names of the measured parameters (default: all with ``requires_grad``; a per-layer block
            gives a diagonal block of the Hessian, see :func:`layer_blocks`).
        dtype: measure a converted copy in this dtype (e.g. float64).
        mode: ``"eval"`` or ``"train"`` (see :class:`ModelLoss`).
        max_block: the most probes vmapped at once (memory grows with it).
        linearize: trace the forward-over-reverse product once per batch (see :class:`ModelLoss`).
        product: the product strategy (see :class:`ModelLoss`).
        sharded: ``data`` is this rank's shard; every product is all-reduced (see :class:`ModelLoss`).

    Raises:
        ValueError: as :class:`ModelLoss`.

    Examples:
        A linear model under the mean squared error ``|X w - y|^2 / n`` has Hessian ``2 X^T X / n``:

        >>> import torch
        >>> from torch import nn
        >>> from icml17.core.curvature import HessianOperator, lanczos
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
        >>> model = nn.Sequential(nn.Linear(2, 1, bias=False)).double()
        >>> op = HessianOperator(model, nn.functional.mse_loss, (x, torch.zeros(2, 1, dtype=torch.float64)))
        >>> torch.allclose(op.dense(), 2 * x.T @ x / 2)  # diag(1, 4)
        True
        >>> round(lanczos(op).eigenvalues[0], 8)
        4.0
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Batch | Iterable[Batch],
        *,
        params: Sequence[str] | None = None,
        dtype: torch.dtype | None = None,
        mode: str = "eval",
        max_block: int = 32,
        linearize: bool = False,
        product: str = "auto",
        sharded: bool = False,
    ):
        self.loss = ModelLoss(
            model,
            loss_fn,
            data,
            params=params,
            dtype=dtype,
            mode=mode,
            linearize=linearize,
            product=product,
            sharded=sharded,
        )
        self.size = sum(p.numel() for p in self.loss.point.values())
        self.dtype, self.device, self.mode = self.loss.dtype, self.loss.device, mode
        self.max_block = max_block
        self.n_hvp = 0

    @property
    def point(self) -> Params:
        """The measured parameters at which H is taken (detached), in the flat layout's order."""
        return self.loss.point

    @property
    def method(self) -> str:
        """The product strategy's name (see :attr:`ModelLoss.method`)."""
        return self.loss.method

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """One product.

        Args:
            v: ``(size,)``.

        Returns:
            ``H v``, ``(size,)``.

        Raises:
            ValueError: ``v`` does not have ``size`` entries.
        """
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Products with a block of columns, vmapped ``max_block`` at a time.

        Args:
            vectors: ``(size, k)`` (cast to the operator's dtype).

        Returns:
            ``H V``, ``(size, k)``.

        Raises:
            ValueError: ``vectors`` does not have ``size`` rows.
        """
        out = []
        for block in self._blocks(vectors):  # (b, n)
            hv = self.loss.hvp(self._tangents(block))
            # forward AD of some ops (torch.where on 0-dim operands) promotes to float64: keep the operator's dtype
            out.append(torch.cat([hv[k].reshape(block.shape[0], -1) for k in self.point], dim=1).to(self.dtype))
            self.n_hvp += block.shape[0]
        return torch.cat(out).T

    def quadform(self, vectors: torch.Tensor) -> torch.Tensor:
        """The quadratic forms ``v_j^T H v_j``, exact (layerwise products get them from a forward-only
        second-order pass, cheaper than ``H v``).

        Args:
            vectors: ``(size, k)``.

        Returns:
            ``(k,)``.

        Raises:
            ValueError: ``vectors`` does not have ``size`` rows.
        """
        out = []
        for block in self._blocks(vectors):
            out.append(self.loss.quadform(self._tangents(block)).to(self.dtype))
            self.n_hvp += block.shape[0]
        return torch.cat(out)

    def dense(self) -> torch.Tensor:
        """The explicit matrix from ``size`` products: for small models and tests.

        Returns:
            ``(size, size)`` on the operator's device and in its dtype.
        """
        return self.matmat(torch.eye(self.size, dtype=self.dtype, device=self.device))

    def _blocks(self, vectors: torch.Tensor) -> Iterator[torch.Tensor]:
        """The columns of ``vectors`` (n, k) as rows, in blocks of at most ``max_block``: (b, n) each, made
        contiguous one block at a time (each direction's per-parameter views are then dense, which the products'
        matrix multiplications read much faster than rows strided by k)."""
        if vectors.shape[0] != self.size:
            raise ValueError(f"vectors have {vectors.shape[0]} rows, the operator acts on {self.size}")
        return (block.contiguous() for block in vectors.to(self.dtype).T.split(self.max_block))

    def _tangents(self, block: torch.Tensor) -> Params:
        """Rows of ``block`` (b, n) as a parameter dict with a leading b axis."""
        out, i = {}, 0
        for name, p in self.point.items():
            out[name] = block[:, i : i + p.numel()].reshape(block.shape[0], *p.shape)
            i += p.numel()
        return out


class DenseOperator:
    """A symmetric matrix as an operator: reference values for the estimators, and tests.

    Args:
        matrix: ``(n, n)``, symmetric (not checked); its dtype and device are the operator's.

    Raises:
        ValueError: ``matrix`` is not square.
    """

    def __init__(self, matrix: torch.Tensor):
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be square (n, n), got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.size, self.dtype, self.device = matrix.shape[0], matrix.dtype, matrix.device
        self.n_hvp = 0

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Products with a block of columns.

        Args:
            vectors: ``(n, k)``.

        Returns:
            ``matrix @ vectors``, ``(n, k)``.
        """
        self.n_hvp += vectors.shape[1]
        return self.matrix @ vectors


def layer_blocks(model: nn.Module) -> dict[str, list[str]]:
    """Trainable parameter names grouped by owning module, for per-layer blocks of the Hessian.

    Args:
        model: any module.

    Returns:
        Module name -> its parameters with ``requires_grad`` (``"0.weight", "0.bias"`` under ``"0"``), in
        ``named_parameters`` order; each list can be passed as ``params`` to :class:`HessianOperator`.
    """
    blocks: dict[str, list[str]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            blocks.setdefault(name.rpartition(".")[0] or name, []).append(name)
    return blocks
