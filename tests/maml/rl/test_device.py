"""MAML-RL on another device: under ``stand_in_device()`` (a CPU tensor beside the policy's tensors fails as CUDA
fails) the samplers, the baseline, the inner step, TRPO's curvature products and conjugate gradient, a whole
meta-iteration (TRPO and Adam), a short training through the loop and the evaluation run with the policy on
``STAND_IN``, leave their outputs there, and give exactly the CPU run's numbers for the same seeds (the same
operations on the same values: tolerance 0). The environments step on the CPU: the sampler makes one copy back to
the CPU per time step for all tasks x copies, and a meta-iteration adds only a few more. Planted bugs (a baseline
feature made on the CPU, a batch never moved to the policy's device) are caught."""

from __future__ import annotations

import copy
import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from icml17.core.devicecheck import STAND_IN, WrongDeviceError, stand_in_device, values
from icml17.core.loop import read_metrics
from icml17.maml.rl import baseline as baseline_module
from icml17.maml.rl import sampler as sampler_module
from icml17.maml.rl.baseline import advantages, fit_linear_baseline
from icml17.maml.rl.envs import PointNav, sample_tasks
from icml17.maml.rl.evaluate import curve, evaluate, load_run
from icml17.maml.rl.inner import adapt, pg_data
from icml17.maml.rl.policy import params_of
from icml17.maml.rl.presets import make_config
from icml17.maml.rl.sampler import Rollouts, Sampler
from icml17.maml.rl.train import build_policy, make_sampler, meta_iteration, train
from icml17.maml.rl.trpo import (
    MetaObjective,
    conjugate_gradient,
    kl_fisher_product,
    kl_hvp,
    trpo_step,
)

TIMING = ("env_steps_per_s", "sample_s", "iteration_s")


def tiny_cfg(**kw):
    return replace(
        make_config("point-nav"),
        **{
            "meta_batch": 3,
            "rollouts": 2,
            "horizon": 8,
            "hidden": (8,),
            "eval_every": 0,
            "checkpoint_every": 2,
            "cg_iters": 3,
            "eval_rollouts": 2,
            "eval_tasks": 2,
            **kw,
        },
    )


def _streams(seed: int = 0):
    return np.random.default_rng(seed), np.random.default_rng(seed + 1), torch.Generator().manual_seed(seed + 2)


def _same(a, b) -> None:
    """Equal tensors (or dicts / lists of them), bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif a is None:
        assert b is None
    else:
        assert torch.equal(values(a), values(b)), (a, b)


def _on_stand_in(tree) -> bool:
    leaves = tree.values() if isinstance(tree, dict) else tree
    return all(t is None or t.device == STAND_IN for t in leaves)


def _rollouts(r: Rollouts):
    return [r.obs, r.actions, r.rewards, r.mask, r.starts]


class _CountSteps:
    """Counts environment steps (one per time step of the whole batch)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        real = PointNav.step

        def counted(env, actions, active=None):
            self.calls += 1
            return real(env, actions, active)

        monkeypatch.setattr(PointNav, "step", counted)


# ------------------------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("kind", ["sample", "sample_steps", "sample_lanes"])
@pytest.mark.parametrize("per_task", [False, True])
def test_every_sampler_on_the_stand_in_equals_the_cpu_with_one_copy_back_per_step(kind, per_task, monkeypatch):
    cfg = tiny_cfg(batch="steps" if kind == "sample_lanes" else "rollouts")
    policy = build_policy(cfg)
    tasks = sample_tasks(cfg.env, 3, np.random.default_rng(0))
    params = params_of(policy)
    if per_task:  # adapted parameters: one set per task
        params = {k: torch.stack([v + 0.1 * i for i in range(3)]).detach() for k, v in params.items()}
    extra = {"sample": (2,), "sample_steps": (2, 12), "sample_lanes": (30,)}[kind]

    def run(policy, params):
        _, env_seeds, noise = _streams()
        return getattr(make_sampler(cfg), kind)(policy, params, tasks, *extra, noise, env_seeds, per_task=per_task)

    expected = run(policy, params)
    counter = _CountSteps(monkeypatch)
    with stand_in_device() as mode:
        dev_policy = copy.deepcopy(policy).to(STAND_IN)
        got = run(dev_policy, {k: v.to(STAND_IN) for k, v in params.items()})
        assert _on_stand_in(_rollouts(got))
        assert mode.transfers_to_cpu == counter.calls > 0  # the actions, once per time step for the whole batch
    _same(_rollouts(got), _rollouts(expected))


