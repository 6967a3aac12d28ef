"""Stage `gc_plot`: figures and the results table of one goal-conditioned env, over all seeds.

Reads data/gc_evaluate/<env>/seed*/episodes.csv (+ trajectories.npz). Writes to data/gc_plots/<env>/:
  success_vs_w.png       left: CFGRL's success vs w, per evaluation task and the mean over tasks (95%
                         band), HCFGRL's mean over tasks at the same w at both levels (95% band), with
                         flow GCBC, Gaussian GCBC, flow HGCBC, Gaussian HGCBC and the data policy as
                         reference lines; right: HCFGRL's success over its (w_high, w_low) grid
  trajectories.png       per task, the path of episode 0 (first seed) at each trajectory w: the
                         agent in the maze, or the first cube's xy
  hier_trajectories.png  the same episodes for HCFGRL, with the subgoal it sampled every
                         SUBGOAL_EVERY steps (mazes: a line from the agent to its subgoal's xy)
  results.csv            per method / w / w_low / task: success rate, over seeds (mean of per-seed
                         rates, 95% t-interval across seeds, clipped to [0, 1]) or, with one seed, over
                         episodes (Wilson interval)
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
LABELS = {
    "flow_gcbc": "flow GCBC",
    "gcbc": "Gaussian GCBC",
    "flow_hgcbc": "flow HGCBC",
    "hgcbc": "Gaussian HGCBC",
    "data_policy": "data policy (noisy oracle)",
}
SUBGOAL_EVERY = 50  # hier_trajectories.png: a subgoal drawn every this many control steps


def results(episodes: pd.DataFrame) -> pd.DataFrame:
    """Success per (method, w, task) and over all tasks: across seeds when there are several."""
    rows = []
    if "w_low" not in episodes:  # made before the hierarchical policies: flat methods only
        episodes = episodes.assign(w_low=np.nan)
    ep = pd.concat([episodes, episodes.assign(task="all")], ignore_index=True)
    ep["task"] = ep["task"].astype(str)
    for (method, w, w_low, task), g in ep.groupby(["method", "w", "w_low", "task"], dropna=False):
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
                "w_low": w_low,
                "task": task,
                "seeds": len(per_seed),
                "episodes": len(g),
                "success": per_seed.mean(),
                "success_lo": lo,
                "success_hi": hi,
                "ci_over": over,
            }
        )
    return pd.DataFrame(rows).sort_values(["method", "task", "w", "w_low"]).reset_index(drop=True)


def joint(res: pd.DataFrame, method: str) -> pd.DataFrame:
    """The method's rows at one w for every level: CFGRL's, or HCFGRL's with w_high = w_low."""
    return res[(res.method == method) & (res.w_low.isna() | (res.w_low == res.w))]


def draw_success_vs_w(ax, res: pd.DataFrame, env: str) -> None:
    c = res[res.method == "cfgrl"]
    for task, g in c[c.task != "all"].groupby("task"):
        ax.plot(g.w, g.success, ".-", alpha=0.45, lw=1, label=f"CFGRL task {task}")
    for method, label, color in (("cfgrl", "CFGRL", "k"), ("hcfgrl", "HCFGRL (same w at both levels)", "C4")):
        m = joint(res, method)
        m = m[m.task == "all"].sort_values("w")
        if len(m):
            ax.plot(m.w, m.success, "o-", color=color, lw=2, label=f"{label}, mean over tasks")
            ax.fill_between(m.w, m.success_lo, m.success_hi, color=color, alpha=0.15)
    for (method, label), (color, ls) in zip(
        LABELS.items(), (("C3", "--"), ("C2", "--"), ("C3", ":"), ("C2", ":"), ("C7", "--"))
    ):
        b = res[(res.method == method) & (res.task == "all")]
        if len(b):
            ax.axhline(b.success.iloc[0], ls=ls, color=color, label=f"{label}: {b.success.iloc[0]:.2f}")
    ax.set(
        xlabel="guidance weight w (0 = flow BC, 1 = flow GCBC)",
        ylabel="success rate",
        title=env,
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7, loc="best")


def draw_level_grid(ax, res: pd.DataFrame) -> None:
    """HCFGRL's success over its (w_high, w_low) grid, task 'all', each cell with its rate: the axes are
    the w values of the off-diagonal settings (gc_evaluate.level_ws), the diagonal from the joint sweep."""
    h = res[(res.method == "hcfgrl") & (res.task == "all")]
    off = h[h.w != h.w_low]
    levels = sorted(set(off.w) | set(off.w_low))
    grid = h.pivot_table(index="w_low", columns="w", values="success").reindex(index=levels, columns=levels)
    im = ax.imshow(grid.to_numpy(), origin="lower", vmin=0, vmax=1, cmap="viridis")
    for (r, c), v in np.ndenumerate(grid.to_numpy()):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color="w" if v < 0.6 else "k")
    ax.set_xticks(range(len(levels)), [f"{w:g}" for w in levels])
    ax.set_yticks(range(len(levels)), [f"{w:g}" for w in levels])
    ax.set(xlabel="w_high (subgoal level)", ylabel="w_low (action level)", title="HCFGRL, mean over tasks")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="success rate")


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


