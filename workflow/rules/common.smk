# Shared by every rule: the validated params, the params-file argument of the stage CLIs, wildcard
# constraints, MLflow set-up before the fan-out, and the output paths of each stage (the ones dvc.yaml
# declares; tests/test_workflow.py checks that both DAGs agree).
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent))  # the repo root: pipeline_steps

from pipeline_steps.both import code_deps, params_slices
from pipeline_steps.core import tracking
from pipeline_steps.both.params_slices import dvc_commit
from pipeline_steps.core.params import GC_ALGOS, ParamsError, load_params, parse_params

# The params file the stage CLIs read: params.yaml, or the single --configfile given on the command line
# (a complete params file, e.g. profiles/tiny2.yaml). Values given with --config would reach Snakemake
# but not the stage CLIs, so they are refused.
if len(workflow.overwrite_configfiles) > 1:
    raise ValueError(f"pass at most one --configfile (a complete params file), got {workflow.overwrite_configfiles}")
PARAMS_FILE = str(workflow.overwrite_configfiles[0]) if workflow.overwrite_configfiles else "params.yaml"
if Path(PARAMS_FILE).resolve().is_relative_to(Path.cwd()):  # snakemake makes it absolute: keep commands portable
    PARAMS_FILE = str(Path(PARAMS_FILE).resolve().relative_to(Path.cwd()))
P = load_params(PARAMS_FILE)  # validated: a bad value stops here, naming the key, before any job
# importing dm_control (the env-name checks) logs through the root logger, which gives it a handler
# (logging.basicConfig): every message of Snakemake's own logger would then be printed twice
logging.root.handlers.clear()
try:
    same = parse_params(config, "the Snakemake config") == P
except ParamsError:  # --config values arrive as strings
    same = False
if not same:
    raise ValueError(
        f"the config differs from {PARAMS_FILE} (a --config override?): the stage CLIs read {PARAMS_FILE}, "
        "so put every change in a params file and pass it with --configfile"
    )
# stage CLIs default to params.yaml; name the file only when it is another one (so the default
# commands are exactly dvc.yaml's)
PARAMS_ARG = "" if PARAMS_FILE == "params.yaml" else f" --params {PARAMS_FILE}"
ENVS, SEEDS = P.envs, P.seeds
GC_SEEDS = P.gc_seeds  # the goal-conditioned half's seeds
# torch threads per job: runtime.threads when params fix it (the training and evaluation stages then use
# exactly that many under either driver, so they give bit-identical results), else one per job
# (set-threads in a profile raises it)
THREADS = P.runtime.threads or 1


# A rule's code inputs are its dvc.yaml stage's code deps: the files of the modules its stage CLI imports
# (pipeline_steps/both/code_deps.py; tests/test_architecture.py checks dvc.yaml against the imports).
CODE = code_deps.listed()


def code(dvc_stage):
    return CODE[dvc_stage]


wildcard_constraints:
    env=r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)+",  # domain-task, or an OGBench <dataset>-singletask[-task<k>]
    seed=r"\d+",


onstart:
    # one process creates the MLflow DB and experiment before jobs run in parallel
    tracking.init_store()


# Params reach a job as files: the slices of the keys its dvc.yaml stage lists under params:
# (pipeline_steps/both/params_slices.py), rewritten only when a value changes. An edited key's slice is then
# newer than the outputs of the jobs that read it, whichever driver made them (outputs made by DVC carry
# no Snakemake metadata, so Snakemake's own params trigger would miss the edit). A dry run (or --dag)
# writes nothing under data/: a changed or missing slice is shown as
# .snakemake/params_pending/data/params/<key>.json.
SLICES = {}  # key -> the path this invocation's jobs read
DVC_STAGES = {"params"}  # the dvc.yaml stages of this invocation's jobs: recorded in dvc.lock at the end


