"""The `main` of the stages of common shapes: which files a stage reads and where it writes, wired from
its env / seed / params / --out options (so this module is a code dep of the stages that use it; the
plain CLI plumbing lives in stage.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline_steps.core import paths, stage


def per_env_main(name: str, run: Callable, out_dir_of: Callable[[str], Path], doc: str, gc: bool = False):
    """The `main` of a stage with one job per env whose run is run(params, env, out_dir) (dataset, plot,
    gc_dataset): outputs in out_dir_of(env) unless --out; `gc` stages take their env from gc_envs."""

    def main(
        env: str = stage.ENV,
        params: Path = stage.PARAMS,
        out: Path = stage.out_option(str(out_dir_of("<env>"))),
    ):
        p = (stage.load_gc if gc else stage.load)(params, env)
        out_dir = out or out_dir_of(env)
        stage.tracked(name, p, out_dir, lambda: run(p, env, out_dir), env=env)

    main.__doc__ = doc
    return main


def labelled_main(name: str, run: Callable, out_dir_of: Callable[[str, int], Path], doc: str):
    """The `main` of a training stage on the labelled dataset (train_cfgrl, train_awr, train_awf):
    run(params, env, seed, dataset_root, labels_path, out_dir), outputs in out_dir_of(env, seed)."""

    def main(
        env: str = stage.ENV,
        seed: int = stage.SEED,
        params: Path = stage.PARAMS,
        out: Path = stage.out_option(str(out_dir_of("<env>", "<seed>"))),
    ):
        p = stage.load(params, env, seed)
        out_dir = out or out_dir_of(env, seed)
        labels = paths.label_dir(env, seed) / "labels.npz"
        body = lambda: run(p, env, seed, paths.dataset_root(env), labels, out_dir)  # noqa: E731
        stage.tracked(name, p, out_dir, body, env=env, seed=seed)

    main.__doc__ = doc
    return main
