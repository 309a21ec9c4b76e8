"""The policy-gradient estimator and the inner step, against definitions (analytic gradient, finite
differences, an explicit loop)."""

import math

import torch
from torch.func import functional_call, grad

from icml17.maml.rl.inner import adapt, pg_loss
from icml17.maml.rl.policy import GaussianMLPPolicy
from icml17.maml.rl.trpo import MetaObjective


def test_policy_gradient_is_unbiased_on_a_linear_gaussian_bandit():
    """One step, fixed state s, a ~ N(w.s + b, sigma^2), reward r(a) = -(a - c)^2:
    E[r] = -((w.s + b - c)^2 + sigma^2), so dE/dw = -2 (mu - c) s, dE/db = -2 (mu - c), dE/dlog sigma = -2 sigma^2.
    The REINFORCE estimate (advantage = reward) must match within 4 standard errors (from 40 batch means)."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, hidden=()).double()
    params = {
        "mean.0.weight": torch.tensor([[0.3, -0.5]], dtype=torch.float64),
        "mean.0.bias": torch.tensor([0.2], dtype=torch.float64),
        "log_std": torch.tensor([math.log(0.7)], dtype=torch.float64),
    }
    s = torch.tensor([1.0, 2.0], dtype=torch.float64)
    c = 0.4
    mu, sigma = (params["mean.0.weight"] @ s + params["mean.0.bias"]).item(), 0.7
    expected = torch.cat([-2 * (mu - c) * s, torch.tensor([-2 * (mu - c), -2 * sigma**2], dtype=torch.float64)])
    g = torch.Generator().manual_seed(1)
    estimates = []
    for _ in range(40):
        a = mu + sigma * torch.randn(5000, 1, generator=g, dtype=torch.float64)
        data = {
            "obs": s.expand(1, 5000, 2),
            "actions": a[None],
            "adv": -((a[:, 0] - c) ** 2)[None],
            "mask": torch.ones(1, 5000, dtype=torch.float64),
        }
        gr = grad(lambda p, data=data: -pg_loss(policy, p, data))(params)  # the loss is minus the surrogate
        estimates.append(torch.cat([gr["mean.0.weight"].ravel(), gr["mean.0.bias"], gr["log_std"]]))
    est = torch.stack(estimates)
    stderr = est.std(0) / math.sqrt(len(est))
    assert ((est.mean(0) - expected).abs() < 4 * stderr).all(), (est.mean(0), expected, stderr)
    assert (stderr < 0.05 * expected.abs().max()).all()  # the test has power: errors are small against the signal


def test_adapt_is_one_gradient_step_per_task_as_an_explicit_loop(tiny):
    policy, theta, inner, _ = tiny
    adapted = adapt(policy, theta, inner, lr=0.3, steps=1)
    for k in range(inner["obs"].shape[0]):
        task = {n: v[k] for n, v in inner.items()}
        leaves = {n: v.clone().requires_grad_() for n, v in theta.items()}
        g = torch.autograd.grad(pg_loss(policy, leaves, task), list(leaves.values()))
        for (n, v), gn in zip(theta.items(), g):
            assert torch.allclose(adapted[n][k], v - 0.3 * gn, atol=1e-12)


def test_meta_gradient_equals_central_finite_differences_of_the_post_update_surrogate(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1)
    analytic = grad(objective.loss)(theta)
    eps = 1e-6
    for name, value in theta.items():
        for idx in range(value.numel()):
            plus = {n: v.clone() for n, v in theta.items()}
            minus = {n: v.clone() for n, v in theta.items()}
            plus[name].view(-1)[idx] += eps
            minus[name].view(-1)[idx] -= eps
            fd = (objective.loss(plus) - objective.loss(minus)) / (2 * eps)
            assert abs(fd.item() - analytic[name].view(-1)[idx].item()) < 1e-6 * max(1.0, abs(fd.item())), name


def test_first_order_drops_the_inner_step_jacobian(tiny):
    """First-order MAML: the meta-gradient is the post-update surrogate's gradient at the adapted parameters,
    averaged over tasks (the inner step's Jacobian is taken to be the identity)."""
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1, first_order=True)
    fo = grad(objective.loss)(theta)
    adapted = adapt(policy, theta, inner, lr=0.5, steps=1)
    k = outer["obs"].shape[0]
    expected = {n: torch.zeros_like(v) for n, v in theta.items()}
    for i in range(k):
        leaves = {n: v[i].clone().requires_grad_() for n, v in adapted.items()}
        mean, log_std = functional_call(policy, leaves, (outer["obs"][i],))
        from icml17.maml.rl.policy import gaussian_log_prob

        logp = gaussian_log_prob(mean, log_std.expand_as(mean), outer["actions"][i])
        ratio = torch.exp(logp - objective.old_log_prob[i])
        m = outer["mask"][i]
        loss = -(ratio * outer["adv"][i] * m).sum() / m.sum() / k
        for n, g in zip(leaves, torch.autograd.grad(loss, list(leaves.values()))):
            expected[n] += g
    second = grad(MetaObjective(policy, theta, [inner], outer, lr=0.5, steps=1).loss)(theta)
    for n in theta:
        assert torch.allclose(fo[n], expected[n], atol=1e-10), n
    assert any(not torch.allclose(fo[n], second[n], atol=1e-6) for n in theta)  # second order differs


def test_adapt_takes_one_step_size_per_step(tiny):
    """Two steps with sizes (0.5, 0.25) equal two explicit steps: theta1 = theta - 0.5 g(theta; D1),
    theta2 = theta1 - 0.25 g(theta1; D2), per task."""
    policy, theta, inner, outer = tiny
    got = adapt(policy, theta, [inner, outer], [0.5, 0.25], steps=2)
    for i in range(inner["obs"].shape[0]):
        p = dict(theta)
        for data, lr in ((inner, 0.5), (outer, 0.25)):
            task = {k: v[i] for k, v in data.items()}
            g = grad(lambda q, task=task: pg_loss(policy, q, task))(p)
            p = {k: p[k] - lr * g[k] for k in p}
        assert all(torch.allclose(got[k][i], p[k], atol=1e-12) for k in theta)
