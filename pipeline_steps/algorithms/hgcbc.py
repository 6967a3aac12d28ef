"""Gaussian HGCBC: hierarchical goal-conditioned behaviour cloning with two constant-std Gaussian policies.

The authors' OGBench `hgcbc.py` (method.md §11), on the hierarchical hindsight targets of hgcfm.py:
    high level  pi_h(z | s, g) = N(mu_h(s, g), I): the subgoal z in the oracle representation
    low level   pi_l(a | s, z) = N(mu_l(s, z), I): the action towards a subgoal
    L = mean_batch [ 0.5 ||z* - mu_h(s, g)||^2 + 0.5 ||a - mu_l(s, z_l)||^2 ]   (+ a constant)
with z* and z_l as in hgcfm.py; MLPs on concat[s, condition], GELU, no LayerNorm, no tanh. At test time
both levels act with their means: z = mu_h(s, g), a = clip(mu_l(s, z), -1, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, mlp
from pipeline_steps.core.params import TrainGcParams


class GaussianHGCBC(nn.Module):
    def __init__(self, obs_dim: int, goal_dim: int, act_dim: int, cfg: TrainGcParams, compile=False):
        super().__init__()
        self.cfg, self.goal_dim, self.act_dim = cfg, goal_dim, act_dim
        self.obs_norm = ObsNormalizer(obs_dim)  # identity, as in the authors' agent
        self.high = mlp(obs_dim + goal_dim, cfg.hidden, goal_dim, layer_norm=False, activation=nn.GELU)
        self.low = mlp(obs_dim + goal_dim, cfg.hidden, act_dim, layer_norm=False, activation=nn.GELU)
        params = [*self.high.parameters(), *self.low.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.loss, self.optimizer, compile)

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        """-log N(z*; mu_h, I) - log N(a; mu_l, I) up to constants, batch means."""
        obs = batch["observations"]  # [B, O]
        mu_h = self.high(torch.cat([obs, batch["goals"]], -1))  # [B, G]
        mu_l = self.low(torch.cat([obs, batch["low_goals"]], -1))  # [B, A]
        loss_h = 0.5 * (batch["subgoals"] - mu_h).square().sum(-1).mean()
        loss_l = 0.5 * (batch["actions"] - mu_l).square().sum(-1).mean()
        return loss_h + loss_l, {"actor/loss": loss_h + loss_l, "high/loss": loss_h, "low/loss": loss_l}

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        return self.gradient_step(batch)

    @torch.no_grad()
    def sample(self, obs, goal, w=None, w_low=None, noise=None, generator=None):
        """The means: z = mu_h(s, g) [B, G], a = clip(mu_l(s, z)) [B, A]; returns (a, z) (w, noise unused)."""
        obs = self.obs_norm(obs)
        z = self.high(torch.cat([obs, goal], -1))
        return self.low(torch.cat([obs, z], -1)).clamp(-1.0, 1.0), z

    @torch.no_grad()
    def sample_actions(self, obs, goal, w=None, noise=None, generator=None, w_low=None) -> torch.Tensor:
        return self.sample(obs, goal)[0]
