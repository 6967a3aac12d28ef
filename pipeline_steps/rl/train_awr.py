"""Stage `train_awr`: train the Gaussian AWR baselines (one per 1/beta) on the same advantages.

Writes to data/train_awr/<env>/seed<seed>/:
  policies.pt    checkpoint of all K policies (weights, config with the 1/beta list, obs statistics)
  train_log.csv  per-1/beta losses and AWR weight concentration every `log_every` steps (DVC plots)
  metrics.json   final losses and weight concentration per 1/beta, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.core import paths, stage, stage_shapes
from pipeline_steps.core.params import Params
from pipeline_steps.core.rollouts import awr_probe
from pipeline_steps.core.training import TrainingStage, final_metrics, labelled_tensors

log = logging.getLogger(__name__)


def run(params: Params, env: str, seed: int, dataset_root: Path, labels_path: Path, out_dir: Path) -> dict:
    cfg = params.train_awr
    ts = TrainingStage(params, "train_awr", env, seed, out_dir, "policies.pt", sections=("train_awr",))
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("optimal")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = AWR(obs_dim, act_dim, cfg, compile=params.runtime.compile)
    probe = awr_probe(env, seed, agent, cfg.eval_episodes) if cfg.eval_every else None
    train_log = ts.fit(agent, data, cfg, probe=probe)
    metrics = ts.save(agent, "awr", cfg, act_dim, train_log, {**final_metrics(train_log), "steps": cfg.steps})
    ts.done()
    return metrics


main = stage_shapes.labelled_main("train_awr", run, paths.awr_dir, "Train the AWR baselines, one per 1/beta.")

if __name__ == "__main__":
    stage.cli(main)
