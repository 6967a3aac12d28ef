"""The goal-conditioned half (OGBench, paper Sec. 6): guidance math, hindsight goals, a small known
problem where guidance must help, OGBench data (generation, download, format), the lockstep evaluator
against a sequential loop, killed-and-resumed training, and the stage CLIs."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import copy_repo, make_params, run_tool
from test_faults import Killed, assert_same_checkpoint, kill_after_checkpoint

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.algorithms.gcbc import GaussianGCBC
from pipeline_steps.algorithms.gcfm import GCFlow, guided_velocity
from pipeline_steps.algorithms.hgcfm import HGCFlow
from pipeline_steps.core import checkpoints, stats
from pipeline_steps.core.episodes import DatasetError, Episode, read_episodes
from pipeline_steps.core.params import GC_ALGOS
from pipeline_steps.core.training import RESUME_FILE
from pipeline_steps.datasets import ogbench
from pipeline_steps.envs import names, ogbench_gc
from pipeline_steps.gc import dataset as gc_dataset
from pipeline_steps.gc import evaluate as gc_evaluate
from pipeline_steps.gc import train as train_gc

MAZE = "pointmaze-medium-navigate"


def gc_params(**over):
    base = {
        "gc_envs": [MAZE],
        "runtime.compile": False,
        "runtime.threads": 1,
        "runtime.checkpoint_every": 10,
        "gc_dataset.generate.episodes": 3,
        "gc_dataset.generate.episode_steps": 60,
        "train_gc.steps": 40,
        "train_gc.batch_size": 16,
        "train_gc.hidden": [16],
        "train_gc.flow_steps": 4,
        "train_gc.log_every": 5,
        "gc_evaluate.guidance_ws": [0.0, 1.0, 3.0],
        "gc_evaluate.episodes": 1,
        "gc_evaluate.max_steps": 15,
    }
    return make_params({**base, **over})


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory):
    """A tiny generated pointmaze dataset in the pipeline's layout: (gc_dataset out dir, params)."""
    p = gc_params()
    out = tmp_path_factory.mktemp("gc") / "gc_dataset"
    gc_dataset.run(p, MAZE, out)
    return out, p


# --------------------------------------------------------------------------------------------
# math
# --------------------------------------------------------------------------------------------
def test_w0_is_the_null_goal_velocity_and_w1_the_goal_conditioned_one(one_thread):
    cfg = gc_params().train_gc
    torch.manual_seed(0)
    agent = GCFlow(4, 2, 3, cfg, goal_dropout=0.1)
    with torch.no_grad():
        agent.velocity.null_goal.normal_()  # a null goal unlike any real goal
    obs, goal, x = torch.randn(8, 4), torch.randn(8, 2), torch.randn(8, 3)
    t = torch.full((8,), 0.25)
    v_null = agent.velocity(obs, goal, x, t, torch.ones(8, dtype=torch.bool))
    v_goal = agent.velocity(obs, goal, x, t, torch.zeros(8, dtype=torch.bool))
    assert not torch.allclose(v_null, v_goal)
    guided = lambda w: guided_velocity(agent.velocity, obs, goal, x, 0.25, w)  # noqa: E731
    torch.testing.assert_close(guided(0.0), v_null)
    torch.testing.assert_close(guided(1.0), v_goal)
    torch.testing.assert_close(guided(3.0), v_null + 3 * (v_goal - v_null))
    # the null branch ignores the goal; flow GCBC's sampler is the goal-conditioned flow alone
    torch.testing.assert_close(
        v_null, agent.velocity(obs, torch.randn(8, 2), x, t, torch.ones(8, dtype=torch.bool))
    )
    noise = torch.randn(8, 3)
    torch.testing.assert_close(
        agent.sample_actions(obs, goal, None, noise=noise), agent.sample_actions(obs, goal, 1.0, noise=noise)
    )


