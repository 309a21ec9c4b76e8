"""Meta-RL configs and the presets of section 5.3 of Finn et al. (2017), with the reference code's settings.

From the reference code (cbfinn/maml_rl, its RL protocol): policy MLP (100, 100) ReLU; inner step vanilla
policy gradient with the linear feature baseline, inner learning rate 0.1; outer TRPO with max KL 0.01,
10 conjugate-gradient iterations, damping 1e-5, backtracking ratio 0.8 and up to 15 tries; discount 0.99,
GAE lambda 1. 2D navigation (the reference's ``maml_trpo_point.py`` with the parameter file its published curve
came from): 20 tasks per meta-batch, each with 20 x 100 = 2,000 time steps collected as the reference's sampler
does (one copy per task restarting paths that end at the goal, ``batch=steps``), inner learning rate 0.5, 100
meta-iterations, evaluation batches of 4,000 time steps of whole paths from 40 copies per task, the paths in
flight at 4,000 steps finished and kept (:data:`icml17.maml.rl.evaluate.EVAL_BATCH_STEPS`); its
curvature products are in Gauss-Newton form on all tasks (the same matrix as the KL's Hessian at the current
parameters, see :func:`icml17.maml.rl.trpo.kl_curvature`, about 2.5x cheaper). Locomotion: 40 tasks x 20
rollouts (40 for the ant's
forward/backward task) of 200 steps, 500 meta-iterations. Deviation, for speed on a CPU: the locomotion presets
compute TRPO's curvature products on 10 of the 40 tasks in Gauss-Newton form (``hvp_tasks=10``,
``curvature=fisher``; the reference used finite differences on all of them); ``--set hvp_tasks=0
curvature=hessian`` restores exact full products. Initialisation: 2D navigation uses rllab's Glorot-uniform weights
with zero biases (the reference's); the locomotion presets keep PyTorch's default, under which their records were
trained (``--set init=xavier`` for rllab's), and full rollouts per task (``--set batch=steps`` for the reference's
time-step batches: batches of the same make for the cheetah, whose paths always run to the horizon; for the ant, whose
paths end when it falls, more and shorter paths, not measured here).

Control interval (``frame_skip``, see :mod:`icml17.maml.rl.envs`): the locomotion presets run at the reference's,
0.01 s per action for the cheetah (``frame_skip=1``) and 0.02 s for the ant (``frame_skip=2``), on the v5 models'
0.01 s timestep, with the reference's 200-step horizon (2 s and 4 s of simulated time). ``--set frame_skip=v5``
gives gymnasium's default, 0.05 s per action (10 s per episode), under which every locomotion record made before
this field existed was trained and evaluated; it is also what a config without the field (an older checkpoint)
means. Evaluation step sizes (:data:`LATER_STEP_FACTORS`): the first test-time step at the step size, later ones
at the reference test script's fraction of it, 0.5 everywhere except ant forward/backward (0.01).

``mode`` selects what is trained: ``maml`` (meta-training through one inner step), ``pretrained`` (one policy
trained by TRPO on all tasks, no inner step; fine-tuned at test time) and ``oracle`` (the task appended to the
observation, no inner step). Random initialisation needs no training (see :mod:`icml17.maml.rl.evaluate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from icml17.core.config import ConfigError, override_config
from icml17.maml.rl.envs import ENVS, REFERENCE_FRAME_SKIP, V5, check_frame_skip

MODES = ("maml", "pretrained", "oracle")
OUTER = ("trpo", "adam")
# The step sizes tried when fine-tuning step sizes are tuned on validation tasks (pretrained, random; later steps)
LR_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
TUNE_TASKS = 10  # validation tasks per tuning curve unless --tune-tasks says otherwise
# (the published returns the records are compared with: icml17.maml.rl.published)

# Test-time step sizes of the reference's test scripts (cbfinn/maml_rl maml_examples/test_maml_*.py): the first
# gradient step at ``init_learning_rate`` (the step size), every later one at the GradientDescentOptimizer's
# ``learning_rate``, which the scripts set to a fraction of it (rllab's FirstOrderOptimizer runs its init op once,
# then its regular op): 0.5 in test_maml_point.py, test_maml_cheetah.py, test_maml_cheetah_direc.py and
# test_maml_ant.py; 0.01 in test_maml_ant_direc.py ('learning_rate': 0.01*step_sizes[step_i]).
LATER_STEP_FACTORS: dict[str, float] = {
    "point-nav": 0.5,
    "cheetah-vel": 0.5,
    "cheetah-dir": 0.5,
    "ant-vel": 0.5,
    "ant-dir": 0.01,
}


def later_step_factor(env: str) -> float:
    """The fraction of the first test-time step size that the reference's test script used for later steps."""
    if env not in LATER_STEP_FACTORS:
        raise ConfigError(f"env {env!r} is not one of {', '.join(ENVS)}")
    return LATER_STEP_FACTORS[env]