# ------------------------------------------------------------------------------------- baseline, inner step
def test_baseline_and_inner_step_on_the_stand_in_equal_the_cpu():
    cfg = tiny_cfg(batch="steps")
    policy = build_policy(cfg)
    tasks = sample_tasks(cfg.env, 3, np.random.default_rng(0))
    _, env_seeds, noise = _streams()
    r = make_sampler(cfg).sample_lanes(policy, params_of(policy), tasks, 30, noise, env_seeds)  # packed: starts
    data = pg_data(r, 0.99, 0.97)  # GAE with lambda < 1 too
    adapted = adapt(policy, params_of(policy), data, 0.5, steps=2)
    with stand_in_device():
        dev_policy = copy.deepcopy(policy).to(STAND_IN)
        dev_r = r.to_device(STAND_IN)
        dev_data = pg_data(dev_r, 0.99, 0.97)
        dev_adapted = adapt(dev_policy, params_of(dev_policy), dev_data, 0.5, steps=2)
        assert _on_stand_in(dev_data) and _on_stand_in(dev_adapted)
    _same(dev_data, data)
    _same(dev_adapted, adapted)


def test_a_task_whose_baseline_is_not_finite_raises_the_ridge_on_the_device_too(monkeypatch):
    cfg = tiny_cfg()
    policy = build_policy(cfg)
    _, env_seeds, noise = _streams()
    r = make_sampler(cfg).sample(
        policy, params_of(policy), sample_tasks(cfg.env, 3, np.random.default_rng(0)), 2, noise, env_seeds
    )
    returns = torch.randn(r.rewards.shape, generator=torch.Generator().manual_seed(0))
    real_lstsq, calls = torch.linalg.lstsq, []

    class Solution:
        def __init__(self, a, b):  # task 1's first two solves fail (as an ill-conditioned one can)
            self.solution = real_lstsq(a, b).solution
            calls.append(a.shape[0])
            if len(calls) % 3 in (1, 2):
                self.solution[1 if len(calls) % 3 == 1 else 0] = float("nan")

    monkeypatch.setattr(baseline_module.torch.linalg, "lstsq", Solution)
    expected = fit_linear_baseline(r, returns)
    with stand_in_device():
        got = fit_linear_baseline(r.to_device(STAND_IN), returns.to(STAND_IN))
        assert got.device == STAND_IN
    assert calls == [3, 1, 1] * 2  # all tasks, then task 1 alone at ten and a hundred times the ridge
    _same(got, expected)
    assert torch.isfinite(expected).all() and (expected[1] != 0).any()


# ------------------------------------------------------------------------------------------------------ TRPO
def test_curvature_products_and_conjugate_gradient_on_the_stand_in_equal_the_cpu(tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.1, steps=1)
    v = {k: torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype) for k, p in theta.items()}
    expected = [kl_hvp(objective, theta)(v), kl_fisher_product(objective, theta)(v)]
    spd = torch.randn(6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    spd = spd @ spd.T + torch.eye(6, dtype=torch.float64)
    b = torch.arange(6, dtype=torch.float64)
    cg = [
        conjugate_gradient(lambda x: spd @ x, b, iters=4),
        conjugate_gradient(lambda x: 2 * x, b, iters=5),
    ]  # converges at once: later iterations change nothing
    with stand_in_device():
        dev_theta = {k: t.to(STAND_IN) for k, t in theta.items()}
        move = lambda d: {k: t.to(STAND_IN) for k, t in d.items()}
        dev_objective = MetaObjective(policy.to(STAND_IN), dev_theta, [move(inner)], move(outer), lr=0.1, steps=1)
        dev_v = move(v)
        got = [kl_hvp(dev_objective, dev_theta)(dev_v), kl_fisher_product(dev_objective, dev_theta)(dev_v)]
        dev_spd, dev_b = spd.to(STAND_IN), b.to(STAND_IN)
        dev_cg = [
            conjugate_gradient(lambda x: dev_spd @ x, dev_b, iters=4),
            conjugate_gradient(lambda x: 2 * x, dev_b, iters=5),
        ]
        assert all(_on_stand_in(g) for g in got) and _on_stand_in(dev_cg)
    _same(got, expected)
    _same(dev_cg, cg)
    assert torch.equal(cg[1], b / 2)


@pytest.mark.parametrize("curvature,hvp_tasks", [("hessian", 0), ("fisher", 2)])
def test_a_trpo_step_on_the_stand_in_equals_the_cpu(curvature, hvp_tasks, tiny):
    policy, theta, inner, outer = tiny
    objective = MetaObjective(policy, theta, [inner], outer, lr=0.1, steps=1)
    new, result = trpo_step(objective, theta, cg_iters=4, curvature=curvature, hvp_tasks=hvp_tasks)
    with stand_in_device() as mode:
        move = lambda d: {k: t.to(STAND_IN) for k, t in d.items()}
        dev_theta = move(theta)
        dev_objective = MetaObjective(policy.to(STAND_IN), dev_theta, [move(inner)], move(outer), lr=0.1, steps=1)
        dev_new, dev_result = trpo_step(dev_objective, dev_theta, cg_iters=4, curvature=curvature, hvp_tasks=hvp_tasks)
        assert _on_stand_in(dev_new)
        # the loss before, the curvature, one per line-search try, the step's length: never one per CG iteration
        assert mode.transfers_to_cpu <= 3 + dev_result.backtracks + 1
    assert result.accepted and dev_result == result
    _same(dev_new, new)


# ------------------------------------------------------------------------------------------ meta-iteration
@pytest.mark.parametrize(
    "kw",
    [
        {"batch": "rollouts"},
        {"batch": "steps", "hvp_tasks": 2, "curvature": "fisher"},
        {"outer": "adam"},
        {"mode": "pretrained"},
    ],
)
def test_a_meta_iteration_on_the_stand_in_equals_the_cpu(kw, monkeypatch):
    cfg = tiny_cfg(**kw)

    def run(device):
        policy = build_policy(cfg, device=device)
        optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.meta_lr)
        metrics = meta_iteration(cfg, policy, make_sampler(cfg), optimizer, *_streams())
        return {k: v for k, v in metrics.items() if k not in TIMING}, policy.state_dict()

    expected, expected_state = run(None)
    counter = _CountSteps(monkeypatch)
    with stand_in_device() as mode:
        got, state = run(STAND_IN)
        assert _on_stand_in(state)
        # one copy back per time step of the sampler; the rest (baseline fits, TRPO's scalars, the metrics) a few
        assert mode.transfers_to_cpu <= counter.calls + 8 + got.get("backtracks", 0)
    assert got == expected
    _same(state, expected_state)


