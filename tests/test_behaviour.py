"""Behaviour of the trained algorithms where the right answer is known in closed form.

1. CFGRL on a one-step bandit with a bimodal action distribution: 70% of the actions near -0.5,
   30% near +0.5, noisy optimality labels p(o = 1 | good) = 0.8, p(o = 1 | bad) = 0.1. Guidance
   samples pi_w ∝ pi_hat(a) p(o = 1 | a)^w, so the share of the good mode is
       w = 0: 0.30    w = 1: 0.24 / 0.31 = 0.774    w = 3: 0.1536 / 0.1543 = 0.995
   (noisy labels so that the share grows strictly from w = 1 to w = 3, as Theorem 2 says).
   Backwards guidance, ignored labels or random labels all break the monotone growth.
2. The IQL critic on tiny MDPs with known Q and V: one step (mask 0, Q = r, V = the expectile of
   Q under the data's actions) and a two-step chain (Q(s0, a) = r0(a) + gamma V(s1)).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_params

from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL, optimality_labels

N_DATA = 2000
GOOD_FRAC = 0.3
P_OPT_GOOD, P_OPT_BAD = 0.8, 0.1
CFGRL_STEPS = 1500
N_SAMPLES = 4000
OBS = torch.ones(
    1, 2
)  # constant, non-zero: all-zero inputs give zero gradients, whose Adam moments go denormal


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def theory_share(w: float) -> float:
    good, bad = GOOD_FRAC * P_OPT_GOOD**w, (1 - GOOD_FRAC) * P_OPT_BAD**w
    return good / (good + bad)


# --------------------------------------------------------------------------------------------
# CFGRL on a bimodal bandit
# --------------------------------------------------------------------------------------------
def bandit_data(labels: str, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    good = rng.random(N_DATA) < GOOD_FRAC
    a = np.where(good, 0.5, -0.5) + 0.05 * rng.normal(size=N_DATA)
    if labels == "noisy":
        opt = rng.random(N_DATA) < np.where(good, P_OPT_GOOD, P_OPT_BAD)
    elif labels == "exact":
        opt = good
    elif labels == "random":  # independent of the action, same positive rate as "noisy"
        opt = rng.random(N_DATA) < GOOD_FRAC * P_OPT_GOOD + (1 - GOOD_FRAC) * P_OPT_BAD
    else:
        raise AssertionError(labels)
    return {
        "observations": OBS.expand(N_DATA, -1).clone(),
        "actions": torch.tensor(a, dtype=torch.float32)[:, None],
        "optimal": torch.from_numpy(opt),
    }


def train_bandit(labels: str, scheme: str, seed: int = 0) -> CFGRL:
    cfg = make_params(
        {
            "train_cfgrl.hidden": [64, 64],
            "train_cfgrl.lr": 3e-3,
            "train_cfgrl.label_scheme": scheme,
            "train_cfgrl.flow_steps": 32,
        }
    ).train_cfgrl
    torch.manual_seed(seed)
    agent = CFGRL(2, 1, cfg)
    data = bandit_data(labels, seed)
    g = torch.Generator().manual_seed(seed)
    for _ in range(CFGRL_STEPS):
        idx = torch.randint(N_DATA, (256,), generator=g)
        agent.update({k: v[idx] for k, v in data.items()}, g)
    return agent


def good_share(agent: CFGRL, w: float, seed: int = 123) -> float:
    a = agent.sample_actions(OBS.expand(N_SAMPLES, -1), w, generator=torch.Generator().manual_seed(seed))
    return float((a[:, 0] > 0).float().mean())


def shares(agent: CFGRL, ws=(0.0, 1.0, 3.0)) -> dict[float, float]:
    return {w: good_share(agent, w) for w in ws}


@pytest.fixture(scope="module")
def bandit_agents() -> dict[str, CFGRL]:
    return {
        "binary_noisy": train_bandit("noisy", "binary_weighted"),
        "ternary_noisy": train_bandit("noisy", "ternary_dropout"),
        "binary_random": train_bandit("random", "binary_weighted"),
        "binary_exact": train_bandit("exact", "binary_weighted"),
    }


def check_guidance_improves(s: dict[float, float]) -> None:
    assert 0.2 <= s[0.0] <= 0.4, s  # w = 0 is flow BC: the data frequency 0.3
    assert abs(s[1.0] - theory_share(1.0)) < 0.1, s  # the conditional policy: 0.774
    assert s[3.0] > 0.9, s  # theory 0.995
    assert s[0.0] + 0.2 < s[1.0] < s[3.0] - 0.05, s  # strictly, and by a margin


@pytest.mark.parametrize("name", ["binary_noisy", "ternary_noisy"])
def test_guidance_moves_mass_to_the_good_mode(bandit_agents, name):
    agent = bandit_agents[name]
    s = shares(agent)
    check_guidance_improves(s)
    # the modes are reproduced, not smeared: few samples between them
    a = agent.sample_actions(OBS.expand(N_SAMPLES, -1), 0.0, generator=torch.Generator().manual_seed(1))
    assert float(((a > -0.25) & (a < 0.25)).float().mean()) < 0.1


def test_exact_labels_select_the_good_mode(bandit_agents):
    """o = 1[a near +0.5]: p(a | o = 1) is the good mode alone, so w >= 1 samples nothing else."""
    s = shares(bandit_agents["binary_exact"])
    assert 0.2 <= s[0.0] <= 0.4, s
    assert s[1.0] > 0.97 and s[3.0] > 0.97, s


def test_backwards_guidance_would_be_caught(bandit_agents, monkeypatch):
    """The same trained net, sampled with the sign of the guidance term flipped
    (v_uncond + w (v_uncond - v_opt)): the check above fails, the good share falls with w."""
    agent = bandit_agents["binary_noisy"]
    real = CFGRL.guided_velocity

    def backwards(self, obs2, label, x, t, w):
        v_uncond = real(self, obs2, label, x, t, 0.0)
        v_opt = real(self, obs2, label, x, t, 1.0)
        return v_uncond + w * (v_uncond - v_opt)

    monkeypatch.setattr(CFGRL, "guided_velocity", backwards)
    s = shares(agent)
    with pytest.raises(AssertionError):
        check_guidance_improves(s)
    assert s[3.0] < s[1.0] < s[0.0] + 0.02, s


def test_random_labels_give_no_improvement(bandit_agents):
    s = shares(bandit_agents["binary_random"])
    for share in s.values():
        assert 0.2 <= share <= 0.4, s  # everything stays near the data frequency
    assert abs(s[3.0] - s[0.0]) < 0.1, s
    with pytest.raises(AssertionError):
        check_guidance_improves(s)


def test_ignoring_labels_gives_no_improvement(bandit_agents):
    """Every label positive (what a pipeline that drops the labels trains on): the conditional and
    unconditional policies coincide, and guidance cannot improve on the data."""
    data = bandit_data("noisy", seed=0)
    assert 0.25 < float(data["optimal"].float().mean()) < 0.37  # the real labels are mixed
    data["optimal"][:] = True
    torch.manual_seed(0)
    agent = CFGRL(2, 1, bandit_agents["binary_noisy"].cfg)
    g = torch.Generator().manual_seed(0)
    for _ in range(CFGRL_STEPS):
        idx = torch.randint(N_DATA, (256,), generator=g)
        agent.update({k: v[idx] for k, v in data.items()}, g)
    s = shares(agent)
    assert abs(s[3.0] - s[0.0]) < 0.1 and s[3.0] < 0.45, s
    with pytest.raises(AssertionError):
        check_guidance_improves(s)


# --------------------------------------------------------------------------------------------
# IQL on MDPs with closed-form Q, V and A
# --------------------------------------------------------------------------------------------
def expectile(values: np.ndarray, probs: np.ndarray, tau: float) -> float:
    """The tau-expectile v of a discrete distribution: sum_i p_i |tau - 1[q_i < v]| (q_i - v) = 0."""
    lo, hi = float(values.min()), float(values.max())
    for _ in range(100):
        v = (lo + hi) / 2
        f = np.sum(probs * np.where(values < v, 1 - tau, tau) * (values - v))
        lo, hi = (v, hi) if f > 0 else (lo, v)
    return (lo + hi) / 2


def transitions(
    rows: list[tuple[int, float, float, int, float, int]], n_states: int
) -> dict[str, torch.Tensor]:
    """rows of (state, action, reward, next_state, mask, count) -> tensors, one-hot observations."""
    eye = torch.eye(n_states)
    s, a, r, s2, m = [], [], [], [], []
    for state, act, rew, nxt, mask, count in rows:
        s += [state] * count
        a += [act] * count
        r += [rew] * count
        s2 += [nxt] * count
        m += [mask] * count
    return {
        "observations": eye[s],
        "actions": torch.tensor(a)[:, None],
        "rewards": torch.tensor(r),
        "next_observations": eye[s2],
        "masks": torch.tensor(m),
    }


def train_iql(data, steps: int, **over) -> IQL:
    cfg = make_params(
        {
            "label.hidden": [64, 64],
            "label.lr": 3e-3,
            "label.polyak": 0.05,
            **{f"label.{k}": v for k, v in over.items()},
        }
    ).label
    torch.manual_seed(0)
    agent = IQL(data["observations"].shape[1], 1, cfg)
    for _ in range(steps):
        agent.update(data)  # the whole (tiny) dataset every step
    return agent


IQL_STEPS = 600
ATOL = 0.03
ACTIONS = [-0.75, -0.25, 0.25, 0.75]
ONE_STEP = {  # state: (rewards per action, data counts per action)
    0: ([0.0, 1.0, 0.5, 2.0], [4, 3, 2, 1]),
    1: ([1.5, 0.0, 1.0, 0.0], [1, 2, 3, 4]),
}


@pytest.mark.parametrize("tau", [0.5, 0.9])
def test_iql_one_step_advantages_match_closed_form(tau):
    rows = [(s, a, r, s, 0.0, c) for s, (rs, cs) in ONE_STEP.items() for a, r, c in zip(ACTIONS, rs, cs)]
    agent = train_iql(transitions(rows, 2), steps=IQL_STEPS, expectile=tau)
    for s, (rs, cs) in ONE_STEP.items():
        q = np.array(rs)
        v = expectile(q, np.array(cs) / sum(cs), tau)
        if tau == 0.5:
            assert v == pytest.approx(np.average(q, weights=cs))  # the solver agrees with the mean
        obs = torch.eye(2)[[s] * 4]
        adv = agent.advantage(obs, torch.tensor(ACTIONS)[:, None]).numpy()
        np.testing.assert_allclose(adv, q - v, atol=ATOL, err_msg=f"state {s}, tau {tau}")
        with torch.no_grad():
            v_learned = float(agent.value(obs[:1]))
        assert v_learned == pytest.approx(v, abs=ATOL)
        labels = optimality_labels(torch.from_numpy(adv), 0.0, inclusive=False).numpy()
        np.testing.assert_array_equal(labels, q - v > 0)


def test_iql_two_step_chain_bootstraps_through_v():
    """s0 --a--> s1 (mask 1) --a--> end (mask 0). With tau = 0.7 V(s1) is the 0.7-expectile of
    r1 = {2, 0} (1.4, not the mean 1), and Q(s0, a) = r0(a) + gamma V(s1)."""
    gamma, tau = 0.9, 0.7
    r0, c0 = np.array([0.0, 1.0]), np.array([3, 1])
    r1, c1 = np.array([2.0, 0.0]), np.array([1, 1])
    acts = [-0.5, 0.5]
    rows = [(0, a, r, 1, 1.0, c) for a, r, c in zip(acts, r0, c0)]
    rows += [(1, a, r, 1, 0.0, c) for a, r, c in zip(acts, r1, c1)]
    agent = train_iql(transitions(rows, 2), steps=IQL_STEPS, expectile=tau, discount=gamma)

    v1 = expectile(r1, c1 / c1.sum(), tau)
    assert v1 == pytest.approx(1.4)
    q0 = r0 + gamma * v1
    v0 = expectile(q0, c0 / c0.sum(), tau)
    a_t = torch.tensor(acts)[:, None]
    with torch.no_grad():
        q0_learned = agent.target_critic(torch.eye(2)[[0, 0]], a_t).min(0).values.numpy()
        v_learned = agent.value(torch.eye(2)).numpy()
    np.testing.assert_allclose(v_learned, [v0, v1], atol=ATOL)
    np.testing.assert_allclose(q0_learned, q0, atol=ATOL)
    np.testing.assert_allclose(agent.advantage(torch.eye(2)[[0, 0]], a_t).numpy(), q0 - v0, atol=ATOL)
    np.testing.assert_allclose(agent.advantage(torch.eye(2)[[1, 1]], a_t).numpy(), r1 - v1, atol=ATOL)
