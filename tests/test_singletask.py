"""OGBench single-task offline RL (paper Table 2): env names, the env's rewards against its success
signal, OGBench's relabelling of stored states against the env's own step rewards, the dataset stage's
rewards and terminals (masks), and the label -> CFGRL -> AWR -> evaluate -> plot -> aggregate path on
a tiny generated pointmaze dataset, reporting the success rate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_params

from pipeline_steps.both import aggregate
from pipeline_steps.core import paths
from pipeline_steps.core.episodes import load_transitions, read_episodes
from pipeline_steps.core.params import ParamsError
from pipeline_steps.envs import names, ogbench_single
from pipeline_steps.envs.dmc import make_env
from pipeline_steps.envs.names import check_env_name
from pipeline_steps.rl import (
    dataset,
    evaluate,
    evaluate_extraction,
    label,
    plot,
    train_awf,
    train_awr,
    train_cfgrl,
    train_fql,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread
MAZE = "pointmaze-large-navigate-singletask"


@pytest.mark.parametrize(
    ("name", "gym_id", "dataset_name", "task"),
    [
        (MAZE, "pointmaze-large-singletask-v0", "pointmaze-large-navigate", None),
        (
            "pointmaze-teleport-navigate-singletask-task3",
            "pointmaze-teleport-singletask-task3-v0",
            "pointmaze-teleport-navigate",
            3,
        ),  # fmt: skip
        ("cube-single-play-singletask", "cube-single-singletask-v0", "cube-single-play", None),
        ("puzzle-3x3-play-singletask-task1", "puzzle-3x3-singletask-task1-v0", "puzzle-3x3-play", 1),
        (
            "antsoccer-arena-navigate-singletask",
            "antsoccer-arena-singletask-v0",
            "antsoccer-arena-navigate",
            None,
        ),
    ],
)
def test_names_map_to_ogbench_ids(name, gym_id, dataset_name, task):
    assert names.is_singletask(name)
    assert ogbench_single.gym_id(name) == gym_id
    assert names.split_singletask_name(name) == (dataset_name, task)
    check_env_name(name)


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        (
            "pointmaze-huge-navigate-singletask",
            r"unknown OGBench single-task env 'pointmaze-huge-navigate-singletask'",
        ),
        ("cube-single-play-singletask-task9", r"unknown env 'cube-single-play-singletask-task9'"),
    ],
)
def test_bad_names_are_refused_naming_them(name, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_env_name(name)


def test_generate_is_refused_for_data_that_cannot_be_made_here():
    with pytest.raises(
        ParamsError, match=r"dataset.ogbench.source is 'generate'.*antmaze-large-navigate-singletask"
    ):
        make_params({"envs": ["antmaze-large-navigate-singletask"]})
    make_params({"envs": ["antmaze-large-navigate-singletask"], "dataset.ogbench.source": "download"})


def states_rewards_successes(name: str, steps: int, seed: int, policy=None):
    """A rollout of the env: the stored-state infos (qpos, button_states) before every step, and the env's
    own step rewards and success flags."""
    env = make_env(name)
    obs, _ = env.reset(seed=seed)
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    infos, rewards, successes = {"qpos": []}, [], []
    for _ in range(steps):
        infos["qpos"].append(u._data.qpos.copy() if hasattr(u, "_data") else u.data.qpos.copy())
        if hasattr(u, "_cur_button_states"):
            infos.setdefault("button_states", []).append(u._cur_button_states.copy())
        action = policy(env, obs) if policy else rng.uniform(-1, 1, env.action_space.shape)
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
        rewards.append(reward)
        successes.append(float(info["success"]))
        if terminated or truncated:
            break
    env.close()
    return {k: np.asarray(v) for k, v in infos.items()}, np.asarray(rewards), np.asarray(successes)


def to_goal(env, obs):
    """Straight at the maze goal (reaches it in an open maze region)."""
    d = env.unwrapped.cur_goal_xy - obs[:2]
    return np.clip(d / max(np.linalg.norm(d), 1e-6), -1, 1)


@pytest.mark.parametrize(
    ("name", "steps", "policy"),
    [
        ("pointmaze-medium-navigate-singletask-task1", 1000, to_goal),  # reaches its goal
        ("cube-single-play-singletask", 60, None),
        ("puzzle-3x3-play-singletask", 60, None),
        ("scene-play-singletask", 40, None),
    ],
)
def test_relabelling_stored_states_equals_the_envs_rewards_and_success(name, steps, policy):
    """OGBench's relabel_dataset of the states before each step gives exactly the env's step rewards
    (success_timing 'pre'), and the env's reward is its success signal: 0 exactly when info['success']."""
    infos, rewards, successes = states_rewards_successes(name, steps, seed=4, policy=policy)
    env = make_env(name)
    relabelled, success = ogbench_single.relabel(name, env, infos)
    env.close()
    np.testing.assert_array_equal(relabelled, rewards)
    np.testing.assert_array_equal(success, successes.astype(bool))
    np.testing.assert_array_equal(rewards == 0.0, successes == 1.0)
    assert rewards.max() <= 0.0
    if policy is to_goal:
        assert successes[-1] == 1.0 and len(rewards) < steps  # terminated at the goal
        assert (rewards[:-1] == -1.0).all()


