"""MAML for reinforcement learning (Finn et al. 2017, section 5.3, Algorithm 3).

envs (2D navigation, gymnasium MuJoCo locomotion) -> sampler (tasks x rollouts stepped together) -> baseline
(linear features, GAE) -> inner (policy-gradient ``adapt``) -> trpo (outer step with exact curvature products)
-> train / evaluate / plots; ``icml17 maml-rl train|eval|plots`` in commands.

The Python face: :func:`make_config` turns one of the named ``PRESETS`` into a :class:`MAMLRLConfig`;
:func:`build_policy` and :func:`make_sampler` build its :class:`GaussianMLPPolicy` and :class:`Sampler` (which
returns :class:`Rollouts`); :func:`meta_iteration` is one meta-update, drawing from the run's
:class:`RandomStreams`; :func:`train` runs meta-iterations through the resumable training loop into a run
directory, and :func:`evaluate` scores a run loaded by :func:`load_run` as Figure 5 does.
"""

from icml17.maml.rl.evaluate import evaluate, load_run
from icml17.maml.rl.policy import GaussianMLPPolicy
from icml17.maml.rl.presets import PRESETS, MAMLRLConfig, make_config
from icml17.maml.rl.sampler import Rollouts, Sampler
from icml17.maml.rl.train import RandomStreams, build_policy, make_sampler, meta_iteration, train

# name -> the submodule that defines it, where the API reference renders it: ``train`` and ``evaluate`` are both
# functions exported here and submodules, and a static reader of this package sees the submodules under those
# names. (At run time the package attributes are the functions: reach the modules with ``from
# icml17.maml.rl.train import ...`` or ``importlib.import_module("icml17.maml.rl.train")``.)
_EXPORTS = {
    "PRESETS": "presets",
    "GaussianMLPPolicy": "policy",
    "MAMLRLConfig": "presets",
    "RandomStreams": "train",
    "Rollouts": "sampler",
    "Sampler": "sampler",
    "build_policy": "train",
    "evaluate": "evaluate",
    "load_run": "evaluate",
    "make_config": "presets",
    "make_sampler": "train",
    "meta_iteration": "train",
    "train": "train",
}

__all__ = [
    "PRESETS",
    "GaussianMLPPolicy",
    "MAMLRLConfig",
    "RandomStreams",
    "Rollouts",
    "Sampler",
    "build_policy",
    "evaluate",
    "load_run",
    "make_config",
    "make_sampler",
    "meta_iteration",
    "train",
]
