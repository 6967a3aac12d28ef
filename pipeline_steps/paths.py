"""Canonical output paths, shared by the stage CLIs, dvc.yaml and the Snakemake rules.

Paths encode identity: data/<stage>/<env>/[seed<seed>/]...
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")


def dataset_dir(env: str) -> Path:
    return DATA / "dataset" / env
