"""Evaluation rollouts: many episodes stepped in lockstep with one policy call per step.

`run_lockstep` resets N envs with given seeds, calls `act(obs [N, O]) -> actions [N, A]` once per
control step for all N envs at once (so the policy batches across every (w, episode) pair), and
steps every env that has not finished. `run_sequential` is the plain reference loop: one episode at
a time through the same code path, for the equality test and the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from pipeline_steps.envs import make_env

ActFn = Callable[[torch.Tensor, np.ndarray], torch.Tensor]  # (obs [N, O], env indices [N]) -> [N, A]


class Rollouts(NamedTuple):
    returns: np.ndarray  # [N] float64: sum of rewards
    lengths: np.ndarray  # [N] int64: control steps
    successes: (
        np.ndarray
    )  # [N] float64: info["success"] at the last step (OGBench), NaN where the env has none


def run_lockstep(
    env_name: str,
    reset_seeds: list[int],
    act: ActFn,
    max_steps: int | None = None,
    desc: str = "",
    on_step: Callable[[list, int, np.ndarray], None] | None = None,
):
    """Returns Rollouts (returns, lengths, successes), one entry per env. `act` sees only the
    still-running envs and their indices, so its per-env state (noise generators, w, policy index)
    stays aligned. With a `desc`, a progress bar counts the control steps of the batch (and the
    episodes still running).
    `on_step(envs, t, indices)` is called after the reset (t = 0) and after each control step t with
    the envs just stepped (e.g. to render them)."""
    envs = [make_env(env_name) for _ in reset_seeds]
    n = len(envs)
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, reset_seeds)])  # [N, O]
    returns, lengths, successes = np.zeros(n), np.zeros(n, np.int64), np.full(n, np.nan)
    running = np.arange(n)
    if on_step:
        on_step(envs, 0, running)
    t = 0
    bar = tqdm(total=max_steps, desc=desc, unit="step", mininterval=2.0, disable=not desc)
    while len(running):
        actions = act(torch.from_numpy(obs[running]), running).numpy()  # [n_running, A]
        still = []
        for j, i in enumerate(running):
            obs[i], reward, terminated, truncated, info = envs[i].step(actions[j])
            returns[i] += reward
            lengths[i] += 1
            if "success" in info:
                successes[i] = float(info["success"])
            if not (terminated or truncated or (max_steps is not None and lengths[i] >= max_steps)):
                still.append(i)
        t += 1
        if on_step:
            on_step(envs, t, running)
        running = np.asarray(still, np.int64)
        bar.update(1)
        bar.set_postfix({"episodes running": len(running)}, refresh=False)
    bar.close()
    for env in envs:
        env.close()
    return Rollouts(returns, lengths, successes)


def run_sequential(env_name: str, reset_seeds: list[int], act: ActFn, max_steps: int | None = None):
    """The reference: the same episodes one at a time (batch of one)."""
    results = [
        run_lockstep(env_name, [s], lambda o, idx, i=i: act(o, np.array([i])), max_steps)
        for i, s in enumerate(reset_seeds)
    ]
    return Rollouts(*(np.concatenate(parts) for parts in zip(*results)))
