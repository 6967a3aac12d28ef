"""Stage `plot`: PNG figures of one env, built only from the stage output files.

Reads data/evaluate/<env>/seed*/summary.csv + episodes.csv, data/evaluate_extraction/<env>/seed*/
episodes.csv, data/dataset/<env>/stats.json, data/label/<env>/seed*/labels.npz + metrics.json,
data/train_{awr,awf}/<env>/seed*/train_log.csv and data/train_cfgrl/<env>/seed*/metrics.json.
Writes to data/plots/<env>/:
  return_vs_w.png            CFGRL return vs w (symlog axis, 95% CI band, one dot per seed), AWR's and
                             advantage-weighted flow's return vs 1/beta on the same axis, reference
                             lines for the dataset's mean return and flow BC (w = 0); OGBench
                             single-task envs: the success rate instead (their reported metric)
  drift_vs_w.png             E||a_w - a_0||^2: how far pi_w moves from flow BC
  return_vs_drift.png        return vs that drift, one point per w: the improvement / conservatism
                             trade-off guidance controls (per-seed points beside the mean)
  advantage_hist.png         advantages with the label threshold (label metrics.json threshold_value)
  weight_concentration.png   AWR weight ESS fraction / top-1% share over training vs CFGRL's loss weights
  training_curves.png        losses of the label, train_cfgrl, train_awr and train_awf stages over training
  return_over_training.png   the periodic evaluation during training (train_cfgrl / train_awr eval_every)
  extraction.png             rejection sampling (IFQL argmax over N, resampling over alpha) and FQL over
                             alpha beside CFGRL's and AWR's lines (data/evaluate_extraction)
  results.csv                the numbers behind return_vs_w.png (mean and 95% CI per setting; success_*
                             columns too where the env reports success)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: E402

from pipeline_steps.core import paths, stage, stage_shapes  # noqa: E402
from pipeline_steps.core.figures import draw_return_vs_w, metric, save  # noqa: E402
from pipeline_steps.core.io import clear_outputs, write_csv_atomic  # noqa: E402
from pipeline_steps.core.params import Params  # noqa: E402
from pipeline_steps.core.stats import ci95  # noqa: E402

log = logging.getLogger(__name__)


def aggregate(episodes: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI per (method, setting) of the return (and the success, where episodes have it):
    over episodes with one seed, over seed means with several."""
    values = ["return"] + (["success"] if "success" in episodes else [])
    rows = []
    for (method, setting), g in episodes.groupby(["method", "setting"]):
        n_seeds = g.seed.nunique()
        row = {"method": method, "setting": setting, "seeds": n_seeds}
        for v in values:
            x = g.groupby("seed")[v].mean().to_numpy() if n_seeds > 1 else g[v].to_numpy()
            row |= {f"{v}_mean": x.mean(), f"{v}_ci95": ci95(x)}
        row["ci_over"] = "seeds" if n_seeds > 1 else "episodes"
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["method", "setting"]).reset_index(drop=True)


def per_seed_means(summaries: pd.DataFrame) -> pd.DataFrame:
    """summaries: every seed's evaluate/summary.csv with a `seed` column -> method, setting, seed,
    return_mean, drift_from_bc (one row per seed and setting)."""
    cols = ["method", "setting", "seed", "return_mean", "success_mean", "drift_from_bc"]
    return (
        summaries[[c for c in cols if c in summaries]]
        .sort_values(["method", "setting", "seed"])
        .reset_index(drop=True)
    )


def plot_return_vs_w(
    res: pd.DataFrame, dataset_return: float | None, env: str, path: Path, seeds=None, value: str = "return"
) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_return_vs_w(ax, res, dataset_return, env, seeds, value)
    save(fig, path)


def plot_drift(summaries: pd.DataFrame, env: str, path: Path) -> None:
    d = summaries[summaries.method == "cfgrl"].groupby("setting")["drift_from_bc"].mean()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(d.index, d.values, "o-")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=-0.3)
    ax.set_xlabel("guidance weight w (symlog)")
    ax.set_ylabel("E ||a_w - a_0||^2 on dataset states")
    ax.set_title(f"{env}: drift of pi_w from flow BC")
    ax.grid(alpha=0.3)
    save(fig, path)