@dataclass(frozen=True)
class MAMLRLConfig:
    """Everything that defines a meta-RL run.

    Build one with :func:`make_config` (a preset in a mode, with overrides, validated). A config made directly or
    with ``dataclasses.replace`` is validated where it is used: :func:`~icml17.maml.rl.train.build_policy`,
    :func:`~icml17.maml.rl.train.make_sampler`, :func:`~icml17.maml.rl.train.meta_iteration` and
    :func:`~icml17.maml.rl.train.train` call :meth:`validate`.

    Attributes:
        preset: the preset's name (``"custom"`` for none); names the run directory and the records.
        env: ``"point-nav"``, ``"cheetah-vel"``, ``"cheetah-dir"``, ``"ant-vel"`` or ``"ant-dir"``.
        mode: ``"maml"``, ``"pretrained"`` (one policy on all tasks, no inner step) or ``"oracle"`` (the task in
            the observation).
        meta_batch: tasks per meta-iteration.
        rollouts: rollouts per task for each inner step and for the outer step.
        batch: ``"rollouts"`` (that many full rollouts per task) or ``"steps"`` (meta_batch x rollouts x horizon
            time steps in all, one copy per task restarting finished paths: the reference's sampler).
        horizon: steps per path (0: the environment's, 100 for point-nav, 200 for locomotion).
        frame_skip: MuJoCo substeps of 0.01 s per action, or ``"v5"`` (gymnasium's default, 5).
        hidden: the policy's hidden layer widths.
        init: ``"torch"`` (PyTorch's default) or ``"xavier"`` (Glorot-uniform weights, zero biases: rllab's).
        inner_lr: the inner policy-gradient step size.
        inner_steps: inner steps at meta-training (not used in pretrained and oracle modes).
        first_order: first-order MAML (no gradient through the inner step).
        gamma: the discount.
        gae_lambda: GAE's lambda (1: Monte-Carlo returns minus the baseline).
        outer: the outer optimizer, ``"trpo"`` or ``"adam"``.
        max_kl: TRPO's trust region (mean KL).
        cg_iters: conjugate-gradient iterations of TRPO.
        cg_damping: damping added to TRPO's curvature products.
        backtrack_ratio: TRPO's line-search shrink factor.
        max_backtracks: TRPO's line-search tries.
        hvp_tasks: tasks used for TRPO's curvature products (0: all, the reference's; fewer is faster).
        curvature: ``"hessian"`` (the KL's Hessian as jvp-of-grad) or ``"fisher"`` (its Gauss-Newton form).
        meta_lr: Adam's learning rate, for ``outer="adam"``.
        iterations: meta-iterations to train.
        eval_rollouts: rollouts per task and step in evaluation.
        eval_tasks: validation tasks of the periodic evaluation.
        eval_every: meta-iterations between periodic evaluations (0: none).
        checkpoint_every: meta-iterations between checkpoints.
        log_every: meta-iterations between metric lines.
        seed: the seed of the run's random streams and initialisation.
    """

    preset: str = "custom"
    env: Literal["point-nav", "cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir"] = "point-nav"
    mode: Literal["maml", "pretrained", "oracle"] = "maml"
    meta_batch: int = 20  # tasks per meta-iteration
    rollouts: int = 20  # rollouts per task for each inner step and for the outer step
    # "rollouts": that many full rollouts per task; "steps": meta_batch x rollouts x horizon time steps in all, one
    # copy per task restarting finished paths (the reference's sampler: more, shorter paths where goals are reached)
    batch: Literal["rollouts", "steps"] = "rollouts"
    horizon: int = 0  # 0 = the environment's (100 for point-nav, 200 for locomotion)
    # MuJoCo substeps of 0.01 s per action: "v5" = gymnasium's default 5 (0.05 s; every run before this field, so
    # also what a stored config without it means); the locomotion presets set the reference's (cheetah 1, ant 2)
    frame_skip: int | Literal["v5"] = V5
    hidden: tuple[int, ...] = (100, 100)
    init: Literal["torch", "xavier"] = "torch"  # weights: PyTorch's default, or Glorot-uniform with zero biases (rllab)
    inner_lr: float = 0.1
    inner_steps: int = 1  # at meta-training (0 in pretrained and oracle modes)
    first_order: bool = False
    gamma: float = 0.99
    gae_lambda: float = 1.0
    outer: Literal["trpo", "adam"] = "trpo"
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15
    hvp_tasks: int = 0  # tasks used for TRPO's curvature products (0 = all, the reference; fewer is faster)
    curvature: Literal["hessian", "fisher"] = "hessian"  # the KL Hessian as jvp-of-grad, or its Gauss-Newton form
    meta_lr: float = 0.001  # Adam's, for outer="adam"
    iterations: int = 100
    eval_rollouts: int = 40  # rollouts per task and step in evaluation
    eval_tasks: int = 10  # validation tasks of the periodic evaluation during training
    eval_every: int = 25
    checkpoint_every: int = 5
    log_every: int = 1
    seed: int = 0

    RESUME_FREE: ClassVar[tuple[str, ...]] = ("iterations", "eval_tasks", "eval_rollouts")

    @property
    def train_inner_steps(self) -> int:
        """Inner steps at meta-training: ``inner_steps`` in mode maml, 0 in the others."""
        return self.inner_steps if self.mode == "maml" else 0

    @property
    def oracle(self) -> bool:
        """True in oracle mode (the task appended to the observation)."""
        return self.mode == "oracle"

    @property
    def experiment(self) -> str:
        """The results-record and run-directory name: the preset, suffixed by the mode unless it is maml."""
        return self.preset if self.mode == "maml" else f"{self.preset}-{self.mode}"

    def validate(self) -> None:
        """Refuse impossible or inconsistent values before any work.

        Raises:
            ConfigError: the first problem found, naming the field and what it accepts.
        """
        if self.env not in ENVS:
            raise ConfigError(f"env {self.env!r} is not one of {', '.join(ENVS)}")
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {', '.join(MODES)}", param="mode")
        if self.init not in ("torch", "xavier"):
            raise ConfigError(f"init {self.init!r} is not 'torch' or 'xavier'", param="init")
        if self.batch not in ("rollouts", "steps"):
            raise ConfigError(f"batch {self.batch!r} is not 'rollouts' or 'steps'", param="batch")
        if self.curvature not in ("hessian", "fisher"):
            raise ConfigError(f"curvature {self.curvature!r} is not 'hessian' or 'fisher'", param="curvature")
        if self.outer not in OUTER:
            raise ConfigError(f"outer {self.outer!r} is not one of {', '.join(OUTER)}", param="outer")
        check_frame_skip(self.env, self.frame_skip)
        if self.preset not in PRESETS and self.preset != "custom":
            raise ConfigError(f"preset {self.preset!r} is not a maml-rl preset; choose one of {', '.join(PRESETS)}")
        if self.preset in PRESETS and self.env != PRESETS[self.preset].env:  # else an ant trains as point-nav
            raise ConfigError(
                f"env {self.env!r} is not the environment of preset {self.preset!r} "
                f"({PRESETS[self.preset].env}), which names the run, its directory and its records: "
                f"choose the preset of that environment, or preset 'custom' for a config of your own",
                param="preset",
            )
        for name in (
            "meta_batch",
            "rollouts",
            "eval_rollouts",
            "eval_tasks",
            "cg_iters",
            "max_backtracks",
            "checkpoint_every",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}", param=name)
        for name in ("horizon", "inner_steps", "iterations", "eval_every", "hvp_tasks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}", param=name)
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden must list positive layer widths, got {self.hidden}")
        for name in ("inner_lr", "max_kl", "meta_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive finite number, got {v}", param=name)
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError(f"gamma must lie in (0, 1] and gae_lambda in [0, 1], got {self.gamma}, {self.gae_lambda}")
        if not 0 < self.backtrack_ratio < 1 or self.cg_damping < 0:
            raise ConfigError(
                f"backtrack_ratio must lie in (0, 1) and cg_damping be >= 0, got "
                f"{self.backtrack_ratio}, {self.cg_damping}"
            )
        if self.mode == "maml" and self.inner_steps < 1:
            raise ConfigError("mode=maml needs inner_steps >= 1 (use mode=pretrained for a policy without adaptation)")