@pytest.fixture(scope="module")
def singletask_repo(tmp_path_factory):
    """The offline-RL stages on a tiny generated pointmaze-large singletask dataset, in a temp data/."""
    root = tmp_path_factory.mktemp("singletask")
    p = make_params(
        {
            "envs": [MAZE],
            "seeds": [0],
            "dataset.ogbench.generate.episodes": 4,
            "dataset.ogbench.generate.episode_steps": 301,
            **{
                f"{s}.{k}": v
                for s in ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql")
                for k, v in (("steps", 40), ("log_every", 20), ("batch_size", 64))
            },  # fmt: skip
            **{f"{s}.hidden": [32, 32] for s in ("label", "train_cfgrl", "train_awr", "train_fql")},
            "train_fql.alphas": [1.0],
            "extraction.candidates": [1, 4],
            "extraction.resample_candidates": [],
            "train_cfgrl.flow_steps": 4,
            "train_fql.flow_steps": 4,  # on the 4-step grid
            "extraction.flow_steps": 4,
            "train_awr.inv_betas": [1.0, 10.0],
            "train_awf.inv_betas": [3.0],
            "evaluate.guidance_ws": [0.0, 1.0, 3.0],
            "evaluate.episodes": 2,
            "evaluate.drift_states": 32,
            "evaluate.timing_repeats": 2,
            "runtime.compile": False,
            "runtime.checkpoint_every": 0,
        }
    )
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("CFGRL_TRACKING", "0")
    try:
        stats = dataset.run(p, MAZE, paths.dataset_dir(MAZE))
        ds = paths.dataset_root(MAZE)
        label.run(p, MAZE, 0, ds, paths.label_dir(MAZE, 0))
        labels = paths.label_dir(MAZE, 0) / "labels.npz"
        train_cfgrl.run(p, MAZE, 0, ds, labels, paths.cfgrl_dir(MAZE, 0))
        train_awr.run(p, MAZE, 0, ds, labels, paths.awr_dir(MAZE, 0))
        train_awf.run(p, MAZE, 0, ds, labels, paths.awf_dir(MAZE, 0))
        policies = (
            paths.cfgrl_dir(MAZE, 0) / "policy.pt",
            paths.awr_dir(MAZE, 0) / "policies.pt",
            paths.awf_dir(MAZE, 0) / "policies.pt",
        )
        summary = evaluate.run(p, MAZE, 0, ds, *policies, paths.evaluate_dir(MAZE, 0))
        critic = paths.label_dir(MAZE, 0) / "critic.pt"
        train_fql.run(p, MAZE, 0, ds, critic, policies[0], paths.fql_dir(MAZE, 0))
        fql = paths.fql_dir(MAZE, 0) / "policies.pt"
        extraction = evaluate_extraction.run(
            p, MAZE, 0, ds, policies[0], critic, fql, policies[1], paths.evaluate_extraction_dir(MAZE, 0)
        )
        res = plot.run(p, MAZE, paths.plots_dir(MAZE))
        yield {
            "root": root,
            "params": p,
            "stats": stats,
            "summary": summary,
            "res": res,
            "extraction": extraction,
        }
    finally:
        mp.undo()


def test_dataset_has_ogbench_rewards_and_terminals(singletask_repo):
    root, stats = singletask_repo["root"], singletask_repo["stats"]
    episodes = read_episodes(root / paths.dataset_root(MAZE))
    assert len(episodes) == 4 and all(len(ep.actions) == 301 for ep in episodes)
    tr = load_transitions(root / paths.dataset_root(MAZE))
    assert set(np.unique(tr.rewards)) <= {-1.0, 0.0}
    # terminal (mask 0) exactly where the state is a success (reward 0): set mid-episode, not only at ends
    np.testing.assert_array_equal(tr.masks == 0.0, tr.rewards == 0.0)
    assert stats["terminal_frac"] == pytest.approx(float((tr.masks == 0).mean()))
    # the rewards are OGBench's relabelling of the stored qpos
    env = make_env(MAZE)
    rewards, _ = ogbench_single.relabel(MAZE, env, {"qpos": episodes[0].infos["qpos"][:-1]})
    env.close()
    np.testing.assert_array_equal(episodes[0].rewards, rewards)


