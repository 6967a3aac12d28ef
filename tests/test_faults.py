# ruff: noqa: E501  (the FAULTS table is one row per line)
"""Faults and bad input: killed stages, resumable training, determinism, bad inputs rejected before
work starts, tracking outages, numerical health. FAULTS below is the table of every case tried, with
the test that injects it and what the pipeline does; a test checks that the table points at tests
that exist."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import annotated_types as at
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import (
    REPO,
    copy_repo,
    make_params,
    raw_params,
    run_tool,
    tool_env,
    write_synthetic_dataset,
    write_synthetic_labels,
)

from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.core import training
from pipeline_steps.core.checkpoints import save_agent
from pipeline_steps.core.episodes import DatasetError, Episode, load_transitions, write_minari
from pipeline_steps.core.params import Params, ParamsError, parse_params
from pipeline_steps.core.training import RESUME_FILE, Resume
from pipeline_steps.rl import evaluate, label, train_awf, train_awr, train_cfgrl, train_fql

# (fault or bad input, test that injects it, what the pipeline does)
FAULTS = [
    ("SIGKILL of `dvc repro` during train_cfgrl", "test_sigkill_during_dvc_repro_then_repro_matches_an_uninterrupted_run",
     "no policy.pt left; the next `dvc repro` resumes from resume.pt and ends identical to an uninterrupted run"),
    ("SIGKILL of the dataset / label / train_cfgrl / evaluate CLI", "test_sigkilled_stage_cli_leaves_no_output_a_later_stage_accepts",
     "the file the next stage reads is absent (old ones too); training leaves resume.pt and the rerun resumes"),
    ("SIGKILL of the dataset CLI during an online SAC collection (sac_replay)",
     "test_sigkilled_sac_collection_leaves_no_dataset", "no minari dataset and no stats.json (old ones too)"),
    ("training stage dies after a checkpoint (each of the 4)", "test_killed_training_resumes_to_the_same_weights",
     "resumes with optimiser, RNG and step: same weights and log as an uninterrupted run"),
    ("resume.pt from other params", "test_resume_checkpoint_of_another_run_is_ignored",
     "warns and starts over (same result as a fresh run)"),
    ("resume.pt corrupt", "test_corrupt_resume_checkpoint_is_ignored", "warns and starts over"),
    ("same params and seed twice", "test_sigkill_during_dvc_repro_then_repro_matches_an_uninterrupted_run",
     "identical dataset, labels, checkpoints and evaluation returns on CPU"),
    ("every params field of the wrong type", "test_every_params_field_of_the_wrong_type_is_rejected",
     "ParamsError naming key and value, before any work"),
    ("every constrained params field out of range", "test_every_constrained_params_field_out_of_range_is_rejected",
     "ParamsError naming key and value"),
    ("quantile threshold outside (0, 1)", "test_quantile_threshold_outside_unit_interval_is_rejected", "ParamsError"),
    ("params: missing keys, unknown keys, bad YAML, missing file", "test_params.py",
     "ParamsError naming the key / file"),
    ("dataset HDF5 truncated", "test_broken_dataset_file_is_rejected", "DatasetError naming the file"),
    ("dataset file not HDF5", "test_broken_dataset_file_is_rejected", "DatasetError naming the file"),
    ("no Minari dataset under the path", "test_broken_dataset_file_is_rejected", "DatasetError"),
    ("label stage CLI on a truncated dataset", "test_label_cli_on_broken_dataset_fails_and_writes_nothing",
     "exit 1 with the message, no outputs"),
    ("NaN / inf in observations, actions or rewards", "test_non_finite_dataset_values_are_rejected",
     "DatasetError naming the array"),
    ("labels of another length than the dataset", "test_stages.py::test_labels_of_another_length_are_refused",
     "DatasetError: rerun the label stage"),
    ("checkpoint for other observation / action sizes", "test_checkpoint_for_another_env_is_rejected_before_rollouts",
     "ValueError naming both sizes, no outputs"),
    ("checkpoint of the wrong kind / not a checkpoint", "test_algorithms.py::test_save_checkpoint_atomic_and_loadable",
     "ValueError naming the file"),
    ("env id that does not exist", "test_envs.py::test_unknown_env_raises_value_error_naming_it",
     "ValueError naming it (also at params validation)"),
    ("ExORL: 404, not a zip, truncated, bad CRC, corrupt deflate, stalled, unreachable",
     "test_dataset.py::test_exorl_failure_is_a_dataset_error_and_leaves_nothing_behind",
     "DatasetError, nothing left, the next run downloads again"),
    ("ExORL archive with missing keys / mismatched lengths / wrong obs size",
     "test_dataset.py::test_exorl_failure_is_a_dataset_error_and_leaves_nothing_behind",
     "DatasetError naming the episode and key"),
    ("Minari source with wrong shapes / actions out of range",
     "test_dataset.py::test_minari_source_with_wrong_shapes_is_rejected", "DatasetError"),
    ("MLflow DB unwritable, corrupt or locked", "test_tracking.py::test_broken_store_warns_and_the_stage_completes",
     "warning; the stage finishes with complete outputs"),
    ("NaN loss (each training stage)", "test_algorithms.py::test_stage_writes_nothing_on_nan_loss",
     "NonFiniteLossError naming the step; no checkpoint"),
    ("NaN parameters without a NaN loss", "test_algorithms.py::test_stage_writes_nothing_on_nan_parameters",
     "NonFiniteLossError naming the parameter; no checkpoint"),
    ("diverging training (lr 1e30)", "test_algorithms.py::test_stage_with_huge_lr_fails_cleanly",
     "NonFiniteLossError; no checkpoint"),
    ("checkpoint write fails half-way", "test_algorithms.py::test_save_checkpoint_failure_keeps_old_file_and_leaves_no_temp",
     "old file kept, no temp file"),
    # the goal-conditioned half (OGBench)
    ("train_gc dies after a checkpoint (CFGRL, Gaussian GCBC, HCFGRL)", "test_gc.py::test_killed_train_gc_resumes_to_the_same_weights",
     "resumes with optimiser, RNG and step: same weights as an uninterrupted run"),
    ("train_gc CLI process SIGKILLed after a checkpoint",
     "test_gc.py::test_sigkilled_train_gc_cli_leaves_only_its_resume_checkpoint_and_resumes",
     "only resume.pt left (no policy.pt for gc_evaluate); the rerun resumes from its step"),
    ("OGBench download: 404, truncated, not an npz, missing keys, lengths, no final terminal, NaN",
     "test_gc.py::test_ogbench_download_failure_is_a_dataset_error_and_leaves_nothing",
     "DatasetError naming the file; no dataset, no stats, no .part file"),
    ("same gc_dataset params twice / another seed", "test_gc.py::test_generation_is_seeded_and_byte_identical",
     "byte-identical OGBench arrays; another seed gives other data"),
    ("unknown goal-conditioned env / generation without an oracle",
     "test_gc.py::test_unknown_gc_env_and_generation_without_an_oracle_are_clear_errors", "ParamsError naming the env"),
    ("goal-conditioned policy for another env's sizes", "test_gc.py::test_gc_checkpoint_for_another_env_is_rejected",
     "ValueError naming the sizes, before any rollout; no outputs"),
    ("unknown --algo", "test_gc.py::test_train_gc_cli_refuses_an_unknown_algo", "exit != 0 naming the value"),
]  # fmt: skip


def test_fault_table_points_at_existing_tests():
    for case, where, _ in FAULTS:
        module, _, name = where.rpartition("::")
        path = REPO / "tests" / (module or "test_faults.py")
        if where.endswith(".py"):
            assert path.exists(), case
            continue
        assert f"def {name}(" in path.read_text(), (case, where)


# ------------------------------------------------------------------------------------------------
# resumable training, in process: a stage that dies after a checkpoint resumes to the same weights
# ------------------------------------------------------------------------------------------------
STEPS, EVERY = 40, 10


class Killed(BaseException):
    """Stands in for SIGKILL right after a checkpoint (BaseException: nothing catches it)."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    n = write_synthetic_dataset(root / "minari", "cheetah-run", episodes=2, steps=48)
    write_synthetic_labels(root / "labels.npz", n)
    p = small_params()  # train_fql's frozen critic and teacher: untrained, of the small sizes
    save_agent(root / "critic.pt", "iql", IQL(17, 6, p.label), p.label, "cheetah-run", 0, 6)
    save_agent(root / "policy.pt", "cfgrl", CFGRL(17, 6, p.train_cfgrl), p.train_cfgrl, "cheetah-run", 0, 6)
    return root / "minari", root / "labels.npz", root / "critic.pt", root / "policy.pt"


