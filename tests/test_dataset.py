"""Stage `dataset`: ExORL download + relabelling against a local HTTP server, Minari import, seeded
collection, stats.json, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import (
    OBS_DIM,
    OBS_ORDER,
    REPO,
    dmc_task_rewards,
    episode_name,
    exorl_rollout,
    make_params,
    make_zip,
    npz_bytes,
    raw_params,
)

from pipeline_steps.core.episodes import (
    DatasetError,
    Episode,
    find_dataset_dir,
    load_transitions,
    read_episodes,
)
from pipeline_steps.datasets import collect, download, exorl
from pipeline_steps.envs.dmc import env_id, episode_seed, make_env, register_all
from pipeline_steps.envs.names import split_env_name
from pipeline_steps.rl import dataset

ZIP_PATH = "/walker/rnd.zip"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def exorl_params(tmp_path, server, envs=("walker-run",), **overrides):
    return make_params(
        {
            "envs": list(envs),
            "dataset.source": "exorl",
            "dataset.exorl.base_url": server.base_url + "/",  # a trailing slash must not matter
            "dataset.exorl.method": "rnd",
            "dataset.exorl.max_episodes": 0,
            "dataset.exorl.cache_dir": str(tmp_path / "cache"),
            **overrides,
        }
    )


def exorl_zip(episodes, prefix="", compression=zipfile.ZIP_DEFLATED) -> bytes:
    """Members written in reverse index order: the reader must sort by episode index."""
    members = {episode_name(i, ep, prefix): npz_bytes(ep) for i, ep in enumerate(episodes)}
    return make_zip(dict(reversed(list(members.items()))), compression)


def short(ep, n=10):
    """The first n steps of an ExORL episode (n + 1 rows)."""
    return {k: v[: n + 1] for k, v in ep.items()}


def assert_no_stage_output(out: Path):
    assert not (out / "minari").exists()
    assert not (out / "minari.tmp").exists()
    assert not (out / "stats.json").exists()


def lag1_autocorr(a: np.ndarray) -> float:
    """Pooled lag-1 autocorrelation over the columns of a [T, A] array."""
    a = a - a.mean(0)
    return float((a[1:] * a[:-1]).sum() / (a * a).sum())


# --------------------------------------------------------------------------------------------
# ExORL: the happy path
# --------------------------------------------------------------------------------------------
def test_exorl_end_to_end(tmp_path, http_server, walker_exorl_episodes):
    src = walker_exorl_episodes
    http_server.routes[ZIP_PATH] = ("ok", exorl_zip(src))
    out = tmp_path / "out"

    stats = dataset.run(
        exorl_params(tmp_path, http_server, envs=["walker-run", "walker-walk"]), "walker-run", out
    )

    assert http_server.requests == [ZIP_PATH]
    archive = tmp_path / "cache" / "walker" / "rnd.zip"
    assert archive.is_file() and not list((tmp_path / "cache").rglob("*.part"))

    got = read_episodes(out / "minari")
    assert [len(ep.actions) for ep in got] == [1000, 1000]
    run_rewards = []
    for ep, s in zip(got, src):
        np.testing.assert_array_equal(ep.observations, s["observation"])  # all T + 1 observations
        np.testing.assert_array_equal(ep.actions, s["action"][1:])  # the dummy action 0 dropped
        np.testing.assert_array_equal(ep.physics, s["physics"])
        # relabelled reward of transition i is the task reward of physics[i + 1]
        expected = dmc_task_rewards("walker", "run", s["physics"])[1:]
        np.testing.assert_allclose(ep.rewards, expected, rtol=0, atol=1e-12)
        # ... which is the reward dm_control paid online when the data was recorded
        np.testing.assert_allclose(ep.rewards, s["reward"][1:, 0], rtol=0, atol=1e-6)
        assert not ep.terminations.any()
        assert ep.truncations[-1] and not ep.truncations[:-1].any()
        run_rewards.append(ep.rewards)

    # flat transitions: (observation[i], action[i+1], observation[i+1]), no terminals
    tr = load_transitions(out / "minari")
    assert len(tr) == 2000
    np.testing.assert_array_equal(tr.observations, np.concatenate([s["observation"][:-1] for s in src]))
    np.testing.assert_array_equal(tr.next_observations, np.concatenate([s["observation"][1:] for s in src]))
    np.testing.assert_array_equal(tr.actions, np.concatenate([s["action"][1:] for s in src]))
    np.testing.assert_array_equal(tr.masks, 1.0)
    np.testing.assert_array_equal(tr.episode_index, np.repeat([0, 1], 1000))
    # episode boundary: transition 1000 starts at episode 1's first observation, not episode 0's last
    np.testing.assert_array_equal(tr.observations[1000], src[1]["observation"][0])

    returns = [r.sum() for r in run_rewards]
    assert stats["transitions"] == 2000 and stats["episodes"] == 2
    assert stats["return_mean"] == pytest.approx(np.mean(returns), abs=1e-9)
    assert stats["return_min"] == pytest.approx(min(returns), abs=1e-9)
    assert stats["return_max"] == pytest.approx(max(returns), abs=1e-9)
    assert json.loads((out / "stats.json").read_text()) == stats

    # same archive, another task of the domain: served from the cache, rewards of *that* task
    out_walk = tmp_path / "out_walk"
    dataset.run(
        exorl_params(tmp_path, http_server, envs=["walker-run", "walker-walk"]), "walker-walk", out_walk
    )
    assert http_server.requests == [ZIP_PATH]  # no second download
    walk = read_episodes(out_walk / "minari")
    for ep, s, r_run in zip(walk, src, run_rewards):
        np.testing.assert_array_equal(ep.observations, s["observation"])
        np.testing.assert_allclose(
            ep.rewards, dmc_task_rewards("walker", "walk", s["physics"])[1:], atol=1e-12
        )
        assert np.abs(ep.rewards - r_run).max() > 0.01  # really relabelled for the task
    assert "walker-walk" in str(find_dataset_dir(out_walk / "minari"))


def test_a_failure_while_writing_the_dataset_leaves_no_output(
    tmp_path, http_server, walker_exorl_episodes, monkeypatch
):
    import minari

    http_server.routes[ZIP_PATH] = ("ok", exorl_zip([short(walker_exorl_episodes[0], 20)]))
    out = tmp_path / "out"

    def fail(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        dataset.run(exorl_params(tmp_path, http_server), "walker-run", out)
    assert not list(out.iterdir())  # no stats.json, no minari/, no minari.tmp/


def test_exorl_max_episodes_and_leading_directory(tmp_path, http_server, walker_exorl_episodes):
    """Members may sit under a leading directory; max_episodes keeps the lowest episode indices."""
    src = [short(ep, 50) for ep in walker_exorl_episodes] + [short(walker_exorl_episodes[1], 30)]
    http_server.routes[ZIP_PATH] = ("ok", exorl_zip(src, prefix="exorl/walker/rnd/"))
    out = tmp_path / "out"
    stats = dataset.run(
        exorl_params(tmp_path, http_server, **{"dataset.exorl.max_episodes": 2}), "walker-run", out
    )
    got = read_episodes(out / "minari")
    assert stats["episodes"] == 2 and stats["transitions"] == 100
    for ep, s in zip(got, src[:2]):
        np.testing.assert_array_equal(ep.observations, s["observation"])


# one archive per domain, relabelled for each of the domain's tasks in the paper (Table 1): the task the
# archive is built with first
EXORL_DOMAINS = {
    "walker": ("run", ["walker-run", "walker-walk"]),
    "cheetah": ("run", ["cheetah-run", "cheetah-run-backward"]),
    "quadruped": ("walk", ["quadruped-walk", "quadruped-run"]),
    "jaco": ("reach_top_left", ["jaco-reach-top-left", "jaco-reach-top-right"]),
}


@pytest.mark.parametrize("domain", list(EXORL_DOMAINS))
def test_exorl_archive_of_each_domain_fits_the_env_and_relabels_per_task(domain, tmp_path, http_server):
    """An archive in ExORL's layout built on a raw dm_control env (conftest.exorl_rollout, keys
    OBS_ORDER, OBS_DIM wide) fits make_env: same keys and size, and the env replays an episode's
    actions to its very observations. `dataset.exorl` fetches {domain}/rnd.zip once for all the
    domain's tasks and relabels each with its own rewards (those of the raw env's task)."""
    archive_task, names = EXORL_DOMAINS[domain]
    src = [exorl_rollout(domain, archive_task, seed, steps=40) for seed in (5, 6)]
    assert src[0]["observation"].shape == (41, OBS_DIM[domain])
    http_server.routes[f"/{domain}/rnd.zip"] = ("ok", exorl_zip(src))
    cfg = exorl_params(tmp_path, http_server, envs=names).dataset.exorl
    rewards = {}
    for name in names:
        env = make_env(name)
        assert env.obs_keys == OBS_ORDER[domain]
        assert env.observation_space.shape == (OBS_DIM[domain],)
        obs, _ = env.reset(seed=5)
        replay = [obs] + [env.step(a)[0] for a in src[0]["action"][1:]]
        np.testing.assert_array_equal(np.stack(replay), src[0]["observation"])
        env.close()

        _, task = split_env_name(name)
        episodes = exorl.exorl(name, cfg)
        assert len(episodes) == 2
        for ep, s in zip(episodes, src):
            np.testing.assert_array_equal(ep.observations, s["observation"])
            np.testing.assert_array_equal(ep.actions, s["action"][1:])
            expected = dmc_task_rewards(domain, task, s["physics"])[1:]
            np.testing.assert_allclose(ep.rewards, expected, rtol=0, atol=1e-12)
        rewards[name] = np.concatenate([ep.rewards for ep in episodes])
    assert http_server.requests == [f"/{domain}/rnd.zip"]
    first, second = rewards.values()
    # the archive task's relabelled rewards are those paid online when it was recorded ...
    np.testing.assert_allclose(first, np.concatenate([s["reward"][1:, 0] for s in src]), rtol=0, atol=1e-6)
    assert not np.array_equal(first, second)  # ... and the other task's really are its own
    if domain == "cheetah":  # run rewards forward speed, run-backward backward speed: never both
        assert not np.any((first > 0) & (second > 0))
        assert first.max() > 0 and second.max() > 0


# --------------------------------------------------------------------------------------------
# ExORL: failures leave nothing behind
# --------------------------------------------------------------------------------------------
def _bad_archives(ep):
    """name -> (server kind, body, message substrings, is a download failure)."""
    ok = exorl_zip([ep])
    no_physics = {k: v for k, v in ep.items() if k != "physics"}
    short_action = dict(ep, action=ep["action"][:-1])
    cheetah_shaped = dict(ep, observation=ep["observation"][:, :17])

    stored = bytearray(exorl_zip([ep], compression=zipfile.ZIP_STORED))
    stored[30 + len(episode_name(0, ep)) + 200] ^= 0xFF  # a byte of member data: bad CRC
    deflated = bytearray(ok)
    for k in range(200, 240):  # garbage inside the compressed stream
        deflated[30 + len(episode_name(0, ep)) + k] ^= 0xFF
    return {
        "404": ("missing", b"", ["HTTP 404", ZIP_PATH], True),
        "not-a-zip": (
            "ok",
            b"<html><body>Access denied</body></html>",
            ["not a zip archive", ZIP_PATH],
            True,
        ),
        "truncated": ("short", ok, ["truncated", f"got {len(ok)} of {len(ok) + 4096} bytes"], True),
        "truncated-chunked": ("chunked_cut", ok, ["interrupted", "IncompleteRead", ZIP_PATH], True),
        "bad-crc": ("ok", bytes(stored), ["corrupt zip", "buffer/episode_000000"], True),
        "corrupt-deflate": ("ok", bytes(deflated), ["corrupt zip", ZIP_PATH], True),
        "missing-keys": (
            "ok",
            exorl_zip([no_physics]),
            ["missing keys ['physics']", "episode_000000"],
            False,
        ),
        "mismatched-lengths": (
            "ok",
            exorl_zip([short_action]),
            ["arrays of different lengths", "'action': 10"],
            False,
        ),
        "wrong-obs-dim": ("ok", exorl_zip([cheetah_shaped]), ["do not fit walker-run", "(11, 17)"], False),
        "no-episodes": ("ok", make_zip({"README.txt": b"hello"}), ["no buffer/episode_*.npz"], False),
    }


BAD_CASES = [
    "404",
    "not-a-zip",
    "truncated",
    "truncated-chunked",
    "bad-crc",
    "corrupt-deflate",
    "missing-keys",
    "mismatched-lengths",
    "wrong-obs-dim",
    "no-episodes",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_exorl_failure_is_a_dataset_error_and_leaves_nothing_behind(
    case, tmp_path, http_server, walker_exorl_episodes
):
    ep = short(walker_exorl_episodes[0], 10)
    kind, body, expected, download_failure = _bad_archives(ep)[case]
    if kind != "missing":
        http_server.routes[ZIP_PATH] = (kind, body)
    out = tmp_path / "out"
    params = exorl_params(tmp_path, http_server)
    archive = tmp_path / "cache" / "walker" / "rnd.zip"

    with pytest.raises(DatasetError) as exc:
        dataset.run(params, "walker-run", out)
    msg = str(exc.value)
    for s in expected:
        assert s in msg, f"{s!r} not in {msg!r}"
    assert_no_stage_output(out)
    assert not list(tmp_path.rglob("*.part"))
    if download_failure:
        assert not archive.exists()
    else:
        # A complete, CRC-valid download whose content is wrong stays cached (a retry would fetch
        # the same bytes); the message names the file so it can be deleted.
        assert archive.is_file() and str(archive) in msg

    if download_failure:  # once the server is fixed, the next run downloads and succeeds
        http_server.routes[ZIP_PATH] = ("ok", exorl_zip([ep]))
        stats = dataset.run(params, "walker-run", out)
        assert stats["transitions"] == 10 and archive.is_file()
        assert http_server.count(ZIP_PATH) == 2


def test_download_that_stalls_times_out(tmp_path, http_server, walker_exorl_episodes):
    http_server.routes[ZIP_PATH] = ("stall", exorl_zip([short(walker_exorl_episodes[0])]))
    dest = tmp_path / "cache" / "rnd.zip"
    with pytest.raises(DatasetError, match="interrupted or unreachable"):
        download.download(http_server.base_url + ZIP_PATH, dest, timeout=0.3)
    assert not dest.exists() and not list(tmp_path.rglob("*.part"))


def test_unreachable_server_is_a_dataset_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "rnd.zip"
    with pytest.raises(DatasetError, match=f"127.0.0.1:{port}"):
        download.download(f"http://127.0.0.1:{port}/walker/rnd.zip", dest, timeout=2)
    assert not dest.exists() and not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("shape", [(11, 17), (11, 19), (18,)])
def test_relabel_rejects_physics_of_the_wrong_shape(shape):
    env = make_env("walker-run")  # state = qpos(9) + qvel(9)
    with pytest.raises(DatasetError, match=rf"physics states have shape \({shape[0]},"):
        exorl.relabel_rewards(env, np.zeros(shape))
    env.close()


# --------------------------------------------------------------------------------------------
# Minari source
# --------------------------------------------------------------------------------------------
@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari_src"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _create_minari(dataset_id: str, episodes: list[Episode], env_name: str):
    import minari
    from minari.data_collector import EpisodeBuffer

    register_all()
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=ep.observations,
            actions=ep.actions,
            rewards=ep.rewards,
            terminations=ep.terminations,
            truncations=ep.truncations,
            infos={"physics": ep.physics},
        )
        for i, ep in enumerate(episodes)
    ]
    minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=buffers,
        env=env_id(env_name),
        eval_env=env_id(env_name),
        algorithm_name="test",
        description="test source",
        data_format="hdf5",
    )


def _cut(ep: Episode, n: int) -> Episode:
    return Episode(
        observations=ep.observations[: n + 1],
        actions=ep.actions[:n],
        rewards=ep.rewards[:n],
        terminations=np.zeros(n, bool),
        truncations=np.arange(n) == n - 1,
        physics=ep.physics[: n + 1],
    )


@pytest.fixture(scope="module")
def cheetah_episodes():
    cfg = make_params(
        {"dataset.collect.behaviour": "uniform", "dataset.collect.transitions": 2000}
    ).dataset.collect
    eps = collect.collect("cheetah-run", cfg, seed=5)
    return [eps[0], _cut(eps[1], 250)]


def test_minari_source_copies_the_dataset(tmp_path, minari_root, cheetah_episodes):
    _create_minari("test/cheetah-run/src-v0", cheetah_episodes, "cheetah-run")
    params = make_params(
        {
            "envs": ["cheetah-run"],
            "dataset.source": "minari",
            "dataset.minari.dataset_ids": {"cheetah-run": "test/cheetah-run/src-v0"},
        }
    )
    out = tmp_path / "out"
    stats = dataset.run(params, "cheetah-run", out)

    assert stats["transitions"] == 1250 and stats["episodes"] == 2
    assert os.environ["MINARI_DATASETS_PATH"] == str(minari_root)  # the stage restored it
    got = read_episodes(out / "minari")
    assert len(got) == 2
    for g, e in zip(got, cheetah_episodes):
        for name in ("observations", "actions", "rewards", "terminations", "truncations", "physics"):
            a, b = getattr(g, name), getattr(e, name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert "minari-v0" in str(find_dataset_dir(out / "minari"))
    assert json.loads((out / "stats.json").read_text())["return_max"] == pytest.approx(
        max(e.ret for e in cheetah_episodes)
    )


def test_minari_source_with_wrong_shapes_is_rejected(tmp_path, minari_root, cheetah_episodes):
    _create_minari("test/cheetah-run/src-v0", cheetah_episodes, "cheetah-run")
    params = make_params(
        {
            "envs": ["walker-run"],
            "dataset.source": "minari",
            "dataset.minari.dataset_ids": {"walker-run": "test/cheetah-run/src-v0"},
        }
    )
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as exc:
        dataset.run(params, "walker-run", out)
    msg = str(exc.value)
    assert "'test/cheetah-run/src-v0'" in msg and "(24,)" in msg and "(17,)" in msg
    assert_no_stage_output(out)


def test_minari_source_with_actions_out_of_range_is_rejected(tmp_path, minari_root, cheetah_episodes):
    ep = cheetah_episodes[1]
    loud = Episode(ep.observations, ep.actions * 3.0, ep.rewards, ep.terminations, ep.truncations, ep.physics)
    _create_minari("test/cheetah-run/loud-v0", [loud], "cheetah-run")
    params = make_params(
        {
            "envs": ["cheetah-run"],
            "dataset.source": "minari",
            "dataset.minari.dataset_ids": {"cheetah-run": "test/cheetah-run/loud-v0"},
        }
    )
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"actions outside \[-1, 1\]"):
        dataset.run(params, "cheetah-run", out)
    assert_no_stage_output(out)


# --------------------------------------------------------------------------------------------
# collect
# --------------------------------------------------------------------------------------------
ARRAYS = ("observations", "actions", "rewards", "terminations", "truncations", "physics")


def _collect_params(**overrides):
    return make_params(
        {
            "envs": ["cheetah-run"],
            "dataset.source": "collect",
            "dataset.seed": 3,
            "dataset.collect.behaviour": "correlated",
            "dataset.collect.transitions": 1000,
            **overrides,
        }
    )


def test_collect_is_reproducible_and_seeded(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    dataset.run(_collect_params(), "cheetah-run", a)
    dataset.run(_collect_params(), "cheetah-run", b)
    ea, eb = read_episodes(a / "minari"), read_episodes(b / "minari")
    assert len(ea) == len(eb) == 1
    for name in ARRAYS:
        x, y = getattr(ea[0], name), getattr(eb[0], name)
        assert x.tobytes() == y.tobytes(), name

    # the recorded data is what the env produces for the documented reset seed
    ep = ea[0]
    env = make_env("cheetah-run")
    obs0, info0 = env.reset(seed=episode_seed(3, 0))
    np.testing.assert_array_equal(ep.observations[0], obs0)
    np.testing.assert_array_equal(ep.physics[0], info0["physics"])
    # physics[i + 1] is the state after action i: its task reward is the recorded reward
    np.testing.assert_allclose(exorl.relabel_rewards(env, ep.physics)[1:], ep.rewards, rtol=0, atol=1e-12)
    env.close()
    assert not ep.terminations.any() and ep.truncations[-1] and not ep.truncations[:-1].any()

    # another seed, written over the first dataset: different data, still exactly one dataset
    dataset.run(_collect_params(**{"dataset.seed": 4}), "cheetah-run", a)
    ec = read_episodes(a / "minari")
    assert not np.array_equal(ec[0].observations[0], ep.observations[0])
    assert not np.array_equal(ec[0].actions, ep.actions)
    assert not (a / "minari.tmp").exists()


@pytest.mark.parametrize(
    ("behaviour", "theta", "autocorr", "tol"),
    [("uniform", 0.9, 0.0, 0.05), ("correlated", 0.9, 0.9, 0.05), ("correlated", 0.5, 0.5, 0.07)],
)
def test_behaviour_action_statistics(behaviour, theta, autocorr, tol):
    cfg = _collect_params(
        **{
            "dataset.collect.behaviour": behaviour,
            "dataset.collect.correlated.theta": theta,
            "dataset.collect.correlated.sigma": 0.6,
        }
    ).dataset.collect
    (ep,) = collect.collect("cheetah-run", cfg, seed=0)
    a = ep.actions.astype(np.float64)
    assert a.shape == (1000, 6) and np.abs(a).max() <= 1.0
    assert lag1_autocorr(a) == pytest.approx(autocorr, abs=tol)
    if behaviour == "uniform":
        assert a.std() == pytest.approx(1 / np.sqrt(3), abs=0.02)  # U[-1, 1]
        assert (np.abs(a) == 1.0).mean() == 0.0
    else:
        assert a.std() == pytest.approx(0.55, abs=0.04)  # sigma = 0.6, shrunk by clipping at +-1
        assert 0.02 < (np.abs(a) == 1.0).mean() < 0.2  # P(|N(0, 0.6)| > 1) ~ 0.1


def test_stats_json_matches_episodes_and_budget_rounds_up(tmp_path):
    out = tmp_path / "out"
    stats = dataset.run(
        _collect_params(**{"dataset.collect.behaviour": "uniform", "dataset.collect.transitions": 1001}),
        "cheetah-run",
        out,
    )
    eps = read_episodes(out / "minari")
    returns = np.array([e.rewards.sum() for e in eps])
    assert len(eps) == 2 and [len(e.actions) for e in eps] == [1000, 1000]
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk == stats
    assert on_disk["transitions"] == 2000 and on_disk["episodes"] == 2
    assert on_disk["return_mean"] == pytest.approx(returns.mean(), rel=1e-12)
    assert on_disk["return_min"] == pytest.approx(returns.min(), rel=1e-12)
    assert on_disk["return_max"] == pytest.approx(returns.max(), rel=1e-12)
    assert on_disk["return_std"] == pytest.approx(returns.std(), rel=1e-9)
    assert returns[0] != returns[1]  # two different episodes, not one written twice
    assert on_disk["build_seconds"] > 0
    assert on_disk["steps_per_second"] == pytest.approx(2000 / on_disk["build_seconds"])


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _cli(tmp_path, env_name, params_raw):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params_raw))
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline_steps.rl.dataset",
            "--env",
            env_name,
            "--params",
            str(params_file),
            "--out",
            str(out),
        ],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "250", "MUJOCO_GL": "egl", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, out


def test_cli_builds_a_dataset(tmp_path):
    raw = raw_params(
        {
            "envs": ["cheetah-run"],
            "dataset.collect.behaviour": "uniform",
            "dataset.collect.transitions": 1000,
            "dataset.source": "collect",
        }
    )
    proc, out = _cli(tmp_path, "cheetah-run", raw)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["transitions"] == 1000 and stats["episodes"] == 1
    assert len(load_transitions(out / "minari")) == 1000


def test_cli_rejects_env_not_in_params(tmp_path):
    raw = raw_params({"envs": ["cheetah-run"], "dataset.collect.transitions": 1000})
    proc, out = _cli(tmp_path, "walker-run", raw)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "'walker-run'" in text and "not in params envs" in text, text
    assert not out.exists()


def test_cli_rejects_bad_params(tmp_path):
    raw = raw_params({"envs": ["cheetah-run"], "dataset.source": "s3"})
    proc, out = _cli(tmp_path, "cheetah-run", raw)
    assert proc.returncode == 2
    assert "dataset.source = 's3'" in proc.stderr
    assert "Traceback" not in proc.stderr and "error: " in proc.stderr  # the bad keys, not a traceback
    assert "absl INFO" not in proc.stderr and "OpenGL" not in proc.stderr  # no renderer chatter
    assert not out.exists()


def _sac_params(**overrides):
    return _collect_params(
        **{
            "dataset.collect.behaviour": "sac_replay",
            "dataset.collect.transitions": 2000,
            "dataset.collect.sac.hidden": [16],
            "dataset.collect.sac.batch_size": 16,
            "dataset.collect.sac.random_steps": 300,
            "dataset.collect.sac.update_every": 1,
            "dataset.collect.sac.expert_episodes": 1,
            "dataset.collect.sac.expert_noise": 0.2,
            "runtime.compile": False,
            **overrides,
        }
    )


def test_sac_replay_is_seeded_streams_its_returns_and_longer_runs_share_their_first_episodes(
    tmp_path, monkeypatch
):
    """The dataset stage with behaviour sac_replay: byte-identical on a rerun; every online episode's return
    streamed to the stage run at its env step; the final actor's noisy episodes appended after the online
    ones; a longer run's first episodes equal a shorter one's (the pilot's 100k / 200k buffers)."""
    from pipeline_steps.datasets import sac_replay

    streamed = []
    monkeypatch.setattr(sac_replay.tracking, "log_step", streamed.append)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    stats = dataset.run(_sac_params(), "cheetah-run", a)
    dataset.run(_sac_params(), "cheetah-run", b)
    dataset.run(
        _sac_params(**{"dataset.collect.transitions": 3000, "dataset.collect.sac.expert_episodes": 0}),
        "cheetah-run",
        c,
    )
    ea, eb, ec = (read_episodes(d / "minari") for d in (a, b, c))
    assert len(ea) == len(eb) == 3 and len(ec) == 3 and stats["episodes"] == 3
    for x, y in zip(ea, eb):
        for name in ARRAYS:
            assert getattr(x, name).tobytes() == getattr(y, name).tobytes(), name
    for name in ARRAYS:  # the online episodes of the 2000-step run are the 3000-step run's first two
        for i in range(2):
            assert getattr(ea[i], name).tobytes() == getattr(ec[i], name).tobytes(), (i, name)
    assert not np.array_equal(ea[2].actions, ec[2].actions)  # episode 3: the final actor vs online SAC
    # the first random_steps actions are uniform; SAC's tanh actions after them never reach +-1 exactly,
    # the final actor's clipped noisy ones do only at the clip
    assert np.abs(ea[0].actions[:300]).max() <= 1.0 and np.isfinite(ea[1].actions).all()
    assert [r["step"] for r in streamed[:3]] == [1000, 2000, 2000 + 1000]
    assert [r.get("episode_return") for r in streamed[:2]] == pytest.approx([ea[0].ret, ea[1].ret])
    assert streamed[2]["expert_return"] == pytest.approx(ea[2].ret)
    assert [r["episode_return"] for r in streamed[6:9]] == pytest.approx([ec[0].ret, ec[1].ret, ec[2].ret])


def test_dataset_stage_runs_with_the_params_thread_count(tmp_path):
    """runtime.threads reaches the dataset stage (SAC's updates): two collections side by side on 2 cores
    do not each take every core."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        dataset.run(_collect_params(**{"runtime.threads": 1}), "cheetah-run", tmp_path / "d")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_sac_critic_fits_rewards_and_the_actor_climbs_its_q():
    """With discount 0 the critic's target is the reward: its loss falls on a fixed batch, and the actor's
    mean action earns more reward than at the start (it climbs the critic)."""
    import torch

    from pipeline_steps.algorithms.sac import SAC

    cfg = _sac_params(
        **{
            "dataset.collect.sac.discount": 0.0,
            "dataset.collect.sac.hidden": [64, 64],
            "dataset.collect.sac.lr": 1e-3,
        }
    ).dataset.collect.sac
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    agent = SAC(5, 2, cfg)
    obs, act = torch.randn(64, 5, generator=g), torch.rand(64, 2, generator=g) * 2 - 1
    b = {
        "obs": obs,
        "act": act,
        "rew": (obs[:, 0] - act[:, 0]).sin(),
        "next_obs": obs,
        "mask": torch.ones(64),
    }

    def reward_of_mean_action():
        with torch.no_grad():
            a, _ = agent.pi(obs, torch.zeros(64, 2))
        return (obs[:, 0] - a[:, 0]).sin().mean()

    start = reward_of_mean_action()
    first = agent.update(b, g)
    for _ in range(300):
        last = agent.update(b, g)
    assert last["critic_loss"] < 0.1 * first["critic_loss"]
    assert reward_of_mean_action() > start + 0.2
    # act() samples exactly pi's action (without its log-prob) from the same noise
    a_act = agent.act(obs[0].numpy(), torch.Generator().manual_seed(7))
    a_pi, _ = agent.pi(obs[:1], torch.randn(1, 2, generator=torch.Generator().manual_seed(7)))
    assert a_act.tobytes() == a_pi[0].detach().numpy().tobytes()
