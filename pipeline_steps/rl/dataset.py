"""Stage `dataset`: build the offline dataset of one env as a Minari (HDF5) dataset.

Sources (params `dataset.source`; each one module of pipeline_steps/datasets/):
- `collect`: roll out a behaviour policy in the env (offline, seeded, byte-for-byte reproducible).
- `exorl`:   download `{base_url}/{domain}/{method}.zip`, read `buffer/episode_*.npz`, and relabel
             rewards for the task from the stored physics states (method.md §5).
- `minari`:  any Minari dataset id, via `minari.load_dataset(id, download=True)`.
An OGBench single-task env (`<dataset>-singletask[-task<k>]`, envs/ogbench_single.py) takes its data from
params `dataset.ogbench` instead (OGBench's files, generated with its oracles or downloaded, as the
gc_dataset stage makes them), relabelled with OGBench's single-task rewards and terminals.

Outputs: `data/dataset/<env>/minari/` (the dataset) and `data/dataset/<env>/stats.json` (DVC metrics).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from pipeline_steps.core import device, paths, stage, stage_shapes
from pipeline_steps.core.episodes import Episode, dataset_stats, write_minari
from pipeline_steps.core.io import remove_tree, write_json_atomic
from pipeline_steps.core.params import Params
from pipeline_steps.datasets import collect, exorl, minari, ogbench
from pipeline_steps.envs import names, ogbench_single

log = logging.getLogger(__name__)


def build_episodes(params: Params, env_name: str) -> list[Episode]:
    """The episodes of `env_name` from params.dataset's source (OGBench single-task envs: from
    dataset.ogbench's, OGBench's files made or fetched as gc_dataset does)."""
    if names.is_singletask(env_name):
        return ogbench.singletask(env_name, params.dataset.ogbench)
    cfg = params.dataset
    if cfg.source == "collect":
        return collect.collect(env_name, cfg.collect, cfg.seed, params.runtime.compile)
    if cfg.source == "exorl":
        return exorl.exorl(env_name, cfg.exorl)
    return minari.from_minari(env_name, cfg.minari)


def run(params: Params, env_name: str, out_dir: Path) -> dict:
    """Build the dataset of `env_name` into `out_dir/minari` and return (and write) its statistics."""
    out_dir = Path(out_dir)
    # remove the previous outputs first (as DVC does): a run that dies leaves no older dataset behind;
    # the dataset is renamed away in one step, so a kill mid-delete leaves no half dataset at `minari`
    (out_dir / "stats.json").unlink(missing_ok=True)
    remove_tree(out_dir / "minari")
    device.set_threads(params.runtime)  # SAC's updates (sac_replay): one thread per job, as in training
    start = time.perf_counter()
    episodes = build_episodes(params, env_name)
    seconds = time.perf_counter() - start
    stats = dataset_stats(episodes)
    singletask = names.is_singletask(env_name)
    if singletask:  # fraction of transitions from a success state (mask 0)
        stats["terminal_frac"] = float(np.mean(np.concatenate([ep.terminations for ep in episodes])))
    stats["build_seconds"] = seconds  # wall time of collection / download + relabelling
    stats["steps_per_second"] = stats["transitions"] / seconds
    source = f"ogbench-{params.dataset.ogbench.source}" if singletask else params.dataset.source
    detail = params.dataset.collect.behaviour if source == "collect" else ""
    write_json_atomic(stats, out_dir / "stats.json")
    try:  # last: the dataset is what the next stages read (written to a temp dir and renamed)
        write_minari(
            episodes,
            env_name,
            source,
            out_dir / "minari",
            description=f"{env_name} {source} {detail}",
            gym_id=ogbench_single.gym_id(env_name) if singletask else None,
        )
    except BaseException:  # a failed run leaves no output
        (out_dir / "stats.json").unlink(missing_ok=True)
        raise
    log.info("%s: %s", env_name, stats)
    return stats


main = stage_shapes.per_env_main("dataset", run, paths.dataset_dir, "Build the offline dataset of one env.")

if __name__ == "__main__":
    stage.cli(main)
