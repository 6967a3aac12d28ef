"""The Snakemake workflow: lint, dry runs of the default and multi-seed profiles, the DAG it builds
against dvc.yaml's (same commands, inputs and outputs), the SLURM submissions it makes (against a
fake sbatch, there is no cluster here), and a real run of the tiny 2-seed profile whose outputs DVC
adopts with `dvc commit` so that `dvc repro` has nothing left to do."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_repo, run_tool

from pipeline_steps.core.params import GC_ALGOS

SNAKE = ["snakemake", "--snakefile", "workflow/Snakefile"]


def dry_run(cwd: Path, *args: str) -> str:
    """`snakemake -n -p --forceall` output (every job of the DAG, with its shell command)."""
    return run_tool([*SNAKE, "-n", "-p", "--forceall", "--cores", "2", *args], cwd).stdout


def job_counts(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:") : out.index("total")]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def parse_jobs(out: str) -> list[dict]:
    """The jobs of a `-n -p` run: rule, inputs, outputs, wildcards and shell command."""
    jobs = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", out):
        m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if not m or m[1] == "all":
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append(
            {
                "rule": m[1],
                "input": set(fields.get("input", "").split(", ")) - {""},
                "output": set(fields["output"].split(", ")),
                "resources": dict(kv.split("=", 1) for kv in fields.get("resources", "").split(", ") if kv),
                "shell": shell[1] if shell else "",
            }
        )
    return jobs


def dvc_stages(root: Path) -> list[dict]:
    """dvc.yaml's stages, expanded (foreach / matrix): cmd, file deps, outs (incl. metrics and plots)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            {
                "name": st.name,
                "cmd": st.cmd,
                "deps": {d.def_path for d in st.deps if not isinstance(d, ParamsDependency)},
                "outs": {o.def_path for o in st.outs},
                "params": {k for d in st.deps if isinstance(d, ParamsDependency) for k in d.params},
            }
            for st in repo.index.stages
        ]


def expand_dir_deps(deps: set[str], all_outs: set[str]) -> set[str]:
    """A DVC dependency on a directory that other stages write into means every out beneath it."""
    expanded = set()
    for d in deps:
        inside = {o for o in all_outs if o.startswith(d.rstrip("/") + "/")}
        expanded |= inside if inside and d not in all_outs else {d}
    return expanded


def normalise_shell(cmd: str) -> str:
    """Snakemake's command minus what only Snakemake adds: the thread count and the log redirect."""
    cmd = re.sub(r"^OMP_NUM_THREADS=\d+ ", "", cmd)
    return re.sub(r" > \S+ 2>&1$", "", cmd)


def test_lint_is_clean():
    proc = run_tool([*SNAKE, "--lint"], REPO)
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


# the jobs of one (env, seed), written out here (not read from the code under test)
PER_SEED = ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql", "evaluate", "evaluate_extraction")


@pytest.mark.parametrize(
    "profile, envs, seeds, gc_seeds",
    [
        (None, 2, 1, 1),
        ("tiny2", 1, 2, 1),
        ("results", 2, 3, 3),
        ("paper", 9, 4, 8),
        ("paper_ogbench", 9, 4, 8),
        ("breadth", 14, 1, 1),
    ],
)
def test_dry_run_expands_envs_and_seeds_from_params(profile, envs, seeds, gc_seeds):
    args = ["--configfile", f"profiles/{profile}.yaml"] if profile else []
    proc = run_tool([*SNAKE, "-n", "-p", "--forceall", "--cores", "2", *args], REPO)
    assert "INFO:snakemake" not in proc.stdout + proc.stderr  # each message once (not again via root)
    counts = job_counts(proc.stdout)
    gc = 1  # every profile has one goal-conditioned env
    assert counts == {
        "dataset": envs,
        **dict.fromkeys(PER_SEED, envs * seeds),
        "plot": envs,
        "render": envs,
        "aggregate": 1,
        "gc_dataset": gc,
        "train_gc": gc * gc_seeds * len(GC_ALGOS),
        "gc_evaluate": gc * gc_seeds,
        "gc_plot": gc,
        "all": 1,
    }