def _slice_paths():
    if not SLICES:
        executing = workflow.executor_plugin is not None and not workflow.dryrun and not workflow.touch
        if executing:
            params_slices.write(P)
        pending = params_slices.stale(P)  # after a write, none
        params_slices.write(P, Path(".snakemake/params_pending"), keys=pending, touch=True)
        for key in params_slices.KEYS:
            root = Path(".snakemake/params_pending") if key in pending else Path(".")
            SLICES[key] = str(params_slices.slice_path(key, root))
    return SLICES


def slices(dvc_stage, *keys):
    """A rule's params input: the slices of `keys` (its dvc.yaml stage's params:). `dvc_stage` is that
    stage's name, formatted with the job's wildcards (e.g. "label@{env}-{seed}")."""

    def inputs(wildcards):
        DVC_STAGES.add(dvc_stage.format(**wildcards))
        return [_slice_paths()[k] for k in keys]

    return inputs


onsuccess:
    # the jobs' outputs are current for params.yaml: record them in dvc.lock, so `dvc repro` reruns
    # only what a later edit reaches (the reverse of the slices above). Outputs made from another params
    # file are not recorded: dvc repro reads params.yaml and will rerun what differs.
    if workflow.is_main_process:  # not in each SLURM job's own snakemake process
        dvc_commit(DVC_STAGES, PARAMS_FILE)


# Outputs of each stage (dvc.yaml: outs + metrics + plots), by stage
def label_outputs(env, seed):
    d = f"data/label/{env}/seed{seed}"
    return [f"{d}/labels.npz", f"{d}/train_log.csv", f"{d}/critic.pt", f"{d}/metrics.json"]


def cfgrl_outputs(env, seed):
    d = f"data/train_cfgrl/{env}/seed{seed}"
    return [f"{d}/policy.pt", f"{d}/train_log.csv", f"{d}/metrics.json"]


def awr_outputs(env, seed):
    d = f"data/train_awr/{env}/seed{seed}"
    return [f"{d}/policies.pt", f"{d}/train_log.csv", f"{d}/metrics.json"]


def awf_outputs(env, seed):
    d = f"data/train_awf/{env}/seed{seed}"
    return [f"{d}/policies.pt", f"{d}/train_log.csv", f"{d}/metrics.json"]


def fql_outputs(env, seed):
    d = f"data/train_fql/{env}/seed{seed}"
    return [f"{d}/policies.pt", f"{d}/train_log.csv", f"{d}/metrics.json"]


def evaluate_extraction_outputs(env, seed):
    d = f"data/evaluate_extraction/{env}/seed{seed}"
    return [f"{d}/episodes.csv", f"{d}/summary.csv", f"{d}/metrics.json"]


def evaluate_outputs(env, seed):
    d = f"data/evaluate/{env}/seed{seed}"
    return [f"{d}/episodes.csv", f"{d}/summary.csv", f"{d}/metrics.json"]


PLOT_FILES = [
    "results.csv",
    "return_vs_w.png",
    "drift_vs_w.png",
    "return_vs_drift.png",
    "advantage_hist.png",
    "weight_concentration.png",
    "training_curves.png",
    "return_over_training.png",
    "extraction.png",
]


def plot_outputs(env):
    return [f"data/plots/{env}/{f}" for f in PLOT_FILES]


# the goal-conditioned half (rules/gc.smk)
GC_ENVS = P.gc_envs
GC_ALGOS = list(GC_ALGOS)  # pipeline_steps.core.params.GC_ALGOS: the train_gc policies


def gc_evaluate_outputs(env, seed):
    d = f"data/gc_evaluate/{env}/seed{seed}"
    return [f"{d}/episodes.csv", f"{d}/summary.csv", f"{d}/trajectories.npz", f"{d}/metrics.json"]


def gc_plot_outputs(env):
    return [f"data/gc_plots/{env}/{f}" for f in ("results.csv", "success_vs_w.png", "trajectories.png", "hier_trajectories.png")]
