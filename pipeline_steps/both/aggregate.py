"""Stage `aggregate`: every env's results side by side, across seeds (the multi-seed summary).

Reads data/plots/<env>/results.csv (per env and setting: mean and 95% CI over seed means when there
are several seeds, over episodes with one) and writes to data/aggregate/:
  results.csv      all envs' rows (env, method, setting, seeds, return_mean, return_ci95, ci_over;
                   success_mean / success_ci95 for OGBench single-task envs)
  summary.csv      one row per env: dataset mean, flow BC (w = 0), CFGRL at w = 1 and at its best w,
                   the best 1/beta of AWR and of advantage-weighted flow (mean and 95% CI each), in
                   the env's metric (`metric`: the return, or the success rate in % for OGBench
                   single-task envs, ranked by it too)
  summary.md       the same table in Markdown, then every setting's mean and CI (for the README)
  return_vs_w.png  one panel per env: CFGRL return vs w, AWR and AWF vs 1/beta, dataset and BC lines
  gc_results.csv   the goal-conditioned envs' rows (data/gc_plots/<env>/results.csv, task 'all'), whose
                   success table (CFGRL per w, flow GCBC, Gaussian GCBC, data policy) ends summary.md
  metrics.json     the few numbers to compare runs by (DVC metrics: `make exps`): per env the summary's
                   means (flow BC, CFGRL at w = 1 and best, AWR / AWF best) and per goal-conditioned env
                   CFGRL's success at w = 1 and best and its baselines'
"best" picks the setting with the highest mean on the evaluation episodes themselves, which favours
the method with more settings (a max over noisy estimates): read it beside the fixed w = 1 column.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.core import paths, stage  # noqa: E402
from pipeline_steps.core.figures import draw_return_vs_w, metric  # noqa: E402
from pipeline_steps.core.io import atomic_output, clear_outputs, write_csv_atomic, write_json_atomic  # noqa: E402
from pipeline_steps.core.params import Params  # noqa: E402

log = logging.getLogger(__name__)
METHOD_NAMES = {"cfgrl": "CFGRL", "awr": "AWR", "awf": "AW-flow", "ifql": "IFQL (argmax of N)", "fql": "FQL"}


def method_name(method: str) -> str:
    """CFGRL, AWR, ...; resample_n32 -> 'resample, N=32'."""
    if method.startswith("resample_n"):
        return f"resample, N={method.removeprefix('resample_n')}"
    return METHOD_NAMES[method]


def fmt(mean: float, ci: float) -> str:
    return f"{mean:.1f} ± {ci:.1f}" if pd.notna(ci) else f"{mean:.1f}"


def summarize_env(res: pd.DataFrame) -> dict:
    """One env's headline numbers from its results table, in its metric: the return, or for OGBench
    single-task envs the success rate in percent (column `metric` says which)."""
    value = metric(res)
    scale = 100.0 if value == "success" else 1.0
    row: dict = {
        "env": res.env.iloc[0],
        "metric": "success %" if value == "success" else "return",
        "seeds": int(res.seeds.max()),
        "ci_over": res.ci_over.iloc[0],
        "dataset_return": float(res.dataset_return_mean.iloc[0]),
    }

    def pick(method: str, setting: float | None, prefix: str) -> None:
        r = (
            res[res.method.str.startswith("resample_n")]
            if method == "resample"
            else res[res.method == method]
        )
        if setting is not None:
            r = r[r.setting == setting]
        if not len(r):
            return
        best = r.loc[r[f"{value}_mean"].idxmax()]
        row[f"{prefix}_setting"] = float(best.setting)
        row[f"{prefix}_mean"] = scale * float(best[f"{value}_mean"])
        row[f"{prefix}_ci95"] = scale * float(best[f"{value}_ci95"])
        if method == "resample":  # its N
            row[f"{prefix}_n"] = float(best.method.removeprefix("resample_n"))

    pick("cfgrl", 0.0, "flow_bc")
    pick("cfgrl", 1.0, "cfgrl_w1")
    pick("cfgrl", None, "cfgrl_best")
    pick("awr", None, "awr_best")
    pick("awf", None, "awf_best")
    pick("ifql", None, "ifql_best")
    pick("resample", None, "resample_best")
    pick("fql", None, "fql_best")
    return row


COLUMNS = [  # (summary prefix, table header, setting label)
    ("flow_bc", "flow BC (w=0)", None),
    ("cfgrl_w1", "CFGRL w=1", None),
    ("cfgrl_best", "CFGRL best w", "w"),
    ("awr_best", "AWR best 1/beta", "1/beta"),
    ("awf_best", "AW-flow best 1/beta", "1/beta"),
    ("ifql_best", "IFQL best N", "N"),
    ("resample_best", "resample best alpha", "alpha"),
    ("fql_best", "FQL best alpha", "alpha"),
]


def cell(r: dict, prefix: str, label: str | None) -> str:
    if pd.isna(r.get(f"{prefix}_mean", float("nan"))):
        return "-"
    s = fmt(r[f"{prefix}_mean"], r[f"{prefix}_ci95"])
    if prefix == "resample_best":
        return f"{s} (N={r['resample_best_n']:g}, alpha={r['resample_best_setting']:g})"
    return f"{s} ({label}={r[f'{prefix}_setting']:g})" if label else s


def markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| env | seeds | metric | dataset return | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|" + "---|" * (4 + len(COLUMNS)),
    ]
    for r in summary.to_dict("records"):
        cells = [r["env"], str(r["seeds"]), r["metric"], f"{r['dataset_return']:.1f}"]
        cells += [cell(r, prefix, label) for prefix, _, label in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    ci = summary.ci_over.iloc[0]
    lines.append(
        f"\nMean and 95% CI over {ci} (t-interval); 'best' is a max over settings on the same episodes."
    )
    return "\n".join(lines) + "\n"


def sweep_markdown(res: pd.DataFrame) -> str:
    """Every setting: CFGRL's return (success % for OGBench single-task envs) per w (one row per env),
    then AWR's and AWF's per 1/beta, IFQL's per N, resampling's and FQL's per alpha."""
    out = []
    resample = sorted(m for m in res.method.unique() if m.startswith("resample_n"))
    groups = ((["cfgrl"], "w"), (["awr", "awf"], "1/beta"), (["ifql"], "N"), ([*resample, "fql"], "alpha"))
    for methods, label in groups:
        r = res[res.method.isin(methods)]
        if not len(r):
            continue
        settings = sorted(r.setting.unique())
        out.append("| env | method | " + " | ".join(f"{label}={s:g}" for s in settings) + " |")
        out.append("|" + "---|" * (2 + len(settings)))
        for (env, method), g in r.groupby(["env", "method"], sort=False):
            by = g.set_index("setting")
            value = metric(g)
            scale, unit = (100.0, " %") if value == "success" else (1.0, "")
            cells = [
                fmt(scale * by[f"{value}_mean"][s], scale * by[f"{value}_ci95"][s]) + unit
                if s in by.index
                else "-"
                for s in settings
            ]
            out.append(f"| {env} | {method_name(method)} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


GC_METHODS = {"flow_gcbc": "flow GCBC", "gcbc": "Gaussian GCBC", "data_policy": "data policy"}
HIER_METHODS = {"flow_hgcbc": "flow HGCBC", "hgcbc": "Gaussian HGCBC"}


def gc_table(gc: pd.DataFrame, guided: str, label: str, baselines: dict[str, str]) -> list[str]:
    """One row per env: the guided method per w (HCFGRL: the same w at both levels), then the baselines."""

    def cell(r) -> str:
        return f"{r.success:.2f} [{r.success_lo:.2f}, {r.success_hi:.2f}]"

    same_w = gc[(gc.method == guided) & (gc.w_low.isna() | (gc.w_low == gc.w))]
    ws = sorted(same_w.w.unique())
    head = [f"{label} w={w:g}" for w in ws] + list(baselines.values())
    lines = ["| env | seeds | " + " | ".join(head) + " |", "|" + "---|" * (2 + len(head))]
    for env, g in gc.groupby("env", sort=False):
        c = same_w[same_w.env == env].set_index("w")
        cells = [cell(c.loc[w]) if w in c.index else "-" for w in ws]
        cells += [cell(g[g.method == m].iloc[0]) if (g.method == m).any() else "-" for m in baselines]
        lines.append(f"| {env} | {int(g.seeds.max())} | " + " | ".join(cells) + " |")
    return lines


def gc_markdown(gc: pd.DataFrame) -> str:
    """Success over the evaluation tasks: CFGRL per w and the flat baselines, then HCFGRL per w and the
    hierarchical baselines (one row per env each)."""
    if "w_low" not in gc:  # results made before the hierarchical policies: flat only
        gc = gc.assign(w_low=float("nan"))
    lines = gc_table(gc, "cfgrl", "CFGRL", GC_METHODS)
    if (gc.method == "hcfgrl").any():
        lines += [""] + gc_table(gc, "hcfgrl", "HCFGRL", HIER_METHODS)
    over = gc.ci_over.iloc[0]
    lines.append(
        f"\nGoal-conditioned success rate over the evaluation tasks, 95% interval over {over} "
        "(t-interval over seed means; Wilson over episodes with one seed)."
    )
    return "\n".join(lines) + "\n"


HEADLINE = {  # metrics.json key: summary column (a setting the params do not have is left out)
    "flow_bc": "flow_bc_mean",
    "cfgrl_w1": "cfgrl_w1_mean",
    "cfgrl_best": "cfgrl_best_mean",
    "cfgrl_best_w": "cfgrl_best_setting",
    "awr_best": "awr_best_mean",
    "awr_best_inv_beta": "awr_best_setting",
    "awf_best": "awf_best_mean",
    "ifql_best": "ifql_best_mean",
    "ifql_best_n": "ifql_best_setting",
    "resample_best": "resample_best_mean",
    "fql_best": "fql_best_mean",
    "fql_best_alpha": "fql_best_setting",
}


def headline_metrics(summary: pd.DataFrame, gc: pd.DataFrame) -> dict:
    """metrics.json: {"headline": {env: {flow_bc, cfgrl_w1, cfgrl_best, cfgrl_best_w, awr_best, ...}}}."""
    out = {}
    for r in summary.to_dict("records"):
        out[r["env"]] = {k: r[col] for k, col in HEADLINE.items() if col in r and pd.notna(r[col])}
    for env, g in gc.groupby("env", sort=False):
        c = g[g.method == "cfgrl"]
        best = c.loc[c.success.idxmax()]
        m = {"success_w1": c[c.w == 1.0].success.iloc[0]} if (c.w == 1.0).any() else {}
        m |= {"success_best": best.success, "success_best_w": best.w}
        h = g[(g.method == "hcfgrl") & (g.w_low == g.w)] if "w_low" in g else g.iloc[:0]
        if len(h):  # HCFGRL's best over its joint sweep (the same w at both levels)
            m |= {
                "hcfgrl_success_best": h.success.max(),
                "hcfgrl_success_best_w": h.loc[h.success.idxmax()].w,
            }
        others = {**GC_METHODS, **HIER_METHODS}
        m |= {f"success_{k}": g[g.method == k].success.iloc[0] for k in others if (g.method == k).any()}
        out[env] = m
    # one top-level key, so `dvc exp show` columns are headline.<env>.<number> (make exps keeps those)
    return {"headline": {env: {k: float(v) for k, v in m.items()} for env, m in out.items()}}


def run(params: Params, plots_root: Path, out_dir: Path, gc_plots_root: Path | None = None) -> pd.DataFrame:
    out_dir = Path(out_dir)
    outputs = (
        "results.csv",
        "summary.csv",
        "summary.md",
        "return_vs_w.png",
        "gc_results.csv",
        "metrics.json",
    )
    clear_outputs(out_dir, outputs)
    res = pd.concat([pd.read_csv(Path(plots_root) / env / "results.csv") for env in params.envs])
    summary = pd.DataFrame([summarize_env(g) for _, g in res.groupby("env", sort=False)])
    fig, axes = plt.subplots(1, len(params.envs), figsize=(6.0 * len(params.envs), 4.2), squeeze=False)
    for ax, (env, g) in zip(axes[0], res.groupby("env", sort=False)):
        value = metric(g)
        dataset_line = float(g.dataset_return_mean.iloc[0]) if value == "return" else None
        draw_return_vs_w(ax, g, dataset_line, env, value=value)
    fig.tight_layout()
    with atomic_output(out_dir / "return_vs_w.png") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)
    write_csv_atomic(res, out_dir / "results.csv")
    write_csv_atomic(summary, out_dir / "summary.csv")
    text = markdown(summary) + "\n" + sweep_markdown(res)
    root = Path(gc_plots_root or paths.DATA / "gc_plots")
    gc = pd.concat([pd.read_csv(root / env / "results.csv").assign(env=env) for env in params.gc_envs])
    gc = gc[gc.task.astype(str) == "all"]
    write_csv_atomic(gc, out_dir / "gc_results.csv")
    write_json_atomic(headline_metrics(summary, gc), out_dir / "metrics.json")
    text += "\n" + gc_markdown(gc)
    with atomic_output(out_dir / "summary.md") as f:
        f.write(text.encode())
    log.info("aggregate:\n%s", markdown(summary))
    return summary


def main(
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/aggregate"),
):
    """Summarise every env's results across seeds."""
    p = stage.load(params)
    out_dir = out or paths.DATA / "aggregate"
    stage.tracked("aggregate", p, out_dir, lambda: run(p, paths.DATA / "plots", out_dir))


if __name__ == "__main__":
    stage.cli(main)
