"""ms per gradient update of the IQL critic (+ value), the CFGRL actor, the AWR ensemble and the
advantage-weighted flow ensemble (AWF), at the
default (256x2, batch 256) and the paper (512x3, batch 1024) sizes, eager and torch.compile'd, on
each device asked for.

Run by hand on an otherwise idle machine (not in CI):
    .venv/bin/python benchmarks/bench_updates.py [--sizes default paper] [--devices cpu cuda] [--steps 200]

It prints absolute times with the CPU / GPU model and no ratio against a figure taken elsewhere:
speeds differ 2-3x between CPU types of the same kind (on an AMD EPYC 2.0 GHz machine the authors'
jit-compiled JAX update took 28.5 ms at 256x2 against 11.3 ms on the Xeon the old ratio used), so
compare only numbers measured side by side, in one run, on one machine.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import torch

from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.core.params import Params, load_params

SIZES = {"default": ([256, 256], 256), "paper": ([512, 512, 512], 1024)}
OBS_DIM, ACT_DIM = 24, 6  # walker
AGENTS = ("critic", "cfgrl", "awr", "awf")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def hardware(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{cpu_model()} ({torch.get_num_threads()} torch threads, torch {torch.__version__})"


def batch(B: int, g: torch.Generator, device: str) -> dict[str, torch.Tensor]:
    b = {
        "observations": torch.randn(B, OBS_DIM, generator=g),
        "next_observations": torch.randn(B, OBS_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g) * 2 - 1,
        "rewards": torch.rand(B, generator=g),
        "masks": torch.ones(B),
        "optimal": torch.rand(B, generator=g) > 0.5,
        "advantages": torch.randn(B, generator=g),
    }
    return {k: v.to(device) for k, v in b.items()}


def make_agent(name: str, p: Params, hidden: list[int], B: int, compile_: bool, device: str):
    over = {"hidden": hidden, "batch_size": B}
    if name == "critic":
        agent = IQL(OBS_DIM, ACT_DIM, p.label.model_copy(update=over), compile_)
    elif name == "cfgrl":
        agent = CFGRL(OBS_DIM, ACT_DIM, p.train_cfgrl.model_copy(update=over), compile_)
    elif name == "awr":
        agent = AWR(OBS_DIM, ACT_DIM, p.train_awr.model_copy(update=over), compile_)
    else:  # train_awf uses train_cfgrl's velocity net
        agent = AWF(OBS_DIM, ACT_DIM, p.train_cfgrl.model_copy(update=over), p.train_awf, compile_)
    return agent.to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def ms_per_update(agent, batches, steps: int, warmup: int, device: str) -> float:
    for i in range(warmup):
        agent.update(batches[i % len(batches)])
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        agent.update(batches[i % len(batches)])
    sync(device)
    return 1000 * (time.perf_counter() - start) / steps


def measure(
    p: Params, size: str, device: str, compile_: bool, steps: int, agents=AGENTS, mode: str | None = None
) -> dict[str, float]:
    """{agent: ms per update} at one size on one device. `mode` (e.g. 'reduce-overhead': CUDA graphs)
    recompiles the loss graph with that torch.compile mode, to measure it before the stages adopt it."""
    hidden, B = SIZES[size]
    g = torch.Generator().manual_seed(0)
    batches = [batch(B, g, device) for _ in range(8)]
    torch.manual_seed(0)
    out = {}
    for name in agents:
        agent = make_agent(name, p, hidden, B, compile_, device)
        if mode:
            step = agent.gradient_step
            step.compiled = torch.compile(step.loss_fn, fullgraph=True, mode=mode)
        out[name] = ms_per_update(agent, batches, steps, 30 if compile_ else 10, device)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=list(SIZES))
    ap.add_argument("--devices", nargs="+", default=["cpu"], choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    p = load_params(args.params)
    warnings.filterwarnings("ignore")
    print(
        f"obs {OBS_DIM}, action {ACT_DIM}; AWR trains {len(p.train_awr.inv_betas)} policies and AWF "
        f"{len(p.train_awf.inv_betas)} flows (one per 1/beta)"
    )
    for device in args.devices:
        print(f"\n{device}: {hardware(device)}")
        for size in args.sizes:
            hidden, B = SIZES[size]
            steps = args.steps if size == "default" or device == "cuda" else max(20, args.steps // 10)
            rows = {c: measure(p, size, device, c, steps) for c in (False, True)}
            print(f"  {size}: hidden {hidden}, batch {B}  (ms per update; {steps} timed steps)")
            print(f"  {'':>24}{'eager':>10}{'compiled':>10}")
            for name in AGENTS:
                print(f"  {name:>24}{rows[False][name]:>10.2f}{rows[True][name]:>10.2f}")
            for c in (False, True):
                total = rows[c]["critic"] + rows[c]["cfgrl"]
                print(f"  critic + value + CFGRL actor, {'compiled' if c else 'eager'}: {total:.2f} ms")


if __name__ == "__main__":
    main()
