import pytest
import torch

from icml17.core.config import ConfigError
from icml17.pixelcnn.multiscale import MultiscalePixelCNN
from icml17.pixelcnn.presets import make_config

from pcnn_helpers import tiny_model


def test_image_size_must_be_base_times_power_of_two():
    with pytest.raises(ConfigError, match=r"base_size \* 2\^k"):
        MultiscalePixelCNN(30, base_size=7)
    with pytest.raises(ConfigError, match="does not fit"):
        make_config("mnist", "multiscale-b", {"base_size": 5})


def test_wrong_image_shape_and_values():
    model = tiny_model("a", 4, 1, 2, "logistic", base=1)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 4, 4\)"):
        model.log_prob(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\) \(2-bit\)"):
        model.log_prob(torch.full((2, 1, 4, 4), 4))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.log_prob(torch.full((2, 1, 4, 4), -1))
    with pytest.raises(ValueError, match="integer tensor"):
        model.log_prob(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="K in"):
        model.super_resolve(torch.zeros(1, 1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, temperature=0.0)


@pytest.mark.parametrize("kind", ["full", "a", "b"])
def test_context_missing_or_misshapen(kind):
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    model = tiny_model(kind, 4, 1, 1, "bernoulli", "class")
    with pytest.raises(ValueError, match=r"needs a context: class labels: int64 tensor of shape \(B,\)"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        model.log_prob(x, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.log_prob(x, torch.tensor([0, 10]))
    spatial = tiny_model(kind, 4, 1, 1, "bernoulli", "spatial")
    with pytest.raises(ValueError, match=r"\(B, 2, 4, 4\)"):
        spatial.log_prob(x, torch.zeros(2, 2, 5, 5, dtype=torch.float64))
    plain = tiny_model(kind, 4, 1, 1, "bernoulli")
    with pytest.raises(ValueError, match="unconditional"):
        plain.log_prob(x, torch.zeros(2, dtype=torch.long))


def test_config_rejects_bad_combinations():
    with pytest.raises(ConfigError, match="bits=1"):
        make_config("mnist", None, {"head": "bernoulli"})
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("imagenet")
    with pytest.raises(ConfigError, match="unknown config key"):
        make_config("mnist", None, {"hiden": 3})
