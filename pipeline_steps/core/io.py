"""Atomic file outputs: a reader (or a later stage) never sees half a file, and a stage that dies leaves
no temp file and no older output beside newer ones."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_output(path: Path):
    """Yield a binary file handle on a temp file next to `path`; on success fsync and rename it onto
    `path` (readers never see half a file), on any failure delete it (no temp file is left behind)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_tree(path: Path) -> None:
    """Delete a directory output so that a kill never leaves half of it: renamed away in one step, then
    deleted (a leftover `<name>.old` is removed by the next call)."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
        shutil.rmtree(old)


def write_json_atomic(obj, path: Path) -> None:
    with atomic_output(path) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def clear_outputs(out_dir: Path, names: tuple[str, ...]) -> None:
    """Remove a stage's previous outputs before it starts, so a run that dies part-way never leaves an
    older file beside newer ones (DVC does the same for its outs; this covers direct CLI runs)."""
    for name in names:
        (Path(out_dir) / name).unlink(missing_ok=True)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as f:
        np.savez(f, **arrays)


def write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as f:
        df.to_csv(f, index=False)
