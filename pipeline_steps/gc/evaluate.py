"""Stage `gc_evaluate`: success rates on OGBench's evaluation tasks, CFGRL and HCFGRL at every w beside
the baselines.

Every (task, episode, w) of CFGRL runs in lockstep as one batch: one network call per flow step for
all envs and both guidance branches (`GCFlow.sample_actions` with a per-env w), the envs stepped
together; flow GCBC, Gaussian GCBC and (for mazes) the noisy data policy that made the dataset each
run as one more lockstep batch on the same start states. HCFGRL runs its settings as one batch the
same way (per env a (w_high, w_low): the joint sweep w_high = w_low over guidance_ws, then the
off-diagonal pairs of level_ws x level_ws), then flow HGCBC and Gaussian HGCBC. Start states, goals and
flow noise depend on (seed, task, episode) only, so every w and every method sees the same ones
(common random numbers: the action noise of step t is the same draw for the flat and the hierarchical
flows; the subgoal noise comes from a stream of its own) and the batch returns what a sequential loop
over the same seeds returns. Success is
`info["success"]` at the last step (episodes end at the first success or at the env's step limit);
per task and over all tasks with Wilson 95% intervals.

Writes to data/gc_evaluate/<env>/seed<seed>/:
  episodes.csv      method, w, w_low, task, episode, seed, success, length (one row per episode; w is
                    HCFGRL's w_high and w_low its low level's, NaN for the flat methods)
  summary.csv       per method / w / w_low / task (and task 'all'): success rate, 95% interval, episodes
  trajectories.npz  episode 0 of every task at each `trajectory_ws` (task<k>_w=<w>, task<k>_goal): the
                    agent's xy (mazes) or the first cube's xy (cube), and the goal's; HCFGRL's at the
                    same joint w (task<k>_hcfgrl_w=<w>) with the subgoal it sampled at every step
                    (task<k>_hcfgrl_w=<w>_subgoals, [T, G] in the oracle representation)
  metrics.json      overall success per setting (DVC metrics), CFGRL's and HCFGRL's best w, sweep seconds
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
from pipeline_steps.core.params import GC_ALGOS, HIER_ALGOS, Params
from pipeline_steps.core.rollouts import NoiseStreams
from pipeline_steps.core.stats import wilson
from pipeline_steps.datasets.oracle import MemoSubgoal, noisy_oracle_action
from pipeline_steps.envs import ogbench_gc

log = logging.getLogger(__name__)
_RESET_TAG, _NOISE_TAG, _SUBGOAL_TAG = (
    17,
    18,
    19,
)  # evaluation seeds, apart from the dataset's and dm_control's

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


def policy_act_fn(
    agent,
    ws: np.ndarray | None,
    noise_seeds: list[int],
    subgoal_seeds: list[int] | None = None,
    subgoals: dict | None = None,
) -> GcActFn:
    """Env i samples with guidance ws[i] (None: the policy's own sampler; [N, 2]: a hierarchical policy's
    (w_high, w_low)) and its own action-noise stream (seeded noise_seeds[i]: the same stream for every
    method). A hierarchical policy draws its subgoal noise from a second stream (subgoal_seeds[i]), and
    the subgoal it samples for each env whose index is a key of `subgoals` is appended to that env's
    list there, one per control step."""
    dev = module_device(agent)  # the policy's device; the physics stays on the CPU
    streams = NoiseStreams(noise_seeds, agent.act_dim, device=dev)
    hierarchical = gc_policies.is_hierarchical(agent)
    if hierarchical:
        sub_streams = NoiseStreams(subgoal_seeds, agent.goal_dim, device=dev)
    n = len(noise_seeds)
    w_all = torch.zeros(n, 2) if ws is None else torch.as_tensor(ws, dtype=torch.float32).reshape(n, -1)
    O, k = agent.obs_norm.mean.shape[0], w_all.shape[1]

    def act(obs, goals, idx):
        batch = torch.cat([obs, goals, w_all[idx]], 1).to(dev)  # [n, O + G + k]: one copy per step
        o, g, w = batch[:, :O], batch[:, O:-k], (None if ws is None else batch[:, -k:])
        if not hierarchical:
            return agent.sample_actions(o, g, None if w is None else w[:, 0], noise=streams.next(idx)).cpu()
        noise = torch.cat([sub_streams.next(idx), streams.next(idx)], 1)  # [n, G + A]: z_0, x_0
        w_low = None if w is None or k == 1 else w[:, 1]
        a, z = agent.sample(o, g, None if w is None else w[:, 0], w_low, noise=noise)
        if subgoals:
            z = z.cpu().numpy()
            for j, i in enumerate(idx):
                if i in subgoals:
                    subgoals[i].append(z[j])
        return a.cpu()

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
    """Per (method, w, w_low) and task, and over all tasks ('all'): success rate with its Wilson interval."""
    rows = []
    for (method, w, w_low), g in episodes.groupby(["method", "w", "w_low"], sort=False, dropna=False):
        for task, h in [*g.groupby("task"), ("all", g)]:
            s = h["success"].to_numpy()
            lo, hi = wilson(s.sum(), len(s))
            rows.append(
                {
                    "method": method,
                    "w": w,
                    "w_low": w_low,
                    "task": str(task),
                    "episodes": len(s),
                    "success": s.mean(),
                    "success_lo": lo,
                    "success_hi": hi,
                }
            )
    return pd.DataFrame(rows)


def setting_name(method: str, w: float, w_low: float = float("nan")) -> str:
    """cfgrl/w=3, hcfgrl/w=3 (the same w at both levels), hcfgrl/w_high=1,w_low=3, or the method."""
    if method == "hcfgrl" and w != w_low:
        return f"{method}/w_high={w:g},w_low={w_low:g}"
    return f"{method}/w={w:g}" if method in ("cfgrl", "hcfgrl") else method


def hcfgrl_settings(cfg) -> list[tuple[float, float]]:
    """HCFGRL's (w_high, w_low): the joint sweep (w, w) over guidance_ws, then the off-diagonal pairs of
    the level_ws grid (its diagonal is in the joint sweep when level_ws lie in guidance_ws)."""
    joint = [(w, w) for w in cfg.guidance_ws]
    return joint + [(a, b) for a in cfg.level_ws for b in cfg.level_ws if (a, b) not in joint]


def best_w(overall: pd.DataFrame, method: str) -> float:
    """The w of the method's highest overall success (HCFGRL: over its joint sweep, w_high = w_low; ties:
    the last in the sweep's order)."""
    joint = overall.w_low.isna() | (overall.w_low == overall.w)
    c = overall[(overall.method == method) & joint]
    return float(c.sort_values("success", kind="stable").w.iloc[-1])


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
    subgoal_seeds = [episode_seed(_SUBGOAL_TAG, seed, k, e) for k, e in pairs]
    m = len(pairs)
    # trajectories: episode 0 of every task at each trajectory w (w-major batch index); HCFGRL's joint
    # sweep comes first in its batch, in the same order, so the same indices record its paths
    traj = {(k, w): ws.index(w) * m + pairs.index((k, 0)) for k in tasks for w in cfg.trajectory_ws}
    record = list(traj.values())

    tables, timing = [], {}  # (method, w [n], w_low [n], success [n], lengths [n])

    def sweep(method, settings: np.ndarray | None = None, record=(), subgoals=None, act=None):
        """One lockstep batch of the method over its settings ([S] w, [S, 2] (w_high, w_low) or None),
        acting by its policy (or by `act`, the data policy's)."""
        S = 1 if settings is None else len(settings)
        w = None if settings is None else np.repeat(settings, m, 0)  # [S m] or [S m, 2]
        act = act or policy_act_fn(agents[method], w, noise_seeds * S, subgoal_seeds * S, subgoals)
        t0 = time.perf_counter()
        desc = f"gc_evaluate {env} seed{seed} {method}" + (f" x {S} settings" if S > 1 else "")
        s, l, xy = run_gc_lockstep(env, task_of * S, reset_seeds * S, act, cfg.max_steps, record, desc)
        timing[f"{method}_sweep_seconds"] = time.perf_counter() - t0
        w = np.full((S * m, 2), np.nan) if w is None else w.reshape(S * m, -1)
        tables.append((method, w[:, 0], w[:, -1] if method in HIER_ALGOS else np.full(S * m, np.nan), s, l))
        return xy

    xy = sweep("cfgrl", np.asarray(ws), record)
    for method in ("flow_gcbc", "gcbc"):
        sweep(method)
    if cfg.data_policy and env.startswith("pointmaze"):  # the scripted point oracle (not the ant experts)
        sweep("data_policy", act=data_policy_act_fn(env, params.gc_dataset.generate.maze_noise, noise_seeds))
    subgoals = {i: [] for i in record}  # HCFGRL's sampled subgoal per control step of the recorded episodes
    hxy = sweep("hcfgrl", np.asarray(hcfgrl_settings(cfg)), record, subgoals)
    for method in ("flow_hgcbc", "hgcbc"):
        sweep(method)
    episodes = pd.concat(
        [
            pd.DataFrame(
                {
                    "method": method,
                    "w": w,
                    "w_low": w_low,
                    "task": np.tile(task_of, len(s) // m),
                    "episode": np.tile([e for _, e in pairs], len(s) // m),
                    "seed": seed,
                    "success": s,
                    "length": l,
                }
            )
            for method, w, w_low, s, l in tables
        ],
        ignore_index=True,
    )
    summary = summarize(episodes)
    overall = summary[summary.task == "all"]
    metrics = {
        **{
            setting_name(r.method, r.w, r.w_low): {
                "success": r.success,
                "success_lo": r.success_lo,
                "success_hi": r.success_hi,
            }
            for r in overall.itertuples()
        },
        **{f"{method}_best_w": best_w(overall, method) for method in ("cfgrl", "hcfgrl")},
        "timing": timing,
    }
    save_npz_atomic(  # per task, the paths of its episode 0 (same start and goal) at each trajectory w
        out_dir / "trajectories.npz",
        **{f"task{k}_w={w:g}": xy[i][0] for (k, w), i in traj.items()},
        **{f"task{k}_goal": xy[traj[k, cfg.trajectory_ws[0]]][1] for k in tasks},
        **{f"task{k}_hcfgrl_w={w:g}": hxy[i][0] for (k, w), i in traj.items()},  # [T + 1, 2]
        **{f"task{k}_hcfgrl_w={w:g}_subgoals": np.stack(subgoals[i]) for (k, w), i in traj.items()},  # [T, G]
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
