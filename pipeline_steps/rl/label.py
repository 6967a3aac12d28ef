"""Stage `label`: train the IQL critic on the dataset, then label every transition.

Writes to data/label/<env>/seed<seed>/:
  labels.npz     advantages [N] float32 (A = min_i Q_i(s,a) - V(s)) and optimal [N] bool (o), in dataset order
  critic.pt      IQL checkpoint (Q ensemble, target Q, V, observation statistics, config)
  train_log.csv  losses every `log_every` steps (DVC plots)
  metrics.json   final losses, positive fraction, advantage quantiles, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pipeline_steps.algorithms.iql import IQL, optimality_labels
from pipeline_steps.core import paths, stage
from pipeline_steps.core.episodes import load_transitions
from pipeline_steps.core.io import save_npz_atomic
from pipeline_steps.core.params import Params
from pipeline_steps.core.training import TrainingStage, module_device

log = logging.getLogger(__name__)
ADV_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def transition_tensors(tr) -> dict[str, torch.Tensor]:
    return {
        "observations": torch.from_numpy(tr.observations),
        "actions": torch.from_numpy(tr.actions),
        "rewards": torch.from_numpy(tr.rewards),
        "next_observations": torch.from_numpy(tr.next_observations),
        "masks": torch.from_numpy(tr.masks),
    }


@torch.no_grad()
def compute_advantages(agent: IQL, obs: torch.Tensor, act: torch.Tensor, critic: str, chunk: int = 65536):
    """A for every transition, in chunks on the critic's device: [N], on the CPU."""
    dev = module_device(agent)
    return torch.cat(
        [
            agent.advantage(obs[i : i + chunk].to(dev), act[i : i + chunk].to(dev), critic).cpu()
            for i in range(0, len(obs), chunk)
        ]
    )


def label_threshold(adv: np.ndarray, threshold: float, kind: str) -> float:
    """The threshold on A: `threshold` itself, or (kind 'quantile') the threshold-quantile of adv."""
    return float(np.quantile(adv, threshold)) if kind == "quantile" else float(threshold)


def run(params: Params, env: str, seed: int, dataset_root: Path, out_dir: Path) -> dict:
    cfg = params.label
    ts = TrainingStage(
        params, "label", env, seed, out_dir, "critic.pt", sections=("label",), extra_outputs=("labels.npz",)
    )
    tr = load_transitions(dataset_root)
    data = transition_tensors(tr)
    agent = IQL(tr.observations.shape[1], tr.actions.shape[1], cfg, compile=params.runtime.compile)
    train_log = ts.fit(agent, data, cfg)

    adv = compute_advantages(agent, data["observations"], data["actions"], cfg.advantage_critic)  # [N]
    adv_np = adv.numpy().astype(np.float32)
    threshold = label_threshold(adv_np, cfg.threshold, cfg.threshold_type)
    opt = optimality_labels(adv, threshold, cfg.threshold_inclusive)  # [N] bool
    final = train_log.iloc[-1].to_dict()
    metrics = {
        "transitions": len(tr),
        "threshold_value": threshold,
        "positive_frac": float(opt.float().mean()),
        "adv_mean": float(adv_np.mean()),
        "adv_std": float(adv_np.std()),
        **{f"adv_q{int(q * 100):02d}": float(np.quantile(adv_np, q)) for q in ADV_QUANTILES},
        "critic_loss": final["critic/loss"],
        "value_loss": final["value/loss"],
        "steps": cfg.steps,
    }
    # labels.npz, the file the next stages read, is written last: a run killed before it leaves nothing
    # they would accept (each file is written atomically; TrainingStage removed any older ones)
    metrics = ts.save(agent, "iql", cfg, tr.actions.shape[1], train_log, metrics)
    save_npz_atomic(ts.out_dir / "labels.npz", advantages=adv_np, optimal=opt.numpy())
    ts.done()
    log.info("label %s seed%d: positive_frac %.3f", env, seed, metrics["positive_frac"])
    return metrics


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/label/<env>/seed<seed>"),
):
    """Train the IQL critic and write advantages and optimality labels."""
    p = stage.load(params, env, seed)
    out_dir = out or paths.label_dir(env, seed)
    stage.tracked(
        "label", p, out_dir, lambda: run(p, env, seed, paths.dataset_root(env), out_dir), env=env, seed=seed
    )


if __name__ == "__main__":
    stage.cli(main)
