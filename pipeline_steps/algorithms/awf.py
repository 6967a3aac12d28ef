"""Advantage-weighted flow matching (AWF): the expressive weighted baseline beside CFGRL and AWR.

The flow policy and training noise of CFGRL (method.md §3: x_1 = a, x_0 ~ N(0, I), t on the grid,
x_t = (1 - t) x_0 + t x_1, target x_1 - x_0, same velocity MLP and time embedding) with AWR's
per-sample weights (method.md §4) instead of optimality labels, and no guidance:
    L = mean_B[ min(exp(A / beta), max_weight) ||v(s, x_t, t) - (x_1 - x_0)||^2 ]
    sampling: n Euler steps t_i = i/n, x <- x + v(s, x, t_i) / n, clip to [-1, 1]
It separates "guidance" from "flow policy instead of a Gaussian": AWF and AWR share the weights,
AWF and CFGRL share the network. One velocity net per 1/beta, trained side by side as a batched
ensemble on the same minibatches and noise (as train_awr does for its Gaussians).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline_steps.algorithms.awr import awr_weights, per_beta_info
from pipeline_steps.algorithms.cfgrl import flow_error, sample_t, time_embedding
from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, ensemble_mlp
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import AwfParams, CfgrlParams


class EnsembleVelocityNet(nn.Module):
    """K velocity nets v_k(s, x_t, t): MLP on concat[s, x_t, t_emb]: obs [B, O] or [K, B, O] -> [K, B, A]."""

    def __init__(self, k: int, obs_dim: int, act_dim: int, net: CfgrlParams):
        super().__init__()
        self.k, self.time_emb_dim = k, net.time_emb_dim
        self.net = ensemble_mlp(k, obs_dim + act_dim + net.time_emb_dim, net.hidden, act_dim, net.layer_norm)

    def forward(self, obs, x_t, t) -> torch.Tensor:
        h = torch.cat([obs, x_t, time_embedding(t, self.time_emb_dim)], -1)  # [B, O + A + T]
        return self.net(h.expand(self.k, -1, -1) if h.dim() == 2 else h)


class AWF(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, net: CfgrlParams, cfg: AwfParams, compile: bool = False):
        super().__init__()
        self.net_cfg, self.cfg = net, cfg
        self.act_dim = act_dim
        self.obs_norm = ObsNormalizer(obs_dim)
        self.velocity = EnsembleVelocityNet(len(cfg.inv_betas), obs_dim, act_dim, net)
        self.register_buffer("inv_betas", torch.tensor(cfg.inv_betas, dtype=torch.float32))
        self.optimizer = torch.optim.Adam(self.velocity.parameters(), lr=net.lr, fused=True)
        self.gradient_step = GradientStep(self.actor_loss, self.optimizer, compile)

    def actor_loss(self, batch, x_0, t) -> tuple[torch.Tensor, dict]:
        """Sum over the K nets of mean_B[ weight * err(v_k(s, x_t, t)) ] (each net its own gradient)."""
        obs, x_1, adv = self.obs_norm(batch["observations"]), batch["actions"], batch["advantages"]
        x_t = (1 - t[:, None]) * x_0 + t[:, None] * x_1  # [B, A]
        weights = awr_weights(adv, self.inv_betas, self.cfg.max_weight)  # [K, B]
        err = flow_error(self.velocity(obs, x_t, t), x_0, x_1)  # [K, B]
        per_policy = (weights * err).mean(-1)  # [K]
        return per_policy.sum(), per_beta_info(self.cfg.inv_betas, per_policy, weights)

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        B, dev = len(batch["actions"]), batch["actions"].device  # noise drawn where the batch lives
        x_0 = torch.randn(B, self.act_dim, generator=generator, device=dev)  # [B, A]
        t = sample_t(B, self.net_cfg, generator, dev)  # [B]
        return self.gradient_step(batch, x_0, t)

    @classmethod
    def from_checkpoint(cls, path: Path, device="cpu") -> AWF:
        """The trained advantage-weighted flow policies (one per 1/beta) from their checkpoint, on
        `device`."""
        return restore_agent(
            path,
            "awf",
            lambda c: cls(
                c["obs_dim"],
                c["act_dim"],
                CfgrlParams.model_validate(c["config"]["net"]),
                AwfParams.model_validate(c["config"]["awf"]),
            ),
            device,
        )

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, noise: torch.Tensor | None = None, generator=None):
        """Euler-integrate every net's flow from the same x_0 ~ N(0, I): obs [B, O] -> a [K, B, A]."""
        obs = self.obs_norm(obs).expand(self.velocity.k, -1, -1)  # [K, B, O]
        B, n = obs.shape[1], self.net_cfg.flow_steps
        x = (
            noise
            if noise is not None
            else torch.randn(B, self.act_dim, generator=generator, device=obs.device)
        )
        x = x.expand(self.velocity.k, -1, -1)  # [K, B, A]
        for i in range(n):
            t = torch.full((self.velocity.k, B), i / n, device=obs.device)
            x = x + self.velocity(obs, x, t) / n
        return x.clamp(-1.0, 1.0)
