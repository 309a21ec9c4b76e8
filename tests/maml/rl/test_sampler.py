"""The batched sampler gives the trajectories that stepping each environment alone gives, same seeds; evaluation
batches of whole paths estimate the expected return where dropping the paths in flight does not; per-task random
streams give a shard of the tasks the episodes they get in the whole batch; sharded training lanes stop where one
process stops."""

import numpy as np
import pytest
import torch

from icml17.maml.rl.envs import PointNav, sample_tasks
from icml17.maml.rl.policy import GaussianMLPPolicy, params_of
from icml17.maml.rl.sampler import NonFiniteRolloutError, Sampler


def _sample(env, tasks, rollouts, horizon=None, per_task=False):
    torch.manual_seed(0)
    sampler = Sampler(env, horizon=horizon)
    policy = GaussianMLPPolicy(sampler.spec.obs_dim, sampler.spec.act_dim, (16,))
    params = params_of(policy)
    if per_task:
        params = {k: torch.stack([v + 0.1 * i for i in range(len(tasks))]) for k, v in params.items()}
    r = sampler.sample(
        policy, params, tasks, rollouts, torch.Generator().manual_seed(1), np.random.default_rng(2), per_task=per_task
    )
    return r, policy, params


def test_point_nav_batched_equals_one_env_at_a_time():
    tasks = sample_tasks("point-nav", 3, np.random.default_rng(0))
    r, policy, params = _sample("point-nav", tasks, 2, per_task=True)
    assert r.obs.shape == (3, 2, 100, 2)
    for k in range(3):
        for j in range(2):
            env = PointNav(tasks[k : k + 1])
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
    # the sampler's reset seeds: each task's own stream, seeded by the caller's env_seeds stream, its copies in order
    task_seeds = np.random.default_rng(2).integers(0, 2**62, size=2)
    seeds = np.concatenate([np.random.default_rng(int(s)).integers(0, 2**31 - 1, size=2) for s in task_seeds])
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
    params["mean.2.bias"] = torch.tensor([1.0, 0.0])  # always move +0.1 along x (the box edge)
    params["log_std"] = torch.full((2,), -30.0)  # no noise
    r = sampler.sample(
        policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 1, torch.Generator(), np.random.default_rng(0)
    )
    assert r.mask[0, 0].sum() == 3 and r.mask[1, 0].sum() == 100  # goal reached after 3 moves; never
    assert r.rewards[0, 0, :3].tolist() == pytest.approx([-0.2, -0.1, 0.0], abs=1e-6)
    assert r.returns()[1, 0].item() == pytest.approx(-sum(0.3 + 0.1 * (t + 1) for t in range(100)), rel=1e-5)


def _straight_line_policy():
    policy = GaussianMLPPolicy(2, 2, (4,))
    params = {k: torch.zeros_like(v) for k, v in params_of(policy).items()}
    params["mean.2.bias"] = torch.tensor([1.0, 0.0])  # always move +0.1 along x
    params["log_std"] = torch.full((2,), -30.0)  # no noise
    return policy, params


def test_batches_counted_in_time_steps_restart_finished_paths_as_the_reference():
    """rllab's vectorised sampler: copies restart a path as soon as one ends; a task's batch closes once its
    finished paths hold min_steps steps. Goal (0.3, 0): every path ends after 3 moves, so 2 copies finish 2 paths
    every 3 steps: 198 steps after 99, 204 (>= 200) after 102 -> 68 paths of 3 steps. Goal (-0.3, 0) is never
    reached: both copies finish at the horizon (100) with 200 steps -> 2 paths. Padding paths are left out of the
    mean return."""
    policy, params = _straight_line_policy()
    r = Sampler("point-nav").sample_steps(
        policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 2, 200, torch.Generator(), np.random.default_rng(0)
    )
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
    steps = sampler.sample_steps(
        policy, params, tasks, 3, 3 * 30, torch.Generator().manual_seed(1), np.random.default_rng(2)
    )
    for a, b in zip(
        (full.obs, full.actions, full.rewards, full.mask), (steps.obs, steps.actions, steps.rewards, steps.mask)
    ):
        assert torch.equal(a, b)


