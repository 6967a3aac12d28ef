"""Stage `train_gc`: one goal-conditioned policy on an OGBench dataset, trained with hindsight goals by
plain supervised learning (no value function, no labels).

  --algo cfgrl      goal-conditioned CFGRL: flow matching with the goal dropped to a learned null goal
                    with probability train_gc.goal_dropout (sampled at any w by gc_evaluate)
  --algo flow_gcbc  the same flow network without dropout (guidance-free flow GCBC)
  --algo gcbc       Gaussian GCBC (constant std, mean action at test time)
  --algo hcfgrl, flow_hgcbc, hgcbc   their hierarchical counterparts: a subgoal level (the subgoal
                    train_gc.subgoal_steps ahead, clipped at the goal) above an action level (hgcfm.py)

Hindsight goals (method.md §8): for a state s_i of an episode whose last state is s_e, the goal is the
oracle representation of s_j with j ~ U{i+1, ..., e}: strictly after s_i, never across an episode end.

Writes to data/train_gc/<env>/<algo>/seed<seed>/: policy.pt (weights, config, dims), train_log.csv,
metrics.json (final loss, ms per update).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import typer

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.core import paths, stage
from pipeline_steps.core.episodes import DatasetError, Episode, read_episodes
from pipeline_steps.core.params import GC_ALGOS, HIER_ALGOS, Params
from pipeline_steps.core.training import TrainingStage
from pipeline_steps.envs import ogbench_gc

log = logging.getLogger(__name__)


class HindsightSampler:
    """Minibatches {observations [B, O], actions [B, A], goals [B, G]}: a uniform (state, action) row and
    the goal representation of a uniform strictly-later state of the same episode. With subgoal_steps k
    (the hierarchical policies) also {subgoals [B, G], low_goals [B, G]}: the high level's target
    rep(s_min(i + k, j)) and the low level's condition rep(s_min(i + k, e)) (hgcfm.py); they use no
    randomness, so the flat policies' batches are the same either way."""

    def __init__(
        self,
        data: dict[str, torch.Tensor],
        batch_size: int,
        generator: torch.Generator,
        subgoal_steps: int | None = None,
    ):
        self.states, self.goal_reps = data["states"], data["goal_reps"]  # [S, O], [S, G]: all states
        self.actions, self.row_state, self.row_last = data["actions"], data["row_state"], data["row_last"]
        self.batch_size, self.generator, self.subgoal_steps = batch_size, generator, subgoal_steps

    def goal_index(self, i: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """j ~ U{i+1, ..., e} for states i whose episode's last state is e: [B]."""
        u = torch.rand(len(i), generator=self.generator, dtype=torch.float64, device=i.device)
        return torch.minimum(i + 1 + (u * (e - i)).long(), e)

    def sample(self) -> dict[str, torch.Tensor]:
        g = self.generator  # on the device the tensors live on: no host round trip per step
        idx = torch.randint(len(self.actions), (self.batch_size,), generator=g, device=g.device)  # rows [B]
        i, e = self.row_state[idx], self.row_last[idx]  # [B]: state index, its episode's last state
        j = self.goal_index(i, e)  # [B]
        batch = {"observations": self.states[i], "actions": self.actions[idx], "goals": self.goal_reps[j]}
        if self.subgoal_steps is not None:
            ahead = i + self.subgoal_steps
            batch["subgoals"] = self.goal_reps[torch.minimum(ahead, j)]  # z*: never past the goal
            batch["low_goals"] = self.goal_reps[torch.minimum(ahead, e)]  # z_l: never past the episode
        return batch


def goal_tensors(name: str, episodes: list[Episode]) -> dict[str, torch.Tensor]:
    """Flat tensors for HindsightSampler: every state and its oracle goal representation, and per
    (state, action) row its state's index and the index of its episode's last state."""
    if not episodes or not episodes[0].infos or "qpos" not in episodes[0].infos:
        raise DatasetError(f"{name}: the dataset has no qpos infos (not made by gc_dataset?)")
    lengths = np.array([len(ep.actions) for ep in episodes])  # T per episode
    first = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])  # index of each episode's first state
    env = ogbench_gc.make_gc_env(name)
    infos = {k: np.concatenate([ep.infos[k] for ep in episodes]) for k in episodes[0].infos}
    reps = ogbench_gc.oracle_reps(name, env, infos)
    env.close()
    return {
        "states": torch.from_numpy(np.concatenate([ep.observations for ep in episodes]).astype(np.float32)),
        "goal_reps": torch.from_numpy(reps),
        "actions": torch.from_numpy(np.concatenate([ep.actions for ep in episodes]).astype(np.float32)),
        "row_state": torch.from_numpy(np.concatenate([f + np.arange(T) for f, T in zip(first, lengths)])),
        "row_last": torch.from_numpy(np.repeat(first + lengths, lengths)),
    }


def run(params: Params, env: str, seed: int, algo: str, dataset_root: Path, out_dir: Path) -> dict:
    cfg = params.train_gc
    ts = TrainingStage(params, f"train_gc/{algo}", env, seed, out_dir, "policy.pt", sections=("train_gc",))
    data = goal_tensors(env, read_episodes(dataset_root))
    obs_dim, goal_dim = data["states"].shape[1], data["goal_reps"].shape[1]
    act_dim = data["actions"].shape[1]
    agent = gc_policies.build(algo, obs_dim, goal_dim, act_dim, cfg, compile=params.runtime.compile)
    train_log = ts.fit(
        agent,
        data,
        cfg,
        update=lambda b: agent.update(b, ts.gen),
        make_sampler=lambda on_device: HindsightSampler(
            on_device, cfg.batch_size, ts.gen, cfg.subgoal_steps if algo in HIER_ALGOS else None
        ),
    )
    metrics = {
        "actor_loss": float(train_log.iloc[-1]["actor/loss"]),
        "steps": cfg.steps,
        "rows": len(data["actions"]),
    }
    config = {"algo": algo, "goal_dim": goal_dim, "train_gc": cfg.model_dump()}
    metrics = ts.save(agent, "gc_policy", config, act_dim, train_log, metrics)
    ts.done()
    return metrics


def main(
    env: str = stage.ENV,
    seed: int = stage.SEED,
    algo: str = typer.Option(..., help=f"one of {', '.join(GC_ALGOS)}"),
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/train_gc/<env>/<algo>/seed<seed>"),
):
    """Train one goal-conditioned policy (CFGRL, flow GCBC or Gaussian GCBC) with hindsight goals."""
    if algo not in GC_ALGOS:
        raise typer.BadParameter(f"algo {algo!r} is not one of {GC_ALGOS}", param_hint="--algo")
    p = stage.load_gc(params, env, seed)
    out_dir = out or paths.train_gc_dir(env, algo, seed)
    stage.tracked(
        "train_gc",
        p,
        out_dir,
        lambda: run(p, env, seed, algo, paths.gc_dataset_root(env), out_dir),
        env=env,
        seed=seed,
        tags={"algo": algo},
    )


if __name__ == "__main__":
    stage.cli(main)
