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
import typer

from pipeline_steps import paths, tracking
from pipeline_steps.algorithms.iql import IQL, optimality_labels
from pipeline_steps.config import Params, load_params
from pipeline_steps.data import load_transitions, write_json_atomic
from pipeline_steps.training import (
    clear_outputs,
    fit,
    save_agent,
    save_npz_atomic,
    setup_torch,
    stage_resume,
    write_csv_atomic,
)

log = logging.getLogger(__name__)
ADV_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
OUTPUTS = ("labels.npz", "critic.pt", "train_log.csv", "metrics.json")


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
    """A for every transition, in chunks: [N]."""
    return torch.cat(
        [agent.advantage(obs[i : i + chunk], act[i : i + chunk], critic) for i in range(0, len(obs), chunk)]
    )


def label_threshold(adv: np.ndarray, threshold: float, kind: str) -> float:
    """The threshold on A: `threshold` itself, or (kind 'quantile') the threshold-quantile of adv."""
    return float(np.quantile(adv, threshold)) if kind == "quantile" else float(threshold)


def run(params: Params, env: str, seed: int, dataset_root: Path, out_dir: Path) -> dict:
    cfg = params.label
    out_dir = Path(out_dir)
    clear_outputs(out_dir, OUTPUTS)
    gen = setup_torch(seed, params.runtime)
    tr = load_transitions(dataset_root)
    data = transition_tensors(tr)
    agent = IQL(tr.observations.shape[1], tr.actions.shape[1], cfg, compile=params.runtime.compile)
    resume = stage_resume(params, out_dir, "label", env, seed, sections=("label",))
    train_log, sec = fit(agent, data, cfg, gen, f"label {env} seed{seed}", resume=resume)

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
        "ms_per_update": 1000 * sec,
        "steps": cfg.steps,
    }
    # labels.npz, the file the next stages read, is written last: a run killed before it leaves nothing
    # they would accept (each file is written atomically; clear_outputs removed any older ones)
    save_agent(out_dir / "critic.pt", "iql", agent, cfg, env, seed, tr.actions.shape[1])
    write_csv_atomic(train_log, out_dir / "train_log.csv")
    write_json_atomic(metrics, out_dir / "metrics.json")
    save_npz_atomic(out_dir / "labels.npz", advantages=adv_np, optimal=opt.numpy())
    resume.clear()
    log.info(
        "label %s seed%d: positive_frac %.3f, %.2f ms/update", env, seed, metrics["positive_frac"], 1000 * sec
    )
    return metrics


def main(
    env: str = typer.Option(..., help="dm_control task, e.g. walker-run"),
    seed: int = typer.Option(..., help="training seed (must be in params seeds)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(None, help="output dir (default data/label/<env>/seed<seed>)"),
):
    """Train the IQL critic and write advantages and optimality labels."""
    p = load_params(params)
    paths.check_env_seed(p, env, seed)
    out_dir = out or paths.label_dir(env, seed)
    with tracking.stage_run(
        "label", {"label": p.label.model_dump(), "runtime": p.runtime.model_dump()}, env=env, seed=seed
    ) as tracked:
        run(p, env, seed, paths.dataset_root(env), out_dir)
        tracked.mirror(out_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
