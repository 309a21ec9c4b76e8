"""MAML presets (``icml17.maml.presets``): every preset validates and the paper's settings are the reference
code's. (Every preset training one step on synthetic data: tests/test_presets.py.)"""

from icml17.maml.presets import PRESETS, get_preset


def test_presets_validate_and_match_the_reference_table():
    for cfg in PRESETS.values():
        cfg.validate()
    o = get_preset("omniglot-20w1s")
    assert (o.meta_batch, o.inner_steps, o.eval_inner_steps, o.inner_lr) == (16, 5, 10, 0.1)
    m = get_preset("miniimagenet-5w1s")
    assert (m.meta_batch, m.inner_steps, m.train_queries, m.eval_queries, m.clip_value) == (4, 5, 15, 1, 10.0)
    assert get_preset("omniglot-5w1s").paper == 0.987 and get_preset("sinusoid-k10").paper == 0.77