def small_params(**over) -> Params:
    over = {
        "envs": ["cheetah-run"],
        "runtime.compile": False,
        "runtime.threads": 1,
        "runtime.checkpoint_every": EVERY,
        **{f"{s}.steps": STEPS for s in ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql")},
        **{f"{s}.log_every": 5 for s in ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql")},
        **{f"{s}.batch_size": 16 for s in ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql")},
        **{f"{s}.hidden": [16] for s in ("label", "train_cfgrl", "train_awr", "train_fql")},
        **over,
    }
    return make_params(over)


STAGES = {  # stage -> (run(params, out_dir, inputs), checkpoint file)
    "label": (lambda p, out, i: label.run(p, "cheetah-run", 0, i[0], out), "critic.pt"),
    "train_cfgrl": (lambda p, out, i: train_cfgrl.run(p, "cheetah-run", 0, *i[:2], out), "policy.pt"),
    "train_awr": (lambda p, out, i: train_awr.run(p, "cheetah-run", 0, *i[:2], out), "policies.pt"),
    "train_awf": (lambda p, out, i: train_awf.run(p, "cheetah-run", 0, *i[:2], out), "policies.pt"),
    "train_fql": (lambda p, out, i: train_fql.run(p, "cheetah-run", 0, i[0], *i[2:], out), "policies.pt"),
}


def assert_same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = (torch.load(p, weights_only=False)["state_dict"] for p in (a, b))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def kill_after_checkpoint(monkeypatch, at_step: int) -> None:
    save = Resume.save

    def save_then_die(self, step, *args):
        save(self, step, *args)
        if step == at_step:
            raise Killed

    monkeypatch.setattr(Resume, "save", save_then_die)


@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_training_resumes_to_the_same_weights(stage, inputs, tmp_path, monkeypatch, caplog):
    run, ckpt = STAGES[stage]
    p = small_params()
    run(p, tmp_path / "full", inputs)
    assert not (tmp_path / "full" / RESUME_FILE).exists()  # removed once the outputs are written

    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            run(p, tmp_path / "resumed", inputs)
    assert [f.name for f in (tmp_path / "resumed").iterdir()] == [RESUME_FILE]  # no output a stage would read

    steps_run = []
    with monkeypatch.context() as m:
        loop = training.train_loop
        m.setattr(training, "train_loop", lambda *a, **k: steps_run.append(k["start"]) or loop(*a, **k))
        with caplog.at_level(logging.INFO, logger="pipeline_steps.core.training"):
            run(p, tmp_path / "resumed", inputs)
    assert steps_run == [20] and "resuming at step 20" in caplog.text
    assert_same_checkpoint(tmp_path / "full" / ckpt, tmp_path / "resumed" / ckpt)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "full" / "train_log.csv"), pd.read_csv(tmp_path / "resumed" / "train_log.csv")
    )
    assert not (tmp_path / "resumed" / RESUME_FILE).exists()


def test_resume_checkpoint_of_another_run_is_ignored(inputs, tmp_path, monkeypatch, caplog):
    run, ckpt = STAGES["train_cfgrl"]
    with monkeypatch.context() as m:
        kill_after_checkpoint(m, 20)
        with pytest.raises(Killed):
            run(small_params(), tmp_path / "out", inputs)
    other = small_params(**{"train_cfgrl.lr": 1e-3})
    with caplog.at_level(logging.WARNING):
        run(other, tmp_path / "out", inputs)
    assert "from a different run" in caplog.text
    run(other, tmp_path / "fresh", inputs)
    assert_same_checkpoint(tmp_path / "out" / ckpt, tmp_path / "fresh" / ckpt)


def test_corrupt_resume_checkpoint_is_ignored(inputs, tmp_path, caplog):
    run, ckpt = STAGES["train_awr"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / RESUME_FILE).write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING):
        run(small_params(), tmp_path / "out", inputs)
    assert "unreadable resume checkpoint" in caplog.text
    run(small_params(), tmp_path / "fresh", inputs)
    assert_same_checkpoint(tmp_path / "out" / ckpt, tmp_path / "fresh" / ckpt)


