"""Online SAC, used only to *generate* a mixed-quality offline dataset (its whole replay buffer),
like D4RL's "replay" datasets: early episodes are random, later ones increasingly competent.

Paper: Haarnoja et al., "Soft Actor-Critic Algorithms and Applications" (2018): tanh-squashed
Gaussian actor, twin Q with clipped double-Q targets, learned temperature with target entropy -|A|.
    critic loss  mean_i (Q_i(s,a) - y)^2,  y = r + gamma mask (min_j Q'_j(s',a') - alpha log pi(a'|s')),
                 a' ~ pi(.|s')
    actor loss   mean(alpha log pi(a~|s) - min_i Q_i(s, a~)),  a~ ~ pi(.|s) (reparameterised)
    alpha loss   mean(-log_alpha (log pi(a~|s) - |A|))
ReLU MLPs (cheaper than Mish on CPU; this network never touches the offline algorithms).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline_steps.algorithms.common import ensemble_mlp, mlp, polyak_update
from pipeline_steps.core.episodes import Episode
from pipeline_steps.core.params import CollectSource, SacBehaviour
from pipeline_steps.envs.dmc import episode_seed, make_env

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the usual SAC clip of the actor's log-std


class SAC(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: SacBehaviour):
        super().__init__()
        self.cfg, self.act_dim = cfg, act_dim
        self.actor = mlp(obs_dim, cfg.hidden, 2 * act_dim, layer_norm=False, activation=nn.ReLU)
        self.critic = ensemble_mlp(2, obs_dim + act_dim, cfg.hidden, 1, layer_norm=False, activation=nn.ReLU)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)

    def q(self, net, obs, act) -> torch.Tensor:
        return net(torch.cat([obs, act], -1).expand(2, -1, -1)).squeeze(-1)  # [2, B]

    def pi(self, obs, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised tanh-Gaussian sample and its log-prob: [B, A], [B]."""
        mean, log_std = self.actor(obs).chunk(2, -1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        eps = torch.randn(mean.shape, generator=generator)
        u = mean + eps * log_std.exp()
        a = torch.tanh(u)
        log_prob = (-0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(
            -1
        )  # tanh Jacobian
        return a, log_prob

    def update(self, b: dict[str, torch.Tensor], generator=None) -> None:
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_a, next_logp = self.pi(b["next_obs"], generator)
            next_q = self.q(self.target_critic, b["next_obs"], next_a).min(0).values
            target = b["rew"] + self.cfg.discount * b["mask"] * (next_q - alpha * next_logp)  # [B]
        critic_loss = (self.q(self.critic, b["obs"], b["act"]) - target).square().mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        a, logp = self.pi(b["obs"], generator)
        actor_loss = (alpha * logp - self.q(self.critic, b["obs"], a).min(0).values).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (logp.detach() - self.act_dim)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        polyak_update(self.target_critic, self.critic, self.cfg.polyak)

    @torch.no_grad()
    def act(self, obs: np.ndarray, generator=None) -> np.ndarray:
        a, _ = self.pi(torch.from_numpy(obs)[None], generator)
        return a[0].numpy()


def collect_replay(env_name: str, cfg: CollectSource, seed: int) -> list[Episode]:
    """Run SAC online for `cfg.transitions` env steps and return every episode it played."""
    sac_cfg = cfg.sac
    env = make_env(env_name)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    agent = SAC(obs_dim, act_dim, sac_cfg)
    cap = cfg.transitions + 10_000  # whole episodes may overshoot the budget
    replay = {
        "obs": torch.zeros(cap, obs_dim),
        "act": torch.zeros(cap, act_dim),
        "rew": torch.zeros(cap),
        "next_obs": torch.zeros(cap, obs_dim),
        "mask": torch.zeros(cap),
    }
    episodes, step = [], 0
    with tqdm(
        total=cfg.transitions, desc=f"collect {env_name} (sac_replay)", unit="step", mininterval=2.0
    ) as bar:
        while step < cfg.transitions:
            ep_seed = episode_seed(seed, len(episodes))
            obs, info = env.reset(seed=ep_seed)
            observations, actions, rewards, physics = [obs], [], [], [info["physics"]]
            terminated = truncated = False
            while not (terminated or truncated):
                if step < sac_cfg.random_steps:
                    action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
                else:
                    action = agent.act(obs, gen)
                next_obs, reward, terminated, truncated, info = env.step(action)
                for k, v in (
                    ("obs", obs),
                    ("act", action),
                    ("rew", reward),
                    ("next_obs", next_obs),
                    ("mask", 0.0 if terminated else 1.0),
                ):
                    replay[k][step] = torch.as_tensor(v)
                step += 1
                if step >= sac_cfg.random_steps and step % sac_cfg.update_every == 0:
                    idx = torch.randint(step, (sac_cfg.batch_size,), generator=gen)
                    agent.update({k: v[idx] for k, v in replay.items()}, gen)
                observations.append(next_obs)
                actions.append(action)
                rewards.append(reward)
                physics.append(info["physics"])
                obs = next_obs
            episodes.append(
                Episode.from_steps(observations, actions, rewards, physics, terminated, truncated, ep_seed)
            )
            bar.update(len(actions))
            bar.set_postfix(ret=f"{episodes[-1].ret:.1f}")
    env.close()
    return episodes
