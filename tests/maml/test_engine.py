"""The MAML engine against brute force, in float64: finite differences of the meta-loss, an explicit autograd
loop, the closed form for a quadratic loss, first vs second order, vmap vs the per-task loop, batch norm."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from icml17.core.config import ConfigError
from icml17.data.episodes import TaskBatch
from icml17.maml import MAML, adapt
from icml17.maml.losses import accuracy, cross_entropy, mse
from icml17.maml.models import BatchNormOffset, build_maml_model


@pytest.fixture(autouse=True)
def _float64():
    """Every test here runs in float64 (restored afterwards so other modules keep float32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def tanh_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 1)).double()


def regression_batch(tasks: int = 3, k: int = 4, q: int = 5, seed: int = 1, dim: int = 2) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return TaskBatch(r(tasks, k, dim), r(tasks, k, 1), r(tasks, q, dim), r(tasks, q, 1))


def meta_grad(engine: MAML, batch: TaskBatch) -> dict[str, torch.Tensor]:
    engine.zero_grad(set_to_none=True)
    engine.meta_backward(batch)
    return {n.removeprefix("model."): p.grad.clone() for n, p in engine.named_parameters()}


@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_finite_differences(steps):
    net, batch = tanh_net(), regression_batch()
    engine = MAML(net, loss_fn=mse, score_fn=mse, inner_steps=steps, inner_lr=0.3)
    grads = meta_grad(engine, batch)
    params = dict(net.named_parameters())
    g = torch.Generator().manual_seed(7)
    for _ in range(3):  # random directions v: <grad, v> == (L(p + eps v) - L(p - eps v)) / 2 eps
        v = {n: torch.randn(p.shape, generator=g, dtype=torch.float64) for n, p in params.items()}
        eps = 1e-6
        with torch.no_grad():
            for n, p in params.items():
                p.add_(eps * v[n])
        plus = engine.meta_loss(batch)[0].item()
        with torch.no_grad():
            for n, p in params.items():
                p.sub_(2 * eps * v[n])
        minus = engine.meta_loss(batch)[0].item()
        with torch.no_grad():
            for n, p in params.items():
                p.add_(eps * v[n])
        fd = (plus - minus) / (2 * eps)
        analytic = sum((grads[n] * v[n]).sum() for n in params).item()
        assert analytic == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_meta_gradient_matches_explicit_autograd_loop():
    net, batch, alpha, steps = tanh_net(3), regression_batch(seed=4), 0.2, 2
    engine = MAML(net, loss_fn=mse, score_fn=mse, inner_steps=steps, inner_lr=alpha)
    grads = meta_grad(engine, batch)
    params = list(net.parameters())
    total = 0.0
    for t in range(batch.num_tasks):
        fast = params
        for _ in range(steps):
            out = torch.func.functional_call(
                net, dict(zip([n for n, _ in net.named_parameters()], fast)), (batch.support_x[t],)
            )
            g = torch.autograd.grad(mse(out, batch.support_y[t]), fast, create_graph=True)
            fast = [p - alpha * gi for p, gi in zip(fast, g)]
        out = torch.func.functional_call(
            net, dict(zip([n for n, _ in net.named_parameters()], fast)), (batch.query_x[t],)
        )
        total = total + mse(out, batch.query_y[t])
    ref = torch.autograd.grad(total / batch.num_tasks, params)
    for (n, _), r in zip(net.named_parameters(), ref):
        torch.testing.assert_close(grads[n], r, rtol=1e-10, atol=1e-12)


