import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from icml17.cli_args import parse_overrides
from icml17.core import ConfigError, bits_per_dim, config_from_dict, mean_ci95, override_config
from icml17.core.runs import write_config


@dataclass(frozen=True)
class _Cfg:
    ways: int = 5
    lr: float = 0.4
    name: str = "x"
    first_order: bool = False
    sizes: tuple[int, ...] = (40, 40)

    def validate(self):
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


def test_config_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigError, match="unknown config key"):
        config_from_dict(_Cfg, {"way": 5})
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_dict(_Cfg, {"ways": "five"})
    with pytest.raises(ConfigError, match="expected true/false"):
        config_from_dict(_Cfg, {"first_order": "maybe"})


def test_overrides_are_parsed_to_field_types_and_validated(tmp_path):
    cfg = override_config(_Cfg(), parse_overrides(["ways=20", "first-order=true", "sizes=10,20"]))
    assert cfg == _Cfg(ways=20, first_order=True, sizes=(10, 20))
    with pytest.raises(ConfigError, match="lr must be positive"):
        override_config(cfg, {"lr": "-1"})
    saved = json.loads(write_config(tmp_path, cfg, ["icml17", "x"]).read_text())
    assert saved["config"]["ways"] == 20 and saved["argv"] == ["icml17", "x"]


def test_mean_ci95_matches_formula():
    x = np.array([0.9, 1.0, 0.8, 1.0])
    m, h = mean_ci95(x)
    assert m == pytest.approx(0.925)
    assert h == pytest.approx(1.96 * np.sqrt(((x - 0.925) ** 2).mean()) / 2)
    with pytest.raises(ValueError):
        mean_ci95([])


def test_bits_per_dim_of_uniform_8bit_image_is_8():
    dims = 3 * 32 * 32
    assert bits_per_dim(dims * math.log(256), dims) == pytest.approx(8.0)
