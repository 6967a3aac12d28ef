"""Pilot of the offline-RL data options on tuning seeds (training seed 100, reported nowhere else): which
data gives policies that do the task and a gap between flow BC and the best method.

Data options of each env (dataset seed of params, 0):
- `correlated`: today's AR(1) random actions (params' dataset.collect.correlated, 200k steps);
- `sac_replay_100k`, `sac_replay_200k`: the replay buffer of one online SAC run (params'
  dataset.collect.sac, --update-every) after 100k and after 200k env steps: the 100k buffer is the first
  100 episodes of the 200k run (nothing before its end depends on the run's length);
- `sac_mix_200k`: the 200k buffer plus --expert-episodes episodes of the final actor with action noise
  --expert-noise (a "medium-expert" style mix).
Each option is exactly what the dataset stage makes with `behaviour`, `transitions`, `sac.update_every`,
`sac.expert_episodes` and `sac.expert_noise` set so (the run's per-episode times give the cost of each).

On each option: the label, train_cfgrl, train_awr, train_awf and evaluate stages' code at params' budget
(--steps overrides every training stage's steps), seed --seed; jobs side by side, one torch thread each.
Writes <out>/pilot.csv (one row per option, env, method and setting) and <out>/data.csv (data returns
and cost), and prints the table. Data and checkpoints go to data/pilot/.

    python experiments/data_pilot.py [--steps 20000] [--seed 100] [--out docs/results/data_pilot]
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
import typer
import yaml

from pipeline_steps.both.repro import default_jobs
from pipeline_steps.core import device
from pipeline_steps.core.episodes import dataset_stats, write_minari
from pipeline_steps.core.io import write_csv_atomic, write_json_atomic
from pipeline_steps.core.params import parse_params
from pipeline_steps.datasets import collect, sac_replay
from pipeline_steps.rl import evaluate, label, train_awf, train_awr, train_cfgrl

PILOT = Path("data/pilot")
TRAINING = ("label", "train_cfgrl", "train_awr", "train_awf")


def setup(params: Path, steps: int, update_every: int, expert_episodes: int, expert_noise: float):
    raw = copy.deepcopy(yaml.safe_load(params.read_text()))
    sac = raw["dataset"]["collect"]["sac"]
    sac.update(
        {"update_every": update_every, "expert_episodes": expert_episodes, "expert_noise": expert_noise}
    )
    if steps:
        for s in TRAINING:
            raw[s]["steps"] = steps
    return raw


def write_option(episodes, env: str, option: str, seconds: float, detail: str) -> dict:
    d = PILOT / option / env
    stats = {**dataset_stats(episodes), "build_seconds": seconds, "option": option, "env": env}
    write_json_atomic(stats, d / "stats.json")
    write_minari(episodes, env, "collect", d / "minari", description=f"{env} pilot {detail}")
    return stats


def sac_options(transitions: int, tag: str) -> tuple[str, str, str]:
    """The options one SAC run gives: its buffer after half its steps, after all of them, and the mix."""
    k = transitions // 1000
    return f"sac_replay_{k // 2}k{tag}", f"sac_replay_{k}k{tag}", f"sac_mix_{k}k{tag}"


def make_data(raw: dict, env: str, transitions: int, tag: str, correlated: bool) -> list[dict]:
    """The data options of one env (see the module doc); returns their statistics with the cost of each."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    p = parse_params(raw, "pilot params")
    cfg = p.dataset.collect
    device.set_threads(p.runtime)
    rows = []
    if correlated:
        start = time.perf_counter()
        eps = collect.collect(env, cfg.model_copy(update={"behaviour": "correlated"}), p.dataset.seed)
        rows.append(write_option(eps, env, "correlated", time.perf_counter() - start, "correlated"))
    clock: list[tuple[int, float]] = []  # (env steps, seconds) at the end of every online episode
    start = time.perf_counter()
    log_step = sac_replay.tracking.log_step
    sac_replay.tracking.log_step = lambda row: clock.append((row["step"], time.perf_counter() - start))
    try:
        sac_cfg = cfg.model_copy(update={"behaviour": "sac_replay", "transitions": transitions})
        eps = sac_replay.collect_replay(env, sac_cfg, p.dataset.seed, p.runtime.compile)
    finally:
        sac_replay.tracking.log_step = log_step
    total = time.perf_counter() - start
    at = dict(clock)  # every dm_control episode is 1000 steps: episode i ends at step 1000 (i + 1)
    n = transitions // 1000
    half, full, mix = sac_options(transitions, tag)
    rows.append(
        write_option(eps[: n // 2], env, half, at[transitions // 2], f"sac_replay {transitions // 2}")
    )
    rows.append(write_option(eps[:n], env, full, at[transitions], f"sac_replay {transitions}"))
    rows.append(write_option(eps, env, mix, total, f"sac_replay {transitions} + final actor"))
    expert = np.array([e.ret for e in eps[n:]])
    rows[-1]["expert_return_mean"] = float(expert.mean()) if len(expert) else None
    for r in rows:
        r.update(sac_update_every=cfg.sac.update_every, sac_batch_size=cfg.sac.batch_size)
    return rows


def train_and_evaluate(raw: dict, env: str, option: str, seed: int) -> list[dict]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    p = parse_params(raw, "pilot params")
    data = PILOT / option / env
    root, out = data / "minari", data / f"seed{seed}"
    start = time.perf_counter()
    label.run(p, env, seed, root, out / "label")
    labels = out / "label" / "labels.npz"
    train_cfgrl.run(p, env, seed, root, labels, out / "train_cfgrl")
    train_awr.run(p, env, seed, root, labels, out / "train_awr")
    train_awf.run(p, env, seed, root, labels, out / "train_awf")
    summary = evaluate.run(
        p,
        env,
        seed,
        root,
        out / "train_cfgrl" / "policy.pt",
        out / "train_awr" / "policies.pt",
        out / "train_awf" / "policies.pt",
        out / "evaluate",
    )
    seconds = time.perf_counter() - start
    return [
        {"option": option, "env": env, "seed": seed, "train_seconds": seconds, **r}
        for r in summary.to_dict("records")
    ]


def report(out: Path) -> str:
    """The pilot as one Markdown table: per env and data option, the data's returns and cost, flow BC,
    CFGRL at w = 1 and its best w, AWR's and AW-flow's best 1/beta (mean +- 95% CI over 10 episodes;
    'best' is a max over settings on the same episodes)."""
    data = pd.read_csv(out / "data.csv").set_index(["env", "option"])
    pilot = pd.read_csv(out / "pilot.csv")
    cell = lambda r: f"{r.return_mean:.1f} ± {r.return_ci95:.1f}"  # noqa: E731
    lines = [
        "| env | data option | SAC update every / batch | episodes | data return mean (min-max) "
        "| cost to make | flow BC (w=0) | CFGRL w=1 | CFGRL best w | AWR best 1/beta | AW-flow best 1/beta |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (env, option), d in data.iterrows():
        sac = "-" if option == "correlated" else f"{d.sac_update_every:.0f} / {d.sac_batch_size:.0f}"
        head = (
            f"| {env} | {option} | {sac} | {d.episodes:.0f} | {d.return_mean:.1f} ({d.return_min:.1f}-"
            f"{d.return_max:.1f}) | {d.build_seconds / 60:.1f} min |"
        )
        rows = pilot[(pilot.env == env) & (pilot.option == option)]
        if rows.empty:
            lines.append(head + " not trained | | | | |")
            continue
        c, a, f = (rows[rows.method == m] for m in ("cfgrl", "awr", "awf"))
        best = lambda t, name: (
            f"{cell(t.loc[t.return_mean.idxmax()])} ({name}={t.loc[t.return_mean.idxmax()].setting:g})"
        )  # noqa: E731,E501
        lines.append(
            head
            + f" {cell(c[c.setting == 0].iloc[0])} | {cell(c[c.setting == 1].iloc[0])} | {best(c, 'w')} |"
            f" {best(a, '1/beta')} | {best(f, '1/beta')} |"
        )
    return "\n".join(lines)


def main(
    params: Path = typer.Option(Path("params.yaml"), help="base params (envs, budgets, the SAC settings)"),
    steps: int = typer.Option(0, help="steps of every training stage (0: params')"),
    seed: int = typer.Option(100, help="training seed (a tuning seed: reported nowhere else)"),
    update_every: int = typer.Option(2, help="SAC: one update per this many env steps"),
    batch_size: int = typer.Option(256, help="SAC's minibatch size"),
    transitions: int = typer.Option(200_000, help="env steps of the SAC run"),
    tag: str = typer.Option("", help="suffix of this SAC run's option names"),
    correlated: bool = typer.Option(True, help="also make the correlated data"),
    expert_episodes: int = typer.Option(100, help="episodes of the final SAC actor in sac_mix_200k"),
    expert_noise: float = typer.Option(0.2, help="their action noise std"),
    out: Path = typer.Option(Path("docs/results/data_pilot"), help="where pilot.csv and data.csv go"),
    skip_data: bool = typer.Option(False, help="reuse data/pilot's datasets"),
    table: bool = typer.Option(False, help="only print the Markdown table of the results so far"),
    options: str = typer.Option("", help="data options to train on (comma-separated; default: this run's)"),
):
    if table:
        print(report(out))
        return
    raw = setup(params, steps, update_every, expert_episodes, expert_noise)
    raw["dataset"]["collect"]["sac"]["batch_size"] = batch_size
    envs = raw["envs"]
    jobs = default_jobs(raw["runtime"]["threads"])
    ctx = multiprocessing.get_context("spawn")
    if not skip_data:
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = [pool.submit(make_data, raw, env, transitions, tag, correlated) for env in envs]
            data_rows = pd.DataFrame([r for f in futures for r in f.result()])
        if (out / "data.csv").exists():  # the options of earlier SAC runs stay
            old = pd.read_csv(out / "data.csv")
            data_rows = pd.concat([old[~old.option.isin(data_rows.option)], data_rows], ignore_index=True)
        write_csv_atomic(data_rows, out / "data.csv")
    options = (
        options.split(",")
        if options
        else [*(["correlated"] if correlated else []), *sac_options(transitions, tag)]
    )
    if options == ["none"]:  # data only
        return
    rows: dict[tuple[str, str], list[dict]] = {}
    if (out / "pilot.csv").exists():  # the rows of options trained by earlier invocations stay
        for (o, e), df in pd.read_csv(out / "pilot.csv").groupby(["option", "env"], sort=False):
            if o not in options:
                rows[o, e] = df.to_dict("records")
    order = [*[k for k in rows], *[(o, e) for o in options for e in envs]]
    with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
        futures = {pool.submit(train_and_evaluate, raw, e, o, seed): (o, e) for o, e in order}
        for f in as_completed(futures):
            rows[futures[f]] = f.result()
            write_csv_atomic(pd.DataFrame([r for k in order for r in rows.get(k, [])]), out / "pilot.csv")
    table = pd.DataFrame([r for k in order for r in rows.get(k, [])])
    print(
        table.pivot_table(index=["env", "option", "method"], columns="setting", values="return_mean").round(1)
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
