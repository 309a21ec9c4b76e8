"""The presets carry the reference code's hyperparameters (cbfinn/maml_rl, its RL protocol)."""

from dataclasses import replace

import pytest
import torch

from icml17.core.config import ConfigError, override_config
from icml17.maml.rl.envs import env_spec
from icml17.maml.rl.presets import PRESETS, make_config


def test_reference_hyperparameters():
    # cbfinn/maml_rl maml_trpo_point.py with the parameter file of the published curve (fbs20_mbs20_flr_0.5):
    # 20 tasks, 20 x 100 time steps per task counted as its sampler counts them
    nav = make_config("point-nav")
    assert (nav.meta_batch, nav.rollouts, nav.inner_lr, nav.inner_steps, nav.max_kl, nav.cg_iters, nav.iterations) == (
        20,
        20,
        0.5,
        1,
        0.01,
        10,
        100,
    )
    assert nav.batch == "steps" and nav.init == "xavier"
    assert (nav.backtrack_ratio, nav.max_backtracks, nav.cg_damping, nav.gamma, nav.gae_lambda) == (
        0.8,
        15,
        1e-5,
        0.99,
        1.0,
    )
    assert env_spec("point-nav").horizon == 100 and env_spec("cheetah-vel").horizon == 200
    for name in ("cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir"):
        assert PRESETS[name].meta_batch == 40 and PRESETS[name].hidden == (100, 100)
        assert PRESETS[name].batch == "rollouts"  # the batches their records were trained with
    assert PRESETS["ant-dir"].rollouts == 40 and PRESETS["ant-vel"].rollouts == 20


def test_modes_and_overrides_are_validated():
    assert make_config("point-nav", "oracle").oracle and make_config("point-nav", "pretrained").train_inner_steps == 0
    assert make_config("cheetah-dir", "pretrained").experiment == "cheetah-dir-pretrained"
    with pytest.raises(ConfigError, match="unknown mode"):
        make_config("point-nav", "expert")
    with pytest.raises(ConfigError, match="unknown config key"):
        override_config(make_config("point-nav"), {"inner_learning_rate": "0.2"})
    with pytest.raises(ConfigError, match="curvature"):
        override_config(make_config("point-nav"), {"curvature": "diagonal"})


def test_xavier_init_is_glorot_uniform_with_zero_biases():
    import math

    from icml17.maml.rl.train import build_policy

    policy = build_policy(replace(make_config("point-nav"), init="xavier"))
    for layer in (m for m in policy.mean if isinstance(m, torch.nn.Linear)):
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))  # Glorot & Bengio 2010
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and (layer.bias == 0).all()
    assert (policy.log_std == 0).all()
    with pytest.raises(ConfigError, match="init"):
        replace(make_config("point-nav"), init="he").validate()


# ---------------------------------------------------------------------------------- control interval (issue 28)
LOCOMOTION = ("cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir")
# the reference's seconds per action: rllab's half_cheetah.xml timestep 0.01, ant.xml 0.02, one step per action
REFERENCE_DT = {"cheetah": 0.01, "ant": 0.02}


def test_locomotion_presets_name_the_reference_frame_skip_and_horizon():
    from icml17.maml.rl.envs import REFERENCE_FRAME_SKIP

    assert REFERENCE_FRAME_SKIP == {"cheetah": 1, "ant": 2}
    for name in LOCOMOTION:
        cfg = make_config(name)
        assert cfg.frame_skip == REFERENCE_FRAME_SKIP[name.split("-")[0]]
        assert cfg.horizon == 0 and env_spec(name).horizon == 200  # the reference's max_path_length
        for mode in ("pretrained", "oracle"):
            assert make_config(name, mode).frame_skip == cfg.frame_skip  # baselines run the same simulator
    assert make_config("point-nav").frame_skip == "v5"  # unused: no simulator


@pytest.mark.mujoco
@pytest.mark.parametrize("name", LOCOMOTION)
def test_locomotion_presets_step_the_reference_control_interval(name):
    import numpy as np

    from icml17.maml.rl.envs import make_env

    cfg = make_config(name)
    env = make_env(name, np.array([[1.0]]), frame_skip=cfg.frame_skip)
    expected = env.envs[0].model.opt.timestep * cfg.frame_skip  # the definition: timestep x frame skip
    assert expected == pytest.approx(REFERENCE_DT[name.split("-")[0]], rel=1e-12)
    env.reset(np.array([0]))
    t0 = env.envs[0].data.time
    env.step(np.zeros((1, env_spec(name).act_dim)))
    assert env.envs[0].data.time - t0 == pytest.approx(expected, rel=1e-9) and env.dt == pytest.approx(expected)


