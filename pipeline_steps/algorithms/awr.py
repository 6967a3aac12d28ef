"""AWR baseline: advantage-weighted regression with a Gaussian policy.

Paper: Peng, Kumar, Zhang, Levine, "Advantage-Weighted Regression" (2019); the CFGRL paper's
baseline (Frans et al. 2025, §6), following the authors' ExORL code (method.md §4):
    L = -mean( min(exp(A / beta), max_weight) * log pi(a|s) )
    pi(a|s) = N(mu(s), diag(exp(log_std))), mu clipped to [-5, 5], log_std state-independent,
    learnable, clipped to [-5, 2], no tanh; evaluation uses the mean action clipped to [-1, 1].
Deviation: one policy per 1/beta, all trained side by side as a batched ensemble on the same
minibatches (identical to separate runs on shared data, at a fraction of the wall time).
Logged per batch: how concentrated the weights are (effective sample size fraction, share of the
top 1%): the gradient-sparsity effect the paper argues guidance avoids.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, ensemble_mlp
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import AwrParams


class GaussianPolicies(nn.Module):
    """K Gaussian policies (one per 1/beta): obs [B, O] -> mean [K, B, A], log_std [K, 1, A]."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: AwrParams, compile: bool = False):
        super().__init__()
        self.cfg = cfg
        self.k = len(cfg.inv_betas)
        self.net = ensemble_mlp(self.k, obs_dim, cfg.hidden, act_dim, cfg.layer_norm)
        self.log_std = nn.Parameter(torch.zeros(self.k, 1, act_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.net(obs.expand(self.k, -1, -1)).clamp(-self.cfg.mean_clip, self.cfg.mean_clip)
        return mean, self.log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)


def gaussian_log_prob(a: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(a; mean, diag(exp(2 log_std))), summed over action dims: [..., A] -> [...]."""
    z = (a - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def awr_weights(adv: torch.Tensor, inv_betas: torch.Tensor, max_weight: float) -> torch.Tensor:
    """min(exp(A / beta), max_weight) per 1/beta: adv [B], inv_betas [K] -> [K, B]."""
    return torch.exp(inv_betas[:, None] * adv[None, :]).clamp(max=max_weight)


def weight_concentration(weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """ESS fraction (sum w)^2 / (B sum w^2) and the weight share of the top 1% samples: [K, B] -> [K] each."""
    B = weights.shape[-1]
    total = weights.sum(-1)
    ess_frac = total.square() / (B * weights.square().sum(-1))
    top = weights.topk(max(1, math.ceil(0.01 * B)), dim=-1).values.sum(-1)
    return {"ess_frac": ess_frac, "top1pct_share": top / total}


def per_beta_info(inv_betas: list[float], per_policy: torch.Tensor, weights: torch.Tensor) -> dict:
    """Logged per 1/beta: the policy's loss and how concentrated its weights are.
    per_policy [K], weights [K, B]; shared by AWR and advantage-weighted flow."""
    conc = weight_concentration(weights)
    info = {"actor/loss": per_policy.mean()}
    for i, inv_beta in enumerate(inv_betas):
        tag = f"inv_beta={inv_beta:g}"
        info[f"actor/{tag}/loss"] = per_policy[i]
        info[f"actor/{tag}/ess_frac"] = conc["ess_frac"][i]
        info[f"actor/{tag}/top1pct_share"] = conc["top1pct_share"][i]
    return info


class AWR(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: AwrParams, compile: bool = False):
        super().__init__()
        self.cfg = cfg
        self.obs_norm = ObsNormalizer(obs_dim)
        self.policies = GaussianPolicies(obs_dim, act_dim, cfg)
        self.register_buffer("inv_betas", torch.tensor(cfg.inv_betas, dtype=torch.float32))
        self.optimizer = torch.optim.Adam(self.policies.parameters(), lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.actor_loss, self.optimizer, compile)

    def actor_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Sum over the K policies of -mean_B(weight * log pi(a|s)) (each policy gets its own gradient)."""
        obs, a, adv = self.obs_norm(batch["observations"]), batch["actions"], batch["advantages"]
        weights = awr_weights(adv, self.inv_betas, self.cfg.max_weight)  # [K, B]
        mean, log_std = self.policies(obs)  # [K, B, A], [K, 1, A]
        log_prob = gaussian_log_prob(a[None], mean, log_std)  # [K, B]
        per_policy = -(weights * log_prob).mean(-1)  # [K]
        info = per_beta_info(self.cfg.inv_betas, per_policy, weights)
        for i, inv_beta in enumerate(self.cfg.inv_betas):
            info[f"actor/inv_beta={inv_beta:g}/clipped_frac"] = (
                (weights[i] >= self.cfg.max_weight).float().mean()
            )
        return per_policy.sum(), info

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.gradient_step(batch)

    @classmethod
    def from_checkpoint(cls, path: Path, device="cpu") -> AWR:
        """The trained AWR policies (one per 1/beta) from their checkpoint, on `device`."""
        return restore_agent(
            path,
            "awr",
            lambda c: cls(c["obs_dim"], c["act_dim"], AwrParams.model_validate(c["config"])),
            device,
        )

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action of every policy, clipped to [-1, 1]: obs [B, O] -> [K, B, A]."""
        mean, _ = self.policies(self.obs_norm(obs))
        return mean.clamp(-1.0, 1.0)
