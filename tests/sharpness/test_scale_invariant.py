"""Normalized sharpness, relative flatness and the Fisher-Rao norm against closed forms and brute force
(dense Hessians from ``torch.func.hessian``, per-example gradients in a loop, a generic optimiser), in float64."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn
from torch.func import functional_call, hessian

from icml17.core.functional import unflatten
from icml17.sharpness.radial import Radial
from icml17.sharpness.scale_invariant import (
    NotApplicable,
    fisher_rao_norm,
    hessian_diagonal,
    min_row_column,
    normalized_sharpness,
    relative_flatness,
)
from icml17.sharpness.transforms import AlphaScaling, PerNeuronScaling

CE = nn.functional.cross_entropy


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters()}


def _dense_block(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d^2 L / d theta_t^2 for one parameter tensor t, as a (numel, numel) matrix."""
    point = _params(model)
    p = point[name]

    def loss(t):
        return CE(functional_call(model, {**point, name: t}, (x,)), y)

    return hessian(loss)(p).reshape(p.numel(), p.numel())


def _brute_min(h: np.ndarray, w2: np.ndarray) -> float:
    """min over log a, log b of sum h a b + w2 / (a b) by BFGS (a generic optimiser)."""
    m, n = h.shape

    def f(z):
        ab = np.exp(z[:m, None] + z[None, m:])
        return float((h * ab + w2 / ab).sum())

    return min(
        minimize(f, np.zeros(m + n), method="BFGS", options={"gtol": 1e-12, "maxiter": 10000}).fun,
        minimize(
            f, np.full(m + n, 0.5), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 200000}
        ).fun,
    )


def _trained(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> nn.Module:
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    for _ in range(steps):
        opt.zero_grad()
        CE(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.fixture
def nets(tiny_data):
    """(name, trained float64 network, data): a ReLU MLP, a CNN with pooling, an MLP with batch norm."""
    x, y = tiny_data
    torch.manual_seed(0)
    mlp = _trained(
        nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).double(), x, y
    )
    g = torch.Generator().manual_seed(1)
    xi = torch.randn(16, 1, 6, 6, generator=g, dtype=torch.float64)
    yi = torch.randint(0, 3, (16,), generator=g)
    conv = _trained(
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).double(), xi, yi
    )
    bn = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()
    bn = _trained(bn.train(), x, y)
    return [("mlp", mlp, (x, y)), ("cnn", conv, (xi, yi)), ("bn", bn, (x, y))]


def test_row_column_minimum_of_rank_one_terms_is_twice_the_sum_of_square_roots():
    # h_ij = r_i c_j and W_ij^2 = u_i v_j: each term's minimum 2 sqrt(h_ij W_ij^2) is attained at once by
    # a_i b_j = sqrt(u_i v_j / (r_i c_j)), which factorises
    g = torch.Generator().manual_seed(0)
    r, c, u, v = (torch.rand(k, generator=g, dtype=torch.float64) + 0.1 for k in (3, 4, 3, 4))
    h, w2 = torch.outer(r, c), torch.outer(u, v)
    value, converged, _ = min_row_column(h, w2)
    assert converged and value == pytest.approx(float(2 * (h * w2).sqrt().sum()), rel=1e-10)


def test_row_column_minimum_matches_a_generic_optimiser_and_drops_flat_rows():
    g = torch.Generator().manual_seed(1)
    h, w2 = torch.rand(3, 4, generator=g, dtype=torch.float64), torch.rand(3, 4, generator=g, dtype=torch.float64)
    value, converged, _ = min_row_column(h, w2)
    assert converged and value == pytest.approx(_brute_min(h.numpy(), w2.numpy()), rel=1e-7)
    # a row without curvature: a_i -> infinity drives its W^2 terms to 0, so the row contributes nothing
    h0 = torch.cat([h, torch.zeros(1, 4, dtype=torch.float64)])
    w0 = torch.cat([w2, torch.ones(1, 4, dtype=torch.float64)])
    assert min_row_column(h0, w0)[0] == pytest.approx(value, rel=1e-10)


def test_exact_hessian_diagonal_equals_the_dense_hessian(nets):
    for name, net, (x, y) in nets:
        diag, method = hessian_diagonal(net, CE, [(x[:9], y[:9]), (x[9:], y[9:])], chunk=5)
        assert method == "exact"
        for p in diag:
            expected = _dense_block(net, p, x, y).diagonal()
            assert torch.allclose(diag[p].reshape(-1), expected, atol=1e-12, rtol=1e-9), (name, p)


def test_hutchinson_diagonal_where_the_network_is_not_linear_in_its_parameters(tiny_data):
    x, y = tiny_data
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 3)).double()
    diag, method = hessian_diagonal(net, CE, (x, y), probes=4000)
    assert method == "hutchinson"
    point = _params(net)
    theta = torch.cat([p.reshape(-1) for p in point.values()])
    H = hessian(lambda t: CE(functional_call(net, unflatten(t, point), (x,)), y))(theta)
    off = (H - torch.diag(H.diagonal())).pow(2).sum(1).sqrt()  # one probe's standard deviation per entry
    got = torch.cat([d.reshape(-1) for d in diag.values()])
    assert ((got - H.diagonal()).abs() <= 5 * off / math.sqrt(4000) + 1e-12).all()
    with pytest.raises(ValueError, match="linear in each parameter"):
        hessian_diagonal(net, CE, (x, y), method="exact")