def test_paper_gc_profile_expands_table_3_on_8_seeds():
    """The paper-scale goal-conditioned profile: its goal-conditioned jobs alone (target gc_all)."""
    counts = job_counts(dry_run(REPO, "gc_all", "--configfile", "profiles/paper_gc.yaml"))
    envs, seeds = 4, 8
    assert counts == {
        "gc_dataset": envs,
        "train_gc": envs * seeds * len(GC_ALGOS),
        "gc_evaluate": envs * seeds,
        "gc_plot": envs,
        "gc_all": 1,
    }


@pytest.mark.parametrize(
    "profile, n_stages",
    [
        # 2 envs x 1 seed: 2 x (dataset, plot, render) + 2 x 7 per-seed stages + aggregate; gc_dataset,
        # train_gc x 6 algos + gc_evaluate, gc_plot
        (None, 21 + 2 + len(GC_ALGOS) + 1),
        (
            "paper",
            9 * 3 + 9 * 4 * 7 + 1 + 2 + 8 * (len(GC_ALGOS) + 1),
        ),  # Table 1: 9 envs x 4 seeds (+ gc: 8 seeds)
        ("paper_ogbench", 9 * 3 + 9 * 4 * 7 + 1 + 2 + 8 * (len(GC_ALGOS) + 1)),  # Table 2: 9 envs x 4 seeds
    ],
)
def test_snakemake_and_dvc_build_the_same_dag(profile, n_stages, tmp_path):
    """Every Snakemake job is a dvc.yaml stage with the same outputs, the same inputs (code and data)
    and the same command, and no stage is missing from either side: the default profile, and the
    paper's Table 1 and Table 2 profiles (DVC reads params.yaml, so a copy of the repo gets the
    profile as its params.yaml)."""
    from pipeline_steps.both import params_slices

    root = copy_repo(tmp_path, profile, git=True) if profile else REPO
    jobs = parse_jobs(dry_run(root))
    stages = dvc_stages(root)
    # dvc.yaml's params stage writes the params slices; Snakemake writes them when it parses the Snakefile
    slices_stage = next(s for s in stages if s["name"] == "params")
    assert slices_stage["outs"] == {str(params_slices.slice_path(k)) for k in params_slices.KEYS}
    stages.remove(slices_stage)
    all_outs = set().union(*(s["outs"] for s in stages))
    by_outs = {frozenset(s["outs"]): s for s in stages}
    assert len(jobs) == len(stages) == n_stages, (len(jobs), len(stages))
    for job in jobs:
        stage = by_outs.get(frozenset(job["output"]))
        assert stage is not None, f"no dvc stage writes {sorted(job['output'])}"
        assert normalise_shell(job["shell"]) == stage["cmd"], (job["shell"], stage["cmd"])
        # a dry run shows a changed (or not yet written) slice under .snakemake/params_pending/
        inputs = {i.removeprefix(".snakemake/params_pending/") for i in job["input"]}
        assert inputs == expand_dir_deps(stage["deps"], all_outs), stage["name"]
        # each stage depends on exactly the slices of its params: keys
        slices = {d for d in stage["deps"] if d.startswith("data/params/")}
        assert slices == {str(params_slices.slice_path(k)) for k in stage["params"]}, stage["name"]


def test_expand_dir_deps_and_normalise_shell_are_strict():
    """The parity test's two normalisations do not hide real differences."""
    outs = {"data/label/e/seed0/labels.npz", "data/label/e/seed0/critic.pt", "data/labelx/a"}
    assert expand_dir_deps({"data/label/e", "code.py"}, outs) == {
        "data/label/e/seed0/labels.npz",
        "data/label/e/seed0/critic.pt",
        "code.py",
    }
    assert normalise_shell("OMP_NUM_THREADS=4 python -m x --env a > logs/x.log 2>&1") == "python -m x --env a"
    assert normalise_shell("python -m x --seed 1 --params p.yaml") == "python -m x --seed 1 --params p.yaml"


def test_params_file_is_passed_to_every_stage_and_overrides_are_refused():
    jobs = parse_jobs(dry_run(REPO, "--configfile", "profiles/tiny2.yaml"))
    assert all(re.search(r"--params \S*profiles/tiny2\.yaml", j["shell"]) for j in jobs)
    override = "evaluate={'guidance_ws': [0.0], 'episodes': 1, 'drift_states': 8, 'timing_repeats': 1}"
    proc = run_tool([*SNAKE, "-n", "--cores", "1", "--config", override], REPO, check=False)
    assert proc.returncode != 0
    assert "put every change in a params file" in proc.stdout + proc.stderr