@pytest.mark.parametrize("dropout", [0.0, 0.1, 0.3])
def test_goal_dropout_rate(dropout, one_thread):
    cfg = gc_params().train_gc
    agent = GCFlow(2, 2, 2, cfg, goal_dropout=dropout)
    seen = []
    agent.gradient_step = lambda batch, x_0, t, null: seen.append(null) or {}
    gen = torch.Generator().manual_seed(0)
    batch = {"actions": torch.zeros(20000, 2)}
    agent.update(batch, gen)
    frac = seen[0].float().mean().item()
    assert abs(frac - dropout) < 0.01, frac  # 20000 Bernoulli draws: std 0.003 at p = 0.3


def test_hindsight_goals_are_strictly_later_states_of_the_same_episode():
    rng = np.random.default_rng(0)
    lengths = [1, 5, 2, 30]
    episodes = [
        Episode(
            observations=rng.normal(size=(T + 1, 2)).astype(np.float32),
            actions=rng.uniform(-1, 1, (T, 2)).astype(np.float32),
            rewards=np.zeros(T),
            terminations=np.zeros(T, bool),
            truncations=np.arange(T) == T - 1,
            infos={"qpos": rng.normal(size=(T + 1, 2))},
        )
        for T in lengths
    ]
    data = train_gc.goal_tensors(MAZE, episodes)
    episode_of_state = np.repeat(np.arange(len(lengths)), np.array(lengths) + 1)
    # pointmaze's oracle representation is the qpos xy
    np.testing.assert_array_equal(
        data["goal_reps"], np.concatenate([ep.infos["qpos"] for ep in episodes]).astype(np.float32)
    )
    sampler = train_gc.HindsightSampler(data, 4096, torch.Generator().manual_seed(0))
    idx = torch.randint(len(data["actions"]), (20000,), generator=sampler.generator)
    i, j = data["row_state"][idx], sampler.goal_index(data["row_state"][idx], data["row_last"][idx])
    i, j = i.numpy(), j.numpy()
    assert np.all(j > i)
    assert np.all(episode_of_state[j] == episode_of_state[i])
    # uniform over i+1 .. last: for the first state of the 30-step episode, every later state appears
    first30 = int(data["row_state"][sum(lengths[:3])])
    picks = j[i == first30]
    assert set(picks) == set(range(first30 + 1, first30 + 31))
    # a sampled batch pairs each state's action with its goal representation
    batch = sampler.sample()
    assert batch["observations"].shape == (4096, 2) and batch["goals"].shape == (4096, 2)


# --------------------------------------------------------------------------------------------
# behaviour on a small known problem: a 2-D point reaching goals from noisy demonstrations
# --------------------------------------------------------------------------------------------
def point_demos(rng, n_ep=200, L=40, noise=0.6, speed=0.3):
    """Noisy demonstrations: a point in [-1, 1]^2 moves by 0.1 a, a = speed * (unit direction to a
    random goal) + N(0, noise^2): mostly noise, a little drift towards the goal."""
    episodes = []
    for _ in range(n_ep):
        s, g = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        states, actions = [s], []
        for _ in range(L):
            d = (g - s) / (np.linalg.norm(g - s) + 1e-6)
            a = np.clip(speed * d + rng.normal(0, noise, 2), -1, 1)
            s = np.clip(s + 0.1 * a, -1, 1)
            states.append(s)
            actions.append(a)
        states = np.stack(states)
        episodes.append(
            Episode(
                observations=states.astype(np.float32),
                actions=np.stack(actions).astype(np.float32),
                rewards=np.zeros(L),
                terminations=np.zeros(L, bool),
                truncations=np.arange(L) == L - 1,
                infos={"qpos": states},
            )
        )
    return episodes


