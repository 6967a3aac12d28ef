"""Stage `train_awr`: train the Gaussian AWR baselines (one per 1/beta) on the same advantages.

Writes to data/train_awr/<env>/seed<seed>/:
  policies.pt    checkpoint of all K policies (weights, config with the 1/beta list, obs statistics)
  train_log.csv  per-1/beta losses and AWR weight concentration every `log_every` steps (DVC plots)
  metrics.json   final losses and weight concentration per 1/beta, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline_steps import paths, stage
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.config import AwrParams, Params
from pipeline_steps.training import TrainingStage, labelled_tensors, restore_agent

log = logging.getLogger(__name__)


def final_metrics(train_log) -> dict:
    """The last row of a per-1/beta training log as metrics (actor/loss/inv_beta=3 -> loss_inv_beta=3)."""
    final = train_log.iloc[-1].to_dict()
    return {k.removeprefix("actor/").replace("/", "_"): v for k, v in final.items() if k != "step"}


def run(params: Params, env: str, seed: int, dataset_root: Path, labels_path: Path, out_dir: Path) -> dict:
    cfg = params.train_awr
    ts = TrainingStage(params, "train_awr", env, seed, out_dir, "policies.pt", sections=("train_awr",))
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("optimal")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = AWR(obs_dim, act_dim, cfg, compile=params.runtime.compile)
    from pipeline_steps.evaluate import awr_probe  # (evaluate imports this module)

    probe = awr_probe(env, seed, agent, cfg.eval_episodes) if cfg.eval_every else None
    train_log = ts.fit(agent, data, cfg, probe=probe)
    metrics = ts.save(agent, "awr", cfg, act_dim, train_log, {**final_metrics(train_log), "steps": cfg.steps})
    ts.done()
    return metrics


def load_policies(path: Path, device="cpu") -> AWR:
    """Rebuild the trained AWR policies from their checkpoint, on `device`."""
    return restore_agent(
        path, "awr", lambda c: AWR(c["obs_dim"], c["act_dim"], AwrParams.model_validate(c["config"])), device
    )


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/train_awr/<env>/seed<seed>"),
):
    """Train the AWR baselines, one per 1/beta."""
    p = stage.load(params, env, seed)
    out_dir = out or paths.awr_dir(env, seed)
    labels = paths.label_dir(env, seed) / "labels.npz"
    stage.tracked(
        "train_awr",
        p,
        out_dir,
        lambda: run(p, env, seed, paths.dataset_root(env), labels, out_dir),
        env=env,
        seed=seed,
    )


if __name__ == "__main__":
    stage.cli(main)
