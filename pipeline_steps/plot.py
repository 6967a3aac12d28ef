"""Stage `plot`: PNG figures of one env, built only from the stage output files.

Reads data/evaluate/<env>/seed*/summary.csv + episodes.csv, data/dataset/<env>/stats.json,
data/label/<env>/seed*/labels.npz + metrics.json, data/train_{awr,awf}/<env>/seed*/train_log.csv and
data/train_cfgrl/<env>/seed*/metrics.json. Writes to data/plots/<env>/:
  return_vs_w.png            CFGRL return vs w (symlog axis, 95% CI band), AWR's and advantage-weighted
                             flow's return vs 1/beta on the same axis, reference lines for the
                             dataset's mean return and flow BC (w = 0)
  drift_vs_w.png             E||a_w - a_0||^2: how far pi_w moves from flow BC
  advantage_hist.png         advantages with the label threshold (label metrics.json threshold_value)
  weight_concentration.png   AWR weight ESS fraction / top-1% share over training vs CFGRL's loss weights
  training_curves.png        losses of the label, train_cfgrl, train_awr and train_awf stages over training
  results.csv                the numbers behind return_vs_w.png (mean and 95% CI per setting)
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

from pipeline_steps import paths, stage  # noqa: E402
from pipeline_steps.config import Params  # noqa: E402
from pipeline_steps.evaluate import ci95  # noqa: E402
from pipeline_steps.training import clear_outputs, write_csv_atomic  # noqa: E402

log = logging.getLogger(__name__)


def aggregate(episodes: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI per (method, setting): over episodes with one seed, over seed means with several."""
    rows = []
    for (method, setting), g in episodes.groupby(["method", "setting"]):
        per_seed = g.groupby("seed")["return"].mean().to_numpy()
        values = per_seed if len(per_seed) > 1 else g["return"].to_numpy()
        rows.append(
            {
                "method": method,
                "setting": setting,
                "seeds": len(per_seed),
                "return_mean": values.mean(),
                "return_ci95": ci95(values),
                "ci_over": "seeds" if len(per_seed) > 1 else "episodes",
            }
        )
    return pd.DataFrame(rows).sort_values(["method", "setting"]).reset_index(drop=True)


def draw_return_vs_w(ax, res: pd.DataFrame, dataset_return: float, env: str) -> None:
    """CFGRL's return vs w (CI band), AWR's and AWF's vs 1/beta, dataset and flow BC lines, on one axis."""
    c = res[res.method == "cfgrl"].sort_values("setting")
    ax.plot(c.setting, c.return_mean, "o-", color="C0", label="CFGRL (x = w)")
    ax.fill_between(
        c.setting,
        c.return_mean - c.return_ci95.fillna(0),
        c.return_mean + c.return_ci95.fillna(0),
        color="C0",
        alpha=0.2,
    )
    for method, fmt, color, label in [
        ("awr", "s--", "C3", "AWR, Gaussian (x = 1/beta)"),
        ("awf", "^--", "C2", "advantage-weighted flow (x = 1/beta)"),
    ]:
        a = res[res.method == method].sort_values("setting")
        if len(a):
            ax.errorbar(
                a.setting,
                a.return_mean,
                yerr=a.return_ci95.fillna(0),
                fmt=fmt,
                color=color,
                capsize=3,
                label=label,
            )
    ax.axhline(dataset_return, color="gray", ls=":", label=f"dataset mean ({dataset_return:.0f})")
    bc = c[c.setting == 0]
    if len(bc):
        bc_return = float(bc.return_mean.iloc[0])
        ax.axhline(bc_return, color="C0", ls=":", alpha=0.7, label=f"flow BC, w = 0 ({bc_return:.0f})")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=-0.3)  # w >= 0: no negative decade on the symlog axis
    ax.set_xlabel("guidance weight w  /  1/beta  (symlog)")
    ax.set_ylabel("episode return")
    ax.set_title(
        f"{env}: mean, 95% CI over {res.ci_over.iloc[0]} ({int(res.seeds.max())} seed(s))", fontsize=10
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def plot_return_vs_w(res: pd.DataFrame, dataset_return: float, env: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_return_vs_w(ax, res, dataset_return, env)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{env}: how concentrated the per-sample loss weights are (per batch)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(logs: dict[str, dict[int, pd.DataFrame]], env: str, path: Path) -> None:
    """Losses over training steps of every training stage (one panel each, one line per seed)."""
    panels = [
        ("label", ["critic/loss", "value/loss"]),
        ("train_cfgrl", ["actor/loss"]),
        ("train_awr", None),
        ("train_awf", None),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, (stage_name, cols) in zip(axes, panels):
        for seed, df in logs[stage_name].items():
            keys = cols or [c for c in df.columns if c.endswith("/loss") and "inv_beta" in c]
            for i, col in enumerate(keys):
                ax.plot(
                    df.step,
                    df[col],
                    color=f"C{i}",
                    alpha=0.8,
                    label=col if seed == min(logs[stage_name]) else None,
                )
        ax.set_title(stage_name)
        ax.set_xlabel("training step")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{env}: training losses")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(params: Params, env: str, out_dir: Path) -> pd.DataFrame:
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("results.csv",))  # results.csv, written last, marks a finished plot stage
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = params.seeds
    episodes = pd.concat([pd.read_csv(paths.evaluate_dir(env, s) / "episodes.csv") for s in seeds])
    summaries = pd.concat([pd.read_csv(paths.evaluate_dir(env, s) / "summary.csv") for s in seeds])
    stats = json.loads((paths.dataset_dir(env) / "stats.json").read_text())
    res = aggregate(episodes)
    res.insert(0, "env", env)
    res["dataset_return_mean"] = stats["return_mean"]
    plot_return_vs_w(res, stats["return_mean"], env, out_dir / "return_vs_w.png")
    plot_drift(summaries, env, out_dir / "drift_vs_w.png")
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
    write_csv_atomic(res, out_dir / "results.csv")
    return res


def main(
    env: str = stage.ENV,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/plots/<env>"),
):
    """Draw the figures of one env from the stage outputs."""
    p = stage.load(params, env)
    out_dir = out or paths.plots_dir(env)
    stage.tracked("plot", p, out_dir, lambda: run(p, env, out_dir), env=env)


if __name__ == "__main__":
    stage.cli(main)
