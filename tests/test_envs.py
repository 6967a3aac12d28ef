"""dm_control tasks (suite and ExORL's custom cheetah run_backward / jaco reach_top_*) as gymnasium envs:
flat float32 observations in dm_control order, [-1, 1] actions, truncated episodes (1000 steps, jaco
250), seeded resets, physics state in info, JSON-able specs."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest
from conftest import JACO_TARGETS, OBS_ORDER, flat_obs, raw_env, raw_task_reward, scaled_action

from pipeline_steps.datasets import exorl
from pipeline_steps.envs.dmc import FlatDmControl, env_id, episode_seed, make_env
from pipeline_steps.envs.names import env_names, split_env_name

DIMS = {
    "walker-run": (24, 6),
    "cheetah-run": (17, 6),
    "quadruped-walk": (78, 12),
    "cheetah-run-backward": (17, 6),
    "jaco-reach-top-left": (42, 9),
    "jaco-reach-top-right": (42, 9),
}
CUSTOM = ["cheetah-run-backward", "jaco-reach-top-left", "jaco-reach-top-right"]
EPISODE_STEPS = {"walker-run": 1000, "cheetah-run": 1000, "cheetah-run-backward": 1000}
EPISODE_STEPS |= {"jaco-reach-top-left": 250, "jaco-reach-top-right": 250}


@pytest.mark.parametrize("name", list(DIMS))
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


@pytest.mark.parametrize("name", list(DIMS))
def test_flat_obs_matches_raw_dm_control(name):
    """Same seed -> same reset as the raw dm_control env seeded so (conftest.raw_env: suite.load(...,
    random=seed); for the custom tasks the suite's cheetah run / dm_control's stock jaco reach-a-site
    task); same actions -> same obs (ExORL's layout), reward, state."""
    domain, task = split_env_name(name)
    seed = 1234
    env = make_env(name)
    raw = raw_env(domain, task, seed)
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
        ts = raw.step(scaled_action(raw.action_spec(), a))
        np.testing.assert_array_equal(obs, flat_obs(domain, ts.observation).astype(np.float32))
        assert reward == (raw_task_reward(domain, task, raw) if name in CUSTOM else ts.reward)
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


@pytest.mark.parametrize("name", list(EPISODE_STEPS))
def test_episode_length_truncated_never_terminated(name):
    """1000 steps (jaco: 250, 10 s at 0.04 s), truncated at the last, rewards in [0, 1]; a step
    after the end starts a new episode, as dm_control does."""
    env = make_env(name)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    flags = []
    rewards = []
    for _ in range(EPISODE_STEPS[name]):
        _, r, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        flags.append((term, trunc))
        rewards.append(r)
    assert flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    assert all(0.0 <= r <= 1.0 for r in rewards)  # dm_control rewards, so returns <= 1000
    assert max(rewards) > 0.0
    env.close()


@pytest.mark.parametrize("name", ["cheetah-run", *CUSTOM])
def test_same_seed_same_trajectory_different_env_instances(name):
    def traj(seed):
        env = make_env(name)
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(7)
        out, phys, rew = [obs], [info["physics"]], []
        for _ in range(100):
            obs, r, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
            out.append(obs)
            phys.append(info["physics"])
            rew.append(r)
        env.close()
        return np.stack(out), np.stack(phys), np.array(rew)

    a, b, c = traj(42), traj(42), traj(43)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_info_physics_is_a_copy_not_a_live_view():
    env = make_env("cheetah-run")
    _, info0 = env.reset(seed=0)
    before = info0["physics"].copy()
    _, _, _, _, info1 = env.step(np.ones(6))
    np.testing.assert_array_equal(info0["physics"], before)
    assert not np.array_equal(info1["physics"], before)
    env.close()


@pytest.mark.parametrize("name", ["walker-run", "cheetah-run-backward", "jaco-reach-top-left"])
def test_spec_is_json_serialisable_and_recreates_the_env(name):
    env = make_env(name)
    assert env.spec.id == env_id(name) == f"cfgrl/{name}-v0"
    assert env.spec.entry_point == "pipeline_steps.envs:make_dmc"
    js = env.spec.to_json()
    spec = gym.envs.registration.EnvSpec.from_json(js)
    again = gym.make(spec)
    assert isinstance(again, FlatDmControl)
    assert again.observation_space.shape == (DIMS[name][0],)
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
        ("cheetah-run_backward", r"unknown env 'cheetah-run_backward'.*closest: cheetah-run-backward"),
        (
            "cartpole-swingup-sparse",
            r"unknown env 'cartpole-swingup-sparse'.*closest: cartpole-swingup_sparse",
        ),
        ("jaco-reach-bottom-left", r"unknown env 'jaco-reach-bottom-left'.*closest: jaco-reach-top-left"),
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


# --------------------------------------------------------------------------------------------
# the custom ExORL / URLB tasks of the paper's Table 1
# --------------------------------------------------------------------------------------------
def test_custom_tasks_are_registered_under_the_papers_names():
    from pipeline_steps.envs.dmc import register_all

    names = env_names()
    assert names["cheetah-run-backward"] == ("cheetah", "run_backward")
    assert names["jaco-reach-top-left"] == ("jaco", "reach_top_left")
    assert names["jaco-reach-top-right"] == ("jaco", "reach_top_right")
    assert names["cartpole-swingup_sparse"] == ("cartpole", "swingup_sparse")  # suite names as before
    assert split_env_name("jaco-reach-top-left") == ("jaco", "reach_top_left")
    register_all()
    register_all()  # idempotent
    spec = gym.registry[env_id("jaco-reach-top-right")]
    assert spec.entry_point == "pipeline_steps.envs:make_dmc"
    assert spec.kwargs == {"domain": "jaco", "task": "reach_top_right"}


def _set_cheetah_speed(env, v: float) -> np.ndarray:
    """The physics state of a reset cheetah moving forward (+x) at v m/s as a rigid body."""
    with env.physics.reset_context():
        env.physics.data.qvel[:] = 0.0
        env.physics.data.qvel[0] = v  # rootx
    return env.physics.get_state().copy()


def test_cheetah_run_backward_reward_is_the_run_reward_of_minus_speed():
    run, back = make_env("cheetah-run"), make_env("cheetah-run-backward")
    back.reset(seed=0)
    for v, r_run, r_back in [
        (12.0, 1.0, 0.0),
        (5.0, 0.5, 0.0),
        (0.0, 0.0, 0.0),
        (-5.0, 0.0, 0.5),
        (-12.0, 0.0, 1.0),
    ]:
        state = _set_cheetah_speed(back, v)
        assert back.physics.speed() == pytest.approx(v, abs=1e-9)
        assert back.task.get_reward(back.physics) == pytest.approx(r_back, abs=1e-9)
        got_run, got_back = (exorl.relabel_rewards(e, state[None])[0] for e in (run, back))
        assert (got_run, got_back) == (pytest.approx(r_run, abs=1e-9), pytest.approx(r_back, abs=1e-9))
    run.close()
    back.close()


def test_cheetah_run_backward_model_is_exorls():
    """ExORL's cheetah.xml: the suite's with a 200 (not 100) long ground plane; nothing else changes
    (same state size and, test_flat_obs_matches_raw_dm_control, the suite cheetah's trajectories)."""
    from pipeline_steps.envs import exorl_tasks

    back, run = make_env("cheetah-run-backward"), make_env("cheetah-run")
    np.testing.assert_array_equal(back.physics.named.model.geom_size["ground"], [200, 0.8, 0.5])
    np.testing.assert_array_equal(run.physics.named.model.geom_size["ground"], [100, 0.8, 0.5])
    xml, _ = exorl_tasks.cheetah_model()
    assert exorl_tasks.SUITE_GROUND not in xml and xml.count(exorl_tasks.EXORL_GROUND) == 1
    assert back.physics.get_state().shape == run.physics.get_state().shape == (18,)
    back.close()
    run.close()


@pytest.mark.parametrize("task", ["reach_top_left", "reach_top_right"])
def test_jaco_reward_is_one_within_5cm_of_its_target(task):
    """Arm posed by inverse kinematics so that the tool-centre point is d above the task's target:
    reward 1 for d < 0.05, in (0, 1) beyond (gaussian margin 0.05), ~0 at the other task's target."""
    from dm_control.utils import inverse_kinematics

    name = f"jaco-{task.replace('_', '-')}"
    other = "jaco-reach-top-right" if task == "reach_top_left" else "jaco-reach-top-left"
    env, fresh, fresh_other = make_env(name), make_env(name), make_env(other)
    env.reset(seed=0)
    arm, hand = env.task.arm, env.task.hand
    target = np.asarray(JACO_TARGETS[task])
    for d, lo, hi in [(0.0, 1.0, 1.0), (0.03, 1.0, 1.0), (0.049, 1.0, 1.0), (0.07, 0.05, 0.99)]:
        ik = inverse_kinematics.qpos_from_site_pose(
            env.physics,
            hand.tool_center_point.full_identifier,
            target_pos=target + [0.0, 0.0, d],
            joint_names=[j.full_identifier for j in arm.joints],
            inplace=False,
        )
        assert ik.success
        with env.physics.reset_context():
            env.physics.data.qpos[:] = ik.qpos
        tcp = env.task.tool_center_point(env.physics)
        assert np.linalg.norm(tcp - target) == pytest.approx(d, abs=1e-6)
        assert lo <= env.task.get_reward(env.physics) <= hi
        # relabelling a fresh env from the state alone (forward kinematics in reset_context) agrees
        state = env.physics.get_state().copy()
        assert exorl.relabel_rewards(fresh, state[None])[0] == env.task.get_reward(env.physics)
        assert exorl.relabel_rewards(fresh_other, state[None])[0] < 1e-5  # 18 cm off
    for e in (env, fresh, fresh_other):
        e.close()


@pytest.mark.parametrize("name", CUSTOM)
def test_relabelling_from_physics_equals_the_envs_rewards(name):
    env = make_env(name)
    _, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    physics, rewards = [info["physics"]], []
    for _ in range(100):
        _, r, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        physics.append(info["physics"])
        rewards.append(r)
    env.close()
    fresh = make_env(name)
    np.testing.assert_array_equal(exorl.relabel_rewards(fresh, np.stack(physics))[1:], rewards)
    assert max(rewards) > 0.0
    fresh.close()
