"""Paper-agnostic machinery shared by every system: the run shell, checkpoints, the training loop, configs,
records, stats, reports.

Names are imported lazily (PEP 562) so that light callers (the CLI's ``--help``, error classes) do not pay for
importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ConfigError": "config",
    "config_from_dict": "config",
    "config_to_dict": "config",
    "override_config": "config",
    "GeneratorState": "loop",
    "LoopResult": "loop",
    "NonFiniteError": "loop",
    "run_loop": "loop",
    "bits_per_dim": "stats",
    "mean_ci95": "stats",
    "UserError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'icml17.core' has no attribute {name!r}")
    return getattr(import_module(f"icml17.core.{_EXPORTS[name]}"), name)
