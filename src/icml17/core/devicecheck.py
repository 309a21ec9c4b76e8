"""Run code on a stand-in for a GPU on a machine without one, so that a tensor made on the wrong device fails.

On a CPU-only machine every tensor lives on the CPU, so code that forgets ``device=`` (``torch.zeros(n)`` beside a
model on a GPU) passes every test and breaks on the first GPU. Inside :func:`stand_in_device`, tensors moved to
``STAND_IN`` (``torch.device("meta")``) keep their real values on the CPU but report the other device, and every
operation checks what CUDA checks: a CPU tensor of one or more dimensions mixed with stand-in tensors raises
:class:`WrongDeviceError` naming the operation and the shape, and so does a CPU random generator used for a draw on
the stand-in device (or the reverse). Everything else (autograd, ``torch.func`` transforms, optimizers,
``.item()``) runs for real, so losses, likelihoods and samples can be compared with a CPU run.

A module's dtype cast (``model.double()``) after its move to the stand-in device keeps the old values under the new
dtype unless ``torch.__future__.set_swap_module_params_on_conversion(True)`` is set: cast first, then move.

Transfers stay legal as on a GPU: ``.to(device)``, ``.cpu()``, ``copy_`` between devices, and zero-dimensional CPU
tensors (CUDA accepts CPU scalars). :attr:`StandInDevice.transfers_to_cpu` counts the copies back to the CPU
(``.cpu()``, ``.item()``, ``.tolist()``), so a test can bound the round trips an inner loop makes.

Examples:
    >>> import torch
    >>> from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device
    >>> with stand_in_device():
    ...     w = torch.ones(3).to(STAND_IN)
    ...     ok = w + torch.ones(3, device=w.device)     # made on the model's device
    ...     try:
    ...         w + torch.ones(3)                        # made on the CPU: a GPU would refuse it
    ...     except WrongDeviceError:
    ...         print("caught")
    caught
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch.utils._mode_utils import no_dispatch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

STAND_IN = torch.device("meta")

_TRANSFERS = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default, torch.ops.aten.copy.default}
_TO_HOST = {torch.ops.aten._local_scalar_dense.default}


class WrongDeviceError(RuntimeError):
    """A CPU tensor or generator was used beside tensors on the model's (stand-in) device."""


class _Elsewhere(torch.Tensor):
    """A CPU tensor that reports the stand-in device; only :class:`StandInDevice` computes with it."""

    @staticmethod
    def __new__(cls, inner: torch.Tensor):
        t = torch.Tensor._make_wrapper_subclass(
            cls,
            inner.shape,
            strides=inner.stride(),
            storage_offset=inner.storage_offset(),
            dtype=inner.dtype,
            device=STAND_IN,
            requires_grad=False,
        )
        t.inner = inner
        return t

    def __repr__(self) -> str:
        return f"StandIn({self.inner!r})"

    def tolist(self):  # torch refuses tolist() on subclasses; on a GPU it is one copy to the host
        if _ACTIVE:
            _ACTIVE[-1].transfers_to_cpu += 1
        return self.inner.tolist()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise WrongDeviceError(f"{func} used a stand-in tensor outside stand_in_device(); keep the work inside it")


_ACTIVE: list[StandInDevice] = []  # the modes in force (innermost last), for the methods that bypass dispatch


def _on_stand_in(device) -> bool:
    return device is not None and torch.device(device).type == STAND_IN.type


