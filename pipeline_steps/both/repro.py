"""`make repro`: `dvc repro` with the independent env / seed branches running side by side.

`dvc repro` runs one stage at a time. While a stage's command runs, DVC releases the repository
lock (it holds it only around each stage's status check and bookkeeping), so several
`dvc repro <targets>` processes may run at once on stages that write different outputs;
`dvc --wait-for-lock` makes them queue for that lock instead of failing. This driver runs the DAG in waves:
  0. the params stage (data/params/<key>.json, which every stage reads: pipeline_steps/both/params_slices.py);
  1. dataset@<env> for every env and gc_dataset@<env> for every goal-conditioned env;
  2. every (env, seed) branch: its BRANCH_STAGES (label, the four trainings, both evaluations), and every
     (goal-conditioned env, seed) branch: its GC_BRANCH_STAGES (three trainings, evaluation), upstream first,
     with `--single-item`: DVC write-locks the outputs of every stage it checks, so two branches
     checking their shared dataset@<env> at once would fail; wave 1 has brought it up to date;
  3. a plain `dvc repro`: the plots, the aggregate, and anything the waves left
with at most `jobs` processes at once. Every stage uses `runtime.threads` torch threads, so jobs
default to cores // threads, plus one when both halves run on one thread per stage (repro_jobs);
threads = 0 (torch's default: all cores) gives one job. Because a
stage's numbers depend on its thread count but not on what runs beside it, the outputs and
dvc.lock equal those of a plain `dvc repro` (tests/test_workflow.py checks this on the tiny2 profile).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import typer

from pipeline_steps.core import tracking
from pipeline_steps.core.params import GC_ALGOS, Params, load_params


class ReproError(RuntimeError):
    """A `dvc repro` process of some branch failed."""


# dvc.yaml's per-(env, seed) stages (its `matrix` stages), each after the ones it reads
BRANCH_STAGES = (
    "label",
    "train_cfgrl",
    "train_awr",
    "train_awf",
    "train_fql",
    "evaluate",
    "evaluate_extraction",
)
GC_BRANCH_STAGES = ("train_gc", "gc_evaluate")  # train_gc: one stage per algo (its matrix's last key)


def waves(params: Params) -> list[list[list[str]]]:
    """The `dvc repro` argument lists of waves 0-2; the lists of a wave write disjoint outputs."""
    return [
        [["params"]],
        [["--single-item", f"dataset@{env}"] for env in params.envs]
        + [["--single-item", f"gc_dataset@{env}"] for env in params.gc_envs],
        [
            ["--single-item", *(f"{stage}@{env}-{seed}" for stage in BRANCH_STAGES)]
            for env in params.envs
            for seed in params.seeds
        ]
        + [
            ["--single-item", *(f"train_gc@{env}-{seed}-{a}" for a in GC_ALGOS), f"gc_evaluate@{env}-{seed}"]
            for env in params.gc_envs
            for seed in params.gc_seeds
        ],
    ]


def default_jobs(threads: int) -> int:
    """Branches side by side: one per `threads` cores (one in all when threads = 0 takes every core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // threads) if threads else 1


# what `dvc repro` prints after every stage to suggest git add / autostage / push: said once, at the end
DVC_HINTS = (
    "To track the changes with git, run:",
    "\tgit add ",
    "To enable auto staging, run:",
    "\tdvc config core.autostage true",
    "Use `dvc push` to send your updates to remote storage.",
)


PROGRESS_EVERY = 30.0  # seconds between two progress lines of one `dvc repro` process
_PRINT = threading.Lock()  # one whole line at a time, whichever process it comes from


def output_lines(stream, every: float = PROGRESS_EVERY, clock=time.monotonic):
    """The lines of a process's merged stdout / stderr, each whole: a progress bar's redraws (text ended
    by a carriage return, as tqdm writes them) become lines of their own, at most one per `every`
    seconds (and its last one), so the bars of processes side by side never share a line."""
    buf, last_shown, pending = b"", -float("inf"), None
    while chunk := stream.read1(1 << 16):
        buf += chunk
        while (cut := min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)) >= 0:
            text, sep, buf = buf[:cut].decode(errors="replace"), buf[cut : cut + 1], buf[cut + 1 :]
            if sep == b"\r":  # a redraw: shown now if due, else kept in case it is the bar's last one
                if text.strip():
                    now = clock()
                    if now - last_shown >= every:
                        last_shown, pending = now, None
                        yield text
                    else:
                        pending = text
                continue
            if pending is not None and not text.strip():
                yield pending  # the bar closed with its final redraw
            pending = None
            yield text
    if pending is not None:
        yield pending
    if buf:
        yield buf.decode(errors="replace")


def dvc_repro(args: list[str]) -> int:
    """`dvc repro args`, its output passed on line by line (progress bars as whole lines, at most one per
    PROGRESS_EVERY seconds) without DVC's git hints (and blank lines)."""
    cmd = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in output_lines(proc.stdout):
            if line.strip() and not line.startswith(DVC_HINTS):
                with _PRINT:
                    print(line, flush=True)
    return proc.returncode


def git_hint() -> str | None:
    """The one `git add` hint for the end of a run, if dvc.lock (or a .gitignore DVC keeps) changed."""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "dvc.lock", "*.gitignore"], capture_output=True, text=True
    )
    files = [line[3:] for line in proc.stdout.splitlines()] if proc.returncode == 0 else []
    return f"to record this run in git: git add {' '.join(files)}" if files else None


def repro(params: Params, jobs: int) -> None:
    """Bring every stage up to date, `jobs` branches at a time; a failed branch lets the others of its
    wave finish (their outputs are valid and cached), then stops with ReproError naming it."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs > 1:
        tracking.init_store()  # one schema migration before parallel stages open the SQLite DB
        for wave in waves(params):
            with ThreadPoolExecutor(min(jobs, len(wave))) as pool:
                codes = list(pool.map(dvc_repro, wave))
            failed = [args[-1] for args, code in zip(wave, codes, strict=True) if code]
            if failed:
                raise ReproError(f"dvc repro failed up to {', '.join(failed)} (see its output above)")
    if dvc_repro([]):
        raise ReproError("dvc repro failed (see its output above)")


def repro_jobs(params: Params) -> int:
    """make repro's processes at once: default_jobs, plus one where both halves run and each stage takes
    one thread. The goal-conditioned branch (a few minutes) then runs beside the offline-RL branches
    instead of after them, with every core busy to the end (three processes share two cores; a stage's
    numbers depend on its thread count, not on what runs beside it)."""
    extra = params.runtime.threads == 1 and bool(params.envs) and bool(params.gc_envs)
    return default_jobs(params.runtime.threads) + extra


def main(
    jobs: int = typer.Option(0, help="branches side by side (0: repro_jobs, cores // runtime.threads + 1)"),
) -> None:
    """Run `dvc repro` with the env / seed branches side by side (on params.yaml, as dvc.yaml does)."""
    try:
        p = load_params("params.yaml")  # a ParamsError lists the bad keys, without a traceback
        n = jobs or repro_jobs(p)
        threads = p.runtime.threads or "all"
        print(f"repro: {n} branch(es) at a time, {threads} torch thread(s) per stage", flush=True)
        repro(p, n)
        if hint := git_hint():
            print(hint)
    except (ReproError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


if __name__ == "__main__":
    typer.run(main)
