"""Policy extraction from flow BC on one critic (method.md §10): rejection sampling (IFQL argmax,
resampling by softmax(alpha A)) and FQL's one-step policy on the frozen critic."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_params
from torch import nn

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.fql import FQL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.algorithms.rejection import RejectionSampler, select
from pipeline_steps.core.checkpoints import save_agent
from pipeline_steps.core.params import ParamsError

pytestmark = pytest.mark.usefixtures("one_thread")
O, A = 5, 3


def small_params(**over):
    base = {
        "train_cfgrl.hidden": [32, 32],
        "train_cfgrl.flow_steps": 8,
        "label.hidden": [32, 32],
        "train_fql.hidden": [64, 64],
        "train_fql.flow_steps": 4,
    }
    return make_params({**base, **over})


def agents(seed: int = 0, **over):
    p = small_params(**over)
    torch.manual_seed(seed)
    return p, CFGRL(O, A, p.train_cfgrl), IQL(O, A, p.label)


def test_one_candidate_is_flow_bc_with_the_same_noise():
    """N = 1 at the trained step count: CFGRL's w = 0 action from the same x_0, whatever alpha."""
    p, bc, critic = agents()
    sampler = RejectionSampler(bc, critic, p.train_cfgrl.flow_steps)
    obs, noise = torch.randn(6, O), torch.randn(6, A)
    alphas = torch.tensor([math.inf, 0.0, 1.0, 10.0, math.inf, 3.0])
    a = sampler.sample_actions(obs, torch.ones(6, dtype=torch.long), alphas, noise, torch.randn(6, 1))
    torch.testing.assert_close(a, bc.sample_actions(obs, 0.0, noise=noise), rtol=0, atol=1e-6)


def test_argmax_takes_the_candidate_of_highest_q_and_candidates_follow_their_noise():
    p, bc, critic = agents(1)
    sampler = RejectionSampler(bc, critic, 4)
    counts = torch.tensor([3, 1, 5])
    obs, noise, extra = torch.randn(3, O), torch.randn(3, A), torch.randn(3, 4 * A + 1)
    a = sampler.sample_actions(obs, counts, torch.full((3,), math.inf), noise, extra)
    for b in range(3):
        n = int(counts[b])
        x0 = torch.cat([noise[b : b + 1], extra[b, : (n - 1) * A].reshape(n - 1, A)])  # candidate i's noise
        cands = bc.sample_bc(obs[b].expand(n, O), x0, 4)  # [n, A]
        q = critic.q_values(obs[b].expand(n, O), cands).min(0).values  # [n]
        torch.testing.assert_close(a[b], cands[q.argmax()], rtol=0, atol=1e-6)
    # more candidates never lower the best Q among them (candidate 0 is shared)
    a1 = sampler.sample_actions(
        obs, torch.ones(3, dtype=torch.long), torch.full((3,), math.inf), noise, extra
    )
    q_n, q_1 = (critic.q_values(obs, x).min(0).values for x in (a, a1))
    assert (q_n >= q_1 - 1e-6).all()


