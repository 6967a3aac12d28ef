"""ms per gradient update of every goal-conditioned policy (params GC_ALGOS: the flat CFGRL, flow GCBC and
Gaussian GCBC, and the hierarchical HCFGRL, flow HGCBC and Gaussian HGCBC), at train_gc's sizes of a
params file (default: profiles/gc_large.yaml, 256x3, batch 256), eager and torch.compile'd, on the CPU.

Run by hand on an otherwise idle machine (not in CI):
    .venv/bin/python benchmarks/bench_gc_updates.py [--params profiles/gc_large.yaml] [--steps 300]

Batches are random tensors of pointmaze's sizes (observation, goal and action 2-d); the update's cost does
not depend on their values. Prints the CPU model: compare numbers measured side by side, in one run.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from bench_updates import hardware, ms_per_update  # benchmarks/, the script's directory

from pipeline_steps.algorithms import gc_policies
from pipeline_steps.core.params import GC_ALGOS, load_params

OBS_DIM = GOAL_DIM = ACT_DIM = 2  # pointmaze: xy position, xy goal, xy force


def batch(B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """What train_gc's HindsightSampler hands the policies (the hierarchical keys too)."""
    return {
        "observations": torch.randn(B, OBS_DIM, generator=g),
        "goals": torch.randn(B, GOAL_DIM, generator=g),
        "actions": torch.rand(B, ACT_DIM, generator=g) * 2 - 1,
        "subgoals": torch.randn(B, GOAL_DIM, generator=g),
        "low_goals": torch.randn(B, GOAL_DIM, generator=g),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="profiles/gc_large.yaml")
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    cfg = load_params(args.params).train_gc
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # as the stages run (runtime.threads: 1)
    g = torch.Generator().manual_seed(0)
    batches = [batch(cfg.batch_size, g) for _ in range(8)]
    print(f"cpu: {hardware('cpu')}")
    print(f"train_gc of {args.params}: hidden {cfg.hidden}, batch {cfg.batch_size}")
    print(f"ms per update, {args.steps} timed steps, one torch thread")
    print(f"{'':>12}{'eager':>10}{'compiled':>10}")
    for algo in GC_ALGOS:
        row = []
        for compile_ in (False, True):
            torch.manual_seed(0)
            agent = gc_policies.build(algo, OBS_DIM, GOAL_DIM, ACT_DIM, cfg, compile=compile_)
            row.append(ms_per_update(agent, batches, args.steps, 30 if compile_ else 10, "cpu"))
        print(f"{algo:>12}{row[0]:>10.2f}{row[1]:>10.2f}")


if __name__ == "__main__":
    main()
