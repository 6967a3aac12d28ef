"""Canonical output paths, shared by the stage CLIs, dvc.yaml and the Snakemake rules.

Paths encode identity: data/<stage>/<env>/[seed<seed>/]...
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")


def dataset_dir(env: str) -> Path:
    return DATA / "dataset" / env


def dataset_root(env: str) -> Path:
    """The Minari datasets root of an env's dataset."""
    return dataset_dir(env) / "minari"


def label_dir(env: str, seed: int) -> Path:
    return DATA / "label" / env / f"seed{seed}"


def cfgrl_dir(env: str, seed: int) -> Path:
    return DATA / "train_cfgrl" / env / f"seed{seed}"


def awr_dir(env: str, seed: int) -> Path:
    return DATA / "train_awr" / env / f"seed{seed}"


def awf_dir(env: str, seed: int) -> Path:
    return DATA / "train_awf" / env / f"seed{seed}"


def fql_dir(env: str, seed: int) -> Path:
    return DATA / "train_fql" / env / f"seed{seed}"


def check_env_seed(params, env: str, seed: int | None = None) -> None:
    """A stage CLI only runs envs and seeds that params.yaml declares (so outputs match the DAG)."""
    import typer

    if env not in params.envs:
        raise typer.BadParameter(f"env {env!r} is not in params envs {params.envs}", param_hint="--env")
    if seed is not None and seed not in params.seeds:
        raise typer.BadParameter(f"seed {seed} is not in params seeds {params.seeds}", param_hint="--seed")


def evaluate_dir(env: str, seed: int) -> Path:
    return DATA / "evaluate" / env / f"seed{seed}"


def evaluate_extraction_dir(env: str, seed: int) -> Path:
    return DATA / "evaluate_extraction" / env / f"seed{seed}"


def plots_dir(env: str) -> Path:
    return DATA / "plots" / env


def render_dir(env: str) -> Path:
    return DATA / "render" / env


# ---- goal-conditioned half (OGBench): data/gc_*/<env>/... ---------------------------------------
def gc_dataset_dir(env: str) -> Path:
    return DATA / "gc_dataset" / env


def gc_dataset_root(env: str) -> Path:
    """The Minari datasets root of a goal-conditioned env's dataset."""
    return gc_dataset_dir(env) / "minari"


def train_gc_dir(env: str, algo: str, seed: int) -> Path:
    return DATA / "train_gc" / env / algo / f"seed{seed}"


def gc_evaluate_dir(env: str, seed: int) -> Path:
    return DATA / "gc_evaluate" / env / f"seed{seed}"


def gc_plots_dir(env: str) -> Path:
    return DATA / "gc_plots" / env


def check_gc_env_seed(params, env: str, seed: int | None = None) -> None:
    """A goal-conditioned stage CLI only runs the gc_envs and seeds params.yaml declares."""
    import typer

    if env not in params.gc_envs:
        raise typer.BadParameter(f"env {env!r} is not in params gc_envs {params.gc_envs}", param_hint="--env")
    if seed is not None and seed not in params.seeds:
        raise typer.BadParameter(f"seed {seed} is not in params seeds {params.seeds}", param_hint="--seed")
