"""The batched sampler gives the trajectories that stepping each environment alone gives, same seeds."""


import numpy as np
import pytest
import torch

from icml17.maml.rl.envs import PointNav, sample_tasks
from icml17.maml.rl.policy import GaussianMLPPolicy, params_of
from icml17.maml.rl.sampler import Sampler

def _sample(env, tasks, rollouts, horizon=None, per_task=False):
    torch.manual_seed(0)
    sampler = Sampler(env, horizon=horizon)
    policy = GaussianMLPPolicy(sampler.spec.obs_dim, sampler.spec.act_dim, (16,))
    params = params_of(policy)
    if per_task:
        params = {k: torch.stack([v + 0.1 * i for i in range(len(tasks))]) for k, v in params.items()}
    r = sampler.sample(policy, params, tasks, rollouts, torch.Generator().manual_seed(1), np.random.default_rng(2),
                       per_task=per_task)
    return r, policy, params


def test_point_nav_batched_equals_one_env_at_a_time():
    tasks = sample_tasks("point-nav", 3, np.random.default_rng(0))
    r, policy, params = _sample("point-nav", tasks, 2, per_task=True)
    assert r.obs.shape == (3, 2, 100, 2)
    for k in range(3):
        for j in range(2):
            env = PointNav(tasks[k:k + 1])
            obs = env.reset()
            for t in range(100):
                if r.mask[k, j, t] == 0:
                    break
                assert np.allclose(r.obs[k, j, t].numpy(), obs[0], atol=1e-6)
                # the action is the policy's Gaussian sample with the task's parameters
                p = {n: v[k] for n, v in params.items()}
                mean, _ = torch.func.functional_call(policy, p, (r.obs[k, j, t],))
                assert (r.actions[k, j, t] - mean).abs().max() < 10
                obs, reward, done = env.step(r.actions[k, j, t].double().numpy()[None])
                assert r.rewards[k, j, t].item() == pytest.approx(reward[0], abs=1e-6)
                if done[0]:
                    assert t == 99 or r.mask[k, j, t + 1] == 0
                    break


@pytest.mark.mujoco
def test_cheetah_batched_equals_gymnasium_stepping_one_env_at_a_time():
    import gymnasium as gym

    tasks = np.array([[0.5], [1.7]])
    r, _, _ = _sample("cheetah-vel", tasks, 2, horizon=15)
    seeds = np.random.default_rng(2).integers(0, 2 ** 31 - 1, size=4)  # the sampler's reset seeds, in order
    for i in range(4):
        k, j = divmod(i, 2)
        env = gym.make("HalfCheetah-v5")
        obs, _ = env.reset(seed=int(seeds[i]))
        for t in range(15):
            assert np.allclose(r.obs[k, j, t].numpy(), obs, atol=1e-5)
            a = r.actions[k, j, t].double().numpy()
            obs, _, _, _, info = env.step(np.clip(a, -1, 1))
            expected = -abs(info["x_velocity"] - tasks[k, 0]) - 0.05 * np.square(np.clip(a, -1, 1)).sum()
            assert r.rewards[k, j, t].item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_a_rollout_that_reaches_its_goal_ends_there_and_the_mask_says_so():
    sampler = Sampler("point-nav")
    policy = GaussianMLPPolicy(2, 2, (4,))
    params = {k: torch.zeros_like(v) for k, v in params_of(policy).items()}
    params["mean.2.bias"] = torch.tensor([1.0, 0.0])     # always move +0.1 along x (the box edge)
    params["log_std"] = torch.full((2,), -30.0)          # no noise
    r = sampler.sample(policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 1, torch.Generator(),
                       np.random.default_rng(0))
    assert r.mask[0, 0].sum() == 3 and r.mask[1, 0].sum() == 100  # goal reached after 3 moves; never
    assert r.rewards[0, 0, :3].tolist() == pytest.approx([-0.2, -0.1, 0.0], abs=1e-6)
    assert r.returns()[1, 0].item() == pytest.approx(-sum(0.3 + 0.1 * (t + 1) for t in range(100)), rel=1e-5)


