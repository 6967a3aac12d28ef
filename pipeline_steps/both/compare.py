"""`make compare`: a finished run's results set beside a reference run's, setting by setting.

Reads results.csv (offline RL: env, method, setting, return mean and 95% CI) and, where present,
gc_results.csv (goal-conditioned: env, method, w, w_low, success rate and its 95% interval) from both
directories (data/aggregate/ after `make repro`; docs/results/make_repro/ is the committed reference)
and says per setting whether the two agree:
  identical    the same number (a rerun on the same CPU type and thread count is bit-reproducible)
  agree        different numbers whose 95% intervals overlap (what a rerun on another CPU type gives:
               float rounding changes the trajectories; docs/reliability.md, "What is bit-reproducible")
  DIFFERS      intervals that do not overlap: look at this setting
  no interval  different numbers, and one side has no interval (a single episode or seed)
and lists the settings only one side has. With --strict the exit status is 1 when any setting DIFFERS.

    python -m pipeline_steps.both.compare [--run data/aggregate] [--reference docs/results/make_repro]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipeline_steps.core.figures import knob

KEY = ["half", "env", "setting"]


def offline_table(path: Path) -> pd.DataFrame:
    """results.csv -> one row per (env, setting): mean, lo, hi (the 95% t-interval)."""
    r = pd.read_csv(path)
    label = [f"{m} {knob(m)}={s:g}" for m, s in zip(r.method, r.setting)]
    return pd.DataFrame(
        {
            "half": "offline RL (return)",
            "env": r.env,
            "setting": label,
            "mean": r.return_mean,
            "lo": r.return_mean - r.return_ci95,
            "hi": r.return_mean + r.return_ci95,
        }
    )


def gc_table(path: Path) -> pd.DataFrame:
    """gc_results.csv -> one row per (env, method, w, w_low): success, lo, hi."""
    r = pd.read_csv(path)
    w_low = r.w_low if "w_low" in r else pd.Series(float("nan"), index=r.index)  # before HCFGRL: flat only

    def label(m, w, wl):
        if m not in ("cfgrl", "hcfgrl"):
            return m
        return f"{m} w={w:g}" if pd.isna(wl) or wl == w else f"{m} w_high={w:g},w_low={wl:g}"

    label = [label(m, w, wl) for m, w, wl in zip(r.method, r.w, w_low)]
    return pd.DataFrame(
        {
            "half": "goal-conditioned (success)",
            "env": r.env,
            "setting": label,
            "mean": r.success,
            "lo": r.success_lo,
            "hi": r.success_hi,
        }
    )


def load(root: Path) -> pd.DataFrame:
    root = Path(root)
    if not (root / "results.csv").exists():
        raise FileNotFoundError(f"{root}: no results.csv (a finished `make repro` writes data/aggregate/)")
    tables = [offline_table(root / "results.csv")]
    if (root / "gc_results.csv").exists():
        tables.append(gc_table(root / "gc_results.csv"))
    return pd.concat(tables, ignore_index=True)


def verdict(a, lo_a, hi_a, b, lo_b, hi_b) -> str:
    if a == b:
        return "identical"
    if any(pd.isna(x) for x in (lo_a, hi_a, lo_b, hi_b)):
        return "no interval"
    return "agree" if lo_a <= hi_b and lo_b <= hi_a else "DIFFERS"


def compare(run: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """One row per setting of either side: both values with their intervals and the verdict."""
    m = run.merge(ref, on=KEY, how="outer", suffixes=("_run", "_ref"), indicator=True, sort=False)
    rows = []
    for r in m.to_dict("records"):
        side = r.pop("_merge")
        v = (
            verdict(r["mean_run"], r["lo_run"], r["hi_run"], r["mean_ref"], r["lo_ref"], r["hi_ref"])
            if side == "both"
            else ("only in run" if side == "left_only" else "only in reference")
        )
        rows.append(
            {
                **{k: r[k] for k in KEY},
                "run": interval(r, "run"),
                "reference": interval(r, "ref"),
                "verdict": v,
            }
        )
    return pd.DataFrame(rows)


def interval(r: dict, side: str) -> str:
    mean, lo, hi = r[f"mean_{side}"], r[f"lo_{side}"], r[f"hi_{side}"]
    if pd.isna(mean):
        return "-"
    return f"{mean:.3g} [{lo:.3g}, {hi:.3g}]" if not (pd.isna(lo) or pd.isna(hi)) else f"{mean:.3g}"


def report(table: pd.DataFrame, run_dir: Path, ref_dir: Path) -> str:
    lines = [f"run: {run_dir}   reference: {ref_dir}", ""]
    lines += ["| half | env | setting | run | reference | verdict |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r.half} | {r.env} | {r.setting} | {r.run} | {r.reference} | {r.verdict} |"
        for r in table.itertuples()
    ]
    counts = table.verdict.value_counts()
    both = int(sum(counts.get(k, 0) for k in ("identical", "agree", "DIFFERS", "no interval")))
    lines += [
        "",
        f"{both} settings in both: {counts.get('identical', 0)} identical, {counts.get('agree', 0)} agree "
        f"within their 95% intervals, {counts.get('DIFFERS', 0)} differ, {counts.get('no interval', 0)} "
        f"without an interval; {counts.get('only in run', 0)} only in the run, "
        f"{counts.get('only in reference', 0)} only in the reference.",
    ]
    if counts.get("agree", 0) and not counts.get("DIFFERS", 0):
        lines.append(
            "Not bit-identical but within noise: expected across CPU types (float rounding changes the "
            "rollouts); bit-identical results need the same CPU type and runtime.threads."
        )
    return "\n".join(lines)


def main(
    run: Path = typer.Option(Path("data/aggregate"), help="the finished run's aggregate directory"),
    reference: Path = typer.Option(Path("docs/results/make_repro"), help="the reference run's directory"),
    strict: bool = typer.Option(False, help="exit 1 when any setting DIFFERS"),
) -> None:
    """Set a run's results beside a reference run's and say, per setting, whether they agree."""
    try:
        table = compare(load(run), load(reference))
    except FileNotFoundError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(report(table, run, reference))
    if strict and (table.verdict == "DIFFERS").any():
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
