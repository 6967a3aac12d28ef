"""Gaussian GCBC: goal-conditioned behaviour cloning with a constant-std Gaussian policy.

The authors' OGBench `gcbc.py` (method.md §8): pi(a|s, g) = N(mu(s, g), I) with mu an MLP on
concat[s, g] (GELU, no LayerNorm, no tanh); trained by maximum likelihood, which with std 1 is
    L = mean_batch [ 0.5 ||a - mu(s, g)||^2 ]   (+ a constant)
and acts with the mean action, clipped to [-1, 1], at test time.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, mlp
from pipeline_steps.core.params import TrainGcParams


class GaussianGCBC(nn.Module):
    def __init__(self, obs_dim: int, goal_dim: int, act_dim: int, cfg: TrainGcParams, compile=False):
        super().__init__()
        self.cfg, self.act_dim = cfg, act_dim
        self.obs_norm = ObsNormalizer(obs_dim)  # identity, as in the authors' agent
        self.mean = mlp(obs_dim + goal_dim, cfg.hidden, act_dim, layer_norm=False, activation=nn.GELU)
        self.optimizer = torch.optim.Adam(self.mean.parameters(), lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.loss, self.optimizer, compile)

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        """-log N(a; mu(s, g), I) up to a constant: 0.5 ||a - mu||^2 summed over action dims, batch mean."""
        mu = self.mean(torch.cat([batch["observations"], batch["goals"]], -1))  # [B, A]
        loss = 0.5 * (batch["actions"] - mu).square().sum(-1).mean()
        return loss, {"actor/loss": loss, "actor/mse": (batch["actions"] - mu).square().mean()}

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        return self.gradient_step(batch)

    @torch.no_grad()
    def sample_actions(self, obs, goal, w=None, noise=None, generator=None) -> torch.Tensor:
        """The mean action mu(s, g), clipped: obs [B, O], goal [B, G] -> [B, A] (w and noise unused)."""
        return self.mean(torch.cat([self.obs_norm(obs), goal], -1)).clamp(-1.0, 1.0)
