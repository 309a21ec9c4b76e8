"""Paper-agnostic machinery shared by every system: checkpoints, the training loop, configs, stats, reports."""

from icml17.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from icml17.core.config import ConfigError, config_from_dict, config_to_dict, override_config
from icml17.core.loop import GeneratorState, LoopResult, NonFiniteError, run_loop
from icml17.core.stats import bits_per_dim, mean_ci95

__all__ = [
    "CheckpointError", "load_checkpoint", "save_checkpoint",
    "ConfigError", "config_from_dict", "config_to_dict", "override_config",
    "GeneratorState", "LoopResult", "NonFiniteError", "run_loop",
    "bits_per_dim", "mean_ci95",
]
