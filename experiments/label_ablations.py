"""Label ablations of CFGRL on the results profile (seed 0 of every env): which labelling choice matters.

Each ablation changes params keys (the same keys `dvc exp run -S` would set), reruns only the stages
those keys reach for CFGRL (label for the threshold and the critic; train_cfgrl for the label
scheme) into data/ablations/<name>/<env>/, and evaluates CFGRL at every w of params with the
evaluate stage's code (baselines=False: AWR and AWF do not read these keys, except the online critic's
advantages, which this study does not retrain them on). With the same params a `dvc exp run -S ...`
gives the same CFGRL numbers (every stage is deterministic on CPU for a fixed thread count).
Needs the main run's outputs (dataset, labels, checkpoints) under data/. Writes
docs/results/ablations.csv and prints a Markdown table.

    python experiments/label_ablations.py --params profiles/results.yaml
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pandas as pd
import typer
import yaml

from pipeline_steps import evaluate, label, paths, train_cfgrl
from pipeline_steps.config import parse_params
from pipeline_steps.training import write_csv_atomic

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


def main(
    params: Path = typer.Option(Path("profiles/results.yaml"), help="params file of the main run"),
    seed: int = typer.Option(0, help="training seed"),
    out: Path = typer.Option(Path("docs/results/ablations.csv"), help="table to write"),
):
    """Run every label ablation for every env of params at one seed."""
    base_raw = yaml.safe_load(params.read_text())
    rows = []
    for env in base_raw["envs"]:
        base = pd.read_csv(paths.evaluate_dir(env, seed) / "summary.csv")
        base_pos = json.loads((paths.label_dir(env, seed) / "metrics.json").read_text())["positive_frac"]
        rows += [
            {"ablation": "default", "env": env, "positive_frac": base_pos, **r}
            for r in base[base.method == "cfgrl"].to_dict("records")
        ]
        for name, overrides in ABLATIONS.items():
            p = parse_params(with_overrides(base_raw, overrides), f"{params} + {overrides}")
            d = paths.DATA / "ablations" / name / env
            labels = paths.label_dir(env, seed) / "labels.npz"
            positive = base_pos
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
            rows += [
                {"ablation": name, "env": env, "positive_frac": positive, **r}
                for r in summary[summary.method == "cfgrl"].to_dict("records")
            ]
            write_csv_atomic(pd.DataFrame(rows), out)  # after every ablation: a partial table survives a kill
    table = pd.DataFrame(rows)
    write_csv_atomic(table, out)
    wide = table.assign(
        cell=table.return_mean.map("{:.1f}".format) + " ± " + table.return_ci95.map("{:.1f}".format)
    )
    print(
        wide.pivot_table(
            index=["env", "ablation"], columns="setting", values="cell", aggfunc="first"
        ).to_string()
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
