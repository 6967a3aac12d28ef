"""The goal-conditioned lockstep evaluation (pipeline_steps.gc.evaluate) against a sequential loop,
on the same policy, episodes and seeds, in one run.

    .venv/bin/python benchmarks/bench_gc_eval.py [--env pointmaze-medium-navigate] [--checkpoint PATH]
        [--algo cfgrl|hcfgrl] [--episodes 2] [--max-steps 200] [--seq-episodes 6] [--rounds 2]

--algo hcfgrl times HCFGRL's joint sweep (the same w at both levels: two guided flows per action).

- lockstep:   every (task, episode, w) of params' gc_evaluate.guidance_ws in one batch, one network
              call per flow step for all envs and both guidance branches
- sequential: one episode at a time through the same code path (batch of one), timed on
              --seq-episodes of the episodes and scaled to the sweep's count (its cost is linear in
              episodes)
Episodes are cut at --max-steps so that both see the same number of steps (an untrained policy
rarely reaches a goal; a trained one ends episodes early, which helps both equally). Each ratio
uses each measurement's fastest of --rounds interleaved rounds. Prints the CPU model: compare
ratios measured here, side by side, not absolute times across machines.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.core.device import setup_torch
from pipeline_steps.core.params import load_params
from pipeline_steps.envs import ogbench_gc
from pipeline_steps.gc.evaluate import (
    _NOISE_TAG,
    _RESET_TAG,
    _SUBGOAL_TAG,
    episode_seed,
    policy_act_fn,
    run_gc_lockstep,
)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default="pointmaze-medium-navigate")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--algo", default="cfgrl", choices=["cfgrl", "hcfgrl"], help="without --checkpoint")
    ap.add_argument("--episodes", type=int, default=2, help="episodes per task and w")
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--seq-episodes", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    p = load_params(a.params)
    setup_torch(0, p.runtime)
    if a.checkpoint:
        agent = gc_policies.from_checkpoint(a.checkpoint)
    else:  # a fresh policy of the params' size: the same cost per call
        env = ogbench_gc.make_gc_env(a.env)
        ob, info = env.reset(seed=0, options=dict(task_id=1))
        agent = gc_policies.build(
            a.algo, ob.shape[0], len(info["goal"]), env.action_space.shape[0], p.train_gc
        ).eval()
        env.close()
    ws, tasks = p.gc_evaluate.guidance_ws, p.gc_evaluate.tasks
    pairs = [(k, e) for k in tasks for e in range(a.episodes)]
    task_of = [k for k, _ in pairs] * len(ws)
    resets = [episode_seed(_RESET_TAG, 0, k, e) for k, e in pairs] * len(ws)
    noises = [episode_seed(_NOISE_TAG, 0, k, e) for k, e in pairs] * len(ws)
    subs = [episode_seed(_SUBGOAL_TAG, 0, k, e) for k, e in pairs] * len(ws)
    w_of = np.repeat(ws, len(pairs))
    if gc_policies.is_hierarchical(agent):
        w_of = np.stack([w_of, w_of], 1)  # (w_high, w_low): the joint sweep
    n = len(task_of)
    pick = np.linspace(0, n - 1, min(a.seq_episodes, n)).astype(int)
    lock, seq = [], []
    for r in range(a.rounds):
        t = time.perf_counter()
        act = policy_act_fn(agent, w_of, noises, subs)
        run_gc_lockstep(a.env, task_of, resets, act, a.max_steps, desc="")
        lock.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in pick:
            run_gc_lockstep(
                a.env,
                [task_of[i]],
                [resets[i]],
                policy_act_fn(agent, w_of[[i]], [noises[i]], [subs[i]]),
                a.max_steps,
                desc="",
            )
        seq.append((time.perf_counter() - t) * n / len(pick))
        print(f"round {r}: lockstep {lock[-1]:.2f} s, sequential (scaled to {n} episodes) {seq[-1]:.2f} s")
    print(
        f"{a.env} {type(agent).__name__}: {n} episodes x {a.max_steps} steps "
        f"({len(tasks)} tasks x {a.episodes} episodes x {len(ws)} w), hidden {p.train_gc.hidden}, "
        f"{p.train_gc.flow_steps} flow steps, torch threads {p.runtime.threads or 'all'}"
    )
    print(f"CPU: {cpu_model()}")
    print(f"lockstep {min(lock):.2f} s, sequential {min(seq):.2f} s: {min(seq) / min(lock):.1f}x faster")


if __name__ == "__main__":
    main()