def test_bad_params_file_is_refused_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "profiles" / "tiny.yaml").read_text().replace("episodes: 2", "episodes: -2"))
    proc = run_tool([*SNAKE, "-n", "--cores", "1", "--configfile", str(bad)], REPO, check=False)
    assert proc.returncode != 0 and "evaluate.episodes = -2" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# SLURM: the profile's submissions, against a fake sbatch
# ------------------------------------------------------------------------------------------------
FAKE_TOOLS = {
    "sbatch": 'echo "$@" >> "$FAKE_SLURM_LOG"\necho 4242',
    "sacct": 'echo "4242|FAILED|1:0"',  # the job "fails": snakemake stops after one submission round
    "squeue": "exit 0",
    "sinfo": "exit 0",
    "scontrol": "exit 0",
    "sacctmgr": "echo myaccount",
}


def test_slurm_profile_submits_the_requested_resources(tmp_path):
    repo = copy_repo(tmp_path / "repo", git=False)
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, body in FAKE_TOOLS.items():
        (fake / name).write_text(f"#!/bin/bash\n{body}\n")
        (fake / name).chmod(stat.S_IRWXU)
    # the dataset exists already (made after the params slices), so the first jobs submitted are the
    # paper profile's training jobs
    from pipeline_steps.both import params_slices
    from pipeline_steps.core.params import load_params

    params_slices.write(load_params(repo / "profiles/paper.yaml"), repo)
    for env in ("walker-run", "cheetah-run"):
        (repo / f"data/dataset/{env}/minari").mkdir(parents=True)
        (repo / f"data/dataset/{env}/stats.json").write_text("{}")
    # the paper profile trains on cuda: the SLURM profile asks for a GPU per torch stage (`gpu: 1`)
    log = tmp_path / "sbatch.log"
    target = "data/label/cheetah-run/seed1/labels.npz"
    proc = run_tool(
        [
            *SNAKE,
            target,
            "--profile",
            "workflow/profiles/slurm",
            "--configfile",
            "profiles/paper.yaml",
            "--retries",
            "0",
            "--slurm-init-seconds-before-status-checks",
            "1",
        ],
        repo,
        check=False,
        timeout=300,
        PATH=f"{fake}:{tool_path()}",
        FAKE_SLURM_LOG=str(log),
    )
    assert log.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    calls = log.read_text().splitlines()
    assert len(calls) == 1, calls
    call = calls[0]
    for expected in ("-A myaccount", "-p gpu", "-t 2880", "--mem 16000", "--cpus-per-task=8", "--gpus=1"):
        assert expected in call, (expected, call)
    assert "--target-jobs 'label:env=cheetah-run,seed=1'" in call
    assert "profiles/paper.yaml" in call  # the job reads the same params file


def tool_path() -> str:
    return f"{Path(sys.executable).parent}:{os.environ['PATH']}"


# ------------------------------------------------------------------------------------------------
# a real run: the tiny profile with 2 seeds, on this machine, then adopted by DVC
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny2_run(tmp_path_factory) -> tuple[Path, str]:
    repo = copy_repo(tmp_path_factory.mktemp("snake"), "tiny2")
    proc = run_tool(
        ["snakemake", "--profile", "workflow/profiles/local"], repo, timeout=1200, CFGRL_TRACKING="1"
    )
    return repo, proc.stdout + proc.stderr


