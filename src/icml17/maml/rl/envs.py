"""Task distributions of section 5.3 of Finn et al. (2017): 2D navigation and MuJoCo locomotion.

Every environment here is *batched*: one object holds ``n`` independent copies (tasks x rollouts, flattened)
and ``step(actions)`` advances all of them, returning arrays with a leading ``n`` axis. The sampler
(:mod:`icml17.maml.rl.sampler`) calls the policy once per time step for all copies.

2D navigation (the reference code's ``PointEnvRandGoal``): the state is the point's position, starting at the
origin; the goal is uniform in [-0.5, 0.5]^2; the move is the policy's action scaled onto the action box
[-0.1, 0.1]^2 and clipped to it, 0.1 * clip(a, -1, 1), as the reference scripts' rllab ``normalize`` wrapper does
(it maps [-1, 1] onto the box: lb + (a + 1) (ub - lb) / 2, then clips), and is added to the position; the reward
is minus the Euclidean distance to the goal *after* the move (the paper's text says
squared distance; the code, which produced the published curves, uses the distance); an episode ends when both
coordinates are within 0.01 of the goal, or after 100 steps. The whole batch is one numpy array program.
(An earlier version clipped the policy's action to [-0.1, 0.1] directly, without the scaling: the policy then
had to learn a 10x smaller spread to stop at the goal, and 100 meta-iterations fell well short of the reference.)

Locomotion runs gymnasium's v5 MuJoCo models (``HalfCheetah-v5``, ``Ant-v5``; MuJoCo from its wheel) with
gymnasium's own dynamics, observations and reset noise, stepped through each environment's unwrapped core
(``do_simulation`` with the configured frame skip) in a tight loop, our own 200-step time limit (the reference's
``max_path_length = 200``) replacing the wrappers.

Control interval (``frame_skip``): one action lasts ``model.opt.timestep x frame_skip`` seconds of simulated time.
Both v5 models have a 0.01 s timestep and gymnasium's default frame skip is 5 (0.05 s per action). The reference's
rllab models step once per action (rllab's ``MujocoEnv`` reads a ``frame_skip`` numeric from the model file and
neither ``half_cheetah.xml`` nor ``ant.xml`` has one): ``half_cheetah.xml`` has a 0.01 s timestep, ``ant.xml``
0.02 s (RK4). :data:`REFERENCE_FRAME_SKIP` (cheetah 1, ant 2) reproduces those intervals on the v5 models (the ant
as two 0.01 s RK4 substeps where rllab took one 0.02 s step); ``"v5"`` keeps gymnasium's default (5 substeps,
0.05 s), under which every locomotion record made before this option existed (issue 28) was made. A 200-step
episode is 2 s (cheetah) or 4 s (ant) of simulated time at the reference's interval, 10 s at v5's. Velocities are
finite differences over one control step, divided by that step's duration (``env.dt``).

The reward is recomputed from the x-velocity as the reference (rllab-based) code does:

- cheetah goal velocity: ``-|v_x - v_goal| - 0.05 |a|^2`` (v_goal ~ U[0, 2]); direction: ``d v_x - 0.05 |a|^2``,
  d in {-1, +1}; actions clipped to the action bounds before the cost; never terminates.
- ant goal velocity: ``-|v_x - v_goal| + 1 - 0.005 |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2 + 0.05`` (v_goal ~
  U[0, 3]; the reference's ``+ 1`` keeps a step alive worth more than an ended episode); direction: ``d v_x -
  ...`` the same costs and 0.05, without the 1; ends when the torso height leaves [0.2, 1.0] or the state is not
  finite.

Where gymnasium v5 differs from rllab's models, so that our returns compare with the paper's in shape, not in
value: rllab took ``v_x`` from the torso's centre-of-mass velocity (``get_body_comvel``), we take gymnasium's
finite-difference x-velocity over one control step (``x_velocity``: the root joint's x for the cheetah, the
torso body's x for the ant); rllab's
observations add body centre-of-mass terms (cheetah) and, for the ant, the raw contact forces and the torso's
x/y, while v5 observes ``qpos`` without x (cheetah) or x, y (ant), ``qvel``, and for the ant the contact
forces ``cfrc_ext`` clipped to [-1, 1] (105 numbers instead of rllab's 125); v5's reset noise is 0.1 (both) and
its model files were revised (the ant's geometry and contact parameters, MuJoCo 3 solver defaults).

The ``oracle`` variant appends the task (goal position, goal velocity or direction) to the observation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from icml17.core.config import ConfigError
from icml17.core.errors import UserError

ENVS = ("point-nav", "cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir")
MUJOCO_IDS = {"cheetah": "HalfCheetah-v5", "ant": "Ant-v5"}
# Simulator substeps per action. "v5": gymnasium's own default (V5_FRAME_SKIP substeps of 0.01 s = 0.05 s per action);
# REFERENCE_FRAME_SKIP gives the reference's control interval on the v5 models' 0.01 s timestep: rllab's
# half_cheetah.xml steps 0.01 s per action, its ant.xml 0.02 s (timestep 0.01 / 0.02, no frame_skip numeric, so
# rllab's MujocoEnv steps once per action; cbfinn/maml_rl vendor/mujoco_models, rllab/envs/mujoco/mujoco_env.py)
V5 = "v5"
V5_FRAME_SKIP = 5
REFERENCE_FRAME_SKIP = {"cheetah": 1, "ant": 2}
RL_EXTRA_HINT = 'pip install -e ".[rl]"  (or pip install "gymnasium[mujoco]>=1.0,<2")'


class MujocoMissingError(UserError, ImportError):
    """gymnasium or MuJoCo is not installed; the message says how to install the ``rl`` extra."""


class EnvError(UserError, ValueError):
    """An unknown environment, or actions of the wrong size."""


def check_env_name(name: str) -> None:
    if name not in ENVS:
        raise EnvError(f"unknown environment {name!r}; choose one of {', '.join(ENVS)}")


def sample_tasks(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` tasks of environment ``name`` from ``rng``: goals (n, 2) for point-nav, (n, 1) otherwise."""
    check_env_name(name)
    if name == "point-nav":
        return rng.uniform(-0.5, 0.5, size=(n, 2))
    if name.endswith("-dir"):
        return rng.choice(np.array([-1.0, 1.0]), size=(n, 1))
    high = 2.0 if name.startswith("cheetah") else 3.0
    return rng.uniform(0.0, high, size=(n, 1))


