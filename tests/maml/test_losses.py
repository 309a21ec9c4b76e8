"""MAML's task losses (``icml17.maml.losses``): the reference scale, and losses that need K say so when built."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from icml17.core.config import ConfigError
from icml17.data.episodes import TaskBatch
from icml17.maml import MAML, CrossEntropy, accuracy, cross_entropy, mse
from icml17.maml.losses import check_loss_fn, make_losses


def test_reference_scale_is_the_sum_over_examples_divided_by_shots():
    logits = torch.zeros(6, 3)  # 3 ways, 2 shots, uniform predictions: each example costs log 3
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert math.isclose(CrossEntropy(shots=2)(logits, labels).item(), 6 * math.log(3) / 2, rel_tol=1e-6)
    assert math.isclose(CrossEntropy(shots=2, scale="mean")(logits, labels).item(), math.log(3), rel_tol=1e-6)
    assert torch.equal(CrossEntropy(2)(logits, labels), cross_entropy(logits, labels, shots=2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shots": 0}, "shots must be >= 1"),
        ({"shots": 1.5}, "shots must be >= 1"),
        ({"shots": 1, "scale": "sum"}, "scale 'sum' is not one of"),
    ],
)
def test_cross_entropy_refuses_bad_settings_when_built(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CrossEntropy(**kwargs)


def test_make_losses_binds_the_shots():
    loss, score, name = make_losses("omniglot", 5, "mean")
    assert loss == CrossEntropy(5, "mean") and score is accuracy and name == "accuracy"
    assert make_losses("sinusoid", 10) == (mse, mse, "mse")


def test_a_loss_that_needs_shots_is_refused_when_maml_is_built_not_inside_vmap():
    net = nn.Linear(2, 3)
    with pytest.raises(ConfigError, match=r"needs shots=.*CrossEntropy\(shots=K\)"):
        MAML(net, loss_fn=cross_entropy, score_fn=accuracy)
    with pytest.raises(ConfigError, match="score_fn .* must take two arguments"):
        MAML(net, loss_fn=CrossEntropy(1), score_fn=lambda logits: logits.sum())
    with pytest.raises(ConfigError, match="must be a function"):
        check_loss_fn(3)
    for ok in (
        functools.partial(cross_entropy, shots=1),
        CrossEntropy(1),
        nn.CrossEntropyLoss(),
        mse,
        nn.functional.cross_entropy,
        lambda out, y: (out - y).abs().mean(),
    ):
        check_loss_fn(ok)


def test_score_defaults_to_the_loss():
    torch.manual_seed(0)
    x = torch.randn(3, 6, 2)
    batch = TaskBatch(x[:, :3], x[:, :3, :1], x[:, 3:], x[:, 3:, :1])
    engine = MAML(nn.Linear(2, 1), loss_fn=mse, inner_lr=0.1)
    metrics = engine.evaluate(batch, steps=2)
    assert torch.equal(metrics.score, metrics.loss)
    # the score is the query loss after adaptation, as MAML with score_fn=mse computes it
    explicit = MAML(engine.model, loss_fn=mse, score_fn=mse, inner_lr=0.1).evaluate(batch, steps=2)
    assert torch.equal(metrics.score, explicit.score)
