"""Evaluation rollouts: many episodes stepped in lockstep with one policy call per step, shared by the
evaluate and render stages and by the periodic probe of the training stages.

`run_lockstep` resets N envs with given seeds, calls `act(obs [N, O]) -> actions [N, A]` once per
control step for all N envs at once (so the policy batches across every (w, episode) pair), and
steps every env that has not finished. `run_sequential` is the plain reference loop: one episode at
a time through the same code path, for the equality test and the benchmark.

Evaluation seeds depend on (seed, episode) only, so every setting (w, 1/beta) sees the same start states
and flow noise (common random numbers); `NoiseStreams` gives each env its own noise generator, so a
batched sweep returns what a sequential loop over the same seeds returns. The act functions batch a
CFGRL / AWR / advantage-weighted-flow agent over the running envs (any agent with `sample_actions`,
`act_dim` and parameters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from pipeline_steps.core.device import module_device
from pipeline_steps.envs.dmc import make_env

ActFn = Callable[[torch.Tensor, np.ndarray], torch.Tensor]  # (obs [N, O], env indices [N]) -> [N, A]


_RESET_TAG, _NOISE_TAG, _EXTRA_TAG = 7, 8, 9  # evaluation seeds apart from the dataset's collection seeds


def eval_reset_seed(seed: int, episode: int) -> int:
    """Start-state seed of evaluation episode `episode` (< 2**32; independent of w and method)."""
    return int(np.random.SeedSequence([_RESET_TAG, seed, episode]).generate_state(1, np.uint32)[0])


def eval_noise_seed(seed: int, episode: int) -> int:
    """Seed of the flow noise of evaluation episode `episode`: shared by every w (common random numbers)."""
    return int(np.random.SeedSequence([_NOISE_TAG, seed, episode]).generate_state(1, np.uint32)[0])


def eval_extra_noise_seed(seed: int, episode: int) -> int:
    """Seed of the extra noise of evaluation episode `episode` (rejection sampling's other candidates and
    its resampling draw), beside eval_noise_seed's stream (candidate 0's noise, shared with CFGRL)."""
    return int(np.random.SeedSequence([_EXTRA_TAG, seed, episode]).generate_state(1, np.uint32)[0])


class NoiseStreams:
    """One stream of N(0, I) flow noise per env, drawn from its own (CPU) generator in blocks of `block`
    control steps (one randn call per env per block instead of one per env per step) and kept on
    `device` (one copy per block); env i's sequence is the same whichever envs run beside it, and on
    whichever device the policy runs."""

    def __init__(self, seeds: list[int], act_dim: int, block: int = 1000, device="cpu"):
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.act_dim, self.block, self.device = act_dim, block, torch.device(device)
        self.noise = torch.empty(len(seeds), 0, act_dim, device=self.device)  # [N, drawn steps, A]
        self.pos = np.zeros(len(seeds), np.int64)  # next unused step per env

    def next(self, idx: np.ndarray) -> torch.Tensor:
        """The next noise vector of each env in idx: [n, A], on the device."""
        if len(idx) and self.pos[idx].max() >= self.noise.shape[1]:
            more = torch.stack([torch.randn(self.block, self.act_dim, generator=g) for g in self.gens])
            self.noise = torch.cat([self.noise, more.to(self.device)], 1)
        flat = torch.as_tensor(idx * self.noise.shape[1] + self.pos[idx], device=self.device)  # [n]
        self.pos[idx] += 1
        return self.noise.reshape(-1, self.act_dim)[flat]


# The act functions run the policy on its device: the running envs' observations go there in one copy
# per control step, their actions come back in one; the physics stays on the CPU.
def cfgrl_act_fn(agent, ws: np.ndarray, noise_seeds: list[int]) -> ActFn:
    """Env i samples with guidance w = ws[i] and its own noise stream (seeded noise_seeds[i])."""
    dev = module_device(agent)
    streams = NoiseStreams(noise_seeds, agent.act_dim, device=dev)
    w_all = torch.as_tensor(ws, dtype=torch.float32)

    def act(obs: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        w = w_all[idx][:, None]  # [n, 1]
        obs_w = torch.cat([obs, w], 1).to(dev)  # [n, O + 1]: one copy per step
        return agent.sample_actions(obs_w[:, :-1], obs_w[:, -1], noise=streams.next(idx)).cpu()

    return act


def awr_act_fn(agent, policy_index: np.ndarray) -> ActFn:
    """Env i acts with the mean action of AWR policy policy_index[i]."""
    dev = module_device(agent)

    def act(obs: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        actions = agent.sample_actions(obs.to(dev)).cpu()  # [K, n, A]
        return actions[policy_index[idx], torch.arange(len(idx))]

    return act


def awf_act_fn(agent, policy_index: np.ndarray, noise_seeds: list[int]) -> ActFn:
    """Env i acts with policy policy_index[i] of an ensemble that maps noise to actions (AW-flow's velocity
    nets, FQL's one-step policies: sample_actions(obs, noise) -> [K, n, A]) and its own noise stream."""
    dev = module_device(agent)
    streams = NoiseStreams(noise_seeds, agent.act_dim, device=dev)

    def act(obs: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        actions = agent.sample_actions(obs.to(dev), noise=streams.next(idx)).cpu()  # [K, n, A]
        return actions[policy_index[idx], torch.arange(len(idx))]

    return act


def rejection_act_fn(
    sampler, counts: np.ndarray, alphas: np.ndarray, noise_seeds: list[int], extra_seeds: list[int]
) -> ActFn:
    """Env i acts with rejection sampling over counts[i] flow-BC candidates, argmax (alphas[i] = inf) or
    resampling at alphas[i]; candidate 0 takes env i's CFGRL noise stream (so N = 1 is flow BC), the
    others and the resampling draw take a second stream (seeded extra_seeds[i])."""
    dev = module_device(sampler.bc)
    streams = NoiseStreams(noise_seeds, sampler.act_dim, device=dev)
    width = (int(counts.max()) - 1) * sampler.act_dim + 1
    extra = NoiseStreams(extra_seeds, width, block=100, device=dev)  # smaller blocks: wide rows
    counts_all, alphas_all = torch.as_tensor(counts), torch.as_tensor(alphas, dtype=torch.float32)

    def act(obs: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        args = (counts_all[idx].to(dev), alphas_all[idx].to(dev), streams.next(idx), extra.next(idx))
        return sampler.sample_actions(obs.to(dev), *args).cpu()

    return act


def training_probe(env: str, seed: int, act_for: Callable[[int], ActFn], names: list[str], episodes: int):
    """A periodic evaluation during training: at each call, len(names) settings x `episodes` episodes in
    one lockstep batch, from the final evaluation's first start states (episodes 0..), and their mean
    returns as log columns eval/return/<name>. act_for(episodes) builds the batch's act function (env i:
    setting i // episodes) from the agent as it is at that step. Draws no number from the training
    generator, so training is the same with it on or off."""
    reset_seeds = [eval_reset_seed(seed, e) for e in range(episodes)] * len(names)

    def probe(step: int) -> dict[str, float]:
        with torch.no_grad():
            returns = run_lockstep(env, reset_seeds, act_for(episodes)).returns
        means = returns.reshape(len(names), episodes).mean(1)
        return {f"eval/return/{name}": float(m) for name, m in zip(names, means)}

    return probe


def cfgrl_probe(env: str, seed: int, agent, ws: list[float], episodes: int):
    """training_probe of CFGRL at each w of `ws` (with the final evaluation's flow noise seeds)."""
    noise = [eval_noise_seed(seed, e) for e in range(episodes)] * len(ws)
    return training_probe(
        env, seed, lambda n: cfgrl_act_fn(agent, np.repeat(ws, n), noise), [f"w={w:g}" for w in ws], episodes
    )


def awr_probe(env: str, seed: int, agent, episodes: int):
    """training_probe of every AWR policy (one per 1/beta)."""
    k = len(agent.cfg.inv_betas)
    names = [f"inv_beta={b:g}" for b in agent.cfg.inv_betas]
    return training_probe(env, seed, lambda n: awr_act_fn(agent, np.repeat(np.arange(k), n)), names, episodes)


class Rollouts(NamedTuple):
    returns: np.ndarray  # [N] float64: sum of rewards
    lengths: np.ndarray  # [N] int64: control steps
    successes: (
        np.ndarray
    )  # [N] float64: info["success"] at the last step (OGBench), NaN where the env has none


def run_lockstep(
    env_name: str,
    reset_seeds: list[int],
    act: ActFn,
    max_steps: int | None = None,
    desc: str = "",
    on_step: Callable[[list, int, np.ndarray], None] | None = None,
):
    """Returns Rollouts (returns, lengths, successes), one entry per env. `act` sees only the
    still-running envs and their indices, so its per-env state (noise generators, w, policy index)
    stays aligned. With a `desc`, a progress bar counts the control steps of the batch (and the
    episodes still running).
    `on_step(envs, t, indices)` is called after the reset (t = 0) and after each control step t with
    the envs just stepped (e.g. to render them). Episodes end at the env's own limit, or at max_steps
    control steps where that is given and not 0 (params' 0 = the env's limit, as in gc_evaluate)."""
    envs = [make_env(env_name) for _ in reset_seeds]
    n = len(envs)
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, reset_seeds)])  # [N, O]
    returns, lengths, successes = np.zeros(n), np.zeros(n, np.int64), np.full(n, np.nan)
    running = np.arange(n)
    if on_step:
        on_step(envs, 0, running)
    t = 0
    bar = tqdm(total=max_steps or None, desc=desc, unit="step", mininterval=2.0, disable=not desc)
    while len(running):
        actions = act(torch.from_numpy(obs[running]), running).numpy()  # [n_running, A]
        still = []
        for j, i in enumerate(running):
            obs[i], reward, terminated, truncated, info = envs[i].step(actions[j])
            returns[i] += reward
            lengths[i] += 1
            if "success" in info:
                successes[i] = float(info["success"])
            if not (terminated or truncated or (max_steps and lengths[i] >= max_steps)):
                still.append(i)
        t += 1
        if on_step:
            on_step(envs, t, running)
        running = np.asarray(still, np.int64)
        bar.update(1)
        bar.set_postfix({"episodes running": len(running)}, refresh=False)
    bar.close()
    for env in envs:
        env.close()
    return Rollouts(returns, lengths, successes)


def run_sequential(env_name: str, reset_seeds: list[int], act: ActFn, max_steps: int | None = None):
    """The reference: the same episodes one at a time (batch of one)."""
    results = [
        run_lockstep(env_name, [s], lambda o, idx, i=i: act(o, np.array([i])), max_steps)
        for i, s in enumerate(reset_seeds)
    ]
    return Rollouts(*(np.concatenate(parts) for parts in zip(*results)))
