"""A tiny float64 meta-RL problem with fixed rollouts, shared by the numerical tests; the ``mujoco`` marker."""

import importlib.util

import pytest
import torch

from icml17.maml.rl.policy import GaussianMLPPolicy, params_of


def tiny_problem(tasks: int = 3, rollouts: int = 4, horizon: int = 5, seed: int = 0):
    """(policy, theta, inner batch, outer batch): obs 2, actions 2, one hidden layer of 3 tanh-free ReLU units;
    a few padded steps so that the mask matters."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(2, 2, hidden=(3,)).double()
    theta = {
        k: v.detach() + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64)
        for k, v in params_of(policy).items()
    }

    def batch():
        mask = torch.ones(tasks, rollouts, horizon, dtype=torch.float64)
        mask[:, 0, -2:] = 0
        return {
            "obs": torch.randn(tasks, rollouts, horizon, 2, generator=g, dtype=torch.float64),
            "actions": torch.randn(tasks, rollouts, horizon, 2, generator=g, dtype=torch.float64),
            "adv": torch.randn(tasks, rollouts, horizon, generator=g, dtype=torch.float64) * mask,
            "mask": mask,
        }

    return policy, theta, batch(), batch()


@pytest.fixture
def tiny():
    return tiny_problem()


@pytest.fixture
def make_tiny():
    """:func:`tiny_problem` itself, for other sizes."""
    return tiny_problem


HAS_MUJOCO = importlib.util.find_spec("mujoco") is not None and importlib.util.find_spec("gymnasium") is not None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``mujoco`` skip, saying how to install it, where gymnasium[mujoco] is missing."""
    if HAS_MUJOCO:
        return
    skip = pytest.mark.skip(reason="gymnasium[mujoco] is not installed (pip install -e '.[rl]')")
    for item in items:
        if "mujoco" in item.keywords:
            item.add_marker(skip)
