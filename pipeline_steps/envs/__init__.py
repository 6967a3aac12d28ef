"""Environments: dm_control suite and custom ExORL tasks (dmc.py, exorl_tasks.py), OGBench single-task
(ogbench_single.py) and goal-conditioned (ogbench_gc.py) envs; every name rule in names.py."""

import os

# nothing renders by default: keep dm_control (imported by any env module, names.py included) from
# looking for a display; set before any of them runs
os.environ.setdefault("MUJOCO_GL", "egl")


def make_dmc(domain: str, task: str, render_mode: str | None = None):
    """The gymnasium entry point of the dm_control envs, 'pipeline_steps.envs:make_dmc': Minari stores
    it in every dataset's env spec, so this name stays put (datasets made before keep loading)."""
    from pipeline_steps.envs.dmc import make_dmc as make

    return make(domain, task, render_mode)
