"""Goal-conditioned CFGRL and flow GCBC: goal-conditioned flow matching, no value function.

Paper Sec. 6 (Table 3); the authors' OGBench agents `cfgrl.py` / `gcfbc.py` (method.md §8). The
condition is the goal g itself: one velocity network v(s, g, x_t, t) learns the goal-conditioned
policy pi(a|s, g) and, with g replaced by a learned null-goal vector, the unconditional pi(a|s).
Guided sampling
    v = v(s, null) + w (v(s, g) - v(s, null))
follows pi(a|s) p(g|s, a)^w: w = 0 is flow BC, w = 1 flow GCBC, w > 1 improves further.
    x_1 = a, x_0 ~ N(0, I), t ~ U[0, 1], x_t = (1 - t) x_0 + t x_1
    g~ = null with probability p (goal_dropout, one Bernoulli per sample), else g
    L = mean_{batch, action dims} (v(s, g~, x_t, t) - (x_1 - x_0))^2
    sampling: n Euler steps t_i = i / n, x <- x + v / n, clip to [-1, 1]
Network: MLP on concat[s, g, x_t, t] with t the raw scalar (no embedding), GELU, no LayerNorm.
Flow GCBC is the same network and loss with goal_dropout = 0, sampled from v(s, g) alone.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline_steps.algorithms.common import GradientStep, ObsNormalizer, mlp
from pipeline_steps.core.params import TrainGcParams


class GoalVelocityNet(nn.Module):
    """v(s, g, x_t, t): MLP on concat[s, g~, x_t, t] -> [B, D], g~ = the null-goal vector where `null`.
    D = out_dim is the action's size (HCFGRL's high level: the subgoal's, hgcfm.py)."""

    def __init__(self, obs_dim: int, goal_dim: int, out_dim: int, hidden: list[int]):
        super().__init__()
        self.null_goal = nn.Parameter(torch.zeros(goal_dim))  # learned; trained only through dropout
        self.net = mlp(
            obs_dim + goal_dim + out_dim + 1, hidden, out_dim, layer_norm=False, activation=nn.GELU
        )

    def forward(self, obs, goal, x_t, t, null) -> torch.Tensor:
        """obs [B, O], goal [B, G], x_t [B, D], t [B], null [B] bool -> [B, D]."""
        goal = torch.where(null[:, None], self.null_goal.expand_as(goal), goal)  # [B, G]
        return self.net(torch.cat([obs, goal, x_t, t[:, None]], -1))


def flow_matching_error(velocity: GoalVelocityNet, obs, cond, x_1, x_0, t, null) -> torch.Tensor:
    """(v(s, c~, x_t, t) - (x_1 - x_0))^2 averaged over the output dims, x_t = (1 - t) x_0 + t x_1:
    obs [B, O], cond [B, G], x_1 and x_0 [B, D], t [B], null [B] bool -> [B]."""
    x_t = (1 - t[:, None]) * x_0 + t[:, None] * x_1  # [B, D]
    return (velocity(obs, cond, x_t, t, null) - (x_1 - x_0)).square().mean(-1)


@torch.no_grad()
def guided_velocity(velocity: GoalVelocityNet, obs, cond, x, t: float, w) -> torch.Tensor:
    """v(s, null) + w (v(s, c) - v(s, null)), both branches in one forward pass; w None: v(s, c) alone
    (the conditional flow, as flow GCBC samples). obs [B, O], cond [B, G], x [B, D], w [1, 1] or [B, 1]
    -> [B, D]."""
    B, dev = len(obs), obs.device
    if w is None:
        null = torch.zeros(B, dtype=torch.bool, device=dev)
        return velocity(obs, cond, x, torch.full((B,), t, device=dev), null)
    null = torch.arange(2 * B, device=dev) < B  # [2B]: rows :B the null condition, rows B: the condition
    t2 = torch.full((2 * B,), t, device=dev)
    v_null, v_cond = velocity(obs.repeat(2, 1), cond.repeat(2, 1), x.repeat(2, 1), t2, null).chunk(2)
    return v_null + w * (v_cond - v_null)


