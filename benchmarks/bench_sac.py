"""Speed of the SAC data collection (params `dataset.collect.behaviour: sac_replay`, datasets/sac_replay.py):
ms per SAC update (eager and torch.compile'd, random minibatches) and env steps per second of the whole
collection loop (env step + action + update) at the params' sizes, one torch thread as the stage runs.

With `--cleanrl DIR` (a checkout of vwxyzjn/cleanrl, its `tyro` and `tensorboard` importable), it also
runs cleanrl's `cleanrl/sac_continuous_action.py` on the same env (registered as a gymnasium id by
envs/dmc.py), same network sizes (its fixed 256x2), one torch thread, and reads the env steps per second
it prints. cleanrl makes one critic update per env step and two actor updates every second step, so it
is compared with our loop at `update_every 1`.

Run by hand on an otherwise idle machine (not in CI); compare numbers of one run only:
    .venv/bin/python benchmarks/bench_sac.py [--env walker-run] [--steps 3000] [--cleanrl /path/to/cleanrl]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import torch
from bench_updates import hardware  # benchmarks/, the script's directory

from pipeline_steps.algorithms.sac import SAC
from pipeline_steps.core.params import load_params
from pipeline_steps.datasets.sac_replay import collect_replay
from pipeline_steps.envs.dmc import make_env

CLEANRL_LAUNCH = """
import runpy, sys
import gymnasium as gym
import numpy as np
import torch
from pipeline_steps.envs.dmc import register_all

register_all()  # cfgrl/<domain>-<task>-v0
torch.set_num_threads(1)


class SyncVectorEnv:
    # gymnasium 0.29's SyncVectorEnv as cleanrl's script reads it (final_observation / final_info on the
    # step that ends an episode, then an automatic reset); gymnasium >= 1 moved the reset to the next step
    def __init__(self, thunks):
        (self.env,) = [t() for t in thunks]
        self.num_envs = 1
        self.single_observation_space = self.env.observation_space
        self.single_action_space = self.env.action_space
        self.observation_space = gym.vector.utils.batch_space(self.env.observation_space, 1)
        self.action_space = gym.vector.utils.batch_space(self.env.action_space, 1)

    def reset(self, seed=None):
        obs, info = self.env.reset(seed=seed[0] if isinstance(seed, list) else seed)
        return obs[None], {}

    def step(self, actions):
        obs, r, term, trunc, info = self.env.step(actions[0])
        infos = {}
        if term or trunc:
            infos = {"final_observation": [obs], "final_info": [info]}
            obs, _ = self.env.reset()
        return obs[None], np.array([r]), np.array([term]), np.array([trunc]), infos

    def close(self):
        self.env.close()


