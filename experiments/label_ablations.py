"""Label ablations of CFGRL on the results profile (seed 0 of every env): which labelling choice matters.

Each ablation changes params keys (the same keys `dvc exp run -S` would set), reruns only the stages
those keys reach for CFGRL (label for the threshold and the critic; train_cfgrl for the label
scheme) into data/ablations/<name>/<env>/, and evaluates CFGRL at every w of params with the
evaluate stage's code (baselines=False: AWR and AWF do not read these keys, except the online critic's
advantages, which this study does not retrain them on). With the same params a `dvc exp run -S ...`
gives the same CFGRL numbers (every stage is deterministic on CPU for a fixed thread count).
Needs the main run's outputs (dataset, labels, checkpoints) under data/. Runs the ablations side by side
(--jobs), writes docs/results/ablations.csv (and ablations.png, its figure) and prints a Markdown table.

    python experiments/label_ablations.py --params profiles/results.yaml
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
import typer
import yaml

from pipeline_steps.both.repro import default_jobs
from pipeline_steps.core import paths
from pipeline_steps.core.io import write_csv_atomic
from pipeline_steps.core.params import parse_params
from pipeline_steps.rl import evaluate, label, train_cfgrl
from pipeline_steps.rl.plot import plot_ablations

ABLATIONS: dict[str, dict] = {
    "ternary_dropout": {"train_cfgrl.label_scheme": "ternary_dropout"},
    "quantile_0.5": {"label.threshold_type": "quantile", "label.threshold": 0.5},
    "online_critic": {"label.advantage_critic": "online"},
}


def with_overrides(raw: dict, overrides: dict) -> dict:
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value
    return raw


def run_ablation(params: Path, env: str, seed: int, name: str) -> list[dict]:
    """One ablation on one env: its CFGRL rows (every w of params)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides = ABLATIONS[name]
    p = parse_params(with_overrides(yaml.safe_load(params.read_text()), overrides), f"{params} + {overrides}")
    d = paths.DATA / "ablations" / name / env
    labels = paths.label_dir(env, seed) / "labels.npz"
    positive = json.loads((paths.label_dir(env, seed) / "metrics.json").read_text())["positive_frac"]
    if any(k.startswith("label.") for k in overrides):
        positive = label.run(p, env, seed, paths.dataset_root(env), d / "label")["positive_frac"]
        labels = d / "label" / "labels.npz"
    train_cfgrl.run(p, env, seed, paths.dataset_root(env), labels, d / "train_cfgrl")
    summary = evaluate.run(
        p,
        env,
        seed,
        paths.dataset_root(env),
        d / "train_cfgrl" / "policy.pt",
        paths.awr_dir(env, seed) / "policies.pt",
        paths.awf_dir(env, seed) / "policies.pt",
        d / "evaluate",
        baselines=False,
    )
    return [
        {"ablation": name, "env": env, "positive_frac": positive, **r}
        for r in summary[summary.method == "cfgrl"].to_dict("records")
    ]


def main(
    params: Path = typer.Option(Path("profiles/results.yaml"), help="params file of the main run"),
    seed: int = typer.Option(0, help="training seed"),
    out: Path = typer.Option(Path("docs/results/ablations.csv"), help="table to write"),
    jobs: int = typer.Option(0, help="ablations side by side (0: cores // runtime.threads)"),
):
    """Run every label ablation for every env of params at one seed, `jobs` at a time (each in its own
    process; every stage is deterministic for a fixed thread count, so the numbers do not depend on jobs)."""
    base_raw = yaml.safe_load(params.read_text())
    jobs = jobs or default_jobs(parse_params(base_raw, str(params)).runtime.threads)
    if jobs < 1:
        raise typer.BadParameter(f"must be at least 1, got {jobs}", param_hint="--jobs")
    rows: dict[tuple[str, str], list[dict]] = {}
    for env in base_raw["envs"]:
        base = pd.read_csv(paths.evaluate_dir(env, seed) / "summary.csv")
        base_pos = json.loads((paths.label_dir(env, seed) / "metrics.json").read_text())["positive_frac"]
        rows[env, "default"] = [
            {"ablation": "default", "env": env, "positive_frac": base_pos, **r}
            for r in base[base.method == "cfgrl"].to_dict("records")
        ]
    order = [(env, name) for env in base_raw["envs"] for name in ["default", *ABLATIONS]]

    def table() -> pd.DataFrame:  # rows in (env, ablation) order, whatever order the jobs finish in
        return pd.DataFrame([r for key in order for r in rows.get(key, [])])

    # spawn: a forked child would inherit torch's thread pool state from this process
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            pool.submit(run_ablation, params, env, seed, name): (env, name)
            for env in base_raw["envs"]
            for name in ABLATIONS
        }
        for future in as_completed(futures):
            rows[futures[future]] = future.result()
            write_csv_atomic(table(), out)  # after every ablation: a partial table survives a kill
    result = table()
    write_csv_atomic(result, out)
    plot_ablations(result, out.with_suffix(".png"))  # return vs w per labelling choice, one panel per env
    wide = result.assign(
        cell=result.return_mean.map("{:.1f}".format) + " ± " + result.return_ci95.map("{:.1f}".format)
    )
    print(
        wide.pivot_table(
            index=["env", "ablation"], columns="setting", values="cell", aggfunc="first"
        ).to_string()
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
