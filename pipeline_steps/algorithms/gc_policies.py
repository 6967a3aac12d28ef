"""The goal-conditioned policies of the paper's Table 3 by name (params GC_ALGOS), built and restored
from one checkpoint kind ('gc_policy'):
- cfgrl:      GCFlow with goal dropout (a learned null goal): guidance over the goal (gcfm.py);
- flow_gcbc:  GCFlow without dropout: the conditional velocity only;
- gcbc:       a Gaussian goal-conditioned BC policy (gcbc.py);
and their hierarchical counterparts (params HIER_ALGOS: a subgoal level above an action level):
- hcfgrl:     HGCFlow with dropout at both levels: guidance at both (hgcfm.py);
- flow_hgcbc: HGCFlow without dropout;
- hgcbc:      two Gaussian policies (hgcbc.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline_steps.algorithms.gcbc import GaussianGCBC
from pipeline_steps.algorithms.gcfm import GCFlow
from pipeline_steps.algorithms.hgcbc import GaussianHGCBC
from pipeline_steps.algorithms.hgcfm import HGCFlow
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import GC_ALGOS, TrainGcParams


def build(algo: str, obs_dim: int, goal_dim: int, act_dim: int, cfg: TrainGcParams, compile=False):
    if algo == "cfgrl":
        return GCFlow(obs_dim, goal_dim, act_dim, cfg, goal_dropout=cfg.goal_dropout, compile=compile)
    if algo == "flow_gcbc":
        return GCFlow(obs_dim, goal_dim, act_dim, cfg, goal_dropout=0.0, compile=compile)
    if algo == "gcbc":
        return GaussianGCBC(obs_dim, goal_dim, act_dim, cfg, compile=compile)
    if algo == "hcfgrl":
        return HGCFlow(obs_dim, goal_dim, act_dim, cfg, goal_dropout=cfg.goal_dropout, compile=compile)
    if algo == "flow_hgcbc":
        return HGCFlow(obs_dim, goal_dim, act_dim, cfg, goal_dropout=0.0, compile=compile)
    if algo == "hgcbc":
        return GaussianHGCBC(obs_dim, goal_dim, act_dim, cfg, compile=compile)
    raise ValueError(f"unknown algo {algo!r}; one of {GC_ALGOS}")


def is_hierarchical(agent) -> bool:
    """A subgoal level above an action level: `agent.sample` returns (action, subgoal)."""
    return isinstance(agent, (HGCFlow, GaussianHGCBC))


def from_checkpoint(path: Path, device="cpu"):
    """Rebuild a trained goal-conditioned policy from its checkpoint, on `device`; `.algo` says which one."""

    def make(c):
        cfg = TrainGcParams.model_validate(c["config"]["train_gc"])
        agent = build(c["config"]["algo"], c["obs_dim"], c["config"]["goal_dim"], c["act_dim"], cfg)
        agent.algo, agent.goal_dim = c["config"]["algo"], c["config"]["goal_dim"]
        return agent

    return restore_agent(path, "gc_policy", make, device)
