"""Hierarchical goal-conditioned CFGRL (HCFGRL) and flow HGCBC: guidance at two levels, no value function.

The paper's hierarchical variant (Table 3); the authors' OGBench agents `hcfgrl.py` / `hgcfbc.py` and
their `HGCDataset` (method.md §11). Two velocity networks of the flat agent's kind (gcfm.py), each with
its own learned null vector replacing its condition with probability p (goal_dropout) per sample:
    high level  v_h(s, g, z_t, t) -> [B, G]: a subgoal z in the oracle representation (pointmaze: xy),
                conditioned on the goal g
    low level   v_l(s, z, x_t, t) -> [B, A]: the action, conditioned on a subgoal z
Hindsight targets (the training stage's sampler, gc/train.py), for state s_i, a goal g = rep(s_j) with
j ~ U{i+1, ..., e} (e: the episode's last state) and k = subgoal_steps:
    z*  = rep(s_min(i + k, j))   the high level's target: k steps ahead, never past the goal
    z_l = rep(s_min(i + k, e))   the low level's condition: k steps ahead, not clipped to the goal
Losses, plain flow matching at both levels, summed (one Adam over both networks):
    L_h = mean (v_h(s, g~, z_t, t_h) - (z* - z_0))^2,  z_t = (1 - t_h) z_0 + t_h z*
    L_l = mean (v_l(s, z_l~, x_t, t_l) - (a - x_0))^2,  x_t = (1 - t_l) x_0 + t_l a
    z_0, x_0 ~ N(0, I), t_h, t_l ~ U[0, 1], independent per level; L = L_h + L_l
Sampling at every env step, n Euler steps per level (2 branches each: 4n network rows per action):
    z = Euler(v_h(null) + w_h (v_h(g) - v_h(null))) from z_0, not clipped
    a = Euler(v_l(null) + w_l (v_l(z) - v_l(null))) from x_0, clipped to [-1, 1]
The paper uses one w at both levels (w_h = w_l = w; Table 3: w = 3); (w_h, w_l) apart shows at which
level a gain arises. w = 0 at both levels is hierarchical flow BC, w = 1 the conditional policies.
Flow HGCBC is the same networks and losses with goal_dropout = 0, sampled from the conditional
velocities alone.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer
from pipeline_steps.algorithms.gcfm import (
    GoalVelocityNet,
    as_column,
    euler_flow,
    flow_matching_error,
    flow_noise,
)
from pipeline_steps.core.params import TrainGcParams


class HGCFlow(nn.Module):
    """HCFGRL (goal_dropout > 0) or flow HGCBC (goal_dropout = 0)."""

    def __init__(
        self,
        obs_dim: int,
        goal_dim: int,
        act_dim: int,
        cfg: TrainGcParams,
        goal_dropout: float,
        compile=False,
    ):
        super().__init__()
        self.cfg, self.goal_dim, self.act_dim, self.goal_dropout = cfg, goal_dim, act_dim, goal_dropout
        self.obs_norm = ObsNormalizer(obs_dim)  # identity: the authors' agents see raw observations
        self.high = GoalVelocityNet(obs_dim, goal_dim, goal_dim, cfg.hidden)  # v_h(s, g, z_t, t) -> [B, G]
        self.low = GoalVelocityNet(obs_dim, goal_dim, act_dim, cfg.hidden)  # v_l(s, z, x_t, t) -> [B, A]
        params = [*self.high.parameters(), *self.low.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.loss, self.optimizer, compile)

    # ---- loss ---------------------------------------------------------------------------------
    def loss(self, batch, z_0, t_h, null_h, x_0, t_l, null_l) -> tuple[torch.Tensor, dict]:
        """L = L_h + L_l; the noise of both levels is drawn by `update`."""
        obs = batch["observations"]  # [B, O]
        err_h = flow_matching_error(
            self.high, obs, batch["goals"], batch["subgoals"], z_0, t_h, null_h
        )  # [B]
        err_l = flow_matching_error(self.low, obs, batch["low_goals"], batch["actions"], x_0, t_l, null_l)
        loss_h, loss_l = err_h.mean(), err_l.mean()
        return loss_h + loss_l, {
            "actor/loss": loss_h + loss_l,
            "high/loss": loss_h,
            "low/loss": loss_l,
            "high/null_frac": null_h.float().mean(),
        }

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        B, dev = len(batch["actions"]), batch["actions"].device  # noise drawn where the batch lives
        high = flow_noise(B, self.goal_dim, self.goal_dropout, generator, dev)  # z_0, t_h, null_h
        low = flow_noise(B, self.act_dim, self.goal_dropout, generator, dev)  # x_0, t_l, null_l
        return self.gradient_step(batch, *high, *low)

    # ---- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, obs, goal, w=None, w_low=None, noise=None, generator=None):
        """Subgoal, then action: obs [B, O], goal [B, G]; w (the high level's, and the low level's unless
        w_low is given) scalar or [B]; w None: the conditional velocity at both levels (flow HGCBC; with
        w_low given, at the high level only); noise [B, G + A] = (z_0, x_0). Returns (a [B, A] in
        [-1, 1], z [B, G])."""
        if self.goal_dropout == 0 and (w is not None or w_low is not None):
            raise ValueError("flow HGCBC has no trained null vectors: sample it with w=None")
        obs = self.obs_norm(obs)
        n, G = self.cfg.flow_steps, self.goal_dim
        if noise is None:
            noise = torch.randn(len(obs), G + self.act_dim, generator=generator, device=obs.device)
        w_h = as_column(w, obs)  # [1, 1] or [B, 1] (None: conditional only)
        w_l = w_h if w_low is None else as_column(w_low, obs)
        z = euler_flow(self.high, obs, goal, noise[:, :G], n, w_h)  # [B, G], not clipped
        a = euler_flow(self.low, obs, z, noise[:, G:], n, w_l)  # [B, A]
        return a.clamp(-1.0, 1.0), z

    @torch.no_grad()
    def sample_actions(self, obs, goal, w=None, noise=None, generator=None, w_low=None) -> torch.Tensor:
        """The action of `sample`: [B, A]."""
        return self.sample(obs, goal, w, w_low, noise, generator)[0]
