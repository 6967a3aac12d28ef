"""CFGRL: classifier-free guidance as policy improvement, with a flow-matching policy.

Paper: Frans, Park, Abbeel, Levine, "Diffusion Guidance Is a Controllable Policy Improvement
Operator" (2025). One velocity network v(s, x_t, t, o) learns the unconditional policy pi_hat(a|s)
(o = null) and the optimality-conditioned pi_hat(a|s, o=1); sampling with
    vel = vel_uncond + w * (vel_opt - vel_uncond)
follows pi_hat(a|s) p(o|s,a)^w: w = 0 is flow BC, w = 1 the conditional policy, w > 1 improves further.
Follows the authors' ExORL code (method.md §3):
    x_1 = a, x_0 ~ N(0, I), t on the grid {0, 1/n, ..., 1}, x_t = (1 - t) x_0 + t x_1, target x_1 - x_0
    binary_weighted:  L = mean[ o ||v(s, 1, x_t, t) - (x_1 - x_0)||^2
                                + 0.1 ||v(s, null, x_t, t) - (x_1 - x_0)||^2 ]
    sampling: n Euler steps t_i = i/n, x <- x + vel / n, clip to [-1, 1]
Alternatives as params: `ternary_dropout` (paper / OGBench: labels {null, negative, positive},
label dropout p) and t ~ U[0, 1]. Deviation: ||.||^2 is averaged over action dims, as in the code.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, mlp
from pipeline_steps.core.checkpoints import restore_agent
from pipeline_steps.core.params import CfgrlParams

# label indices of the embedding table
NULL, POSITIVE, NEGATIVE = 0, 1, 2


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] scaled by max_period (the code's `t * 10000`): [...] -> [..., dim].
    Frequencies max_period^(-k / half), k = 0..half-1, as in the authors' code."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    args = (t * max_period)[..., None] * freqs  # [..., half]
    return torch.cat([torch.sin(args), torch.cos(args)], -1)


class VelocityNet(nn.Module):
    """v(s, x_t, t, o): MLP on concat[s, x_t, t_emb, label_emb] -> [B, A]."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: CfgrlParams):
        super().__init__()
        self.time_emb_dim = cfg.time_emb_dim
        n_labels = 2 if cfg.label_scheme == "binary_weighted" else 3
        self.label_emb = nn.Embedding(n_labels, cfg.label_emb_dim)
        self.net = mlp(
            obs_dim + act_dim + cfg.time_emb_dim + cfg.label_emb_dim, cfg.hidden, act_dim, cfg.layer_norm
        )

    def forward(self, obs, x_t, t, label) -> torch.Tensor:
        h = torch.cat([obs, x_t, time_embedding(t, self.time_emb_dim), self.label_emb(label)], -1)
        return self.net(h)


def sample_t(batch_size: int, cfg: CfgrlParams, generator=None, device=None) -> torch.Tensor:
    """Flow time t: on the grid {0, 1/n, ..., 1} (ExORL code) or U[0, 1] (paper): [B]."""
    if cfg.time_sampling == "grid":
        n = cfg.flow_steps
        return torch.randint(0, n + 1, (batch_size,), generator=generator, device=device).float() / n
    return torch.rand(batch_size, generator=generator, device=device)