def test_evaluation_reports_the_success_rate(singletask_repo):
    root, p = singletask_repo["root"], singletask_repo["params"]
    ev = root / paths.evaluate_dir(MAZE, 0)
    episodes = pd.read_csv(ev / "episodes.csv")
    assert episodes.success.isin([0.0, 1.0]).all()
    # an episode succeeds exactly when it ended before the time limit (terminate at goal) with reward 0 last
    assert ((episodes.length < 1000) == (episodes.success == 1.0)).all()
    assert (episodes["return"] == -(episodes.length - episodes.success)).all()  # -1 per step until the goal
    summary = pd.read_csv(ev / "summary.csv")
    assert {"success_mean", "success_ci95"} <= set(summary.columns)
    n_settings = len(p.evaluate.guidance_ws) + len(p.train_awr.inv_betas) + len(p.train_awf.inv_betas)
    assert len(summary) == n_settings
    metrics = json.loads((ev / "metrics.json").read_text())
    assert 0.0 <= metrics["cfgrl/w=1"]["success_mean"] <= 1.0
    ranked = summary[summary.method == "cfgrl"].sort_values("success_mean").setting.iloc[-1]
    assert metrics["cfgrl_best_w"] == ranked
    res = pd.read_csv(root / paths.plots_dir(MAZE) / "results.csv")
    assert {"success_mean", "success_ci95"} <= set(res.columns)
    assert plot.metric(res) == "success"


def test_extraction_methods_report_the_success_rate_on_the_same_episodes(singletask_repo):
    """On an OGBench task the extraction methods report success too; IFQL at N = 1 with the trained step
    count is CFGRL at w = 0, episode by episode (same start states and noise)."""
    root = singletask_repo["root"]
    ex = pd.read_csv(root / paths.evaluate_extraction_dir(MAZE, 0) / "episodes.csv")
    assert ex.success.isin([0.0, 1.0]).all() and set(ex.method) == {"ifql", "fql"}
    ev = pd.read_csv(root / paths.evaluate_dir(MAZE, 0) / "episodes.csv")
    bc = ev[(ev.method == "cfgrl") & (ev.setting == 0.0)].sort_values("episode")
    one = ex[(ex.method == "ifql") & (ex.setting == 1.0)].sort_values("episode")
    np.testing.assert_array_equal(one["return"].to_numpy(), bc["return"].to_numpy())
    assert "success_mean" in singletask_repo["extraction"]


def test_aggregate_reports_success_percent_beside_a_dm_control_env():
    """summarize_env ranks an OGBench env by its success rate and reports it in %; a dm_control env in
    the same results (NaN success columns after the concat) stays on its return."""
    rows = []
    for env, success in ((MAZE, True), ("walker-run", False)):
        settings = [("cfgrl", 0.0, -900.0, 0.1), ("cfgrl", 1.0, -950.0, 0.3), ("cfgrl", 3.0, -400.0, 0.2)]
        for m, s, ret, suc in [*settings, ("awr", 1.0, -500.0, 0.25)]:
            row = {"env": env, "method": m, "setting": s, "seeds": 1, "return_mean": ret, "return_ci95": 1.0,
                   "ci_over": "episodes", "dataset_return_mean": -990.0}  # fmt: skip
            if success:
                row |= {"success_mean": suc, "success_ci95": 0.05}
            rows.append(row)
    res = pd.DataFrame(rows)
    maze = aggregate.summarize_env(res[res.env == MAZE])
    assert maze["metric"] == "success %"
    assert maze["cfgrl_best_setting"] == 1.0 and maze["cfgrl_best_mean"] == pytest.approx(30.0)
    assert maze["awr_best_mean"] == pytest.approx(25.0) and maze["flow_bc_mean"] == pytest.approx(10.0)
    walker = aggregate.summarize_env(res[res.env == "walker-run"])
    assert walker["metric"] == "return" and walker["cfgrl_best_setting"] == 3.0
    md = aggregate.sweep_markdown(res)
    assert f"| {MAZE} | CFGRL | 10.0 ± 5.0 % | 30.0 ± 5.0 % | 20.0 ± 5.0 % |" in md
    assert "| walker-run | CFGRL | -900.0 ± 1.0 | -950.0 ± 1.0 | -400.0 ± 1.0 |" in md