def _locomotion(env: str, rollouts: int = 20) -> MAMLRLConfig:
    # curvature products on 10 of the 40 tasks, in Gauss-Newton form: the same matrix estimated on a quarter of
    # the tasks, about 6x cheaper per product (160k post-update steps make exact full products the bottleneck);
    # the reference's control interval (cheetah 0.01 s, ant 0.02 s per action: envs.REFERENCE_FRAME_SKIP)
    return MAMLRLConfig(
        preset=env,
        env=env,
        meta_batch=40,
        rollouts=rollouts,
        iterations=500,
        eval_rollouts=rollouts,
        eval_every=50,
        checkpoint_every=5,
        hvp_tasks=10,
        curvature="fisher",
        frame_skip=REFERENCE_FRAME_SKIP[env.split("-")[0]],
    )


PRESETS: dict[str, MAMLRLConfig] = {
    # cbfinn/maml_rl: the parameter file behind the published curve (fbs20_mbs20_flr_0.5): 20 tasks, batches of
    # 20 x 100 time steps per task as its sampler counts them, inner lr 0.5, 100 meta-iterations; rllab's Glorot
    # init (with PyTorch's, the farthest goals' second test step diverged). The script's own default, 40 tasks of
    # 20 full rollouts, scored lower after 2-3 steps in an earlier comparison (3 seeds each).
    "point-nav": MAMLRLConfig(
        preset="point-nav",
        env="point-nav",
        meta_batch=20,
        batch="steps",
        inner_lr=0.5,
        curvature="fisher",
        init="xavier",
    ),
    "cheetah-vel": _locomotion("cheetah-vel"),
    "cheetah-dir": _locomotion("cheetah-dir"),
    "ant-vel": _locomotion("ant-vel"),
    "ant-dir": _locomotion("ant-dir", rollouts=40),
}


def make_config(preset: str, mode: str = "maml", overrides: dict | None = None) -> MAMLRLConfig:
    """The config of a named preset in a mode, with some fields changed, validated.

    Args:
        preset: one of :data:`PRESETS` (``"point-nav"``, ``"cheetah-vel"``, ...).
        mode: ``"maml"``, ``"pretrained"`` or ``"oracle"``.
        overrides: field -> value; strings are read as the field's type (as ``--set key=value`` does).

    Returns:
        A frozen :class:`MAMLRLConfig`.

    Raises:
        ConfigError: an unknown preset, mode or field, or an impossible value.

    Examples:
        >>> cfg = make_config("point-nav", "oracle", {"meta_batch": 4})
        >>> cfg.env, cfg.experiment, cfg.meta_batch, cfg.train_inner_steps
        ('point-nav', 'point-nav-oracle', 4, 0)
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown maml-rl preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    cfg = replace(PRESETS[preset], mode=mode)
    if overrides:
        return override_config(cfg, overrides)
    cfg.validate()
    return cfg