def test_local_profile_runs_tiny2_and_aggregates_over_seeds(tiny2_run):
    repo, _ = tiny2_run
    res = pd.read_csv(repo / "data/aggregate/results.csv")
    assert set(res.method) == {"cfgrl", "awr", "awf", "ifql", "resample_n4", "fql"}
    assert (res.seeds == 2).all() and (res.ci_over == "seeds").all()
    # the aggregate of a setting is the mean over the two seeds' episode means
    ep = pd.concat(pd.read_csv(repo / f"data/evaluate/cheetah-run/seed{s}/episodes.csv") for s in (0, 1))
    per_seed = ep[(ep.method == "cfgrl") & (ep.setting == 1.0)].groupby("seed")["return"].mean()
    row = res[(res.method == "cfgrl") & (res.setting == 1.0)].iloc[0]
    assert row.return_mean == pytest.approx(per_seed.mean())
    summary = pd.read_csv(repo / "data/aggregate/summary.csv")
    assert summary.env.tolist() == ["cheetah-run"] and summary.seeds.tolist() == [2]
    md = (repo / "data/aggregate/summary.md").read_text()
    assert "| cheetah-run | 2 |" in md
    assert "| env | method | w=0 | w=1 | w=3 |" in md and "| cheetah-run | AWR | " in md  # every setting
    assert (repo / "data/aggregate/return_vs_w.png").read_bytes()[:4] == b"\x89PNG"
    assert (repo / "logs/label/cheetah-run/seed1.log").exists()


def test_parallel_jobs_track_to_one_mlflow_db_without_lock_errors(tiny2_run):
    repo, out = tiny2_run
    assert "database is locked" not in out
    db = sqlite3.connect(repo / "mlflow.db")
    runs = db.execute("select status from runs").fetchall()
    # dataset + 7 per-seed stages x 2 seeds + plot + render + aggregate; gc_dataset + (6 train_gc +
    # gc_evaluate) on the one gc seed + gc_plot
    n_gc = len(GC_ALGOS) + 1
    assert len(runs) == 1 + 7 * 2 + 1 + 1 + 1 + 1 + n_gc * 1 + 1 and {r[0] for r in runs} == {"FINISHED"}


def dvc_would_run(repo: Path) -> list[str]:
    return sorted(re.findall(r"Running stage '([^']+)'", run_tool(["dvc", "repro", "--dry"], repo).stdout))


def edit_params(repo: Path, section: str, key: str, value) -> None:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def test_dvc_adopts_the_snakemake_outputs(tiny2_run):
    """Snakemake records its jobs in dvc.lock when it ends: dvc repro has nothing to do."""
    repo, out = tiny2_run
    assert "dvc.lock: recorded the 28 stages of this run" in out  # its 27 jobs + the params slices
    assert dvc_would_run(repo) == []
    assert run_tool(["dvc", "status"], repo).stdout.strip() in ("", "Data and pipelines are up to date.")


def test_params_edit_after_snakemake_reruns_exactly_the_affected_dvc_stages(tiny2_run, tmp_path):
    """Outputs made by Snakemake, then an edit of the evaluate section: dvc repro reruns the params
    slices, the evaluations that read the key (evaluate; evaluate_extraction reads its timing_repeats)
    and the plot and render stages that read them; nothing else. (The
    aggregate does not rerun: timing_repeats changes no return, so the plot's outputs come out
    byte-identical and DVC, which compares contents, skips it.)"""
    repo = Path(shutil.copytree(tiny2_run[0], tmp_path / "repo", symlinks=True))
    edit_params(repo, "evaluate", "timing_repeats", 2)
    out = run_tool(["dvc", "repro"], repo, timeout=600).stdout
    ran = sorted(re.findall(r"Running stage '([^']+)'", out))
    env = "cheetah-run"
    assert ran == sorted(
        ["params", f"plot@{env}", f"render@{env}"]
        + [f"{s}@{env}-{seed}" for s in ("evaluate", "evaluate_extraction") for seed in (0, 1)]
    ), out
    assert dvc_would_run(repo) == []