# ------------------------------------------------------------------------------------------------
# SIGKILL in a subprocess
# ------------------------------------------------------------------------------------------------
def kill_when(proc: subprocess.Popen, path: Path, timeout: float = 300) -> None:
    """SIGKILL the process group of proc as soon as `path` exists."""
    wait_for(proc, path.exists, f"{path} appeared", timeout)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before {what}:\n{proc.communicate()[1][-3000:]}"
        assert time.monotonic() < end, f"{what} never happened"
        time.sleep(0.02)


def stage_workdir(tmp: Path, inputs) -> Path:
    """A work dir with a params file, the synthetic dataset and labels at their default paths, and
    (untrained) policies for evaluate."""
    p = raw_params(
        {
            "envs": ["cheetah-run"],
            "runtime.compile": False,
            "runtime.threads": 1,
            "runtime.checkpoint_every": 50,
            "dataset.collect.transitions": 100000,
            **{f"{s}.steps": 4000 for s in ("label", "train_cfgrl")},
            **{f"{s}.hidden": [16] for s in ("label", "train_cfgrl", "train_awr")},
            **{f"{s}.batch_size": 16 for s in ("label", "train_cfgrl")},
            "evaluate.episodes": 4,
        }
    )
    (tmp / "p.yaml").write_text(yaml.safe_dump(p))
    data = tmp / "data"
    (data / "dataset" / "cheetah-run").mkdir(parents=True)
    (data / "label" / "cheetah-run" / "seed0").mkdir(parents=True)
    shutil.copytree(inputs[0], data / "dataset" / "cheetah-run" / "minari")
    shutil.copy(inputs[1], data / "label" / "cheetah-run" / "seed0" / "labels.npz")
    params = parse_params(p)
    for kind, agent, d in [
        ("cfgrl", CFGRL(17, 6, params.train_cfgrl), "train_cfgrl"),
        ("awr", AWR(17, 6, params.train_awr), "train_awr"),
        ("awf", AWF(17, 6, params.train_cfgrl, params.train_awf), "train_awf"),
    ]:
        cfg = (
            {"net": params.train_cfgrl.model_dump(), "awf": params.train_awf.model_dump()}
            if kind == "awf"
            else agent.cfg
        )
        name = "policy.pt" if kind == "cfgrl" else "policies.pt"
        save_agent(data / d / "cheetah-run" / "seed0" / name, kind, agent, cfg, "cheetah-run", 0, 6)
    return tmp


