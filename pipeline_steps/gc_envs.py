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

# dataset types per env family (what OGBench publishes); the families the pipeline can make locally
# are those pointmaze_oracle / the manipulation oracles cover (gc_dataset.py)
DATASET_TYPES = {
    "pointmaze-medium": ("navigate", "stitch"),
    "pointmaze-large": ("navigate", "stitch"),
    "pointmaze-giant": ("navigate", "stitch"),
    "pointmaze-teleport": ("navigate", "stitch"),
    "antmaze-medium": ("navigate", "stitch", "explore"),
    "antmaze-large": ("navigate", "stitch", "explore"),
    "antmaze-giant": ("navigate", "stitch"),
    "antmaze-teleport": ("navigate", "stitch", "explore"),
    "humanoidmaze-medium": ("navigate", "stitch"),
    "humanoidmaze-large": ("navigate", "stitch"),
    "humanoidmaze-giant": ("navigate", "stitch"),
    "antsoccer-arena": ("navigate", "stitch"),
    "antsoccer-medium": ("navigate", "stitch"),
    "cube-single": ("play", "noisy"),
    "cube-double": ("play", "noisy"),
    "scene": ("play", "noisy"),
    "puzzle-3x3": ("play", "noisy"),
    "puzzle-4x4": ("play", "noisy"),
    "puzzle-4x5": ("play", "noisy"),
    "puzzle-4x6": ("play", "noisy"),
}
NUM_TASKS = 5


def split_gc_name(name: str) -> tuple[str, str]:
    """'pointmaze-medium-navigate' -> ('pointmaze-medium', 'navigate'); ValueError naming a bad name."""
    base, _, kind = name.rpartition("-")
    if base not in DATASET_TYPES or kind not in DATASET_TYPES[base]:
        from pipeline_steps.config import closest

        known = [f"{b}-{k}" for b, ks in DATASET_TYPES.items() for k in ks]
        raise ValueError(f"unknown goal-conditioned env {name!r}; {closest(name, known)}")
    return base, kind


def check_gc_env_name(name: str) -> str:
    split_gc_name(name)
    return name


def can_generate(name: str) -> bool:
    """Whether gc_dataset can make `name`'s data here: pointmaze (scripted oracle) and every cube /
    scene / puzzle dataset (play: OGBench's plan oracles, noisy: its Markov oracles); ant / humanoid
    mazes need expert networks OGBench does not ship."""
    base, kind = split_gc_name(name)
    if base.startswith("pointmaze"):
        return kind in ("navigate", "stitch")
    return base.split("-")[0] in ("cube", "scene", "puzzle") and kind in ("play", "noisy")


def is_maze(name: str) -> bool:
    return "maze" in split_gc_name(name)[0]


def dataset_name(name: str) -> str:
    """OGBench's dataset (file) name: 'pointmaze-medium-navigate-v0'."""
    return f"{name}-v0"


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
