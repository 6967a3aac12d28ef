"""Stage `gc_plot`: figures and the results table of one goal-conditioned env, over all seeds.

Reads data/gc_evaluate/<env>/seed*/episodes.csv (+ trajectories.npz). Writes to data/gc_plots/<env>/:
  success_vs_w.png   CFGRL's success vs w, per evaluation task and the mean over tasks (95% band), with
                     flow GCBC, Gaussian GCBC and the data policy as reference lines
  trajectories.png   per task, the path of episode 0 (first seed) at each trajectory w: the
                     agent in the maze, or the first cube's xy
  results.csv        per method / w / task: success rate, over seeds (mean of per-seed rates, 95%
                     t-interval across seeds, clipped to [0, 1]) or, with one seed, over episodes
                     (Wilson interval)
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.core import paths, stage  # noqa: E402
from pipeline_steps.core.io import clear_outputs, write_csv_atomic  # noqa: E402
from pipeline_steps.core.params import Params  # noqa: E402
from pipeline_steps.core.stats import ci95, wilson  # noqa: E402
from pipeline_steps.envs import names, ogbench_gc  # noqa: E402

log = logging.getLogger(__name__)
LABELS = {"flow_gcbc": "flow GCBC", "gcbc": "Gaussian GCBC", "data_policy": "data policy (noisy oracle)"}


def results(episodes: pd.DataFrame) -> pd.DataFrame:
    """Success per (method, w, task) and over all tasks: across seeds when there are several."""
    rows = []
    ep = pd.concat([episodes, episodes.assign(task="all")], ignore_index=True)
    ep["task"] = ep["task"].astype(str)
    for (method, w, task), g in ep.groupby(["method", "w", "task"], dropna=False):
        per_seed = g.groupby("seed")["success"].mean().to_numpy()
        if len(per_seed) > 1:  # t-interval over seed means, clipped to the [0, 1] a rate lives in
            half = ci95(per_seed)
            lo, hi, over = max(0.0, per_seed.mean() - half), min(1.0, per_seed.mean() + half), "seeds"
        else:
            (lo, hi), over = wilson(g["success"].sum(), len(g)), "episodes"
        rows.append(
            {
                "method": method,
                "w": w,
                "task": task,
                "seeds": len(per_seed),
                "episodes": len(g),
                "success": per_seed.mean(),
                "success_lo": lo,
                "success_hi": hi,
                "ci_over": over,
            }
        )
    return pd.DataFrame(rows).sort_values(["method", "task", "w"]).reset_index(drop=True)


def draw_success_vs_w(ax, res: pd.DataFrame, env: str) -> None:
    c = res[res.method == "cfgrl"]
    for task, g in c[c.task != "all"].groupby("task"):
        ax.plot(g.w, g.success, ".-", alpha=0.45, lw=1, label=f"CFGRL task {task}")
    m = c[c.task == "all"].sort_values("w")
    ax.plot(m.w, m.success, "o-", color="k", lw=2, label="CFGRL, mean over tasks")
    ax.fill_between(m.w, m.success_lo, m.success_hi, color="k", alpha=0.15)
    for (method, label), color in zip(LABELS.items(), ("C3", "C2", "C7")):
        b = res[(res.method == method) & (res.task == "all")]
        if len(b):
            ax.axhline(b.success.iloc[0], ls="--", color=color, label=f"{label}: {b.success.iloc[0]:.2f}")
    ax.set(
        xlabel="guidance weight w (0 = flow BC, 1 = flow GCBC)",
        ylabel="success rate",
        title=env,
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7, loc="best")


def draw_maze(ax, env_name: str) -> None:
    """OGBench's maze walls (maze_map) as grey cells, or the axes of a cube task's first-cube xy."""
    if names.is_maze(env_name):
        env = ogbench_gc.make_gc_env(env_name)
        maze = env.unwrapped
        unit = maze._maze_unit
        for i, j in zip(*np.nonzero(maze.maze_map)):
            x, y = maze.ij_to_xy((i, j))
            ax.add_patch(plt.Rectangle((x - unit / 2, y - unit / 2), unit, unit, color="0.8"))
        env.close()
    else:
        ax.set(xlabel="cube x (oracle rep.)", ylabel="cube y (oracle rep.)")


def trajectories_by_task(z) -> dict[int, tuple[dict[str, np.ndarray], np.ndarray]]:
    """trajectories.npz -> {task: ({'w=3': path [T+1, 2], ...}, goal [2])}."""
    out = {}
    for key in z.files:
        task, _, what = key.partition("_")
        k = int(task.removeprefix("task"))
        paths_, goal = out.setdefault(k, ({}, None))
        if what == "goal":
            out[k] = (paths_, z[key])
        else:
            paths_[what] = z[key]
    return dict(sorted(out.items()))


def draw_trajectories(fig, env_name: str, by_task: dict, success: pd.DataFrame) -> None:
    """One small panel per evaluation task: episode 0's path at each trajectory w from the same start
    to the same goal, its outcome in the legend (reached in T steps / not in T); one legend of the
    colours below the panels, outside the mazes."""
    axes = fig.subplots(1, len(by_task), squeeze=False)[0]
    ws = sorted({w for paths_, _ in by_task.values() for w in paths_}, key=lambda w: float(w[2:]))
    colors = dict(zip(ws, ("C0", "C1", "C2", "C3", "C4", "C5")))
    for ax, (task, (paths_, goal)) in zip(axes, by_task.items()):
        draw_maze(ax, env_name)
        for w in ws:
            xy = paths_[w]
            hit = success.get((task, float(w[2:])))
            outcome = "reached" if hit else "not reached"
            ax.plot(xy[:, 0], xy[:, 1], "-", color=colors[w], lw=1.0, label=f"{w}: {outcome} ({len(xy) - 1})")
            ax.plot(*xy[0], "o", color=colors[w], ms=3)
        ax.plot(*goal, "*", color="r", ms=10)
        ax.set_aspect("equal")
        ax.autoscale()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"task {task}", fontsize=9)
        ax.legend(fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
    handles = [plt.Line2D([], [], color=colors[w], lw=2) for w in ws]
    handles.append(plt.Line2D([], [], marker="*", color="r", ls="", ms=10))
    fig.legend(
        handles, [f"CFGRL {w}" for w in ws] + ["goal"], loc="lower center", ncol=len(handles), fontsize=8
    )


def run(params: Params, env: str, eval_dirs: list[Path], out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("success_vs_w.png", "trajectories.png", "results.csv"))
    out_dir.mkdir(parents=True, exist_ok=True)
    per_seed = [pd.read_csv(Path(d) / "episodes.csv") for d in eval_dirs]
    res = results(pd.concat(per_seed, ignore_index=True))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw_success_vs_w(ax, res, env)
    fig.tight_layout()
    fig.savefig(out_dir / "success_vs_w.png", dpi=120)
    plt.close(fig)
    with np.load(Path(eval_dirs[0]) / "trajectories.npz") as z:
        by_task = trajectories_by_task(z)
    first = per_seed[0]  # the seed whose paths trajectories.npz holds
    first = first[(first.method == "cfgrl") & (first.episode == 0)]
    success = {(r.task, r.w): bool(r.success) for r in first.itertuples()}
    fig = plt.figure(figsize=(2.4 * len(by_task) + 0.4, 4.0))
    draw_trajectories(fig, env, by_task, success)
    fig.suptitle(f"{env}: episode 0 of each task, {Path(eval_dirs[0]).name}, CFGRL at each w", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out_dir / "trajectories.png", dpi=120)
    plt.close(fig)
    write_csv_atomic(res, out_dir / "results.csv")  # last
    return res


def main(
    env: str = stage.ENV,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/gc_plots/<env>"),
):
    """Success-vs-w and trajectory figures of one goal-conditioned env over all seeds."""
    p = stage.load_gc(params, env)
    out_dir = out or paths.gc_plots_dir(env)
    eval_dirs = [paths.gc_evaluate_dir(env, s) for s in p.seeds]
    stage.tracked("gc_plot", p, out_dir, lambda: run(p, env, eval_dirs, out_dir), env=env)


if __name__ == "__main__":
    stage.cli(main)
