"""Stage `train_awr`: train the Gaussian AWR baselines (one per 1/beta) on the same advantages.

Writes to data/train_awr/<env>/seed<seed>/:
  policies.pt    checkpoint of all K policies (weights, config with the 1/beta list, obs statistics)
  train_log.csv  per-1/beta losses and AWR weight concentration every `log_every` steps (DVC plots)
  metrics.json   final losses and weight concentration per 1/beta, ms per update (DVC metrics)
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from pipeline_steps import paths, tracking
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.config import AwrParams, Params, load_params
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
OUTPUTS = ("policies.pt", "train_log.csv", "metrics.json")


def run(params: Params, env: str, seed: int, dataset_root: Path, labels_path: Path, out_dir: Path) -> dict:
    cfg = params.train_awr
    out_dir = Path(out_dir)
    clear_outputs(out_dir, OUTPUTS)
    gen = setup_torch(seed, params.runtime)
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("optimal")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = AWR(obs_dim, act_dim, cfg, compile=params.runtime.compile)
    resume = stage_resume(params, out_dir, "train_awr", env, seed, sections=("train_awr",))
    train_log, sec = fit(agent, data, cfg, gen, f"train_awr {env} seed{seed}", resume=resume)
    final = train_log.iloc[-1].to_dict()
    metrics = {k.removeprefix("actor/").replace("/", "_"): v for k, v in final.items() if k != "step"}
    metrics.update({"ms_per_update": 1000 * sec, "steps": cfg.steps})
    write_csv_atomic(train_log, out_dir / "train_log.csv")
    write_json_atomic(metrics, out_dir / "metrics.json")
    save_agent(out_dir / "policies.pt", "awr", agent, cfg, env, seed, act_dim)  # last: what evaluate reads
    resume.clear()
    log.info("train_awr %s seed%d: %.2f ms/update", env, seed, 1000 * sec)
    return metrics


def load_policies(path: Path) -> AWR:
    """Rebuild the trained AWR policies from their checkpoint."""
    ckpt = load_checkpoint(path, "awr")
    agent = AWR(ckpt["obs_dim"], ckpt["act_dim"], AwrParams.model_validate(ckpt["config"]))
    agent.load_state_dict(ckpt["state_dict"])
    return agent.eval()


def main(
    env: str = typer.Option(..., help="dm_control task, e.g. walker-run"),
    seed: int = typer.Option(..., help="training seed (must be in params seeds)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(None, help="output dir (default data/train_awr/<env>/seed<seed>)"),
):
    """Train the AWR baselines, one per 1/beta."""
    p = load_params(params)
    paths.check_env_seed(p, env, seed)
    out_dir = out or paths.awr_dir(env, seed)
    with tracking.stage_run(
        "train_awr",
        {"train_awr": p.train_awr.model_dump(), "runtime": p.runtime.model_dump()},
        env=env,
        seed=seed,
    ) as tracked:
        run(p, env, seed, paths.dataset_root(env), paths.label_dir(env, seed) / "labels.npz", out_dir)
        tracked.mirror(out_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
