"""The label / train_cfgrl / train_awr stage CLIs end to end on a tiny collected dataset
(cheetah-run, 2000 transitions), run as subprocesses in a temp dir the way dvc runs them:
outputs exist with the right content, checkpoints load and sample, a seed outside params is
refused, and training is deterministic for a seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import raw_params

from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.algorithms.iql import IQL
from pipeline_steps.core.checkpoints import load_checkpoint
from pipeline_steps.core.episodes import DatasetError, load_transitions
from pipeline_steps.core.params import LabelParams, ParamsError, parse_params
from pipeline_steps.rl import train_cfgrl

ENV = "cheetah-run"
SEED = 3
TRANSITIONS = 2000
LABEL_STEPS, LABEL_LOG = 100, 25
CFGRL_STEPS, CFGRL_LOG = 60, 20
AWR_STEPS, AWR_LOG = 50, 20
INV_BETAS = [1.0, 10.0]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def tiny_raw() -> dict:
    return raw_params(
        {
            "envs": [ENV],
            "seeds": [SEED, 5],
            "dataset.source": "collect",
            "dataset.collect.behaviour": "correlated",
            "dataset.collect.transitions": TRANSITIONS,
            "label.steps": LABEL_STEPS,
            "label.log_every": LABEL_LOG,
            "label.hidden": [32, 32],
            "label.batch_size": 128,
            "train_cfgrl.steps": CFGRL_STEPS,
            "train_cfgrl.log_every": CFGRL_LOG,
            "train_cfgrl.hidden": [32, 32],
            "train_cfgrl.batch_size": 128,
            "train_cfgrl.flow_steps": 8,
            "train_awr.steps": AWR_STEPS,
            "train_awr.log_every": AWR_LOG,
            "train_awr.hidden": [32, 32],
            "train_awr.batch_size": 128,
            "train_awr.inv_betas": INV_BETAS,
            "runtime.threads": 1,
            "runtime.compile": False,
        }
    )


def cli(stage: str, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CFGRL_TRACKING": "0", "TQDM_DISABLE": "1", "MUJOCO_GL": "egl", "COLUMNS": "250"}
    proc = subprocess.run(
        [sys.executable, "-m", f"pipeline_steps.rl.{stage}", "--params", "tiny.yaml", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{stage} {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A temp dir with tiny.yaml, the dataset, labels and both trained policies (default paths)."""
    root = tmp_path_factory.mktemp("stages")
    (root / "tiny.yaml").write_text(yaml.safe_dump(tiny_raw()))
    cli("dataset", root, "--env", ENV, "--out", str(root / "data" / "dataset" / ENV))
    cli("label", root, "--env", ENV, "--seed", str(SEED))
    cli("train_cfgrl", root, "--env", ENV, "--seed", str(SEED))
    cli("train_awr", root, "--env", ENV, "--seed", str(SEED))
    return root


def params():
    return parse_params(tiny_raw())


def label_dir(work: Path) -> Path:
    return work / "data" / "label" / ENV / f"seed{SEED}"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_dataset_stage_output(work):
    stats = read_json(work / "data" / "dataset" / ENV / "stats.json")
    tr = load_transitions(work / "data" / "dataset" / ENV / "minari")
    assert stats["transitions"] == len(tr) == TRANSITIONS
    assert tr.observations.shape == (TRANSITIONS, 17) and tr.actions.shape == (TRANSITIONS, 6)