def plot_return_vs_drift(res: pd.DataFrame, seeds: pd.DataFrame, env: str, path: Path) -> None:
    """CFGRL's return (mean, 95% CI) against its drift from flow BC, E||a_w - a_0||^2, one point per w
    (labelled): how much return each unit of departure from the data's behaviour buys. Per-seed points
    as small dots; AWR's best return as a reference line (it has no drift measure here)."""
    c = res[res.method == "cfgrl"].sort_values("setting")
    drift = seeds[seeds.method == "cfgrl"].groupby("setting")["drift_from_bc"].mean()
    x = drift.reindex(c.setting).to_numpy()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    if seeds.seed.nunique() > 1:
        d = seeds[seeds.method == "cfgrl"]
        ax.plot(d.drift_from_bc, d.return_mean, ".", color="C0", alpha=0.4, ms=5, label="one seed")
    ax.errorbar(
        x, c.return_mean, yerr=c.return_ci95.fillna(0), fmt="o-", color="C0", capsize=3, label="CFGRL"
    )
    for i, (xi, yi, w) in enumerate(zip(x, c.return_mean, c.setting)):  # above and below in turn
        offset = (4, 5 if i % 2 else -11)
        ax.annotate(f"w={w:g}", (xi, yi), textcoords="offset points", xytext=offset, fontsize=7)
    awr = res[res.method == "awr"]
    if len(awr):
        best = awr.sort_values("return_mean").iloc[-1]
        ax.axhline(best.return_mean, color="C3", ls="--", label=f"AWR best (1/beta = {best.setting:g})")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(left=-0.01, right=max(np.nanmax(x), 0.1) * 2.0)  # room for the last point's label
    ax.set_xlabel("drift from flow BC, E ||a_w - a_0||^2 (symlog)")
    ax.set_ylabel("episode return")
    ax.set_title(f"{env}: return vs departure from the behaviour policy", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save(fig, path)


def plot_extraction(res: pd.DataFrame, env: str, path: Path, value: str = "return") -> None:
    """The extraction methods on one critic, each over its own knob (95% CI bars): IFQL's argmax over N
    candidates, resampling over alpha (one line per N), FQL over alpha; CFGRL at w = 1 and at its best
    w, flow BC (w = 0) and AWR's best 1/beta as reference lines in every panel."""
    mean, ci = f"{value}_mean", f"{value}_ci95"
    c = res[res.method == "cfgrl"]
    refs = [
        ("flow BC (w = 0)", c[c.setting == 0.0], "gray", ":"),
        ("CFGRL w = 1", c[c.setting == 1.0], "C0", "-"),
    ]
    if len(c):
        best = c.loc[c[mean].idxmax()]
        refs.append((f"CFGRL best (w = {best.setting:g})", c[c.setting == best.setting], "C0", "--"))
    awr = res[res.method == "awr"]
    if len(awr):
        best = awr.loc[awr[mean].idxmax()]
        refs.append((f"AWR best (1/beta = {best.setting:g})", awr[awr.setting == best.setting], "C3", "--"))
    resample = sorted(m for m in res.method.unique() if m.startswith("resample_n"))
    panels = [
        ("rejection: argmax_i Q(s, a_i)", ["ifql"], "candidates N (log)"),
        ("rejection: i ~ softmax(alpha A)", resample, "alpha (log)"),
        ("FQL one-step policy", ["fql"], "distillation weight alpha (log)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9), sharey=True)
    for ax, (title, methods, xlabel) in zip(axes, panels):
        lines = []
        for i, m in enumerate(methods):
            g = res[res.method == m].sort_values("setting")
            label = f"N = {m.removeprefix('resample_n')}" if m.startswith("resample_n") else m.upper()
            lines.append(
                ax.errorbar(
                    g.setting,
                    g[mean],
                    yerr=g[ci].fillna(0),
                    fmt="o-",
                    color=f"C{i + 4}",
                    capsize=3,
                    label=label,
                )
            )
        refs_drawn = [
            ax.axhline(float(r[mean].iloc[0]), color=color, ls=ls, lw=1, label=name)
            for name, r, color, ls in refs
            if len(r)
        ]
        settings = res[res.method.isin(methods)].setting
        if methods == ["ifql"]:
            ax.set_xscale("log", base=2)
        elif (settings == 0).any():  # alpha = 0 (FQL without distillation) has no place on a log axis
            ax.set_xscale("symlog", linthresh=0.1)
        else:
            ax.set_xscale("log")
        handles = lines + (refs_drawn if ax is axes[0] else [])  # the reference lines: named once
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="best")
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("success rate" if value == "success" else "episode return")
    fig.suptitle(f"{env}: policy extraction from one critic", fontsize=11)
    save(fig, path)


def plot_ablations(table: pd.DataFrame, path: Path) -> None:
    """experiments/label_ablations.py's table: CFGRL's return vs w per labelling choice, one panel per env."""
    envs = list(dict.fromkeys(table.env))
    fig, axes = plt.subplots(1, len(envs), figsize=(5.4 * len(envs), 3.8), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for i, (name, g) in enumerate(table[table.env == env].groupby("ablation", sort=False)):
            g = g.sort_values("setting")
            frac = g.positive_frac.iloc[0]
            ax.plot(g.setting, g.return_mean, "o-", color=f"C{i}", ms=3, label=f"{name} ({frac:.0%} o = 1)")
            lo, hi = g.return_mean - g.return_ci95.fillna(0), g.return_mean + g.return_ci95.fillna(0)
            ax.fill_between(g.setting, lo, hi, color=f"C{i}", alpha=0.12)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=-0.3)
        ax.set_xlabel("guidance weight w (symlog)")
        ax.set_ylabel("episode return (mean, 95% CI over episodes)")
        ax.set_title(f"{env}: label ablations (one seed)", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    save(fig, path)


def format_steps(ax) -> None:
    """Training-step x axis: at most 5 ticks, as 0, 20k, 1M (no overlapping long integers)."""
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def plot_advantages(
    advs: dict[int, np.ndarray],
    thresholds: dict[int, float],
    pos_fracs: dict[int, float],
    env: str,
    path: Path,
) -> None:
    """Advantage histogram per seed with that seed's label threshold (a value, or a quantile of its A)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    lo, hi = np.quantile(np.concatenate(list(advs.values())), [0.001, 0.999])
    for i, (seed, adv) in enumerate(advs.items()):
        ax.hist(
            adv,
            bins=100,
            range=(lo, hi),
            histtype="step",
            color=f"C{i}",
            label=f"seed {seed}: {pos_fracs[seed]:.1%} labelled o = 1",
        )
        ax.axvline(thresholds[seed], color=f"C{i}", ls="--", label=f"threshold {thresholds[seed]:.3g}")
    ax.set_xlabel("advantage A = min Q(s,a) - V(s)")
    ax.set_ylabel("transitions")
    ax.set_title(f"{env}: advantages and optimality labels")
    ax.legend(fontsize=8)
    save(fig, path)


def plot_concentration(
    awr_logs: dict[int, pd.DataFrame], cfgrl_metrics: dict[int, dict], env: str, path: Path
) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for key, ax, label in [
        ("ess_frac", axes[0], "effective sample size / batch size"),
        ("top1pct_share", axes[1], "weight share of the top 1% samples"),
    ]:
        for seed, df in awr_logs.items():
            cols = [c for c in df.columns if c.endswith(f"/{key}")]
            for i, col in enumerate(cols):
                name = col.split("/")[1].replace("inv_beta=", "AWR 1/beta=")
                ax.plot(
                    df.step, df[col], color=f"C{i}", alpha=0.8, label=name if seed == min(awr_logs) else None
                )
        for seed, m in cfgrl_metrics.items():
            if f"weight_{key}" in m:
                ax.axhline(
                    m[f"weight_{key}"],
                    color="k",
                    ls="--",
                    label="CFGRL loss weights" if seed == min(cfgrl_metrics) else None,
                )
        ax.set_xlabel("training step")
        format_steps(ax)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{env}: how concentrated the per-sample loss weights are (per batch)")
    save(fig, path)


def plot_training_curves(logs: dict[str, dict[int, pd.DataFrame]], env: str, path: Path) -> None:
    """Losses over training steps of every training stage: one panel each, a colour per logged loss, a
    line style per seed; a log y axis where every value is positive (else linear), so ticks are readable."""
    panels = [
        ("label", ["critic/loss", "value/loss"]),
        ("train_cfgrl", ["actor/loss"]),
        ("train_awr", None),
        ("train_awf", None),
    ]
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, (stage_name, cols) in zip(axes, panels):
        seeds = sorted(logs[stage_name])
        values = []
        for j, seed in enumerate(seeds):
            df = logs[stage_name][seed]
            keys = cols or [c for c in df.columns if c.endswith("/loss") and "inv_beta" in c]
            for i, col in enumerate(keys):
                name = col.removesuffix("/loss").replace("inv_beta=", "1/beta=")
                ls = styles[j % len(styles)]
                ax.plot(df.step, df[col], ls, color=f"C{i}", alpha=0.85, label=name if j == 0 else None)
                values.append(df[col].to_numpy())
        allv = np.concatenate(values) if values else np.array([1.0])
        ax.set_yscale("log" if np.nanmin(allv) > 0 else "linear")
        handles, labels = ax.get_legend_handles_labels()
        if len(seeds) > 1:  # one black line per seed style
            handles += [Line2D([], [], ls=styles[j % len(styles)], color="k") for j in range(len(seeds))]
            labels += [f"seed {s}" for s in seeds]
        ax.legend(handles, labels, fontsize=6, ncol=2 if len(labels) > 6 else 1)
        ax.set_title(stage_name)
        ax.set_xlabel("training step")
        format_steps(ax)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{env}: training losses (mean over each logging window)")
    save(fig, path, dpi=110)


def plot_return_over_training(logs: dict[str, dict[int, pd.DataFrame]], env: str, path: Path) -> None:
    """The periodic evaluation during training (train_cfgrl / train_awr eval_every): return over training
    steps, one panel per stage, a colour per w or 1/beta; with several seeds the mean over seeds and its
    95% t-interval (band), with one the seed's mean return; a note where it was off."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (stage_name, title) in zip(axes, [("train_cfgrl", "CFGRL"), ("train_awr", "AWR")]):
        seeds = sorted(logs[stage_name])
        frames = [logs[stage_name][s].assign(seed=s) for s in seeds]
        cols = [c for c in frames[0].columns if c.startswith("eval/return/")] if frames else []
        for i, col in enumerate(cols):
            d = pd.concat([f[["seed", "step", col]] for f in frames]).dropna()
            by_step = d.groupby("step")[col]
            mean = by_step.mean()
            half = by_step.agg(lambda v: ci95(v.to_numpy()))
            name = col.removeprefix("eval/return/").replace("inv_beta=", "1/beta=")
            ax.plot(mean.index, mean, "-o", ms=3, color=f"C{i}", label=name)
            if len(seeds) > 1:
                ax.fill_between(mean.index, mean - half, mean + half, color=f"C{i}", alpha=0.15)
        if not cols:
            ax.text(
                0.5,
                0.5,
                f"periodic evaluation off\n({stage_name}.eval_every = 0)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        else:
            ax.legend(fontsize=7)
        over = (
            f"mean of {len(seeds)} seeds, 95% CI" if len(seeds) > 1 else f"seed {seeds[0]}" if seeds else ""
        )
        ax.set_title(f"{title} ({over})", fontsize=10)
        ax.set_xlabel("training step")
        format_steps(ax)
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{env}: return of the periodic evaluation during training")
    save(fig, path, dpi=110)


def run(params: Params, env: str, out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("results.csv",))  # results.csv, written last, marks a finished plot stage
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = params.seeds
    episodes = pd.concat(
        [
            pd.read_csv(d(env, s) / "episodes.csv")
            for s in seeds
            for d in (paths.evaluate_dir, paths.evaluate_extraction_dir)
        ]
    )
    summaries = pd.concat(
        [pd.read_csv(paths.evaluate_dir(env, s) / "summary.csv").assign(seed=s) for s in seeds],
        ignore_index=True,
    )
    per_seed = per_seed_means(summaries)
    stats = json.loads((paths.dataset_dir(env) / "stats.json").read_text())
    res = aggregate(episodes)
    res.insert(0, "env", env)
    res["dataset_return_mean"] = stats["return_mean"]
    value = metric(res)  # OGBench single-task envs: the success rate (their reported metric), no dataset line
    dataset_line = stats["return_mean"] if value == "return" else None
    plot_return_vs_w(res, dataset_line, env, out_dir / "return_vs_w.png", per_seed, value)
    plot_drift(summaries, env, out_dir / "drift_vs_w.png")
    plot_return_vs_drift(res, per_seed, env, out_dir / "return_vs_drift.png")
    plot_extraction(res, env, out_dir / "extraction.png", value)
    advs = {s: np.load(paths.label_dir(env, s) / "labels.npz")["advantages"] for s in seeds}
    label_metrics = {s: json.loads((paths.label_dir(env, s) / "metrics.json").read_text()) for s in seeds}
    plot_advantages(
        advs,
        {s: m["threshold_value"] for s, m in label_metrics.items()},
        {s: m["positive_frac"] for s, m in label_metrics.items()},
        env,
        out_dir / "advantage_hist.png",
    )
    awr_logs = {s: pd.read_csv(paths.awr_dir(env, s) / "train_log.csv") for s in seeds}
    cfgrl_metrics = {s: json.loads((paths.cfgrl_dir(env, s) / "metrics.json").read_text()) for s in seeds}
    plot_concentration(awr_logs, cfgrl_metrics, env, out_dir / "weight_concentration.png")
    logs = {
        "label": {s: pd.read_csv(paths.label_dir(env, s) / "train_log.csv") for s in seeds},
        "train_cfgrl": {s: pd.read_csv(paths.cfgrl_dir(env, s) / "train_log.csv") for s in seeds},
        "train_awr": awr_logs,
        "train_awf": {s: pd.read_csv(paths.awf_dir(env, s) / "train_log.csv") for s in seeds},
    }
    plot_training_curves(logs, env, out_dir / "training_curves.png")
    plot_return_over_training(logs, env, out_dir / "return_over_training.png")
    write_csv_atomic(res, out_dir / "results.csv")
    return res


main = stage_shapes.per_env_main(
    "plot", run, paths.plots_dir, "Draw the figures of one env from the stage outputs."
)

if __name__ == "__main__":
    stage.cli(main)
