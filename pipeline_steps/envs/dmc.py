"""dm_control suite and custom ExORL / URLB tasks as gymnasium environments with flat observations.

Every `domain-task` of `dm_control.suite` is registered as the gymnasium id `cfgrl/<domain>-<task>-v0`,
and so are the custom tasks of the paper's Table 1 (exorl_tasks.py), under the paper's
names: cheetah-run-backward, jaco-reach-top-left, jaco-reach-top-right (a '-' in the task part stands
for dm_control's '_'). All use one *string* entry point (Minari stores env specs as JSON, which a
callable cannot be).

Observation layout (the same for collection, ExORL import, training and evaluation): the task's
observation dict in the order dm_control returns it (its `observation_spec()` OrderedDict, which is
also the order ExORL flattened), each entry flattened row-major (jaco's composer observations with
their leading (1, ...) buffer dimension), concatenated, cast to float32:
- walker: orientations(14), height(1), velocity(9) -> 24;
- cheetah (run, run-backward): position(8), velocity(9) -> 17;
- quadruped: egocentric_state(44), torso_velocity(3), torso_upright(1), imu(6), force_torque(24) -> 78;
- jaco (reach-top-left / -right): jaco_arm/joints_pos(6x2: sin, cos), jaco_arm/joints_torque(6),
  jaco_arm/joints_vel(6), jaco_arm/jaco_hand/joints_pos(3), jaco_arm/jaco_hand/joints_vel(3),
  jaco_arm/jaco_hand/pinch_site_pos(3), jaco_arm/jaco_hand/pinch_site_rmat(9) -> 42 (no target
  position, as in ExORL).

Actions are in [-1, 1] (rescaled from the task's bounds when they differ, e.g. quadruped and jaco).
Episodes end by truncation at the task's time limit, never by termination: 1000 control steps for
walker (25 s at 0.025 s), cheetah (10 s at 0.01 s) and quadruped (20 s at 0.02 s), 250 for jaco
(10 s at 0.04 s).
`info["physics"]` holds the MuJoCo physics state after reset / after each step (jaco: qpos(9) +
qvel(9) -> 18), so a dataset can relabel rewards for another task of the same domain.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from pipeline_steps.envs import ogbench_single
from pipeline_steps.envs.names import check_env_name, env_names, is_singletask


class _DropSetTotalMassWarning(logging.Filter):
    """dm_control's cheetah.xml uses `settotalmass`, which MuJoCo 3 reports as deprecated (the mass is
    still set) through absl on every model build: 140 identical lines per cheetah evaluation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "settotalmass" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropSetTotalMassWarning())

ID_PREFIX = "cfgrl/"
ID_SUFFIX = "-v0"


def env_id(name: str) -> str:
    """'walker-run' -> 'cfgrl/walker-run-v0'."""
    return f"{ID_PREFIX}{name}{ID_SUFFIX}"


class FlatDmControl(gym.Wrapper):
    """Flat float32 observations in dm_control order, actions in [-1, 1], physics state in info."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        dm_env = env.unwrapped._env
        spec = dm_env.observation_spec()
        self.obs_keys = list(spec.keys())
        self._obs_sizes = [int(np.prod(s.shape, dtype=int)) for s in spec.values()]
        obs_dim = sum(self._obs_sizes)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        a_spec = dm_env.action_spec()
        self._a_low = np.asarray(a_spec.minimum, np.float64)
        self._a_high = np.asarray(a_spec.maximum, np.float64)
        self._rescale = not (np.all(self._a_low == -1.0) and np.all(self._a_high == 1.0))
        self.action_space = gym.spaces.Box(-1.0, 1.0, a_spec.shape, np.float32)

    @property
    def physics(self):
        return self.env.unwrapped._env.physics

    @property
    def task(self):
        return self.env.unwrapped._env.task

    def flatten(self, obs: dict[str, Any]) -> np.ndarray:
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in self.obs_keys])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        info["physics"] = self.physics.get_state().copy()
        return self.flatten(obs), info

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        if self._rescale:
            action = self._a_low + (action + 1.0) * 0.5 * (self._a_high - self._a_low)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["physics"] = self.physics.get_state().copy()
        return self.flatten(obs), float(reward), bool(terminated), bool(truncated), info


def make_dmc(domain: str, task: str, render_mode: str | None = None) -> FlatDmControl:
    """A dm_control suite task or a custom ExORL / URLB one (exorl_tasks.py), wrapped (the gymnasium
    entry point 'pipeline_steps.envs:make_dmc' calls this)."""
    from dm_control import suite
    from shimmy.dm_control_compatibility import DmControlCompatibilityV0

    from pipeline_steps.envs import exorl_tasks

    if (domain, task) in exorl_tasks.TASKS:
        dm_env = exorl_tasks.load(domain, task)
    else:
        dm_env = suite.load(domain, task)
    return FlatDmControl(DmControlCompatibilityV0(dm_env, render_mode=render_mode))


def register_all() -> None:
    """Register every env of `env_names` as cfgrl/<name>-v0 (idempotent)."""
    for name, (domain, task) in env_names().items():
        gid = env_id(name)
        if gid not in gym.registry:
            gym.register(
                gid,
                entry_point="pipeline_steps.envs:make_dmc",
                kwargs={"domain": domain, "task": task},
                disable_env_checker=True,
                order_enforce=False,
            )


def make_env(name: str) -> FlatDmControl | ogbench_single.SingleTaskEnv:
    """gym.make the registered env for 'domain-task' (or the OGBench single-task env of an
    '<dataset>-singletask[-task<k>]' name); raises ValueError for an unknown name."""
    check_env_name(name)
    if is_singletask(name):
        return ogbench_single.make_env(name)
    register_all()
    env = gym.make(env_id(name))
    assert isinstance(env, FlatDmControl), type(env)
    return env


def episode_seed(base_seed: int, episode: int) -> int:
    """A reset seed below 2**32 (shimmy's RandomState limit) derived from (base_seed, episode)."""
    return int(np.random.SeedSequence([base_seed, episode]).generate_state(1, np.uint32)[0])
