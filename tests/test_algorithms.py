"""The algorithm files against limiting cases and hand-computed numbers: guidance, the Euler
sampler, the flow losses, expectile / AWR weights, the Gaussian policy, ensemble layers, Mish,
IQL labels and Polyak averaging, the compile fallback, non-finite losses and atomic checkpoints."""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_params, write_synthetic_dataset, write_synthetic_labels
from torch import nn

from pipeline_steps.algorithms import common
from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.algorithms.awr import AWR, awr_weights, gaussian_log_prob, weight_concentration
from pipeline_steps.algorithms.cfgrl import (
    CFGRL,
    NEGATIVE,
    NULL,
    POSITIVE,
    flow_error,
    sample_t,
    time_embedding,
)
from pipeline_steps.algorithms.common import (
    EnsembleLinear,
    GradientStep,
    Mish,
    ensemble_mlp,
    mlp,
    polyak_update,
)
from pipeline_steps.algorithms.iql import IQL, expectile_loss, optimality_labels
from pipeline_steps.core.checkpoints import load_checkpoint, save_checkpoint
from pipeline_steps.core.training import (
    NonFiniteLossError,
    Sampler,
    Window,
    check_finite_parameters,
    train_loop,
)
from pipeline_steps.rl import label, train_awf, train_awr, train_cfgrl

OBS_DIM, ACT_DIM = 3, 2
STEPS_AWR_MLE = 600


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


# --------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------
def cfgrl_cfg(**over):
    base = {"hidden": [32, 32], "flow_steps": 8, "time_emb_dim": 8, "label_emb_dim": 4}
    return make_params({f"train_cfgrl.{k}": v for k, v in {**base, **over}.items()}).train_cfgrl


def make_cfgrl(seed=0, obs_dim=OBS_DIM, act_dim=ACT_DIM, **over) -> CFGRL:
    torch.manual_seed(seed)
    return CFGRL(obs_dim, act_dim, cfgrl_cfg(**over))


def awr_cfg(**over):
    base = {"hidden": [16], "inv_betas": [1.0, 3.0]}
    return make_params({f"train_awr.{k}": v for k, v in {**base, **over}.items()}).train_awr


def label_cfg(**over):
    base = {"hidden": [16, 16]}
    return make_params({f"label.{k}": v for k, v in {**base, **over}.items()}).label


def velocity_of(agent: CFGRL, obs, x, t, label_idx: int) -> torch.Tensor:
    """v(s, label, x, t) straight from the VelocityNet, one label for the whole batch."""
    with torch.no_grad():
        return agent.velocity(obs, x, t, torch.full((len(obs),), label_idx))