# ------------------------------------------------------------------------------------------------
# make repro's driver: dvc repro with the branches side by side, on the same tiny2 profile
# ------------------------------------------------------------------------------------------------
# (the tiny2_dvc fixture, conftest.py: the same run serves test_pipeline's checks of the outputs)
def test_parallel_repro_runs_every_stage_once_with_seed_branches_overlapping(tiny2_dvc):
    repo, out = tiny2_dvc
    ran = re.findall(r"Running stage '([^']+)'", out)
    expected = ["params", "dataset@cheetah-run", "plot@cheetah-run", "render@cheetah-run", "aggregate"]
    expected += [f"{s}@cheetah-run-{seed}" for s in PER_SEED for seed in (0, 1)]
    gc = "pointmaze-medium-navigate"
    expected += [f"gc_dataset@{gc}", f"gc_plot@{gc}", f"gc_evaluate@{gc}-0"]  # tiny2: gc_seeds [0]
    expected += [f"train_gc@{gc}-0-{a}" for a in GC_ALGOS]
    assert sorted(ran) == sorted(expected), out
    assert "database is locked" not in out
    db = sqlite3.connect(repo / "mlflow.db")
    tracked = len(expected) - 1  # every stage but the params slices is an MLflow run
    assert db.execute("select status from runs").fetchall() == [("FINISHED",)] * tracked
    runs = db.execute(
        "select r.status, r.start_time, r.end_time, t.value from runs r join tags t"
        " on r.run_uuid = t.run_uuid where t.key = 'seed'"
    ).fetchall()
    runs = [r for r in runs if r[3] in ("0", "1")]
    assert len(runs) == 7 * 2 + (len(GC_ALGOS) + 1) + 1  # the per-seed stages, and render (on seed 0)
    # wave 2 ran the two seeds' branches at the same time: their spans overlap
    span = {s: [(a, b) for _, a, b, seed in runs if seed == s] for s in ("0", "1")}
    starts = {s: min(a for a, _ in span[s]) for s in span}
    ends = {s: max(b for _, b in span[s]) for s in span}
    assert max(starts.values()) < min(ends.values()), (starts, ends)
    assert "Running stage" not in run_tool(["dvc", "repro"], repo).stdout


def test_params_edit_after_dvc_reruns_exactly_the_affected_snakemake_jobs(tiny2_dvc, tmp_path):
    """Outputs made by DVC carry no Snakemake metadata: Snakemake still sees a params edit (through the
    params slices), reruns exactly the jobs it reaches, and records them in dvc.lock for DVC."""
    repo = Path(shutil.copytree(tiny2_dvc[0], tmp_path / "repo", symlinks=True))
    snake = ["snakemake", "--cores", "2"]
    assert "Nothing to be done" in run_tool([*snake, "-n"], repo).stdout
    # DVC runs of the params stage that change nothing (forced, then again) leave the slices alone
    for _ in range(2):
        assert (
            "params slices unchanged"
            in run_tool(["dvc", "repro", "--force", "--single-item", "params"], repo).stdout
        )
        assert "Nothing to be done" in run_tool([*snake, "-n"], repo).stdout
    edit_params(repo, "evaluate", "guidance_ws", [0.0, 1.0, 2.0])
    assert job_counts(run_tool([*snake, "-n"], repo).stdout) == {
        "evaluate": 2,
        "plot": 1,
        "render": 1,
        "aggregate": 1,
        "all": 1,
    }
    run_tool(snake, repo, timeout=600)
    ep = pd.read_csv(repo / "data/evaluate/cheetah-run/seed1/episodes.csv")
    assert sorted(set(ep[ep.method == "cfgrl"].setting)) == [0.0, 1.0, 2.0]
    assert "Nothing to be done" in run_tool([*snake, "-n"], repo).stdout
    assert dvc_would_run(repo) == []  # Snakemake's jobs are in dvc.lock


def test_parallel_repro_outputs_equal_the_snakemake_runs(tiny2_dvc, tiny2_run):
    """Both drivers run the same CLIs with runtime.threads = 1: bit-identical numbers, whatever ran beside."""
    dvc_repo, snake_repo = tiny2_dvc[0], tiny2_run[0]
    for seed in (0, 1):
        for rel in ("label/cheetah-run/seed{}/labels.npz", "evaluate/cheetah-run/seed{}/episodes.csv"):
            f = "data/" + rel.format(seed)
            if f.endswith(".npz"):
                a, b = np.load(dvc_repo / f), np.load(snake_repo / f)
                assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), f
            else:
                assert (dvc_repo / f).read_bytes() == (snake_repo / f).read_bytes(), f


