"""Parameters as ``name -> tensor`` dicts, for torch.func-style code (MAML's inner loop, Hessian products)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]


def named_params(module: nn.Module, names: Iterable[str] | None = None, *, detach: bool = False) -> Params:
    """The module's trainable parameters (or only ``names``) as a dict; ``detach`` gives leaf copies."""
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    if names is not None:
        names = list(names)
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise KeyError(f"unknown parameter names {unknown}; the module has {sorted(params)}")
        params = {n: params[n] for n in names}
    if detach:
        params = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    return params


def buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_buffers())


def make_functional(module: nn.Module) -> Callable[..., Any]:
    """``f(params, *args)`` that runs ``module`` with ``params`` (others and buffers taken from the module)."""

    def f(params: Mapping[str, torch.Tensor], *args: Any, **kwargs: Any) -> Any:
        return functional_call(module, dict(params), args, kwargs, strict=False, tie_weights=True)

    return f


def flatten(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out, i = {}, 0
    for name, p in like.items():
        out[name] = vector[i:i + p.numel()].view_as(p)
        i += p.numel()
    if i != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {i}")
    return out


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], params: Mapping[str, torch.Tensor]) -> Params:
    return {n: fn(p) for n, p in params.items()}


def dot(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return sum((a[n] * b[n]).sum() for n in a)
