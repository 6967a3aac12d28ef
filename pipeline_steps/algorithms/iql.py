"""IQL critic for advantage-based optimality labels.

Paper: Kostrikov, Nair, Levine, "Offline RL with Implicit Q-Learning" (2021); used by CFGRL
(Frans et al. 2025, §5) to define o = 1[A(s, a) > 0].
Follows the CFGRL authors' ExORL code (method.md §2):
    critic loss  L_Q = mean_i (Q_i(s, a) - (r + gamma * mask * V(s')))^2
    value loss   L_V = mean |expectile - 1[u < 0]| u^2,  u = min_i Q_target_i(s, a) - V(s)
    advantage    A   = min_i Q_target_i(s, a) - V(s)
Deliberate deviations: the critic is trained first and alone (the authors train it concurrently
with the actor and relabel every batch); `advantage_critic: online` uses the online Q instead
of the target; Q and V share one Adam step (identical to two Adams: the losses touch disjoint
parameters and Adam is per-parameter).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, ensemble_mlp, mlp, polyak_update
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import LabelParams


class Critic(nn.Module):
    """Q ensemble as one batched MLP: (s [B, O], a [B, A]) -> Q [n_q, B]."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: LabelParams):
        super().__init__()
        self.n_q = cfg.n_q
        self.net = ensemble_mlp(cfg.n_q, obs_dim + act_dim, cfg.hidden, 1, cfg.layer_norm)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], -1).expand(self.n_q, -1, -1)  # [n_q, B, O + A]
        return self.net(x).squeeze(-1)


class Value(nn.Module):
    """V(s): [B, O] -> [B]."""

    def __init__(self, obs_dim: int, cfg: LabelParams):
        super().__init__()
        self.net = mlp(obs_dim, cfg.hidden, 1, cfg.layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |expectile - 1[u < 0]| u^2; expectile 0.5 gives half the mean squared error."""
    weight = torch.where(u < 0, 1.0 - expectile, expectile)
    return (weight * u.square()).mean()


class IQL(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: LabelParams, compile: bool = False):
        super().__init__()
        self.cfg = cfg
        self.obs_norm = ObsNormalizer(obs_dim)
        self.critic = Critic(obs_dim, act_dim, cfg)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = Value(obs_dim, cfg)
        self.optimizer = torch.optim.Adam(
            list(self.critic.parameters()) + list(self.value.parameters()), lr=cfg.lr, fused=True
        )
        self.gradient_step = GradientStep(self.total_loss, self.optimizer, compile)

    # ---- losses, in the order of the OGBench agents ------------------------------------------
    def value_loss(self, obs, act) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            q = self.target_critic(obs, act).min(0).values  # [B]
        v = self.value(obs)  # [B]
        u = q - v
        loss = expectile_loss(u, self.cfg.expectile)
        info = {
            "value/loss": loss,
            "value/v_mean": v.mean(),
            "value/v_std": v.std(),
            "value/adv_mean": u.mean(),
        }
        return loss, info

    def critic_loss(self, obs, act, reward, next_obs, mask) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            target_q = reward + self.cfg.discount * mask * self.value(next_obs)  # [B]
        q = self.critic(obs, act)  # [n_q, B]
        loss = (q - target_q).square().mean()
        return loss, {  # Q statistics over the batch (and the ensemble): where the values are heading
            "critic/loss": loss,
            "critic/q_mean": q.mean(),
            "critic/q_min": q.min(),
            "critic/q_max": q.max(),
            "critic/target_mean": target_q.mean(),
        }

    def total_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """L_Q + L_V on one batch (Q and V have disjoint parameters, so one backward serves both)."""
        obs, next_obs = self.obs_norm(batch["observations"]), self.obs_norm(batch["next_observations"])
        act = batch["actions"]
        value_loss, value_info = self.value_loss(obs, act)
        critic_loss, critic_info = self.critic_loss(obs, act, batch["rewards"], next_obs, batch["masks"])
        return critic_loss + value_loss, {**critic_info, **value_info}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on L_Q + L_V, then the Polyak update of the target critic."""
        info = self.gradient_step(batch)
        polyak_update(self.target_critic, self.critic, self.cfg.polyak)
        return info

    @classmethod
    def from_checkpoint(cls, path: Path, device="cpu") -> IQL:
        """The label stage's trained critic (Q ensemble, target Q, V, observation statistics), on `device`."""
        return restore_agent(
            path,
            "iql",
            lambda c: cls(c["obs_dim"], c["act_dim"], LabelParams.model_validate(c["config"])),
            device,
        )

    def q_values(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Q_j(s, a) of the critic the advantages come from (`advantage_critic`: target or online), raw
        observations in: [n_q, B]. Differentiable in `act` (FQL's actor loss); freeze the critic first."""
        q_net = self.target_critic if self.cfg.advantage_critic == "target" else self.critic
        return q_net(self.obs_norm(obs), act)

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, act: torch.Tensor, critic: str = "target") -> torch.Tensor:
        """A = min_i Q_i(s, a) - V(s), with the target (default) or online Q: [B]."""
        obs = self.obs_norm(obs)
        q_net = self.target_critic if critic == "target" else self.critic
        return q_net(obs, act).min(0).values - self.value(obs)


def optimality_labels(adv: torch.Tensor, threshold: float, inclusive: bool) -> torch.Tensor:
    """o = 1[A > threshold] (ExORL code), or 1[A >= threshold] (paper) when inclusive."""
    return adv >= threshold if inclusive else adv > threshold
