"""Figure helpers shared by the plot and aggregate stages: the headline return-vs-w panel and the metric
an env is judged by."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def save(fig, path: Path, dpi: int = 120) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def knob(method: str) -> str:
    """The setting a method of results.csv is swept over: w (CFGRL), 1/beta (AWR, AW-flow), N (IFQL's
    candidates), alpha (resampling's temperature, FQL's distillation weight)."""
    if method == "cfgrl":
        return "w"
    if method in ("awr", "awf"):
        return "1/beta"
    return "N" if method == "ifql" else "alpha"


def metric(table: pd.DataFrame) -> str:
    """What an env's results are judged by: 'success' where its episodes report it (OGBench single-task
    envs: the success rate, their reported metric), else 'return'."""
    has = [c for c in ("success_mean", "success") if c in table and table[c].notna().any()]
    return "success" if has else "return"


def draw_return_vs_w(
    ax,
    res: pd.DataFrame,
    dataset_return: float | None,
    env: str,
    seeds: pd.DataFrame | None = None,
    value: str = "return",
) -> None:
    """CFGRL's return (or, value 'success', success rate) vs w (CI band) on the bottom x axis, AWR's and
    AWF's vs 1/beta on a top x axis of their own (w and 1/beta are different knobs), dataset (if given)
    and flow BC lines; with `seeds` (per_seed_means) and more than one seed, each seed's mean as a small
    dot."""
    top = ax.twiny()  # 1/beta of AWR and AW-flow
    mean, ci = f"{value}_mean", f"{value}_ci95"
    c = res[res.method == "cfgrl"].sort_values("setting")
    if seeds is not None and seeds.seed.nunique() > 1:
        for method, color in (("cfgrl", "C0"), ("awr", "C3"), ("awf", "C2")):
            d = seeds[seeds.method == method]
            (ax if method == "cfgrl" else top).plot(d.setting, d[mean], ".", color=color, alpha=0.45, ms=5)
        ax.plot([], [], ".", color="gray", alpha=0.6, label="one seed's mean")
    ax.plot(c.setting, c[mean], "o-", color="C0", label="CFGRL (bottom axis: w)")
    ax.fill_between(
        c.setting,
        c[mean] - c[ci].fillna(0),
        c[mean] + c[ci].fillna(0),
        color="C0",
        alpha=0.2,
    )
    for method, fmt, color, label in [
        ("awr", "s--", "C3", "AWR, Gaussian (top axis: 1/beta)"),
        ("awf", "^--", "C2", "advantage-weighted flow (top axis: 1/beta)"),
    ]:
        a = res[res.method == method].sort_values("setting")
        if len(a):
            top.errorbar(
                a.setting,
                a[mean],
                yerr=a[ci].fillna(0),
                fmt=fmt,
                color=color,
                capsize=3,
                label=label,
            )
    if dataset_return is not None:
        ax.axhline(dataset_return, color="gray", ls=":", label=f"dataset mean ({dataset_return:.0f})")
    bc = c[c.setting == 0]
    if len(bc):
        bc_value = float(bc[mean].iloc[0])
        text = f"{bc_value:.0%}" if value == "success" else f"{bc_value:.0f}"
        ax.axhline(bc_value, color="C0", ls=":", alpha=0.7, label=f"flow BC, w = 0 ({text})")
    for a in (ax, top):
        a.set_xscale("symlog", linthresh=1.0)
        a.set_xlim(left=-0.3)  # w, 1/beta >= 0: no negative decade on the symlog axis
    ax.set_xlabel("CFGRL: guidance weight w (symlog)")
    top.set_xlabel("AWR, AW-flow: 1/beta (symlog)", fontsize=8)
    top.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("success rate" if value == "success" else "episode return")
    ax.set_title(
        f"{env}: mean, 95% CI over {res.ci_over.iloc[0]} ({int(res.seeds.max())} seed(s))", fontsize=10
    )
    handles, labels = ax.get_legend_handles_labels()
    more = top.get_legend_handles_labels()
    ax.legend(handles + more[0], labels + more[1], fontsize=7)
    ax.grid(alpha=0.3)
