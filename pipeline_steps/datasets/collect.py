"""Data collected here by rolling out a behaviour policy in the env (params `dataset.collect`): uniform
or temporally correlated (AR(1)) random actions, or the whole replay buffer of an online SAC run
(sac_replay.py). Seeded: the same params give byte-identical episodes."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from pipeline_steps.core.episodes import Episode
from pipeline_steps.core.params import CollectSource
from pipeline_steps.datasets import sac_replay
from pipeline_steps.envs.dmc import FlatDmControl, episode_seed, make_env


def rollout(env: FlatDmControl, policy, seed: int) -> Episode:
    """One episode; `policy(obs) -> action` in [-1, 1]. Records the physics state of every step."""
    obs, info = env.reset(seed=seed)
    observations, actions, rewards, physics = [obs], [], [], [info["physics"]]
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        physics.append(info["physics"])
    return Episode.from_steps(observations, actions, rewards, physics, terminated, truncated, seed)


def uniform_policy(action_dim: int, rng: np.random.Generator):
    return lambda obs: rng.uniform(-1.0, 1.0, action_dim)


def correlated_policy(action_dim: int, rng: np.random.Generator, theta: float, sigma: float):
    """AR(1) noise with stationary std sigma: a_t = theta a_{t-1} + sqrt(1 - theta^2) sigma eps_t."""
    state = rng.normal(0.0, sigma, action_dim)

    def policy(obs):
        nonlocal state
        state = theta * state + np.sqrt(1.0 - theta**2) * sigma * rng.normal(size=action_dim)
        return np.clip(state, -1.0, 1.0)

    return policy


def collect(env_name: str, cfg: CollectSource, seed: int, compile: bool = False) -> list[Episode]:
    """Roll out the configured behaviour until at least `cfg.transitions` steps are collected
    (`compile`: torch.compile SAC's losses)."""
    if cfg.behaviour == "sac_replay":
        return sac_replay.collect_replay(env_name, cfg, seed, compile)
    env = make_env(env_name)
    action_dim = env.action_space.shape[0]
    episodes, steps = [], 0
    with tqdm(total=cfg.transitions, desc=f"collect {env_name} ({cfg.behaviour})", unit="step") as bar:
        while steps < cfg.transitions:
            i = len(episodes)
            rng = np.random.default_rng([seed, i])
            if cfg.behaviour == "uniform":
                policy = uniform_policy(action_dim, rng)
            else:
                policy = correlated_policy(action_dim, rng, cfg.correlated.theta, cfg.correlated.sigma)
            ep = rollout(env, policy, episode_seed(seed, i))
            episodes.append(ep)
            steps += len(ep.actions)
            bar.update(len(ep.actions))
            bar.set_postfix(ret=f"{ep.ret:.1f}")
    env.close()
    return episodes
