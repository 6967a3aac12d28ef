"""dm_control suite tasks as gymnasium environments with flat observations.

Every `domain-task` of `dm_control.suite` is registered as the gymnasium id `cfgrl/<domain>-<task>-v0`
with a *string* entry point (Minari stores env specs as JSON, which a callable cannot be).

Observation layout (the same for collection, ExORL import, training and evaluation): the task's
observation dict in the order dm_control returns it (its `observation_spec()` OrderedDict, which is
also the order ExORL flattened), each entry flattened row-major, concatenated, cast to float32.
walker: orientations(14), height(1), velocity(9) -> 24; cheetah: position(8), velocity(9) -> 17.

Actions are in [-1, 1] (rescaled from the task's bounds when they differ). Episodes end by
truncation at the task's time limit (1000 control steps for walker and cheetah), never by
termination. `info["physics"]` holds the MuJoCo physics state after reset / after each step, so a
dataset can relabel rewards for another task of the same domain.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")  # nothing renders; keep dm_control from looking for a display

import gymnasium as gym
import numpy as np


class _DropSetTotalMassWarning(logging.Filter):
    """dm_control's cheetah.xml uses `settotalmass`, which MuJoCo 3 reports as deprecated (the mass is
    still set) through absl on every model build: 140 identical lines per cheetah evaluation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "settotalmass" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropSetTotalMassWarning())

ID_PREFIX = "cfgrl/"
ID_SUFFIX = "-v0"


def split_env_name(name: str) -> tuple[str, str]:
    """'walker-run' -> ('walker', 'run'); domains never contain '-'."""
    domain, sep, task = name.partition("-")
    if not sep or not domain or not task:
        raise ValueError(f"env {name!r} is not of the form domain-task (e.g. walker-run)")
    return domain, task


def check_env_name(name: str) -> None:
    """Raise ValueError naming `name` unless it is a dm_control suite domain-task."""
    from dm_control import suite

    domain, task = split_env_name(name)
    if (domain, task) not in suite.ALL_TASKS:
        from pipeline_steps.config import closest

        known = sorted({f"{d}-{t}" for d, t in suite.ALL_TASKS})
        raise ValueError(f"unknown env {name!r}: not a dm_control suite task; {closest(name, known)}")


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
    """Gymnasium entry point (string form: 'pipeline_steps.envs:make_dmc')."""
    from dm_control import suite
    from shimmy.dm_control_compatibility import DmControlCompatibilityV0

    return FlatDmControl(DmControlCompatibilityV0(suite.load(domain, task), render_mode=render_mode))


def register_all() -> None:
    """Register every dm_control suite task as cfgrl/<domain>-<task>-v0 (idempotent)."""
    from dm_control import suite

    for domain, task in suite.ALL_TASKS:
        gid = env_id(f"{domain}-{task}")
        if gid not in gym.registry:
            gym.register(
                gid,
                entry_point="pipeline_steps.envs:make_dmc",
                kwargs={"domain": domain, "task": task},
                disable_env_checker=True,
                order_enforce=False,
            )


def make_env(name: str) -> FlatDmControl:
    """gym.make the registered env for 'domain-task'; raises ValueError for an unknown name."""
    check_env_name(name)
    register_all()
    env = gym.make(env_id(name))
    assert isinstance(env, FlatDmControl), type(env)
    return env


def episode_seed(base_seed: int, episode: int) -> int:
    """A reset seed below 2**32 (shimmy's RandomState limit) derived from (base_seed, episode)."""
    return int(np.random.SeedSequence([base_seed, episode]).generate_state(1, np.uint32)[0])
