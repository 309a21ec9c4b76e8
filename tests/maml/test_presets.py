"""MAML presets (``icml17.maml.presets``): every preset validates and the paper's settings are the reference
code's. (Every preset training one step on synthetic data: tests/test_presets.py.)"""

from icml17.maml.presets import PRESETS, make_config


def test_presets_validate_and_match_the_reference_table():
    for cfg in PRESETS.values():
        cfg.validate()
    o = make_config("omniglot-20w1s")
    assert (o.meta_batch, o.inner_steps, o.eval_inner_steps, o.inner_lr) == (16, 5, 10, 0.1)
    m = make_config("miniimagenet-5w1s")
    assert (m.meta_batch, m.inner_steps, m.train_queries, m.eval_queries, m.clip_value) == (4, 5, 15, 1, 10.0)


def test_make_config_applies_overrides_typed_and_validated():
    import pytest

    from icml17.core.config import ConfigError

    cfg = make_config("omniglot-5w1s", {"meta_batch": "8", "first_order": "true"})
    assert (cfg.meta_batch, cfg.first_order, cfg.preset) == (8, True, "omniglot-5w1s")
    assert make_config("sinusoid-k10") == PRESETS["sinusoid-k10"]
    with pytest.raises(ConfigError, match="unknown config key"):
        make_config("sinusoid-k10", {"inner_lrs": 0.1})
    with pytest.raises(ConfigError, match="meta_batch must be >= 1"):
        make_config("sinusoid-k10", {"meta_batch": 0})
    with pytest.raises(ConfigError, match="unknown MAML preset"):
        make_config("sinusoid-k7")


def test_task_source_validates_a_config_built_with_replace():
    from dataclasses import replace

    import pytest

    from icml17.core.config import ConfigError
    from icml17.maml.tasks import make_task_source

    with pytest.raises(ConfigError, match="shots must be >= 1"):
        make_task_source(replace(make_config("sinusoid-k10"), shots=0))
