"""dm_control tasks as gymnasium envs: flat float32 observations in dm_control order, [-1, 1] actions,
1000-step truncated episodes, seeded resets, physics state in info, JSON-able specs."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest
from conftest import OBS_ORDER, flat_obs

from pipeline_steps.envs import FlatDmControl, env_id, episode_seed, make_env, split_env_name

DIMS = {"walker-run": (24, 6), "cheetah-run": (17, 6)}


@pytest.mark.parametrize("name", ["walker-run", "cheetah-run"])
def test_spaces_and_observation_layout(name):
    domain = name.split("-")[0]
    env = make_env(name)
    obs_dim, act_dim = DIMS[name]
    assert isinstance(env, FlatDmControl)
    assert env.observation_space.shape == (obs_dim,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (act_dim,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    assert env.obs_keys == OBS_ORDER[domain]
    obs, info = env.reset(seed=5)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    nq, nv = env.physics.model.nq, env.physics.model.nv
    assert info["physics"].shape == (nq + nv + env.physics.model.na,)
    np.testing.assert_array_equal(info["physics"], env.physics.get_state())
    env.close()


@pytest.mark.parametrize("name", ["walker-run", "cheetah-run"])
def test_flat_obs_matches_raw_dm_control(name):
    """Same seed -> same reset as suite.load(..., random=seed); same actions -> same obs, reward, state."""
    from dm_control import suite

    domain, task = split_env_name(name)
    seed = 1234
    env = make_env(name)
    raw = suite.load(domain, task, task_kwargs={"random": seed})
    obs, info = env.reset(seed=seed)
    ts = raw.reset()
    np.testing.assert_array_equal(obs, flat_obs(domain, ts.observation).astype(np.float32))
    np.testing.assert_array_equal(info["physics"], raw.physics.get_state())
    # a different seed gives a different initial state (the seed really reaches the task's RNG)
    assert not np.array_equal(env.reset(seed=seed + 1)[0], obs)
    env.reset(seed=seed)

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(a)
        ts = raw.step(a)
        np.testing.assert_array_equal(obs, flat_obs(domain, ts.observation).astype(np.float32))
        assert reward == ts.reward
        np.testing.assert_array_equal(info["physics"], raw.physics.get_state())
        assert not (terminated or truncated)
    env.close()


def test_walker_obs_slices_are_the_named_quantities():
    """height (index 14) is the torso height and the velocity block is qvel (not just any layout)."""
    env = make_env("walker-run")
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.zeros(6, np.float32))
    np.testing.assert_allclose(obs[14], env.physics.torso_height(), rtol=1e-6)
    np.testing.assert_allclose(obs[15:], env.physics.velocity(), rtol=1e-6)
    np.testing.assert_allclose(obs[:14], env.physics.orientations(), rtol=1e-6)
    env.close()


def test_actions_outside_the_box_are_clipped():
    a_big = np.full(6, 5.0, np.float32)
    out = []
    for a in (a_big, np.ones(6, np.float32)):
        env = make_env("cheetah-run")
        env.reset(seed=3)
        obs, *_ = env.step(a)
        out.append((obs, env.physics.data.ctrl.copy()))
        env.close()
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], 1.0)


def test_actions_are_rescaled_to_non_unit_bounds():
    """quadruped-walk actuators have bounds like [-1, 1.1] and [-0.8, 0.8]:
    -1 / 0 / 1 map to low / mid / high."""
    env = make_env("quadruped-walk")
    spec = env.unwrapped._env.action_spec()
    low, high = spec.minimum, spec.maximum
    assert not np.all(high == 1.0)  # the case is real
    env.reset(seed=0)
    for a, expected in [(-1.0, low), (1.0, high), (0.0, (low + high) / 2)]:
        env.step(np.full(spec.shape, a, np.float32))
        np.testing.assert_allclose(env.physics.data.ctrl, expected, atol=1e-12)
    env.close()


@pytest.mark.parametrize("name", ["walker-run", "cheetah-run"])
def test_episode_is_1000_steps_truncated_never_terminated(name):
    env = make_env(name)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    flags = []
    rewards = []
    for _ in range(1000):
        _, r, term, trunc, _ = env.step(rng.uniform(-1, 1, 6))
        flags.append((term, trunc))
        rewards.append(r)
    assert flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    assert all(0.0 <= r <= 1.0 for r in rewards)  # dm_control rewards, so returns <= 1000
    env.close()


def test_same_seed_same_trajectory_different_env_instances():
    def traj(seed):
        env = make_env("cheetah-run")
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        out = [obs]
        phys = [info["physics"]]
        for _ in range(200):
            obs, _, _, _, info = env.step(rng.uniform(-1, 1, 6))
            out.append(obs)
            phys.append(info["physics"])
        env.close()
        return np.stack(out), np.stack(phys)

    a, b, c = traj(42), traj(42), traj(43)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert not np.array_equal(a[0], c[0])


def test_info_physics_is_a_copy_not_a_live_view():
    env = make_env("cheetah-run")
    _, info0 = env.reset(seed=0)
    before = info0["physics"].copy()
    _, _, _, _, info1 = env.step(np.ones(6))
    np.testing.assert_array_equal(info0["physics"], before)
    assert not np.array_equal(info1["physics"], before)
    env.close()


def test_spec_is_json_serialisable_and_recreates_the_env():
    env = make_env("walker-run")
    assert env.spec.id == env_id("walker-run") == "cfgrl/walker-run-v0"
    assert isinstance(env.spec.entry_point, str)
    js = env.spec.to_json()
    spec = gym.envs.registration.EnvSpec.from_json(js)
    again = gym.make(spec)
    assert isinstance(again, FlatDmControl)
    assert again.observation_space.shape == (24,)
    np.testing.assert_array_equal(again.reset(seed=9)[0], env.reset(seed=9)[0])
    again.close()
    env.close()


@pytest.mark.parametrize(
    ("name", "obs_dim", "act_dim", "keys"),
    [
        ("cartpole-swingup", 5, 1, ["position", "velocity"]),
        ("reacher-easy", 6, 2, ["position", "to_target", "velocity"]),
    ],
)
def test_other_suite_tasks(name, obs_dim, act_dim, keys):
    env = make_env(name)
    assert env.obs_keys == keys
    obs, _ = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32
    assert env.action_space.shape == (act_dim,)
    obs, r, term, trunc, _ = env.step(np.zeros(act_dim, np.float32))
    assert obs.shape == (obs_dim,) and np.isfinite(r) and not term and not trunc
    env.close()


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("walker-fly", r"unknown env 'walker-fly'"),
        ("robot-run", r"unknown env 'robot-run'"),
        ("walkerrun", r"'walkerrun' is not of the form domain-task"),
        ("-run", r"'-run' is not of the form domain-task"),
    ],
)
def test_unknown_env_raises_value_error_naming_it(name, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_env(name)


def test_episode_seed_is_deterministic_distinct_and_in_range():
    seeds = [episode_seed(0, i) for i in range(200)]
    assert seeds == [episode_seed(0, i) for i in range(200)]
    assert len(set(seeds)) == 200
    assert set(seeds).isdisjoint(episode_seed(1, i) for i in range(200))
    assert all(0 <= s < 2**32 for s in seeds)
    # usable as a reset seed (shimmy's RandomState rejects seeds >= 2**32)
    env = make_env("cheetah-run")
    env.reset(seed=max(seeds))
    env.close()


def test_cheetah_settotalmass_deprecation_is_not_logged_per_env(capfd, caplog):
    """MuJoCo 3 warns about cheetah.xml's `settotalmass` on every model build (evaluation builds 140):
    the absl filter drops exactly that message and lets other absl warnings through."""
    from absl import logging as absl_logging

    caplog.set_level(logging.WARNING)
    make_env("cheetah-run").close()
    absl_logging.warning("another absl warning")
    text = caplog.text + capfd.readouterr().err
    assert "settotalmass" not in text
    assert "another absl warning" in text