def test_select_resamples_uniformly_at_alpha_zero_and_takes_the_argmax_at_large_alpha():
    adv = torch.tensor([[0.3, -1.0, 2.0, 0.5], [1.0, 4.0, -math.inf, -math.inf]])  # row 1: 2 candidates
    u = torch.linspace(0.0, 0.999, 1000)
    for row, valid in ((0, 4), (1, 2)):
        picks = select(adv[row].expand(1000, -1), torch.zeros(1000), u)
        counts = torch.bincount(picks, minlength=4)
        assert counts[:valid].tolist() == [1000 // valid] * valid and counts[valid:].sum() == 0
        big = select(adv[row].expand(1000, -1), torch.full((1000,), 1e4), u)
        assert (big == adv[row].argmax()).all()
        assert (
            select(adv[row].expand(1000, -1), torch.full((1000,), math.inf), u) == adv[row].argmax()
        ).all()
    # alpha = 1: frequencies follow softmax(A) (inverse CDF on an even grid of u)
    p = torch.softmax(adv[0], 0)
    freq = torch.bincount(select(adv[0].expand(1000, -1), torch.ones(1000), u), minlength=4) / 1000
    torch.testing.assert_close(freq, p, atol=2e-3, rtol=0)


def test_candidates_off_the_training_time_grid_are_refused():
    p, bc, critic = agents()  # grid of 8 steps: t in {j / 8}
    RejectionSampler(bc, critic, 2)
    with pytest.raises(ValueError, match="flow_steps 3 puts flow times off the training grid"):
        RejectionSampler(bc, critic, 3)
    with pytest.raises(ParamsError, match=r"extraction.flow_steps 3 must divide train_cfgrl.flow_steps 8"):
        small_params(**{"extraction.flow_steps": 3})
    with pytest.raises(ParamsError, match=r"train_fql.flow_steps 5 must divide train_cfgrl.flow_steps 8"):
        small_params(**{"train_fql.flow_steps": 5})
    # t ~ U[0, 1]: the network saw every t, any step count is on its training distribution
    small_params(**{"train_cfgrl.time_sampling": "uniform", "extraction.flow_steps": 3})


class BowlCritic(nn.Module):
    """Q_j(s, a) = -||a - 0.5||^2 (j = 1, 2): Q climbs towards a = 0.5 in every state."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def q_values(self, obs, act):
        return -(act - 0.5).square().sum(-1).expand(2, -1) + 0 * self.dummy


def train_fql(alphas: list[float], steps: int = 400):
    p, teacher, _ = agents(3, **{"train_fql.alphas": alphas, "train_fql.lr": 1e-3})
    torch.manual_seed(4)
    agent = FQL(O, A, p.train_fql).attach(teacher, BowlCritic())
    obs = torch.randn(512, O)
    gen = torch.Generator().manual_seed(5)
    batch = {"observations": obs[:256], "actions": torch.zeros(256, A)}
    before = agent.actor_loss(batch, torch.randn(256, A, generator=gen))[1]
    for _ in range(steps):
        idx = torch.randint(512, (256,), generator=gen)
        agent.update({"observations": obs[idx], "actions": torch.zeros(256, A)}, gen)
    z = torch.randn(256, A, generator=gen)
    return agent, teacher, before, agent.actor_loss(batch, z)[1], batch["observations"], z


def test_fql_distils_the_teacher_at_large_alpha_and_climbs_q_at_alpha_zero():
    agent, teacher, before, after, obs, z = train_fql([0.0, 100.0])
    # alpha = 100: mu(s, z) follows the teacher's ODE from the same z
    assert after["actor/distill/alpha=100"] < 0.05 * before["actor/distill/alpha=100"]
    mu = agent.sample_actions(obs, noise=z)  # [K, B, A]
    target = teacher.sample_bc(obs, z, 4)
    assert (mu[1] - target).square().mean() < 0.01
    # alpha = 0: pure Q ascent, mu goes to the bowl's top and beats the teacher's Q
    assert after["actor/q/alpha=0"] > -0.01 > before["actor/q/alpha=0"]
    q_teacher = -(target - 0.5).square().sum(-1).mean()
    assert after["actor/q/alpha=0"] > q_teacher + 0.1


def test_fql_checkpoint_holds_the_policies_alone_and_restores_them(tmp_path):
    p, teacher, critic = agents()
    agent = FQL(O, A, p.train_fql).attach(teacher, critic)
    assert not any(k.startswith(("teacher", "critic", "frozen")) for k in agent.state_dict())
    save_agent(tmp_path / "policies.pt", "fql", agent, p.train_fql, "cheetah-run", 0, A)
    back = FQL.from_checkpoint(tmp_path / "policies.pt")
    obs, z = torch.randn(4, O), torch.randn(4, A)
    torch.testing.assert_close(back.sample_actions(obs, noise=z), agent.sample_actions(obs, noise=z))
    assert back.sample_actions(obs, noise=z).shape == (len(p.train_fql.alphas), 4, A)
    assert back.sample_actions(obs, noise=z).abs().max() <= 1.0
