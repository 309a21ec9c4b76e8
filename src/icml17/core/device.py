"""Which device a process computes on, and the few device-specific settings every system shares.

One rule for every command: ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), else
``$ICML17_DEVICE``, else ``auto``, which takes the GPU when one is visible and the CPU otherwise. Under torchrun with
NCCL each process takes its ``LOCAL_RANK`` GPU whatever was asked. A device that is not there is refused in one line
before any work starts.

The library itself follows the device of the model or input it is given; only the command layer chooses.
Random draws that decide *data* (tasks, episodes, environment seeds) stay on CPU generators so that a run sees the
same tasks on every device; draws inside models (sampling noise) use :func:`generator` on the model's device.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator

import torch

from icml17.core.config import ConfigError
from icml17.core.errors import UserError

DEVICE_ENV = "ICML17_DEVICE"
THREADS_ENV = "ICML17_THREADS"  # named again in icml17.cli_args, which must not import torch
PRECISIONS = ("fp32", "bf16", "fp16")
_HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(UserError):
    """The device asked for is not available, or a setting does not apply to it."""


def resolve(spec: str | torch.device | None = None) -> torch.device:
    """The device named by ``spec`` (the CLI's ``--device``), else ``$ICML17_DEVICE``, else ``auto``; checked to exist.

    Raises:
        DeviceError: the name is not a device, or the device is not present on this machine.
    """
    from icml17.core import distributed

    source = "device"
    if spec is None or spec == "":
        spec, source = os.environ.get(DEVICE_ENV) or "auto", DEVICE_ENV
    if distributed.context().backend == "nccl":
        return distributed.device()  # one GPU per process, chosen by torchrun's LOCAL_RANK
    if isinstance(spec, torch.device):
        device = spec
    elif spec == "auto":
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise DeviceError(
                f"{source}={spec!r} is not a device; use auto, cpu, cuda, cuda:N or mps", param="device"
            ) from None
    return _check_present(device, source)


def _check_present(device: torch.device, source: str) -> torch.device:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"{source}={device}: CUDA is not available here (this torch is "
                f"{torch.__version__}); install a CUDA build of torch or use device='cpu'",
                param="device",
            )
        count = torch.cuda.device_count()
        index = 0 if device.index is None else device.index
        if index >= count:
            raise DeviceError(
                f"{source}={device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}", param="device"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError(
                f"{source}=mps: Apple's MPS backend is not available here; use device='cpu'", param="device"
            )
        return device
    if device.type not in ("cpu", "meta"):
        raise DeviceError(f"{source}={device}: icml17 runs on cpu, cuda and mps devices")
    return device


def configure(
    spec: str | torch.device | None = None, threads: int | str | None = None, *, tf32: bool = False
) -> torch.device:
    """Set up a command's compute: the thread count (:func:`apply_threads`), the device (:func:`resolve`, checked
    to exist before any work starts) and, on CUDA, TF32 (``tf32``: on for training unless asked off, off for every
    command that reports a number). Returns the device.
    """
    apply_threads(threads)
    dev = resolve(spec)
    if dev.type == "cuda":
        set_tf32(tf32)
    return dev


# ----------------------------------------------------------------------------------------------- threads
def resolve_threads(value: int | str | None = None) -> int:
    """The intra-op thread count: ``value`` (``--threads``), else ``$ICML17_THREADS``, else 1.

    One thread per process is the default because small convolutions run many times slower when two jobs
    share two cores with several threads each; ask for more with ``--threads N``.

    Raises:
        ConfigError: the count is not a whole number >= 1.
    """
    source = "threads"
    if value is None:
        value, source = os.environ.get(THREADS_ENV), THREADS_ENV
        if value is None or value == "":
            return 1
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{source}={value!r} is not a whole number; give a thread count >= 1 (for example {source}=1)",
            param="threads",
        ) from None
    if n < 1:
        raise ConfigError(
            f"{source}={n} is not a valid thread count; give 1 or more (cores here: {os.cpu_count()})", param="threads"
        )
    return n


def apply_threads(value: int | str | None = None) -> int:
    """Resolve the thread count and hand it to torch (warning when it exceeds the cores); returns it."""
    n = resolve_threads(value)
    cores = os.cpu_count() or 1
    if n > cores:
        print(
            f"warning: {n} threads on a machine with {cores} cores; threads beyond the cores slow the work down",
            file=sys.stderr,
        )
    torch.set_num_threads(n)
    return n


def describe(device: str | torch.device = "cpu") -> str:
    """The hardware behind ``device`` for records: e.g. ``'NVIDIA H100 80GB HBM3 (CUDA 12.6)'`` or
    ``'2-core CPU (Intel Xeon ...)'``."""
    from icml17.core.results import hardware_description

    return hardware_description(device)


def generator(device: str | torch.device, seed: int | None = None) -> torch.Generator:
    """A random generator on ``device`` (for draws inside models, such as sampling noise), seeded when asked."""
    g = torch.Generator(device=torch.device(device))
    if seed is not None:
        g.manual_seed(int(seed))
    return g


def to_device(tree, device: torch.device, non_blocking: bool | None = None):
    """``tree`` (a tensor, or a list/tuple/dict of them) moved to ``device`` in one pass.

    Copies from pinned memory to a GPU are asynchronous (``non_blocking``) so a batch moves while the previous step
    still runs; elsewhere they are ordinary copies.
    """
    if non_blocking is None:
        non_blocking = torch.device(device).type == "cuda"
    if isinstance(tree, torch.Tensor):
        return tree.to(device, non_blocking=non_blocking)
    if isinstance(tree, dict):
        return {k: to_device(v, device, non_blocking) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        moved = [to_device(v, device, non_blocking) for v in tree]
        return type(tree)(*moved) if hasattr(tree, "_fields") else type(tree)(moved)
    return tree


def pin(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` in page-locked memory when it is about to go to a GPU (faster, asynchronous copies)."""
    if torch.device(device).type != "cuda" or tensor.device.type != "cpu" or tensor.is_pinned():
        return tensor
    return tensor.pin_memory()


