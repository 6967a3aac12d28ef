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
import typer

from pipeline_steps import paths, tracking
from pipeline_steps.algorithms.awr import weight_concentration
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.config import CfgrlParams, Params, load_params
from pipeline_steps.data import write_json_atomic
from pipeline_steps.training import (
    clear_outputs,
    fit,
    labelled_tensors,
    load_checkpoint,
    save_agent,
    setup_torch,
    stage_resume,
    write_csv_atomic,
)

log = logging.getLogger(__name__)
OUTPUTS = ("policy.pt", "train_log.csv", "metrics.json")


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
    out_dir = Path(out_dir)
    clear_outputs(out_dir, OUTPUTS)
    gen = setup_torch(seed, params.runtime)
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("advantages")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = CFGRL(obs_dim, act_dim, cfg, compile=params.runtime.compile)
    resume = stage_resume(params, out_dir, "train_cfgrl", env, seed, sections=("train_cfgrl",))
    train_log, sec = fit(
        agent,
        data,
        cfg,
        gen,
        f"train_cfgrl {env} seed{seed}",
        update=lambda b: agent.update(b, gen),
        resume=resume,
    )
    final = train_log.iloc[-1].to_dict()
    metrics = {
        "actor_loss": final["actor/loss"],
        "ms_per_update": 1000 * sec,
        "steps": cfg.steps,
        "positive_frac": float(data["optimal"].float().mean()),
        **loss_weight_concentration(data["optimal"], cfg),
    }
    write_csv_atomic(train_log, out_dir / "train_log.csv")
    write_json_atomic(metrics, out_dir / "metrics.json")
    save_agent(out_dir / "policy.pt", "cfgrl", agent, cfg, env, seed, act_dim)  # last: what evaluate reads
    resume.clear()
    log.info("train_cfgrl %s seed%d: %.2f ms/update", env, seed, 1000 * sec)
    return metrics


def load_policy(path: Path) -> CFGRL:
    """Rebuild a trained CFGRL policy from its checkpoint (ready for sample_actions at any w)."""
    ckpt = load_checkpoint(path, "cfgrl")
    agent = CFGRL(ckpt["obs_dim"], ckpt["act_dim"], CfgrlParams.model_validate(ckpt["config"]))
    agent.load_state_dict(ckpt["state_dict"])
    return agent.eval()


def main(
    env: str = typer.Option(..., help="dm_control task, e.g. walker-run"),
    seed: int = typer.Option(..., help="training seed (must be in params seeds)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(None, help="output dir (default data/train_cfgrl/<env>/seed<seed>)"),
):
    """Train the CFGRL flow policy."""
    p = load_params(params)
    paths.check_env_seed(p, env, seed)
    out_dir = out or paths.cfgrl_dir(env, seed)
    with tracking.stage_run(
        "train_cfgrl",
        {"train_cfgrl": p.train_cfgrl.model_dump(), "runtime": p.runtime.model_dump()},
        env=env,
        seed=seed,
    ) as tracked:
        run(p, env, seed, paths.dataset_root(env), paths.label_dir(env, seed) / "labels.npz", out_dir)
        tracked.mirror(out_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
