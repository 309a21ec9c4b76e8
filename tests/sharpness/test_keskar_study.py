"""Keskar et al.'s setting: the F1 network, the batch-norm rescaling that preserves it, and the study's record.

Expected values come from definitions: outputs equal before and after rescaling (in train mode too, where batch
norm uses batch statistics), the Hessian of a diagonal reparametrization theta' = D theta is D^-1 H D^-1, and the
record's ratios and spreads are recomputed from its own per-seed rows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from icml17.core.curvature import HessianOperator
from icml17.sharpness.models import keskar_f1
from icml17.sharpness.transforms import BatchNormScaling, TransformError

CE = nn.functional.cross_entropy


def _f1(dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    model = keskar_f1(width=6, depth=2).to(dtype)
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for m in model:
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 2), m.bias.uniform_(-0.5, 0.5)
    return model


def test_f1_has_keskars_shape():
    model = keskar_f1()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512)] + [(512, 512)] * 4 + [(512, 10)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model) == 5
    assert sum(p.numel() for p in model.parameters()) == 784 * 512 + 512 + 4 * (512 * 512 + 512) + 5 * 1024 + 5130


@pytest.mark.parametrize("train_mode", [False, True])
def test_batchnorm_scaling_preserves_the_function_in_both_modes(train_mode):
    model = _f1()
    rep = BatchNormScaling([0.01, 30.0])(model)
    for a, b in zip(model.buffers(), rep.model.buffers()):
        assert torch.equal(a, b)  # the reparametrization leaves the running statistics untouched
    x = torch.randn(32, 784, dtype=torch.float64)
    model.train(train_mode), rep.model.train(train_mode)
    with torch.no_grad():
        ref, out = model(x), rep.model(x)
    assert torch.allclose(out, ref, rtol=0, atol=1e-10 * ref.abs().max().item())
    assert not torch.equal(rep.model[2].weight, model[2].weight)  # the parameters did move
    for a, b in zip(model.buffers(), rep.model.buffers()):
        # in train mode the forward updates them from the same batch statistics, equal up to rounding (bitwise
        # on one CPU, not on another: the scaled layers' products round differently)
        torch.testing.assert_close(b, a, rtol=1e-12, atol=0)


def test_batchnorm_scaling_transforms_the_hessian_as_a_diagonal_map():
    model = _f1().eval()
    rep = BatchNormScaling([0.2, 5.0])(model)
    x, y = torch.randn(16, 784, dtype=torch.float64), torch.randint(0, 10, (16,))
    names = [n for n, _ in model.named_parameters()]
    d = torch.cat([rep.scale.get(n, torch.ones_like(p)).flatten() for n, p in model.named_parameters()])
    h = HessianOperator(model, CE, (x, y), mode="eval")
    h_rep = HessianOperator(rep.model, CE, (x, y), mode="eval")
    v = torch.randn(h.size, dtype=torch.float64)
    # theta' = D theta  =>  H'(theta') = D^-1 H(theta) D^-1
    assert torch.allclose(h_rep.matvec(v), h.matvec(v / d) / d, rtol=1e-8, atol=1e-10)
    assert set(rep.scale) <= set(names)


def test_batchnorm_scaling_refuses_what_it_cannot_preserve():
    with pytest.raises(TransformError, match="no batch-norm"):
        BatchNormScaling([2.0])(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(TransformError, match="Tanh"):
        BatchNormScaling([2.0])(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Tanh(), nn.Linear(3, 2)))
    with pytest.raises(TransformError, match="2 batch-norm layers"):
        BatchNormScaling([2.0])(_f1())
    with pytest.raises(TransformError, match="positive"):
        BatchNormScaling([-1.0, 1.0])


def test_quick_study_record_is_consistent_with_its_rows(synthetic_data_dir, tmp_path):
    from dataclasses import replace

    from icml17.sharpness.keskar_study import GAP_MARGIN, KeskarStudyConfig, run_study

    cfg = replace(KeskarStudyConfig.quick(), n_train=300, n_test=100, n_measure=100, n_curvature=50, seeds=(0, 1))
    path = run_study(
        cfg, synthetic_data_dir, tmp_path / "runs", tmp_path / "out", "test", quick=True, log=lambda m: None
    )
    rec = json.loads(path.read_text())
    assert rec["seeds"] == [0, 1] and rec["config"]["lb_batch"] == 30
    for key, ratios in rec["ratios_large_over_small"].items():
        expect = [rec["minima"][str(s)]["large-batch"][key] / rec["minima"][str(s)]["small-batch"][key] for s in (0, 1)]
        assert np.allclose(ratios, expect)
        assert np.isclose(rec["spread"][key]["mean"], np.mean(expect))
    assert rec["gap_shown"] == all(r > GAP_MARGIN for r in rec["ratios_large_over_small"]["keskar@0.001"])
    for row in rec["minima"]["0"].values():
        assert np.isclose(row["generalization_gap"], row["train_accuracy"] - row["test_accuracy"])
        assert row["steps"] == int(np.ceil(row["epochs"] * 300 / row["batch_size"]))
    for r in rec["bn_rescaled_small_batch"]["per_seed"].values():
        assert r["max_output_diff"] < 1e-5  # the rescaled minimum computes the same function
        assert r["max_output_diff_float64"] < 1e-12  # exactly, up to float64 rounding of the rescaling itself
    assert (tmp_path / "out" / "keskar-f1.png").exists()
    # rerunning resumes from the cached trainings and measures: the same record
    again = json.loads(
        run_study(
            cfg, synthetic_data_dir, tmp_path / "runs", tmp_path / "out", "test", quick=True, log=lambda m: None
        ).read_text()
    )
    assert again["minima"] == rec["minima"]


def test_c1_study_reuses_the_f1_study_on_cifar(synthetic_data_dir, tmp_path):
    from dataclasses import replace

    from icml17.sharpness.keskar_study import KeskarStudyConfig, run_study
    from icml17.sharpness.presets import build_sharpness_model

    net = build_sharpness_model("keskar-c1")
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(32, (5, 5))] * 2
    cfg = replace(KeskarStudyConfig.c1(quick=True), n_train=200, n_measure=50, n_curvature=50, seeds=(0,))
    path = run_study(cfg, synthetic_data_dir, tmp_path / "runs", tmp_path / "out", "test", quick=True, log=print)
    rec = json.loads(path.read_text())
    assert path.name == "keskar-c1.json" and rec["experiment"] == "keskar-c1" and rec["config"]["lb_batch"] == 20
    assert rec["config"]["dataset"] == "cifar10" and (tmp_path / "out" / "keskar-c1.png").exists()
    assert (tmp_path / "runs" / "quick-keskar-c1").is_dir() and not (tmp_path / "runs" / "quick-keskar-f1").exists()
    for r in rec["bn_rescaled_small_batch"]["per_seed"].values():
        assert r["max_output_diff_float64"] < 1e-12  # batch-norm scaling through pooling keeps the function