def _straight_line_policy():
    policy = GaussianMLPPolicy(2, 2, (4,))
    params = {k: torch.zeros_like(v) for k, v in params_of(policy).items()}
    params["mean.2.bias"] = torch.tensor([1.0, 0.0])     # always move +0.1 along x
    params["log_std"] = torch.full((2,), -30.0)          # no noise
    return policy, params


def test_batches_counted_in_time_steps_restart_finished_paths_as_the_reference():
    """rllab's vectorised sampler: copies restart a path as soon as one ends; a task's batch closes once its
    finished paths hold min_steps steps. Goal (0.3, 0): every path ends after 3 moves, so 2 copies finish 2 paths
    every 3 steps: 198 steps after 99, 204 (>= 200) after 102 -> 68 paths of 3 steps. Goal (-0.3, 0) is never
    reached: both copies finish at the horizon (100) with 200 steps -> 2 paths. Padding paths are left out of the
    mean return."""
    policy, params = _straight_line_policy()
    r = Sampler("point-nav").sample_steps(policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 2, 200,
                                          torch.Generator(), np.random.default_rng(0))
    lengths = r.mask.sum(-1)
    assert r.obs.shape[:3] == (2, 68, 100)
    assert (lengths[0] == 3).all() and lengths[1, :2].tolist() == [100, 100] and (lengths[1, 2:] == 0).all()
    assert r.path_starts()[1].sum() == 2
    assert r.returns()[0].tolist() == pytest.approx([-0.3] * 68, abs=1e-6)  # -0.2, -0.1, 0
    far = -sum(0.3 + 0.1 * (t + 1) for t in range(100))
    assert r.mean_returns().tolist() == pytest.approx([-0.3, far], rel=1e-5)
    # every restarted path starts at the origin again
    assert torch.equal(r.obs[0, :, 0], torch.zeros(68, 2))


def test_batches_of_paths_that_run_to_the_horizon_equal_full_rollouts():
    """When no path ends early, counting the batch in time steps (copies x horizon) gives the same rollouts,
    bit for bit, as sampling that many full rollouts (same generators)."""
    tasks = np.array([[0.45, -0.45], [-0.45, 0.45]])
    torch.manual_seed(0)
    sampler = Sampler("point-nav", horizon=30)
    policy = GaussianMLPPolicy(2, 2, (16,))
    params = params_of(policy)
    full = sampler.sample(policy, params, tasks, 3, torch.Generator().manual_seed(1), np.random.default_rng(2))
    assert (full.mask == 1).all()  # nothing reached its goal within 30 steps
    steps = sampler.sample_steps(policy, params, tasks, 3, 3 * 30, torch.Generator().manual_seed(1),
                                 np.random.default_rng(2))
    for a, b in zip((full.obs, full.actions, full.rewards, full.mask), (steps.obs, steps.actions, steps.rewards,
                                                                        steps.mask)):
        assert torch.equal(a, b)


def test_training_batches_as_the_reference_one_copy_per_task_restarting_until_the_total():
    """The reference's meta-training sampler: one copy per task, all stepping together, a finished path restarts
    at once, sampling stops when the finished paths of all tasks hold the batch size, running paths are dropped.
    Goal (0.3, 0): a path ends every 3 steps; goal (-0.3, 0): only at the horizon (100). Finished steps
    3j + 100 reach 200 first at step 102 (at 100: 99 + 100): 34 paths of 3 steps, and one path of 100 steps
    whose 2-step successor is dropped."""
    policy, params = _straight_line_policy()
    r = Sampler("point-nav").sample_lanes(policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 200,
                                          torch.Generator(), np.random.default_rng(0))
    assert r.obs.shape[:3] == (2, 1, 102)
    assert r.mask[0, 0].sum() == 102 and r.mask[1, 0].sum() == 100 and r.mask[1, 0, 100:].sum() == 0
    assert torch.nonzero(r.path_starts()[0, 0]).flatten().tolist() == list(range(0, 102, 3))
    assert torch.nonzero(r.path_starts()[1, 0]).flatten().tolist() == [0]
    assert torch.equal(r.obs[0, 0, ::3], torch.zeros(34, 2))  # every path starts at the origin
    far = -sum(0.3 + 0.1 * (t + 1) for t in range(100))
    assert r.mean_returns().tolist() == pytest.approx([-0.3, far], rel=1e-5)
    with pytest.raises(ValueError, match="packed"):
        r.returns()
