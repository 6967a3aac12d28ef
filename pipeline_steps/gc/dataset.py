"""Stage `gc_dataset`: the OGBench dataset of one goal-conditioned env (method.md §8).

Sources (params `gc_dataset.source`; made by pipeline_steps/datasets/ogbench.py):
- `generate`: OGBench's published recipe, made here with the scripted noisy oracles that ship in the
  package (pointmaze; cube / scene / puzzle play and noisy), seeded: the same params give byte-identical
  arrays.
- `download`: `{base_url}/<name>-v0.npz` and `<name>-v0-val.npz`, verified and kept in `cache_dir`; a
  404, truncated, non-npz or incomplete file is a DatasetError naming it, and nothing is left behind.

Outputs, data/gc_dataset/<env>/:
  minari/                      the training episodes, the pipeline's one storage convention (Minari,
                               per state infos qpos / qvel [/ button_states]); what train_gc reads
  ogbench/<name>-v0.npz        the same data in OGBench's format (and `-val.npz`, 1/10 of the
                               episodes), read unchanged by `ogbench.load_dataset` and
                               `ogbench.make_env_and_datasets(..., dataset_path=...)`
  stats.json                   size and generation speed (DVC metrics)

OGBench's recipes: datasets/ogbench.py. params.yaml's defaults are smaller (CPU budget): see its comments.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from pipeline_steps.core import paths, stage, stage_shapes
from pipeline_steps.core.episodes import write_minari
from pipeline_steps.core.io import remove_tree, write_json_atomic
from pipeline_steps.core.params import GcDatasetParams, Params
from pipeline_steps.datasets.ogbench import download_files, generate, to_ogbench, write_npz_atomic
from pipeline_steps.envs import ogbench_gc

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------
def run(params: Params, name: str, out_dir: Path) -> dict:
    """Build `name`'s dataset into out_dir (minari/, ogbench/, stats.json); return its statistics. The
    previous outputs are removed first, and a run that fails leaves none of its own."""
    out_dir = Path(out_dir)
    (out_dir / "stats.json").unlink(missing_ok=True)
    for sub in ("minari", "ogbench"):
        remove_tree(out_dir / sub)
    try:
        return build(params.gc_dataset, name, out_dir)
    except BaseException:
        (out_dir / "stats.json").unlink(missing_ok=True)
        remove_tree(out_dir / "ogbench")  # (write_minari leaves no minari/ behind when it fails)
        raise


def build(cfg: GcDatasetParams, name: str, out_dir: Path) -> dict:
    start = time.perf_counter()
    ogb_dir = out_dir / "ogbench"
    fname = ogbench_gc.dataset_name(name)
    if cfg.source == "generate":
        episodes = generate(name, cfg)
        n_train = cfg.generate.episodes
        train, val = episodes[:n_train], episodes[n_train:]
        write_npz_atomic(ogb_dir / f"{fname}.npz", to_ogbench(train))
        write_npz_atomic(ogb_dir / f"{fname}-val.npz", to_ogbench(val))
    else:
        train, files = download_files(name, cfg)
        ogb_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, ogb_dir / f.name)
    seconds = time.perf_counter() - start
    made = episodes if cfg.source == "generate" else train  # generate: train + validation episodes
    stats = {
        "episodes": len(train),
        "transitions": int(sum(len(ep.actions) for ep in train)),
        "build_seconds": seconds,
        "steps_per_second": sum(len(ep.actions) for ep in made) / seconds,
        "obs_dim": int(train[0].observations.shape[1]),
        "act_dim": int(train[0].actions.shape[1]),
        "source": cfg.source,
    }
    write_json_atomic(stats, out_dir / "stats.json")
    write_minari(  # last: what train_gc reads
        train,
        name,
        cfg.source,
        out_dir / "minari",
        description=f"OGBench {fname} ({cfg.source})",
        gym_id=ogbench_gc.gym_id(name),
    )
    log.info("%s: %s", name, stats)
    return stats


main = stage_shapes.per_env_main(
    "gc_dataset", run, paths.gc_dataset_dir, "Build the OGBench dataset of one goal-conditioned env.", gc=True
)

if __name__ == "__main__":
    stage.cli(main)
