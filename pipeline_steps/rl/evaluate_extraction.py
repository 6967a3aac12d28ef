"""Stage `evaluate_extraction`: the policy-extraction methods beside CFGRL, on one critic (method.md §10).

  ifql          argmax_i min_j Q_j(s, a_i) over N flow-BC candidates (IFQL; IDQL's eval_actions), one
                setting per N in extraction.candidates (N = 1: flow BC itself, at extraction.flow_steps)
  resample_n<N> i ~ softmax(alpha A(s, a_i)) over N candidates: resampling of pi_hat exp(alpha A), the
                target of AWR and CFGRL by another sampler; one setting per alpha
  fql           FQL's one-step policy mu(s, z) at each trained alpha (train_fql)
Candidates come from train_cfgrl's w = 0 branch, Q and V from the label stage's critic. The episodes
are the evaluate stage's: the same start states and the same per-episode noise stream (CFGRL's noise
is rejection sampling's candidate 0 and FQL's z), so every setting pairs with every CFGRL w. Each
method runs all its (setting, episode) pairs as one lockstep batch.

Writes to data/evaluate_extraction/<env>/seed<seed>/:
  episodes.csv  method, setting (N, alpha), seed, episode, return, length (one row per episode)
  summary.csv   per setting: mean, std, 95% CI of the return
  metrics.json  the summary as DVC metrics, plus the wall-clock cost per action of every method (one
                state, and a batch of `timing_batch` states) beside CFGRL's and AWR's
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.fql import FQL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.algorithms.rejection import RejectionSampler
from pipeline_steps.core import paths, stage
from pipeline_steps.core.device import setup_torch
from pipeline_steps.core.episodes import load_transitions
from pipeline_steps.core.evaluation import check_dims, episode_table, summarize, time_per_action
from pipeline_steps.core.io import clear_outputs, write_csv_atomic, write_json_atomic
from pipeline_steps.core.params import Params
from pipeline_steps.core.rollouts import (
    awf_act_fn,
    eval_extra_noise_seed,
    eval_noise_seed,
    eval_reset_seed,
    rejection_act_fn,
    run_lockstep,
)

log = logging.getLogger(__name__)
TIMING_BATCH = 256  # states per batched cost measurement


def rejection_settings(cfg) -> list[tuple[str, int, float]]:
    """(method, N, alpha) per rejection setting: argmax (alpha inf) per N, then resampling per (N, alpha)."""
    out = [("ifql", n, math.inf) for n in cfg.candidates]
    return out + [(f"resample_n{n}", n, a) for n in cfg.resample_candidates for a in cfg.resample_alphas]


def cost_per_action(policies: dict, obs: torch.Tensor, repeats: int) -> dict[str, float]:
    """ms per action of each policy (a function of a state batch [B, O]): one state, and per state of a
    batch of len(obs) states."""
    out = {}
    for name, fn in policies.items():
        one, batch = (
            (lambda fn=fn: fn(obs[:1]).cpu()),
            (lambda fn=fn: fn(obs).cpu()),
        )  # .cpu(): the action back
        out[f"{name}_ms_per_action"] = 1000 * time_per_action(one, repeats)
        out[f"{name}_ms_per_action_batched"] = 1000 * time_per_action(batch, repeats) / len(obs)
    return out


def run(
    params: Params,
    env: str,
    seed: int,
    dataset_root: Path,
    cfgrl_path: Path,
    critic_path: Path,
    fql_path: Path,
    awr_path: Path,
    out_dir: Path,
) -> pd.DataFrame:
    """Evaluate rejection sampling (argmax per N, resampling per (N, alpha)) and FQL (per alpha); write
    episodes.csv, summary.csv and metrics.json; return the summary."""
    cfg, n_ep = params.extraction, params.evaluate.episodes
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("episodes.csv", "summary.csv", "metrics.json"))
    dev = setup_torch(seed, params.runtime).device
    cfgrl, critic = CFGRL.from_checkpoint(cfgrl_path, dev), IQL.from_checkpoint(critic_path, dev)
    fql, awr = FQL.from_checkpoint(fql_path, dev), AWR.from_checkpoint(awr_path, dev)
    for what, agent, act_dim in ((cfgrl_path, cfgrl, cfgrl.act_dim), (fql_path, fql, fql.act_dim)):
        check_dims(env, agent.obs_norm.mean.shape[0], act_dim, str(what))
    check_dims(env, critic.obs_norm.mean.shape[0], cfgrl.act_dim, str(critic_path))  # Q(s, a) of the same a
    sampler = RejectionSampler(cfgrl, critic, cfg.flow_steps)
    reset_seeds = [eval_reset_seed(seed, e) for e in range(n_ep)]
    noise_seeds = [eval_noise_seed(seed, e) for e in range(n_ep)]
    extra_seeds = [eval_extra_noise_seed(seed, e) for e in range(n_ep)]
    label = f"evaluate_extraction {env} seed{seed}"
    max_steps = params.evaluate.max_steps  # the evaluate stage's cut of its episodes (0: the env's limit)

    settings = rejection_settings(cfg)
    counts = np.repeat([n for _, n, _ in settings], n_ep)
    alphas = np.repeat([a for _, _, a in settings], n_ep)
    roll_r = run_lockstep(
        env,
        reset_seeds * len(settings),
        rejection_act_fn(sampler, counts, alphas, noise_seeds * len(settings), extra_seeds * len(settings)),
        max_steps,
        desc=f"{label} rejection sampling ({len(settings)} settings x {n_ep} episodes)",
    )
    k = len(fql.cfg.alphas)
    roll_f = run_lockstep(
        env,
        reset_seeds * k,
        awf_act_fn(fql, np.repeat(np.arange(k), n_ep), noise_seeds * k),
        max_steps,
        desc=f"{label} FQL ({k} alphas x {n_ep} episodes)",
    )
    tables = []
    for i, (method, n, a) in enumerate(settings):
        part = episode_table(method, [n if math.isinf(a) else a], seed, _slice(roll_r, i * n_ep, n_ep))
        tables.append(part)
    episodes = pd.concat([*tables, episode_table("fql", fql.cfg.alphas, seed, roll_f)], ignore_index=True)
    summary = summarize(episodes)

    tr = load_transitions(dataset_root)
    obs = torch.from_numpy(tr.observations[:TIMING_BATCH]).to(dev)
    gen = torch.Generator().manual_seed(seed)

    def noise(b: int, width: int) -> torch.Tensor:
        return torch.randn(b, width, generator=gen).to(dev)

    A = cfgrl.act_dim

    def rejection(n: int, a: float):
        return lambda o: sampler.sample_actions(
            o, torch.full((len(o),), n, device=dev), torch.full((len(o),), a, device=dev),
            noise(len(o), A), noise(len(o), (n - 1) * A + 1),
        )  # fmt: skip

    policies = {
        "cfgrl_w1": lambda o: cfgrl.sample_actions(o, 1.0, noise=noise(len(o), A)),
        "awr": lambda o: awr.sample_actions(o)[0],
        **{f"ifql_n{n}": rejection(n, math.inf) for n in cfg.candidates},
        **{f"resample_n{n}": rejection(n, 1.0) for n in cfg.resample_candidates},
        "fql": lambda o: fql.sample_actions(o, noise=noise(len(o), A))[0],
    }
    timing = cost_per_action(policies, obs, params.evaluate.timing_repeats)
    metrics = {
        **{
            f"{r['method']}/{'N' if r['method'] == 'ifql' else 'alpha'}={r['setting']:g}": {
                c: r[c] for c in summary.columns[3:] if not pd.isna(r[c])
            }
            for _, r in summary.iterrows()
        },
        "timing": timing,
    }
    write_json_atomic(metrics, out_dir / "metrics.json")
    write_csv_atomic(summary, out_dir / "summary.csv")
    write_csv_atomic(episodes, out_dir / "episodes.csv")  # last: what plot reads
    log.info("evaluate_extraction %s seed%d:\n%s", env, seed, summary.to_string(index=False))
    return summary


def _slice(roll, start: int, n: int):
    """Episodes start .. start + n - 1 of a lockstep batch's rollouts."""
    return type(roll)(*(np.asarray(v)[start : start + n] for v in roll))


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/evaluate_extraction/<env>/seed<seed>"),
):
    """Evaluate rejection sampling from flow BC (IFQL / IDQL) and FQL on the label critic."""
    p = stage.load(params, env, seed)
    out_dir = out or paths.evaluate_extraction_dir(env, seed)
    inputs = (
        paths.dataset_root(env),
        paths.cfgrl_dir(env, seed) / "policy.pt",
        paths.label_dir(env, seed) / "critic.pt",
        paths.fql_dir(env, seed) / "policies.pt",
        paths.awr_dir(env, seed) / "policies.pt",
    )
    body = lambda: run(p, env, seed, *inputs, out_dir)  # noqa: E731
    stage.tracked("evaluate_extraction", p, out_dir, body, env=env, seed=seed)


if __name__ == "__main__":
    stage.cli(main)
