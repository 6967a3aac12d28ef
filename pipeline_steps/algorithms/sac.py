"""Online SAC, used only to *generate* offline data (datasets/sac_replay.py): its whole replay buffer,
like D4RL's "replay" datasets (early episodes random, later ones increasingly competent), optionally
followed by episodes of the final actor with action noise (a "medium-expert" style mix).

Paper: Haarnoja et al., "Soft Actor-Critic Algorithms and Applications" (2018): tanh-squashed
Gaussian actor, twin Q with clipped double-Q targets, learned temperature with target entropy -|A|.
    critic loss  mean_i (Q_i(s,a) - y)^2,  y = r + gamma mask (min_j Q'_j(s',a') - alpha log pi(a'|s')),
                 a' ~ pi(.|s')
    actor loss   mean(alpha log pi(a~|s) - min_i Q_i(s, a~)),  a~ ~ pi(.|s) (reparameterised)
    alpha loss   mean(-log_alpha (log pi(a~|s) - |A|))
One update = critic step, then actor and temperature steps on the updated critic, then the Polyak step
(the order of cleanrl's sac_continuous_action.py). ReLU MLPs (cheaper than Mish on CPU; this network
never touches the offline algorithms). The Gaussian noise of every sample is drawn outside the losses
(from the run's generator), so the losses are pure tensor functions torch.compile can take whole.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ensemble_mlp, mlp, polyak_update
from pipeline_steps.core.params import SacBehaviour

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the usual SAC clip of the actor's log-std


class SAC(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: SacBehaviour, compile: bool = False):
        super().__init__()
        self.cfg, self.act_dim = cfg, act_dim
        self.actor = mlp(obs_dim, cfg.hidden, 2 * act_dim, layer_norm=False, activation=nn.ReLU)
        self.critic = ensemble_mlp(2, obs_dim + act_dim, cfg.hidden, 1, layer_norm=False, activation=nn.ReLU)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        adam = lambda params: torch.optim.Adam(params, lr=cfg.lr, fused=True)  # noqa: E731
        self.critic_step = GradientStep(self.critic_loss, adam(self.critic.parameters()), compile)
        self.actor_step = GradientStep(self.actor_loss, adam(self.actor.parameters()), compile)
        self.alpha_step = GradientStep(self.alpha_loss, adam([self.log_alpha]), compile)

    def q(self, net: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([obs, act], -1).expand(2, -1, -1)).squeeze(-1)  # [2, B]

    def pi(self, obs: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised tanh-Gaussian sample a = tanh(mean + eps std) and its log-prob: [B, A], [B]."""
        mean, log_std = self.actor(obs).chunk(2, -1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        u = mean + eps * log_std.exp()
        log_prob = (-0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(
            -1
        )  # tanh Jacobian
        return torch.tanh(u), log_prob

    def critic_loss(self, obs, act, rew, next_obs, mask, eps_next) -> tuple[torch.Tensor, dict]:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_a, next_logp = self.pi(next_obs, eps_next)  # a' ~ pi(.|s'): [B, A], [B]
            next_q = self.q(self.target_critic, next_obs, next_a).min(0).values  # [B]
            y = rew + self.cfg.discount * mask * (next_q - alpha * next_logp)  # [B]
        loss = (self.q(self.critic, obs, act) - y).square().mean()
        return loss, {"critic_loss": loss}

    def actor_loss(self, obs, eps) -> tuple[torch.Tensor, dict]:
        a, logp = self.pi(obs, eps)  # a~ ~ pi(.|s): [B, A], [B]
        loss = (self.log_alpha.exp().detach() * logp - self.q(self.critic, obs, a).min(0).values).mean()
        return loss, {"actor_loss": loss, "logp": logp.mean()}

    def alpha_loss(self, logp_mean) -> tuple[torch.Tensor, dict]:
        loss = -self.log_alpha * (logp_mean - self.act_dim)  # target entropy -|A|
        return loss, {"alpha_loss": loss}

    def update(self, b: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One SAC update on a minibatch {obs, act, rew, next_obs, mask}; the noise from `generator`."""
        eps_next = torch.randn(b["act"].shape, generator=generator)
        eps = torch.randn(b["act"].shape, generator=generator)
        info = self.critic_step(b["obs"], b["act"], b["rew"], b["next_obs"], b["mask"], eps_next)
        info |= self.actor_step(b["obs"], eps)
        info |= self.alpha_step(info["logp"])
        polyak_update(self.target_critic, self.critic, self.cfg.polyak)
        return info

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """a ~ pi(.|s) for one observation [O] -> [A]."""
        eps = torch.randn(1, self.act_dim, generator=generator)
        mean, log_std = self.actor(torch.from_numpy(obs)[None]).chunk(2, -1)
        return torch.tanh(mean + eps * log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp())[0].numpy()  # pi's a

    @torch.no_grad()
    def mean_action(self, obs: np.ndarray) -> np.ndarray:
        """tanh(mean) of pi(.|s): the deterministic action of the trained actor, [O] -> [A]."""
        mean, _ = self.actor(torch.from_numpy(obs)[None]).chunk(2, -1)
        return torch.tanh(mean)[0].numpy()
