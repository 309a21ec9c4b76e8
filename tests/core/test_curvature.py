"""Curvature engine: exact products against torch.func.hessian (float64), estimators against dense spectra."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian

from icml17.core.curvature import (
    DenseOperator,
    HessianOperator,
    ModelLoss,
    hutchinson,
    hutchpp,
    lanczos,
    layer_blocks,
    layerwise_unsupported,
    power_iteration,
    slq_density,
)
from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.core.functional import flatten, unflatten

CE = nn.functional.cross_entropy


def _mlp(act: type[nn.Module] = nn.ReLU) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), act(), nn.Linear(6, 4), act(), nn.Linear(4, 3)).double()


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)).double()


def _data(shape: tuple[int, ...], n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _explicit_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    like = {n: p.detach() for n, p in model.named_parameters()}
    return hessian(lambda v: CE(functional_call(model, unflatten(v, like), (x,)), y))(flatten(like))


@pytest.mark.parametrize("build,shape", [(_mlp, (5,)), (lambda: _mlp(nn.Tanh), (5,)), (_cnn, (1, 6, 6))])
def test_hvp_equals_explicit_hessian(build, shape):
    model = build()
    x, y = _data(shape)
    op = HessianOperator(model, CE, (x, y))
    H = _explicit_hessian(model, x, y)
    assert torch.allclose(op.dense(), H, rtol=0, atol=1e-8)
    assert op.n_hvp == op.size


def test_loader_accumulates_to_the_full_batch_hessian():
    model = _mlp()
    x, y = _data((5,), n=25)
    loader = [(x[:7], y[:7]), (x[7:20], y[7:20]), (x[20:], y[20:])]  # unequal batch sizes
    H = _explicit_hessian(model, x, y)
    assert torch.allclose(HessianOperator(model, CE, loader).dense(), H, atol=1e-8, rtol=0)


def test_float64_on_request_from_a_float32_model():
    model = _mlp().float()
    x, y = _data((5,))
    op = HessianOperator(model, CE, (x.float(), y), dtype=torch.float64)
    assert op.dtype == torch.float64 and next(model.parameters()).dtype == torch.float32
    assert torch.allclose(op.dense(), _explicit_hessian(model.double(), x, y), atol=1e-8, rtol=0)


def test_per_layer_block_is_the_diagonal_block():
    model = _mlp()
    x, y = _data((5,))
    H = _explicit_hessian(model, x, y)
    blocks = layer_blocks(model)
    assert list(blocks) == ["0", "2", "4"]
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[:2])  # block "2" follows layer 0's weight and bias
    n = sum(sizes[2:4])
    block = HessianOperator(model, CE, (x, y), params=blocks["2"]).dense()
    assert torch.allclose(block, H[start : start + n, start : start + n], atol=1e-8, rtol=0)


def test_eval_mode_by_default_and_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 2)).double()
    model.train()
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 2, (16,))
    op = HessianOperator(model, CE, (x, y))
    v = torch.randn(op.size, 1, dtype=torch.float64)
    a, b = op.matmat(v), op.matmat(v)
    assert op.mode == "eval" and torch.equal(a, b)  # dropout off: the operator is deterministic
    assert model.training and all(m.training for m in model.modules())


def test_lanczos_and_power_iteration_match_dense_spectrum():
    model = _mlp()
    x, y = _data((5,))
    evals = torch.linalg.eigvalsh(_explicit_hessian(model, x, y))
    op = HessianOperator(model, CE, (x, y))
    top = lanczos(op, 3, tol=1e-10, max_iter=200)
    assert top.converged
    assert torch.allclose(torch.tensor(top.eigenvalues, dtype=torch.float64), evals.flip(0)[:3], rtol=1e-6)
    v = top.eigenvectors[:, 0]
    assert torch.allclose(op.matvec(v), top.eigenvalues[0] * v, atol=1e-6)


def test_power_iteration_matches_dense_spectrum():
    A = _spd(30)
    power = power_iteration(DenseOperator(A), tol=1e-12, max_iter=500)
    assert power.converged and math.isclose(power.eigenvalues[0], float(torch.linalg.eigvalsh(A)[-1]), rel_tol=1e-8)


def _spd(n: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.logspace(1, -2, n, dtype=torch.float64)) @ q.T


def test_hutchinson_converges_within_its_standard_error():
    A = _spd()
    exact = float(torch.trace(A))
    few, many = hutchinson(DenseOperator(A), 50, seed=1), hutchinson(DenseOperator(A), 5000, seed=1)
    assert abs(many.estimate - exact) <= 4 * many.stderr and many.stderr < few.stderr / 5
    assert abs(many.estimate - exact) / exact < 0.02  # the stated tolerance for 5000 probes here


def test_hutchpp_is_exact_on_low_rank_and_beats_hutchinson():
    g = torch.Generator().manual_seed(0)
    U = torch.randn(60, 5, generator=g, dtype=torch.float64)
    low_rank = U @ U.T
    assert math.isclose(hutchpp(DenseOperator(low_rank), 18).estimate, float(torch.trace(low_rank)), rel_tol=1e-10)
    A = _spd(60)
    exact = float(torch.trace(A))
    errs_pp = [abs(hutchpp(DenseOperator(A), 60, seed=s).estimate - exact) for s in range(20)]
    errs_h = [abs(hutchinson(DenseOperator(A), 60, seed=s).estimate - exact) for s in range(20)]
    assert sum(errs_pp) < sum(errs_h) and max(errs_pp) / exact < 0.05


def test_slq_moments_match_traces():
    d = torch.linspace(-1.0, 3.0, 30, dtype=torch.float64)
    dens = slq_density(DenseOperator(torch.diag(d)), n_probes=3, steps=30)
    # Rademacher probes make v^T D^k v = tr(D^k) exactly, and Gauss quadrature is exact to degree 2m - 1
    assert math.isclose(dens.moment(1), float(d.sum()), rel_tol=1e-9)
    assert math.isclose(dens.moment(2), float((d**2).sum()), rel_tol=1e-9)
    assert torch.allclose(torch.tensor(dens.weights.sum(1)), torch.ones(3, dtype=torch.float64))
    A = _spd(40)
    dens = slq_density(DenseOperator(A), n_probes=200, steps=10)
    assert abs(dens.moment(1) - float(torch.trace(A))) / float(torch.trace(A)) < 0.08  # 200 probes
    grid = torch.linspace(-2, 12, 2000, dtype=torch.float64).numpy()
    mass = dens.smooth(grid, 0.1).sum() * (grid[1] - grid[0])
    assert abs(mass - 1) < 1e-3


def test_model_loss_gradient_matches_autograd():
    model = _mlp()
    x, y = _data((5,))
    value, g = ModelLoss(model, CE, [(x[:10], y[:10]), (x[10:], y[10:])]).loss_and_grad()
    loss = CE(model(x), y)
    ref = torch.autograd.grad(loss, list(model.parameters()))
    assert math.isclose(float(value), float(loss), rel_tol=1e-12)
    assert torch.allclose(flatten(g), torch.cat([r.reshape(-1) for r in ref]), atol=1e-12)


def test_bad_inputs_raise_value_errors():
    model = _mlp()
    x, y = _data((5,))
    with pytest.raises(ValueError, match="requires_grad"):
        HessianOperator(_mlp().requires_grad_(False), CE, (x, y))
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, CE, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, CE, [])
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, CE, iter([])).matvec(
            torch.zeros(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="mode"):
        HessianOperator(model, CE, (x, y), mode="inference")


def test_losses_without_forward_derivatives_fall_back_to_reverse_over_reverse():
    model = _mlp()
    x, _ = _data((5,))
    target = torch.randn(len(x), 3, dtype=torch.float64)
    mse = nn.functional.mse_loss  # its backward has no forward derivative in torch 2.x
    op = HessianOperator(model, mse, (x, target), product="forward-over-reverse")  # "auto" would go layerwise
    like = {n: p.detach() for n, p in model.named_parameters()}
    H = hessian(lambda v: mse(functional_call(model, unflatten(v, like), (x,)), target))(flatten(like))
    assert torch.allclose(op.dense(), H, atol=1e-8, rtol=0)
    assert op.loss.method == "reverse-over-reverse"
    layerwise = HessianOperator(model, mse, (x, target))  # the loss's own Hessian by double-backward: fine
    assert layerwise.method == "layerwise" and torch.allclose(layerwise.dense(), H, atol=1e-8, rtol=0)


def test_product_strategy_is_fixed_at_construction():
    model = _mlp()
    x, y = _data((5,))
    target = torch.randn(len(x), 3, dtype=torch.float64)
    # decided from the loss function before any product runs: mse_loss, nn.MSELoss and partials of them
    for mse in (nn.functional.mse_loss, nn.MSELoss(), functools.partial(nn.functional.mse_loss, reduction="mean")):
        assert HessianOperator(model, mse, (x, target), product="forward-over-reverse").method == "reverse-over-reverse"
    assert HessianOperator(model, CE, (x, y), product="forward-over-reverse").method == "forward-over-reverse"
    assert HessianOperator(model, CE, (x, y), product="reverse-over-reverse").method == "reverse-over-reverse"
    assert HessianOperator(model, CE, (x, y), linearize=True).method == "forward-over-reverse (linearized)"
    reverse = HessianOperator(model, CE, (x, y), product="reverse-over-reverse")
    assert torch.allclose(reverse.dense(), _explicit_hessian(model, x, y), atol=1e-8, rtol=0)


@pytest.mark.parametrize("build,shape", [(_mlp, (5,)), (_cnn, (1, 6, 6))])
def test_linearized_products_equal_the_explicit_hessian(build, shape):
    model = build()
    x, y = _data(shape, n=20)
    op = HessianOperator(model, CE, [(x[:8], y[:8]), (x[8:], y[8:])], linearize=True)
    assert torch.allclose(op.dense(), _explicit_hessian(model, x, y), atol=1e-8, rtol=0)
    assert op.loss.method == "forward-over-reverse (linearized)"
    with pytest.raises(ValueError, match="list of batches"):
        HessianOperator(model, CE, iter([(x, y)]), linearize=True).dense()


def test_lanczos_gap_stopping_meets_its_eigenvalue_tolerance():
    A = _spd(200, seed=3)
    exact = float(torch.linalg.eigvalsh(A)[-1])
    for tol in (1e-2, 1e-4):
        r = lanczos(DenseOperator(A), 1, tol=tol, stop="gap")
        assert r.converged and abs(r.eigenvalues[0] - exact) <= tol * exact
    assert lanczos(DenseOperator(A), 1, tol=1e-2, stop="gap").n_hvp < lanczos(DenseOperator(A), 1, tol=1e-2).n_hvp


# ------------------------------------------------------------------------- layerwise (cached-primal) products
def _conv_chain() -> nn.Module:
    """Strided and padded convolutions, a smooth activation and a piecewise-linear one, flatten, linear."""
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)
    ).double()


LAYERWISE = [
    (_mlp, (5,)),
    (lambda: _mlp(nn.Tanh), (5,)),
    (lambda: _mlp(nn.GELU), (5,)),
    (lambda: _mlp(nn.Sigmoid), (5,)),
    (_conv_chain, (1, 8, 8)),
]


@pytest.mark.parametrize("build,shape", LAYERWISE)
def test_layerwise_products_equal_the_explicit_hessian(build, shape):
    model = build()
    x, y = _data(shape)
    op = HessianOperator(model, CE, (x, y))
    assert op.method == "layerwise"
    H = _explicit_hessian(model, x, y)
    assert torch.allclose(op.dense(), H, rtol=0, atol=1e-8)
    V = torch.randn(op.size, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(op.quadform(V), (V * (H @ V)).sum(0), rtol=0, atol=1e-8)
    assert op.n_hvp == op.size + 7


@pytest.mark.parametrize("as_list", [True, False])
def test_layerwise_loader_weights_batches_and_caches_only_lists(as_list):
    model = _conv_chain()
    x, y = _data((1, 8, 8), n=25)
    parts = [(x[:7], y[:7]), (x[7:20], y[7:20]), (x[20:], y[20:])]  # unequal batch sizes
    op = HessianOperator(model, CE, parts if as_list else tuple(parts))  # a tuple is iterated, not kept
    H = _explicit_hessian(model, x, y)
    V = torch.randn(op.size, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if as_list:
        assert torch.allclose(op.dense(), H, atol=1e-8, rtol=0)
        assert len(op.loss.products.caches) == 3
    else:  # another iterable (a loader): one pass per call, nothing kept
        for _ in range(2):
            assert torch.allclose(op.quadform(V), (V * (H @ V)).sum(0), atol=1e-8, rtol=0)
        assert op.loss.products.caches is None


def test_layerwise_per_layer_block_and_float64_copy():
    model = _conv_chain()
    x, y = _data((1, 8, 8))
    H = _explicit_hessian(model, x, y)
    blocks = layer_blocks(model)
    sizes = [p.numel() for p in model.parameters()]
    start, n = sum(sizes[:2]), sum(sizes[2:4])  # block "2" follows layer 0's weight and bias
    op = HessianOperator(model, CE, (x, y), params=blocks["2"])
    assert op.method == "layerwise"
    assert torch.allclose(op.dense(), H[start : start + n, start : start + n], atol=1e-8, rtol=0)
    op32 = HessianOperator(model.float(), CE, (x.float(), y), dtype=torch.float64)
    assert op32.method == "layerwise" and torch.allclose(
        op32.dense(), _explicit_hessian(model.double(), x, y), atol=1e-8, rtol=0
    )


def test_hutchinson_uses_quadratic_forms_with_the_same_probes():
    model = _conv_chain()
    x, y = _data((1, 8, 8))
    fast = hutchinson(HessianOperator(model, CE, (x, y)), 40, block=16, seed=3)
    slow = hutchinson(HessianOperator(model, CE, (x, y), product="forward-over-reverse"), 40, block=16, seed=3)
    assert math.isclose(fast.estimate, slow.estimate, rel_tol=1e-10) and fast.n_hvp == slow.n_hvp == 40


def test_layerwise_only_where_supported():
    assert layerwise_unsupported(_cnn()) is not None  # max pooling: no layerwise rule
    assert layerwise_unsupported(_mlp()) is None
    x, y = _data((1, 6, 6))
    assert HessianOperator(_cnn(), CE, (x, y)).method == "forward-over-reverse"
    with pytest.raises(ValueError, match="layerwise"):
        HessianOperator(_cnn(), CE, (x, y), product="layerwise")
    with pytest.raises(ValueError, match="product"):
        HessianOperator(_mlp(), CE, _data((5,)), product="finite-differences")


def test_layerwise_reverse_pass_stops_at_the_first_measured_layer(monkeypatch):
    """No gradient w.r.t. the input of the first Linear after a Flatten (nothing below it is measured)."""
    from icml17.core.curvature.layerwise import LayerwiseCurvature

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x, y = torch.randn(7, 2, 3, dtype=torch.float64), torch.randint(0, 3, (7,))
    seen = []
    original = LayerwiseCurvature._input_grad

    def spy(self, m, a, terms):
        seen.append(next(i for i, (_, mod) in enumerate(self.modules) if mod is m))
        return original(self, m, a, terms)

    monkeypatch.setattr(LayerwiseCurvature, "_input_grad", spy)
    op = HessianOperator(model, nn.functional.cross_entropy, (x, y))
    assert op.method == "layerwise"
    v = torch.randn(op.size, dtype=torch.float64)
    hv = op.matvec(v)
    assert seen == [3]
    like = {n: q.detach() for n, q in model.named_parameters()}

    def loss(flat):
        return nn.functional.cross_entropy(functional_call(model, unflatten(flat, like), (x,)), y)

    dense = hessian(loss)(flatten(like))
    torch.testing.assert_close(hv, dense @ v)


def test_train_mode_uses_batch_statistics_and_leaves_running_statistics_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    op = HessianOperator(model, nn.functional.cross_entropy, (x, y), mode="train")
    top = lanczos(op, k=1, tol=1e-10).eigenvalues[0]
    for k, v in model.state_dict().items():  # running mean/var and counters untouched
        assert torch.equal(v, before[k]), k
    assert not model.training
    # the definition: the Hessian of the loss with batch-norm batch statistics (a fresh model in train mode,
    # track_running_stats=False), computed densely
    like = {n: p.detach() for n, p in model.named_parameters()}
    ref = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, track_running_stats=False), nn.ReLU(), nn.Linear(6, 3))
    ref = ref.double().train()

    def loss(flat):
        return nn.functional.cross_entropy(functional_call(ref, unflatten(flat, like), (x,)), y)

    # double backward (torch.autograd.functional.hessian); torch.func.hessian's forward mode disagrees with
    # finite differences through train-mode batch norm, so it is not used as the reference here
    dense = torch.autograd.functional.hessian(loss, flatten(like))
    assert top == pytest.approx(float(torch.linalg.eigvalsh(dense)[-1]), rel=1e-8)


def test_train_mode_refuses_dropout_naming_the_layer():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Linear(6, 3))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    with pytest.raises(ValueError, match="module 1 is dropout"):
        HessianOperator(model, nn.functional.cross_entropy, (x, y), mode="train")
    HessianOperator(model, nn.functional.cross_entropy, (x, y), mode="eval")  # dropout off: fine


# ------------------------------------------------------------------------------------- on another device
# The stand-in device (icml17.core.devicecheck) computes on the CPU but refuses, as CUDA would, a CPU tensor or
# generator beside the model's tensors: a run there that completes, stays on the device and equals the CPU run
# shows the engine makes every tensor where the model is.
ON_DEVICE = [
    ("layerwise", _mlp, (5,)),
    ("layerwise", _conv_chain, (1, 8, 8)),
    ("forward-over-reverse", _mlp, (5,)),
    ("forward-over-reverse", _cnn, (1, 6, 6)),
    ("reverse-over-reverse", _mlp, (5,)),
    ("reverse-over-reverse", _cnn, (1, 6, 6)),
]


def _estimates(op: HessianOperator, V: torch.Tensor) -> dict:
    """Every product and estimator once, with few steps (tol=0 runs exactly max_iter): H V, v^T H v, products at
    another point, lambda_max by Lanczos and by power iteration, top-3 with eigenvectors, Hutchinson, Hutch++, SLQ."""
    top = lanczos(op, 3, tol=0.0, max_iter=8, seed=0)
    off = {n: p * 1.1 for n, p in op.point.items()}  # not the point: the generic (uncached) product
    tangents = op._tangents(V.T[:2].to(op.dtype))
    return {
        "HV": op.matmat(V),
        "quadform": op.quadform(V),
        "hvp_elsewhere": torch.cat([t.reshape(-1) for t in op.loss.hvp(tangents, off).values()]),
        "lambda_max": lanczos(op, 1, tol=0.0, max_iter=6, seed=0).eigenvalues,
        "top3": top.eigenvalues,
        "vectors": top.eigenvectors,
        "power": power_iteration(op, tol=0.0, max_iter=6, seed=0).eigenvalues,
        "trace": hutchinson(op, 6, block=4, seed=1).estimate,
        "hutchpp": hutchpp(op, 6, seed=2).estimate,
        "slq": torch.as_tensor(slq_density(op, n_probes=1, steps=4, seed=3).nodes),
    }


@pytest.mark.parametrize("product,build,shape", ON_DEVICE)
def test_products_and_estimators_on_a_device_equal_the_cpu(product, build, shape):
    x, y = _data(shape, n=12)
    V = torch.randn(
        sum(p.numel() for p in build().parameters()), 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64
    )
    cpu = _estimates(HessianOperator(build(), CE, [(x[:5], y[:5]), (x[5:], y[5:])], product=product), V)
    with stand_in_device() as mode:
        model = build().to(STAND_IN)
        op = HessianOperator(model, CE, [(x[:5], y[:5]), (x[5:], y[5:])], product=product)  # CPU data: moved once
        assert op.method == product and op.device == STAND_IN
        dev = _estimates(op, V.to(STAND_IN))
        assert all(t.device == STAND_IN for t in (dev["HV"], dev["quadform"], dev["hvp_elsewhere"], dev["vectors"]))
        before = mode.transfers_to_cpu
        r = lanczos(op, 1, tol=0.0, max_iter=5, seed=0)  # tol=0: exactly 5 steps
        assert r.iterations == 5 and mode.transfers_to_cpu - before == 5  # one copy to the CPU per step
    for key, ref in cpu.items():
        got = values(dev[key])
        if isinstance(ref, torch.Tensor):
            assert torch.allclose(got, ref, rtol=1e-12, atol=1e-13), key
        else:
            assert got == pytest.approx(ref, rel=1e-12, abs=1e-13), key


def test_a_generator_made_for_the_device_draws_there():
    model, (x, y) = _mlp(), _data((5,))
    with stand_in_device():
        op = HessianOperator(model.to(STAND_IN), CE, (x.to(STAND_IN), y.to(STAND_IN)))
        gen = torch.Generator(device=STAND_IN).manual_seed(0)
        assert hutchinson(op, 8, seed=gen).n_hvp == 8 and lanczos(op, 1, seed=gen).converged
        with pytest.raises(WrongDeviceError):  # a CPU generator passed for a device operator: CUDA refuses it too
            hutchinson(op, 8, seed=torch.Generator().manual_seed(0))


def test_float64_measurement_of_a_float32_model_stays_on_its_device(monkeypatch):
    # the stand-in's parameters change dtype in place only when modules swap them (`module.to(dtype)` through
    # set_data would keep the old values behind the new dtype); CUDA tensors need no such switch
    monkeypatch.setattr(torch.__future__, "_swap_module_params_on_conversion", True)
    x, y = _data((5,))
    cpu = lanczos(HessianOperator(_mlp().float(), CE, (x, y), dtype=torch.float64), 2, seed=0).eigenvalues
    with stand_in_device():
        op = HessianOperator(_mlp().float().to(STAND_IN), CE, (x, y), dtype=torch.float64)
        assert op.dtype == torch.float64 and op.device == STAND_IN
        assert lanczos(op, 2, seed=0).eigenvalues == pytest.approx(cpu, rel=1e-12)


def test_planted_bug_a_start_vector_left_on_the_cpu_is_caught(monkeypatch):
    """Plant the bug class in a real creation site (the estimators' draws, without the move to op.device):
    the stand-in device refuses it, as a GPU would."""
    from icml17.core.curvature import estimators

    model, (x, y) = _mlp(), _data((5,))
    monkeypatch.setattr(
        estimators._Draws, "normal", lambda self, *shape: torch.randn(*shape, generator=self.gen, dtype=self.dtype)
    )
    with stand_in_device():
        op = HessianOperator(model.to(STAND_IN), CE, (x, y))
        with pytest.raises(WrongDeviceError):
            lanczos(op, 1, seed=0)


def test_docstring_examples_run():
    """The examples in the package's docstrings (lambda_max of a known quadratic, a dense solve) are true."""
    import doctest

    from icml17.core.curvature import estimators, operator, solvers

    for module in (operator, estimators, solvers):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