@torch.no_grad()
def euler_flow(velocity: GoalVelocityNet, obs, cond, x_0, n: int, w) -> torch.Tensor:
    """n Euler steps t_i = i / n of the (guided) velocity from x_0 [B, D], unclipped: [B, D]."""
    x = x_0
    for i in range(n):
        x = x + guided_velocity(velocity, obs, cond, x, i / n, w) / n
    return x


def flow_noise(B: int, dim: int, goal_dropout: float, generator, device):
    """One level's training noise, drawn in this order: x_0 [B, dim] ~ N(0, I), t [B] ~ U[0, 1], and the
    dropout mask null [B] ~ Bernoulli(goal_dropout)."""
    x_0 = torch.randn(B, dim, generator=generator, device=device)
    t = torch.rand(B, generator=generator, device=device)
    return x_0, t, torch.rand(B, generator=generator, device=device) < goal_dropout


def as_column(w, like: torch.Tensor):
    """A guidance weight, scalar or per row, as a [1, 1] or [B, 1] tensor (None stays None)."""
    return None if w is None else torch.as_tensor(w, dtype=like.dtype, device=like.device).reshape(-1, 1)


class GCFlow(nn.Module):
    """Goal-conditioned CFGRL (goal_dropout > 0) or flow GCBC (goal_dropout = 0)."""

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
        self.cfg, self.act_dim, self.goal_dropout = cfg, act_dim, goal_dropout
        self.obs_norm = ObsNormalizer(obs_dim)  # identity: the authors' agents see raw observations
        self.velocity = GoalVelocityNet(obs_dim, goal_dim, act_dim, cfg.hidden)
        self.optimizer = torch.optim.Adam(self.velocity.parameters(), lr=cfg.lr, fused=True)
        self.gradient_step = GradientStep(self.loss, self.optimizer, compile)

    # ---- loss ---------------------------------------------------------------------------------
    def loss(self, batch, x_0, t, null) -> tuple[torch.Tensor, dict]:
        """L = mean (v(s, g~, x_t, t) - (x_1 - x_0))^2; the noise (x_0, t, null) is drawn by `update`."""
        obs, goal, x_1 = batch["observations"], batch["goals"], batch["actions"]  # [B, O], [B, G], [B, A]
        err = flow_matching_error(self.velocity, obs, goal, x_1, x_0, t, null)  # [B]
        loss = err.mean()
        nullf = null.float()
        return loss, {
            "actor/loss": loss,
            "actor/flow_loss_null": (err * nullf).sum() / nullf.sum().clamp_min(1),
            "actor/null_frac": nullf.mean(),
        }

    def update(self, batch: dict[str, torch.Tensor], generator=None) -> dict[str, torch.Tensor]:
        B, dev = len(batch["actions"]), batch["actions"].device  # noise drawn where the batch lives
        return self.gradient_step(batch, *flow_noise(B, self.act_dim, self.goal_dropout, generator, dev))

    # ---- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_actions(self, obs, goal, w=None, noise=None, generator=None) -> torch.Tensor:
        """Euler-integrate the flow from x_0 ~ N(0, I): obs [B, O], goal [B, G], w scalar or [B] (None:
        the goal-conditioned flow alone, as flow GCBC samples) -> a [B, A] in [-1, 1]."""
        if self.goal_dropout == 0 and w is not None:
            raise ValueError("flow GCBC has no trained null goal: sample it with w=None")
        obs = self.obs_norm(obs)
        x_0 = (
            noise
            if noise is not None
            else torch.randn(len(obs), self.act_dim, generator=generator, device=obs.device)
        )
        x_1 = euler_flow(self.velocity, obs, goal, x_0, self.cfg.flow_steps, as_column(w, obs))  # [B, A]
        return x_1.clamp(-1.0, 1.0)
