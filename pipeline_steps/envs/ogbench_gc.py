"""OGBench environments of the goal-conditioned half (paper Sec. 6, method.md §8).

A goal-conditioned env is named by its OGBench dataset, `<env>-<dataset type>` without the version,
e.g. `pointmaze-medium-navigate` (env `pointmaze-medium-v0`, dataset `pointmaze-medium-navigate-v0`).
Goals are in the oracle representation (OGBench's `*-oraclerep` envs): the agent's xy for mazes, each
cube's centred, x10-scaled xyz for cube tasks, computed from the stored qpos by OGBench's own
`add_oracle_reps`. Every env has OGBench's 5 evaluation tasks (`reset(options=dict(task_id=k))`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import gymnasium
import numpy as np

from pipeline_steps.envs.names import split_gc_name

NUM_TASKS = 5  # OGBench's evaluation tasks per env


def dataset_name(name: str) -> str:
    """OGBench's dataset (file) name: 'pointmaze-medium-navigate-v0'."""
    return f"{name}-v0"


def gym_id(name: str) -> str:
    """OGBench's gymnasium id of `name`'s env, e.g. 'pointmaze-medium-v0', registered (importing ogbench
    registers its envs: a dataset written without ever making the env still names a known id)."""
    import ogbench  # noqa: F401  (registers the envs)

    base, _ = split_gc_name(name)
    return f"{base}-v0"


def make_gc_env(name: str, **kwargs) -> gymnasium.Env:
    """The OGBench env of `name` with oracle goal representations (info['goal'] at reset). OGBench's maze
    envs write their MuJoCo XML to a temp file and never delete it: it is removed once the model is
    loaded (hundreds of envs in a lockstep evaluation would otherwise leave hundreds of files)."""
    import ogbench  # noqa: F401  (registers the envs)

    base, _ = split_gc_name(name)
    return drop_temp_xml(gymnasium.make(f"{base}-v0", use_oracle_rep=True, **kwargs))


def drop_temp_xml(env: gymnasium.Env) -> gymnasium.Env:
    """Delete the temp MuJoCo XML an OGBench maze env was built from (its model is loaded already)."""
    xml = Path(getattr(env.unwrapped, "fullpath", ""))
    if xml.suffix == ".xml" and xml.parent == Path(tempfile.gettempdir()) and xml.exists():
        os.unlink(xml)
    return env


def oracle_reps(name: str, env: gymnasium.Env, infos: dict[str, np.ndarray]) -> np.ndarray:
    """Oracle goal representation of every stored state, from its qpos [N, Q] (and button_states
    [N, B] for scene / puzzle) -> [N, G] float32 (OGBench's own add_oracle_reps)."""
    from ogbench.relabel_utils import add_oracle_reps

    dataset = {k: np.asarray(infos[k]) for k in ("qpos", "button_states") if k in infos}
    add_oracle_reps(dataset_name(name), env, dataset)
    return np.asarray(dataset["oracle_reps"], np.float32)


def state_xy(env: gymnasium.Env) -> np.ndarray:
    """A 2-D picture of where the task stands, for trajectory plots: the agent's xy in a maze, the first
    cube's xy (in the oracle representation's units) in a manipulation task."""
    u = env.unwrapped
    if hasattr(u, "maze_map"):
        return np.asarray(u.get_xy(), np.float64).copy()
    return np.asarray(u.compute_oracle_observation()[:2], np.float64)