def test_label_stage_outputs(work):
    out = label_dir(work)
    tr = load_transitions(work / "data" / "dataset" / ENV / "minari")
    with np.load(out / "labels.npz") as z:
        assert sorted(z.files) == ["advantages", "optimal"]
        adv, opt = z["advantages"], z["optimal"]
    assert adv.shape == opt.shape == (TRANSITIONS,)
    assert adv.dtype == np.float32 and opt.dtype == np.bool_
    assert np.isfinite(adv).all() and adv.std() > 0
    np.testing.assert_array_equal(opt, adv > 0.0)  # threshold 0, strict (ExORL code)
    assert 0 < opt.mean() < 1

    m = read_json(out / "metrics.json")
    assert m["transitions"] == TRANSITIONS and m["steps"] == LABEL_STEPS
    assert m["positive_frac"] == pytest.approx(float(opt.mean()), abs=1e-6)  # float32 mean
    assert m["adv_mean"] == pytest.approx(float(adv.mean()), rel=1e-5)
    assert m["adv_q50"] == pytest.approx(float(np.quantile(adv, 0.5)), rel=1e-5)
    assert m["adv_q05"] <= m["adv_q50"] <= m["adv_q95"]

    log = pd.read_csv(out / "train_log.csv")
    assert log["step"].tolist() == list(range(LABEL_LOG, LABEL_STEPS + 1, LABEL_LOG))
    assert {"critic/loss", "value/loss"} <= set(log.columns)
    assert m["critic_loss"] == pytest.approx(log["critic/loss"].iloc[-1])

    # the saved critic reproduces the saved advantages
    ckpt = load_checkpoint(out / "critic.pt", "iql")
    assert (ckpt["obs_dim"], ckpt["act_dim"], ckpt["seed"], ckpt["env"]) == (17, 6, SEED, ENV)
    agent = IQL(17, 6, LabelParams.model_validate(ckpt["config"]))
    agent.load_state_dict(ckpt["state_dict"])
    again = agent.advantage(torch.from_numpy(tr.observations), torch.from_numpy(tr.actions)).numpy()
    np.testing.assert_allclose(again, adv, rtol=1e-5, atol=1e-5)
    assert not list(out.glob(".*tmp*"))


def test_train_cfgrl_stage_outputs(work):
    out = work / "data" / "train_cfgrl" / ENV / f"seed{SEED}"
    with np.load(label_dir(work) / "labels.npz") as z:
        opt = z["optimal"]
    m = read_json(out / "metrics.json")
    assert m["positive_frac"] == pytest.approx(float(opt.mean()), abs=1e-6)  # float32 mean
    assert m["steps"] == CFGRL_STEPS
    # binary_weighted weighs a sample o + 0.1: a batch with positive share p has ESS fraction
    # (p + 0.1)^2 / (1.21 p + 0.01 (1 - p)); batches scatter around the dataset's p
    p = float(opt.mean())
    assert m["weight_ess_frac"] == pytest.approx((p + 0.1) ** 2 / (1.21 * p + 0.01 * (1 - p)), rel=0.05)
    log = pd.read_csv(out / "train_log.csv")
    assert log["step"].tolist() == [20, 40, 60]
    assert m["actor_loss"] == pytest.approx(log["actor/loss"].iloc[-1])
    assert np.isfinite(log.drop(columns="step").to_numpy()).all()

    agent = CFGRL.from_checkpoint(out / "policy.pt")
    raw = torch.load(out / "policy.pt", weights_only=False)
    assert raw["kind"] == "cfgrl" and raw["seed"] == SEED
    for k, v in raw["state_dict"].items():
        assert torch.equal(agent.state_dict()[k], v), k
    assert agent.cfg.flow_steps == 8 and agent.cfg.hidden == [32, 32]

    tr = load_transitions(work / "data" / "dataset" / ENV / "minari")
    obs = torch.from_numpy(tr.observations[:16])
    for w in (0.0, 3.0, torch.linspace(0, 5, 16)):
        a = agent.sample_actions(obs, w, generator=torch.Generator().manual_seed(0))
        assert a.shape == (16, 6) and torch.isfinite(a).all()
        assert a.abs().max() <= 1.0
    a0 = agent.sample_actions(obs, 0.0, generator=torch.Generator().manual_seed(0))
    a5 = agent.sample_actions(obs, 5.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a0, a5)  # guidance changes the actions (the two heads differ)