gym.vector.SyncVectorEnv = SyncVectorEnv
runpy.run_path(SCRIPT, run_name="__main__")
"""


def ms_per_update(obs_dim: int, act_dim: int, cfg, compile_: bool, steps: int) -> float:
    agent = SAC(obs_dim, act_dim, cfg, compile=compile_)
    g = torch.Generator().manual_seed(0)
    B = cfg.batch_size
    batches = [
        {
            "obs": torch.randn(B, obs_dim, generator=g),
            "act": torch.rand(B, act_dim, generator=g) * 2 - 1,
            "rew": torch.rand(B, generator=g),
            "next_obs": torch.randn(B, obs_dim, generator=g),
            "mask": torch.ones(B),
        }
        for _ in range(8)
    ]
    for i in range(20):  # warm-up (and compilation)
        agent.update(batches[i % 8], g)
    start = time.perf_counter()
    for i in range(steps):
        agent.update(batches[i % 8], g)
    return 1000 * (time.perf_counter() - start) / steps


def steps_per_second(env: str, collect_cfg, compile_: bool, update_every: int, steps: int) -> float:
    """Env steps per second of collect_replay while SAC learns: 1000 random steps, then `steps` learning
    ones, timed from the end of the first learning episode (start-up and compilation excluded) to the end."""
    from pipeline_steps.datasets import sac_replay

    sac = collect_cfg.sac.model_copy(update={"random_steps": 1000, "update_every": update_every})
    cfg = collect_cfg.model_copy(update={"transitions": 1000 + steps, "sac": sac})
    clock = {}
    log_step = sac_replay.tracking.log_step
    sac_replay.tracking.log_step = lambda row: clock.setdefault(row["step"], time.perf_counter())
    try:
        collect_replay(env, cfg, seed=0, compile=compile_)
    finally:
        sac_replay.tracking.log_step = log_step
    return (1000 + steps - 2000) / (clock[1000 + steps] - clock[2000])


def cleanrl_steps_per_second(cleanrl: str, env: str, steps: int, batch_size: int) -> float:
    """cleanrl's SPS prints (global step / seconds since start, every 100 steps once learning starts at
    step 1000) turned into the env steps per second of its learning phase."""
    script = os.path.join(cleanrl, "cleanrl", "sac_continuous_action.py")
    args = [f"--env-id=cfgrl/{env}-v0", f"--total-timesteps={1000 + 2 * steps}", "--learning-starts=1000"]
    args += [f"--batch-size={batch_size}", "--no-cuda", "--seed=0"]
    env_vars = dict(os.environ, PYTHONPATH=os.pathsep.join([cleanrl, os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:  # its tensorboard logs
        out = subprocess.run(
            [sys.executable, "-c", CLEANRL_LAUNCH.replace("SCRIPT", repr(script)), *args],
            capture_output=True,
            text=True,
            env=env_vars,
            cwd=tmp,
            check=True,
        ).stdout
    sps = [int(x) for x in re.findall(r"SPS: (\d+)", out)]
    at = [1100 + 100 * i for i in range(len(sps))]  # global steps of the prints
    t = [s / r for s, r in zip(at, sps)]
    k = len(sps) // 3  # from a third of the way in (its first updates are as costly as later ones)
    return (at[-1] - at[k]) / (t[-1] - t[k])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--env", default="walker-run")
    ap.add_argument(
        "--steps", type=int, default=3000, help="learning env steps of each collection run (>= 2000)"
    )
    ap.add_argument("--updates", type=int, default=500, help="timed updates of the ms-per-update measure")
    ap.add_argument("--cleanrl", help="a cleanrl checkout: also run its sac_continuous_action.py")
    args = ap.parse_args()
    collect_cfg = load_params(args.params).dataset.collect
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    env = make_env(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    print(f"cpu: {hardware('cpu')}")
    sac = collect_cfg.sac
    print(f"{args.env}: obs {obs_dim}, act {act_dim}; SAC hidden {sac.hidden}, batch {sac.batch_size}")
    for batch in sorted({sac.batch_size, 256}):
        cfg = sac.model_copy(update={"batch_size": batch})
        for compile_ in (False, True):
            ms = ms_per_update(obs_dim, act_dim, cfg, compile_, args.updates)
            print(f"ms per SAC update, batch {batch} ({'compiled' if compile_ else 'eager'}): {ms:.2f}")
    sps = steps_per_second(args.env, collect_cfg, True, 2, args.steps)
    print(f"collect_replay env steps/s, batch {sac.batch_size} (compiled, update_every 2): {sps:.0f}")
    if args.cleanrl:
        for batch in sorted({sac.batch_size, 256}):
            sps = cleanrl_steps_per_second(args.cleanrl, args.env, args.steps, batch)
            print(
                f"cleanrl sac_continuous_action.py env steps/s, batch {batch} (update every step): {sps:.0f}"
            )
            cfg = collect_cfg.model_copy(update={"sac": sac.model_copy(update={"batch_size": batch})})
            sps = steps_per_second(args.env, cfg, True, 1, args.steps)
            print(f"collect_replay env steps/s, batch {batch} (compiled, update_every 1): {sps:.0f}")


if __name__ == "__main__":
    main()
