"""Stage `train_awf`: train the advantage-weighted flow baselines (one velocity net per 1/beta).

The velocity network, time grid and optimiser are train_cfgrl's (its params), the per-sample weights
are AWR's min(exp(A / beta), max_weight) on the same advantages, and there is no guidance: the
baseline that separates "guidance" from "a flow policy instead of a Gaussian".

Writes to data/train_awf/<env>/seed<seed>/:
  policies.pt    checkpoint of all K velocity nets (weights, both config sections, obs statistics)
  train_log.csv  per-1/beta losses and weight concentration every `log_every` steps
  metrics.json   final losses and weight concentration per 1/beta, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.core import paths, stage, stage_shapes
from pipeline_steps.core.params import Params
from pipeline_steps.core.training import TrainingStage, final_metrics, labelled_tensors

log = logging.getLogger(__name__)


def run(params: Params, env: str, seed: int, dataset_root: Path, labels_path: Path, out_dir: Path) -> dict:
    net, cfg = params.train_cfgrl, params.train_awf
    ts = TrainingStage(
        params, "train_awf", env, seed, out_dir, "policies.pt", sections=("train_cfgrl", "train_awf")
    )
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("optimal")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = AWF(obs_dim, act_dim, net, cfg, compile=params.runtime.compile)
    loop = SimpleNamespace(
        steps=cfg.steps, batch_size=cfg.batch_size, log_every=cfg.log_every, normalize_obs=net.normalize_obs
    )
    train_log = ts.fit(agent, data, loop, update=lambda b: agent.update(b, ts.gen))
    config = {"net": net.model_dump(), "awf": cfg.model_dump()}
    metrics = ts.save(
        agent, "awf", config, act_dim, train_log, {**final_metrics(train_log), "steps": cfg.steps}
    )
    ts.done()
    return metrics


main = stage_shapes.labelled_main(
    "train_awf", run, paths.awf_dir, "Train the advantage-weighted flow baselines, one per 1/beta."
)

if __name__ == "__main__":
    stage.cli(main)