def test_repro_waves_and_jobs():
    from pipeline_steps.both.repro import (
        BRANCH_STAGES,
        GC_BRANCH_STAGES,
        default_jobs,
        repro,
        repro_jobs,
        waves,
    )
    from pipeline_steps.core.params import load_params

    p = load_params(REPO / "profiles" / "results.yaml")
    slices, datasets, branches = waves(p)
    gc = "pointmaze-medium-navigate"
    assert slices == [["params"]]  # every stage reads the params slices: written once, first
    one = "--single-item"  # wave 0 made the slices, the datasets' one upstream stage
    assert datasets == [[one, "dataset@walker-run"], [one, "dataset@cheetah-run"], [one, f"gc_dataset@{gc}"]]
    assert len(branches) == 6 + 3 and branches[8] == [
        "--single-item",
        *(f"train_gc@{gc}-2-{a}" for a in GC_ALGOS),
        f"gc_evaluate@{gc}-2",
    ]
    assert branches[5] == [
        "--single-item",
        "label@cheetah-run-2",
        "train_cfgrl@cheetah-run-2",
        "train_awr@cheetah-run-2",
        "train_awf@cheetah-run-2",
        "train_fql@cheetah-run-2",
        "evaluate@cheetah-run-2",
        "evaluate_extraction@cheetah-run-2",
    ]
    # the goal-conditioned branches follow gc_seeds, the offline-RL ones seeds (tiny2: [0, 1] and [0])
    tiny2 = waves(load_params(REPO / "profiles" / "tiny2.yaml"))[2]
    assert [b[1] for b in tiny2] == ["label@cheetah-run-0", "label@cheetah-run-1", f"train_gc@{gc}-0-cfgrl"]
    # a branch is every per-(env, seed) stage of dvc.yaml, in the file's (upstream-first) order
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    matrix = [name for name, s in stages.items() if "matrix" in s]
    assert list(BRANCH_STAGES) + list(GC_BRANCH_STAGES) == matrix
    assert stages["train_gc"]["matrix"]["algo"] == list(GC_ALGOS)
    assert default_jobs(0) == 1  # threads 0 takes every core: one branch at a time
    assert default_jobs(1) == len(os.sched_getaffinity(0)) and default_jobs(10**6) == 1
    # make repro: one more where both halves run on one thread per stage (the gc branch beside the others)
    assert repro_jobs(p) == default_jobs(1) + 1
    assert repro_jobs(p.model_copy(update={"gc_envs": []})) == default_jobs(1)
    assert repro_jobs(p.model_copy(update={"runtime": p.runtime.model_copy(update={"threads": 0})})) == 1
    with pytest.raises(ValueError, match="at least 1, got 0"):
        repro(p, 0)


def test_repro_failed_branch_lets_its_wave_finish_then_stops(monkeypatch):
    from pipeline_steps.both import repro as driver
    from pipeline_steps.core.params import load_params

    calls = []

    def fake_dvc_repro(args: list[str]) -> int:
        calls.append(args[-1] if args else "all")
        return 1 if args and args[-1] == "evaluate_extraction@walker-run-1" else 0

    monkeypatch.setattr(driver, "dvc_repro", fake_dvc_repro)
    monkeypatch.setattr(driver.tracking, "init_store", lambda: None)
    p = load_params(REPO / "profiles" / "results.yaml")
    with pytest.raises(driver.ReproError, match="failed up to evaluate_extraction@walker-run-1"):
        driver.repro(p, 2)
    # every branch of the failed wave ran; the final plain `dvc repro` did not
    branches = [f"evaluate_extraction@{e}-{s}" for e in ("walker-run", "cheetah-run") for s in (0, 1, 2)]
    branches += [f"gc_evaluate@pointmaze-medium-navigate-{s}" for s in (0, 1, 2)]
    datasets = ["dataset@cheetah-run", "dataset@walker-run", "gc_dataset@pointmaze-medium-navigate"]
    assert calls[0] == "params" and sorted(calls[1:4]) == datasets
    assert sorted(calls[4:]) == sorted(branches)
    assert "all" not in calls
    calls.clear()
    driver.repro(p, 1)  # one job: just the plain `dvc repro`
    assert calls == ["all"]