@dataclass(frozen=True)
class EnvSpec:
    obs_dim: int
    act_dim: int
    horizon: int


class PointNav:
    """``n`` point agents, each with its own goal (n, 2); one numpy program for all of them."""

    HORIZON = 100
    ACTION_LIMIT = 0.1  # the action box is [-0.1, 0.1]^2; policy outputs in [-1, 1] map onto it
    GOAL_TOLERANCE = 0.01

    def __init__(self, goals: np.ndarray, oracle: bool = False):
        self.goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        self.oracle = oracle
        self.n = len(self.goals)
        self.position = np.zeros((self.n, 2))

    @staticmethod
    def spec(oracle: bool = False) -> EnvSpec:
        return EnvSpec(obs_dim=4 if oracle else 2, act_dim=2, horizon=PointNav.HORIZON)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.position, self.goals], 1) if self.oracle else self.position.copy()

    def reset(self, seeds: np.ndarray | None = None) -> np.ndarray:
        """Every agent back to the origin (deterministic: ``seeds`` is accepted for a common interface)."""
        self.position = np.zeros((self.n, 2))
        return self._obs()

    def reset_copies(self, index: np.ndarray, seeds: np.ndarray | None = None) -> np.ndarray:
        """Agents ``index`` back to the origin: their observations (len(index), d)."""
        self.position[index] = 0.0
        return self._obs()[index]

    @classmethod
    def move(cls, actions: np.ndarray) -> np.ndarray:
        """The displacement of policy actions: [-1, 1] scaled onto the action box, clipped (rllab's normalize)."""
        return cls.ACTION_LIMIT * np.clip(actions, -1.0, 1.0)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move by the policy's actions (n, 2) scaled onto the action box and clipped (rllab's ``normalize``):
        observations (n, d), rewards (n,), done (n,)."""
        self.position = self.position + self.move(actions)
        offset = self.position - self.goals
        reward = -np.sqrt((offset**2).sum(1))
        done = (np.abs(offset) < self.GOAL_TOLERANCE).all(1)
        return self._obs(), reward, done


def _import_gymnasium():
    try:
        import gymnasium
        import mujoco  # noqa: F401
    except ImportError as e:
        raise MujocoMissingError(
            f"the MuJoCo environments need gymnasium and mujoco ({e.name} is missing); "
            f"install the rl extra: {RL_EXTRA_HINT}"
        ) from e
    return gymnasium


def _warn_once(message: str) -> None:
    warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def resolve_frame_skip(frame_skip: int | str = V5) -> int:
    """The number of simulator substeps per action of config value ``frame_skip``: ``"v5"`` (gymnasium's default,
    5) or a positive integer. Anything else is a :class:`ConfigError` naming the key."""
    if frame_skip == V5:
        return V5_FRAME_SKIP
    if isinstance(frame_skip, (int, np.integer)) and not isinstance(frame_skip, bool) and frame_skip >= 1:
        return int(frame_skip)
    raise ConfigError(
        f"frame_skip must be 'v5' (gymnasium's default, 0.05 s per action) or an integer >= 1, got {frame_skip!r}",
        param="frame_skip",
    )


def check_frame_skip(name: str, frame_skip: int | str) -> None:
    """``frame_skip`` valid for environment ``name``: any valid value for MuJoCo; 2D navigation has no simulator,
    so only the default ``"v5"`` (unused) is accepted there."""
    check_env_name(name)
    if name == "point-nav":
        if frame_skip != V5:
            raise ConfigError(
                f"frame_skip applies to the MuJoCo environments only; point-nav has no simulator "
                f"substeps (got {frame_skip!r}; leave frame_skip unset)",
                param="frame_skip",
            )
        return
    resolve_frame_skip(frame_skip)


def make_core_env(robot: str, frame_skip: int | str = V5):
    """gymnasium's v5 environment of ``robot`` ('cheetah' or 'ant') at ``frame_skip`` substeps per action,
    unwrapped (no time-limit or checker wrappers: we step its core and keep our own horizon)."""
    skip = resolve_frame_skip(frame_skip)
    gym = _import_gymnasium()
    import mujoco

    # MuJoCo prints a deprecation notice about gymnasium's model files on every compile (hundreds per sampler);
    # through Python's warnings it is shown once
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_warn_once)
    return gym.make(MUJOCO_IDS[robot], frame_skip=skip).unwrapped


class Locomotion:
    """``n`` gymnasium v5 cheetahs or ants, each with its own task (goal velocity or direction), stepped in
    one tight loop over their MuJoCo cores, ``frame_skip`` simulator substeps per action (``dt`` seconds).
    Environments are created once and reused across resets (a ``pool`` of another frame skip is not reused)."""

    HORIZON = 200  # the reference's max_path_length for both robots (cluster_maml_trpo_*.py, test_maml_*.py)

    def __init__(
        self, name: str, tasks: np.ndarray, oracle: bool = False, pool: list | None = None, frame_skip: int | str = V5
    ):
        check_env_name(name)
        check_frame_skip(name, frame_skip)
        self.robot, self.kind = name.split("-")
        self.frame_skip = resolve_frame_skip(frame_skip)
        self.tasks = np.asarray(tasks, dtype=np.float64).reshape(-1)
        self.n = len(self.tasks)
        self.oracle = oracle
        reuse = pool is not None and len(pool) >= self.n and all(e.frame_skip == self.frame_skip for e in pool)
        self.envs = pool[: self.n] if reuse else [make_core_env(self.robot, self.frame_skip) for _ in range(self.n)]
        self.low = self.envs[0].action_space.low
        self.high = self.envs[0].action_space.high
        # seconds of simulated time per action: the model's timestep x the frame skip (gymnasium's own dt)
        self.dt = self.envs[0].model.opt.timestep * self.frame_skip
        self.torso = self.envs[0].model.body("torso").id

    @staticmethod
    def spec(name: str, oracle: bool = False) -> EnvSpec:
        obs, act = {"cheetah": (17, 6), "ant": (105, 8)}[name.split("-")[0]]
        return EnvSpec(obs_dim=obs + int(oracle), act_dim=act, horizon=Locomotion.HORIZON)

    def _with_task(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self.tasks[:, None]], 1) if self.oracle else obs

    def _x(self, env) -> float:
        # gymnasium's own choice per robot: the root slide joint (cheetah), the torso body's position (ant)
        return env.data.qpos[0] if self.robot == "cheetah" else env.data.xpos[self.torso, 0]

    def reset(self, seeds: np.ndarray) -> np.ndarray:
        """Reset every copy with gymnasium's v5 reset noise drawn from its own seed: observations (n, d)."""
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds)])
        return self._with_task(obs)

    def reset_copies(self, index: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Reset copies ``index``, each from its own seed: their observations (len(index), d)."""
        obs = np.stack([self.envs[i].reset(seed=int(s))[0] for i, s in zip(index, seeds)])
        return np.concatenate([obs, self.tasks[index, None]], 1) if self.oracle else obs

    def move(self, actions: np.ndarray) -> np.ndarray:
        """The controls of policy actions (n, act_dim): clipped to the model's action box. rllab's ``normalize``
        maps [-1, 1] onto the box and clips; both v5 boxes are [-1, 1] (the ant's torque scale of 150 is the
        motors' gear, where rllab's ant.xml had ctrlrange +-150), so the map is the identity and the clip remains."""
        return np.clip(actions, self.low, self.high)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance the active copies by one control step (``dt`` seconds): observations (n, d), rewards (n,),
        done (n,). Inactive copies (already done) are not simulated; their rows are zeros."""
        n = self.n
        active = np.ones(n, bool) if active is None else active
        actions = self.move(actions)
        obs = None
        x_velocity = np.zeros(n)
        contact = np.zeros(n)
        done = np.zeros(n, bool)
        obs = np.zeros((n, self.spec(f"{self.robot}-{self.kind}").obs_dim - int(self.oracle)))
        if self.robot == "cheetah":
            import mujoco

            model, skip, nq = self.envs[0].model, self.frame_skip, self.envs[0].model.nq
            for i in np.flatnonzero(active):
                data = self.envs[i].data
                x_before = data.qpos[0]
                data.ctrl[:] = actions[i]
                # gymnasium's step minus mj_rnePostConstraint, which only fills force fields the cheetah's
                # reward and observation never read (the state it integrates is the same)
                mujoco.mj_step(model, data, nstep=skip)
                x_velocity[i] = (data.qpos[0] - x_before) / self.dt
                obs[i, : nq - 1] = data.qpos[1:]  # v5's observation: qpos without x, then qvel
                obs[i, nq - 1 :] = data.qvel
        else:
            for i in np.flatnonzero(active):
                env = self.envs[i]
                x_before = self._x(env)
                env._step_mujoco_simulation(actions[i], self.frame_skip)  # do_simulation, sans shape check
                x_velocity[i] = (self._x(env) - x_before) / self.dt
                obs[i] = o = env._get_obs()
                contact[i] = np.square(np.clip(env.data.cfrc_ext, -1.0, 1.0)).sum()
                done[i] = not (np.isfinite(o).all() and 0.2 <= env.data.qpos[2] <= 1.0)
        progress = x_velocity * self.tasks if self.kind == "dir" else -np.abs(x_velocity - self.tasks)
        square = np.square(actions).sum(1)
        if self.robot == "cheetah":
            reward = progress - 0.05 * square
        else:
            if self.kind == "vel":  # the reference's "+ 1": else every step costs, and falling over (which ends
                progress = progress + 1.0  # the episode) would pay better than walking
            reward = progress - 0.005 * square - 5e-4 * contact + 0.05
        return self._with_task(obs), np.where(active, reward, 0.0), done


def make_env(name: str, tasks: np.ndarray, oracle: bool = False, pool: list | None = None, frame_skip: int | str = V5):
    """The batched environment for ``tasks`` (one row per copy); MuJoCo ones at ``frame_skip`` substeps per
    action (``"v5"``: gymnasium's default; the presets use :data:`REFERENCE_FRAME_SKIP`)."""
    check_frame_skip(name, frame_skip)
    if name == "point-nav":
        return PointNav(tasks, oracle)
    return Locomotion(name, tasks, oracle, pool, frame_skip)


def env_spec(name: str, oracle: bool = False) -> EnvSpec:
    check_env_name(name)
    return PointNav.spec(oracle) if name == "point-nav" else Locomotion.spec(name, oracle)