def test_quadratic_closed_form():
    """Linear model + MSE: meta-gradient = (I - alpha H_s) grad L_q(theta'), H_s the support Hessian."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1, bias=False).double()
    batch, alpha = regression_batch(tasks=1, k=6, q=4, dim=3), 0.1
    engine = MAML(net, loss_fn=mse, score_fn=mse, inner_steps=1, inner_lr=alpha)
    got = meta_grad(engine, batch)["weight"].reshape(-1)
    xs, ys, xq, yq = batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0]
    w = net.weight.detach().reshape(-1)
    hs = 2 * xs.T @ xs / len(xs)
    w1 = w - alpha * 2 * xs.T @ (xs @ w - ys[:, 0]) / len(xs)
    gq = 2 * xq.T @ (xq @ w1 - yq[:, 0]) / len(xq)
    torch.testing.assert_close(got, (torch.eye(3, dtype=torch.float64) - alpha * hs) @ gq)


def test_second_order_differs_from_first_order_on_curved_net():
    batch = regression_batch()
    so = meta_grad(MAML(tanh_net(), loss_fn=mse, score_fn=mse, inner_lr=0.3), batch)
    fo = meta_grad(MAML(tanh_net(), loss_fn=mse, score_fn=mse, inner_lr=0.3, first_order=True), batch)
    diff = max((so[n] - fo[n]).abs().max().item() for n in so)
    assert diff > 1e-3


def test_second_order_equals_first_order_when_inner_hessian_vanishes():
    """Inner loss linear in the parameters (L = -mean(f(x) * y), f linear): H = 0, so SO == FO exactly."""

    def linear_loss(out, y):
        return -(out * y).mean()

    batch = regression_batch(dim=2)
    grads = []
    for fo in (False, True):
        torch.manual_seed(0)
        net = nn.Linear(2, 1).double()
        engine = MAML(net, loss_fn=linear_loss, score_fn=linear_loss, inner_steps=2, inner_lr=0.5, first_order=fo)
        grads.append(meta_grad(engine, batch))
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-12, atol=1e-14)


def episode_batch(tasks=4, ways=3, shots=2, queries=3, seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sx = torch.rand(tasks, ways * shots, 1, 12, 12, generator=g, dtype=torch.float64)
    qx = torch.rand(tasks, ways * queries, 1, 12, 12, generator=g, dtype=torch.float64)
    sy = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).contiguous()
    qy = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1).contiguous()
    return TaskBatch(sx, sy, qx, qy)


def small_conv(ways: int = 3) -> nn.Module:
    """conv -> batch norm (batch statistics) -> ReLU -> linear: the structure of Conv4, small enough for float64."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2), BatchNormOffset(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, ways)
    ).double()


def conv_engine(vectorize: bool, chunk_size: int = 0, lr_mode: str = "fixed", **kw) -> MAML:
    torch.manual_seed(0)
    model = small_conv()

    def ce(logits, y):
        return cross_entropy(logits, y, shots=2)

    return MAML(
        model,
        loss_fn=ce,
        score_fn=accuracy,
        inner_steps=2,
        inner_lr=0.1,
        lr_mode=lr_mode,
        vectorize=vectorize,
        chunk_size=chunk_size,
        **kw,
    )


@pytest.mark.parametrize("lr_mode", ["per-parameter"])  # learned per-tensor rates: the most general path
def test_vmap_equals_per_task_loop(lr_mode):
    batch = episode_batch()
    ref = meta_grad(conv_engine(False, lr_mode=lr_mode), batch)
    for chunk in (0, 3):
        got = meta_grad(conv_engine(True, chunk, lr_mode=lr_mode), batch)
        for n in ref:
            torch.testing.assert_close(got[n], ref[n], rtol=1e-6, atol=1e-6)
    ev_v = conv_engine(True).evaluate(batch, 3)
    ev_l = conv_engine(False).evaluate(batch, 3)
    assert ev_v.score.shape == (4, 4)
    torch.testing.assert_close(ev_v.loss, ev_l.loss, rtol=1e-6, atol=1e-6)


def test_transductive_batch_norm_uses_each_tasks_own_statistics():
    batch = episode_batch(tasks=2)
    batch.query_x[1] = batch.query_x[1] * 50 + 3  # task 1 lives on a very different scale
    engine = conv_engine(True)
    params = engine.params()
    together = torch.func.vmap(lambda sx, qx: engine.predict_query(params, sx, qx))(batch.support_x, batch.query_x)
    for t in range(2):
        alone = engine.model(batch.query_x[t])  # a plain forward: this task's query batch only
        torch.testing.assert_close(together[t], alone)
    # The statistics really are the query batch's: a query's output changes when its batch-mates change.
    moved = batch.query_x[0].clone()
    moved[1:] += 1.0
    assert not torch.allclose(engine.model(moved)[0], engine.model(batch.query_x[0])[0])