# ------------------------------------------------------------------------------------------- precision
def check_precision(
    precision: str, device: torch.device, *, allowed: tuple[str, ...] = PRECISIONS, why_not: str = ""
) -> None:
    """Refuse a training precision that the device or the method does not support, naming the alternative.

    Raises:
        DeviceError: ``precision`` is not one of ``allowed`` (``why_not`` says why) or the device lacks it.
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision not in allowed:
        raise DeviceError(
            f"precision {precision} is not available here{': ' + why_not if why_not else ''}; "
            f"use {' or '.join(allowed)}"
        )
    dev = torch.device(device)
    if precision == "fp16" and dev.type == "cpu":
        raise DeviceError("precision fp16 needs a GPU (CPU autocast computes in bfloat16); use bf16 or fp32")
    if precision == "fp16" and dev.type == "mps":
        raise DeviceError("precision fp16 on MPS has no gradient scaler here; use bf16 or fp32")
    if precision == "bf16" and dev.type == "cuda" and not _bf16_native(dev):
        raise DeviceError(f"precision bf16 is not supported by {torch.cuda.get_device_name(dev)}; use fp16 or fp32")


def _bf16_native(dev: torch.device) -> bool:
    with torch.cuda.device(dev):
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch without the keyword
            return torch.cuda.is_bf16_supported()


def autocast(device: torch.device, precision: str = "fp32"):
    """The autocast context for ``precision`` on ``device`` (a no-op context for fp32)."""
    dev = torch.device(device)
    if precision == "fp32" or dev.type not in ("cuda", "cpu", "mps"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=_HALF[precision])


def grad_scaler(device: torch.device, precision: str = "fp32") -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 has fp32's exponent range and needs none)."""
    dev = torch.device(device)
    return torch.amp.GradScaler(
        dev.type if dev.type in ("cuda", "cpu") else "cpu", enabled=precision == "fp16" and dev.type == "cuda"
    )


def set_tf32(enabled: bool = True) -> bool:
    """TF32 matrix products and convolutions on Ampere and later GPUs (about 10 bits of mantissa, several times the
    fp32 throughput); on by default, recorded in every record, off with ``--no-tf32``. Returns the setting."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    return bool(enabled)


def tf32_enabled() -> bool:
    """Whether matrix products or convolutions may run in TF32 (either flag)."""
    return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for timing); nothing to wait for on the CPU."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


# ---------------------------------------------------------------------------------------- out of memory
class OutOfMemory(UserError):
    """The device ran out of memory; the message names the setting that lowers the need."""


@contextlib.contextmanager
def explain_out_of_memory(
    knobs: str, device: torch.device | str | None = None, param: str | tuple[str, ...] | None = None
) -> Iterator[None]:
    """Turn a device out-of-memory error into one line that names ``knobs`` (what to lower).

    Also a CPU allocation that cannot succeed (torch's CPU allocator refusing, numpy's ``MemoryError``): a size
    asked for (``meta_batch=1e9``) that no memory holds. ``param`` names the knobs' parameters (for the CLI's
    flags). The training loop checkpoints only after a finished step, so the last checkpoint on disk is the one
    from before the failing step and stays intact.
    """
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        asked = re.search(r"tried to allocate (\d+) bytes", str(e))
        if not isinstance(e, (torch.OutOfMemoryError, MemoryError)) and "can't allocate memory" not in str(e):
            raise  # another RuntimeError: a bug, with its traceback
        where = f" on {device}" if device is not None else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else "out of memory"
        if asked:
            first = f"{int(asked.group(1)) / 1e9:.3g} GB asked for at once"
        raise OutOfMemory(
            f"out of memory{where} ({first[:120]}); lower {knobs} (a training run's last checkpoint is intact)",
            param=param,
        ) from None