# --------------------------------------------------------------------------------------------
# guidance and the Euler sampler
# --------------------------------------------------------------------------------------------
def test_guided_velocity_limits_and_extrapolation():
    agent = make_cfgrl()
    g = torch.Generator().manual_seed(1)
    B, t = 16, 0.375
    obs, x = torch.randn(B, OBS_DIM, generator=g), torch.randn(B, ACT_DIM, generator=g)
    v_uncond = velocity_of(agent, obs, x, torch.full((B,), t), NULL)
    v_opt = velocity_of(agent, obs, x, torch.full((B,), t), POSITIVE)
    assert (v_opt - v_uncond).abs().max() > 1e-2  # the two conditions differ, so the checks below bite

    obs2, label = agent.branch_inputs(obs)
    assert obs2.shape == (2 * B, OBS_DIM) and (label[:B] == NULL).all() and (label[B:] == POSITIVE).all()

    def guided(w):
        return agent.guided_velocity(obs2, label, x, t, w)

    torch.testing.assert_close(guided(0.0), v_uncond, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(guided(1.0), v_opt, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(guided(2.0), 2 * v_opt - v_uncond, atol=1e-5, rtol=1e-5)

    # per-sample w: row i is guided with its own w_i
    w = torch.linspace(0.0, 5.0, B)
    got = guided(w[:, None])
    for i in range(B):
        expect = v_uncond[i] + w[i] * (v_opt[i] - v_uncond[i])
        torch.testing.assert_close(got[i], expect, atol=1e-5, rtol=1e-5)


def _replace_velocity(agent: CFGRL, fn):
    """Swap the VelocityNet's forward for fn(obs, x, t, label); returns the list of recorded calls."""
    calls = []

    def forward(obs, x, t, label):
        calls.append((obs.clone(), x.clone(), t.clone(), label.clone()))
        return fn(obs, x, t, label)

    agent.velocity.forward = forward
    return calls


def test_euler_sampler_zero_velocity_returns_clipped_noise():
    agent = make_cfgrl()
    _replace_velocity(agent, lambda obs, x, t, label: torch.zeros_like(x))
    noise = 1.5 * torch.randn(64, ACT_DIM, generator=torch.Generator().manual_seed(0))
    assert (noise.abs() > 1).any()  # some noise is outside [-1, 1]: the clip is exercised
    for w in (0.0, 1.0, 3.0):
        out = agent.sample_actions(torch.zeros(64, OBS_DIM), w, noise=noise.clone())
        torch.testing.assert_close(out, noise.clamp(-1, 1))


def test_euler_sampler_constant_velocity_adds_it_once():
    agent = make_cfgrl()
    c = torch.tensor([0.3, -0.7])
    _replace_velocity(agent, lambda obs, x, t, label: c.expand_as(x))
    noise = torch.randn(64, ACT_DIM, generator=torch.Generator().manual_seed(0))
    out = agent.sample_actions(torch.zeros(64, OBS_DIM), 3.0, noise=noise.clone())
    torch.testing.assert_close(out, (noise + c).clamp(-1, 1), atol=1e-6, rtol=1e-5)


def test_euler_sampler_label_dependent_velocity_and_time_grid():
    """v = c_label + t: the result is noise + c_null + w (c_pos - c_null) + sum_i (i/n) / n, which
    checks the label order (null vs positive), per-row w, the left-end time grid t_i = i/n, and
    that the sampler sees normalised observations."""
    agent = make_cfgrl(flow_steps=8)
    n = agent.cfg.flow_steps
    consts = {NULL: torch.tensor([0.1, -0.2]), POSITIVE: torch.tensor([0.3, 0.1])}
    calls = _replace_velocity(
        agent, lambda obs, x, t, label: torch.stack([consts[int(l)] for l in label]) + t[:, None]
    )
    agent.obs_norm.mean.fill_(2.0)
    agent.obs_norm.std.fill_(4.0)
    B = 5
    noise = 0.1 * torch.randn(B, ACT_DIM, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0])
    obs = torch.full((B, OBS_DIM), 6.0)
    out = agent.sample_actions(obs, w, noise=noise.clone())
    drift = sum(i / n for i in range(n)) / n  # = (n - 1) / (2 n)
    expect = noise + consts[NULL] + w[:, None] * (consts[POSITIVE] - consts[NULL]) + drift
    torch.testing.assert_close(out, expect.clamp(-1, 1), atol=1e-6, rtol=1e-5)
    assert len(calls) == n
    assert sorted({round(float(c[2][0]) * n) for c in calls}) == list(range(n))
    torch.testing.assert_close(calls[0][0], torch.ones(2 * B, OBS_DIM))  # (6 - 2) / 4


def test_sample_actions_shapes_and_range():
    agent = make_cfgrl()
    obs = torch.randn(7, OBS_DIM)
    a = agent.sample_actions(obs, 100.0, generator=torch.Generator().manual_seed(0))
    assert a.shape == (7, ACT_DIM)
    assert a.abs().max() <= 1.0
    # the same generator seed gives the same actions; the noise argument reproduces them
    a2 = agent.sample_actions(obs, 100.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, a2, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# flow-matching losses, time embedding, t sampling
# --------------------------------------------------------------------------------------------
def _flow_batch(B=12, seed=3):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "observations": 3.0 + 2.0 * torch.randn(B, OBS_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g) * 2 - 1,
        "optimal": torch.tensor([True, False] * (B // 2)),
    }
    x_0 = torch.randn(B, ACT_DIM, generator=g)
    t = torch.randint(0, 9, (B,), generator=g).float() / 8
    t[0], t[1] = 0.0, 1.0
    drop = torch.tensor([True, False, False, True] * (B // 4))
    return batch, x_0, t, drop


def _fit_norm(agent, obs):
    agent.obs_norm.fit(obs)
    assert (agent.obs_norm.mean.abs() > 0.5).all()  # a non-trivial normalisation, so skipping it shows


def test_binary_weighted_loss_by_hand():
    agent = make_cfgrl(label_scheme="binary_weighted", uncond_weight=0.1)
    batch, x_0, t, drop = _flow_batch()
    _fit_norm(agent, batch["observations"])
    loss, info = agent.actor_loss(batch, x_0, t, drop)

    obs_n = (batch["observations"] - agent.obs_norm.mean) / agent.obs_norm.std
    terms, opt_errs = [], []
    for i in range(len(x_0)):
        x_1 = batch["actions"][i]
        x_t = (1 - t[i]) * x_0[i] + t[i] * x_1
        target = x_1 - x_0[i]
        errs = {}
        for lab in (POSITIVE, NULL):
            v = velocity_of(agent, obs_n[i : i + 1], x_t[None], t[i : i + 1], lab)[0]
            errs[lab] = float(((v - target) ** 2).mean())
        o = float(batch["optimal"][i])
        terms.append(o * errs[POSITIVE] + 0.1 * errs[NULL])
        if o:
            opt_errs.append(errs[POSITIVE])
    assert float(loss.detach()) == pytest.approx(np.mean(terms), rel=1e-5)
    assert float(info["actor/flow_loss_opt"].detach()) == pytest.approx(np.mean(opt_errs), rel=1e-5)
    # the drop mask is irrelevant to this scheme
    loss2, _ = agent.actor_loss(batch, x_0, t, ~drop)
    assert float(loss2.detach()) == pytest.approx(float(loss.detach()), rel=1e-6)


def test_ternary_dropout_loss_by_hand():
    agent = make_cfgrl(label_scheme="ternary_dropout")
    assert agent.velocity.label_emb.num_embeddings == 3
    batch, x_0, t, drop = _flow_batch()
    _fit_norm(agent, batch["observations"])
    loss, _ = agent.actor_loss(batch, x_0, t, drop)

    obs_n = (batch["observations"] - agent.obs_norm.mean) / agent.obs_norm.std
    errs = []
    for i in range(len(x_0)):
        lab = NULL if drop[i] else (POSITIVE if batch["optimal"][i] else NEGATIVE)
        x_1 = batch["actions"][i]
        x_t = (1 - t[i]) * x_0[i] + t[i] * x_1
        v = velocity_of(agent, obs_n[i : i + 1], x_t[None], t[i : i + 1], lab)[0]
        errs.append(float(((v - (x_1 - x_0[i])) ** 2).mean()))
    assert float(loss.detach()) == pytest.approx(np.mean(errs), rel=1e-5)


@pytest.mark.parametrize("scheme", ["binary_weighted", "ternary_dropout"])
def test_flow_loss_sees_the_interpolant(scheme):
    agent = make_cfgrl(label_scheme=scheme)
    batch, x_0, t, drop = _flow_batch()
    calls = _replace_velocity(agent, lambda obs, x, t, label: torch.zeros_like(x))
    loss, _ = agent.actor_loss(batch, x_0, t, drop)
    ((_, x_seen, t_seen, labels),) = calls
    B = len(x_0)
    x_t = (1 - t[:, None]) * x_0 + t[:, None] * batch["actions"]
    torch.testing.assert_close(x_seen[:B], x_t)
    torch.testing.assert_close(t_seen[:B], t)
    torch.testing.assert_close(x_seen[0], x_0[0])  # t = 0: pure noise
    torch.testing.assert_close(x_seen[1], batch["actions"][1])  # t = 1: the action
    if scheme == "binary_weighted":
        assert labels.tolist() == [POSITIVE] * B + [NULL] * B
    # with v = 0 the error is ||x_1 - x_0||^2 averaged over dims
    err = ((batch["actions"] - x_0) ** 2).mean(-1)
    if scheme == "binary_weighted":
        expect = (batch["optimal"].float() * err + agent.cfg.uncond_weight * err).mean()
    else:
        expect = err.mean()
    assert float(loss.detach()) == pytest.approx(float(expect), rel=1e-6)


def test_flow_error():
    vel = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    x_0 = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    x_1 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # targets [1, 0], [0, 2] -> errors mean([0, 4]) = 2 and mean([0, 4]) = 2
    torch.testing.assert_close(flow_error(vel, x_0, x_1), torch.tensor([2.0, 2.0]))


def test_time_embedding():
    t = torch.tensor([0.0, 1e-4, 0.5, 1.0])
    emb = time_embedding(t, 16)
    assert emb.shape == (4, 16)
    torch.testing.assert_close(emb[0, :8], torch.zeros(8))  # sin(0)
    torch.testing.assert_close(emb[0, 8:], torch.ones(8))  # cos(0)
    # the fastest frequency sees t scaled by 10000: sin(10000 t), cos(10000 t)
    for i, ti in enumerate(t.tolist()):
        assert float(emb[i, 0]) == pytest.approx(math.sin(10000 * ti), abs=1e-3)
        assert float(emb[i, 8]) == pytest.approx(math.cos(10000 * ti), abs=1e-3)
    assert (emb.abs() <= 1 + 1e-6).all()
    # every flow time of the training grid gets its own embedding
    grid = time_embedding(torch.arange(33.0) / 32, 16)
    dist = torch.cdist(grid, grid) + 10 * torch.eye(33)
    assert float(dist.min()) > 0.1


def test_sample_t_grid_and_uniform():
    n = 8
    g = torch.Generator().manual_seed(0)
    t = sample_t(20000, cfgrl_cfg(flow_steps=n, time_sampling="grid"), g)
    k = t * n
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-5)
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    counts = torch.bincount(k.round().long(), minlength=n + 1)
    assert len(counts) == n + 1
    expected = 20000 / (n + 1)
    assert ((counts - expected).abs() < 0.1 * expected).all(), counts

    u = sample_t(20000, cfgrl_cfg(flow_steps=n, time_sampling="uniform"), g)
    assert 0.0 <= float(u.min()) and float(u.max()) <= 1.0
    assert float(u.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(u.var()) == pytest.approx(1 / 12, abs=0.005)
    off_grid = ((u * n) - (u * n).round()).abs() > 1e-3
    assert off_grid.float().mean() > 0.9


# --------------------------------------------------------------------------------------------
# expectile loss, AWR weights and their concentration
# --------------------------------------------------------------------------------------------
def test_expectile_loss_hand_values():
    u = torch.tensor([1.0, -2.0, 3.0, -4.0])
    assert float(expectile_loss(u, 0.5)) == pytest.approx(0.5 * (1 + 4 + 9 + 16) / 4)
    assert float(expectile_loss(u, 0.9)) == pytest.approx((0.9 * 1 + 0.1 * 4 + 0.9 * 9 + 0.1 * 16) / 4)
    assert float(expectile_loss(u, 0.1)) == pytest.approx((0.1 * 1 + 0.9 * 4 + 0.1 * 9 + 0.9 * 16) / 4)
    g = torch.Generator().manual_seed(0)
    r = torch.randn(1000, generator=g)
    assert float(expectile_loss(r, 0.5)) == pytest.approx(0.5 * float(r.square().mean()), rel=1e-6)


def test_awr_weights_clip_and_exp():
    adv = torch.tensor([10.0, 0.5, -1.0, 1000.0])
    w = awr_weights(adv, torch.tensor([1.0, 0.1]), 100.0)
    assert w.shape == (2, 4)
    assert float(w[0, 0]) == 100.0  # e^10 = 22026 clipped
    assert float(w[0, 1]) == pytest.approx(math.exp(0.5), rel=1e-6)
    assert float(w[0, 2]) == pytest.approx(math.exp(-1.0), rel=1e-6)
    assert float(w[0, 3]) == 100.0  # exp overflows to inf, still clipped (not NaN)
    assert float(w[1, 0]) == pytest.approx(math.exp(1.0), rel=1e-6)
    assert float(w[1, 1]) == pytest.approx(math.exp(0.05), rel=1e-6)
    assert float(w[1, 3]) == 100.0
    assert torch.isfinite(w).all()


def test_weight_concentration_hand_values():
    B = 250
    c = weight_concentration(torch.full((1, B), 3.7))
    assert float(c["ess_frac"][0]) == pytest.approx(1.0, rel=1e-6)
    assert float(c["top1pct_share"][0]) == pytest.approx(math.ceil(0.01 * B) / B, rel=1e-6)  # 3 / 250

    B = 100
    w = torch.ones(2, B)
    w[0, 17] = 1e6
    c = weight_concentration(w)
    assert float(c["ess_frac"][0]) == pytest.approx((1e6 + 99) ** 2 / (B * (1e12 + 99)), rel=1e-4)
    assert float(c["ess_frac"][0]) == pytest.approx(1 / B, rel=1e-3)
    assert float(c["top1pct_share"][0]) == pytest.approx(1e6 / (1e6 + 99), rel=1e-6)
    assert float(c["ess_frac"][1]) == pytest.approx(1.0)
    assert float(c["top1pct_share"][1]) == pytest.approx(1 / B)


# --------------------------------------------------------------------------------------------
# AWR: Gaussian log-prob, clips, per-1/beta policies
# --------------------------------------------------------------------------------------------
def test_gaussian_log_prob_matches_torch():
    g = torch.Generator().manual_seed(0)
    a, mean = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    log_std = torch.randn(3, 1, 4, generator=g)
    expect = torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(a, mean, log_std), expect, atol=1e-5, rtol=1e-5)


def test_awr_mean_and_log_std_clips():
    agent = AWR(OBS_DIM, ACT_DIM, awr_cfg())
    head = agent.policies.net[-1]
    obs = torch.randn(4, OBS_DIM)
    with torch.no_grad():
        head.bias.fill_(100.0)
        agent.policies.log_std.fill_(10.0)
    mean, log_std = agent.policies(obs)
    assert mean.shape == (2, 4, ACT_DIM) and log_std.shape == (2, 1, ACT_DIM)
    assert (mean == 5.0).all() and (log_std == 2.0).all()
    assert (agent.sample_actions(obs) == 1.0).all()  # evaluation clips the mean to [-1, 1]
    with torch.no_grad():
        head.bias.fill_(-100.0)
        agent.policies.log_std.fill_(-10.0)
    mean, log_std = agent.policies(obs)
    assert (mean == -5.0).all() and (log_std == -5.0).all()


def _awr_grads(agent, batch):
    agent.optimizer.zero_grad(set_to_none=True)
    loss, _ = agent.actor_loss(batch)
    loss.backward()
    return [p.grad.clone() for p in agent.policies.parameters()]


def test_awr_policy_k_gradient_depends_only_on_its_own_beta():
    torch.manual_seed(0)
    agent = AWR(OBS_DIM, ACT_DIM, awr_cfg(inv_betas=[1.0, 3.0, 10.0]))
    g = torch.Generator().manual_seed(1)
    batch = {
        "observations": torch.randn(32, OBS_DIM, generator=g),
        "actions": torch.rand(32, ACT_DIM, generator=g) * 2 - 1,
        "advantages": torch.randn(32, generator=g),
    }
    before = _awr_grads(agent, batch)
    agent.inv_betas[2] = 0.01  # change only policy 2's temperature
    after = _awr_grads(agent, batch)
    for gb, ga in zip(before, after):  # every parameter is stacked [K, ...]
        torch.testing.assert_close(gb[:2], ga[:2], rtol=0, atol=0)
        assert (gb[2] - ga[2]).abs().max() > 1e-4

    # and equals the gradient of -mean(w_k log pi_k) computed per policy by hand
    agent.optimizer.zero_grad(set_to_none=True)
    mean, log_std = agent.policies(batch["observations"])
    w = torch.exp(agent.inv_betas[:, None] * batch["advantages"][None]).clamp(max=100.0)
    dist = torch.distributions.Normal(mean, log_std.exp())
    manual = -(w * dist.log_prob(batch["actions"][None]).sum(-1)).mean(-1).sum()
    manual.backward()
    for p, ga in zip(agent.policies.parameters(), after):
        torch.testing.assert_close(p.grad, ga, atol=1e-5, rtol=1e-4)


def test_awr_ensemble_fits_each_weighted_mle():
    """A one-state bandit: 90 actions at -0.5 (A = 0), 10 at +0.5 (A = 1). The weighted Gaussian MLE
    of policy k has mean sum w a / sum w and std sqrt(p (1 - p)) with p the weight share of +0.5,
    w = min(exp(A / beta_k), 100)."""
    inv_betas = [0.01, 1.0, 10.0]
    torch.manual_seed(0)
    agent = AWR(2, 1, awr_cfg(inv_betas=inv_betas, hidden=[16], lr=2e-2))
    a = torch.tensor([-0.5] * 90 + [0.5] * 10)[:, None]
    adv = torch.tensor([0.0] * 90 + [1.0] * 10)
    # constant non-zero observations: all-zero inputs give exactly-zero gradients, whose Adam moments
    # decay into float32 denormals and slow CPU training ~15x
    batch = {"observations": torch.ones(100, 2), "actions": a, "advantages": adv}
    for _ in range(STEPS_AWR_MLE):
        agent.update(batch)
    with torch.no_grad():
        mean, log_std = agent.policies(torch.ones(1, 2))
    for k, ib in enumerate(inv_betas):
        wpos = 10 * min(math.exp(ib), 100.0)
        p = wpos / (wpos + 90)
        assert float(mean[k, 0, 0]) == pytest.approx(p * 0.5 - (1 - p) * 0.5, abs=0.02), ib
        assert float(log_std[k, 0, 0].exp()) == pytest.approx(math.sqrt(p * (1 - p)), abs=0.02), ib
    # 1/beta = 10 would give 0.4996 without the clip at 100; with it, 0.4174
    assert float(mean[2, 0, 0]) < 0.45


# --------------------------------------------------------------------------------------------
# ensemble layers and Mish
# --------------------------------------------------------------------------------------------
def test_ensemble_linear_equals_separate_layers():
    torch.manual_seed(0)
    K, B, I, O = 3, 5, 4, 6
    layer = EnsembleLinear(K, I, O)
    x = torch.randn(K, B, I)
    out = layer(x)
    for k in range(K):
        torch.testing.assert_close(out[k], x[k] @ layer.weight[k] + layer.bias[k, 0])
    # init bound matches nn.Linear's: |W|, |b| <= 1/sqrt(in)
    assert layer.weight.abs().max() <= 1 / math.sqrt(I) and layer.bias.abs().max() <= 1 / math.sqrt(I)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_ensemble_mlp_equals_separate_mlps(layer_norm):
    torch.manual_seed(0)
    K, I, H, O = 3, 5, [8, 7], 2
    ens = ensemble_mlp(K, I, H, O, layer_norm)
    with torch.no_grad():  # non-trivial LayerNorm affines
        for m in ens:
            if isinstance(m, common.EnsembleLayerNorm):
                m.weight.normal_()
                m.bias.normal_()
    x = torch.randn(K, 6, I)
    out = ens(x)
    for k in range(K):
        single = mlp(I, H, O, layer_norm)
        with torch.no_grad():
            for m_e, m_s in zip(ens, single):
                if isinstance(m_e, EnsembleLinear):
                    m_s.weight.copy_(m_e.weight[k].T)
                    m_s.bias.copy_(m_e.bias[k, 0])
                elif isinstance(m_e, common.EnsembleLayerNorm):
                    m_s.weight.copy_(m_e.weight[k, 0])
                    m_s.bias.copy_(m_e.bias[k, 0])
        torch.testing.assert_close(out[k], single(x[k]), atol=1e-5, rtol=1e-5)


def test_mish_matches_torch_value_and_gradient():
    x = torch.cat([torch.linspace(-30, 30, 2001), torch.tensor([-100.0, -50.0, -20.0, 20.0, 50.0, 100.0])])
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    y1, y2 = Mish()(x1), F.mish(x2)
    torch.testing.assert_close(y1, y2, atol=1e-6, rtol=1e-5)
    g = torch.randn_like(x)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-5)
    # the negative tail is tiny (mish(-30) = -2.8e-12): compare it relatively, value and slope
    tail = x <= -5
    torch.testing.assert_close(y1[tail], y2[tail], atol=1e-35, rtol=1e-4)
    torch.testing.assert_close(x1.grad[tail] / g[tail], x2.grad[tail] / g[tail], atol=1e-35, rtol=1e-3)
    for v, slope in ((-30.0, 0.0), (30.0, 1.0)):  # the tails: mish -> 0 and mish -> x
        xv = torch.tensor([v], requires_grad=True)
        y = Mish()(xv)
        y.backward()
        assert float(y.detach()) == pytest.approx(v * slope, abs=1e-6)
        assert float(xv.grad) == pytest.approx(slope, abs=1e-6)
    # float64 against the closed form
    xd = torch.linspace(-10, 10, 101, dtype=torch.float64, requires_grad=True)
    (gd,) = torch.autograd.grad(Mish()(xd).sum(), xd)
    xr = xd.detach().requires_grad_(True)
    (gr,) = torch.autograd.grad(F.mish(xr).sum(), xr)
    torch.testing.assert_close(gd, gr, atol=1e-10, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# IQL: labels, Polyak, target critic
# --------------------------------------------------------------------------------------------
def test_optimality_labels_threshold_edges():
    adv = torch.tensor([-1.0, 0.0, 1e-7, 0.5, 2.0])
    assert optimality_labels(adv, 0.0, inclusive=False).tolist() == [False, False, True, True, True]
    assert optimality_labels(adv, 0.0, inclusive=True).tolist() == [False, True, True, True, True]
    assert optimality_labels(adv, 0.5, inclusive=False).tolist() == [False, False, False, False, True]
    assert optimality_labels(adv, 0.5, inclusive=True).tolist() == [False, False, False, True, True]
    assert optimality_labels(adv, 0.0, inclusive=False).dtype == torch.bool


def test_polyak_update_rate():
    target, online = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        for p in target.parameters():
            p.fill_(0.0)
        for p in online.parameters():
            p.fill_(1.0)
    polyak_update(target, online, 0.25)
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in target.parameters())
    polyak_update(target, online, 0.25)
    assert all(torch.allclose(p, torch.full_like(p, 0.4375)) for p in target.parameters())  # 1 - 0.75^2
    polyak_update(target, online, 0.0)
    assert all(torch.allclose(p, torch.full_like(p, 0.4375)) for p in target.parameters())
    polyak_update(target, online, 1.0)
    assert all(torch.allclose(p, torch.ones_like(p)) for p in target.parameters())
    assert all(torch.allclose(p, torch.ones_like(p)) for p in online.parameters())  # online untouched


def _iql_batch(B=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(B, OBS_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g),
        "rewards": torch.rand(B, generator=g),
        "next_observations": torch.randn(B, OBS_DIM, generator=g),
        "masks": torch.ones(B),
    }


def test_iql_target_starts_equal_and_follows_polyak():
    torch.manual_seed(0)
    agent = IQL(OBS_DIM, ACT_DIM, label_cfg(polyak=0.3))
    for (k, a), b in zip(agent.critic.state_dict().items(), agent.target_critic.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
        assert a.data_ptr() != b.data_ptr()  # a copy, not shared storage
    assert not any(p.requires_grad for p in agent.target_critic.parameters())
    opt_ids = {id(p) for grp in agent.optimizer.param_groups for p in grp["params"]}
    assert not opt_ids & {id(p) for p in agent.target_critic.parameters()}
    assert opt_ids == {id(p) for p in list(agent.critic.parameters()) + list(agent.value.parameters())}

    old_target = [p.clone() for p in agent.target_critic.parameters()]
    agent.update(_iql_batch())
    for old, tgt, onl in zip(old_target, agent.target_critic.parameters(), agent.critic.parameters()):
        assert not torch.equal(onl, old)  # the critic moved
        torch.testing.assert_close(tgt, 0.7 * old + 0.3 * onl)


def test_iql_losses_by_hand():
    torch.manual_seed(0)
    agent = IQL(OBS_DIM, ACT_DIM, label_cfg(discount=0.9, expectile=0.8))
    with torch.no_grad():  # make target and online critics differ
        for p in agent.critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = _iql_batch()
    batch["masks"] = torch.tensor([1.0, 0.0] * 16)
    batch["observations"] = 2.0 + 3.0 * batch["observations"]
    agent.obs_norm.fit(batch["observations"])
    loss, info = agent.total_loss(batch)
    norm = agent.obs_norm
    s, a, s2 = norm(batch["observations"]), batch["actions"], norm(batch["next_observations"])
    assert (norm.mean.abs() > 0.5).all()
    with torch.no_grad():
        q = agent.critic(s, a)
        q_t = agent.target_critic(s, a).min(0).values
        v, v2 = agent.value(s), agent.value(s2)
    target = batch["rewards"] + 0.9 * batch["masks"] * v2
    critic_loss = ((q - target) ** 2).mean()
    u = q_t - v
    value_loss = (torch.where(u < 0, 0.2, 0.8) * u**2).mean()
    loss, info = loss.detach(), {k: v.detach() for k, v in info.items()}
    assert float(info["critic/loss"]) == pytest.approx(float(critic_loss), rel=1e-5)
    assert float(info["value/loss"]) == pytest.approx(float(value_loss), rel=1e-5)
    assert float(loss) == pytest.approx(float(critic_loss + value_loss), rel=1e-5)
    # advantage() takes raw observations and normalises them itself (the label stage passes raw ones)
    raw = batch["observations"]
    torch.testing.assert_close(agent.advantage(raw, a), q_t - v)
    torch.testing.assert_close(agent.advantage(raw, a, critic="online"), q.min(0).values - v)


# --------------------------------------------------------------------------------------------
# GradientStep: compile fallback
# --------------------------------------------------------------------------------------------
def _regression_problem(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), Mish(), nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def loss_fn(x, y):
        loss = (net(x).squeeze(-1) - y).square().mean()
        return loss, {"loss": loss}

    return net, opt, loss_fn


class _BackwardFails(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("simulated inductor backward failure")


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_gradient_step_compile_failure_falls_back_to_eager(monkeypatch, where):
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randn(16, generator=torch.Generator().manual_seed(2))

    net_e, opt_e, loss_e = _regression_problem()
    eager = GradientStep(loss_e, opt_e, compile=False)
    assert eager.compiled is None

    net_c, opt_c, loss_c = _regression_problem()
    compiled_calls = []

    def fake_compile(fn, **kwargs):
        def broken(*args):
            compiled_calls.append(1)
            if where == "forward":
                raise RuntimeError("simulated inductor failure")
            loss, info = fn(*args)
            return _BackwardFails.apply(loss), info

        return broken

    monkeypatch.setattr(torch, "compile", fake_compile)
    step = GradientStep(loss_c, opt_c, compile=True)
    assert step.compiled is not None
    with pytest.warns(UserWarning, match="torch.compile failed.*simulated"):
        info_c = step(x, y)
    info_e = eager(x, y)
    assert float(info_c["loss"]) == pytest.approx(float(info_e["loss"]), rel=1e-6)
    for pc, pe in zip(net_c.parameters(), net_e.parameters()):
        torch.testing.assert_close(pc, pe, rtol=0, atol=0)
    assert step.compiled is None and len(compiled_calls) == 1

    with warnings.catch_warnings():  # later steps are eager, with no more warnings
        warnings.simplefilter("error")
        for _ in range(3):
            step(x, y)
            eager(x, y)
    assert len(compiled_calls) == 1
    for pc, pe in zip(net_c.parameters(), net_e.parameters()):
        torch.testing.assert_close(pc, pe, rtol=0, atol=0)


def test_gradient_step_eager_errors_propagate():
    _, opt, _ = _regression_problem()

    def bad(x):
        raise ValueError("a real bug in the loss")

    with pytest.raises(ValueError, match="a real bug"):
        GradientStep(bad, opt, compile=False)(torch.zeros(1))


# --------------------------------------------------------------------------------------------
# non-finite losses, stages write nothing then; atomic checkpoints
# --------------------------------------------------------------------------------------------
class _Counter:
    def __init__(self, nan_at):
        self.step, self.nan_at = 0, nan_at

    def __call__(self, batch):
        self.step += 1
        v = float("nan") if self.step >= self.nan_at else 1.0 / self.step
        return {"x/loss": torch.tensor(v), "x/other": torch.tensor(2.0)}


def test_train_loop_logs_window_means_and_raises_on_nan():
    sampler = Sampler({"a": torch.arange(10.0)}, 4, torch.Generator().manual_seed(0))
    saved = []
    rows_seen = []
    df, sec = train_loop(
        _Counter(nan_at=10**9),
        sampler,
        7,
        3,
        "t",
        checkpoint=lambda s, rows, window: saved.append((s, len(rows), window.n, window.state())),
        checkpoint_every=2,
        on_row=rows_seen.append,
    )
    assert df["step"].tolist() == [3, 6, 7]
    assert [(s, r, n) for s, r, n, _ in saved] == [(2, 0, 2), (4, 1, 1), (6, 2, 0)]  # not at the end
    # each row is the mean over its window (x/loss = 1/step), not the last minibatch's value
    assert df["x/loss"].tolist() == pytest.approx(
        [(1 + 1 / 2 + 1 / 3) / 3, (1 / 4 + 1 / 5 + 1 / 6) / 3, 1 / 7]
    )
    assert (df["x/other"] == 2.0).all()
    assert rows_seen == df.to_dict("records")  # every row was handed on (streamed) as it was logged
    assert sec > 0

    # resumed at step 4 with its rows and the open window: the same table as the uninterrupted run
    class Resumed(_Counter):
        def __init__(self):
            super().__init__(10**9)
            self.step = 4

    window = Window.from_state(saved[1][3], torch.nn.Linear(1, 1))
    df2, _ = train_loop(
        Resumed(), sampler, 7, 3, "t", start=4, rows=df.iloc[:1].to_dict("records"), window=window
    )
    pd.testing.assert_frame_equal(df2, df)

    with pytest.raises(NonFiniteLossError, match="step 4"):
        train_loop(_Counter(nan_at=4), sampler, 10, 2, "t")
    with pytest.raises(NonFiniteLossError, match="step 5"):  # the last step is always checked
        train_loop(_Counter(nan_at=5), sampler, 5, 100, "t")
    one_nan = _Counter(nan_at=10**9)
    once = lambda batch: (
        {"x/loss": torch.tensor(float("nan"))}
        if one_nan(batch) and one_nan.step == 2
        else {  # noqa: E731
            "x/loss": torch.tensor(1.0)
        }
    )
    with pytest.raises(NonFiniteLossError, match="step 4"):  # a NaN anywhere in the window is caught
        train_loop(once, sampler, 4, 4, "t")


def test_sampler_lengths_and_determinism():
    with pytest.raises(ValueError, match="different lengths"):
        Sampler({"a": torch.zeros(3), "b": torch.zeros(4)}, 2, torch.Generator())
    data = {"a": torch.arange(50), "b": torch.arange(50) * 10}
    s1 = Sampler(data, 8, torch.Generator().manual_seed(5)).sample()
    s2 = Sampler(data, 8, torch.Generator().manual_seed(5)).sample()
    assert torch.equal(s1["a"], s2["a"]) and torch.equal(s1["b"], 10 * s1["a"])  # rows stay aligned


@pytest.fixture(scope="module")
def synthetic_stage_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    n = write_synthetic_dataset(root / "minari", "cheetah-run", episodes=2, steps=32)
    labels = root / "labels.npz"
    write_synthetic_labels(labels, n)
    return root / "minari", labels, n


def _tiny_stage_params(**over):
    return make_params(
        {
            "envs": ["cheetah-run"],
            "label.steps": 6,
            "label.log_every": 2,
            "label.hidden": [8],
            "label.batch_size": 16,
            "train_cfgrl.steps": 6,
            "train_cfgrl.log_every": 2,
            "train_cfgrl.hidden": [8],
            "train_cfgrl.batch_size": 16,
            "train_cfgrl.flow_steps": 4,
            "train_fql.flow_steps": 4,  # on the 4-step grid
            "extraction.flow_steps": 4,
            "train_awr.steps": 6,
            "train_awr.log_every": 2,
            "train_awr.hidden": [8],
            "train_awr.batch_size": 16,
            "train_awf.steps": 6,
            "train_awf.log_every": 2,
            "train_awf.batch_size": 16,
            "runtime.checkpoint_every": 2,  # resume checkpoints too must never hold NaN
            **over,
        }
    )


def _nan_after(update, at):
    """Wrap an agent's update so its logged loss is NaN from step `at` on."""
    count = [0]

    def wrapped(self, *args, **kwargs):
        count[0] += 1
        info = update(self, *args, **kwargs)
        if count[0] >= at:
            info = {k: (v * float("nan") if k.endswith("/loss") else v) for k, v in info.items()}
        return info

    return wrapped


@pytest.mark.parametrize("stage", ["label", "train_cfgrl", "train_awr", "train_awf"])
def test_stage_writes_nothing_on_nan_loss(monkeypatch, tmp_path, synthetic_stage_inputs, stage):
    root, labels, _ = synthetic_stage_inputs
    p = _tiny_stage_params()
    out = tmp_path / "out"
    if stage == "label":
        monkeypatch.setattr(IQL, "update", _nan_after(IQL.update, 3))
        run = lambda: label.run(p, "cheetah-run", 0, root, out)
    elif stage == "train_cfgrl":
        monkeypatch.setattr(CFGRL, "update", _nan_after(CFGRL.update, 3))
        run = lambda: train_cfgrl.run(p, "cheetah-run", 0, root, labels, out)
    elif stage == "train_awr":
        monkeypatch.setattr(AWR, "update", _nan_after(AWR.update, 3))
        run = lambda: train_awr.run(p, "cheetah-run", 0, root, labels, out)
    else:
        monkeypatch.setattr(AWF, "update", _nan_after(AWF.update, 3))
        run = lambda: train_awf.run(p, "cheetah-run", 0, root, labels, out)
    with pytest.raises(NonFiniteLossError, match="step 4"):
        run()
    # no output; only the resume checkpoint of step 2, before the NaN, which is finite
    assert [f.name for f in out.iterdir()] == ["resume.pt"]
    state = torch.load(out / "resume.pt", weights_only=False)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["agent"].values() if v.is_floating_point())


def test_stage_writes_nothing_on_nan_parameters(monkeypatch, tmp_path, synthetic_stage_inputs):
    """Parameters that went NaN without a logged NaN loss are caught before the checkpoint."""
    root, labels, _ = synthetic_stage_inputs
    orig = CFGRL.update

    def corrupting(self, *args, **kwargs):
        info = orig(self, *args, **kwargs)
        with torch.no_grad():
            self.velocity.net[0].weight[0, 0] = float("nan")
        return {k: torch.zeros(()) for k in info}

    monkeypatch.setattr(CFGRL, "update", corrupting)
    out = tmp_path / "out"
    with pytest.raises(NonFiniteLossError, match="resume checkpoint at step 2.*velocity"):
        train_cfgrl.run(_tiny_stage_params(), "cheetah-run", 0, root, labels, out)
    assert not out.exists() or not any(out.iterdir())  # not even a resume checkpoint of NaNs
    with pytest.raises(NonFiniteLossError, match="velocity"):  # without checkpoints: caught before saving
        train_cfgrl.run(
            _tiny_stage_params(**{"runtime.checkpoint_every": 0}), "cheetah-run", 0, root, labels, out
        )
    assert not out.exists() or not any(out.iterdir())


def test_stage_with_huge_lr_fails_cleanly(tmp_path, synthetic_stage_inputs):
    """A real divergence (lr = 1e30) ends in NonFiniteLossError and no checkpoint, never a NaN policy."""
    root, _, _ = synthetic_stage_inputs
    out = tmp_path / "out"
    p = _tiny_stage_params(**{"label.lr": 1e30, "label.steps": 20, "label.log_every": 20})
    with pytest.raises(NonFiniteLossError):
        label.run(p, "cheetah-run", 0, root, out)
    assert not (out / "critic.pt").exists() and not (out / "labels.npz").exists()


def test_check_finite_parameters_checks_buffers_too():
    agent = make_cfgrl()
    check_finite_parameters(agent, "ok")
    agent.obs_norm.std[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="obs_norm.std"):
        check_finite_parameters(agent, "agent")


def test_save_checkpoint_atomic_and_loadable(tmp_path):
    agent = make_cfgrl()
    path = tmp_path / "sub" / "policy.pt"
    save_checkpoint({"kind": "cfgrl", "state_dict": agent.state_dict(), "x": 1}, path)
    save_checkpoint({"kind": "cfgrl", "state_dict": agent.state_dict(), "x": 2}, path)  # overwrite
    assert [f.name for f in path.parent.iterdir()] == ["policy.pt"]
    ckpt = load_checkpoint(path, "cfgrl")
    assert ckpt["x"] == 2
    for k, v in agent.state_dict().items():
        torch.testing.assert_close(ckpt["state_dict"][k], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected a 'awr' checkpoint"):
        load_checkpoint(path, "awr")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(bad, "cfgrl")


def test_save_checkpoint_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "policy.pt"
    save_checkpoint({"kind": "cfgrl", "x": 1}, path)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        save_checkpoint({"kind": "cfgrl", "x": lambda: 0}, path)  # lambdas do not pickle
    assert load_checkpoint(path, "cfgrl")["x"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["policy.pt"]


# --------------------------------------------------------------------------------------------
# advantage-weighted flow (AWF)
# --------------------------------------------------------------------------------------------
def make_awf(inv_betas=(1.0, 10.0), seed=0) -> AWF:
    torch.manual_seed(seed)
    p = make_params({"train_awf.inv_betas": list(inv_betas), "train_cfgrl.hidden": [16]})
    return AWF(OBS_DIM, ACT_DIM, p.train_cfgrl, p.train_awf)


def test_time_embedding_of_a_grid_matches_row_by_row():
    t = torch.rand(3, 5)
    emb = time_embedding(t, 16)
    assert emb.shape == (3, 5, 16)
    torch.testing.assert_close(emb[1], time_embedding(t[1], 16), rtol=0, atol=0)


def test_awf_loss_is_the_awr_weighted_flow_error_per_net():
    agent = make_awf()
    B = 32
    g = torch.Generator().manual_seed(0)
    batch = {
        "observations": torch.randn(B, OBS_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g) * 2 - 1,
        "advantages": torch.randn(B, generator=g),
    }
    x_0, t = torch.randn(B, ACT_DIM, generator=g), torch.rand(B, generator=g)
    loss, info = agent.actor_loss(batch, x_0, t)
    x_1 = batch["actions"]
    x_t = (1 - t[:, None]) * x_0 + t[:, None] * x_1
    vel = agent.velocity(batch["observations"], x_t, t)  # [K, B, A]
    for k, inv_beta in enumerate((1.0, 10.0)):
        weight = torch.exp(inv_beta * batch["advantages"]).clamp(max=100.0)
        expected = (weight * (vel[k] - (x_1 - x_0)).square().mean(-1)).mean()
        torch.testing.assert_close(info[f"actor/inv_beta={inv_beta:g}/loss"], expected)
    torch.testing.assert_close(loss, info["actor/inv_beta=1/loss"] + info["actor/inv_beta=10/loss"])
    # the larger 1/beta concentrates the weights more
    assert info["actor/inv_beta=10/ess_frac"] < info["actor/inv_beta=1/ess_frac"]


def test_awf_nets_are_independent_and_sample_from_shared_noise():
    agent = make_awf()
    obs, noise = torch.randn(5, OBS_DIM), torch.randn(5, ACT_DIM)
    a = agent.sample_actions(obs, noise=noise)
    assert a.shape == (2, 5, ACT_DIM) and a.abs().max() <= 1 and not torch.equal(a[0], a[1])
    with torch.no_grad():  # change net 1 only: net 0's actions stay
        for p in agent.velocity.parameters():
            p[1].add_(0.5)
    b = agent.sample_actions(obs, noise=noise)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.equal(a[1], b[1])
    with torch.no_grad():  # a zero velocity field returns the noise (clipped)
        agent.velocity.net[-1].weight.zero_()
        agent.velocity.net[-1].bias.zero_()
    torch.testing.assert_close(agent.sample_actions(obs, noise=noise)[0], noise.clamp(-1, 1))
