"""Stage `train_fql`: FQL policy extraction on the label stage's frozen critic, one one-step policy per
alpha (method.md §10).

The teacher is train_cfgrl's flow BC (its w = 0 branch, frozen), the critic the label stage's IQL Q
(the one the CFGRL labels came from, frozen); only the one-step policies mu_k(s, z) are trained, so
FQL, rejection sampling, AWR and CFGRL extract a policy from one value function.

Writes to data/train_fql/<env>/seed<seed>/:
  policies.pt    checkpoint of the K one-step policies (weights, config, obs statistics)
  train_log.csv  per-alpha loss, distillation error and Q every `log_every` steps
  metrics.json   their final values per alpha, ms per update (DVC metrics)
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.fql import FQL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.core import paths, stage
from pipeline_steps.core.episodes import load_transitions
from pipeline_steps.core.params import Params
from pipeline_steps.core.training import TrainingStage, final_metrics

log = logging.getLogger(__name__)


def run(
    params: Params,
    env: str,
    seed: int,
    dataset_root: Path,
    critic_path: Path,
    cfgrl_path: Path,
    out_dir: Path,
) -> dict:
    cfg = params.train_fql
    ts = TrainingStage(params, "train_fql", env, seed, out_dir, "policies.pt", sections=("train_fql",))
    # a resume checkpoint belongs to this teacher and critic only
    ts.resume.identity["inputs"] = {
        str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (critic_path, cfgrl_path)
    }
    dev = ts.gen.device
    teacher, critic = CFGRL.from_checkpoint(cfgrl_path, dev), IQL.from_checkpoint(critic_path, dev)
    tr = load_transitions(dataset_root)
    data = {"observations": torch.from_numpy(tr.observations), "actions": torch.from_numpy(tr.actions)}
    obs_dim, act_dim = data["observations"].shape[1], data["actions"].shape[1]
    for what, agent in ((cfgrl_path, teacher), (critic_path, critic)):
        if agent.obs_norm.mean.shape[0] != obs_dim:
            raise ValueError(
                f"{what}: trained for observation size {agent.obs_norm.mean.shape[0]}, the data has {obs_dim}"
            )
    agent = FQL(obs_dim, act_dim, cfg, compile=params.runtime.compile).attach(teacher, critic)
    train_log = ts.fit(agent, data, cfg, update=lambda b: agent.update(b, ts.gen))
    metrics = ts.save(agent, "fql", cfg, act_dim, train_log, {**final_metrics(train_log), "steps": cfg.steps})
    ts.done()
    return metrics


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option(str(paths.fql_dir("<env>", "<seed>"))),
):
    """Train FQL's one-step policies (one per alpha) on the frozen critic and flow-BC teacher."""
    p = stage.load(params, env, seed)
    out_dir = out or paths.fql_dir(env, seed)
    inputs = (
        paths.dataset_root(env),
        paths.label_dir(env, seed) / "critic.pt",
        paths.cfgrl_dir(env, seed) / "policy.pt",
    )
    stage.tracked("train_fql", p, out_dir, lambda: run(p, env, seed, *inputs, out_dir), env=env, seed=seed)


if __name__ == "__main__":
    stage.cli(main)
