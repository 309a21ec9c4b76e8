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

USER_MODULE = """
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
"""


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
    assert (
        main(
            [
                "sharpness",
                "measure",
                "--factory",
                "user_models:build",
                "--data",
                "data.npz",
                "--measures",
                "loss,lambda_max",
                "--dtype",
                "float64",
                "--out",
                "m.json",
            ]
        )
        == 0
    )
    got = json.loads((user_files / "m.json").read_text())
    # the same measures computed directly from the definition's pieces
    x, y = load_npz(user_files / "data.npz")
    model = load_factory("user_models:build")
    loss = float(nn.functional.cross_entropy(model.double()(x.double()), y))
    assert got["loss"] == pytest.approx(loss, rel=1e-12)
    direct = measure(
        load_factory("user_models:build"), nn.functional.cross_entropy, (x, y), ["lambda_max"], dtype=torch.float64
    )
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
    expected = ((0.2**2 + 0.1**2 + 0.1**2) + (0.5**2 + 0.0 + 0.3**2)) / 6
    assert mse_loss(out, labels).item() == pytest.approx(expected)
    assert mse_loss(out, out + 1).item() == pytest.approx(1.0)  # float targets are compared as they are


def test_more_examples_than_mnist_has_is_a_one_line_error(synthetic_data_dir, capsys):
    code = main(
        [
            "sharpness",
            "measure",
            "--model",
            "mlp-784-32-10",
            "--data-dir",
            str(synthetic_data_dir),
            "--examples",
            "100000000",
            "--measures",
            "loss",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--examples 100000000" in err and "between 1 and" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--weights", "small-batch", "--train-steps", "10"], "drop --train-steps"),
        (["--weights", "small-batch", "--state", "w.safetensors"], "drop --state"),
    ],
)
def test_measure_refuses_flags_its_source_would_ignore(flags, needle, capsys):
    code = main(["sharpness", "measure", *flags, "--measures", "loss"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


ARCHITECTURES = """
import torch
from torch import nn


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def batch_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():  # running statistics other than the defaults
        model[1].running_mean.uniform_(-0.5, 0.5), model[1].running_var.uniform_(0.5, 2.0)
    return model


def pooling():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Unflatten(1, (1, 8)), nn.AvgPool1d(2), nn.Flatten(),
                         nn.Linear(4, 3))


def dropout():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 3))


def nested():
    torch.manual_seed(0)
    return Nested()
"""


@pytest.fixture()
def architectures(user_files):
    (user_files / "architectures.py").write_text(ARCHITECTURES)
    yield user_files
    sys.modules.pop("architectures", None)


def _dense_mse_lambda_max(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The largest eigenvalue of the dense float64 Hessian of mean((f(x) - onehot(y))^2), eval mode."""
    from torch.func import functional_call

    model = model.double().eval()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    target = nn.functional.one_hot(y, 3).double()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = theta[i : i + s.numel()].reshape(s)
            i += s.numel()
        return ((functional_call(model, params, (x.double(),)) - target) ** 2).mean()

    H = torch.autograd.functional.hessian(loss, flat)
    return float(torch.linalg.eigvalsh((H + H.T) / 2)[-1])


@pytest.mark.parametrize("factory", ["batch_norm", "pooling", "dropout", "nested"])
def test_mse_measures_models_off_the_layerwise_path(architectures, factory, capsys):
    # batch norm, pooling, dropout and nested modules take the generic products, where MSE needs
    # reverse-over-reverse ones (forward mode through torch's MSE backward raised "ZeroTensors are immutable")
    assert (
        main(
            [
                "sharpness",
                "measure",
                "--factory",
                f"architectures:{factory}",
                "--data",
                "data.npz",
                "--loss",
                "mse",
                "--measures",
                "loss,lambda_max",
                "--dtype",
                "float64",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    x, y = load_npz(architectures / "data.npz")
    import architectures as arch

    assert got["lambda_max"] == pytest.approx(_dense_mse_lambda_max(getattr(arch, factory)(), x, y), rel=1e-6)


def _save_state(path, **tensors) -> None:
    torch.save(tensors, path)


@pytest.mark.parametrize(
    "case, flags, needle",
    [
        ("state with missing and unknown keys", ["--state", "keys.pt"], "missing a.bias"),
        ("state with other shapes", ["--state", "shapes.pt"], "a.weight (6, 5) in the file, (6, 6) in the model"),
        ("inputs of the wrong width", ["--data", "wide.npz"], "cannot take the data's inputs"),
        ("labels out of range", ["--data", "range.npz"], "the model has 3 outputs"),
        ("float labels with cross-entropy", ["--data", "floaty.npz"], "cross-entropy needs integer class labels"),
        ("labels out of range with mse", ["--data", "range.npz", "--loss", "mse"], "the model has 3 outputs"),
        ("float targets of another shape with mse", ["--data", "floaty.npz", "--loss", "mse"], "float targets"),
    ],
)
def test_wrong_inputs_to_measure_are_one_line_errors(user_files, case, flags, needle, capsys):
    rng = np.random.default_rng(1)
    x6 = rng.normal(size=(40, 6)).astype("float32")
    np.savez(user_files / "wide.npz", x=rng.normal(size=(40, 5)).astype("float32"), y=rng.integers(0, 3, 40))
    np.savez(user_files / "range.npz", x=x6, y=np.arange(40) % 5)
    np.savez(user_files / "floaty.npz", x=x6, y=rng.normal(size=40))
    model = load_factory("user_models:build")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    _save_state(user_files / "keys.pt", **{k: v for k, v in state.items() if k != "a.bias"}, extra=torch.zeros(2))
    _save_state(user_files / "shapes.pt", **{**state, "a.weight": torch.zeros(6, 5)})
    argv = ["sharpness", "measure", "--factory", "user_models:build", "--measures", "loss,lambda_max"]
    if "--data" not in flags:
        argv += ["--data", "data.npz"]
    code = main(argv + flags)
    err = capsys.readouterr().err
    assert code == 2, case
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