def test_training_through_the_loop_on_the_stand_in_equals_the_cpu_and_its_checkpoint_loads_anywhere(tmp_path):
    cfg = replace(tiny_cfg(eval_every=2), iterations=2)
    train(cfg, tmp_path / "cpu", progress=False)
    with stand_in_device():
        train(cfg, tmp_path / "dev", progress=False, device=STAND_IN)
        trained = load_run(tmp_path / "dev", device=STAND_IN)
        assert trained.device == STAND_IN
    strip = lambda d: [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(d)]
    assert strip(tmp_path / "dev") == strip(tmp_path / "cpu") and len(strip(tmp_path / "cpu")) == 3
    _same(load_run(tmp_path / "dev").policy.state_dict(), load_run(tmp_path / "cpu").policy.state_dict())


# ------------------------------------------------------------------------------------------------ evaluation
def test_evaluation_on_the_stand_in_equals_the_cpu(tmp_path):
    train(replace(tiny_cfg(), iterations=1), tmp_path, progress=False)
    trained = load_run(tmp_path)
    expected = [
        curve(trained, 2, 2, 0.1, 5, batch_steps=0),
        evaluate(trained, "maml", tasks=2, steps=2, batch_steps=24),
    ]
    with stand_in_device():
        dev = load_run(tmp_path, device=STAND_IN)
        got = [curve(dev, 2, 2, 0.1, 5, batch_steps=0), evaluate(dev, "maml", tasks=2, steps=2, batch_steps=24)]
        assert got[0].device.type == "cpu"  # returned numbers are the CPU's
    _same(got[0], expected[0])
    assert got[1] == expected[1]


# ------------------------------------------------------------------------------------------------ planted bugs
def test_a_baseline_feature_made_on_the_cpu_is_caught(monkeypatch):
    real_arange = torch.arange

    def forgetful(n, *a, device=None, **kw):  # the bug: the time feature made without device=
        return real_arange(n, *a, **kw)

    monkeypatch.setattr(baseline_module.torch, "arange", forgetful)
    cfg = tiny_cfg()
    policy = build_policy(cfg)
    _, env_seeds, noise = _streams()
    r = make_sampler(cfg).sample(
        policy, params_of(policy), sample_tasks(cfg.env, 2, np.random.default_rng(0)), 2, noise, env_seeds
    )
    with stand_in_device(), pytest.raises(WrongDeviceError):
        advantages(r.to_device(STAND_IN))


def test_a_batch_left_on_the_cpu_is_caught(monkeypatch):
    monkeypatch.setattr(sampler_module.Rollouts, "to_device", lambda self, device: self)  # the bug: never moved
    cfg = tiny_cfg()
    with stand_in_device(), pytest.raises(WrongDeviceError):
        policy = build_policy(cfg, device=STAND_IN)
        meta_iteration(
            cfg, policy, Sampler(cfg.env, horizon=cfg.horizon), torch.optim.Adam(policy.parameters()), *_streams()
        )


def test_running_out_of_device_memory_names_what_to_lower(tmp_path, monkeypatch):
    train_module = importlib.import_module("icml17.maml.rl.train")  # the module (the package exports the function)
    from icml17.core.device import OutOfMemory

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module, "meta_iteration", oom)
    with pytest.raises(OutOfMemory, match=r"lower meta_batch or rollouts"):
        train(replace(tiny_cfg(), iterations=1), tmp_path, progress=False)
