"""One file per params key a stage reads (data/params/<key>.json), rewritten only when its value changes.

Both drivers decide what to rerun from these files, so a params edit reruns exactly the affected jobs
whichever driver made the outputs:
  - DVC: its `params` stage writes them (outs with `persist: true` and `cache: false`, so DVC neither
    deletes nor re-links them: an unchanged file keeps its content and mtime, however often the stage
    runs) and every stage lists the slices of its `params:` keys as deps;
  - Snakemake: the Snakefile writes them when it is parsed and every rule takes the same slices as
    inputs, so an edited key makes its slice newer than the outputs of the jobs that read it. Outputs
    made by DVC carry no Snakemake metadata, but they do have mtimes: that is all this needs.
(The other direction: after a run, Snakemake records its jobs in dvc.lock with `dvc commit`; see
workflow/rules/common.smk.)

    python -m pipeline_steps.both.params_slices [--params FILE]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from pipeline_steps.core import stage
from pipeline_steps.core.params import Params

SLICE_DIR = Path("data/params")
# every key a stage of dvc.yaml lists under `params:` (tests/test_workflow.py checks the two agree)
KEYS = (
    "envs",
    "gc_envs",
    "seeds",
    "gc_seeds",
    "runtime",
    "dataset",
    "label",
    "train_cfgrl",
    "train_cfgrl.hidden",
    "train_cfgrl.layer_norm",
    "train_cfgrl.lr",
    "train_cfgrl.time_sampling",
    "train_cfgrl.flow_steps",
    "train_cfgrl.time_emb_dim",
    "train_cfgrl.normalize_obs",
    "train_awr",
    "train_awf",
    "train_fql",
    "extraction",
    "evaluate",
    "evaluate.episodes",
    "evaluate.max_steps",
    "evaluate.timing_repeats",
    "render",
    "gc_dataset",
    "gc_dataset.generate.maze_noise",
    "train_gc",
    "gc_evaluate",
)


def slice_path(key: str, root: Path = Path(".")) -> Path:
    if key not in KEYS:
        raise KeyError(f"no params slice for {key!r}; known: {', '.join(KEYS)}")
    return root / SLICE_DIR / f"{key}.json"


def value(p: Params, key: str):
    """The validated value of a dotted params key, as plain JSON data."""
    v = p
    for part in key.split("."):
        v = getattr(v, part)
    return v.model_dump(mode="json") if isinstance(v, BaseModel) else v


def _text(p: Params, key: str) -> str:
    return json.dumps(value(p, key), indent=1, sort_keys=True) + "\n"


def stale(p: Params, root: Path = Path(".")) -> list[str]:
    """The keys whose slice file is missing or holds another value than p's."""
    return [k for k in KEYS if not (path := slice_path(k, root)).exists() or path.read_text() != _text(p, k)]


def write(p: Params, root: Path = Path("."), keys=KEYS, touch: bool = False) -> list[str]:
    """Write the slices of `keys` whose file differs from p's value (every one if touch), atomically;
    an unchanged file keeps its mtime, so nothing downstream of it looks stale. The keys written."""
    written = []
    for key in keys:
        path, text = slice_path(key, root), _text(p, key)
        if not touch and path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(key)
    return written


def dvc_commit(stages, params_file: str, root: Path = Path(".")) -> bool:
    """After a Snakemake run: record its jobs' dvc.yaml stages in dvc.lock (`dvc commit --force`), so
    `dvc repro` takes their outputs as current. Only for outputs made from params.yaml (the file DVC
    reads) in a DVC repo; True if dvc.lock was updated."""
    if Path(params_file) != Path("params.yaml"):
        print(
            f"outputs made from {params_file}: dvc.lock not updated (dvc repro reads params.yaml)",
            file=sys.stderr,
        )
        return False
    if not (root / ".dvc").is_dir():
        return False
    # dvc commit re-links every output from the cache (same bytes, new mtime, in no particular order):
    # put the mtimes back, or Snakemake would find upstream files newer than what was made from them
    # (files, then directories deepest first: a directory output's mtime is Snakemake's too)
    paths = sorted((root / "data").rglob("*"), key=lambda p: (p.is_dir(), -len(p.parts)))
    times = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in paths}
    cmd = [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *sorted(stages)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    for p, ns in times.items():
        if p.exists():
            os.utime(p, ns=ns)
    if proc.returncode:
        msg = "dvc commit failed, dvc.lock not updated (dvc repro will rerun these stages)"
        print(f"{msg}:\n{proc.stdout}{proc.stderr}", file=sys.stderr)
        return False
    print(f"dvc.lock: recorded the {len(stages)} stages of this run", file=sys.stderr)
    return True


def main(params: Path = stage.PARAMS):
    changed = write(stage.load(params))
    print(f"params slices changed: {', '.join(changed)}" if changed else "params slices unchanged")


if __name__ == "__main__":
    stage.cli(main)