def test_train_awr_stage_outputs(work):
    out = work / "data" / "train_awr" / ENV / f"seed{SEED}"
    log = pd.read_csv(out / "train_log.csv")
    assert log["step"].tolist() == [20, 40, 50]
    m = read_json(out / "metrics.json")
    assert m["steps"] == AWR_STEPS
    for ib in INV_BETAS:
        tag = f"inv_beta={ib:g}"
        for key in ("loss", "ess_frac", "top1pct_share", "clipped_frac"):
            assert m[f"{tag}_{key}"] == pytest.approx(log[f"actor/{tag}/{key}"].iloc[-1])
        assert 0 < m[f"{tag}_ess_frac"] <= 1
    # a larger 1/beta concentrates the weights more
    assert m["inv_beta=10_ess_frac"] < m["inv_beta=1_ess_frac"]

    agent = AWR.from_checkpoint(out / "policies.pt")
    assert agent.inv_betas.tolist() == INV_BETAS
    tr = load_transitions(work / "data" / "dataset" / ENV / "minari")
    a = agent.sample_actions(torch.from_numpy(tr.observations[:16]))
    assert a.shape == (2, 16, 6) and a.abs().max() <= 1.0 and torch.isfinite(a).all()


@pytest.mark.parametrize("stage", ["label", "train_cfgrl", "train_awr"])
def test_seed_not_in_params_is_refused(work, stage):
    proc = cli(stage, work, "--env", ENV, "--seed", "7", "--out", str(work / "refused"), check=False)
    assert proc.returncode != 0
    assert "seed 7 is not in params seeds" in proc.stderr
    assert not (work / "refused").exists()


def test_env_not_in_params_is_refused(work):
    proc = cli("train_cfgrl", work, "--env", "walker-run", "--seed", str(SEED), check=False)
    assert proc.returncode != 0 and "walker-run" in proc.stderr