# stage -> (its output dir, the file the next stage reads, the moment to kill)
KILLS = {
    "dataset": ("dataset/cheetah-run", "minari", "stale stats.json removed"),
    "label": ("label/cheetah-run/seed0", "labels.npz", "resume.pt written"),
    "train_cfgrl": ("train_cfgrl/cheetah-run/seed0", "policy.pt", "resume.pt written"),
    "evaluate": ("evaluate/cheetah-run/seed0", "episodes.csv", "stale episodes.csv removed"),
}


@pytest.mark.parametrize("stage", list(KILLS))
def test_sigkilled_stage_cli_leaves_no_output_a_later_stage_accepts(stage, inputs, tmp_path):
    """SIGKILL mid-way: the file the next stage reads is absent (also an older one from a previous run);
    the training stages leave resume.pt and the rerun resumes from its step."""
    work = stage_workdir(tmp_path, inputs)
    rel, consumed, moment = KILLS[stage]
    out = work / "data" / rel
    marker = out / ("stats.json" if stage == "dataset" else "episodes.csv")
    if moment.startswith("stale"):  # an output of a previous run, which the stage must not leave behind
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("stale")
        # (the dataset's older `minari` is the copy stage_workdir put there: renamed away in one step)
        ready = lambda: not marker.exists() and not (out / consumed).exists()
    else:
        ready = lambda: (out / RESUME_FILE).exists()
    cmd = [sys.executable, "-m", f"pipeline_steps.rl.{stage}", "--env", "cheetah-run", "--params", "p.yaml"]
    cmd += [] if stage == "dataset" else ["--seed", "0"]
    proc = subprocess.Popen(
        cmd, cwd=work, env=tool_env(), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    wait_for(proc, ready, moment)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / consumed).exists() and not marker.exists()
    if stage in ("label", "train_cfgrl"):
        assert {f.name for f in out.iterdir() if not f.name.startswith(".")} == {RESUME_FILE}
        step = torch.load(out / RESUME_FILE, weights_only=False)["step"]
        done = run_tool(cmd, work)
        assert f"resuming at step {step}" in done.stderr
        assert (out / consumed).exists() and not (out / RESUME_FILE).exists()


