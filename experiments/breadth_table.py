"""The breadth run's table (docs/results/breadth): one row per task of the paper's Tables 1 and 2 that a
profile lists, beside the paper's numbers, with every setting's result (the whole curve, not the max).

Reads what the pipeline wrote for each env of the params file (data/plots/<env>/results.csv,
data/dataset/<env>/stats.json); a task without results is listed as missing, with the last line of its
first failed stage's log. Writes to --out: table.md, results.csv (every setting of every task),
summary.csv (one row per task), return_vs_w.png (one panel per task) and a copy of each task's
return_vs_w.png.

    python experiments/breadth_table.py --params profiles/breadth.yaml --out docs/results/breadth
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline_steps.both.aggregate import fmt, summarize_env, sweep_markdown  # noqa: E402
from pipeline_steps.core import paths  # noqa: E402
from pipeline_steps.core.figures import draw_return_vs_w, metric  # noqa: E402
from pipeline_steps.core.params import load_params  # noqa: E402
from pipeline_steps.envs.names import is_singletask  # noqa: E402

# method.md §6 (Table 1, ExORL RND data, return, 4 seeds) and §9 (Table 2, OGBench, success %, 4 seeds)
PAPER = {  # task: (AWR, CFGRL)
    "walker-stand": ("603 ± 8", "782 ± 8"),
    "walker-walk": ("444 ± 4", "608 ± 32"),
    "walker-run": ("247 ± 10", "282 ± 6"),
    "quadruped-walk": ("776 ± 15", "762 ± 25"),
    "quadruped-run": ("485 ± 7", "571 ± 25"),
    "cheetah-run": ("168 ± 7", "216 ± 15"),
    "cheetah-run-backward": ("146 ± 8", "262 ± 26"),
    "jaco-reach-top-right": ("33 ± 2", "72 ± 6"),
    "jaco-reach-top-left": ("30 ± 8", "46 ± 6"),
    "pointmaze-large-navigate-singletask": ("70", "100"),
    "pointmaze-teleport-navigate-singletask": ("3", "57"),
    "antmaze-large-navigate-singletask": ("50", "20"),
    "antmaze-teleport-navigate-singletask": ("22", "30"),
    "humanoidmaze-large-navigate-singletask": ("3", "0"),
    "antsoccer-arena-navigate-singletask": ("7", "20"),
    "cube-single-play-singletask": ("85", "82"),
    "scene-play-singletask": ("18", "17"),
    "puzzle-3x3-play-singletask": ("3", "3"),
}
STAGES = ("dataset", "label", "train_cfgrl", "train_awr", "train_awf", "evaluate", "plot")


def cell(r: dict, prefix: str, label: str | None = None) -> str:
    """'mean ± ci' of a summary column (with its setting), '-' where the params have no such setting."""
    if pd.isna(r.get(f"{prefix}_mean")):
        return "-"
    return fmt(r[f"{prefix}_mean"], r[f"{prefix}_ci95"]) + (
        f" ({label}={r[f'{prefix}_setting']:g})" if label else ""
    )


def why_missing(env: str, seed: int) -> str:
    """The last line of the first stage log that does not end in success, or 'not run'."""
    for stage in STAGES:
        name = f"{env}.log" if stage in ("dataset", "plot") else f"{env}/seed{seed}.log"
        log = Path("logs") / stage / name
        if not log.exists():
            return f"{stage}: not run"
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        out = paths.dataset_dir(env) / "stats.json" if stage == "dataset" else None
        if out is not None and out.exists():
            continue
        if lines and ("Error" in lines[-1] or "Traceback" in "".join(lines[-30:])):
            return f"{stage}: {lines[-1][:200]}"
    return "no results.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=Path("profiles/breadth.yaml"))
    ap.add_argument("--out", type=Path, default=Path("docs/results/breadth"))
    args = ap.parse_args()
    p = load_params(args.params)
    args.out.mkdir(parents=True, exist_ok=True)
    results, rows, missing = [], [], {}
    for env in p.envs:
        res_path = paths.plots_dir(env) / "results.csv"
        if not res_path.exists():
            missing[env] = why_missing(env, p.seeds[0])
            continue
        res = pd.read_csv(res_path)
        stats = json.loads((paths.dataset_dir(env) / "stats.json").read_text())
        row = summarize_env(res)
        awr, cfgrl = PAPER.get(env, ("-", "-"))
        source = f"OGBench ({p.dataset.ogbench.source})" if is_singletask(env) else p.dataset.source
        row |= {
            "source": source,
            "transitions": stats["transitions"],
            "episodes": stats["episodes"],
            "steps_per_second": stats["steps_per_second"],
            "build_seconds": stats["build_seconds"],
            "paper_awr": awr,
            "paper_cfgrl": cfgrl,
        }
        rows.append(row)
        results.append(res)
        shutil.copyfile(paths.plots_dir(env) / "return_vs_w.png", args.out / f"{env}_return_vs_w.png")
    summary = pd.DataFrame(rows)
    res_all = pd.concat(results, ignore_index=True)
    summary.to_csv(args.out / "summary.csv", index=False)
    res_all.to_csv(args.out / "results.csv", index=False)

    lines = [
        "| task | data (source, transitions, build speed) | metric | flow BC (w=0) | CFGRL w=1 "
        "| CFGRL best (w) | AWR best (1/beta) | paper AWR | paper CFGRL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.to_dict("records"):
        data = f"{r['source']}, {r['transitions']:,}, {r['steps_per_second']:,.0f} steps/s"
        cells = [
            cell(r, "flow_bc"),
            cell(r, "cfgrl_w1"),
            cell(r, "cfgrl_best", "w"),
            cell(r, "awr_best", "1/beta"),
        ]
        lines.append(
            f"| {r['env']} | {data} | {r['metric']} | "
            + " | ".join(cells)
            + f" | {r['paper_awr']} | {r['paper_cfgrl']} |"
        )
    for env, why in missing.items():
        awr, cfgrl = PAPER.get(env, ("-", "-"))
        lines.append(f"| {env} | missing: {why} | | | | | | {awr} | {cfgrl} |")
    ci = summary.ci_over.iloc[0] if len(summary) else "episodes"
    lines.append(
        f"\nSeed {p.seeds[0]} only; mean and 95% CI over {ci} ({p.evaluate.episodes} per setting). The "
        "paper's columns are 4 seeds on ExORL's RND data / OGBench's full datasets at 1M steps: a different "
        "dataset and budget, so compare shapes (does guidance help, where does it peak), not the numbers."
    )
    text = (
        "\n".join(lines)
        + "\n\nEvery setting (success in % for the OGBench tasks):\n\n"
        + sweep_markdown(res_all.assign(env=res_all.env))
    )
    (args.out / "table.md").write_text(text)

    n = len(results)
    cols = min(4, max(n, 1))
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 3.6 * nrows), squeeze=False)
    for ax, res in zip(axes.flat, results):
        env = res.env.iloc[0]
        value = metric(res)
        line = float(res.dataset_return_mean.iloc[0]) if value == "return" else None
        draw_return_vs_w(ax, res, line, env, value=value)
        ax.set_title(f"{env} (seed {p.seeds[0]})", fontsize=7)  # the full titles of long names overlap
        ax.legend(fontsize=5)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out / "return_vs_w.png", dpi=90)
    print(text)
    if missing:
        print("missing:", json.dumps(missing, indent=1))


if __name__ == "__main__":
    main()