def trajectories_by_task(z, prefix: str = "") -> dict[int, tuple[dict[str, np.ndarray], np.ndarray]]:
    """trajectories.npz -> {task: ({'w=3': path [T+1, 2], ...}, goal [2])}: CFGRL's paths, or with
    prefix 'hcfgrl_' HCFGRL's ({'w=3': path, 'w=3_subgoals': subgoals [T, G], ...})."""
    out = {}
    for key in z.files:
        task, _, what = key.partition("_")
        k = int(task.removeprefix("task"))
        paths_, goal = out.setdefault(k, ({}, None))
        if what == "goal":
            out[k] = (paths_, z[key])
        elif what.startswith("w=") if not prefix else what.startswith(prefix):
            paths_[what.removeprefix(prefix)] = z[key]
    return dict(sorted(out.items()))


def draw_trajectories(fig, env_name: str, by_task: dict, success: dict, label: str = "CFGRL") -> None:
    """One small panel per evaluation task: episode 0's path at each trajectory w from the same start
    to the same goal, its outcome in the legend (reached in T steps / not in T); one legend of the
    colours below the panels, outside the mazes. Where the paths come with the subgoals sampled at each
    step (HCFGRL) and the env is a maze, every SUBGOAL_EVERY-th is drawn: a thin line from the agent to
    the subgoal's xy, ending in a cross."""
    axes = fig.subplots(1, len(by_task), squeeze=False)[0]
    ws = sorted(
        {w for paths_, _ in by_task.values() for w in paths_ if not w.endswith("_subgoals")},
        key=lambda w: float(w[2:]),
    )
    colors = dict(zip(ws, ("C0", "C1", "C2", "C3", "C4", "C5")))
    for ax, (task, (paths_, goal)) in zip(axes, by_task.items()):
        draw_maze(ax, env_name)
        for w in ws:
            xy = paths_[w]
            hit = success.get((task, float(w[2:])))
            outcome = "reached" if hit else "not reached"
            ax.plot(xy[:, 0], xy[:, 1], "-", color=colors[w], lw=1.0, label=f"{w}: {outcome} ({len(xy) - 1})")
            ax.plot(*xy[0], "o", color=colors[w], ms=3)
            subgoals = paths_.get(f"{w}_subgoals")
            if subgoals is not None and names.is_maze(env_name):
                for s in range(0, len(subgoals), SUBGOAL_EVERY):  # subgoal s was sampled at state s
                    (x0, y0), (x1, y1) = xy[s], subgoals[s, :2]
                    ax.plot([x0, x1], [y0, y1], "-", color=colors[w], lw=0.5, alpha=0.7)
                    ax.plot(x1, y1, "x", color=colors[w], ms=3)
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
        handles, [f"{label} {w}" for w in ws] + ["goal"], loc="lower center", ncol=len(handles), fontsize=8
    )


def save_trajectories(path: Path, env: str, eval_dir: Path, episodes: pd.DataFrame, method: str) -> None:
    """The trajectory figure of one method ('cfgrl' or 'hcfgrl') from eval_dir's trajectories.npz and
    the episode-0 outcomes of that seed's episodes."""
    label = {"cfgrl": "CFGRL", "hcfgrl": "HCFGRL"}[method]
    with np.load(Path(eval_dir) / "trajectories.npz") as z:
        by_task = trajectories_by_task(z, "" if method == "cfgrl" else f"{method}_")
    first = joint(episodes, method)
    first = first[first.episode == 0]
    success = {(r.task, r.w): bool(r.success) for r in first.itertuples()}
    fig = plt.figure(figsize=(2.4 * len(by_task) + 0.4, 4.0))
    draw_trajectories(fig, env, by_task, success, label)
    subgoals = f", a sampled subgoal every {SUBGOAL_EVERY} steps (x)" if method == "hcfgrl" else ""
    fig.suptitle(
        f"{env}: episode 0 of each task, {Path(eval_dir).name}, {label} at each w{subgoals}", fontsize=10
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(params: Params, env: str, eval_dirs: list[Path], out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("success_vs_w.png", "trajectories.png", "hier_trajectories.png", "results.csv"))
    out_dir.mkdir(parents=True, exist_ok=True)
    per_seed = [pd.read_csv(Path(d) / "episodes.csv") for d in eval_dirs]
    res = results(pd.concat(per_seed, ignore_index=True))
    fig, (ax, ax_grid) = plt.subplots(1, 2, figsize=(11.5, 4.5), width_ratios=(1.6, 1))
    draw_success_vs_w(ax, res, env)
    draw_level_grid(ax_grid, res)
    fig.tight_layout()
    fig.savefig(out_dir / "success_vs_w.png", dpi=120)
    plt.close(fig)
    for method, name in (("cfgrl", "trajectories.png"), ("hcfgrl", "hier_trajectories.png")):
        save_trajectories(out_dir / name, env, eval_dirs[0], per_seed[0], method)  # the first seed's paths
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
    eval_dirs = [paths.gc_evaluate_dir(env, s) for s in p.gc_seeds]
    stage.tracked("gc_plot", p, out_dir, lambda: run(p, env, eval_dirs, out_dir), env=env)


if __name__ == "__main__":
    stage.cli(main)
