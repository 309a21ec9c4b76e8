"""Measuring any model: a user's ``module:factory`` on a user's ``.npz`` data, from the CLI; shipped minima."""

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from icml17.cli import main
from icml17.sharpness.evaluate import load_factory, load_npz
from icml17.sharpness.measures import measure

USER_MODULE = '''
import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.b(x + torch.relu(self.a(x)))


def build():
    torch.manual_seed(0)
    return Residual()
'''


@pytest.fixture()
def user_files(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(USER_MODULE)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(40, 6)).astype("float32"), y=rng.integers(0, 3, 40))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("user_models", None)


def test_cli_measures_a_user_factory_model_on_npz_data(user_files, capsys):
    assert main(["sharpness", "measure", "--factory", "user_models:build", "--data", "data.npz", "--measures",
                 "loss,lambda_max", "--dtype", "float64", "--out", "m.json"]) == 0
    got = json.loads((user_files / "m.json").read_text())
    # the same measures computed directly from the definition's pieces
    x, y = load_npz(user_files / "data.npz")
    model = load_factory("user_models:build")
    loss = float(nn.functional.cross_entropy(model.double()(x.double()), y))
    assert got["loss"] == pytest.approx(loss, rel=1e-12)
    direct = measure(load_factory("user_models:build"), nn.functional.cross_entropy, (x, y), ["lambda_max"],
                     dtype=torch.float64)
    assert got["lambda_max"] == pytest.approx(direct["lambda_max"], rel=1e-9)
    assert got["source"] == "user_models:build" and got["dataset"].startswith("data.npz")


def test_factory_weights_file_is_loaded(user_files):
    from safetensors.torch import save_file

    trained = load_factory("user_models:build")
    with torch.no_grad():
        trained.a.weight.mul_(3.0)
    save_file(trained.state_dict(), str(user_files / "w.safetensors"))
    loaded = load_factory("user_models:build", user_files / "w.safetensors")
    assert torch.equal(loaded.a.weight, trained.a.weight)


def test_alpha_on_a_residual_net_is_refused_naming_its_modules(user_files, capsys):
    code = main(["sharpness", "measure", "--factory", "user_models:build", "--data", "data.npz", "--alpha", "2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Residual is not one (its modules: a: Linear, b: Linear)" in err


@pytest.mark.parametrize("spec, needle", [("no_colon", "MODULE:FUNCTION"), ("missing_mod:build", "cannot import")])
def test_bad_factory_specs_are_one_line_errors(user_files, capsys, spec, needle):
    code = main(["sharpness", "measure", "--factory", spec, "--data", "data.npz"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_npz_without_labels_is_refused(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2), np.float32))
    from icml17.core.config import ConfigError

    with pytest.raises(ConfigError, match="needs arrays 'x'"):
        load_npz(tmp_path / "bad.npz")


def test_mse_of_class_labels_is_against_one_hot_targets():
    """--loss mse with integer labels: the mean squared distance to the one-hot vector, written out here."""
    from icml17.sharpness.evaluate import mse_loss

    out = torch.tensor([[0.2, 0.9, -0.1], [1.5, 0.0, 0.3]])
    labels = torch.tensor([1, 0])
    expected = ((0.2 ** 2 + 0.1 ** 2 + 0.1 ** 2) + (0.5 ** 2 + 0.0 + 0.3 ** 2)) / 6
    assert mse_loss(out, labels).item() == pytest.approx(expected)
    assert mse_loss(out, out + 1).item() == pytest.approx(1.0)  # float targets are compared as they are


def test_more_examples_than_mnist_has_is_a_one_line_error(synthetic_data_dir, capsys):
    code = main(["sharpness", "measure", "--model", "mlp-784-32-10", "--data-dir", str(synthetic_data_dir),
                 "--examples", "100000000", "--measures", "loss"])
    err = capsys.readouterr().err
    assert code == 2 and "pass --examples between 1 and" in err and "Traceback" not in err


@pytest.mark.parametrize("flags, needle", [
    (["--weights", "small-batch", "--train-steps", "10"], "drop --train-steps"),
    (["--weights", "small-batch", "--state", "w.safetensors"], "drop --state"),
])
def test_measure_refuses_flags_its_source_would_ignore(flags, needle, capsys):
    code = main(["sharpness", "measure", *flags, "--measures", "loss"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
