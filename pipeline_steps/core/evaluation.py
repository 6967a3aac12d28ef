"""What the evaluation stages share (evaluate, evaluate_extraction): the checkpoint / env check, the
wall-clock cost of an action, and the episode and summary tables of a lockstep sweep."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from pipeline_steps.core.rollouts import Rollouts
from pipeline_steps.core.stats import ci95
from pipeline_steps.envs.dmc import make_env


def check_dims(env_name: str, obs_dim: int, act_dim: int, what: str) -> None:
    env = make_env(env_name)
    want = (env.observation_space.shape[0], env.action_space.shape[0])
    env.close()
    if (obs_dim, act_dim) != want:
        raise ValueError(
            f"{what}: trained for observation size {obs_dim} / action size {act_dim}, "
            f"but {env_name} has {want[0]} / {want[1]}"
        )


@torch.no_grad()
def time_per_action(fn, repeats: int) -> float:
    """Median wall-clock seconds of fn() (one call: an action for one state, or for a batch)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per setting: mean, std and 95% CI of the return (and of the success, where episodes have it)."""
    values = ["return"] + (["success"] if "success" in episodes else [])
    rows = []
    for (method, setting), g in episodes.groupby(["method", "setting"], sort=False):
        row = {"method": method, "setting": setting, "episodes": len(g)}
        for v in values:
            r = g[v].to_numpy()
            row |= {
                f"{v}_mean": r.mean(),
                f"{v}_std": r.std(ddof=1) if len(r) > 1 else 0.0,
                f"{v}_ci95": ci95(r),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def episode_table(method: str, settings: list[float], seed: int, rollouts: Rollouts) -> pd.DataFrame:
    """One row per episode of a lockstep sweep run setting-major (all episodes of settings[0] first);
    a `success` column (0 / 1) where the env reports success (OGBench)."""
    n_ep = len(rollouts.returns) // len(settings)
    table = pd.DataFrame(
        {
            "method": method,
            "setting": np.repeat(settings, n_ep),
            "seed": seed,
            "episode": np.tile(np.arange(n_ep), len(settings)),
            "return": rollouts.returns,
            "length": rollouts.lengths,
        }
    )
    if not np.isnan(rollouts.successes).all():
        table["success"] = rollouts.successes
    return table
