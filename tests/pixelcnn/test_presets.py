"""PixelCNN configs and presets (``icml17.pixelcnn.presets``): bad combinations are refused with what to change.
(Every preset x model type training one step: tests/test_presets.py.)"""

import pytest

from icml17.core.config import ConfigError
from icml17.pixelcnn.presets import PRESETS, PixelCNNConfig, build_pixelcnn_model, make_config


def test_config_rejects_bad_combinations():
    with pytest.raises(ConfigError, match="bits=1"):
        make_config("mnist", None, {"head": "bernoulli"})
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("imagenet")
    with pytest.raises(ConfigError, match="unknown config key"):
        make_config("mnist", None, {"hiden": 3})
    with pytest.raises(ConfigError, match="does not fit"):
        make_config("mnist", "multiscale-b", {"base_size": 5})


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"lr": -1}, "lr must be > 0"),
        ({"lr": 0}, "lr must be > 0"),
        ({"lr_final": -1}, "lr_final must lie"),
        ({"lr": 1e-4, "lr_final": 1e-3}, "lr_final must lie"),
        ({"grad_clip": 0}, "grad_clip"),
        ({"lr": float("nan")}, "finite"),
    ],
)
def test_optimiser_settings_are_refused_before_training(overrides, needle):
    """Image and video configs alike: no optimiser traceback, division by zero or diverging decay later."""
    from icml17.pixelcnn.video.presets import make_config as make_video_config

    with pytest.raises(ConfigError, match=needle):
        make_config("mnist", "multiscale-b", overrides)
    with pytest.raises(ConfigError, match=needle):
        make_video_config("tiny", "o_t", overrides)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_the_model_it_names(preset):
    from icml17.pixelcnn import MultiscalePixelCNN, PixelCNN

    for model in ("full", "multiscale-a", "multiscale-b"):
        cfg = make_config(preset, model, {"hidden": 4, "layers": 1, "resnet_blocks": 1})
        net = build_pixelcnn_model(cfg)
        assert isinstance(net, PixelCNN if model == "full" else MultiscalePixelCNN)
        assert (net.n_channels, net.image_size) == cfg.image_shape
        if model != "full":
            assert net.variant == model[-1] == cfg.variant


def test_a_config_built_directly_or_with_replace_is_validated():
    from dataclasses import replace

    with pytest.raises(ConfigError, match="bits must be in 1..8"):
        PixelCNNConfig(bits=9)
    with pytest.raises(ConfigError, match="does not fit"):
        PixelCNNConfig(dataset="cifar10-subset", base_size=7)
    with pytest.raises(ConfigError, match="model 'multiscale-c' is not one of"):
        replace(PixelCNNConfig(), model="multiscale-c")
    with pytest.raises(ConfigError, match="dataset 'svhn' is not one of"):
        PixelCNNConfig(dataset="svhn")


def test_the_variant_comes_from_the_model_type_not_its_last_letter():
    cfg = make_config("mnist", "full", {"hidden": 4, "layers": 1})
    object.__setattr__(cfg, "model", "full-b")  # a config changed behind its checks (the dataclass is frozen)
    with pytest.raises(ConfigError, match="model 'full-b' is not one of"):
        build_pixelcnn_model(cfg)  # before: a type-B multiscale model, read from the name's last letter
    assert PixelCNNConfig(model="full").variant is None