def test_training_batches_as_the_reference_one_copy_per_task_restarting_until_the_total():
    """The reference's meta-training sampler: one copy per task, all stepping together, a finished path restarts
    at once, sampling stops when the finished paths of all tasks hold the batch size, running paths are dropped.
    Goal (0.3, 0): a path ends every 3 steps; goal (-0.3, 0): only at the horizon (100). Finished steps
    3j + 100 reach 200 first at step 102 (at 100: 99 + 100): 34 paths of 3 steps, and one path of 100 steps
    whose 2-step successor is dropped."""
    policy, params = _straight_line_policy()
    r = Sampler("point-nav").sample_lanes(
        policy, params, np.array([[0.3, 0.0], [-0.3, 0.0]]), 200, torch.Generator(), np.random.default_rng(0)
    )
    assert r.obs.shape[:3] == (2, 1, 102)
    assert r.mask[0, 0].sum() == 102 and r.mask[1, 0].sum() == 100 and r.mask[1, 0, 100:].sum() == 0
    assert torch.nonzero(r.path_starts()[0, 0]).flatten().tolist() == list(range(0, 102, 3))
    assert torch.nonzero(r.path_starts()[1, 0]).flatten().tolist() == [0]
    assert torch.equal(r.obs[0, 0, ::3], torch.zeros(34, 2))  # every path starts at the origin
    far = -sum(0.3 + 0.1 * (t + 1) for t in range(100))
    assert r.mean_returns().tolist() == pytest.approx([-0.3, far], rel=1e-5)
    with pytest.raises(ValueError, match="packed"):
        r.returns()


# ------------------------------------------------------------------------------- whole paths in evaluation
class RandomLengthEnv:
    """A toy batched environment with a known episode-length distribution: at each reset a copy's episode length
    is ``short`` with probability ``p`` and ``long`` otherwise (drawn from the copy's reset seed, independent of
    everything before), every step pays -1 (return = -length), actions are ignored. The observation is
    (number of step calls so far, steps into the path), so a path's end time can be read from its rollout."""

    def __init__(self, n: int, p: float, short: int, long: int):
        self.n, self.p, self.short, self.long = n, p, short, long
        self.clock, self.t, self.length = 0, np.zeros(n, int), np.zeros(n, int)

    def _draw(self, seed) -> int:
        return self.short if np.random.default_rng(int(seed)).random() < self.p else self.long

    def _obs(self) -> np.ndarray:
        return np.stack([np.full(self.n, float(self.clock)), self.t.astype(float)], 1)

    def reset(self, seeds):
        self.t[:] = 0
        self.length[:] = [self._draw(s) for s in seeds]
        return self._obs()

    def reset_copies(self, index, seeds):
        self.t[index] = 0
        self.length[index] = [self._draw(s) for s in seeds]
        return self._obs()[index]

    def step(self, actions, active=None):
        active = np.ones(self.n, bool) if active is None else active
        self.clock += 1
        self.t += active
        return self._obs(), np.full(self.n, -1.0), self.t >= self.length


class RandomLengthSampler(Sampler):
    def __init__(self, p: float, short: int, long: int):
        super().__init__("point-nav", horizon=long)  # observations and actions of size 2; horizon = long
        self.toy = (p, short, long)

    def _env(self, tasks):
        return RandomLengthEnv(len(tasks), *self.toy)


def _paths(r, task):
    """(return, length, end time in step calls) of each path of ``task`` in a (K, P, T) batch."""
    out = []
    for j in range(r.mask.shape[1]):
        n = int(r.mask[task, j].sum())
        if n:
            out.append((r.rewards[task, j, :n].sum().item(), n, int(r.obs[task, j, n - 1, 0].item()) + 1))
    return out


def _dropping_running_paths(paths, min_steps):
    """The rule evaluation used until issue 28, on the same episodes: the batch closes at the first step at
    which the finished paths hold ``min_steps`` steps, and the paths still running then are dropped."""
    done, close = 0, None
    for _, n, end in sorted(paths, key=lambda x: x[2]):
        done += n
        if done >= min_steps:
            close = end
            break
    return [x for x in paths if x[2] <= close]


def test_evaluation_batches_finish_the_paths_in_flight_and_keep_every_path():
    """The step budget stops new paths; the paths then in flight run to their end and count, whole: every path
    in the batch starts at its copy's reset and ends done (here: at its drawn length), none is cut."""
    sampler = RandomLengthSampler(0.5, 1, 10)
    policy = GaussianMLPPolicy(2, 2, (4,))
    r = sampler.sample_steps(
        policy, params_of(policy), np.zeros((50, 2)), 4, 30, torch.Generator().manual_seed(0), np.random.default_rng(1)
    )
    for task in range(50):
        paths = _paths(r, task)
        lengths = [n for _, n, _ in paths]
        assert set(lengths) <= {1, 10} and all(ret == -n for ret, n, _ in paths)  # whole paths only
        assert sum(lengths) >= 30 and sum(lengths) - 30 < 4 * 10  # the budget, plus at most the paths in flight
        closed = max(end for _, _, end in _dropping_running_paths(paths, 30))
        # no path starts after the batch closed: a path ending later began at or before the closing step
        assert all(end - n < closed for _, n, end in paths)
    # some tasks had paths in flight when their batch closed: those are the paths the old rule dropped
    assert sum(len(_paths(r, k)) - len(_dropping_running_paths(_paths(r, k), 30)) for k in range(50)) > 0


