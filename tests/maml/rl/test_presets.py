"""The presets carry the reference code's hyperparameters (notes/maml.md, "RL protocol of the reference code")."""

from dataclasses import replace

import pytest
import torch

from icml17.core.config import ConfigError, override_config
from icml17.maml.rl.envs import env_spec
from icml17.maml.rl.presets import PRESETS, get_preset


def test_reference_hyperparameters():
    # cbfinn/maml_rl maml_trpo_point.py with the parameter file of the published curve (fbs20_mbs20_flr_0.5):
    # 20 tasks, 20 x 100 time steps per task counted as its sampler counts them
    nav = get_preset("point-nav")
    assert (nav.meta_batch, nav.rollouts, nav.inner_lr, nav.inner_steps, nav.max_kl, nav.cg_iters, nav.iterations) == \
        (20, 20, 0.5, 1, 0.01, 10, 100)
    assert nav.batch == "steps" and nav.init == "xavier"
    assert (nav.backtrack_ratio, nav.max_backtracks, nav.cg_damping, nav.gamma, nav.gae_lambda) == \
        (0.8, 15, 1e-5, 0.99, 1.0)
    assert env_spec("point-nav").horizon == 100 and env_spec("cheetah-vel").horizon == 200
    for name in ("cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir"):
        assert PRESETS[name].meta_batch == 40 and PRESETS[name].hidden == (100, 100)
        assert PRESETS[name].batch == "rollouts"  # the batches their records were trained with
    assert PRESETS["ant-dir"].rollouts == 40 and PRESETS["ant-vel"].rollouts == 20


def test_modes_and_overrides_are_validated():
    assert get_preset("point-nav", "oracle").oracle and get_preset("point-nav", "pretrained").train_inner_steps == 0
    assert get_preset("cheetah-dir", "pretrained").experiment == "cheetah-dir-pretrained"
    with pytest.raises(ConfigError, match="unknown mode"):
        get_preset("point-nav", "expert")
    with pytest.raises(ConfigError, match="unknown config key"):
        override_config(get_preset("point-nav"), {"inner_learning_rate": "0.2"})
    with pytest.raises(ConfigError, match="curvature"):
        override_config(get_preset("point-nav"), {"curvature": "diagonal"})


def test_xavier_init_is_glorot_uniform_with_zero_biases():
    import math

    from icml17.maml.rl.train import build_policy

    policy = build_policy(replace(get_preset("point-nav"), init="xavier"))
    for layer in (m for m in policy.mean if isinstance(m, torch.nn.Linear)):
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))  # Glorot & Bengio 2010
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound and (layer.bias == 0).all()
    assert (policy.log_std == 0).all()
    with pytest.raises(ConfigError, match="init"):
        replace(get_preset("point-nav"), init="he").validate()
