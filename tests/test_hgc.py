"""Hierarchical goal-conditioned policies (HCFGRL, flow HGCBC, Gaussian HGCBC; method.md §11): the
hindsight subgoal targets, the guidance limits at both levels, learning on a toy problem, and the
evaluation stage's hierarchical sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_gc import MAZE, gc_params

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.algorithms.gcfm import guided_velocity
from pipeline_steps.algorithms.hgcbc import GaussianHGCBC
from pipeline_steps.algorithms.hgcfm import HGCFlow
from pipeline_steps.core import checkpoints
from pipeline_steps.core.episodes import Episode
from pipeline_steps.core.params import HIER_ALGOS
from pipeline_steps.gc import evaluate as gc_evaluate
from pipeline_steps.gc import plot as gc_plot
from pipeline_steps.gc import train as train_gc


# --------------------------------------------------------------------------------------------
# hindsight targets
# --------------------------------------------------------------------------------------------
def test_subgoal_targets_lie_k_ahead_clipped_at_the_goal_and_the_episode_end():
    lengths = [1, 7, 40, 3]
    # observations and the oracle representation (pointmaze: qpos xy) both encode (step, episode)
    enc = lambda e, T: np.stack([np.arange(T + 1), np.full(T + 1, e)], 1)  # noqa: E731
    episodes = [
        Episode(
            observations=enc(e, T).astype(np.float32),
            actions=np.zeros((T, 2), np.float32),
            rewards=np.zeros(T),
            terminations=np.zeros(T, bool),
            truncations=np.arange(T) == T - 1,
            infos={"qpos": enc(e, T).astype(np.float64)},
        )
        for e, T in enumerate(lengths)
    ]
    data = train_gc.goal_tensors(MAZE, episodes)
    k = 5
    b = train_gc.HindsightSampler(data, 20000, torch.Generator().manual_seed(0), subgoal_steps=k).sample()
    t_i, ep = b["observations"][:, 0].long(), b["observations"][:, 1]
    t_e = torch.tensor(lengths)[ep.long()]  # the episode's last state
    t_g, t_high, t_low = (b[key][:, 0].long() for key in ("goals", "subgoals", "low_goals"))
    for key in ("goals", "subgoals", "low_goals"):  # every target lies in the state's own episode
        assert torch.equal(b[key][:, 1], ep), key
    assert torch.all(t_i < t_g) and torch.all(t_g <= t_e)  # the goal: strictly later, same episode
    # the high target: k ahead, never past the goal (so never past the episode end); strictly later
    assert torch.equal(t_high, torch.minimum(t_i + k, t_g))
    assert torch.all(t_high > t_i) and torch.all(t_high <= t_g)
    # the low condition: k ahead, never past the episode end, not clipped to the goal
    assert torch.equal(t_low, torch.minimum(t_i + k, t_e))
    assert torch.all(t_low > t_i) and torch.all(t_low <= t_e)
    assert torch.any(t_low > t_g) and torch.any(t_high == t_i + k)  # both clips happen, and both not
    # a flat sampler with the same generator seed draws the same rows and goals (no extra randomness)
    fb = train_gc.HindsightSampler(data, 20000, torch.Generator().manual_seed(0)).sample()
    assert set(fb) == {"observations", "actions", "goals"}
    for key in fb:
        assert torch.equal(fb[key], b[key]), key


# --------------------------------------------------------------------------------------------
# guidance at both levels
# --------------------------------------------------------------------------------------------
def euler(velocity, obs, cond, x, n, null: bool):
    """Plain Euler integration of one branch (the null condition or the given one): the reference."""
    mask = torch.full((len(obs),), null)
    for s in range(n):
        x = x + velocity(obs, cond, x, torch.full((len(obs),), s / n), mask) / n
    return x


@pytest.fixture
def hagent(one_thread):
    torch.manual_seed(0)
    agent = HGCFlow(4, 2, 3, gc_params().train_gc, goal_dropout=0.1)
    with torch.no_grad():  # null vectors unlike any real condition
        agent.high.null_goal.normal_()
        agent.low.null_goal.normal_()
    return agent


def test_w0_and_w1_limits_at_both_levels(hagent):
    obs, goal, noise = torch.randn(8, 4), torch.randn(8, 2), torch.randn(8, 5)
    n, z0, x0 = hagent.cfg.flow_steps, noise[:, :2], noise[:, 2:]
    for w, null in ((0.0, True), (1.0, False)):
        a, z = hagent.sample(obs, goal, w, noise=noise)
        z_ref = euler(hagent.high, obs, goal, z0, n, null)
        torch.testing.assert_close(z, z_ref)  # the subgoal: unclipped
        torch.testing.assert_close(a, euler(hagent.low, obs, z_ref, x0, n, null).clamp(-1, 1))
    # w = 0: the subgoal ignores the goal (hierarchical flow BC)
    a0, z0_ = hagent.sample(obs, torch.randn(8, 2), 0.0, noise=noise)
    torch.testing.assert_close(z0_, hagent.sample(obs, goal, 0.0, noise=noise)[1])
    # w_low apart from w_high: the high level follows w, the low level w_low
    a, z = hagent.sample(obs, goal, 1.0, w_low=0.0, noise=noise)
    torch.testing.assert_close(z, euler(hagent.high, obs, goal, z0, n, False))
    torch.testing.assert_close(a, euler(hagent.low, obs, z, x0, n, True).clamp(-1, 1))
    # per-env weights: row r at (ws[r], wl[r]) equals the batch run at that pair
    ws, wl = torch.tensor([0.0, 1.0, 3.0, 3.0] * 2), torch.tensor([0.0, 3.0, 1.0, 3.0] * 2)
    a, z = hagent.sample(obs, goal, ws, w_low=wl, noise=noise)
    for r in range(8):
        ar, zr = hagent.sample(obs[r : r + 1], goal[r : r + 1], ws[r].item(), wl[r].item(), noise[r : r + 1])
        torch.testing.assert_close(a[r : r + 1], ar)
        torch.testing.assert_close(z[r : r + 1], zr)
    # w = 3 extrapolates at the low level: v_null + 3 (v_cond - v_null)
    x, t = torch.randn(8, 3), 0.5
    v_n = hagent.low(obs, z, x, torch.full((8,), t), torch.ones(8, dtype=torch.bool))
    v_c = hagent.low(obs, z, x, torch.full((8,), t), torch.zeros(8, dtype=torch.bool))
    torch.testing.assert_close(guided_velocity(hagent.low, obs, z, x, t, 3.0), v_n + 3 * (v_c - v_n))


def test_flow_hgcbc_samples_the_conditional_velocities_alone(hagent):
    obs, goal, noise = torch.randn(6, 4), torch.randn(6, 2), torch.randn(6, 5)
    torch.testing.assert_close(
        hagent.sample(obs, goal, None, noise=noise), hagent.sample(obs, goal, 1.0, noise=noise)
    )


def test_dropout_at_each_level_is_independent(one_thread):
    agent = HGCFlow(2, 2, 2, gc_params().train_gc, goal_dropout=0.3)
    seen = []
    agent.gradient_step = lambda batch, *noise: seen.append(noise) or {}
    agent.update({"actions": torch.zeros(20000, 2)}, torch.Generator().manual_seed(0))
    z0, t_h, null_h, x0, t_l, null_l = seen[0]
    assert z0.shape == (20000, 2) and x0.shape == (20000, 2)
    for null in (null_h, null_l):
        assert abs(null.float().mean().item() - 0.3) < 0.01
    both = (null_h & null_l).float().mean().item()
    assert abs(both - 0.09) < 0.01  # independent draws: 0.3^2, not 0.3


# --------------------------------------------------------------------------------------------
# learning: the high level learns the subgoal, the low level the action towards it
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", HIER_ALGOS)
def test_hierarchical_policies_learn_subgoals_and_actions_on_a_toy_problem(algo, one_thread):
    """s, g in R^2; the subgoal target is the midpoint (s + g) / 2, the action the unit direction from s
    to the low level's condition. After training, the sampled subgoal at w = 1 (HCFGRL) or the
    conditional flow / the mean lies near the midpoint and the action points at the subgoal."""
    torch.manual_seed(0)
    cfg = gc_params(**{"train_gc.hidden": [64, 64], "train_gc.flow_steps": 8, "train_gc.lr": 3e-3}).train_gc
    agent = gc_policies.build(algo, 2, 2, 2, cfg)
    gen = torch.Generator().manual_seed(0)

    def batch(B=256):
        s, g = torch.rand(B, 2, generator=gen) * 2 - 1, torch.rand(B, 2, generator=gen) * 2 - 1
        z = (s + g) / 2
        d = z - s
        a = d / d.norm(dim=1, keepdim=True).clamp_min(1e-3)
        return {"observations": s, "goals": g, "subgoals": z, "low_goals": z, "actions": a}

    losses = [agent.update(batch(), gen)["actor/loss"].item() for _ in range(600)]
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:50])
    test = batch(512)
    w = 1.0 if algo == "hcfgrl" else None
    a, z = agent.sample(test["observations"], test["goals"], w, generator=gen)
    err = (z - test["subgoals"]).norm(dim=1)
    assert err.median() < 0.15, err.median()
    d = z - test["observations"]
    far = d.norm(dim=1) > 0.3  # the direction is well defined
    cos = torch.nn.functional.cosine_similarity(a[far], d[far], dim=1)
    assert cos.median() > 0.9, cos.median()


# --------------------------------------------------------------------------------------------
# checkpoints and the evaluation stage
# --------------------------------------------------------------------------------------------
def test_hierarchical_checkpoints_restore_the_same_sampler(tmp_path, one_thread):
    p = gc_params()
    obs, goal, noise = torch.randn(5, 2), torch.randn(5, 2), torch.randn(5, 4)
    for algo, cls in zip(HIER_ALGOS, (HGCFlow, HGCFlow, GaussianHGCBC)):
        torch.manual_seed(1)
        agent = gc_policies.build(algo, 2, 2, 2, p.train_gc)
        config = {"algo": algo, "goal_dim": 2, "train_gc": p.train_gc.model_dump()}
        checkpoints.save_agent(tmp_path / f"{algo}.pt", "gc_policy", agent, config, MAZE, 0, 2)
        back = gc_policies.from_checkpoint(tmp_path / f"{algo}.pt")
        assert isinstance(back, cls) and back.algo == algo
        w = None if algo == "flow_hgcbc" else 3.0  # flow HGCBC: the conditional velocities only
        torch.testing.assert_close(
            back.sample(obs, goal, w, noise=noise), agent.sample(obs, goal, w, noise=noise)
        )
    assert gc_policies.build("flow_hgcbc", 2, 2, 2, p.train_gc).goal_dropout == 0.0


def test_hierarchical_lockstep_evaluation_equals_a_sequential_loop_and_records_subgoals(one_thread):
    torch.manual_seed(0)
    agent = HGCFlow(2, 2, 2, gc_params().train_gc, goal_dropout=0.1)
    tasks, seeds, noise, sub = [1, 2, 1, 2], [11, 12, 11, 12], [5, 6, 5, 6], [7, 8, 7, 8]
    pairs = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0], [3.0, 1.0]])
    lock, seq = {i: [] for i in range(4)}, {i: [] for i in range(4)}
    act = gc_evaluate.policy_act_fn(agent, pairs, noise, sub, lock)
    s_lock, l_lock, xy = gc_evaluate.run_gc_lockstep(
        MAZE, tasks, seeds, act, max_steps=20, record=[3], desc=""
    )
    act = gc_evaluate.policy_act_fn(agent, pairs, noise, sub, seq)
    s_seq, l_seq = gc_evaluate.run_gc_sequential(MAZE, tasks, seeds, act, 20)
    np.testing.assert_array_equal(l_lock, l_seq)
    np.testing.assert_array_equal(s_lock, s_seq)
    for i in range(4):  # one subgoal per control step, the same whether envs run together or alone
        assert np.stack(lock[i]).shape == (l_lock[i], 2)
        np.testing.assert_allclose(np.stack(lock[i]), np.stack(seq[i]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.stack(lock[1]), np.stack(lock[3]))  # task 2 at (0, 0) vs at (3, 1)
    # env 3 at (w_high, w_low) = (3, 1): its first action and subgoal are the policy's at that pair, from
    # its subgoal stream's then its action stream's first draws (the action stream is the flat methods')
    noise_3 = torch.cat(
        [
            gc_evaluate.NoiseStreams([8], 2).next(np.array([0])),
            gc_evaluate.NoiseStreams([6], 2).next(np.array([0])),
        ],
        1,
    )
    obs0, goal = torch.from_numpy(xy[3][0][:1]).float(), torch.from_numpy(xy[3][1][None]).float()
    a_ref, z_ref = agent.sample(obs0, goal, 3.0, 1.0, noise=noise_3)
    np.testing.assert_allclose(lock[3][0], z_ref[0].numpy(), rtol=1e-5, atol=1e-6)
    fresh = gc_evaluate.policy_act_fn(agent, pairs, noise, sub)
    a = fresh(obs0.repeat(4, 1), goal.repeat(4, 1), np.arange(4))
    torch.testing.assert_close(a[3:], a_ref)
    assert not torch.allclose(a[3:], agent.sample(obs0, goal, 3.0, 3.0, noise=noise_3)[0])  # w_low is used
    with pytest.raises(ValueError, match="w=None"):  # flow HGCBC's null vectors are never trained
        HGCFlow(2, 2, 2, gc_params().train_gc, goal_dropout=0.0).sample(obs0, goal, 1.0)


def test_hcfgrl_settings_are_the_joint_sweep_then_the_off_diagonal_grid():
    cfg = gc_params(
        **{"gc_evaluate.guidance_ws": [0.0, 1.0, 3.0], "gc_evaluate.level_ws": [0.0, 3.0]}
    ).gc_evaluate
    assert gc_evaluate.hcfgrl_settings(cfg) == [(0.0, 0.0), (1.0, 1.0), (3.0, 3.0), (0.0, 3.0), (3.0, 0.0)]
    assert gc_evaluate.setting_name("hcfgrl", 3.0, 3.0) == "hcfgrl/w=3"
    assert gc_evaluate.setting_name("hcfgrl", 0.0, 3.0) == "hcfgrl/w_high=0,w_low=3"
    assert gc_evaluate.setting_name("cfgrl", 1.5) == "cfgrl/w=1.5"
    with pytest.raises(ValueError, match="level_ws"):
        gc_params(**{"gc_evaluate.level_ws": [1.0, 1.0]})


def test_plot_results_keep_the_level_grid_apart_from_the_joint_sweep():
    rows = []
    for seed in (0, 1):
        for method, w, w_low, s in (
            ("cfgrl", 3.0, np.nan, [1, 0]),
            ("hcfgrl", 3.0, 3.0, [1, 1]),
            ("hcfgrl", 3.0, 0.0, [0, 0]),
            ("hgcbc", np.nan, np.nan, [0, 1]),
        ):
            for e, succ in enumerate(s):
                rows.append(dict(method=method, w=w, w_low=w_low, task=1, episode=e, seed=seed, success=succ))
    res = gc_plot.results(pd.DataFrame(rows))
    allr = res[res.task == "all"]
    h = allr[allr.method == "hcfgrl"].set_index("w_low").success
    assert h[3.0] == 1.0 and h[0.0] == 0.0
    assert gc_plot.joint(allr, "hcfgrl").w_low.tolist() == [3.0]
    assert gc_plot.joint(allr, "cfgrl").success.tolist() == [0.5]


def test_hcfgrl_reporting_best_w_tables_and_headline():
    from pipeline_steps.both import aggregate

    def row(method, w, w_low, success):
        return dict(
            method=method, w=w, w_low=w_low, task="all", success=success, success_lo=0.0, success_hi=1.0
        )

    overall = pd.DataFrame(
        [
            row("cfgrl", 1.0, np.nan, 0.4),
            row("cfgrl", 3.0, np.nan, 0.5),
            row("hcfgrl", 1.0, 1.0, 0.6),
            row("hcfgrl", 3.0, 3.0, 0.5),
            row("hcfgrl", 3.0, 1.0, 0.9),  # off-diagonal: not a joint w
            row("hgcbc", np.nan, np.nan, 0.2),
        ]
    )
    assert gc_evaluate.best_w(overall, "cfgrl") == 3.0
    assert gc_evaluate.best_w(overall, "hcfgrl") == 1.0  # the grid's 0.9 is not a joint setting
    gc = overall.assign(env=MAZE, seeds=3, ci_over="seeds")
    md = aggregate.gc_markdown(gc)
    assert "| HCFGRL w=1 | HCFGRL w=3 | flow HGCBC | Gaussian HGCBC |" in md
    assert "| 0.60 [0.00, 1.00] | 0.50 [0.00, 1.00] | - | 0.20 [0.00, 1.00] |" in md
    head = aggregate.headline_metrics(pd.DataFrame(), gc)["headline"][MAZE]
    assert head["hcfgrl_success_best"] == 0.6 and head["hcfgrl_success_best_w"] == 1.0
    assert head["success_best"] == 0.5 and head["success_hgcbc"] == 0.2
    assert aggregate.gc_markdown(gc[gc.method == "cfgrl"].drop(columns="w_low")).count("HCFGRL") == 0