def point_success(agent, w, n=200, horizon=15, tol=0.2, seed=1, ignore_goal=False) -> float:
    rng = np.random.default_rng(seed)
    s = torch.tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)
    g = torch.tensor(rng.uniform(-1, 1, (n, 2)), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(horizon):
        a = agent.sample_actions(s, torch.zeros_like(g) if ignore_goal else g, w, generator=gen)
        s = torch.where(done[:, None], s, (s + 0.1 * a).clamp(-1, 1))
        done |= (s - g).norm(dim=-1) < tol
    return done.float().mean().item()


@pytest.fixture(scope="module")
def point_agent():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = make_params({"train_gc.hidden": [64, 64], "train_gc.lr": 1e-3, "train_gc.flow_steps": 8}).train_gc
    data = train_gc.goal_tensors(MAZE, point_demos(np.random.default_rng(0)))  # oracle rep = qpos xy
    gen = torch.Generator().manual_seed(0)
    sampler = train_gc.HindsightSampler(data, 256, gen)
    agent = GCFlow(2, 2, 2, cfg, goal_dropout=0.1)
    for _ in range(3000):
        agent.update(sampler.sample(), gen)
    return agent


def test_guidance_improves_goal_reaching_on_a_point_task(point_agent):
    s0, s1, s3 = (point_success(point_agent, w) for w in (0.0, 1.0, 3.0))
    # measured here: 0.085 / 0.155 / 0.34; the margins catch an ignored goal or backwards guidance
    assert s3 > s1 + 0.08 and s1 > s0 + 0.03, (s0, s1, s3)
    # without the goal there is nothing to improve towards: guidance does not help
    blind = [point_success(point_agent, w, ignore_goal=True) for w in (1.0, 3.0)]
    assert max(blind) < s3 - 0.1, blind


# --------------------------------------------------------------------------------------------
# OGBench data: generation, the OGBench format, download
# --------------------------------------------------------------------------------------------
def test_generation_is_seeded_and_byte_identical(maze_data, tmp_path):
    out, p = maze_data
    gc_dataset.run(p, MAZE, tmp_path / "again")
    name = ogbench_gc.dataset_name(MAZE)
    for f in (f"{name}.npz", f"{name}-val.npz"):
        with np.load(out / "ogbench" / f) as a, np.load(tmp_path / "again" / "ogbench" / f) as b:
            assert a.files == b.files
            for k in a.files:
                assert a[k].tobytes() == b[k].tobytes(), (f, k)
    gc_dataset.run(
        make_params({**{k: v for k, v in p.model_dump().items()}, "gc_dataset.seed": 1}),
        MAZE,
        tmp_path / "s1",
    )
    with (
        np.load(out / "ogbench" / f"{name}.npz") as a,
        np.load(tmp_path / "s1" / "ogbench" / f"{name}.npz") as b,
    ):
        assert not np.array_equal(a["actions"], b["actions"])


def test_generated_data_follows_the_recipe(maze_data):
    out, p = maze_data
    episodes = read_episodes(out / "minari")
    g = p.gc_dataset.generate
    assert len(episodes) == g.episodes
    assert all(len(ep.actions) == g.episode_steps for ep in episodes)
    assert np.all(np.abs(np.concatenate([ep.actions for ep in episodes])) <= 1)
    for ep in episodes:  # pointmaze observations are the qpos (xy); each step moves by 0.2 * action at most
        np.testing.assert_allclose(ep.observations, ep.infos["qpos"], atol=1e-6)
        assert np.all(np.abs(np.diff(ep.observations, axis=0)) <= 0.2 + 1e-4)


def test_ogbench_reads_the_pipelines_file_unchanged(maze_data):
    import ogbench

    out, p = maze_data
    path = out / "ogbench" / f"{ogbench_gc.dataset_name(MAZE)}.npz"
    episodes = read_episodes(out / "minari")
    ds = ogbench.load_dataset(str(path), add_info=True)
    T = p.gc_dataset.generate.episode_steps
    n = len(episodes)
    assert ds["observations"].shape == (n * (T - 1), 2)  # OGBench drops each episode's last row
    np.testing.assert_array_equal(ds["observations"][: T - 1], episodes[0].observations[: T - 1])
    np.testing.assert_array_equal(ds["next_observations"][: T - 1], episodes[0].observations[1:T])
    np.testing.assert_array_equal(ds["actions"][: T - 1], episodes[0].actions[: T - 1])
    env, train, val = ogbench.make_env_and_datasets(
        f"{MAZE}-oraclerep-v0", dataset_path=str(path), compact_dataset=True
    )
    assert len(train["observations"]) == n * T and train["valids"].sum() == n * (T - 1)
    assert len(val["observations"]) == T  # at least one validation episode
    np.testing.assert_array_equal(train["observations"][:T], episodes[0].observations[:T])
    env.close()


def test_downloaded_files_make_the_same_dataset(maze_data, tmp_path, http_server):
    out, p = maze_data
    name = ogbench_gc.dataset_name(MAZE)
    for f in (f"{name}.npz", f"{name}-val.npz"):
        http_server.routes[f"/ogb/{f}"] = ("ok", (out / "ogbench" / f).read_bytes())
    dl = make_params(
        {
            **p.model_dump(),
            "gc_dataset.source": "download",
            "gc_dataset.download.base_url": http_server.base_url + "/ogb/",
            "gc_dataset.download.cache_dir": str(tmp_path / "cache"),
        }
    )
    stats = gc_dataset.run(dl, MAZE, tmp_path / "dl")
    assert stats["source"] == "download"
    a, b = read_episodes(out / "minari"), read_episodes(tmp_path / "dl" / "minari")
    assert len(a) == len(b)
    for x, y in zip(a, b):  # a downloaded episode of L rows has L - 1 transitions
        np.testing.assert_array_equal(x.observations[:-1], y.observations)
        np.testing.assert_array_equal(x.actions[:-1], y.actions)
    gc_dataset.run(dl, MAZE, tmp_path / "dl2")  # cached: no second download
    assert http_server.count(f"/ogb/{name}.npz") == 1


def _serve_maze_files(maze_data, http_server, prefix: str) -> None:
    out, _ = maze_data
    name = ogbench_gc.dataset_name(MAZE)
    for f in (f"{name}.npz", f"{name}-val.npz"):
        http_server.routes[f"{prefix}/{f}"] = ("ok", (out / "ogbench" / f).read_bytes())


@pytest.mark.parametrize("half", ["goal-conditioned", "single-task"])
def test_download_source_runs_the_whole_stage_in_a_fresh_process(half, maze_data, tmp_path, http_server):
    """As a user runs it: the stage CLI in a new process (nothing else has imported ogbench there), on
    files in OGBench's own format served over HTTP, for the gc_dataset stage and for the dataset stage of
    an OGBench single-task env. The datasets read back as the served episodes."""
    import yaml

    out, p = maze_data
    _serve_maze_files(maze_data, http_server, "/ogb")
    raw = p.model_dump()
    download = {"base_url": http_server.base_url + "/ogb/", "cache_dir": str(tmp_path / "cache")}
    raw["gc_dataset"].update(source="download", download=download)
    raw["dataset"]["ogbench"].update(source="download", download=download)
    env = f"{MAZE}-singletask" if half == "single-task" else MAZE
    if half == "single-task":
        raw["envs"] = [env]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    module = "pipeline_steps.rl.dataset" if half == "single-task" else "pipeline_steps.gc.dataset"
    cmd = [sys.executable, "-m", module, "--env", env, "--params", "params.yaml", "--out", "made"]
    run_tool(cmd, tmp_path, timeout=600)
    made = read_episodes(tmp_path / "made" / "minari")
    served = read_episodes(out / "minari")
    assert len(made) == len(served) and (tmp_path / "made" / "stats.json").exists()
    for x, y in zip(served, made):  # a downloaded episode of L rows has L - 1 transitions
        np.testing.assert_array_equal(x.observations[:-1], y.observations)
    if half == "single-task":  # relabelled for the task: rewards are success - 1
        assert set(np.unique(np.concatenate([ep.rewards for ep in made]))) <= {-1.0, 0.0}


def test_a_failure_while_writing_the_dataset_leaves_no_output(maze_data, tmp_path, http_server, monkeypatch):
    out, p = maze_data
    _serve_maze_files(maze_data, http_server, "/ogb")
    dl = make_params(
        {
            **p.model_dump(),
            "gc_dataset.source": "download",
            "gc_dataset.download.base_url": http_server.base_url + "/ogb/",
            "gc_dataset.download.cache_dir": str(tmp_path / "cache"),
        }
    )
    import minari

    def fail(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        gc_dataset.run(dl, MAZE, tmp_path / "out")
    assert not [p.name for p in (tmp_path / "out").iterdir()]  # no stats.json, minari(.tmp) or ogbench/


def _bad_npz(good: bytes) -> dict:
    import io

    def npz(**arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    obs = np.zeros((10, 2), np.float32)
    term = np.r_[np.zeros(9), 1].astype(bool)
    return {
        "404": (None, ["HTTP 404"]),
        "truncated": (("short", good), ["truncated"]),
        "not-npz": (("ok", b"<html>moved</html>"), ["not a zip archive"]),
        "missing-keys": (("ok", npz(observations=obs, actions=obs)), ["missing keys", "terminals", "qpos"]),
        "mismatched-lengths": (
            ("ok", npz(observations=obs, actions=obs[:5], terminals=term, qpos=obs)),
            ["different or zero lengths"],
        ),
        "no-final-terminal": (
            ("ok", npz(observations=obs, actions=obs, terminals=~term & False, qpos=obs)),
            ["last row is not terminal"],
        ),
        "nan": (("ok", npz(observations=obs + np.nan, actions=obs, terminals=term, qpos=obs)), ["NaN"]),
    }


@pytest.mark.parametrize(
    "case", ["404", "truncated", "not-npz", "missing-keys", "mismatched-lengths", "no-final-terminal", "nan"]
)
def test_ogbench_download_failure_is_a_dataset_error_and_leaves_nothing(
    case, maze_data, tmp_path, http_server
):
    out, p = maze_data
    name = ogbench_gc.dataset_name(MAZE)
    good = (out / "ogbench" / f"{name}.npz").read_bytes()
    route, expected = _bad_npz(good)[case]
    if route is not None:
        http_server.routes[f"/{name}.npz"] = route
    http_server.routes[f"/{name}-val.npz"] = ("ok", (out / "ogbench" / f"{name}-val.npz").read_bytes())
    dl = make_params(
        {
            **p.model_dump(),
            "gc_dataset.source": "download",
            "gc_dataset.download.base_url": http_server.base_url,
            "gc_dataset.download.cache_dir": str(tmp_path / "cache"),
        }
    )
    with pytest.raises(DatasetError) as exc:
        gc_dataset.run(dl, MAZE, tmp_path / "out")
    for s in expected:
        assert s in str(exc.value), (s, str(exc.value))
    assert not (tmp_path / "out" / "minari").exists() and not (tmp_path / "out" / "stats.json").exists()
    assert not list(tmp_path.rglob("*.part"))


def test_unknown_gc_env_and_generation_without_an_oracle_are_clear_errors():
    from pipeline_steps.core.params import ParamsError

    with pytest.raises(ParamsError, match="pointmaze-huge-navigate"):
        make_params({"gc_envs": ["pointmaze-huge-navigate"]})
    with pytest.raises(ParamsError, match="antmaze-large-navigate"):
        make_params({"gc_envs": ["antmaze-large-navigate"], "gc_dataset.source": "generate"})


def test_maze_envs_leave_no_temp_xml(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    envs = [ogbench_gc.make_gc_env(MAZE) for _ in range(3)]
    envs[0].reset(seed=0, options=dict(task_id=1))
    for env in envs:
        env.close()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# training and evaluation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["cfgrl", "gcbc", "hcfgrl"])
def test_killed_train_gc_resumes_to_the_same_weights(algo, maze_data, tmp_path, monkeypatch, caplog):
    out, p = maze_data
    run = lambda d: train_gc.run(p, MAZE, 0, algo, out / "minari", d)  # noqa: E731
    run(tmp_path / "full")
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            run(tmp_path / "resumed")
    assert [f.name for f in (tmp_path / "resumed").iterdir()] == [RESUME_FILE]
    with caplog.at_level(logging.INFO, logger="pipeline_steps.core.training"):
        run(tmp_path / "resumed")
    assert "resuming at step 20" in caplog.text
    assert_same_checkpoint(tmp_path / "full" / "policy.pt", tmp_path / "resumed" / "policy.pt")
    agent = gc_policies.from_checkpoint(tmp_path / "resumed" / "policy.pt")
    assert agent.algo == algo
    assert isinstance(agent, {"cfgrl": GCFlow, "gcbc": GaussianGCBC, "hcfgrl": HGCFlow}[algo])


def test_lockstep_evaluation_equals_a_sequential_loop(one_thread):
    cfg = gc_params().train_gc
    torch.manual_seed(0)
    agent = GCFlow(2, 2, 2, cfg, goal_dropout=0.1)
    tasks = [1, 2, 3, 1, 2, 3]
    seeds = [11, 12, 13, 11, 12, 13]
    noise = [5, 6, 7, 5, 6, 7]
    ws = np.array([0.0, 0.0, 0.0, 3.0, 3.0, 3.0])
    s_lock, l_lock, _ = gc_evaluate.run_gc_lockstep(
        MAZE, tasks, seeds, gc_evaluate.policy_act_fn(agent, ws, noise), max_steps=25, desc=""
    )
    s_seq, l_seq = gc_evaluate.run_gc_sequential(
        MAZE, tasks, seeds, gc_evaluate.policy_act_fn(agent, ws, noise), 25
    )
    np.testing.assert_array_equal(l_lock, l_seq)
    np.testing.assert_array_equal(s_lock, s_seq)
    # the data policy reaches goals: the evaluator's success signal is live
    succ, lens, _ = gc_evaluate.run_gc_lockstep(
        MAZE, [3, 3], [1, 2], gc_evaluate.data_policy_act_fn(MAZE, 0.5, [1, 2]), desc=""
    )
    assert succ.tolist() == [1.0, 1.0] and np.all(lens < 1000)


def test_gc_checkpoint_for_another_env_is_rejected(tmp_path):
    p = gc_params()
    policies = {}
    for algo in GC_ALGOS:  # trained for a 5-d observation: pointmaze's is 2-d
        agent = gc_policies.build(algo, 5, 2, 2, p.train_gc)
        policies[algo] = tmp_path / algo / "policy.pt"
        config = {"algo": algo, "goal_dim": 2, "train_gc": p.train_gc.model_dump()}
        checkpoints.save_agent(policies[algo], "gc_policy", agent, config, MAZE, 0, 2)
    with pytest.raises(ValueError, match=r"\(5, 2, 2\).*\(2, 2, 2\)"):
        gc_evaluate.run(p, MAZE, 0, policies, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_wilson_interval():
    lo, hi = stats.wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.25 < hi < 0.35
    lo, hi = stats.wilson(5, 10)
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)


def test_train_gc_cli_refuses_an_unknown_algo(tmp_path):
    """(The stage CLIs themselves run end to end in test_pipeline's dvc repro of the tiny profile.)"""
    copy_repo(tmp_path, profile="tiny", git=False)
    bad = run_tool(
        [sys.executable, "-m", "pipeline_steps.gc.train", "--env", MAZE, "--seed", "0", "--algo", "sac"],
        tmp_path,
        check=False,
    )
    assert bad.returncode != 0 and "sac" in bad.stderr and not (tmp_path / "data" / "train_gc").exists()


def test_cube_generation_is_seeded_and_gives_cube_goals():
    class Bar:
        def update(self, k):
            pass

    a, b = (ogbench.generate_manip("cube-single-play", 1, 30, 0.1, 0.5, 0, Bar()) for _ in range(2))
    assert a[0].actions.shape == (30, 5) and a[0].observations.shape == (31, 28)
    assert a[0].actions.tobytes() == b[0].actions.tobytes()
    assert a[0].observations.tobytes() == b[0].observations.tobytes()
    data = train_gc.goal_tensors("cube-single-play", a)
    # the cube's centred, x10-scaled xyz: qpos[14:17] of the stored states
    want = (a[0].infos["qpos"][:, 14:17] - np.array([0.425, 0.0, 0.0])) * 10
    np.testing.assert_allclose(data["goal_reps"].numpy(), want, rtol=1e-5, atol=1e-5)


# scene and puzzle play: OGBench's generate_manipspace.py recipe, made here (2 episodes x 101 steps)
MANIP = ["scene-play", "puzzle-3x3-play"]


@pytest.fixture(scope="module", params=MANIP)
def manip_data(request, tmp_path_factory):
    """(name, gc_dataset out dir, params) of a tiny generated scene / puzzle dataset: 1 train + 1 val."""
    name = request.param
    p = gc_params(
        **{"gc_envs": [name], "gc_dataset.generate.episodes": 1, "gc_dataset.generate.episode_steps": 101}
    )
    out = tmp_path_factory.mktemp(name) / "gc_dataset"
    gc_dataset.run(p, name, out)
    return name, out, p


def test_manip_generation_is_seeded_byte_identical_and_makes_progress(manip_data, tmp_path):
    name, out, p = manip_data
    assert names.can_generate(name) and names.can_generate(name.replace("play", "noisy"))
    gc_dataset.run(p, name, tmp_path / "again")
    fname = ogbench_gc.dataset_name(name)
    for f in (f"{fname}.npz", f"{fname}-val.npz"):
        with np.load(out / "ogbench" / f) as a, np.load(tmp_path / "again" / "ogbench" / f) as b:
            assert set(a.files) == {"observations", "actions", "terminals", "qpos", "qvel", "button_states"}
            assert a.files == b.files
            for k in a.files:
                assert a[k].tobytes() == b[k].tobytes(), (f, k)
            assert a["button_states"].dtype == np.int64 and a["terminals"].sum() == 1  # as OGBench writes
            assert a["actions"].shape == (101, 5) and np.all(np.abs(a["actions"]) <= 1)
    other = ogbench.generate_manip(
        name, 1, 101, 0.1, 0.5, 1, type("Bar", (), {"update": lambda s, k: None})()
    )
    with np.load(out / "ogbench" / f"{fname}.npz") as a:
        assert not np.array_equal(a["actions"], other[0].actions)
    for ep in read_episodes(out / "minari") + other:  # the oracle gets things done within 100 steps
        toggles = int((np.diff(ep.infos["button_states"], axis=0) != 0).any(axis=1).sum())
        if name.startswith("puzzle"):
            assert toggles >= 1
        else:  # scene qpos: cube xyz 14:17, drawer 23, window 24
            moved = np.ptp(ep.infos["qpos"][:, [14, 15, 16, 23, 24]], axis=0).max()
            assert toggles >= 1 or moved > 0.02, (toggles, moved)


def test_ogbench_reads_generated_manip_data_and_relabels_it_for_its_singletask_env(manip_data):
    import ogbench

    name, out, p = manip_data
    path = str(out / "ogbench" / f"{ogbench_gc.dataset_name(name)}.npz")
    T = p.gc_dataset.generate.episode_steps
    ds = ogbench.load_dataset(path, add_info=True)
    assert ds["observations"].shape[0] == T - 1 and ds["button_states"].shape[0] == T - 1
    env, train, val = ogbench.make_env_and_datasets(f"{name}-v0", dataset_path=path)
    assert train["observations"].shape[1:] == env.observation_space.shape and len(val["actions"]) == T - 1
    env.close()
    env, train, _ = ogbench.make_env_and_datasets(f"{name}-oraclerep-v0", dataset_path=path)
    assert train["oracle_reps"].shape[0] == T - 1
    env.close()
    env, train, val = ogbench.make_env_and_datasets(f"{name}-singletask-v0", dataset_path=path)
    n_subgoals = 9 if name.startswith("puzzle") else 5  # scene: 1 cube, 2 buttons, drawer, window
    for d in (train, val):
        assert d["rewards"].shape == d["masks"].shape == (T - 1,)
        assert np.all((d["rewards"] <= 0) & (d["rewards"] >= -n_subgoals))
        assert set(np.unique(d["masks"])) <= {0.0, 1.0}
    env.close()


def test_gc_results_average_seed_rates_and_keep_intervals_in_the_unit_range():
    from pipeline_steps.gc.plot import results

    rows = []
    for seed, succ in ((0, [1, 0, 0, 0]), (1, [1, 0, 1, 0]), (2, [0, 0, 0, 0])):
        for e, s in enumerate(succ):
            rows.append(
                {"method": "cfgrl", "w": 3.0, "task": 1 + e % 2, "episode": e, "seed": seed, "success": s}
            )
    res = results(pd.DataFrame(rows))
    overall = res[res.task == "all"].iloc[0]
    assert overall.success == pytest.approx(np.mean([0.25, 0.5, 0.0])) and overall.seeds == 3
    assert (
        overall.ci_over == "seeds" and 0.0 <= overall.success_lo < overall.success < overall.success_hi <= 1.0
    )
    task2 = res[res.task == "2"].iloc[0]  # every seed 0 on task 2: a zero-width interval at 0
    assert (task2.success, task2.success_lo, task2.success_hi) == (0.0, 0.0, 0.0)


def test_sigkilled_train_gc_cli_leaves_only_its_resume_checkpoint_and_resumes(maze_data, tmp_path):
    """The CLI process killed (SIGKILL) after a resume checkpoint: no policy.pt (what gc_evaluate reads),
    no log or metrics, only resume.pt; the rerun resumes from its step and writes the policy."""
    import os
    import shutil
    import signal
    import subprocess

    import yaml
    from conftest import raw_params, tool_env
    from test_faults import wait_for

    out, _ = maze_data
    raw = raw_params(
        {"gc_envs": [MAZE], "runtime.threads": 1, "runtime.compile": False, "runtime.checkpoint_every": 50,
         "train_gc.steps": 5000, "train_gc.hidden": [16], "train_gc.batch_size": 16, "train_gc.log_every": 50}
    )  # fmt: skip
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    shutil.copytree(out / "minari", tmp_path / "data" / "gc_dataset" / MAZE / "minari")
    cmd = [sys.executable, "-m", "pipeline_steps.gc.train", "--env", MAZE, "--seed", "0", "--algo", "cfgrl"]
    cmd += ["--params", "p.yaml"]
    run_dir = tmp_path / "data" / "train_gc" / MAZE / "cfgrl" / "seed0"
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=tool_env(), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    wait_for(proc, (run_dir / RESUME_FILE).exists, "resume.pt written")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert {f.name for f in run_dir.iterdir() if not f.name.startswith(".")} == {RESUME_FILE}
    step = torch.load(run_dir / RESUME_FILE, weights_only=False)["step"]
    done = run_tool(cmd, tmp_path)
    assert f"resuming at step {step}" in done.stderr
    assert (run_dir / "policy.pt").exists() and not (run_dir / RESUME_FILE).exists()
    assert gc_policies.from_checkpoint(run_dir / "policy.pt").algo == "cfgrl"