def flow_error(vel: torch.Tensor, x_0: torch.Tensor, x_1: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error to the target velocity x_1 - x_0, averaged over action dims: [B]."""
    return (vel - (x_1 - x_0)).square().mean(-1)


class CFGRL(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: CfgrlParams, compile: bool = False):
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.obs_norm = ObsNormalizer(obs_dim)
        self.velocity = VelocityNet(obs_dim, act_dim, cfg)
        self.optimizer = torch.optim.Adam(self.velocity.parameters(), lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.actor_loss, self.optimizer, compile)

    # ---- losses -------------------------------------------------------------------------------
    def actor_loss_binary_weighted(self, obs, x_1, opt, x_0, t) -> tuple[torch.Tensor, dict]:
        """L = mean[ o * err(v(s, 1)) + uncond_weight * err(v(s, null)) ]; both branches in one pass."""
        B = len(obs)
        x_t = (1 - t[:, None]) * x_0 + t[:, None] * x_1  # [B, A]
        label = torch.cat(
            [torch.full((B,), POSITIVE, device=obs.device), torch.full((B,), NULL, device=obs.device)]
        )
        vel = self.velocity(obs.repeat(2, 1), x_t.repeat(2, 1), t.repeat(2), label)  # [2B, A]
        err_opt, err_uncond = flow_error(vel, x_0.repeat(2, 1), x_1.repeat(2, 1)).chunk(2)  # [B] each
        opt = opt.float()
        loss = (opt * err_opt + self.cfg.uncond_weight * err_uncond).mean()
        info = {
            "actor/loss": loss,
            "actor/flow_loss_opt": (opt * err_opt).sum() / opt.sum().clamp_min(1),
            "actor/flow_loss_uncond": err_uncond.mean(),
        }
        return loss, info

    def actor_loss_ternary_dropout(self, obs, x_1, opt, x_0, t, drop) -> tuple[torch.Tensor, dict]:
        """L = mean err(v(s, o~)), o~ = null with prob p (drop), else positive / negative by o."""
        x_t = (1 - t[:, None]) * x_0 + t[:, None] * x_1  # [B, A]
        label = torch.where(opt, POSITIVE, NEGATIVE)
        label = torch.where(drop, NULL, label)  # [B]
        err = flow_error(self.velocity(obs, x_t, t, label), x_0, x_1)  # [B]
        loss = err.mean()
        return loss, {
            "actor/loss": loss,
            "actor/flow_loss_null": (err * drop).sum() / drop.sum().clamp_min(1),
        }

    def actor_loss(self, batch, x_0, t, drop) -> tuple[torch.Tensor, dict]:
        """The flow loss of the configured label scheme; the noise (x_0, t, drop) is drawn by `update`."""
        obs, x_1, opt = self.obs_norm(batch["observations"]), batch["actions"], batch["optimal"]
        if self.cfg.label_scheme == "binary_weighted":
            return self.actor_loss_binary_weighted(obs, x_1, opt, x_0, t)
        return self.actor_loss_ternary_dropout(obs, x_1, opt, x_0, t, drop)

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        B, dev = len(batch["actions"]), batch["actions"].device  # noise drawn where the batch lives
        x_0 = torch.randn(B, self.act_dim, generator=generator, device=dev)  # [B, A]
        t = sample_t(B, self.cfg, generator, dev)  # [B]
        drop = torch.rand(B, generator=generator, device=dev) < self.cfg.label_dropout  # [B], ternary only
        return self.gradient_step(batch, x_0, t, drop)

    # ---- sampling -----------------------------------------------------------------------------
    @staticmethod
    def branch_inputs(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both guidance branches stacked along the batch: obs [B, O] -> obs2 [2B, O], label [2B]
        (rows :B unconditional (null), rows B: optimality-conditioned). Built once per sampled action."""
        B = len(obs)
        labels = torch.cat(
            [torch.full((B,), NULL, device=obs.device), torch.full((B,), POSITIVE, device=obs.device)]
        )
        return obs.repeat(2, 1), labels

    @torch.no_grad()
    def guided_velocity(self, obs2, label, x, t: float, w) -> torch.Tensor:
        """vel = vel_uncond + w (vel_opt - vel_uncond), both branches in one forward pass: [B, A].
        obs2, label: `branch_inputs(obs)`; x [B, A]; t the flow time; w scalar or [B, 1]."""
        t2 = torch.full((len(obs2),), t, device=obs2.device)  # [2B]
        vel_uncond, vel_opt = self.velocity(obs2, x.repeat(2, 1), t2, label).chunk(2)  # [B, A] each
        return vel_uncond + w * (vel_opt - vel_uncond)

    @classmethod
    def from_checkpoint(cls, path: Path, device="cpu") -> CFGRL:
        """A trained CFGRL policy from its checkpoint (ready for sample_actions at any w), on `device`."""
        return restore_agent(
            path,
            "cfgrl",
            lambda c: cls(c["obs_dim"], c["act_dim"], CfgrlParams.model_validate(c["config"])),
            device,
        )

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, w, noise: torch.Tensor | None = None, generator=None):
        """Euler-integrate the guided flow from x_0 ~ N(0, I): obs [B, O], w scalar or [B] -> a [B, A]."""
        obs = self.obs_norm(obs)
        B, n = len(obs), self.cfg.flow_steps
        w = torch.as_tensor(w, dtype=obs.dtype, device=obs.device).reshape(-1, 1)  # [1, 1] or [B, 1]
        x = (
            noise
            if noise is not None
            else torch.randn(B, self.act_dim, generator=generator, device=obs.device)
        )
        obs2, label = self.branch_inputs(obs)  # [2B, O], [2B]
        for i in range(n):
            x = x + self.guided_velocity(obs2, label, x, i / n, w) / n
        return x.clamp(-1.0, 1.0)

    def check_flow_steps(self, n: int) -> int:
        """n, if n Euler steps keep the flow times i/n on the training grid {j/flow_steps} (always, with
        t ~ U[0, 1]); else a ValueError naming the divisors to use."""
        if self.cfg.time_sampling == "grid" and self.cfg.flow_steps % n:
            raise ValueError(
                f"flow_steps {n} puts flow times off the training grid {{j/{self.cfg.flow_steps}}}: "
                f"use a divisor of {self.cfg.flow_steps}"
            )
        return n

    @torch.no_grad()
    def sample_bc(
        self, obs: torch.Tensor, noise: torch.Tensor, flow_steps: int | None = None
    ) -> torch.Tensor:
        """Flow BC (the unconditional branch alone, w = 0) by `flow_steps` Euler steps (default: the
        trained n) from the given x_0: obs [B, O], noise [B, A] -> a [B, A]. The rejection-sampling
        candidates and FQL's teacher (method.md §10). With `time_sampling: grid` the step times i/k
        must lie on the training grid {j/n}: k must divide n."""
        n = self.check_flow_steps(flow_steps or self.cfg.flow_steps)
        obs = self.obs_norm(obs)
        label = torch.full((len(obs),), NULL, device=obs.device)  # [B]
        x = noise
        for i in range(n):
            x = x + self.velocity(obs, x, torch.full((len(obs),), i / n, device=obs.device), label) / n
        return x.clamp(-1.0, 1.0)
