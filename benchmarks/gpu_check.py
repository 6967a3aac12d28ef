"""The prepared device check (issue 15): what the paper's scale costs on one GPU, CPU beside it.

Prints, within a wall-clock budget (default 420 s; it skips what would not fit and says so):
  1. ms per update of the critic (IQL Q ensemble + V), CFGRL, AWR and AWF at the default (256x2,
     batch 256) and paper (512x3, batch 1024) sizes: CPU eager beside GPU eager, GPU torch.compile'd
     and, at the paper size, GPU compiled with CUDA graphs (mode 'reduce-overhead') and with TF32
     matmuls (measurements only: the stages compile with the default mode, in full float32);
  2. a 20k-step paper-size CFGRL run of the training stages' own loop (training.fit: minibatches
     sampled on the device from 1M transitions, logging, resume checkpoints) on the GPU;
  3. the projected wall time of one paper-profile env x seed: (critic + CFGRL + AWR + AWF) x 1M steps.

On the device machine (see docs/gpu.md; pydantic travels as wheels, nothing else is needed):
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py
Here (CPU only, a smoke run of the same code): .venv/bin/python benchmarks/gpu_check.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, uninstalled
from bench_updates import AGENTS, SIZES, hardware, measure  # noqa: E402

from pipeline_steps.algorithms.cfgrl import CFGRL  # noqa: E402
from pipeline_steps.core import training  # noqa: E402
from pipeline_steps.core.params import load_params  # noqa: E402

OBS_DIM, ACT_DIM = 24, 6
PAPER_STEPS = 1_000_000


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def fit_timing(p, device: str, steps: int) -> tuple[float, float]:
    """training.fit of a paper-size CFGRL for `steps` steps on 1M synthetic transitions, with the
    stage's logging and resume checkpoints: (seconds, ms per update)."""
    hidden, B = SIZES["paper"]
    cfg = p.train_cfgrl.model_copy(
        update={"hidden": hidden, "batch_size": B, "steps": steps, "log_every": 5000}
    )
    g = torch.Generator().manual_seed(0)
    n = 1_000_000
    data = {
        "observations": torch.randn(n, OBS_DIM, generator=g),
        "actions": torch.rand(n, ACT_DIM, generator=g) * 2 - 1,
        "optimal": torch.rand(n, generator=g) > 0.5,
    }
    torch.manual_seed(0)
    agent = CFGRL(OBS_DIM, ACT_DIM, cfg, compile=p.runtime.compile)
    gen = torch.Generator(device=device).manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        resume = training.Resume(Path(tmp) / "resume.pt", 20_000, {"stage": "gpu_check"})
        start = time.perf_counter()
        _, sec = training.fit(
            agent, data, cfg, gen, f"train_cfgrl paper size on {device}",
            update=lambda b: agent.update(b, gen), resume=resume,
        )  # fmt: skip
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, 1000 * sec


def fmt(x: float | None) -> str:
    return f"{x:10.2f}" if x is not None else f"{'-':>10}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=420.0, help="wall-clock seconds for all of it")
    ap.add_argument("--quick", action="store_true", help="a few steps only (a smoke run on a CPU)")
    ap.add_argument("--params", default=str(Path(__file__).resolve().parents[1] / "params.yaml"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    budget = Budget(args.budget)
    p = load_params(args.params)
    cuda = torch.cuda.is_available()
    print("== gpu_check ==")
    print(f"cpu : {hardware('cpu')}")
    print(f"cuda: {hardware('cuda') if cuda else 'none visible: the GPU columns are not measured'}")
    gpu_steps, cpu_steps = (5, 2) if args.quick else (300, None)

    # 1. ms per update, side by side
    table: dict[tuple[str, str], dict[str, float]] = {}
    plan = [(size, "cpu eager") for size in SIZES]
    if cuda:
        plan += [(size, mode) for size in SIZES for mode in ("cuda eager", "cuda compiled")]
        plan += [("paper", "cuda compiled cudagraphs"), ("paper", "cuda compiled tf32")]
    for size, mode in plan:
        if budget.left() < 0.45 * args.budget:  # keep room for the 20k-step run
            print(f"skipped ({size}, {mode}): out of budget")
            continue
        device = mode.split()[0]
        if device == "cuda":
            steps = gpu_steps
        else:
            steps = cpu_steps or (50 if size == "default" else 10)
        torch.backends.cuda.matmul.allow_tf32 = mode.endswith("tf32")
        t = time.monotonic()
        graphs = "reduce-overhead" if mode.endswith("cudagraphs") else None
        try:  # one device run per task: a failing variant is reported, the rest still runs
            table[(size, mode)] = measure(p, size, device, "compiled" in mode, steps, mode=graphs)
        except Exception as err:  # noqa: BLE001
            print(f"  FAILED ({size}, {mode}): {type(err).__name__}: {err}"[:500], flush=True)
            continue
        print(
            f"  measured ({size}, {mode}) in {time.monotonic() - t:.0f} s ({steps} timed steps)", flush=True
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    modes = list(dict.fromkeys(m for _, m in plan))
    for size in SIZES:
        hidden, B = SIZES[size]
        print(f"\nms per update, {size}: hidden {hidden}, batch {B}")
        print(f"{'':>10}" + "".join(f"{m:>22}" for m in modes))
        for name in AGENTS:
            print(f"{name:>10}" + "".join(f"{fmt(table.get((size, m), {}).get(name)):>22}" for m in modes))

    # 2. the stage loop at the paper size for 20k steps
    device = "cuda" if cuda else "cpu"
    steps = 50 if args.quick else (20_000 if cuda else 200)
    seconds = ms = None
    if budget.left() > 30:
        try:
            seconds, ms = fit_timing(p, device, steps)
            print(
                f"\ntraining.fit, paper-size CFGRL, {steps} steps on {device} (compile={p.runtime.compile}; "
                f"the compile warm-up included): {seconds:.1f} s, {ms:.2f} ms/update"
            )
        except Exception as err:  # noqa: BLE001
            print(f"\ntraining.fit FAILED: {type(err).__name__}: {err}"[:500])
    else:
        print("\ntraining.fit timing skipped: out of budget")

    # 3. projection: one paper-profile env x seed
    best = None
    for mode in ("cuda compiled", "cuda eager", "cpu eager"):
        if ("paper", mode) in table:
            best = (mode, table[("paper", mode)])
            break
    if best:
        mode, row = best
        total_ms = sum(row.values())
        hours = PAPER_STEPS * total_ms / 1000 / 3600
        print(
            f"\nprojected, one paper-profile env x seed ({mode}; critic + CFGRL + AWR + AWF, "
            f"{PAPER_STEPS:,} steps each, updates only, evaluation not included): "
            f"{total_ms:.2f} ms per step of all four = {hours:.2f} h"
        )
        if ms is not None and device == mode.split()[0]:
            print(
                f"  the stage loop's CFGRL {ms:.2f} ms/update against the bare update's {row['cfgrl']:.2f} ms"
            )
    print(f"\nwall time used: {args.budget - budget.left():.0f} s")


if __name__ == "__main__":
    main()