def test_sigkilled_sac_collection_leaves_no_dataset(inputs, tmp_path):
    """behaviour sac_replay: a kill while SAC trains online leaves neither the older dataset nor stats."""
    work = stage_workdir(tmp_path, inputs)
    raw = yaml.safe_load((work / "p.yaml").read_text())
    raw["dataset"]["collect"].update({"behaviour": "sac_replay", "transitions": 100000})
    raw["dataset"]["collect"]["sac"].update({"hidden": [16], "batch_size": 16, "random_steps": 200})
    (work / "p.yaml").write_text(yaml.safe_dump(raw))
    out = work / "data" / "dataset" / "cheetah-run"
    (out / "stats.json").write_text("stale")
    cmd = [sys.executable, "-m", "pipeline_steps.rl.dataset", "--env", "cheetah-run", "--params", "p.yaml"]
    proc = subprocess.Popen(
        cmd, cwd=work, env=tool_env(), stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    wait_for(proc, lambda: not (out / "stats.json").exists(), "stale stats.json removed")
    time.sleep(4)  # SAC is past its random steps, updating online
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "minari").exists() and not (out / "stats.json").exists()
    assert not any(p.name.startswith("minari") for p in out.iterdir())


KILL_PROFILE = {"train_cfgrl.steps": 3000, "runtime.checkpoint_every": 100}
KILL_TARGETS = ("train_awf@cheetah-run-0", "evaluate@cheetah-run-0")  # and everything upstream


def kill_profile_repo(root: Path) -> Path:
    repo = copy_repo(root, "tiny")
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["train_cfgrl"]["steps"] = KILL_PROFILE["train_cfgrl.steps"]
    raw["runtime"]["checkpoint_every"] = KILL_PROFILE["runtime.checkpoint_every"]
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return repo


