"""The MAML engine: one pure inner loop, batched over tasks with ``vmap`` (Finn et al. 2017, Algorithms 1-2).

Inner loop (section 2.2, Algorithm 2 lines 5-6), for one task with support set (x_s, y_s)::

    theta_0 = theta;   theta_{j+1} = theta_j - alpha * grad_theta L(f(theta_j; x_s), y_s)

and the meta-objective (equation 1 and Algorithm 2 line 10) is the query loss at theta_steps, averaged over
the tasks of a meta-batch. :func:`adapt` is that inner loop as a pure function of a parameter dict; meta-training
and evaluation both call it. The user's ``nn.Module`` is only run through ``torch.func.functional_call``.

* Second order by default: ``torch.func.grad`` inside the outer autograd graph, so the meta-gradient flows
  through the inner gradient (Hessian-vector products). ``first_order=True`` computes the inner gradients
  outside the graph (the paper's first-order approximation, section 5.2).
* Inner learning rate alpha: fixed, one learned scalar, or one learned tensor per parameter with the
  parameter's shape (Meta-SGD, Li et al. 2017); see :class:`InnerLR`.
* ``adapt_names`` restricts the inner loop to some parameters (e.g. the head); the others still receive
  meta-gradients. The default, as in the reference, adapts everything except the parameters of normalisation
  layers (batch-norm offsets and scales, group and layer norm); pass ``adapt_names`` to adapt those too.
* All tasks of a meta-batch run at once under ``torch.func.vmap`` (per-task weights become grouped
  convolutions), in chunks of ``chunk_size`` tasks whose backward passes run one after another to bound
  memory; ``vectorize=False`` is the equivalent plain per-task loop.
* Devices: the engine computes where its parameters are (``engine.to(device)``). Task batches are sampled on the
  CPU (so a run sees the same tasks on every device) and each public method moves its batch to the engine's
  device once (pinned, asynchronous copies to a GPU); nothing is copied back inside the inner loop.
* Precision: ``meta_backward(..., precision="bf16"|"fp16")`` runs the forward passes under autocast, for
  first-order MAML only: second-order MAML backpropagates through the inner gradients (a double backward), which
  autocast does not make safe, so it is refused (:func:`check_training_precision`). Evaluation is always fp32.

Batch norm policies (:data:`BN_POLICIES`), for models whose normalisation layers use batch statistics:

* ``"transductive"`` (reference, default): the query set is one batch, normalised with its own statistics;
  the support set likewise during adaptation. Under vmap each task uses its own statistics.
* ``"per-query"``: non-transductive. Each query example is normalised together with the task's support set
  only (a batch of the K*N support examples plus that one query; Nichol et al. 2018's non-transductive
  evaluation), so predictions do not depend on the other queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from icml17.core import device as devices
from icml17.core.config import ConfigError
from icml17.core.functional import LossFn, Params
from icml17.data.episodes import TaskBatch
from icml17.maml.losses import check_loss_fn
from icml17.maml.models import is_norm_parameter

LR = float | torch.Tensor | Mapping[str, torch.Tensor]
ForwardFn = Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]
BN_POLICIES = ("transductive", "per-query")
LR_MODES = ("fixed", "scalar", "per-parameter")
SECOND_ORDER_HALF = (
    "second-order MAML backpropagates through its inner gradients (a double backward), which is not safe under autocast"
)


def check_training_precision(
    precision: str, device: torch.device | str, first_order: bool, how: str = "first_order=True"
) -> None:
    """Refuse a training precision before any work: bf16/fp16 need first-order MAML (and a device that has them).

    ``how`` names the way to switch to first-order MAML in the message (the CLI says ``--set first_order=true``).

    Raises:
        DeviceError: the precision is not available for this method or device.
    """
    allowed = devices.PRECISIONS if first_order else ("fp32",)
    devices.check_precision(
        precision,
        device,
        allowed=allowed,
        why_not=f"{SECOND_ORDER_HALF}; half precision needs first-order MAML ({how})",
    )


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` computes: the device of its first parameter (the CPU for a model without any)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def batch_to(batch: TaskBatch, device: torch.device | str) -> TaskBatch:
    """``batch`` on ``device``, moved in one pass (pinned, asynchronous copies from the CPU to a GPU); the same
    object when it is already there."""
    device = torch.device(device)
    tensors = (batch.support_x, batch.support_y, batch.query_x, batch.query_y, *batch.info.values())
    if all(t.device == device for t in tensors):
        return batch

    def move(t: torch.Tensor) -> torch.Tensor:
        return devices.to_device(devices.pin(t, device) if t.device.type == "cpu" else t, device)

    return batch.map(move)


def _step_size(lr: LR, name: str) -> float | torch.Tensor:
    return lr[name] if isinstance(lr, Mapping) else lr


def adapt(
    params: Mapping[str, torch.Tensor],
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    *,
    forward: ForwardFn,
    loss_fn: LossFn,
    steps: int,
    lr: LR,
    first_order: bool = False,
    adapt_names: Sequence[str] | None = None,
    trajectory: bool = False,
) -> Params | list[Params]:
    """``steps`` gradient steps on one task's support set: MAML's inner loop, a pure function.

    No module state is touched, so it runs under ``vmap`` (over tasks) and inside autograd (the meta-gradient
    flows through it unless ``first_order``).

    Args:
        params: every parameter ``forward`` needs (name -> tensor).
        support_x: the task's support inputs, (S, ...).
        support_y: the support targets, (S, ...).
        forward: ``forward(params, x) -> outputs``, e.g. ``MAML.forward_params``.
        loss_fn: ``loss_fn(outputs, targets) -> 0-dim tensor``.
        steps: how many gradient steps (0 returns ``params`` unchanged).
        lr: the step size alpha: a float, a 0-dim tensor, or a dict with one tensor per adapted parameter
            (broadcastable to it, Meta-SGD).
        first_order: treat the inner gradients as constants (FOMAML): no second-order terms downstream.
        adapt_names: the parameters to adapt (default: all); the others are passed through unchanged.
        trajectory: return every iterate instead of the last (evaluation scores each step).

    Returns:
        The adapted parameter dict, or with ``trajectory`` the list ``[theta_0, ..., theta_steps]``.

    Examples:
        One step on a linear model with squared error, checked against the closed-form gradient:

        >>> import torch
        >>> w = {"w": torch.tensor([1.0])}
        >>> x, y = torch.tensor([[2.0]]), torch.tensor([[0.0]])
        >>> fast = adapt(w, x, y, forward=lambda p, x: x * p["w"], loss_fn=lambda o, t: ((o - t) ** 2).mean(),
        ...              steps=1, lr=0.1)
        >>> fast["w"]   # 1 - 0.1 * d/dw (2w)^2 = 1 - 0.1 * 8
        tensor([0.2000])
    """
    names = list(params) if adapt_names is None else list(adapt_names)
    fixed = {n: p for n, p in params.items() if n not in names}
    fast = {n: params[n] for n in names}

    def support_loss(p: Params) -> torch.Tensor:
        return loss_fn(forward({**fixed, **p}, support_x), support_y)

    path = [{**fixed, **fast}]
    for _ in range(steps):
        if first_order:
            with torch.no_grad():  # the inner gradient is a constant for the outer gradient
                grads = grad(support_loss)({n: p.detach() for n, p in fast.items()})
        else:
            grads = grad(support_loss)(fast)
        fast = {n: fast[n] - _step_size(lr, n) * grads[n] for n in names}
        if trajectory:
            path.append({**fixed, **fast})
    return path if trajectory else {**fixed, **fast}


class InnerLR(nn.Module):
    """The inner learning rate alpha: ``fixed`` (a constant), ``scalar`` (one learned number) or
    ``per-parameter`` (a learned tensor shaped like each adapted parameter, Meta-SGD).

    Learned rates are parameters of the module, so the meta-optimizer updates them with the initialisation.

    Args:
        params: the adapted parameters (name -> tensor); ``per-parameter`` rates take their shapes.
        mode: one of ``"fixed"``, ``"scalar"``, ``"per-parameter"``.
        init: the initial (or fixed) step size, > 0.

    Raises:
        ConfigError: an unknown mode or a step size that is not positive.
    """

    def __init__(self, params: Mapping[str, torch.Tensor], mode: str, init: float):
        super().__init__()
        if mode not in LR_MODES:
            raise ConfigError(f"inner_lr_mode {mode!r} is not one of {LR_MODES}")
        if not init > 0:
            raise ConfigError(f"inner learning rate must be positive, got {init}")
        self.mode, self.init = mode, float(init)
        self.names = list(params)
        if mode == "scalar":
            self.alpha = nn.Parameter(torch.tensor(float(init)))
        elif mode == "per-parameter":
            self.alphas = nn.ParameterDict(
                {n.replace(".", "__"): nn.Parameter(torch.full_like(p.detach(), init)) for n, p in params.items()}
            )

    def forward(self) -> LR:
        """The step size in the form :func:`adapt` takes: a float, a 0-dim tensor, or a dict per parameter."""
        if self.mode == "fixed":
            return self.init
        if self.mode == "scalar":
            return self.alpha
        return {n: self.alphas[n.replace(".", "__")] for n in self.names}


@dataclass
class TaskMetrics:
    """Per-task query loss and score (accuracy or MSE), each shaped (T,) or (T, steps + 1) in evaluation.

    Attributes:
        loss: the query loss of each task after adaptation.
        score: the query score of each task (the ``score_fn`` of :class:`MAML`).
    """

    loss: torch.Tensor
    score: torch.Tensor


class MAML(nn.Module):
    """Meta-learns the initial parameters of ``model`` (and optionally the inner learning rates).

    ``meta_backward(batch)`` accumulates the meta-gradient in ``.grad`` of ``self.parameters()`` (the model's
    parameters and any learned learning rates) and returns per-task metrics; ``meta_loss(batch)`` returns the
    differentiable meta-loss instead; ``evaluate(batch, steps)`` scores the query set after 0..steps inner steps.
    The wrapped module is never modified: it only runs through ``functional_call`` with adapted parameters.

    Args:
        model: any ``nn.Module`` mapping a batch of inputs to outputs. Batch norm layers must use batch statistics
            (``track_running_stats=False``).
        loss_fn: ``loss_fn(outputs, targets) -> 0-dim tensor`` for the inner steps and the meta-objective; a loss
            that needs more (``shots=``) is bound first, e.g. :class:`~icml17.maml.losses.CrossEntropy`.
        score_fn: what the metrics report per task (e.g. accuracy); default: the loss.
        inner_steps: inner gradient steps in meta-training.
        inner_lr: the inner step size alpha (its initial value when learned).
        lr_mode: ``"fixed"``, ``"scalar"`` or ``"per-parameter"`` (see :class:`InnerLR`).
        first_order: the first-order approximation (FOMAML): no gradient through the inner gradients.
        adapt_names: the parameters adapted per task; default: all but those of normalisation layers.
        bn_policy: ``"transductive"`` or ``"per-query"`` (see :data:`BN_POLICIES` in the module docstring).
        vectorize: run the tasks under ``vmap`` (True) or one by one (False); the results are the same.
        chunk_size: tasks per ``vmap`` chunk in ``meta_backward`` (0: all at once); bounds memory.

    Raises:
        ConfigError: an impossible setting, a batch norm layer with running statistics, an unknown parameter
            name in ``adapt_names``, or a loss that cannot be called as ``loss_fn(outputs, targets)``.

    Examples:
        Five sine-like regression tasks of 4 support and 6 query points each:

        >>> import torch
        >>> from torch import nn
        >>> from icml17.maml import MAML, TaskBatch, mse
        >>> _ = torch.manual_seed(0)
        >>> maml = MAML(nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)), loss_fn=mse, inner_lr=0.01)
        >>> x = torch.rand(5, 10, 1)
        >>> batch = TaskBatch(x[:, :4], torch.sin(x[:, :4]), x[:, 4:], torch.sin(x[:, 4:]))
        >>> metrics = maml.meta_backward(batch)          # fills .grad of every meta-parameter
        >>> metrics.loss.shape, all(p.grad is not None for p in maml.parameters())
        (torch.Size([5]), True)
        >>> maml.evaluate(batch, steps=3).score.shape    # query MSE after 0, 1, 2, 3 steps
        torch.Size([5, 4])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss_fn: LossFn,
        score_fn: LossFn | None = None,
        inner_steps: int = 1,
        inner_lr: float = 0.01,
        lr_mode: str = "fixed",
        first_order: bool = False,
        adapt_names: Sequence[str] | None = None,
        bn_policy: str = "transductive",
        vectorize: bool = True,
        chunk_size: int = 0,
    ):
        super().__init__()
        if bn_policy not in BN_POLICIES:
            raise ConfigError(f"bn_policy {bn_policy!r} is not one of {BN_POLICIES}")
        if inner_steps < 0:
            raise ConfigError(f"inner_steps must be >= 0, got {inner_steps}")
        if chunk_size < 0:
            raise ConfigError(f"chunk_size must be >= 0 (0 = all tasks at once), got {chunk_size}")
        check_loss_fn(loss_fn, "loss_fn")
        score_fn = loss_fn if score_fn is None else score_fn
        check_loss_fn(score_fn, "score_fn")
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                raise ConfigError(
                    f"batch norm layer {name!r} tracks running statistics; MAML's functional passes cannot "
                    f"update them per task. Build it with track_running_stats=False (batch statistics, the "
                    f"reference's transductive setting)"
                )
        self.model = model
        all_names = [n for n, p in model.named_parameters() if p.requires_grad]
        # default as the reference: normalisation parameters are meta-learned but not adapted per task
        names = [n for n in all_names if not is_norm_parameter(n, model)] if adapt_names is None else list(adapt_names)
        unknown = sorted(set(names) - set(all_names))
        if unknown:
            raise ConfigError(f"cannot adapt unknown parameters {unknown}; the model has {all_names}")
        self.adapt_names = names
        self.inner_lr = InnerLR({n: dict(model.named_parameters())[n] for n in names}, lr_mode, inner_lr)
        self.loss_fn, self.score_fn = loss_fn, score_fn
        self.inner_steps, self.first_order = inner_steps, first_order
        self.bn_policy, self.vectorize, self.chunk_size = bn_policy, vectorize, chunk_size

    # -- functional pieces ------------------------------------------------------------------------------
    def forward_params(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Run the wrapped module with ``params`` (its buffers and other parameters unchanged).

        Args:
            params: parameters to use in place of the module's (name -> tensor); missing ones keep their values.
            x: a batch of inputs.

        Returns:
            The module's outputs.
        """
        return functional_call(self.model, dict(params), (x,), strict=False)

    def predict_query(self, params: Params, support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """Query outputs (Q, ...) under the batch-norm policy.

        Args:
            params: the task's adapted parameters.
            support_x: its support inputs (S, ...), which ``per-query`` normalises with each query.
            query_x: its query inputs (Q, ...).

        Returns:
            The outputs for the queries, (Q, ...).
        """
        if self.bn_policy == "transductive":
            return self.forward_params(params, query_x)

        def one(q: torch.Tensor) -> torch.Tensor:  # q: (...) one query; support + q normalised together
            return self.forward_params(params, torch.cat([support_x, q.unsqueeze(0)]))[-1]

        return vmap(one)(query_x)

    def params(self) -> Params:
        """The meta-parameters of the wrapped model (those with ``requires_grad``), by name."""
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def _task(self, steps: int, first_order: bool, trajectory: bool):
        params, lr = self.params(), self.inner_lr()

        def task(sx, sy, qx, qy):  # one task: (S, ...), (S,), (Q, ...), (Q,)
            fast = adapt(
                params,
                sx,
                sy,
                forward=self.forward_params,
                loss_fn=self.loss_fn,
                steps=steps,
                lr=lr,
                first_order=first_order,
                adapt_names=self.adapt_names,
                trajectory=trajectory,
            )
            if not trajectory:
                out = self.predict_query(fast, sx, qx)
                return self.loss_fn(out, qy), self.score_fn(out, qy)
            outs = [self.predict_query(p, sx, qx) for p in fast]
            return (torch.stack([self.loss_fn(o, qy) for o in outs]), torch.stack([self.score_fn(o, qy) for o in outs]))

        return task

    def _map(self, fn, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply a per-task function to every task: vmap (chunked) or a plain loop. Returns stacked outputs."""
        args = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        if self.vectorize:
            return vmap(fn, chunk_size=self.chunk_size or None)(*args)
        outs = [fn(*(a[t] for a in args)) for t in range(batch.num_tasks)]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

    # -- public API -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the engine computes: its model's parameters' device."""
        return model_device(self.model)

    def place(self, batch: TaskBatch) -> TaskBatch:
        """``batch`` on the engine's device (see :func:`batch_to`); every public method calls it once.

        Args:
            batch: the tasks to move.

        Returns:
            The same batch on :attr:`device` (the same object when it is already there).
        """
        return batch_to(batch, self.device)

    def meta_loss(
        self, batch: TaskBatch, *, steps: int | None = None, first_order: bool | None = None
    ) -> tuple[torch.Tensor, TaskMetrics]:
        """Mean query loss over the tasks after adaptation, differentiable w.r.t. ``self.parameters()``.

        Holds every task's graph at once; :meth:`meta_backward` bounds memory by chunks instead.

        Args:
            batch: the meta-batch of T tasks.
            steps: inner steps (default: ``inner_steps``).
            first_order: override the engine's ``first_order`` for this call.

        Returns:
            ``(meta_loss, metrics)``: a 0-dim tensor, and the per-task :class:`TaskMetrics` (detached, (T,)).
        """
        fo = self.first_order if first_order is None else first_order
        loss, score = self._map(self._task(self.inner_steps if steps is None else steps, fo, False), self.place(batch))
        return loss.mean(), TaskMetrics(loss.detach(), score.detach())

    def meta_backward(
        self, batch: TaskBatch, *, precision: str = "fp32", scaler: torch.amp.GradScaler | None = None
    ) -> TaskMetrics:
        """Accumulate d(mean query loss)/d(parameters) into ``.grad``, one chunk of tasks at a time.

        Each chunk's graph is freed after its backward pass, so memory grows with the chunk size, not the
        meta-batch: ``chunk_size`` tasks at once under vmap, one task at a time without it.

        Args:
            batch: the meta-batch of T tasks.
            precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` to run the forward passes under autocast (first-order
                MAML only; see :func:`check_training_precision`).
            scaler: with fp16, scales the loss before each backward pass, so the gradients come out scaled.

        Returns:
            The per-task :class:`TaskMetrics`, each (T,).

        Raises:
            DeviceError: a half precision with second-order MAML, or one the device lacks.
        """
        if precision != "fp32":
            check_training_precision(precision, self.device, self.first_order)
        batch = self.place(batch)
        T = batch.num_tasks
        size = (self.chunk_size or T) if self.vectorize else 1
        task = self._task(self.inner_steps, self.first_order, False)

        def backward(loss: torch.Tensor) -> None:
            (scaler.scale(loss) if scaler is not None else loss).backward()

        losses, scores = [], []
        for start in range(0, T, size):
            chunk = batch[start : start + size]
            args = (chunk.support_x, chunk.support_y, chunk.query_x, chunk.query_y)
            with devices.autocast(self.device, precision):
                if self.vectorize:
                    loss, score = vmap(task)(*args)
                    mean = loss.sum() / T
                else:
                    loss, score = task(*(a[0] for a in args))
                    mean = loss / T
            backward(mean)
            losses.append(loss.detach().reshape(-1))
            scores.append(score.detach().reshape(-1))
        return TaskMetrics(torch.cat(losses), torch.cat(scores))

    def evaluate(self, batch: TaskBatch, steps: int) -> TaskMetrics:
        """Query loss and score after 0, 1, ..., ``steps`` inner steps, without an outer graph.

        Args:
            batch: the T tasks to score.
            steps: the inner steps to take (evaluation uses more than training, 10 in the paper).

        Returns:
            :class:`TaskMetrics` with loss and score each (T, steps + 1), on the engine's device, in fp32.
        """
        with torch.no_grad():
            loss, score = self._map(self._task(steps, True, True), self.place(batch))
        return TaskMetrics(loss, score)


def check_output_size(model: nn.Module, example_x: torch.Tensor, expected: int, what: str = "ways") -> None:
    """Raise ConfigError unless ``model(example_x)`` has ``expected`` outputs per example."""
    with torch.no_grad():
        out = model(example_x.to(model_device(model)))
    if out.shape[-1] != expected:
        raise ConfigError(
            f"the model outputs {out.shape[-1]} values per example but the tasks have "
            f"{what} = {expected}; build the model with {expected} outputs"
        )