def test_v5_control_interval_is_a_named_option_and_the_default_of_older_configs():
    from icml17.core.config import config_from_dict, config_to_dict
    from icml17.maml.rl.presets import MAMLRLConfig

    assert MAMLRLConfig().frame_skip == "v5"
    v5 = override_config(make_config("ant-vel"), {"frame_skip": "v5"})
    assert v5.frame_skip == "v5" and override_config(make_config("ant-vel"), {"frame_skip": "5"}).frame_skip == 5
    # a config stored before the field existed (checkpoints of the earlier records) means gymnasium's v5 interval
    stored = {k: v for k, v in config_to_dict(make_config("cheetah-vel")).items() if k != "frame_skip"}
    assert config_from_dict(MAMLRLConfig, stored).frame_skip == "v5"


def test_resuming_an_older_run_under_the_new_preset_is_refused_naming_frame_skip(tmp_path):
    import json

    from icml17.core.config import config_to_dict
    from icml17.core.runs import check_resume

    old = {k: v for k, v in config_to_dict(make_config("cheetah-vel")).items() if k != "frame_skip"}
    with pytest.raises(ConfigError, match=r"frame_skip: 'v5' -> 1"):
        check_resume(tmp_path, {"config": json.dumps(old), "step": 5}, make_config("cheetah-vel"))
    check_resume(tmp_path, {"config": json.dumps(old), "step": 5}, replace(make_config("cheetah-vel"), frame_skip="v5"))


@pytest.mark.parametrize(
    "preset, value",
    [
        ("cheetah-vel", "0"),
        ("ant-dir", "-2"),
        ("cheetah-dir", "fast"),
        ("ant-vel", "1.5"),
        ("ant-vel", "true"),
        ("point-nav", "2"),
    ],
)
def test_bad_frame_skip_is_one_line_naming_the_key(preset, value):
    with pytest.raises(ConfigError, match="frame_skip") as info:
        override_config(make_config(preset), {"frame_skip": value})
    assert "\n" not in str(info.value)


def test_evaluation_later_step_factors_are_the_reference_test_scripts():
    from icml17.maml.rl.presets import LATER_STEP_FACTORS, later_step_factor

    # cbfinn/maml_rl test_maml_ant_direc.py: 'learning_rate': 0.01*step_sizes[step_i]; the other test scripts 0.5
    assert later_step_factor("ant-dir") == 0.01
    assert all(later_step_factor(e) == 0.5 for e in ("point-nav", "cheetah-vel", "cheetah-dir", "ant-vel"))
    assert set(LATER_STEP_FACTORS) == set(PRESETS)
    with pytest.raises(ConfigError, match="hopper"):
        later_step_factor("hopper-vel")


@pytest.mark.mujoco
def test_training_sampler_steps_the_configs_frame_skip():
    import numpy as np

    from icml17.maml.rl.envs import make_env
    from icml17.maml.rl.policy import params_of
    from icml17.maml.rl.train import build_policy, make_sampler

    cfg = replace(make_config("cheetah-vel"), horizon=1)
    policy = build_policy(cfg)
    tasks = np.array([[1.0]])
    out = make_sampler(cfg).sample(
        policy, params_of(policy), tasks, 1, torch.Generator().manual_seed(0), np.random.default_rng(3)
    )
    env = make_env("cheetah-vel", tasks, frame_skip=cfg.frame_skip)
    from icml17.maml.rl.sampler import TaskStreams

    env.reset(TaskStreams(torch.Generator().manual_seed(0), np.random.default_rng(3), 1).initial_seeds(1))
    _, reward, _ = env.step(out.actions[0, 0, 0].double().numpy()[None])
    assert out.rewards[0, 0, 0].item() == pytest.approx(reward[0], rel=1e-5)


def test_make_config_takes_a_mode_and_overrides_and_validates():

    cfg = make_config("point-nav", "pretrained", {"meta_batch": "4"})
    assert (cfg.mode, cfg.meta_batch, cfg.experiment) == ("pretrained", 4, "point-nav-pretrained")
    assert make_config("cheetah-vel") == PRESETS["cheetah-vel"]
    with pytest.raises(ConfigError, match="gamma must lie"):
        make_config("point-nav", overrides={"gamma": 1.5})
