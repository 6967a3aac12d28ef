"""FQL policy extraction on a frozen critic: a one-step policy distilled from flow BC and pushed up Q.

Paper: Park, Li, Levine, "Flow Q-Learning" (2025); reference: seohongpark/fql `agents/fql.py`
(method.md §10). The controlled variant of this project: the label stage's IQL critic is frozen (the
Q the CFGRL labels came from) and CFGRL's w = 0 branch is the frozen flow-BC teacher, so only mu is
trained and the comparison is one of policy extraction on one value function:
    z ~ N(0, I)                                             [B, A]
    a_T(s, z) = ODE_k(v(s, ., t, null); z), clipped          [B, A]  (teacher, no gradient)
    mu_k(s, z): MLP on [s, z]                                [K, B, A] (one per alpha_k)
    L_k = alpha_k mean_{B,A} (mu_k(s, z) - a_T(s, z))^2 - lambda_k mean_B mean_j Q_j(s, clip(mu_k(s, z)))
    lambda_k = stop_grad(1 / mean_B |mean_j Q_j(s, clip(mu_k))|)   (normalize_q; else 1)
as FQL's actor loss without its BC flow term (the teacher is trained already and frozen). As in FQL the
distillation error is a mean over action dims and batch, and Q is the mean over the ensemble. Acting:
a = clip(mu_k(s, z), -1, 1) with fresh z: one network pass per action. All alphas are trained side by
side as a batched ensemble on the same minibatches and noise (as train_awr does for its 1/beta).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, ensemble_mlp
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import FqlParams


class OneStepPolicies(nn.Module):
    """K one-step policies mu_k(s, z): obs [B, O], z [B, A] -> [K, B, A]."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: FqlParams):
        super().__init__()
        self.k = len(cfg.alphas)
        self.net = ensemble_mlp(self.k, obs_dim + act_dim, cfg.hidden, act_dim, cfg.layer_norm)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, z], -1).expand(self.k, -1, -1))


class FQL(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: FqlParams, compile: bool = False):
        super().__init__()
        self.cfg, self.act_dim = cfg, act_dim
        self.obs_norm = ObsNormalizer(obs_dim)
        self.policies = OneStepPolicies(obs_dim, act_dim, cfg)
        self.register_buffer("alphas", torch.tensor(cfg.alphas, dtype=torch.float32))
        self.optimizer = torch.optim.Adam(self.policies.parameters(), lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.actor_loss, self.optimizer, compile)
        self.frozen: tuple[CFGRL, IQL] | None = None  # teacher and critic: training only, not saved

    def attach(self, teacher: CFGRL, critic: IQL) -> FQL:
        """The frozen flow-BC teacher and critic of training (kept out of this module's state dict)."""
        teacher.requires_grad_(False).eval()
        critic.requires_grad_(False).eval()
        teacher.check_flow_steps(self.cfg.flow_steps)
        self.frozen = (teacher, critic)
        return self

    def actor_loss(self, batch, z) -> tuple[torch.Tensor, dict]:
        """Sum over k of alpha_k * distill_k + q_loss_k (each mu_k its own gradient)."""
        teacher, critic = self.frozen
        obs = batch["observations"]  # [B, O] raw: teacher and critic normalise their own way
        a_t = teacher.sample_bc(obs, z, self.cfg.flow_steps)  # [B, A], no gradient
        mu = self.policies(self.obs_norm(obs), z)  # [K, B, A]
        distill = (mu - a_t).square().mean((-2, -1))  # [K]
        K, B = mu.shape[:2]
        q = critic.q_values(obs.repeat(K, 1), mu.clamp(-1.0, 1.0).reshape(K * B, -1)).mean(0).reshape(K, B)
        lam = 1.0 / q.abs().mean(-1).detach() if self.cfg.normalize_q else torch.ones(K, device=q.device)
        q_loss = -lam * q.mean(-1)  # [K]
        per_policy = self.alphas * distill + q_loss  # [K]
        info = {}
        for i, alpha in enumerate(self.cfg.alphas):
            info |= {
                f"actor/loss/alpha={alpha:g}": per_policy[i],
                f"actor/distill/alpha={alpha:g}": distill[i],
                f"actor/q/alpha={alpha:g}": q[i].mean(),
            }
        return per_policy.sum(), info

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        B, dev = len(batch["actions"]), batch["actions"].device
        z = torch.randn(B, self.act_dim, generator=generator, device=dev)  # [B, A]
        return self.gradient_step(batch, z)

    @classmethod
    def from_checkpoint(cls, path: Path, device="cpu") -> FQL:
        """The trained one-step policies (one per alpha) from their checkpoint, on `device` (for acting;
        `attach` a teacher and critic to train further)."""
        return restore_agent(
            path,
            "fql",
            lambda c: cls(c["obs_dim"], c["act_dim"], FqlParams.model_validate(c["config"])),
            device,
        )

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, noise: torch.Tensor | None = None, generator=None):
        """a = clip(mu_k(s, z), -1, 1) for every k from the same z ~ N(0, I): obs [B, O] -> [K, B, A]."""
        z = (
            noise
            if noise is not None
            else torch.randn(len(obs), self.act_dim, generator=generator, device=obs.device)
        )
        return self.policies(self.obs_norm(obs), z).clamp(-1.0, 1.0)
