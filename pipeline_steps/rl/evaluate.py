"""Stage `evaluate`: the w-sweep of CFGRL and the 1/beta-sweeps of AWR and advantage-weighted flow.

All (w, episode) pairs run in lockstep as one batch: one network call per flow step for every env
and both guidance branches (`CFGRL.sample_actions` with a per-env w), envs stepped together. Every
setting sees the same start states and flow noise (seeds depend on (seed, episode) only: w values
are compared on common random numbers), and every env has its own noise generator, so the batched
sweep returns what a sequential loop over the same seeds returns (up to float rounding).
Evaluating new w values needs no retraining: only this stage reruns.

Writes to data/evaluate/<env>/seed<seed>/:
  episodes.csv  method, w / inv_beta, seed, episode, return, length (one row per episode)
  summary.csv   per setting: mean, std, 95% CI of the return, and for CFGRL the drift from flow BC
  metrics.json  the summary as DVC metrics, plus the wall-clock cost per action of both policies
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.core import paths, stage
from pipeline_steps.core.device import module_device, setup_torch
from pipeline_steps.core.episodes import load_transitions
from pipeline_steps.core.evaluation import check_dims, episode_table, summarize, time_per_action
from pipeline_steps.core.io import clear_outputs, write_csv_atomic, write_json_atomic
from pipeline_steps.core.params import Params
from pipeline_steps.core.rollouts import (
    awf_act_fn,
    awr_act_fn,
    cfgrl_act_fn,
    eval_noise_seed,
    eval_reset_seed,
    run_lockstep,
)

log = logging.getLogger(__name__)


@torch.no_grad()
def drift_from_bc(agent: CFGRL, obs: torch.Tensor, ws: list[float], seed: int) -> dict[float, float]:
    """E ||a_w - a_0||^2 over the given states with the same noise for every w (a_0: flow BC)."""
    dev = module_device(agent)
    noise = torch.randn(len(obs), agent.act_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    obs = obs.to(dev)
    a_bc = agent.sample_actions(obs, 0.0, noise=noise)
    return {w: float((agent.sample_actions(obs, w, noise=noise) - a_bc).square().sum(-1).mean()) for w in ws}


def score(summary: pd.DataFrame) -> str:
    """The column a setting is ranked by: success_mean where the env reports success (OGBench: the
    reported metric), else return_mean."""
    return "success_mean" if "success_mean" in summary else "return_mean"


def setting_name(method: str, setting: float) -> str:
    """'cfgrl/w=1.5', 'awr/inv_beta=10' or 'awf/inv_beta=3'."""
    return f"{method}/{'w' if method == 'cfgrl' else 'inv_beta'}={setting:g}"


def run(
    params: Params,
    env: str,
    seed: int,
    dataset_root: Path,
    cfgrl_path: Path,
    awr_path: Path,
    awf_path: Path,
    out_dir: Path,
    baselines: bool = True,
) -> pd.DataFrame:
    """Evaluate CFGRL at every w and (unless baselines=False, for CFGRL-only studies) AWR and AWF at every
    1/beta; write episodes.csv, summary.csv and metrics.json; return the summary."""
    cfg = params.evaluate
    out_dir = Path(out_dir)
    clear_outputs(out_dir, ("episodes.csv", "summary.csv", "metrics.json"))
    dev = setup_torch(seed, params.runtime).device
    cfgrl, awr, awf = (
        CFGRL.from_checkpoint(cfgrl_path, dev),
        AWR.from_checkpoint(awr_path, dev),
        AWF.from_checkpoint(awf_path, dev),
    )
    check_dims(env, cfgrl.obs_norm.mean.shape[0], cfgrl.act_dim, str(cfgrl_path))
    check_dims(env, awr.obs_norm.mean.shape[0], awr.policies.log_std.shape[-1], str(awr_path))
    check_dims(env, awf.obs_norm.mean.shape[0], awf.act_dim, str(awf_path))
    ws, n_ep = cfg.guidance_ws, cfg.episodes
    reset_seeds = [eval_reset_seed(seed, e) for e in range(n_ep)]
    noise_seeds = [eval_noise_seed(seed, e) for e in range(n_ep)]

    # CFGRL: all (w, episode) pairs in one lockstep batch
    t0 = time.perf_counter()
    label = f"evaluate {env} seed{seed}"
    roll_c = run_lockstep(
        env,
        reset_seeds * len(ws),
        cfgrl_act_fn(cfgrl, np.repeat(ws, n_ep), noise_seeds * len(ws)),
        cfg.max_steps,
        desc=f"{label} CFGRL ({len(ws)} w x {n_ep} episodes)",
    )
    t_cfgrl = time.perf_counter() - t0
    tables = [episode_table("cfgrl", ws, seed, roll_c)]
    if baselines:
        # AWR: all (1/beta, episode) pairs in one lockstep batch
        k_awr = len(awr.cfg.inv_betas)
        t0 = time.perf_counter()
        roll_a = run_lockstep(
            env,
            reset_seeds * k_awr,
            awr_act_fn(awr, np.repeat(np.arange(k_awr), n_ep)),
            cfg.max_steps,
            desc=f"{label} AWR ({k_awr} x {n_ep} episodes)",
        )
        t_awr = time.perf_counter() - t0
        # advantage-weighted flow: all (1/beta, episode) pairs, the same flow noise as CFGRL
        k_awf = len(awf.cfg.inv_betas)
        roll_f = run_lockstep(
            env,
            reset_seeds * k_awf,
            awf_act_fn(awf, np.repeat(np.arange(k_awf), n_ep), noise_seeds * k_awf),
            cfg.max_steps,
            desc=f"{label} AW-flow ({k_awf} x {n_ep} episodes)",
        )
        tables += [
            episode_table("awr", awr.cfg.inv_betas, seed, roll_a),
            episode_table("awf", awf.cfg.inv_betas, seed, roll_f),
        ]
    episodes = pd.concat(tables, ignore_index=True)
    summary = summarize(episodes)

    tr = load_transitions(dataset_root)
    idx = np.random.default_rng(seed).choice(len(tr), min(cfg.drift_states, len(tr)), replace=False)
    drift = drift_from_bc(cfgrl, torch.from_numpy(tr.observations[np.sort(idx)]), ws, seed)
    summary["drift_from_bc"] = [
        drift[s] if m == "cfgrl" else np.nan for m, s in zip(summary.method, summary.setting)
    ]

    one_obs = torch.from_numpy(tr.observations[:1])  # an action: the state there, the action back
    timing = {
        "cfgrl_ms_per_action": 1000
        * time_per_action(lambda: cfgrl.sample_actions(one_obs.to(dev), 1.0).cpu(), cfg.timing_repeats),
        "awr_ms_per_action": 1000
        * time_per_action(lambda: awr.sample_actions(one_obs.to(dev)).cpu(), cfg.timing_repeats),
        "cfgrl_sweep_seconds": t_cfgrl,
        **({"awr_sweep_seconds": t_awr} if baselines else {}),
    }
    timing["cfgrl_over_awr_cost"] = timing["cfgrl_ms_per_action"] / timing["awr_ms_per_action"]
    metrics = {
        "dataset_return_mean": float(tr.episode_returns.mean()),
        **{
            setting_name(r["method"], r["setting"]): {
                k: r[k]
                for k in summary.columns[3:]
                if not pd.isna(r[k])  # return_*, success_*, drift
            }
            for _, r in summary.iterrows()
        },
        "cfgrl_best_w": float(
            summary[summary.method == "cfgrl"].sort_values(score(summary)).setting.iloc[-1]
        ),
        "timing": timing,
    }
    write_json_atomic(metrics, out_dir / "metrics.json")
    write_csv_atomic(summary, out_dir / "summary.csv")
    write_csv_atomic(episodes, out_dir / "episodes.csv")  # last: what plot reads (old ones were cleared)
    log.info("evaluate %s seed%d:\n%s", env, seed, summary.to_string(index=False))
    return summary


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/evaluate/<env>/seed<seed>"),
):
    """Evaluate CFGRL at every w and AWR at every 1/beta."""
    p = stage.load(params, env, seed)
    out_dir = out or paths.evaluate_dir(env, seed)
    policies = (
        paths.cfgrl_dir(env, seed) / "policy.pt",
        paths.awr_dir(env, seed) / "policies.pt",
        paths.awf_dir(env, seed) / "policies.pt",
    )
    stage.tracked(
        "evaluate",
        p,
        out_dir,
        lambda: run(p, env, seed, paths.dataset_root(env), *policies, out_dir),
        env=env,
        seed=seed,
    )


if __name__ == "__main__":
    stage.cli(main)
