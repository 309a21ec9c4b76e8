"""Parameters as ``name -> tensor`` dicts, for torch.func-style code (MAML's inner loop, Hessian products).

``Params`` and ``LossFn`` are defined here once, for every system that passes parameter dicts and losses around.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (prediction, target) -> scalar loss


def flatten(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    out, i = {}, 0
    for name, p in like.items():
        out[name] = vector[i : i + p.numel()].view_as(p)
        i += p.numel()
    if i != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {i}")
    return out