def test_per_query_batch_norm_is_not_transductive():
    batch = episode_batch(tasks=1)
    engine = conv_engine(True, bn_policy="per-query")
    params = engine.params()
    sx, qx = batch.support_x[0], batch.query_x[0]
    out = engine.predict_query(params, sx, qx)
    moved = qx.clone()
    moved[1:] += 1.0
    torch.testing.assert_close(engine.predict_query(params, sx, moved)[0], out[0])  # unaffected by others
    torch.testing.assert_close(out[0], engine.model(torch.cat([sx, qx[:1]]))[-1])  # support + that query


def test_adapt_changes_only_chosen_parameters_and_is_pure():
    net, batch = tanh_net(), regression_batch()
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    fwd = lambda p, x: torch.func.functional_call(net, p, (x,))  # noqa: E731
    out = adapt(
        params,
        batch.support_x[0],
        batch.support_y[0],
        forward=fwd,
        loss_fn=mse,
        steps=2,
        lr=0.1,
        adapt_names=["2.weight", "2.bias"],
    )
    assert torch.equal(out["0.weight"], params["0.weight"]) and torch.equal(out["0.bias"], params["0.bias"])
    assert not torch.equal(out["2.weight"], params["2.weight"])
    for n, p in net.named_parameters():
        assert torch.equal(p.detach(), params[n])  # the module was not touched
    path = adapt(
        params, batch.support_x[0], batch.support_y[0], forward=fwd, loss_fn=mse, steps=2, lr=0.1, trajectory=True
    )
    assert len(path) == 3 and torch.equal(path[0]["0.weight"], params["0.weight"])
    assert mse(fwd(path[2], batch.support_x[0]), batch.support_y[0]) < mse(
        fwd(path[0], batch.support_x[0]), batch.support_y[0]
    )


@pytest.mark.parametrize("lr_mode", ["scalar", "per-parameter"])
def test_learned_learning_rates_receive_gradients(lr_mode):
    engine = MAML(tanh_net(), loss_fn=mse, score_fn=mse, inner_lr=0.1, lr_mode=lr_mode)
    grads = meta_grad(engine, regression_batch())
    lr_grads = {n: g for n, g in grads.items() if n.startswith("inner_lr.")}
    assert lr_grads and all(g.abs().sum() > 0 for g in lr_grads.values())
    if lr_mode == "per-parameter":
        for n, p in engine.model.named_parameters():
            assert engine.inner_lr()[n].shape == p.shape


@pytest.mark.parametrize("name", ["mlp", "conv4-omniglot", "conv4-miniimagenet"])
def test_every_meta_parameter_gets_a_finite_gradient(name):
    torch.manual_seed(0)
    size = {"conv4-omniglot": 28, "conv4-miniimagenet": 84, "mlp": 1}[name]
    model = build_maml_model(name, ways=2, image_size=size, in_channels=3 if size == 84 else 1).float()  # speed
    if name == "mlp":
        batch, loss, score = regression_batch(tasks=2, dim=1).to(dtype=torch.float32), mse, mse
    else:
        g = torch.Generator().manual_seed(0)
        ch = 1 if size == 28 else 3
        x = torch.rand(2, 4, ch, size, size, generator=g, dtype=torch.float32)
        batch = TaskBatch(x[:, :2], torch.tensor([[0, 1]] * 2), x[:, 2:], torch.tensor([[1, 0]] * 2))
        loss, score = (lambda o, y: cross_entropy(o, y, shots=1)), accuracy
    engine = MAML(model, loss_fn=loss, score_fn=score, inner_lr=0.1)
    grads = meta_grad(engine, batch)
    assert set(grads) == {n for n, _ in model.named_parameters()} | {n for n, _ in grads.items() if "inner_lr" in n}
    for n, g in grads.items():
        assert torch.isfinite(g).all() and g.abs().sum() > 0, n


def test_engine_rejects_bad_settings():
    with pytest.raises(ConfigError, match="positive"):
        MAML(tanh_net(), loss_fn=mse, score_fn=mse, inner_lr=0.0)
    with pytest.raises(ConfigError, match="bn_policy"):
        MAML(tanh_net(), loss_fn=mse, score_fn=mse, bn_policy="running")
    with pytest.raises(ConfigError, match="unknown parameters"):
        MAML(tanh_net(), loss_fn=mse, score_fn=mse, adapt_names=["head.weight"])
    with pytest.raises(ConfigError, match="track_running_stats"):
        MAML(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), loss_fn=mse, score_fn=mse)
