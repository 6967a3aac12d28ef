"""`make exps`: `dvc exp run -S key=value` experiments side by side in 100 columns.

`dvc exp show` has a column for every param, metric and dependency hash (about 300 here), so at 100
columns it prints `...` in every cell. This prints what tells experiments apart, as plain text:

    experiment      params that differ
    workspace       evaluate.episodes=20
    main 1bf6d3c    evaluate.episodes=10
    inert-sous      evaluate.episodes=20

    walker-run (return)
                    flow_bc  cfgrl_w1  cfgrl_best  (w)  awr_best  (1/beta)  awf_best
    workspace          25.7      49.9        69.4   30      49.5        30      54.4

one line per experiment (the workspace, the baseline commit, each experiment of it), first the params
whose values differ between them, then per env the headline numbers of data/aggregate/metrics.json
(returns; for the goal-conditioned envs the success fractions, their `success_` prefix dropped).
Extra arguments go to `dvc exp show` (e.g. `-A` for every commit's experiments, `-n 3` for the last
three commits).

    python -m pipeline_steps.both.exps [dvc exp show arguments]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pandas as pd

WIDTH = 100
METRICS = "data/aggregate/metrics.json"


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _row(entry: dict, name: str) -> dict:
    data = entry.get("data") or {}
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    metrics = ((data.get("metrics") or {}).get(METRICS) or {}).get("data") or {}
    return {"name": name, "params": flatten(params), "headline": metrics.get("headline", {})}


def rows(show: list[dict]) -> list[dict]:
    """`dvc exp show --json` -> one row per workspace / commit / experiment: name, params, headline."""
    out = []
    for entry in show:
        rev = entry.get("rev", "")
        name = entry.get("name") or ""
        out.append(_row(entry, "workspace" if rev == "workspace" else f"{name} {rev[:7]}".strip()))
        for exp in entry.get("experiments") or []:
            for r in exp.get("revs") or []:
                out.append(_row(r, r.get("name") or r.get("rev", "")[:7]))
    return out


def _value(v) -> str:
    return json.dumps(v).replace('"', "") if isinstance(v, list) else str(v)


def params_text(table: list[dict], width: int = WIDTH) -> str:
    """The params whose values differ between the rows, as `key=value`, one (wrapped) line per row."""
    keys = sorted({k for r in table for k in r["params"]})
    differ = [k for k in keys if len({_value(r["params"].get(k)) for r in table}) > 1]
    name_w = max([len("experiment"), *(len(r["name"]) for r in table)]) + 2
    lines = ["experiment".ljust(name_w) + ("params that differ" if differ else "(no params differ)")]
    for r in table:
        text = "  ".join(f"{k}={_value(r['params'].get(k))}" for k in differ)
        wrapped = textwrap.wrap(text, width - name_w, break_on_hyphens=False) or [""]
        lines += [(r["name"] if i == 0 else "").ljust(name_w) + w for i, w in enumerate(wrapped)]
    return "\n".join(line.rstrip() for line in lines)


# headline keys in reading order, and their short column names
COLUMNS = {
    "flow_bc": "flow_bc", "cfgrl_w1": "cfgrl_w1", "cfgrl_best": "cfgrl_best", "cfgrl_best_w": "(w)",
    "awr_best": "awr_best", "awr_best_inv_beta": "(1/beta)", "awf_best": "awf_best",
    "ifql_best": "ifql_best", "ifql_best_n": "(N)", "resample_best": "resample_best",
    "fql_best": "fql_best", "fql_best_alpha": "(alpha)",
    "success_data_policy": "data_policy", "success_gcbc": "gcbc", "success_flow_gcbc": "flow_gcbc",
    "success_w1": "cfgrl_w1", "success_best": "cfgrl_best", "success_best_w": "(w)",
}  # fmt: skip


def number(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def headline_text(table: list[dict], width: int = WIDTH) -> str:
    """Per env: a title line, then one line per row with the headline numbers as columns (pandas wraps
    the columns into blocks if they ever pass `width`)."""
    envs = list(dict.fromkeys(env for r in table for env in r["headline"]))
    blocks = []
    for env in envs:
        frame = pd.DataFrame([r["headline"].get(env, {}) for r in table], index=[r["name"] for r in table])
        order = [k for k in COLUMNS if k in frame] + sorted(k for k in frame if k not in COLUMNS)
        frame = frame[order].rename(columns=COLUMNS)
        unit = "success fraction" if any(k.startswith("success") for k in order) else "return"
        body = frame.to_string(line_width=width, float_format=number, na_rep="-")
        blocks.append(f"{env} ({unit})\n{body}")
    return "\n\n".join(blocks) if blocks else f"(no experiment has {METRICS} yet)"


def main(args: list[str]) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-pager", *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        return proc.returncode
    table = rows(json.loads(proc.stdout))
    print(params_text(table) + "\n\n" + headline_text(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
