"""The batched w-sweep against the authors' sequential loop and against the two floors no
evaluator can beat, all on the same checkpoint and in one run.

    .venv/bin/python benchmarks/bench_eval.py --env cheetah-run [--checkpoint PATH]
        [--rounds 3] [--seq-episodes 9]

- batched:    every (w, episode) pair in lockstep (pipeline_steps.rl.evaluate), one network call per
              flow step for all envs and both guidance branches
- sequential: the authors' loop: one episode and one w at a time, two forward passes per flow step
              (timed on --seq-episodes episodes spread over the w list, split over the rounds, and
              scaled to the sweep's episode count: its cost is linear in episodes, independent of w)
- physics floor: the same envs built, reset and stepped with random actions, nothing else
- network floor: the sampler's network calls alone (flow_steps per control step, at the batched size)
All four are timed in --rounds interleaved rounds (batched, physics, network, sequential,
batched, ...); each ratio uses each measurement's fastest round (timeit's convention: on a
shared or virtual machine the slower rounds measure interference, not the code), and every round is
printed. Torch uses the pipeline's thread setting (runtime.threads of --params).
Prints the wall times and the ratios sequential / batched and batched / (physics + network).
Without a checkpoint it uses a freshly initialised policy of the params' size (same cost per call).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pipeline_steps.algorithms.cfgrl import CFGRL, NULL, POSITIVE
from pipeline_steps.core import paths
from pipeline_steps.core.device import setup_torch
from pipeline_steps.core.params import load_params
from pipeline_steps.core.rollouts import cfgrl_act_fn, eval_reset_seed, run_lockstep
from pipeline_steps.envs.dmc import make_env


@torch.no_grad()
def authors_sample(agent: CFGRL, obs: torch.Tensor, w: float, noise: torch.Tensor) -> torch.Tensor:
    """The reference implementation's sampler: two separate forward passes per flow step."""
    x, n = noise, agent.cfg.flow_steps
    B = len(obs)
    for i in range(n):
        t = torch.full((B,), i / n)
        v_uncond = agent.velocity(obs, x, t, torch.full((B,), NULL))
        v_opt = agent.velocity(obs, x, t, torch.full((B,), POSITIVE))
        x = x + (v_uncond + w * (v_opt - v_uncond)) / n
    return x.clamp(-1, 1)


def physics_floor(env_name: str, seeds: list[int], steps: int) -> float:
    """Build, reset and step the same N envs with uniform random actions: the env work any lockstep
    evaluator of N episodes must do (building N MuJoCo models from XML is ~70 ms each for walker)."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    envs = [make_env(env_name) for _ in seeds]
    for env, s in zip(envs, seeds):
        env.reset(seed=s)
    act_dim = envs[0].action_space.shape[0]
    for _ in range(steps):
        for env, a in zip(envs, rng.uniform(-1, 1, (len(envs), act_dim)).astype(np.float32)):
            env.step(a)
    return time.perf_counter() - start


@torch.no_grad()
def network_floor(agent: CFGRL, n_envs: int, steps: int) -> float:
    B = 2 * n_envs  # both guidance branches
    obs, label = agent.branch_inputs(torch.randn(n_envs, agent.obs_norm.mean.shape[0]))  # [B, O], [B]
    x = torch.randn(B, agent.act_dim)
    ts = [torch.full((B,), i / agent.cfg.flow_steps) for i in range(agent.cfg.flow_steps)]
    start = time.perf_counter()
    for _ in range(steps):
        for t in ts:
            agent.velocity(obs, x, t, label)
    return time.perf_counter() - start


def sequential(agent: CFGRL, env_name: str, reset_seeds: list[int], ws: np.ndarray) -> float:
    """Seconds per episode of the authors' loop over these episodes, one at a time."""
    start = time.perf_counter()
    for i, (seed, w) in enumerate(zip(reset_seeds, ws)):
        gen = torch.Generator().manual_seed(i)
        run_lockstep(
            env_name,
            [seed],
            lambda o, idx, w=float(w), gen=gen: authors_sample(
                agent, o, w, torch.randn(1, agent.act_dim, generator=gen)
            ),
        )
    return (time.perf_counter() - start) / len(reset_seeds)


def fmt(times: list[float]) -> str:
    return f"{min(times):8.1f} s   (rounds: {', '.join(f'{t:.1f}' for t in times)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="cheetah-run")
    ap.add_argument(
        "--checkpoint", default=None, help="default: data/train_cfgrl/<env>/seed0/policy.pt if present"
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all four measurements")
    ap.add_argument("--seq-episodes", type=int, default=9, help="episodes of the sequential loop")
    args = ap.parse_args()
    for name in ("rounds", "seq_episodes"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    p = load_params(args.params)
    setup_torch(0, p.runtime)
    ckpt = args.checkpoint or paths.cfgrl_dir(args.env, p.seeds[0]) / "policy.pt"
    env = make_env(args.env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    try:
        agent, source = CFGRL.from_checkpoint(ckpt), str(ckpt)
    except FileNotFoundError:
        agent, source = CFGRL(obs_dim, act_dim, p.train_cfgrl).eval(), "fresh init (no checkpoint)"
    ws, n_ep = p.evaluate.guidance_ws, p.evaluate.episodes
    n_envs = len(ws) * n_ep
    reset_seeds = [eval_reset_seed(0, e) for e in range(n_ep)] * len(ws)
    w_of_env = np.repeat(ws, n_ep)
    print(
        f"{args.env}: policy {source}; {len(ws)} w x {n_ep} episodes = {n_envs} episodes; "
        f"{agent.cfg.flow_steps} flow steps; torch {torch.get_num_threads()} threads"
    )

    # k sequential episodes spread over the w list (env i has w = w_of_env[i]), split over the rounds
    k = min(args.seq_episodes, n_envs)
    seq_envs = np.array_split(np.linspace(0, n_envs - 1, k).round().astype(int), args.rounds)
    t_batched, t_phys, t_net, t_seq = [], [], [], []
    for r in range(args.rounds):
        start = time.perf_counter()
        lengths = run_lockstep(
            args.env, reset_seeds, cfgrl_act_fn(agent, w_of_env, list(range(n_envs)))
        ).lengths
        t_batched.append(time.perf_counter() - start)
        steps = int(lengths.max())
        t_phys.append(physics_floor(args.env, reset_seeds, steps))
        t_net.append(network_floor(agent, n_envs, steps))
        if len(seq_envs[r]):
            t_seq.append(
                sequential(agent, args.env, [reset_seeds[i] for i in seq_envs[r]], w_of_env[seq_envs[r]])
                * n_envs
            )

    b, floors = min(t_batched), min(t_phys) + min(t_net)
    print(f"batched sweep         {fmt(t_batched)}")
    print(f"sequential (authors') {fmt(t_seq)}   ({k} episodes in {len(t_seq)} rounds, scaled to {n_envs})")
    print(f"physics floor         {fmt(t_phys)}   (build {n_envs} envs, {steps} steps, random actions)")
    calls = f"{steps} x {agent.cfg.flow_steps} calls at batch {2 * n_envs}"
    print(f"network floor         {fmt(t_net)}   ({calls})")
    print(f"sequential / batched          = {min(t_seq) / b:6.1f}x   (target >= 20x)")
    print(f"batched / (physics + network) = {b / floors:6.2f}    (target <= 1.3)")
    per_round = [f"{tb / (tp + tn):.2f}" for tb, tp, tn in zip(t_batched, t_phys, t_net)]
    print(f"  the same ratio within each round: {', '.join(per_round)}")


if __name__ == "__main__":
    main()