def test_whole_paths_estimate_the_expected_return_and_dropping_running_paths_does_not():
    """Toy episodes: length 1 with probability 1/2, else 10; return = -length, so the expected return of an
    episode is mu = -(0.5 * 1 + 0.5 * 10) = -5.5. 400 tasks, each one batch of 20 copies and a 400-step budget:

    - whole paths (the new rule, the reference's): every path is started before its length is drawn, and kept, so
      by Wald's identity E[sum of returns - mu * number of paths] = 0 exactly; the mean of that difference over
      tasks is checked against 0 within 4 standard errors (its standard deviation over tasks / sqrt(400)). The
      evaluation's statistic, each task's mean return averaged over tasks, is a ratio, biased by order 1 / paths
      (-0.034 +- 0.003 here in a 20,000-batch simulation of the same rule); it is checked within 4 standard errors
      plus 0.05 of mu.
    - dropping the paths still running when the budget is reached (the old rule, on the same episodes): the
      dropped paths are the long ones a budget cuts (inspection paradox), so the statistic is optimistic (+0.64
      +- 0.003 in the same simulation); it and the Wald difference are checked to be more than 8 standard errors
      above mu and 0."""
    mu, tasks, copies, budget = -5.5, 400, 20, 400
    sampler = RandomLengthSampler(0.5, 1, 10)
    policy = GaussianMLPPolicy(2, 2, (4,))
    r = sampler.sample_steps(
        policy,
        params_of(policy),
        np.zeros((tasks, 2)),
        copies,
        budget,
        torch.Generator().manual_seed(0),
        np.random.default_rng(1),
    )
    whole = [_paths(r, k) for k in range(tasks)]
    dropped = [_dropping_running_paths(p, budget) for p in whole]

    def stats(batches):
        sums = np.array([sum(ret for ret, _, _ in b) for b in batches])
        counts = np.array([len(b) for b in batches])
        wald, means = sums - mu * counts, sums / counts
        se = lambda x: x.std(ddof=1) / np.sqrt(len(x))
        return wald.mean(), se(wald), means.mean(), se(means)

    wald, wald_se, mean, mean_se = stats(whole)
    assert abs(wald) < 4 * wald_se
    assert abs(mean - mu) < 4 * mean_se + 0.05
    assert r.mean_returns().mean().item() == pytest.approx(mean)  # the sampler's own per-task means
    old_wald, old_wald_se, old_mean, old_se = stats(dropped)
    assert old_wald > 8 * old_wald_se
    assert old_mean - mu > 8 * old_se


# ------------------------------------------------------------------------------------- per-task streams
@pytest.mark.parametrize("kind", ["sample", "sample_steps"])
@pytest.mark.parametrize("per_task", [False, True])
def test_a_shard_gets_the_episodes_its_tasks_get_in_the_whole_batch(kind, per_task):
    """Each task draws its noise and reset seeds from its own streams, seeded from the caller's streams for the
    whole batch: a slice of the tasks sampled alone (what a torchrun rank does) gives the rollouts those tasks get
    in the whole batch, and leaves the caller's streams where the whole batch leaves them. The same episodes up to
    rounding (a matrix product of 2 tasks' observations need not round as the same rows among 4 do): float64."""
    tasks = sample_tasks("point-nav", 4, np.random.default_rng(0))
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (16,)).double()
    params = params_of(policy)
    if per_task:
        params = {k: torch.stack([v.detach() + 0.05 * i for i in range(4)]) for k, v in params.items()}
    extra = {"sample": (3,), "sample_steps": (3, 150)}[kind]

    def run(shard):
        g, seeds = torch.Generator().manual_seed(1), np.random.default_rng(2)
        p = {k: v[shard] for k, v in params.items()} if per_task and shard is not None else params
        r = getattr(Sampler("point-nav", horizon=40), kind)(
            policy, p, tasks, *extra, g, seeds, per_task=per_task, shard=shard
        )
        return r, torch.randn(1, generator=g).item(), seeds.random()

    whole, g_next, seeds_next = run(None)
    for shard in (slice(0, 2), slice(2, 4), slice(1, 2)):
        part, g_part, seeds_part = run(shard)
        assert (g_part, seeds_part) == (g_next, seeds_next)
        for a, b in zip(
            (part.obs, part.actions, part.rewards, part.mask), (whole.obs, whole.actions, whole.rewards, whole.mask)
        ):
            torch.testing.assert_close(a, b[shard][:, : a.shape[1]], rtol=1e-12, atol=1e-12)
        assert part.mask.shape[1] == whole.mask.shape[1] or whole.mask[shard][:, part.mask.shape[1] :].sum() == 0


