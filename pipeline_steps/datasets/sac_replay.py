"""Data of an online SAC run (params `dataset.collect.behaviour: sac_replay`, `dataset.collect.sac`):
every episode SAC played during `transitions` env steps (its whole replay buffer, D4RL "replay" style),
then `sac.expert_episodes` episodes of the final actor's mean action plus Gaussian noise of std
`sac.expert_noise` (clipped to [-1, 1]), which makes a "medium-expert" style mix of the two.

Seeded: the same params give byte-identical episodes on one CPU type (the env resets, the uniform
random actions of the first `random_steps`, the minibatches and every Gaussian sample come from
generators seeded with the dataset seed). A longer run shares its first episodes with a shorter one
(nothing before the end depends on `transitions`). Progress: a bar over env steps with the last
episode's return; every episode's return streams to the stage's MLflow run (metric
`episode_return`, step = env steps so far; the noisy final-actor episodes as `expert_return`).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from pipeline_steps.algorithms.sac import SAC
from pipeline_steps.core import tracking
from pipeline_steps.core.episodes import Episode
from pipeline_steps.core.params import CollectSource
from pipeline_steps.envs.dmc import episode_seed, make_env

REPLAY_KEYS = ("obs", "act", "rew", "next_obs", "mask")


def _episode(env, seed: int, policy, on_step=None) -> Episode:
    """One episode; `policy(obs) -> action`; `on_step(obs, action, reward, next_obs, terminated)`
    after every env step."""
    obs, info = env.reset(seed=seed)
    observations, actions, rewards, physics = [obs], [], [], [info["physics"]]
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy(obs), np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if on_step is not None:
            on_step(obs, action, reward, next_obs, terminated)
        observations.append(next_obs)
        actions.append(action)
        rewards.append(reward)
        physics.append(info["physics"])
        obs = next_obs
    return Episode.from_steps(observations, actions, rewards, physics, terminated, truncated, seed)


def collect_replay(env_name: str, cfg: CollectSource, seed: int, compile: bool = False) -> list[Episode]:
    """Run SAC online for `cfg.transitions` env steps (whole episodes) and return every episode it
    played, then the final actor's noisy episodes (`cfg.sac.expert_episodes`)."""
    sac_cfg = cfg.sac
    env = make_env(env_name)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(seed)  # network initialisation
    gen = torch.Generator().manual_seed(seed)  # minibatches and the actor's noise
    rng = np.random.default_rng(seed)  # uniform random actions of the first random_steps
    agent = SAC(obs_dim, act_dim, sac_cfg, compile=compile)
    cap = cfg.transitions + 10_000  # whole episodes may overshoot the budget (dm_control: 1000 steps)
    buffers = {
        "obs": torch.zeros(cap, obs_dim),
        "act": torch.zeros(cap, act_dim),
        "rew": torch.zeros(cap),
        "next_obs": torch.zeros(cap, obs_dim),
        "mask": torch.zeros(cap),
    }
    step = 0

    def policy(obs):
        if step < sac_cfg.random_steps:
            return rng.uniform(-1.0, 1.0, act_dim)
        return agent.act(obs, gen)

    def on_step(obs, action, reward, next_obs, terminated):
        nonlocal step
        for k, v in zip(REPLAY_KEYS, (obs, action, reward, next_obs, 0.0 if terminated else 1.0)):
            buffers[k][step] = torch.as_tensor(v)
        step += 1
        if step >= sac_cfg.random_steps and step % sac_cfg.update_every == 0:
            idx = torch.randint(step, (sac_cfg.batch_size,), generator=gen)
            agent.update({k: v[idx] for k, v in buffers.items()}, gen)
        bar.update(1)

    episodes: list[Episode] = []
    with tqdm(
        total=cfg.transitions, desc=f"collect {env_name} (sac_replay)", unit="step", mininterval=2.0
    ) as bar:
        while step < cfg.transitions:
            episodes.append(_episode(env, episode_seed(seed, len(episodes)), policy, on_step))
            bar.set_postfix(ret=f"{episodes[-1].ret:.1f}", refresh=False)
            tracking.log_step({"step": step, "episode_return": episodes[-1].ret})
        noise = np.random.default_rng([seed, 1])  # the final actor's action noise: its own stream

        def expert(obs):
            a = agent.mean_action(obs) + sac_cfg.expert_noise * noise.normal(size=act_dim)
            return np.clip(a, -1.0, 1.0)

        expert_steps = 0
        for _ in range(sac_cfg.expert_episodes):
            episodes.append(_episode(env, episode_seed(seed, len(episodes)), expert))
            expert_steps += len(episodes[-1].actions)
            bar.set_postfix(expert_ret=f"{episodes[-1].ret:.1f}", refresh=False)
            tracking.log_step({"step": step + expert_steps, "expert_return": episodes[-1].ret})
    env.close()
    return episodes