def test_normalized_sharpness_is_the_minimum_over_the_dense_diagonal(nets):
    for name, net, (x, y) in nets:
        got = normalized_sharpness(net, CE, (x, y))
        expected = 0.0
        for p, w in _params(net).items():
            if p.endswith("weight") and w.dim() >= 2:
                h = _dense_block(net, p, x, y).diagonal().reshape(w.shape[0], -1)
                expected += _brute_min(h.numpy(), w.reshape(w.shape[0], -1).pow(2).numpy())
        assert got.converged and got.value == pytest.approx(expected, rel=1e-6), name


def test_normalized_sharpness_survives_rescalings_and_needs_weight_matrices(nets):
    _, net, (x, y) = nets[0]
    base = normalized_sharpness(net, CE, (x, y)).value
    for t in (AlphaScaling([100.0, 1.0, 0.01]), PerNeuronScaling(log_range=3.0)):
        assert normalized_sharpness(t(net).model, CE, (x, y)).value == pytest.approx(base, rel=1e-8)
    with pytest.raises(NotApplicable, match="weight matrix"):
        normalized_sharpness(Radial(1.0, 0.5, 0.1)(net).model, CE, (x, y))


def _kappa(W: torch.Tensor, H: torch.Tensor) -> float:
    """sum_{s,s'} <w_s, w_s'> sum_j H[(s, j), (s', j)] from a dense (d m, d m) block."""
    d, m = W.shape
    H = H.reshape(d, m, d, m)
    return sum(float(W[s] @ W[t]) * float(sum(H[s, j, t, j] for j in range(m))) for s in range(d) for t in range(d))


def test_relative_flatness_equals_the_dense_last_layer_block(nets):
    for name, net, (x, y) in nets:
        last = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
        W = _params(net)[f"{last}.weight"]
        raw = relative_flatness(net, CE, [(x[:7], y[:7]), (x[7:], y[7:])], normalize_features=False)
        assert raw.layer == last
        assert raw.value == pytest.approx(_kappa(W, _dense_block(net, f"{last}.weight", x, y)), rel=1e-9), name


def test_normalized_relative_flatness_is_kappa_of_the_network_with_unit_std_features(nets):
    # rescale the MLP's last hidden units to unit standard deviation by hand (the layer before divides,
    # the last layer multiplies): the function is the same, and kappa of that network is the normalised kappa
    _, net, (x, y) = nets[0]
    with torch.no_grad():
        phi = net[:4](x)
    std = phi.std(0, unbiased=False)
    live = std > 0  # a dead unit (zero over the data) has no scale: its outgoing weights, which do not matter, go
    std = torch.where(live, std, torch.ones_like(std))
    normal = copy.deepcopy(net)
    with torch.no_grad():
        normal[2].weight.div_(std[:, None])
        normal[2].bias.div_(std)
        normal[4].weight.mul_(std * live)
    assert torch.allclose(normal(x), net(x))
    expected = _kappa(normal[4].weight.detach(), _dense_block(normal, "4.weight", x, y))
    assert relative_flatness(net, CE, (x, y)).value == pytest.approx(expected, rel=1e-9)
    # and it does not move under per-neuron rescaling of those units, which the raw kappa does
    scaled = PerNeuronScaling(log_range=3.0, seed=2)(net).model
    assert relative_flatness(scaled, CE, (x, y)).value == pytest.approx(expected, rel=1e-9)
    raw = relative_flatness(net, CE, (x, y), normalize_features=False).value
    assert abs(relative_flatness(scaled, CE, (x, y), normalize_features=False).value / raw - 1) > 0.01


def test_fisher_rao_of_a_bias_free_relu_net_is_liangs_closed_form(tiny_data):
    # J theta = (L + 1) f for a bias-free ReLU net of L + 1 layers, and d l / d f = p - e_y for cross-entropy
    x, y = tiny_data
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False)
    ).double()
    with torch.no_grad():
        f = net(x)
    p = torch.softmax(f, 1)
    inner = (p * f).sum(1) - f[torch.arange(len(y)), y]
    expected = math.sqrt(9 * float(inner.pow(2).mean()))
    assert fisher_rao_norm(net, CE, [(x[:10], y[:10]), (x[10:], y[10:])]).value == pytest.approx(expected, rel=1e-10)


def test_fisher_rao_with_biases_equals_per_example_gradients(nets):
    for name, net, (x, y) in nets:
        theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        data_sq, model_sq = 0.0, 0.0
        for i in range(len(y)):
            out = net(x[i : i + 1])
            probs = torch.softmax(out.detach(), 1)[0]
            for c in range(out.shape[1]):
                g = torch.autograd.grad(CE(out, torch.tensor([c])), list(net.parameters()), retain_graph=True)
                d = float(torch.cat([t.reshape(-1) for t in g]) @ theta) ** 2
                model_sq += float(probs[c]) * d
                data_sq += d if c == int(y[i]) else 0.0
        got = fisher_rao_norm(net, CE, (x, y))
        assert got.squared == pytest.approx(data_sq / len(y), rel=1e-9), name
        assert fisher_rao_norm(net, CE, (x, y), labels="model").squared == pytest.approx(model_sq / len(y), rel=1e-9)
