"""What every stage CLI shares: its typer options, its MLflow run and the logging set-up.

A stage module holds a pure `run(...)` and a `main(...)` of a few lines:

    def main(env: str = stage.ENV, seed: int = stage.SEED, params: Path = stage.PARAMS,
             out: Path = stage.out_option("data/<stage>/<env>/seed<seed>")):
        p = stage.load(params, env, seed)
        out_dir = out or paths.<stage>_dir(env, seed)
        stage.tracked("<stage>", p, out_dir, lambda: run(p, env, seed, ..., out_dir), env=env, seed=seed)

    if __name__ == "__main__":
        stage.cli(main)

Stages of the common shapes take theirs from core/stage_shapes.py (which, unlike this module, is a code
dep of the stages using it: it chooses what they read and write).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import typer

from pipeline_steps.core import paths, tracking
from pipeline_steps.core.params import Params, ParamsError, load_params

ENV = typer.Option(..., help="env name, one of params envs (e.g. walker-run)")
SEED = typer.Option(..., help="training seed (must be in params seeds)")
PARAMS = typer.Option(Path("params.yaml"), help="params file")


def out_option(default: str):
    """The --out option of a stage whose outputs default to `default`."""
    return typer.Option(None, help=f"output dir (default {default})")


def load(params_path: Path, env: str | None = None, seed: int | None = None) -> Params:
    """Validated params, with the env and seed checked against the ones params declares."""
    p = load_params(params_path)
    if env is not None:
        paths.check_env_seed(p, env, seed)
    return p


def load_gc(params_path: Path, env: str | None = None, seed: int | None = None) -> Params:
    """`load` for the goal-conditioned stages: the env must be one of params gc_envs."""
    p = load_params(params_path)
    if env is not None:
        paths.check_gc_env_seed(p, env, seed)
    return p


def section_dumps(p: Params, stage: str) -> dict:
    """The params sections a stage reads (tracking.STAGE_SECTIONS), as its MLflow run logs them."""
    return {
        s: getattr(p, s).model_dump() if hasattr(getattr(p, s), "model_dump") else getattr(p, s)
        for s in tracking.STAGE_SECTIONS[stage]
    }


def tracked(
    stage: str, p: Params, out_dir: Path, body: Callable[[], object], env=None, seed=None, tags=None
) -> None:
    """Run body() as one MLflow run of `stage` (its params sections logged), then mirror out_dir into it."""
    with tracking.stage_run(stage, section_dumps(p, stage), env=env, seed=seed, tags=tags) as run:
        body()
        run.mirror(out_dir)


def quiet_library_warnings() -> None:
    """Leave out what a stage's log should not repeat: torch.compile's start-up calls the deprecated
    torch.jit.script_method internally (14 DeprecationWarnings per training stage where warnings are
    shown, e.g. PYTHONWARNINGS=default), which says nothing about the stage."""
    warnings.filterwarnings("ignore", r"`torch\.jit\.script_method` is deprecated", DeprecationWarning)


def cli(main: Callable) -> None:
    """The `python -m pipeline_steps.<rl|gc|both>.<stage>` entry point: INFO logging, then typer. A params
    error is the list of bad keys and values on stderr and exit status 2, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    quiet_library_warnings()
    for noisy in ("absl", "OpenGL"):  # dm_control's renderer set-up notes, on every import
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        typer.run(main)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
