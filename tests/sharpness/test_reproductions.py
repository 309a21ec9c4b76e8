"""The reproductions' own numerics (``icml17.sharpness.reproductions``): exact block traces of ReLU chains."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian


def test_exact_block_traces_of_a_relu_mlp_equal_the_dense_hessian_blocks():
    """The reproduction's exact tr(H_tt) (Gauss-Newton form, exact for ReLU chains) against dense blocks."""
    from icml17.sharpness.reproductions import exact_block_traces

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)
    ).double()
    x, y = torch.randn(11, 2, 3, dtype=torch.float64), torch.randint(0, 3, (11,))
    got = exact_block_traces(model, x, y)
    for name, p in model.named_parameters():
        other = {n: q.detach() for n, q in model.named_parameters() if n != name}

        def loss(t, name=name, other=other):
            return nn.functional.cross_entropy(functional_call(model, {**other, name: t}, (x,)), y)

        block = hessian(loss)(p.detach())
        assert got[name] == pytest.approx(float(block.reshape(p.numel(), p.numel()).trace()), rel=1e-9), name
