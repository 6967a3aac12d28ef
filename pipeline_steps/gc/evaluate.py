"""Stage `gc_evaluate`: success rates on OGBench's evaluation tasks, CFGRL at every w beside the baselines.

Every (task, episode, w) of CFGRL runs in lockstep as one batch: one network call per flow step for
all envs and both guidance branches (`GCFlow.sample_actions` with a per-env w), the envs stepped
together; flow GCBC, Gaussian GCBC and (for mazes) the noisy data policy that made the dataset each
run as one more lockstep batch on the same start states. Start states, goals and flow noise depend
on (seed, task, episode) only, so every w sees the same ones (common random numbers) and the batch
returns what a sequential loop over the same seeds returns. Success is `info["success"]` at the last
step (episodes end at the first success or at the env's step limit); per task and over all tasks
with Wilson 95% intervals.

Writes to data/gc_evaluate/<env>/seed<seed>/:
  episodes.csv      method, w, task, episode, success, length (one row per episode)
  summary.csv       per method / w / task (and task 'all'): success rate, 95% interval, episodes
  trajectories.npz  episode 0 of every task at each `trajectory_ws` (task<k>_w=<w>, task<k>_goal): the
                    agent's xy (mazes) or the first cube's xy (cube), and the goal's
  metrics.json      overall success per setting (DVC metrics), CFGRL's best w, sweep seconds
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.core import paths, stage
from pipeline_steps.core.device import module_device, setup_torch
from pipeline_steps.core.io import clear_outputs, save_npz_atomic, write_csv_atomic, write_json_atomic
from pipeline_steps.core.params import GC_ALGOS, Params
from pipeline_steps.core.rollouts import NoiseStreams
from pipeline_steps.core.stats import wilson
from pipeline_steps.datasets.oracle import MemoSubgoal, noisy_oracle_action
from pipeline_steps.envs import ogbench_gc

log = logging.getLogger(__name__)
_RESET_TAG, _NOISE_TAG = 17, 18  # evaluation seeds, separate from the dataset's and dm_control's

# (obs [n, O], goals [n, G], env indices [n]) -> actions [n, A]
GcActFn = Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]


def episode_seed(tag: int, seed: int, task: int, episode: int) -> int:
    return int(np.random.SeedSequence([tag, seed, task, episode]).generate_state(1, np.uint32)[0])


def run_gc_lockstep(
    name: str,
    tasks: list[int],
    reset_seeds: list[int],
    act: GcActFn,
    max_steps: int = 0,
    record=(),
    desc=None,
):
    """Reset one env per (task, reset seed), then call act(obs, goals, idx) once per control step for all
    still-running envs and step them. Returns (success [N] float, lengths [N], {i: (path [T+1, 2], goal
    [2])} for the env indices in `record`, as ogbench_gc.state_xy draws them). OGBench's resets draw from
    np.random: it is seeded per env before its reset."""
    envs = [ogbench_gc.make_gc_env(name) for _ in tasks]
    obs, goals = [], []
    for env, task, s in zip(envs, tasks, reset_seeds):
        np.random.seed(s)
        env.action_space.seed(s)
        ob, info = env.reset(seed=s, options=dict(task_id=task))
        obs.append(ob)
        goals.append(info["goal"])
    obs, goals = np.stack(obs).astype(np.float32), torch.from_numpy(np.stack(goals).astype(np.float32))
    n = len(envs)
    success, lengths = np.zeros(n), np.zeros(n, np.int64)
    paths_xy = {i: [ogbench_gc.state_xy(envs[i])] for i in record}
    running = np.arange(n)
    quiet = {"disable": True} if desc == "" else {}  # the sequential reference runs silently
    with tqdm(total=n, desc=desc or f"gc_evaluate {name}", unit="episode", mininterval=2.0, **quiet) as bar:
        while len(running):
            actions = act(torch.from_numpy(obs[running]), goals[running], running).numpy()  # [n_running, A]
            still = []
            for j, i in enumerate(running):
                obs[i], _, terminated, truncated, info = envs[i].step(actions[j])
                lengths[i] += 1
                success[i] = info["success"]
                if i in paths_xy:
                    paths_xy[i].append(ogbench_gc.state_xy(envs[i]))
                if terminated or truncated or (max_steps and lengths[i] >= max_steps):
                    bar.update(1)
                else:
                    still.append(i)
            running = np.asarray(still, np.int64)
    for env in envs:
        env.close()
    return (
        success,
        lengths,
        {i: (np.stack(v), goals[i, :2].numpy().astype(np.float64)) for i, v in paths_xy.items()},
    )


def run_gc_sequential(name: str, tasks: list[int], reset_seeds: list[int], act: GcActFn, max_steps: int = 0):
    """The reference: the same episodes one at a time (batch of one), through the same code path."""
    results = [
        run_gc_lockstep(name, [k], [s], lambda o, g, idx, i=i: act(o, g, np.array([i])), max_steps, desc="")
        for i, (k, s) in enumerate(zip(tasks, reset_seeds))
    ]
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def policy_act_fn(agent, ws: np.ndarray | None, noise_seeds: list[int]) -> GcActFn:
    """Env i samples with guidance ws[i] (None: the policy's own sampler) and its own noise stream."""
    dev = module_device(agent)  # the policy's device; the physics stays on the CPU
    streams = NoiseStreams(noise_seeds, agent.act_dim, device=dev)
    w_all = torch.zeros(len(noise_seeds)) if ws is None else torch.as_tensor(ws, dtype=torch.float32)
    O = agent.obs_norm.mean.shape[0]

    def act(obs, goals, idx):
        batch = torch.cat([obs, goals, w_all[idx][:, None]], 1).to(dev)  # [n, O + G + 1]: one copy per step
        w = None if ws is None else batch[:, -1]
        return agent.sample_actions(batch[:, :O], batch[:, O:-1], w, noise=streams.next(idx)).cpu()

    return act


def data_policy_act_fn(name: str, noise: float, noise_seeds: list[int]) -> GcActFn:
    """The noisy maze oracle that made the dataset (datasets/oracle.py), acting towards the
    evaluation goal: the ceiling to read the learned policies against."""
    env = ogbench_gc.make_gc_env(name)
    subgoal = MemoSubgoal(env.unwrapped)
    rngs = [np.random.default_rng(s) for s in noise_seeds]

    def act(obs, goals, idx):
        out = []
        for xy, g, i in zip(obs.numpy()[:, :2], goals.numpy(), idx):
            out.append(noisy_oracle_action(subgoal, xy, g, noise, rngs[i]))
        return torch.from_numpy(np.stack(out).astype(np.float32))

    return act


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (method, w) and task, and over all tasks ('all'): success rate with its Wilson interval."""
    rows = []
    for (method, w), g in episodes.groupby(["method", "w"], sort=False, dropna=False):
        for task, h in [*g.groupby("task"), ("all", g)]:
            s = h["success"].to_numpy()
            lo, hi = wilson(s.sum(), len(s))
            rows.append(
                {
                    "method": method,
                    "w": w,
                    "task": str(task),
                    "episodes": len(s),
                    "success": s.mean(),
                    "success_lo": lo,
                    "success_hi": hi,
                }
            )
    return pd.DataFrame(rows)


def setting_name(method: str, w: float) -> str:
    return f"{method}/w={w:g}" if method == "cfgrl" else method


def run(params: Params, env: str, seed: int, policy_paths: dict[str, Path], out_dir: Path) -> pd.DataFrame:
    cfg = params.gc_evaluate
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("episodes.csv", "summary.csv", "trajectories.npz", "metrics.json"))
    dev = setup_torch(seed, params.runtime).device
    agents = {algo: gc_policies.from_checkpoint(policy_paths[algo], dev) for algo in GC_ALGOS}
    probe = ogbench_gc.make_gc_env(env)
    ob, info = probe.reset(seed=0, options=dict(task_id=1))
    want = (ob.shape[0], np.asarray(info["goal"]).shape[0], probe.action_space.shape[0])
    probe.close()
    for algo, agent in agents.items():
        got = (agent.obs_norm.mean.shape[0], agent.goal_dim, agent.act_dim)
        if got != want:
            raise ValueError(
                f"{policy_paths[algo]}: trained for observation / goal / action sizes {got}, "
                f"but {env} has {want}"
            )
    ws, tasks, n_ep = cfg.guidance_ws, cfg.tasks, cfg.episodes
    pairs = [(k, e) for k in tasks for e in range(n_ep)]  # task-major
    task_of = [k for k, _ in pairs]
    reset_seeds = [episode_seed(_RESET_TAG, seed, k, e) for k, e in pairs]
    noise_seeds = [episode_seed(_NOISE_TAG, seed, k, e) for k, e in pairs]
    m = len(pairs)
    # trajectories: episode 0 of every task at each trajectory w (w-major batch index)
    traj = {(k, w): ws.index(w) * m + pairs.index((k, 0)) for k in tasks for w in cfg.trajectory_ws}
    record = list(traj.values())

    tables, timing = [], {}
    t0 = time.perf_counter()
    succ, lens, xy = run_gc_lockstep(
        env,
        task_of * len(ws),
        reset_seeds * len(ws),
        policy_act_fn(agents["cfgrl"], np.repeat(ws, m), noise_seeds * len(ws)),
        cfg.max_steps,
        record=record,
        desc=f"gc_evaluate {env} seed{seed} cfgrl x {len(ws)} w",
    )
    timing["cfgrl_sweep_seconds"] = time.perf_counter() - t0
    tables.append(("cfgrl", np.repeat(ws, m), succ, lens))
    baselines = [
        ("flow_gcbc", policy_act_fn(agents["flow_gcbc"], None, noise_seeds)),
        ("gcbc", policy_act_fn(agents["gcbc"], None, noise_seeds)),
    ]
    if cfg.data_policy and env.startswith("pointmaze"):  # the scripted point oracle (not the ant experts)
        baselines.append(
            ("data_policy", data_policy_act_fn(env, params.gc_dataset.generate.maze_noise, noise_seeds))
        )
    for method, act in baselines:
        t0 = time.perf_counter()
        s, l, _ = run_gc_lockstep(
            env, task_of, reset_seeds, act, cfg.max_steps, desc=f"gc_evaluate {env} seed{seed} {method}"
        )
        timing[f"{method}_sweep_seconds"] = time.perf_counter() - t0
        tables.append((method, np.full(m, np.nan), s, l))
    episodes = pd.concat(
        [
            pd.DataFrame(
                {
                    "method": method,
                    "w": w,
                    "task": np.tile(task_of, len(s) // m),
                    "episode": np.tile([e for _, e in pairs], len(s) // m),
                    "seed": seed,
                    "success": s,
                    "length": l,
                }
            )
            for method, w, s, l in tables
        ],
        ignore_index=True,
    )
    summary = summarize(episodes)
    overall = summary[summary.task == "all"]
    cf = overall[overall.method == "cfgrl"]
    metrics = {
        **{
            setting_name(r.method, r.w): {
                "success": r.success,
                "success_lo": r.success_lo,
                "success_hi": r.success_hi,
            }
            for r in overall.itertuples()
        },
        "cfgrl_best_w": float(cf.sort_values("success", kind="stable").w.iloc[-1]),
        "timing": timing,
    }
    save_npz_atomic(  # per task, the paths of its episode 0 (same start and goal) at each trajectory w
        out_dir / "trajectories.npz",
        **{f"task{k}_w={w:g}": xy[i][0] for (k, w), i in traj.items()},
        **{f"task{k}_goal": xy[traj[k, cfg.trajectory_ws[0]]][1] for k in tasks},
    )
    write_json_atomic(metrics, out_dir / "metrics.json")
    write_csv_atomic(summary, out_dir / "summary.csv")
    write_csv_atomic(episodes, out_dir / "episodes.csv")  # last: what gc_plot reads
    log.info("gc_evaluate %s seed%d:\n%s", env, seed, overall.to_string(index=False))
    return summary


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/gc_evaluate/<env>/seed<seed>"),
):
    """Success rates of goal-conditioned CFGRL at every w, flow GCBC, Gaussian GCBC and the data policy."""
    p = stage.load_gc(params, env, seed)
    out_dir = out or paths.gc_evaluate_dir(env, seed)
    policies = {algo: paths.train_gc_dir(env, algo, seed) / "policy.pt" for algo in GC_ALGOS}
    stage.tracked("gc_evaluate", p, out_dir, lambda: run(p, env, seed, policies, out_dir), env=env, seed=seed)


if __name__ == "__main__":
    stage.cli(main)
