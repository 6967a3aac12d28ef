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

import typer

from pipeline_steps import paths, tracking
from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.config import AwfParams, CfgrlParams, Params, load_params
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
    net, cfg = params.train_cfgrl, params.train_awf
    out_dir = Path(out_dir)
    clear_outputs(out_dir, OUTPUTS)
    gen = setup_torch(seed, params.runtime)
    data = labelled_tensors(dataset_root, labels_path)
    data.pop("optimal")
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    agent = AWF(obs_dim, act_dim, net, cfg, compile=params.runtime.compile)
    loop = SimpleNamespace(
        steps=cfg.steps, batch_size=cfg.batch_size, log_every=cfg.log_every, normalize_obs=net.normalize_obs
    )
    resume = stage_resume(params, out_dir, "train_awf", env, seed, sections=("train_cfgrl", "train_awf"))
    train_log, sec = fit(
        agent,
        data,
        loop,
        gen,
        f"train_awf {env} seed{seed}",
        update=lambda b: agent.update(b, gen),
        resume=resume,
    )
    final = train_log.iloc[-1].to_dict()
    metrics = {k.removeprefix("actor/").replace("/", "_"): v for k, v in final.items() if k != "step"}
    metrics.update({"ms_per_update": 1000 * sec, "steps": cfg.steps})
    write_csv_atomic(train_log, out_dir / "train_log.csv")
    write_json_atomic(metrics, out_dir / "metrics.json")
    config = {"net": net.model_dump(), "awf": cfg.model_dump()}
    save_agent(out_dir / "policies.pt", "awf", agent, config, env, seed, act_dim)  # last: what evaluate reads
    resume.clear()
    log.info("train_awf %s seed%d: %.2f ms/update", env, seed, 1000 * sec)
    return metrics


def load_awf(path: Path) -> AWF:
    """Rebuild the trained advantage-weighted flow policies from their checkpoint."""
    ckpt = load_checkpoint(path, "awf")
    net = CfgrlParams.model_validate(ckpt["config"]["net"])
    agent = AWF(ckpt["obs_dim"], ckpt["act_dim"], net, AwfParams.model_validate(ckpt["config"]["awf"]))
    agent.load_state_dict(ckpt["state_dict"])
    return agent.eval()


def main(
    env: str = typer.Option(..., help="dm_control task, e.g. walker-run"),
    seed: int = typer.Option(..., help="training seed (must be in params seeds)"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
    out: Path = typer.Option(None, help="output dir (default data/train_awf/<env>/seed<seed>)"),
):
    """Train the advantage-weighted flow baselines, one per 1/beta."""
    p = load_params(params)
    paths.check_env_seed(p, env, seed)
    out_dir = out or paths.awf_dir(env, seed)
    with tracking.stage_run(
        "train_awf",
        {
            "train_awf": p.train_awf.model_dump(),
            "train_cfgrl": p.train_cfgrl.model_dump(),
            "runtime": p.runtime.model_dump(),
        },
        env=env,
        seed=seed,
    ) as tracked:
        run(p, env, seed, paths.dataset_root(env), paths.label_dir(env, seed) / "labels.npz", out_dir)
        tracked.mirror(out_dir)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    typer.run(main)