def test_train_cfgrl_is_deterministic(work, tmp_path):
    first = work / "data" / "train_cfgrl" / ENV / f"seed{SEED}"
    cli("train_cfgrl", work, "--env", ENV, "--seed", str(SEED), "--out", str(tmp_path / "again"))
    a = torch.load(first / "policy.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "again" / "policy.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    pd.testing.assert_frame_equal(
        pd.read_csv(first / "train_log.csv"), pd.read_csv(tmp_path / "again" / "train_log.csv")
    )

    # in process, another seed: different weights (so the equality above is not vacuous)
    train_cfgrl.run(
        params(),
        ENV,
        5,
        work / "data" / "dataset" / ENV / "minari",
        label_dir(work) / "labels.npz",
        tmp_path / "seed5",
    )
    c = torch.load(tmp_path / "seed5" / "policy.pt", weights_only=False)["state_dict"]
    assert not torch.equal(a["velocity.net.0.weight"], c["velocity.net.0.weight"])


def test_labels_of_another_length_are_refused(work, tmp_path):
    with np.load(label_dir(work) / "labels.npz") as z:
        np.savez(tmp_path / "labels.npz", advantages=z["advantages"][:-1], optimal=z["optimal"][:-1])
    with pytest.raises(DatasetError, match="rerun the label stage"):
        train_cfgrl.run(
            params(),
            ENV,
            SEED,
            work / "data" / "dataset" / ENV / "minari",
            tmp_path / "labels.npz",
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_periodic_evaluation_logs_returns_and_changes_no_weight(work, tmp_path):
    """eval_every: evaluation returns join the training log every eval_every steps and at the end; they
    are the current policy's (the last equals a rollout of the saved policy in the same batch), and
    training draws the same numbers as with it off (same weights, same losses)."""
    from pipeline_steps.core.rollouts import (
        awr_act_fn,
        cfgrl_act_fn,
        eval_noise_seed,
        eval_reset_seed,
        run_lockstep,
    )
    from pipeline_steps.rl import train_awr

    raw = tiny_raw()
    raw["train_cfgrl"].update(eval_every=40, eval_episodes=1, eval_ws=[1.0, 3.0])
    raw["train_awr"].update(eval_every=40, eval_episodes=1)
    p = parse_params(raw)
    dataset, labels = work / "data" / "dataset" / ENV / "minari", label_dir(work) / "labels.npz"
    train_cfgrl.run(p, ENV, SEED, dataset, labels, tmp_path / "cfgrl")
    train_awr.run(p, ENV, SEED, dataset, labels, tmp_path / "awr")
    for stage, ckpt, cols in [
        ("train_cfgrl", "policy.pt", ["eval/return/w=1", "eval/return/w=3"]),
        ("train_awr", "policies.pt", [f"eval/return/inv_beta={b:g}" for b in INV_BETAS]),
    ]:
        base = work / "data" / stage / ENV / f"seed{SEED}"
        out = tmp_path / ("cfgrl" if stage == "train_cfgrl" else "awr")
        a = torch.load(base / ckpt, weights_only=False)["state_dict"]
        b = torch.load(out / ckpt, weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), stage
        off, on = pd.read_csv(base / "train_log.csv"), pd.read_csv(out / "train_log.csv")
        pd.testing.assert_frame_equal(off, on[off.columns])
        assert [c for c in on.columns if c.startswith("eval/")] == cols
        steps = CFGRL_STEPS if stage == "train_cfgrl" else AWR_STEPS
        probed = on.dropna(subset=cols)
        assert probed.step.tolist() == [40, steps], (stage, probed.step.tolist())
        assert on[on.step.isin([40, steps])][cols].notna().all().all()
    # the last probe is the saved policy, rolled out in the same batch (evaluation episode 0)
    cfgrl = CFGRL.from_checkpoint(tmp_path / "cfgrl" / "policy.pt")
    with torch.no_grad():
        ret = run_lockstep(
            ENV,
            [eval_reset_seed(SEED, 0)] * 2,
            cfgrl_act_fn(cfgrl, np.array([1.0, 3.0]), [eval_noise_seed(SEED, 0)] * 2),
        ).returns
    last = pd.read_csv(tmp_path / "cfgrl" / "train_log.csv").iloc[-1]
    assert [last["eval/return/w=1"], last["eval/return/w=3"]] == ret.tolist()
    awr = AWR.from_checkpoint(tmp_path / "awr" / "policies.pt")
    with torch.no_grad():
        ret = run_lockstep(
            ENV, [eval_reset_seed(SEED, 0)] * len(INV_BETAS), awr_act_fn(awr, np.arange(len(INV_BETAS)))
        ).returns
    last = pd.read_csv(tmp_path / "awr" / "train_log.csv").iloc[-1]
    assert [last[f"eval/return/inv_beta={b:g}"] for b in INV_BETAS] == ret.tolist()


def test_eval_every_must_fall_on_log_rows():
    raw = tiny_raw()
    raw["train_cfgrl"]["eval_every"] = CFGRL_LOG + 1
    with pytest.raises(
        ParamsError, match=f"eval_every {CFGRL_LOG + 1} must be a multiple of log_every {CFGRL_LOG}"
    ):
        parse_params(raw)


@pytest.mark.parametrize("quiet", [True, False])
def test_stage_logs_leave_out_torch_compiles_script_method_deprecation(quiet):
    """torch.compile calls torch.jit.script_method, deprecated, where warnings are shown
    (PYTHONWARNINGS=default): a stage's log leaves it out (and, as a control, it is there without)."""
    code = (
        "import torch\nfrom pipeline_steps.core import stage\n"
        + ("stage.quiet_library_warnings()\n" if quiet else "")
        + "try:\n    torch.jit.script_method(lambda self: 1)\nexcept Exception:\n    pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "default::DeprecationWarning", "-c", code], capture_output=True, text=True
    )
    assert ("script_method" in proc.stderr) is not quiet, proc.stderr
