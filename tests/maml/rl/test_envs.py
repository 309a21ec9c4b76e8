"""Environments against their reference definitions (2D navigation as cbfinn/maml_rl's PointEnvRandGoal;
locomotion rewards recomputed from gymnasium's own x-velocity)."""

import sys

import numpy as np
import pytest

from icml17.core.config import ConfigError
from icml17.maml.rl.envs import (
    REFERENCE_FRAME_SKIP,
    EnvError,
    MujocoMissingError,
    PointNav,
    env_spec,
    make_env,
    sample_tasks,
)

# The reference's control interval, from its model files (cbfinn/maml_rl vendor/mujoco_models): half_cheetah.xml
# <option timestep='0.01'>, ant.xml <option timestep="0.02" integrator="RK4">, neither with a frame_skip numeric,
# so rllab's MujocoEnv (frame_skip = 1 unless the model names one) steps once per action.
RLLAB_TIMESTEP = {"cheetah": 0.01, "ant": 0.02}
RLLAB_FRAME_SKIP = 1


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
    assert np.array_equal(
        sample_tasks("cheetah-vel", 5, np.random.default_rng(1)),
        sample_tasks("cheetah-vel", 5, np.random.default_rng(1)),
    )


def test_unknown_environment_names_the_choices():
    with pytest.raises(EnvError, match="point-nav"):
        sample_tasks("hopper-vel", 3, np.random.default_rng(0))


def test_missing_mujoco_names_the_rl_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(MujocoMissingError, match=r'pip install -e "\.\[rl\]"'):
        make_env("cheetah-vel", np.array([[1.0]]))


@pytest.mark.mujoco
@pytest.mark.parametrize("frame_skip", ["v5", REFERENCE_FRAME_SKIP["cheetah"]])
def test_cheetah_rewards_follow_the_reference_formula_on_gymnasium_velocity(frame_skip):
    import gymnasium as gym

    env = make_env("cheetah-vel", np.array([[1.5]]), frame_skip=frame_skip)
    ref = gym.make("HalfCheetah-v5", frame_skip=5 if frame_skip == "v5" else frame_skip)
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
@pytest.mark.parametrize(
    "env_name, task, progress",
    [
        # cbfinn/maml_rl ant_env_rand_direc.py: d v_x; ant_env_rand.py: -|v_x - v_goal| + 1.0 (without the 1 a step
        # alive is worth less than an ended episode); both then the same costs and the 0.05 survival reward
        ("ant-dir", -1.0, lambda v: -v),
        ("ant-vel", 2.0, lambda v: -abs(v - 2.0) + 1.0),
    ],
)
@pytest.mark.parametrize("frame_skip", ["v5", REFERENCE_FRAME_SKIP["ant"]])
def test_ant_rewards_and_termination_follow_the_reference_formula_on_gymnasium_state(
    env_name, task, progress, frame_skip
):
    import gymnasium as gym

    env = make_env(env_name, np.array([[task]]), frame_skip=frame_skip)
    ref = gym.make("Ant-v5", frame_skip=5 if frame_skip == "v5" else frame_skip)
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


def _x(env, i=0):
    return env.envs[i].data.qpos[0] if env.robot == "cheetah" else env.envs[i].data.xpos[env.torso, 0]


@pytest.mark.mujoco
@pytest.mark.parametrize("robot", ["cheetah", "ant"])
def test_reference_frame_skip_gives_the_reference_control_interval_and_velocity(robot):
    env = make_env(f"{robot}-vel", np.array([[1.0]]), frame_skip=REFERENCE_FRAME_SKIP[robot])
    env.reset(np.array([5]))
    data = env.envs[0].data
    # the definition: one action lasts the model's timestep x the frame skip
    expected_dt = env.envs[0].model.opt.timestep * REFERENCE_FRAME_SKIP[robot]
    assert expected_dt == pytest.approx(RLLAB_TIMESTEP[robot] * RLLAB_FRAME_SKIP, rel=1e-12)  # 0.01 s / 0.02 s
    assert env.dt == pytest.approx(expected_dt, rel=1e-12)
    a = np.random.default_rng(0).uniform(-1, 1, size=(1, env_spec(f"{robot}-vel").act_dim))
    for _ in range(3):
        t0, x0 = data.time, _x(env)
        _, reward, _ = env.step(a)
        assert data.time - t0 == pytest.approx(expected_dt, rel=1e-9)
        # the velocity in the reward is the displacement over that interval
        v = (_x(env) - x0) / expected_dt
        if robot == "cheetah":
            assert reward[0] == pytest.approx(-abs(v - 1.0) - 0.05 * np.square(a).sum(), rel=1e-9)
        else:
            assert reward[0] - 0.05 + 0.005 * np.square(a).sum() + 5e-4 * np.square(
                np.clip(data.cfrc_ext, -1, 1)
            ).sum() == pytest.approx(-abs(v - 1.0) + 1.0, rel=1e-9)
    assert env_spec(f"{robot}-vel").horizon == 200  # the reference's max_path_length


@pytest.mark.mujoco
@pytest.mark.parametrize("name", ["cheetah-dir", "ant-dir"])
def test_v5_option_keeps_gymnasiums_0_05_s(name):
    env = make_env(name, np.array([[1.0]]), frame_skip="v5")
    default = make_env(name, np.array([[1.0]]))  # the default is v5 (what configs without the field ran)
    for e in (env, default):
        e.reset(np.array([2]))
        t0 = e.envs[0].data.time
        e.step(np.zeros((1, env_spec(name).act_dim)))
        assert e.frame_skip == 5 and e.dt == pytest.approx(0.05, rel=1e-12)
        assert e.envs[0].data.time - t0 == pytest.approx(0.05, rel=1e-9)


@pytest.mark.mujoco
def test_a_pool_of_another_frame_skip_is_not_reused():
    v5 = make_env("cheetah-vel", np.zeros((2, 1)))
    same = make_env("cheetah-vel", np.zeros((2, 1)), pool=v5.envs)
    assert same.envs[0] is v5.envs[0]
    ref = make_env("cheetah-vel", np.zeros((2, 1)), pool=v5.envs, frame_skip=1)
    assert ref.envs[0] is not v5.envs[0] and all(e.frame_skip == 1 for e in ref.envs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "fast", True])
def test_bad_frame_skip_is_a_config_error_naming_the_key(bad):
    with pytest.raises(ConfigError, match="frame_skip") as info:
        make_env("cheetah-vel", np.array([[1.0]]), frame_skip=bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="frame_skip"):
        make_env("point-nav", np.array([[0.1, 0.1]]), frame_skip=2)  # no simulator substeps to set


@pytest.mark.mujoco
@pytest.mark.parametrize("name", ["cheetah-vel", "ant-dir"])
def test_locomotion_move_clips_onto_the_action_box_as_rllab_normalize(name):
    env = make_env(name, np.array([[1.0], [1.0]]))
    a = np.random.default_rng(0).normal(size=(2, env_spec(name).act_dim)) * 2
    lb, ub = env.low, env.high
    assert np.array_equal(lb, -np.ones_like(lb)) and np.array_equal(ub, np.ones_like(ub))
    normalized = np.clip(lb + (a + 1.0) * 0.5 * (ub - lb), lb, ub)  # rllab's normalize onto the v5 box
    assert np.allclose(env.move(a), normalized, rtol=0, atol=1e-15)
    assert np.array_equal(env.move(a), np.clip(a, -1, 1))
