"""ms per gradient update of the IQL critic (+ value), the CFGRL actor and the AWR ensemble, at the
default (256x2, batch 256) and the paper (512x3, batch 1024) sizes, eager and torch.compile'd.

Run by hand on an otherwise idle machine (not in CI):
    .venv/bin/python benchmarks/bench_updates.py [--sizes default paper] [--steps 200]
Reference (method.md / issue 3): the authors' jit-compiled JAX update (critic + value + CFGRL actor
in one step) took 11.3 ms at 256x2 / batch 256 and 237 ms at 512x3 / batch 1024 on this machine
type; a plain torch version ~17 ms (critic 10.6 + actor 6.1).
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.config import load_params

SIZES = {"default": ([256, 256], 256), "paper": ([512, 512, 512], 1024)}
JAX_MS = {"default": 11.3, "paper": 237.0}
OBS_DIM, ACT_DIM = 24, 6  # walker


def batch(B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "observations": torch.randn(B, OBS_DIM, generator=g),
        "next_observations": torch.randn(B, OBS_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g) * 2 - 1,
        "rewards": torch.rand(B, generator=g),
        "masks": torch.ones(B),
        "optimal": torch.rand(B, generator=g) > 0.5,
        "advantages": torch.randn(B, generator=g),
    }


def ms_per_update(agent, batches, steps: int, warmup: int) -> float:
    for i in range(warmup):
        agent.update(batches[i % len(batches)])
    start = time.perf_counter()
    for i in range(steps):
        agent.update(batches[i % len(batches)])
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=list(SIZES))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    p = load_params(args.params)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; obs {OBS_DIM}, action {ACT_DIM}")
    for size in args.sizes:
        hidden, B = SIZES[size]
        g = torch.Generator().manual_seed(0)
        batches = [batch(B, g) for _ in range(8)]
        steps = args.steps if size == "default" else max(20, args.steps // 10)
        row = {}
        for compile_ in (False, True):
            torch.manual_seed(0)
            agents = {
                "critic": IQL(
                    OBS_DIM, ACT_DIM, p.label.model_copy(update={"hidden": hidden, "batch_size": B}), compile_
                ),
                "cfgrl": CFGRL(
                    OBS_DIM,
                    ACT_DIM,
                    p.train_cfgrl.model_copy(update={"hidden": hidden, "batch_size": B}),
                    compile_,
                ),
                "awr": AWR(
                    OBS_DIM,
                    ACT_DIM,
                    p.train_awr.model_copy(update={"hidden": hidden, "batch_size": B}),
                    compile_,
                ),
            }
            for name, agent in agents.items():
                row[(name, compile_)] = ms_per_update(agent, batches, steps, warmup=30 if compile_ else 10)
        print(f"\n{size}: hidden {hidden}, batch {B}  (ms per update; {steps} timed steps)")
        print(f"{'':>28}{'eager':>10}{'compiled':>10}")
        for name in ("critic", "cfgrl", "awr"):
            extra = f" ({len(p.train_awr.inv_betas)} policies, one per 1/beta)" if name == "awr" else ""
            print(f"{name + extra:>28}{row[(name, False)]:>10.2f}{row[(name, True)]:>10.2f}")
        for c in (False, True):
            total = row[("critic", c)] + row[("cfgrl", c)]
            print(
                f"critic + value + CFGRL actor, {'compiled' if c else 'eager'}: {total:.2f} ms "
                f"= {total / JAX_MS[size]:.2f}x the JAX reference ({JAX_MS[size]} ms)"
            )


if __name__ == "__main__":
    main()