def test_sigkill_during_dvc_repro_then_repro_matches_an_uninterrupted_run(tmp_path):
    """Also the determinism check: two pipelines from the same params and seed, one of them killed
    and resumed, give identical datasets, labels, checkpoints and evaluation returns."""
    # The offline-RL branch of seed 0 only (the goal-conditioned stages' kill / resume is covered by
    # test_killed_train_gc_resumes_to_the_same_weights and the sigkill CLI test); the uninterrupted
    # reference runs beside the killed pipeline, on the second core.
    clean = kill_profile_repo(tmp_path / "clean")
    reference = subprocess.Popen(
        ["dvc", "repro", *KILL_TARGETS], cwd=clean, env=tool_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    killed = kill_profile_repo(tmp_path / "killed")
    proc = subprocess.Popen(
        ["dvc", "repro", *KILL_TARGETS],
        cwd=killed,
        env=tool_env(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    cfgrl_dir = killed / "data/train_cfgrl/cheetah-run/seed0"
    kill_when(proc, cfgrl_dir / RESUME_FILE)
    assert not (cfgrl_dir / "policy.pt").exists()
    status = json.loads(run_tool(["dvc", "status", "--json"], killed).stdout)
    assert "train_cfgrl@cheetah-run-0" in status  # DVC does not take the killed stage as done
    again = run_tool(["dvc", "repro", *KILL_TARGETS], killed, timeout=1200)
    assert "resuming at step" in again.stdout + again.stderr
    ref_out = reference.communicate(timeout=1200)[0]
    assert reference.returncode == 0, ref_out[-4000:]

    s = "cheetah-run/seed0"
    ta, tb = (load_transitions(r / "data/dataset/cheetah-run/minari") for r in (clean, killed))
    for field in ("observations", "actions", "rewards", "next_observations", "masks"):
        np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field))
    for z in ("advantages", "optimal"):
        np.testing.assert_array_equal(
            np.load(clean / f"data/label/{s}/labels.npz")[z],
            np.load(killed / f"data/label/{s}/labels.npz")[z],
        )
    for f in (
        "label/{s}/critic.pt",
        "train_cfgrl/{s}/policy.pt",
        "train_awr/{s}/policies.pt",
        "train_awf/{s}/policies.pt",
    ):
        assert_same_checkpoint(clean / "data" / f.format(s=s), killed / "data" / f.format(s=s))
    pd.testing.assert_frame_equal(
        pd.read_csv(clean / f"data/evaluate/{s}/episodes.csv"),
        pd.read_csv(killed / f"data/evaluate/{s}/episodes.csv"),
    )


# ------------------------------------------------------------------------------------------------
# bad params: every field, generated from the schema
# ------------------------------------------------------------------------------------------------
def leaves(raw: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in raw.items():
        if isinstance(v, dict) and v:
            out += leaves(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def test_every_params_field_of_the_wrong_type_is_rejected():
    fields = leaves(raw_params())
    assert len(fields) > 60
    for key, value in fields:
        bad = 123 if isinstance(value, str) else "x"
        with pytest.raises(ParamsError) as exc:
            parse_params(raw_params({key: bad}))
        assert key in str(exc.value) and repr(bad) in str(exc.value), (key, str(exc.value))


def constraints(field) -> list:
    """The annotated_types bounds on a pydantic field, or on its list items."""
    found = [m for m in field.metadata if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le))]
    args = typing.get_args(field.annotation)
    if typing.get_origin(field.annotation) is list and args and typing.get_args(args[0]):
        found += [
            ("item", m)
            for meta in typing.get_args(args[0])[1:]
            for m in getattr(meta, "metadata", [])
            if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le))
        ]
    return found


def out_of_range(bound, kind: type):
    if isinstance(bound, at.Gt):
        return kind(bound.gt)
    if isinstance(bound, at.Ge):
        return kind(bound.ge - 1)
    if isinstance(bound, at.Lt):
        return kind(bound.lt)
    return kind(bound.le + 1)


def constrained_fields(model, prefix: str = ""):
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from constrained_fields(ann, f"{prefix}{name}.")
        else:
            for c in constraints(field):
                yield f"{prefix}{name}", c


def test_every_constrained_params_field_out_of_range_is_rejected():
    raw = raw_params()
    cases = list(constrained_fields(Params))
    assert len(cases) > 40
    for key, c in cases:
        current = dict(leaves(raw))[key]
        if isinstance(c, tuple):  # a bound on list items: one bad item
            bad = [out_of_range(c[1], type(current[0]))]
        else:
            bad = out_of_range(c, type(current))
        with pytest.raises(ParamsError) as exc:
            parse_params(raw_params({key: bad}))
        assert key in str(exc.value), (key, bad, str(exc.value))


