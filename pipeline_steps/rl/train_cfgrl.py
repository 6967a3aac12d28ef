"""Stage `train_cfgrl`: train the CFGRL flow policy on the labelled dataset.

Writes to data/train_cfgrl/<env>/seed<seed>/:
  policy.pt      checkpoint with everything needed to sample at any w later (weights, config, obs statistics)
  train_log.csv  losses every `log_every` steps (DVC plots)
  metrics.json   final losses, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from pipeline_steps.algorithms.awr import weight_concentration
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.core import paths, stage, stage_shapes
from pipeline_steps.core.params import CfgrlParams, Params
from pipeline_steps.core.rollouts import cfgrl_probe
from pipeline_steps.core.training import TrainingStage, labelled_tensors

log = logging.getLogger(__name__)


def loss_weight_concentration(optimal: torch.Tensor, cfg: CfgrlParams) -> dict[str, float]:
    """How concentrated CFGRL's per-sample loss weights are per batch, comparable to AWR's weights:
    binary_weighted weighs a sample o + uncond_weight; ternary_dropout weighs every sample 1."""
    w = (
        optimal.float() + cfg.uncond_weight
        if cfg.label_scheme == "binary_weighted"
        else torch.ones(len(optimal))
    )
    n = len(w) // cfg.batch_size * cfg.batch_size
    batches = w[:n].reshape(-1, cfg.batch_size) if n else w[None]  # [n_batches, B]
    return {f"weight_{k}": float(v.mean()) for k, v in weight_concentration(batches).items()}


def run(params: Params, env: str, seed: int, dataset_root: Path, labels_path: Path, out_dir: Path) -> dict:
    cfg = params.train_cfgrl
    ts = TrainingStage(params, "train_cfgrl", env, seed, out_dir, "policy.pt", sections=("train_cfgrl",))
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("advantages")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = CFGRL(obs_dim, act_dim, cfg, compile=params.runtime.compile)
    probe = cfgrl_probe(env, seed, agent, cfg.eval_ws, cfg.eval_episodes) if cfg.eval_every else None
    train_log = ts.fit(agent, data, cfg, update=lambda b: agent.update(b, ts.gen), probe=probe)
    metrics = {
        "actor_loss": train_log.iloc[-1]["actor/loss"],
        "steps": cfg.steps,
        "positive_frac": float(data["optimal"].float().mean()),
        **loss_weight_concentration(data["optimal"], cfg),
    }
    metrics = ts.save(agent, "cfgrl", cfg, act_dim, train_log, metrics)
    ts.done()
    return metrics


main = stage_shapes.labelled_main("train_cfgrl", run, paths.cfgrl_dir, "Train the CFGRL flow policy.")

if __name__ == "__main__":
    stage.cli(main)