class StandInDevice(TorchDispatchMode):
    """The dispatch mode behind :func:`stand_in_device`; counts copies back to the CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.generators: set[int] = (
            set()
        )  # C++ addresses (the Python wrapper changes) of generators made for the stand-in device
        self.transfers_to_cpu = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        here = [a for a in flat if isinstance(a, _Elsewhere)]
        to_stand_in = _on_stand_in(kwargs.get("device"))
        for a in flat:
            if isinstance(a, torch.Tensor) and not isinstance(a, _Elsewhere) and a.device == STAND_IN:
                raise WrongDeviceError(
                    f"{func}: a tensor was made on the stand-in device without data "
                    f"(torch.tensor/new_tensor with device= bypass the check; make it on the "
                    f"CPU and move it with .to(device))"
                )
        if func is torch.ops.aten._efficientzerotensor.default and to_stand_in:
            # forward-mode AD's symbolic zeros hold no storage; real zeros behave the same
            return _Elsewhere(torch.zeros(*args, **{**kwargs, "device": torch.device("cpu")}))
        if func in _TRANSFERS or func in _TO_HOST:
            return self._transfer(func, args, kwargs, here, to_stand_in)
        if not here and not to_stand_in:
            self._check_generator(func, kwargs, stand_in=False)
            return func(*args, **kwargs)
        for a in flat:
            if isinstance(a, torch.Tensor) and not isinstance(a, _Elsewhere) and a.dim() > 0:
                raise WrongDeviceError(
                    f"{func}: a {a.device} tensor of shape {tuple(a.shape)} was used beside "
                    f"tensors on the model's device; make it with device= or move it with .to()"
                )
        self._check_generator(func, kwargs, stand_in=True)
        out = func(*_unwrap(args), **_unwrap(kwargs))
        if torch.Tag.inplace_view in func.tags and isinstance(args[0], _Elsewhere):
            # transpose_ and the like changed the inner tensor's shape: the wrapper must report the same one
            target = args[0]
            with no_dispatch():
                target.as_strided_(target.inner.shape, target.inner.stride(), target.inner.storage_offset())
            return target
        return tree_map(lambda o: _Elsewhere(o) if isinstance(o, torch.Tensor) else o, out)

    def _transfer(self, func, args, kwargs, here, to_stand_in):
        if func in _TO_HOST:
            self.transfers_to_cpu += bool(here)
            return func(*_unwrap(args), **_unwrap(kwargs))
        if func is torch.ops.aten._to_copy.default:
            src, device = args[0], kwargs.get("device")
            if device is None:  # a dtype change stays where it is
                out = func(*_unwrap(args), **_unwrap(kwargs))
                return _Elsewhere(out) if isinstance(src, _Elsewhere) else out
            if to_stand_in:
                return _Elsewhere(func(*_unwrap(args), **_unwrap(kwargs)))
            self.transfers_to_cpu += isinstance(src, _Elsewhere)
            return func(*_unwrap(args), **kwargs)
        dst = args[0]  # copy_(dst, src): the result lives where dst lives
        out = func(*_unwrap(args), **_unwrap(kwargs))
        if isinstance(dst, _Elsewhere):
            return dst if func is torch.ops.aten.copy_.default else _Elsewhere(out)
        self.transfers_to_cpu += bool(here)
        return out

    def _check_generator(self, func, kwargs, *, stand_in: bool) -> None:
        g = kwargs.get("generator")
        if g is None:
            return
        if (g._cdata in self.generators) != stand_in:
            where = "the model's device" if stand_in else "the CPU"
            raise WrongDeviceError(
                f"{func}: a generator made for another device draws numbers on {where}; make "
                f"it with torch.Generator(device=...) of the tensors it fills"
            )


def _unwrap(tree):
    def one(a):
        if isinstance(a, _Elsewhere):
            return a.inner
        if isinstance(a, torch.Tensor) and a._is_zerotensor():
            # forward-mode AD's tangent of a Python scalar: storage-less, which a real kernel must not read
            return torch.zeros(a.shape, dtype=a.dtype)
        if isinstance(a, torch.device) and a.type == STAND_IN.type:
            return torch.device("cpu")
        return a

    return tree_map(one, tree)


@contextlib.contextmanager
def stand_in_device() -> Iterator[StandInDevice]:
    """Run the body with ``STAND_IN`` behaving as a second device (see the module docstring).

    Generators made with ``torch.Generator(device=STAND_IN)`` and tensors made with ``torch.tensor``,
    ``torch.as_tensor`` or ``Tensor.new_tensor`` on it work as they would on a GPU.

    Yields:
        the :class:`StandInDevice` mode, whose ``transfers_to_cpu`` counts copies back to the CPU.
    """
    mode = StandInDevice()
    real_generator, real_tensor, real_as_tensor = torch.Generator, torch.tensor, torch.as_tensor
    real_new_tensor = torch.Tensor.new_tensor

    class _GeneratorType(type):  # isinstance(g, torch.Generator) keeps working on real generators
        def __instancecheck__(cls, obj):
            return isinstance(obj, real_generator)

    class generator(metaclass=_GeneratorType):  # a class, so that torch's own `torch.Generator | None` still works
        def __new__(cls, device="cpu"):
            if _on_stand_in(device):
                g = real_generator(device="cpu")
                mode.generators.add(g._cdata)
                return g
            return real_generator(device=device)

    def tensor(data, *a, device=None, **kw):
        if _on_stand_in(device):
            return real_tensor(data, *a, **kw).to(STAND_IN)
        return real_tensor(data, *a, device=device, **kw)

    def as_tensor(data, *a, device=None, **kw):
        if _on_stand_in(device):
            return real_as_tensor(data, *a, **kw).to(STAND_IN)
        return real_as_tensor(data, *a, device=device, **kw)

    def new_tensor(self, data, *a, device=None, **kw):
        if _on_stand_in(device if device is not None else self.device):
            kw.setdefault("dtype", self.dtype)
            return real_tensor(data, *a, **kw).to(STAND_IN)
        return real_new_tensor(self, data, *a, device=device, **kw)

    torch.Generator, torch.tensor, torch.as_tensor = generator, tensor, as_tensor
    torch.Tensor.new_tensor = new_tensor
    _ACTIVE.append(mode)
    try:
        with mode, warnings.catch_warnings():
            # load_state_dict into stand-in parameters warns that copying into a meta tensor does nothing; here
            # the copy is real (the values live on the CPU), so the warning is wrong
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
            yield mode
    finally:
        _ACTIVE.remove(mode)
        torch.Generator, torch.tensor, torch.as_tensor = real_generator, real_tensor, real_as_tensor
        torch.Tensor.new_tensor = real_new_tensor


def values(t):
    """The CPU values behind a stand-in tensor (or ``t`` itself), for comparing with a CPU run."""
    if isinstance(t, _Elsewhere):
        return t.inner
    if isinstance(t, dict):
        return {k: values(v) for k, v in t.items()}
    if isinstance(t, (list, tuple)):
        return type(t)(values(v) for v in t)
    return t