@pytest.mark.parametrize("q", [0.0, 1.0, 1.5, -0.2])
def test_quantile_threshold_outside_unit_interval_is_rejected(q):
    with pytest.raises(ParamsError, match=f"label.threshold = {q!r}"):
        parse_params(raw_params({"label.threshold_type": "quantile", "label.threshold": q}))
    parse_params(raw_params({"label.threshold_type": "value", "label.threshold": q}))  # any value on A


# ------------------------------------------------------------------------------------------------
# bad data files and checkpoints
# ------------------------------------------------------------------------------------------------
def hdf5_of(root: Path) -> Path:
    return next(root.rglob("main_data.hdf5"))


@pytest.mark.parametrize("fault", ["truncated", "not-hdf5", "missing"])
def test_broken_dataset_file_is_rejected(tmp_path, fault):
    root = tmp_path / "minari"
    write_synthetic_dataset(root, "cheetah-run", episodes=2, steps=16)
    f = hdf5_of(root)
    if fault == "truncated":
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif fault == "not-hdf5":
        f.write_bytes(b"<html>Access denied</html>")
    else:
        f.unlink()
    with pytest.raises(DatasetError) as exc:
        load_transitions(root)
    msg = str(exc.value)
    assert str(root) in msg
    assert ("not a readable Minari dataset" in msg) if fault != "missing" else ("found 0" in msg)


def test_label_cli_on_broken_dataset_fails_and_writes_nothing(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw_params({"envs": ["cheetah-run"]})))
    root = tmp_path / "data/dataset/cheetah-run/minari"
    write_synthetic_dataset(root, "cheetah-run", episodes=2, steps=16)
    f = hdf5_of(root)
    f.write_bytes(f.read_bytes()[:1000])
    cmd = [
        sys.executable,
        "-m",
        "pipeline_steps.rl.label",
        "--env",
        "cheetah-run",
        "--seed",
        "0",
        "--params",
        "p.yaml",
    ]
    proc = run_tool(cmd, tmp_path, check=False)
    assert proc.returncode != 0 and "not a readable Minari dataset" in proc.stderr
    out = tmp_path / "data/label/cheetah-run/seed0"
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("array", ["observations", "actions", "rewards"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_dataset_values_are_rejected(tmp_path, array, value):
    rng = np.random.default_rng(0)
    T = 8
    ep = Episode(
        observations=rng.normal(size=(T + 1, 17)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(T, 6)).astype(np.float32),
        rewards=rng.uniform(size=T),
        terminations=np.zeros(T, bool),
        truncations=np.eye(1, T, T - 1, dtype=bool)[0],
    )
    getattr(ep, array)[3] = value  # after validation: as if the file held it
    write_minari([ep], "cheetah-run", "test", tmp_path / "minari", description="non-finite test")
    with pytest.raises(DatasetError, match=f"{array} contain NaN or inf"):
        load_transitions(tmp_path / "minari")


def test_checkpoint_for_another_env_is_rejected_before_rollouts(tmp_path):
    """Policies trained on cheetah-run (17 / 6) evaluated on walker-run (24 / 6)."""
    p = make_params({"envs": ["walker-run"], "train_cfgrl.hidden": [8], "train_awr.hidden": [8]})
    paths = {}
    for kind, agent in [
        ("cfgrl", CFGRL(17, 6, p.train_cfgrl)),
        ("awr", AWR(17, 6, p.train_awr)),
        ("awf", AWF(17, 6, p.train_cfgrl, p.train_awf)),
    ]:
        cfg = (
            {"net": p.train_cfgrl.model_dump(), "awf": p.train_awf.model_dump()}
            if kind == "awf"
            else agent.cfg
        )
        paths[kind] = tmp_path / f"{kind}.pt"
        save_agent(paths[kind], kind, agent, cfg, "cheetah-run", 0, 6)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="observation size 17 / action size 6, but walker-run has 24 / 6"):
        evaluate.run(p, "walker-run", 0, tmp_path / "unused", paths["cfgrl"], paths["awr"], paths["awf"], out)
    assert not out.exists() or not any(out.iterdir())
