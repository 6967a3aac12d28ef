"""Rejection sampling from flow BC on the label stage's IQL critic: IFQL / IDQL policy extraction, with
no training (method.md §10).

Candidates: N actions per state from flow BC, the w = 0 branch of the trained CFGRL network (trained on
all the data), each by k Euler steps from its own noise x_0^i ~ N(0, I):
    a_i = ODE_k(v(s, ., t, null); x_0^i),  i = 1..N                         [B, N, A]
    A(s, a_i) = min_j Q_j(s, a_i) - V(s)   (the critic the labels came from) [B, N]
and one of them is taken by
    argmax:   i* = argmax_i A(s, a_i) = argmax_i min_j Q_j(s, a_i)  (IFQL's sampler; IDQL's eval_actions)
    resample: i* ~ softmax_i(alpha A(s, a_i))  self-normalised importance resampling of
              pi_hat(a|s) exp(alpha A(s, a)): the target AWR and CFGRL aim at, by another sampler.
Candidate 0 uses the noise CFGRL's evaluation draws at that step, so N = 1 is flow BC (with k steps).
"""

from __future__ import annotations

import torch

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL


def select(adv: torch.Tensor, alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Pick a candidate per state: adv [B, N] (-inf where a state has fewer than N candidates), alpha [B]
    (inf: argmax; else i ~ softmax(alpha * adv) by inverse CDF at u), u [B] uniform in [0, 1) -> [B]."""
    valid = torch.isfinite(adv)
    best = adv.argmax(-1)  # [B]
    logits = torch.where(valid, alpha[:, None].clamp(max=1e30) * adv.nan_to_num(neginf=0.0), -torch.inf)
    p = torch.softmax(logits, -1)  # [B, N]
    cdf = p.cumsum(-1)  # [B, N]
    target = (u * cdf[:, -1])[:, None]  # [B, 1]
    drawn = torch.searchsorted(cdf, target, right=True).squeeze(-1)  # [B]: first i with cdf_i > u
    drawn = torch.minimum(drawn, valid.sum(-1) - 1)  # rounding at u -> 1
    return torch.where(torch.isinf(alpha), best, drawn)


class RejectionSampler:
    """Flow-BC candidates from a CFGRL checkpoint's w = 0 branch, scored by an IQL critic (both frozen)."""

    def __init__(self, bc: CFGRL, critic: IQL, flow_steps: int):
        bc.check_flow_steps(flow_steps)
        self.bc, self.critic, self.flow_steps, self.act_dim = bc, critic, flow_steps, bc.act_dim

    @torch.no_grad()
    def sample_actions(
        self,
        obs: torch.Tensor,
        counts: torch.Tensor,
        alpha: torch.Tensor,
        noise: torch.Tensor,
        extra: torch.Tensor,
    ) -> torch.Tensor:
        """obs [B, O]; counts [B] (N per state); alpha [B] (inf: argmax); noise [B, A] (candidate 0's);
        extra [B, E], E >= (max N - 1) * A + 1 (the other candidates' noise, then the resampling's
        uniform through the normal CDF) -> a [B, A]."""
        B, A = len(obs), self.act_dim
        rows = torch.repeat_interleave(torch.arange(B, device=obs.device), counts)  # [M]: each one's state
        first = torch.cumsum(counts, 0) - counts  # [B]: row of candidate 0 of each state
        k = torch.arange(len(rows), device=obs.device) - first[rows]  # [M]: candidate index within its state
        x_0 = noise[rows].clone()  # [M, A]: candidate 0 of each state, CFGRL's noise
        more = k > 0  # the other candidates read their noise from extra: columns (k - 1) A .. k A - 1
        cols = ((k[more] - 1) * A)[:, None] + torch.arange(A, device=obs.device)  # [M', A]
        x_0[more] = extra.reshape(-1)[rows[more, None] * extra.shape[1] + cols]
        a = self.bc.sample_bc(obs[rows], x_0, self.flow_steps)  # [M, A]
        q = self.critic.q_values(obs[rows], a).min(0).values  # [M]: min_j Q_j(s, a_i)
        adv = q - self.critic.value(self.critic.obs_norm(obs))[rows]  # [M]: A(s, a_i)
        table = torch.full((B, int(counts.max())), -torch.inf, device=obs.device)  # [B, N_max]
        table[rows, k] = adv
        u = torch.special.ndtr(extra[:, -1])  # [B] uniform
        return a[first + select(table, alpha, u)]
