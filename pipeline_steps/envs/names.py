"""Every env-name rule of the pipeline and its checks, in one leaf module (it imports nothing of the
project, so params validation can use it without loading an environment).

Three kinds of names:
- offline RL on dm_control: `domain-task` of `dm_control.suite` (walker-run, cartpole-swingup_sparse), or
  a custom ExORL / URLB task of the paper's Table 1 as the paper names it (cheetah-run-backward,
  jaco-reach-top-left, jaco-reach-top-right; a '-' in the task part stands for dm_control's '_');
- offline RL on OGBench (paper Table 2): `<dataset>-singletask[-task<k>]`, e.g.
  pointmaze-large-navigate-singletask-task2 (ogbench_single.py);
- goal-conditioned (paper Table 3): an OGBench dataset without its version, `<env>-<dataset type>`, e.g.
  pointmaze-medium-navigate (ogbench_gc.py).
Every check raises ValueError naming the bad name and the closest valid ones.
"""

from __future__ import annotations

import difflib
import re

# the custom ExORL / URLB tasks (domain, dm_control-style task) that dm_control's suite lacks
# (built by exorl_tasks.py)
CUSTOM_TASKS = (("cheetah", "run_backward"), ("jaco", "reach_top_left"), ("jaco", "reach_top_right"))

# OGBench's dataset types per env family (what OGBench publishes)
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

_SINGLETASK = re.compile(r"^(?P<dataset>.+)-singletask(?:-task(?P<task>[1-5]))?$")


def closest(name: str, known: list[str], n: int = 3) -> str:
    """'closest: a, b, c (N in all)': the names a typo most likely meant, for an unknown-name error."""
    near = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    return f"closest: {', '.join(near) if near else 'none'} ({len(known)} known)"


# --------------------------------------------------------------------------------------------
# dm_control suite and custom ExORL tasks
# --------------------------------------------------------------------------------------------
def split_env_name(name: str) -> tuple[str, str]:
    """'walker-run' -> ('walker', 'run'), 'cheetah-run-backward' -> ('cheetah', 'run_backward'):
    domains never contain '-', and a '-' in the task part stands for dm_control's '_'."""
    domain, sep, task = name.partition("-")
    if not sep or not domain or not task:
        raise ValueError(f"env {name!r} is not of the form domain-task (e.g. walker-run)")
    return domain, task.replace("-", "_")


def env_names() -> dict[str, tuple[str, str]]:
    """Every env name -> (domain, task): the dm_control suite tasks as `domain-task` with the task as
    dm_control spells it (cartpole-swingup_sparse), and the custom ExORL / URLB tasks as the paper
    names them (cheetah-run-backward, jaco-reach-top-left, jaco-reach-top-right)."""
    from dm_control import suite

    names = {f"{d}-{t}": (d, t) for d, t in suite.ALL_TASKS}
    names.update({f"{d}-{t.replace('_', '-')}": (d, t) for d, t in CUSTOM_TASKS})
    return names


def check_env_name(name: str) -> None:
    """Raise ValueError naming `name` unless it is a dm_control suite domain-task, a custom ExORL / URLB
    task (`env_names`), or an OGBench single-task env (`split_singletask_name`)."""
    if is_singletask(name):
        split_singletask_name(name)
        return
    split_env_name(name)
    known = env_names()
    if name not in known:
        raise ValueError(
            f"unknown env {name!r}: not a dm_control suite task nor a custom ExORL task; "
            f"{closest(name, sorted(known))}"
        )


# --------------------------------------------------------------------------------------------
# OGBench: goal-conditioned datasets and single-task envs
# --------------------------------------------------------------------------------------------
def split_gc_name(name: str) -> tuple[str, str]:
    """'pointmaze-medium-navigate' -> ('pointmaze-medium', 'navigate'); ValueError naming a bad name."""
    base, _, kind = name.rpartition("-")
    if base not in DATASET_TYPES or kind not in DATASET_TYPES[base]:
        known = [f"{b}-{k}" for b, ks in DATASET_TYPES.items() for k in ks]
        raise ValueError(f"unknown goal-conditioned env {name!r}; {closest(name, known)}")
    return base, kind


def check_gc_env_name(name: str) -> str:
    split_gc_name(name)
    return name


def can_generate(name: str) -> bool:
    """Whether the OGBench data of `name` can be made here: pointmaze (scripted oracle) and every cube /
    scene / puzzle dataset (play: OGBench's plan oracles, noisy: its Markov oracles); ant / humanoid
    mazes need expert networks OGBench does not ship."""
    base, kind = split_gc_name(name)
    if base.startswith("pointmaze"):
        return kind in ("navigate", "stitch")
    return base.split("-")[0] in ("cube", "scene", "puzzle") and kind in ("play", "noisy")


def is_maze(name: str) -> bool:
    return "maze" in split_gc_name(name)[0]


def is_singletask(name: str) -> bool:
    return bool(_SINGLETASK.match(name))


def split_singletask_name(name: str) -> tuple[str, int | None]:
    """'pointmaze-large-navigate-singletask-task2' -> ('pointmaze-large-navigate', 2) (task None: the
    env's default task); ValueError naming a bad name."""
    m = _SINGLETASK.match(name)
    if not m:
        raise ValueError(f"{name!r} is not an OGBench single-task env (<dataset>-singletask[-task<k>])")
    try:
        split_gc_name(m["dataset"])
    except ValueError as err:
        raise ValueError(f"unknown OGBench single-task env {name!r}: {err}") from None
    return m["dataset"], int(m["task"]) if m["task"] else None