def test_training_lanes_of_a_shard_need_the_other_ranks():
    policy, params = _straight_line_policy()
    with pytest.raises(ValueError, match="other torchrun ranks"):
        Sampler("point-nav").sample_lanes(
            policy, params, np.zeros((2, 2)), 50, torch.Generator(), np.random.default_rng(0), shard=slice(0, 1)
        )


@pytest.mark.parametrize("per_task", [False, True])
def test_the_samplers_written_out_policy_call_is_the_policys_own(per_task):
    """The sampler computes the Linear/ReLU policy's means with one matrix product per layer; the module through
    ``functional_call`` (``vmap`` over tasks for per-task parameters) gives the same numbers."""
    from torch.func import functional_call, vmap

    from icml17.maml.rl.sampler import _policy_means

    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, (8, 5)).double()
    params = {k: v.detach() for k, v in params_of(policy).items()}
    if per_task:
        params = {k: torch.stack([v + 0.1 * i for i in range(4)]) for k, v in params.items()}
    obs = torch.randn(4, 6, 3, dtype=torch.float64)
    mean, log_std = _policy_means(policy, params, obs, per_task)
    if per_task:
        ref_mean, ref_log_std = vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs)
        ref_log_std = ref_log_std[:, None, :]
    else:
        ref_mean, ref_log_std = functional_call(policy, params, (obs,))
        ref_log_std = ref_log_std[None, None, :]
    torch.testing.assert_close(mean, ref_mean, rtol=1e-13, atol=1e-13)
    assert torch.equal(log_std, ref_log_std)


def _as_if_sharded(monkeypatch):
    """The sampler's view of a torchrun run of 2 processes, in this one process: sums over ranks are its own."""
    from icml17.core import distributed

    monkeypatch.setattr(distributed, "context", lambda: distributed.Context(rank=0, world_size=2))
    monkeypatch.setattr(distributed, "sum_over_ranks", lambda values: [float(v) for v in values])


def _lanes(tasks, total, horizon, shard=None):
    policy, params = _straight_line_policy()
    return Sampler("point-nav", horizon=horizon).sample_lanes(
        policy, params, np.asarray(tasks), total, torch.Generator(), np.random.default_rng(0), shard=shard
    )


def test_sharded_lanes_step_ahead_in_blocks_and_cut_at_the_one_process_stop(monkeypatch):
    """Three goals never reached (paths of 40 steps) and one reached every 2 steps: a budget of 400 steps is
    reached at step 120 (360 + 120; at 119, 240 + 118), in the second block of checks (from step 100 = 400 / 4:
    100-115, 116-131). Stepping ahead to 131 and cutting at 120 gives the one-process batch exactly."""
    tasks = [[-0.3, 0.0]] * 3 + [[0.2, 0.0]]
    plain = _lanes(tasks, 400, 40)
    assert plain.mask.shape[-1] == 120
    _as_if_sharded(monkeypatch)
    ahead = _lanes(tasks, 400, 40, shard=slice(0, 4))
    for a, b in zip(
        (plain.obs, plain.actions, plain.rewards, plain.mask, plain.starts),
        (ahead.obs, ahead.actions, ahead.rewards, ahead.mask, ahead.starts),
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize("call, fails", [(110, True), (125, False)])
def test_a_non_finite_step_stops_sharded_lanes_only_before_their_stop(monkeypatch, call, fails):
    """A NaN reward at step call 110 (inside the batch, which ends at step 120) is an error; at call 125 it is in
    a step taken ahead and discarded, as one process never takes it."""
    real, calls = PointNav.step, []

    def step(env, actions, active=None):
        obs, reward, done = real(env, actions, active)
        calls.append(1)
        return obs, (reward * np.nan if len(calls) == call else reward), done

    monkeypatch.setattr(PointNav, "step", step)
    _as_if_sharded(monkeypatch)
    tasks = [[-0.3, 0.0]] * 3 + [[0.2, 0.0]]
    if fails:
        with pytest.raises(NonFiniteRolloutError, match="time step 109"):
            _lanes(tasks, 400, 40, shard=slice(0, 4))
    else:
        assert _lanes(tasks, 400, 40, shard=slice(0, 4)).mask.shape[-1] == 120