def test_aggregate_summary_picks_bc_w1_and_best_settings():
    from pipeline_steps.both.aggregate import markdown, summarize_env

    res = pd.DataFrame(
        {
            "env": "walker-run",
            "method": ["cfgrl"] * 4 + ["awr"] * 2 + ["awf"] * 2,
            "setting": [0.0, 1.0, 3.0, 10.0, 1.0, 30.0, 3.0, 30.0],
            "seeds": 3,
            "return_mean": [20.0, 50.0, 60.0, 40.0, 30.0, 45.0, 55.0, 35.0],
            "return_ci95": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "ci_over": "seeds",
            "dataset_return_mean": 24.0,
        }
    )
    row = summarize_env(res)
    assert (row["flow_bc_mean"], row["cfgrl_w1_mean"]) == (20.0, 50.0)
    assert (row["cfgrl_best_setting"], row["cfgrl_best_mean"], row["cfgrl_best_ci95"]) == (3.0, 60.0, 3.0)
    assert (row["awr_best_setting"], row["awr_best_mean"]) == (30.0, 45.0)
    assert (row["awf_best_setting"], row["awf_best_mean"]) == (3.0, 55.0)
    md = markdown(pd.DataFrame([row]))
    row_md = (
        "| walker-run | 3 | return | 24.0 | 20.0 ± 1.0 | 50.0 ± 2.0 | 60.0 ± 3.0 (w=3) "
        "| 45.0 ± 6.0 (1/beta=30) | 55.0 ± 7.0 (1/beta=3) |"
    )
    assert row_md in md
    assert "over seeds" in md


def test_headline_metrics_are_the_summary_numbers_and_skip_missing_settings():
    """data/aggregate/metrics.json (make exps' columns): the summary's means, and no key (not a NaN,
    which is not JSON) for a setting the params do not have, e.g. no w = 1 in the w list."""
    from pipeline_steps.both.aggregate import headline_metrics, summarize_env

    res = pd.DataFrame(
        {
            "env": "walker-run",
            "method": ["cfgrl"] * 3 + ["awr"] * 2 + ["awf"],
            "setting": [0.0, 2.0, 5.0, 1.0, 30.0, 3.0],
            "seeds": 1,
            "return_mean": [20.0, 60.0, 40.0, 30.0, 45.0, 55.0],
            "return_ci95": 1.0,
            "ci_over": "episodes",
            "dataset_return_mean": 24.0,
        }
    )
    gc = pd.DataFrame(
        {
            "env": "pointmaze-medium-navigate",
            "method": ["cfgrl", "cfgrl", "flow_gcbc", "gcbc"],
            "w": [1.0, 3.0, np.nan, np.nan],
            "success": [0.2, 0.4, 0.3, 0.1],
        }
    )
    m = headline_metrics(pd.DataFrame([summarize_env(res)]), gc)["headline"]
    assert m["walker-run"] == {
        "flow_bc": 20.0,
        "cfgrl_best": 60.0,
        "cfgrl_best_w": 2.0,
        "awr_best": 45.0,
        "awr_best_inv_beta": 30.0,
        "awf_best": 55.0,
    }
    assert m["pointmaze-medium-navigate"] == {
        "success_w1": 0.2,
        "success_best": 0.4,
        "success_best_w": 3.0,
        "success_flow_gcbc": 0.3,
        "success_gcbc": 0.1,
    }


def test_repro_prints_progress_bars_as_whole_lines_at_most_one_per_interval():
    """tqdm redraws a bar in place (carriage returns): two stages side by side would share one line of a
    log. The driver passes each redraw on as a line of its own, at most one per interval, and the last."""
    import io

    from pipeline_steps.both.repro import output_lines

    now = [0.0]
    redraws = []
    for i in range(0, 101, 10):
        redraws.append(f"\rtrain 0: {i:3d}%".encode())
    stream = io.BytesIO(b"Running stage 'a':\n" + b"".join(redraws) + b"\ndone\n")

    class Ticking(io.BytesIO):  # 5 s pass between two reads of 4 bytes
        def read1(self, n):
            now[0] += 5.0
            return super().read(4)

    lines = list(output_lines(Ticking(stream.getvalue()), every=30.0, clock=lambda: now[0]))
    shown = [l for l in lines if l.startswith("train")]
    assert lines[0] == "Running stage 'a':" and lines[-1] == "done"
    assert shown[0] == "train 0:   0%" and shown[-1] == "train 0: 100%"
    assert 2 <= len(shown) < len(redraws)  # thinned out, first and last kept
    assert all("\r" not in l for l in lines)
