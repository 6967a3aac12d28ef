"""MLflow tracking: every stage execution is one run, mirroring the files the stage wrote.

The DVC outputs are the record; MLflow only mirrors them (params, step-wise training logs, final
metrics, figures / tables / checkpoints as artifacts) for browsing in `mlflow ui`. Any tracking
failure (unwritable, locked or corrupt DB, missing mlflow) warns and never fails the stage.

Store: SQLite at `<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts/` (absolute paths, so
every stage and `dvc exp run --temp` copy writes to the same store). Override with the standard
`MLFLOW_TRACKING_URI` (e.g. a tracking server for a cluster); `CFGRL_TRACKING=0` turns it off.
Runs are tagged with stage, env, seed, git commit and the DVC experiment name (`DVC_EXP_NAME`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
import time
import warnings
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)
EXPERIMENT = "cfgrl-pipeline"


def enabled() -> bool:
    return os.environ.get("CFGRL_TRACKING", "1").lower() not in ("0", "false", "off", "no")


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI if set, else the repo's SQLite DB. SQLite lets one writer in at a time: the
    60 s busy timeout makes parallel stages (Snakemake jobs) wait their turn instead of failing with
    "database is locked" after sqlite's default 5 s."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(root or '.').resolve() / 'mlflow.db')}?timeout=60"


# the experiment tag MLflow's UI reads to open an experiment in its model-training view, not the GenAI one
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def _ensure_experiment(mlflow) -> None:
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        with contextlib.suppress(Exception):  # a parallel job may have created it meanwhile
            mlflow.create_experiment(
                EXPERIMENT, artifact_location=(Path("mlartifacts").resolve()).as_uri(), tags=EXPERIMENT_KIND
            )


def init_store() -> None:
    """Create the tracking DB (schema migrations) and the experiment once, before parallel jobs start
    (Snakemake's onstart): concurrent first-time migrations are what locks or breaks a fresh SQLite DB.
    Warns and returns on any failure, like every tracking call."""
    if not enabled():
        return
    try:
        import mlflow

        logging.getLogger("alembic").setLevel(logging.WARNING)
        mlflow.set_tracking_uri(tracking_uri())
        _ensure_experiment(mlflow)
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"MLflow tracking store not initialised ({type(err).__name__}: {err})", stacklevel=2)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _metric_key(k: str) -> str:
    # MLflow keys allow alphanumerics, _ - . / and spaces; "=" is not allowed
    return k.replace("=", "_")


class _Run:
    """What a stage reports back; every method is a no-op once tracking has failed."""

    def __init__(self, mlflow):
        self.mlflow = mlflow
        self.streamed_steps: set[int] = set()  # training-log steps already sent by log_step

    def _guard(self, what: str, fn):
        if self.mlflow is None:
            return
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - tracking must never fail a stage
            warnings.warn(
                f"MLflow tracking disabled for this run ({what} failed: {type(err).__name__}: {err}); "
                "the DVC outputs are complete",
                stacklevel=3,
            )
            self.mlflow = None

    def log_metrics_file(self, path: Path) -> None:
        """Final metrics from a JSON metrics file (nested keys joined with '.')."""
        metrics = {
            _metric_key(k): float(v)
            for k, v in flatten(json.loads(Path(path).read_text())).items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        }
        self._guard("log_metrics", lambda: self.mlflow.log_metrics(metrics))

    def log_step(self, row: dict) -> None:
        """One training-log row ({'step': s, metric: value, ...}) while the stage runs."""
        step = int(row["step"])
        metrics = {
            _metric_key(k): float(v) for k, v in row.items() if k != "step" and math.isfinite(float(v))
        }
        self._guard("log_metrics", lambda: self.mlflow.log_metrics(metrics, step=step))
        if self.mlflow is not None:
            self.streamed_steps.add(step)

    def log_training_log(self, path: Path, prefix: str = "") -> None:
        """Step-wise metrics from a training-log CSV with a `step` column (the rows not streamed
        already, e.g. those a resumed run inherited from the killed one)."""
        from mlflow.entities import Metric

        df = pd.read_csv(path)
        df = df[~df["step"].isin(self.streamed_steps)]
        now = int(time.time() * 1000)
        metrics = [
            Metric(_metric_key(prefix + col), float(v), now, int(step))
            for col in df.columns
            if col != "step"
            for step, v in zip(df["step"], df[col])
            if math.isfinite(v)
        ]

        def log_batch():
            client, run_id = self.mlflow.MlflowClient(), self.mlflow.active_run().info.run_id
            for i in range(0, len(metrics), 1000):  # MLflow's batch limit
                client.log_batch(run_id, metrics=metrics[i : i + 1000])

        self._guard("log_batch", log_batch)

    def mirror(self, out_dir: Path) -> None:
        """Mirror a stage's output dir: *.json as final metrics, train_log.csv as step-wise metrics,
        every file (not sub-directories, e.g. the dataset itself) as an artifact."""
        if self.mlflow is None:
            return
        for f in sorted(p for p in Path(out_dir).iterdir() if p.is_file() and not p.name.startswith(".")):
            if f.suffix == ".json":
                self.log_metrics_file(f)
            elif f.name == "train_log.csv":
                self.log_training_log(f)
            self.log_artifacts(f)

    def log_artifacts(self, *paths: Path) -> None:
        for p in paths:
            p = Path(p)
            if p.is_dir():
                self._guard("log_artifacts", lambda p=p: self.mlflow.log_artifacts(str(p), p.name))
            elif p.exists():
                self._guard("log_artifact", lambda p=p: self.mlflow.log_artifact(str(p)))


_ACTIVE: list[_Run] = []  # the stage run open in this process, if any (stage_run pushes it)


def log_step(row: dict) -> None:
    """Stream one training-log row to the open stage run; a no-op outside one (tests, benchmarks)."""
    if _ACTIVE:
        _ACTIVE[-1].log_step(row)


def run_name(stage: str, env: str | None, seed: int | None, tags: dict) -> str:
    """'train_gc-flow_gcbc-pointmaze-medium-navigate-seed0', with ' [<exp>]' inside a DVC experiment: the
    stage, its algorithm (tags['algo'], where one stage trains several), env and seed, so runs of one
    seed are told apart in MLflow's run list."""
    parts = (stage, tags.get("algo"), env, None if seed is None else f"seed{seed}")
    name = "-".join(str(x) for x in parts if x is not None)
    return f"{name} [{tags['dvc_exp_name']}]" if tags.get("dvc_exp_name") else name


@contextlib.contextmanager
def stage_run(
    stage: str, params: dict, env: str | None = None, seed: int | None = None, tags: dict | None = None
):
    """Open an MLflow run for one stage execution; yields a _Run (a no-op one if tracking is off or broken).
    The run ends FINISHED, or FAILED if the stage raised (the exception propagates unchanged)."""
    run = _Run(None)
    if enabled():
        try:
            import mlflow

            logging.getLogger("alembic").setLevel(logging.WARNING)
            mlflow.set_tracking_uri(tracking_uri())
            _ensure_experiment(mlflow)
            mlflow.set_experiment(EXPERIMENT)
            tags = {"stage": stage, "git_commit": git_commit(), **(tags or {})}
            if env is not None:
                tags["env"] = env
            if seed is not None:
                tags["seed"] = str(seed)
            for var, tag in (
                ("DVC_EXP_NAME", "dvc_exp_name"),
                ("DVC_STAGE", "dvc_stage"),
                ("SLURM_JOB_ID", "slurm_job_id"),
            ):
                if os.environ.get(var):
                    tags[tag] = os.environ[var]
            mlflow.start_run(run_name=run_name(stage, env, seed, tags), tags=tags)
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            run = _Run(mlflow)
        except Exception as err:  # noqa: BLE001
            warnings.warn(
                f"MLflow tracking unavailable ({type(err).__name__}: {err}); the stage runs untracked",
                stacklevel=3,
            )
            with contextlib.suppress(Exception):
                mlflow.end_run("FAILED")
    _ACTIVE.append(run)
    try:
        yield run
    except BaseException:
        if run.mlflow is not None:
            with contextlib.suppress(Exception):
                run.mlflow.end_run("FAILED")
        raise
    finally:
        _ACTIVE.remove(run)
    if run.mlflow is not None:
        run._guard("end_run", lambda: run.mlflow.end_run("FINISHED"))


# sections of params.yaml each stage reads (what its run logs as params)
STAGE_SECTIONS = {
    "dataset": ("dataset",),
    "label": ("label", "runtime"),
    "train_cfgrl": ("train_cfgrl", "runtime"),
    "train_awr": ("train_awr", "runtime"),
    "train_awf": ("train_awf", "train_cfgrl", "runtime"),
    "train_fql": ("train_fql", "runtime"),
    "evaluate": ("evaluate", "runtime"),
    "evaluate_extraction": ("extraction", "evaluate", "runtime"),
    "plot": ("seeds",),
    "render": ("render", "seeds", "runtime"),
    "aggregate": ("envs", "gc_envs", "seeds"),
    "gc_dataset": ("gc_dataset",),
    "train_gc": ("train_gc", "runtime"),
    "gc_evaluate": ("gc_evaluate", "runtime"),
    "gc_plot": ("seeds",),
}


# the file each stage writes last: its presence means the stage finished
LAST_OUTPUT = {
    "dataset": "minari",
    "label": "labels.npz",
    "train_cfgrl": "policy.pt",
    "train_awr": "policies.pt",
    "train_awf": "policies.pt",
    "train_fql": "policies.pt",
    "evaluate": "episodes.csv",
    "evaluate_extraction": "episodes.csv",
    "plot": "results.csv",
    "render": "render.json",
    "aggregate": "summary.md",
    "gc_dataset": "minari",
    "train_gc": "policy.pt",
    "gc_evaluate": "episodes.csv",
    "gc_plot": "results.csv",
}


def backfill(params_path: Path = Path("params.yaml")) -> int:
    """Re-record every stage output under data/ as an MLflow run tagged backfilled=true: the way to
    rebuild the tracking record after an outage (the stage ran untracked) or a lost / corrupt DB.
    Logs the current params file's sections, so run it when `dvc status` says the outputs are up to
    date. Returns the number of runs written."""
    from pipeline_steps.core import paths
    from pipeline_steps.core.params import load_params

    p = load_params(params_path)
    dumps = {name: v.model_dump() if hasattr(v, "model_dump") else v for name, v in p}
    # (stage, env, seed, output dir); a dir counts only if it holds the file its stage writes last
    jobs = []
    for env in p.envs:
        jobs.append(("dataset", env, None, paths.dataset_dir(env)))
        for seed in p.seeds:
            for stage, where in (
                ("label", paths.label_dir),
                ("train_cfgrl", paths.cfgrl_dir),
                ("train_awr", paths.awr_dir),
                ("train_awf", paths.awf_dir),
                ("train_fql", paths.fql_dir),
                ("evaluate", paths.evaluate_dir),
                ("evaluate_extraction", paths.evaluate_extraction_dir),
            ):
                jobs.append((stage, env, seed, where(env, seed)))
        jobs.append(("plot", env, None, paths.plots_dir(env)))
    for env in p.gc_envs:
        jobs.append(("gc_dataset", env, None, paths.gc_dataset_dir(env)))
        for seed in p.seeds:
            jobs += [
                ("train_gc", env, seed, paths.train_gc_dir(env, algo, seed))
                for algo in ("cfgrl", "flow_gcbc", "gcbc")
            ]
            jobs.append(("gc_evaluate", env, seed, paths.gc_evaluate_dir(env, seed)))
        jobs.append(("gc_plot", env, None, paths.gc_plots_dir(env)))
    jobs.append(("aggregate", None, None, paths.DATA / "aggregate"))
    n = 0
    for stage, env, seed, out_dir in jobs:
        if not (Path(out_dir) / LAST_OUTPUT[stage]).exists():  # missing, or a stage that did not finish
            continue
        params = {k: dumps[k] for k in STAGE_SECTIONS[stage]}
        with stage_run(stage, params, env=env, seed=seed, tags={"backfilled": "true"}) as run:
            run.mirror(out_dir)
            n += run.mlflow is not None
    return n


if __name__ == "__main__":
    import typer

    app = typer.Typer(add_completion=False, help="MLflow tracking store maintenance.")

    @app.command("init")
    def _init():
        """Create the tracking DB and experiment (before parallel jobs; Snakemake does this itself)."""
        init_store()

    @app.command("backfill")
    def _backfill(params: Path = typer.Option(Path("params.yaml"), help="params file")):
        """Record every existing stage output as a run (after a tracking outage or a lost DB)."""
        print(f"backfilled {backfill(params)} runs into {tracking_uri()}")

    app()
