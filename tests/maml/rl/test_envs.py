"""Environments against their reference definitions (2D navigation as cbfinn/maml_rl's PointEnvRandGoal;
locomotion rewards recomputed from gymnasium's own x-velocity)."""

import sys

import numpy as np
import pytest

from icml17.maml.rl.envs import (
    EnvError,
    MujocoMissingError,
    PointNav,
    env_spec,
    make_env,
    sample_tasks,
)

def rllab_normalized_move(a, lb=-0.1, ub=0.1):
    """rllab's ``normalize`` wrapper, as the reference scripts ran the point env: [-1, 1] onto [lb, ub], clipped."""
    return np.clip(lb + (np.asarray(a) + 1.0) * 0.5 * (ub - lb), lb, ub)


def test_point_nav_reward_is_minus_distance_after_the_normalized_move():
    goals = np.array([[0.3, -0.2], [0.05, 0.0]])
    env = PointNav(goals)
    assert np.array_equal(env.reset(), np.zeros((2, 2)))
    actions = np.array([[3.0, -0.3], [0.5, 0.0]])
    obs, reward, done = env.step(actions)
    # the first action leaves the box on x (a move of 0.1, not 0.3); -0.3 moves by -0.03; 0.5 moves by 0.05
    assert np.allclose(obs, [[0.1, -0.03], [0.05, 0.0]])
    assert np.allclose(obs, rllab_normalized_move(actions))
    assert np.allclose(reward, [-np.hypot(0.1 - 0.3, -0.03 + 0.2), -0.0])
    assert done.tolist() == [False, True]


def test_point_nav_done_needs_both_coordinates_within_0_01():
    env = PointNav(np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    env.reset()
    _, _, done = env.step(np.array([[0.099, -0.099], [0.101, 0.0], [0.0, 0.2]]))
    assert done.tolist() == [True, False, False]
    assert env_spec("point-nav").horizon == 100


def test_point_nav_oracle_appends_the_goal():
    env = PointNav(np.array([[0.3, -0.2]]), oracle=True)
    assert np.allclose(env.reset(), [[0.0, 0.0, 0.3, -0.2]])


def test_task_distributions():
    rng = np.random.default_rng(0)
    goals = sample_tasks("point-nav", 1000, rng)
    assert goals.shape == (1000, 2) and goals.min() >= -0.5 and goals.max() <= 0.5
    assert set(np.unique(sample_tasks("cheetah-dir", 50, rng))) == {-1.0, 1.0}
    vel = sample_tasks("ant-vel", 1000, rng)
    assert vel.min() >= 0 and vel.max() <= 3 and vel.max() > 2.5
    assert np.array_equal(sample_tasks("cheetah-vel", 5, np.random.default_rng(1)),
                          sample_tasks("cheetah-vel", 5, np.random.default_rng(1)))


def test_unknown_environment_names_the_choices():
    with pytest.raises(EnvError, match="point-nav"):
        sample_tasks("hopper-vel", 3, np.random.default_rng(0))


def test_missing_mujoco_names_the_rl_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(MujocoMissingError, match=r'pip install -e "\.\[rl\]"'):
        make_env("cheetah-vel", np.array([[1.0]]))


@pytest.mark.mujoco
def test_cheetah_rewards_follow_the_reference_formula_on_gymnasium_velocity():
    import gymnasium as gym

    env = make_env("cheetah-vel", np.array([[1.5]]))
    ref = gym.make("HalfCheetah-v5")
    o1 = env.reset(np.array([7]))
    o2, _ = ref.reset(seed=7)
    assert np.allclose(o1[0], o2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=(1, 6)) * 1.5
        obs, reward, done = env.step(a)
        ro, _, _, _, info = ref.step(np.clip(a[0], -1, 1))
        clipped = np.clip(a[0], -1, 1)
        assert np.allclose(obs[0], ro)
        assert reward[0] == pytest.approx(-abs(info["x_velocity"] - 1.5) - 0.05 * np.square(clipped).sum(), rel=1e-9)
        assert not done[0]


@pytest.mark.mujoco
@pytest.mark.parametrize("env_name, task, progress", [
    # cbfinn/maml_rl ant_env_rand_direc.py: d v_x; ant_env_rand.py: -|v_x - v_goal| + 1.0 (without the 1 a step
    # alive is worth less than an ended episode); both then the same costs and the 0.05 survival reward
    ("ant-dir", -1.0, lambda v: -v),
    ("ant-vel", 2.0, lambda v: -abs(v - 2.0) + 1.0),
])
def test_ant_rewards_and_termination_follow_the_reference_formula_on_gymnasium_state(env_name, task, progress):
    import gymnasium as gym

    env = make_env(env_name, np.array([[task]]))
    ref = gym.make("Ant-v5")
    assert np.allclose(env.reset(np.array([3]))[0], ref.reset(seed=3)[0])
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.uniform(-1, 1, size=(1, 8))
        obs, reward, done = env.step(a)
        ro, _, terminated, _, info = ref.step(a[0])
        contact = np.square(np.clip(ref.unwrapped.data.cfrc_ext, -1, 1)).sum()
        expected = progress(info["x_velocity"]) - 0.005 * np.square(a).sum() - 5e-4 * contact + 0.05
        assert np.allclose(obs[0], ro) and reward[0] == pytest.approx(expected, rel=1e-9)
        assert done[0] == terminated
