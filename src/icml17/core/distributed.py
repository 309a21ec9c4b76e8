"""torch.distributed for every training loop: set-up from torchrun's environment, rank-0 I/O, reductions.

Launched by ``torchrun --nproc_per_node=N -m icml17 <system> train ...`` the environment carries ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; without it everything runs as one process and
nothing here does any communication. The backend is gloo on CPU and NCCL with one GPU per process.

Sharding convention used by the systems: every rank draws the *global* batch from the same seeded stream and
keeps its own slice (``shard``). Random streams therefore stay identical on all ranks (one checkpoint holds them
all), and a run gives the same global batches, hence the same result up to floating-point summation order,
whatever the number of processes.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from icml17.core.errors import UserError

# a peer that dies makes the others fail their next collective within this time instead of hanging
TIMEOUT_S = float(os.environ.get("ICML17_DIST_TIMEOUT", "120"))


class DistributedError(UserError):
    """A distributed run cannot start or a peer process failed; the message says what to do."""

    same_on_every_rank = True  # rank 0 alone reports it (:func:`icml17.core.errors.defer_to_rank0`)


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


_CONTEXT = Context()


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (even alone: one process on one GPU still joins NCCL)."""
    return "MASTER_ADDR" in os.environ and "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(backend: str | None = None) -> Context:
    """Join the process group described by the environment (a no-op for a single process); idempotent."""
    global _CONTEXT
    if not launched_by_torchrun():
        return _CONTEXT
    if dist.is_initialized():
        return _CONTEXT
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError(
            "the nccl backend needs GPUs and none is visible; on CPU use gloo (the default without GPUs)"
        )
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise DistributedError(
                f"local rank {local} has no GPU (this node has {torch.cuda.device_count()}); "
                f"start at most that many processes per node"
            )
        torch.cuda.set_device(local)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=_dt.timedelta(seconds=TIMEOUT_S))
    _CONTEXT = Context(rank, world, local, backend)
    return _CONTEXT


def context() -> Context:
    return _CONTEXT


def teardown() -> None:
    global _CONTEXT
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTEXT = Context()


def device() -> torch.device:
    """This process's device: its GPU under NCCL, else the CPU."""
    if _CONTEXT.backend == "nccl":
        return torch.device("cuda", _CONTEXT.local_rank)
    return torch.device("cpu")


def barrier() -> None:
    if _CONTEXT.enabled:
        dist.barrier()


def shard(n: int, ctx: Context | None = None) -> slice:
    """This rank's slice of ``n`` items (ranks get equal shares; ``n`` must divide evenly)."""
    ctx = ctx or _CONTEXT
    if n % ctx.world_size:
        raise DistributedError(
            f"{n} items cannot be split evenly over {ctx.world_size} processes; choose a "
            f"batch divisible by the number of processes"
        )
    per = n // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def check_divisible(name: str, n: int, ctx: Context | None = None) -> None:
    """Refuse, before any work, a batch that the processes cannot share equally (saying what to change)."""
    ctx = ctx or _CONTEXT
    if n % ctx.world_size:
        lower = n - n % ctx.world_size
        raise DistributedError(
            f"{name}={n} is not divisible by the {ctx.world_size} processes; use "
            f"{name}={lower or ctx.world_size} or a number of processes that divides {n}",
            param=name,
        )


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce the mean of ``.grad`` over ranks, in one flat buffer (a no-op for one process)."""
    if not _CONTEXT.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _CONTEXT.world_size
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place, returned); the identity for one process."""
    if _CONTEXT.enabled:
        dist.all_reduce(t)
    return t


def sum_over_ranks(values: Iterable[float]) -> list[float]:
    """Python numbers summed over ranks in one float64 all-reduce on this process's device (every rank gets the
    same sums); the numbers themselves for one process."""
    values = [float(v) for v in values]
    if not _CONTEXT.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device())
    dist.all_reduce(t)
    return t.tolist()


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate equal-shaped ``t`` from every rank along dim 0, in rank order."""
    if not _CONTEXT.enabled:
        return t
    out = [torch.empty_like(t) for _ in range(_CONTEXT.world_size)]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out)


def same_on_all_ranks(text: str, what: str) -> None:
    """Refuse to start when ranks disagree (e.g. on the config): every rank compares with rank 0's."""
    if not _CONTEXT.enabled:
        return
    objs = [None] * _CONTEXT.world_size
    dist.all_gather_object(objs, text)
    bad = [r for r, o in enumerate(objs) if o != objs[0]]
    if bad:
        raise DistributedError(
            f"ranks {bad} were started with a different {what} from rank 0; start every process with the same command"
        )
