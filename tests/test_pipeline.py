"""Pipeline-level tests: the lockstep evaluator against a sequential loop, and `make repro`'s driver
(dvc repro) on the tiny2 profile in a temporary copy of the repo (caching, what reruns after a params
edit, the outputs)."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import run_tool

from pipeline_steps.algorithms.awf import AWF
from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.both.exps import number
from pipeline_steps.core.params import GC_ALGOS, load_params
from pipeline_steps.core.rollouts import (
    awf_act_fn,
    awr_act_fn,
    cfgrl_act_fn,
    eval_reset_seed,
    run_lockstep,
    run_sequential,
)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# A batched matmul rounds differently from a batch of one (MKL blocking), and 40 steps of
# contact dynamics amplify 1e-7 action differences to ~1e-5 of the return. A misaligned seed,
# noise stream, w or policy index changes returns by far more than this tolerance.
RTOL = 1e-3


@pytest.mark.parametrize("env_name", ["cheetah-run", "walker-run"])
def test_batched_sweep_equals_sequential_loop(env_name):
    """Every (w, episode) env in one lockstep batch returns what one-at-a-time rollouts return."""
    p = load_params(REPO / "profiles" / "tiny.yaml")
    torch.manual_seed(0)
    obs_dim, act_dim = (17, 6) if env_name == "cheetah-run" else (24, 6)
    agent = CFGRL(obs_dim, act_dim, p.train_cfgrl).eval()
    ws, n_ep = [0.0, 1.0, 3.0], 2
    seeds = [eval_reset_seed(0, e) for e in range(n_ep)] * len(ws)
    w_of_env = np.repeat(ws, n_ep)
    batched = run_lockstep(env_name, seeds, cfgrl_act_fn(agent, w_of_env, list(range(6))), max_steps=40)
    sequential = run_sequential(env_name, seeds, cfgrl_act_fn(agent, w_of_env, list(range(6))), max_steps=40)
    np.testing.assert_array_equal(batched[1], sequential[1])
    np.testing.assert_allclose(batched[0], sequential[0], rtol=RTOL, atol=1e-6)
    # the settings really differ (otherwise equality would prove nothing)
    assert len({round(r, 6) for r in batched[0]}) >= 4, batched[0]

    awr = AWR(obs_dim, act_dim, p.train_awr).eval()
    k_of_env = np.repeat(np.arange(len(p.train_awr.inv_betas)), n_ep)
    seeds_a = [eval_reset_seed(0, e) for e in range(n_ep)] * len(p.train_awr.inv_betas)
    b = run_lockstep(env_name, seeds_a, awr_act_fn(awr, k_of_env), max_steps=40)
    s = run_sequential(env_name, seeds_a, awr_act_fn(awr, k_of_env), max_steps=40)
    np.testing.assert_allclose(b[0], s[0], rtol=RTOL, atol=1e-6)
    assert len({round(r, 3) for r in b[0]}) >= 3, b[0]

    awf = AWF(obs_dim, act_dim, p.train_cfgrl, p.train_awf).eval()
    k_f = np.repeat(np.arange(len(p.train_awf.inv_betas)), n_ep)
    seeds_f = [eval_reset_seed(0, e) for e in range(n_ep)] * len(p.train_awf.inv_betas)
    noise = list(range(len(seeds_f)))
    b = run_lockstep(env_name, seeds_f, awf_act_fn(awf, k_f, noise), max_steps=40)
    s = run_sequential(env_name, seeds_f, awf_act_fn(awf, k_f, noise), max_steps=40)
    np.testing.assert_allclose(b[0], s[0], rtol=RTOL, atol=1e-6)
    assert len({round(r, 3) for r in b[0]}) >= 3, b[0]


def test_lockstep_rollouts_show_a_progress_bar_only_when_labelled(capsys, monkeypatch):
    """evaluate's sweeps print a progress bar (control steps of the batch, episodes still running);
    the unlabelled reference loop and benchmarks stay silent."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    act = lambda obs, idx: torch.zeros(len(idx), 6)  # noqa: E731
    run_lockstep("cheetah-run", [1, 2], act, max_steps=7, desc="evaluate cheetah-run seed0 CFGRL")
    err = capsys.readouterr().err
    assert "evaluate cheetah-run seed0 CFGRL" in err and "7/7" in err and "episodes running=0" in err
    run_lockstep("cheetah-run", [1], act, max_steps=3)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------------
# dvc repro on the tiny2 profile, in a temporary copy of the repo
# ------------------------------------------------------------------------------------------------
def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run_tool(cmd, cwd, check)


def _ran_stages(out: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", out)


@pytest.fixture(scope="module")
def tiny_repo(tiny2_dvc, tmp_path_factory) -> Path:
    """A copy (that these tests may edit) of the git + DVC repo that `make repro`'s driver reproduced on
    the tiny2 profile (conftest.tiny2_dvc: 2 offline-RL seeds, 1 goal-conditioned seed)."""
    dst = Path(shutil.copytree(tiny2_dvc[0], tmp_path_factory.mktemp("repo") / "repo", symlinks=True))
    dst.joinpath("first_repro.log").write_text(tiny2_dvc[1])
    return dst


def test_dvc_repro_runs_every_stage_and_writes_outputs(tiny_repo):
    ran = _ran_stages(tiny_repo.joinpath("first_repro.log").read_text())
    stages = ["dataset", "label", "train_cfgrl", "train_awr", "train_awf", "train_fql", "evaluate",
              "evaluate_extraction", "plot", "gc_dataset", "train_gc", "gc_evaluate", "gc_plot"]  # fmt: skip
    for stage in stages:
        assert any(s.startswith(stage + "@") for s in ran), (stage, ran)
    gc_episodes = pd.read_csv(tiny_repo / "data/gc_evaluate/pointmaze-medium-navigate/seed0/episodes.csv")
    assert set(gc_episodes.method) == {*GC_ALGOS, "data_policy"}
    assert gc_episodes.success.isin([0.0, 1.0]).all()
    p = load_params(tiny_repo / "params.yaml")
    per_setting = gc_episodes.groupby(["method", "w", "w_low"], dropna=False).size()
    n_tasks = len(p.gc_evaluate.tasks) * p.gc_evaluate.episodes
    assert (per_setting == n_tasks).all()
    hc = gc_episodes[gc_episodes.method == "hcfgrl"]  # the joint sweep and the off-diagonal level grid
    levels = p.gc_evaluate.level_ws
    want = {(w, w) for w in p.gc_evaluate.guidance_ws} | {(a, b) for a in levels for b in levels}
    assert set(zip(hc.w, hc.w_low)) == want
    gc_plots = tiny_repo / "data/gc_plots/pointmaze-medium-navigate"
    assert {"success", "success_lo", "success_hi", "w_low"} <= set(
        pd.read_csv(gc_plots / "results.csv").columns
    )
    for png in ("success_vs_w.png", "trajectories.png", "hier_trajectories.png"):
        assert (gc_plots / png).stat().st_size > 10_000
    md = (tiny_repo / "data/aggregate/summary.md").read_text()
    assert "| pointmaze-medium-navigate | 1 | " in md and "flow GCBC" in md  # both halves in one summary
    assert "HCFGRL w=3" in md and "Gaussian HGCBC" in md
    ev = tiny_repo / "data/evaluate/cheetah-run/seed0"
    episodes = pd.read_csv(ev / "episodes.csv")
    n_settings = len(p.evaluate.guidance_ws) + len(p.train_awr.inv_betas) + len(p.train_awf.inv_betas)
    assert len(episodes) == p.evaluate.episodes * n_settings
    assert episodes.groupby("method").size().to_dict() == {
        "cfgrl": p.evaluate.episodes * len(p.evaluate.guidance_ws),
        "awr": p.evaluate.episodes * len(p.train_awr.inv_betas),
        "awf": p.evaluate.episodes * len(p.train_awf.inv_betas),
    }
    assert set(episodes.columns) >= {"method", "setting", "seed", "episode", "return", "length"}
    assert p.evaluate.max_steps == 100 and (episodes.length == 100).all()  # cut at max_steps (cheetah: 1000)
    summary = pd.read_csv(ev / "summary.csv")
    assert set(summary.setting[summary.method == "cfgrl"]) == set(p.evaluate.guidance_ws)
    assert summary.loc[summary.method == "cfgrl"].set_index("setting").drift_from_bc[0.0] == 0.0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["timing"]["cfgrl_ms_per_action"] > 0
    assert set(pd.read_csv(tiny_repo / "data/plots/cheetah-run/results.csv").method) == {
        "cfgrl",
        "awr",
        "awf",
        "ifql",
        *(f"resample_n{n}" for n in p.extraction.resample_candidates),
        "fql",
    }
    pngs = ["return_vs_w", "drift_vs_w", "return_vs_drift", "advantage_hist", "weight_concentration"]
    for png in [*pngs, "training_curves", "return_over_training", "extraction"]:
        assert (tiny_repo / f"data/plots/cheetah-run/{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_extraction_methods_pair_with_cfgrl_on_the_same_episodes(tiny_repo):
    """evaluate_extraction runs every setting of the params on the evaluate stage's start states and
    noise: IFQL with one candidate at the trained step count is CFGRL at w = 0, episode by episode."""
    p = load_params(tiny_repo / "params.yaml")
    assert p.extraction.flow_steps == p.train_cfgrl.flow_steps  # the tiny profile's choice, for this test
    ev = pd.read_csv(tiny_repo / "data/evaluate/cheetah-run/seed0/episodes.csv")
    ex = pd.read_csv(tiny_repo / "data/evaluate_extraction/cheetah-run/seed0/episodes.csv")
    want = {("ifql", float(n)) for n in p.extraction.candidates}
    want |= {
        (f"resample_n{n}", a) for n in p.extraction.resample_candidates for a in p.extraction.resample_alphas
    }
    want |= {("fql", a) for a in p.train_fql.alphas}
    assert set(zip(ex.method, ex.setting)) == want
    assert (ex.groupby(["method", "setting"]).size() == p.evaluate.episodes).all()
    assert (ex.length == p.evaluate.max_steps).all()  # the evaluate stage's cut
    bc = ev[(ev.method == "cfgrl") & (ev.setting == 0.0)].set_index("episode")["return"]
    one = ex[(ex.method == "ifql") & (ex.setting == 1.0)].set_index("episode")["return"]
    np.testing.assert_allclose(one.to_numpy(), bc.to_numpy(), rtol=1e-4)
    timing = json.loads((tiny_repo / "data/evaluate_extraction/cheetah-run/seed0/metrics.json").read_text())[
        "timing"
    ]
    for name in ("cfgrl_w1", "awr", "fql", *(f"ifql_n{n}" for n in p.extraction.candidates)):
        assert timing[f"{name}_ms_per_action"] > timing[f"{name}_ms_per_action_batched"] > 0
    res = pd.read_csv(tiny_repo / "data/plots/cheetah-run/results.csv")
    assert {"ifql", "fql", "resample_n4"} <= set(res.method)
    assert (tiny_repo / "data/plots/cheetah-run/extraction.png").stat().st_size > 10_000
    md = (tiny_repo / "data/aggregate/summary.md").read_text()
    assert "IFQL best N" in md and "FQL best alpha" in md


def test_gc_trajectories_cover_every_task_from_one_start_per_task(tiny_repo):
    """trajectories.npz: episode 0 of every evaluation task at each trajectory w; the w values of a task
    start from the same state towards the same goal (common random numbers), tasks differ."""
    p = load_params(tiny_repo / "params.yaml")
    cfg = p.gc_evaluate
    with np.load(tiny_repo / "data/gc_evaluate/pointmaze-medium-navigate/seed0/trajectories.npz") as z:
        keys = set(z.files)
        want = {f"task{k}_{m}w={w:g}" for k in cfg.tasks for w in cfg.trajectory_ws for m in ("", "hcfgrl_")}
        subgoals = {f"task{k}_hcfgrl_w={w:g}_subgoals" for k in cfg.tasks for w in cfg.trajectory_ws}
        assert keys == want | subgoals | {f"task{k}_goal" for k in cfg.tasks}
        for k in cfg.tasks:
            starts = [z[f"task{k}_{m}w={w:g}"][0] for w in cfg.trajectory_ws for m in ("", "hcfgrl_")]
            assert all(np.array_equal(starts[0], s) for s in starts)
            for w in cfg.trajectory_ws:  # one subgoal (xy) per control step of HCFGRL's path
                path, sub = z[f"task{k}_hcfgrl_w={w:g}"], z[f"task{k}_hcfgrl_w={w:g}_subgoals"]
                assert sub.shape == (len(path) - 1, 2)
        goals = [tuple(z[f"task{k}_goal"]) for k in cfg.tasks]
        assert len(set(goals)) == len(goals)


def test_render_stage_draws_one_episode_per_policy_from_the_same_start(tiny_repo):
    """MuJoCo renders offscreen here (EGL): one strip row per policy, CFGRL at w = 0, 1 (the tiny2
    profile's best w among 0, 1, 3 decides whether there is a third CFGRL row) and AWR's best."""
    from PIL import Image

    from pipeline_steps.rl.render import render_unavailable

    out = tiny_repo / "data/render/cheetah-run"
    info = json.loads((out / "render.json").read_text())
    reason = render_unavailable()
    if reason:  # then the stage must have said so, and drawn nothing
        assert info == {"rendered": False, "reason": reason} and not (out / "frames.png").exists()
        pytest.skip(f"rendering unavailable here: {reason}")
    assert info["rendered"] and info["mujoco_gl"] in ("egl", "osmesa")
    summary = pd.read_csv(tiny_repo / "data/evaluate/cheetah-run/seed0/summary.csv")
    cf, aw = summary[summary.method == "cfgrl"], summary[summary.method == "awr"]
    best_w = cf.setting[cf.return_mean.idxmax()]
    best_b = aw.setting[aw.return_mean.idxmax()]
    names = [p["policy"] for p in info["policies"]]
    assert names[:2] == [
        "CFGRL w=0 (flow BC" + (", best)" if best_w == 0 else ")"),
        "CFGRL w=1" + (" (best)" if best_w == 1 else ""),
    ]
    assert names[-1] == f"AWR 1/beta={best_b:g} (best)" and len(names) == (3 if best_w in (0, 1) else 4)
    p = load_params(tiny_repo / "params.yaml")
    limit = p.evaluate.max_steps or 1000  # the evaluated episode: cut where the evaluation cuts it
    assert info["steps"] == [i * (limit // p.render.frames) for i in range(p.render.frames)]
    # CFGRL w = 0 and w = 1 from the same start state, with evaluation episode 0's flow noise: the
    # episodes evaluation scored (up to float rounding of another batch size; 5% on these 1000 steps)
    ep = pd.read_csv(tiny_repo / "data/evaluate/cheetah-run/seed0/episodes.csv")
    for w, rendered in zip((0.0, 1.0), info["policies"][:2]):
        scored = ep[(ep.method == "cfgrl") & (ep.setting == w) & (ep.episode == 0)]["return"].item()
        assert rendered["return"] == pytest.approx(scored, rel=0.05, abs=0.5), (w, rendered, scored)
    img = np.asarray(Image.open(out / "frames.png").convert("RGB"))
    assert img.shape[0] > 2 * p.render.height and img.shape[1] > p.render.frames * p.render.width // 2
    assert img.std() > 10  # not a blank canvas


def test_render_stage_says_why_it_skipped(tiny_repo, tmp_path, monkeypatch, caplog):
    """No GL library (a bogus MUJOCO_GL stands in) or render.enabled false: render.json gives the reason,
    no frame strip is left, and the stage does not fail."""
    from pipeline_steps.rl import render

    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    reason = render.render_unavailable()
    assert reason and reason.startswith("MUJOCO_GL=no-such-backend: MuJoCo cannot render offscreen here")
    p = load_params(tiny_repo / "params.yaml")
    (tmp_path / "frames.png").write_bytes(b"stale")
    args = (
        tiny_repo / "data/evaluate/cheetah-run/seed0",
        tmp_path / "none.pt",
        tmp_path / "none.pt",
        tmp_path,
    )
    with caplog.at_level("WARNING"):
        info = render.run(p, "cheetah-run", 0, *args)
    assert info == {"rendered": False, "reason": reason} and not (tmp_path / "frames.png").exists()
    assert json.loads((tmp_path / "render.json").read_text()) == info and reason in caplog.text
    off = p.model_copy(update={"render": p.render.model_copy(update={"enabled": False})})
    assert render.run(off, "cheetah-run", 0, *args)["reason"] == "params render.enabled is false"


def test_the_readme_way_runs_dvc_and_its_stages_from_a_clean_path(tiny_repo):
    """README: `. .venv/bin/activate`, then dvc (and the stages' `python`) are the project's, whatever
    the shell's PATH had; here from a PATH with no venv on it."""
    activate = Path(sys.executable).parent / "activate"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "CFGRL_TRACKING": "0", "MUJOCO_GL": "egl"}
    script = f". {activate} && dvc repro --force --single-item params && dvc status --quiet && echo ok"
    proc = subprocess.run(["bash", "-c", script], cwd=tiny_repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "params slices unchanged" in proc.stdout and proc.stdout.rstrip().endswith("ok")


def test_second_repro_does_nothing(tiny_repo):
    out = _run(["dvc", "repro"], tiny_repo).stdout
    assert _ran_stages(out) == [], out


def test_editing_w_list_reruns_only_evaluate_plot_and_aggregate(tiny_repo):
    """The README's experiment: `dvc exp run -S` on the w list reruns only what the list reaches, changes
    only the list's lines of params.yaml, and `make exps` shows it beside the baseline in 100 columns."""
    before = (tiny_repo / "params.yaml").read_text().splitlines()
    out = _run(["dvc", "exp", "run", "-S", "evaluate.guidance_ws=[0.0,2.0]"], tiny_repo).stdout
    # + the params slices (params.yaml changed) and the rendered episodes (they read the evaluation)
    expected = ["aggregate", "evaluate@cheetah-run-0", "evaluate@cheetah-run-1", "params", "plot@cheetah-run"]
    expected = sorted([*expected, "render@cheetah-run"])
    assert sorted(_ran_stages(out)) == expected, out
    summary = pd.read_csv(tiny_repo / "data/evaluate/cheetah-run/seed0/summary.csv")
    assert sorted(summary.setting[summary.method == "cfgrl"]) == [0.0, 2.0]
    after = (tiny_repo / "params.yaml").read_text().splitlines()
    diff = [d for d in difflib.unified_diff(before, after, n=0, lineterm="") if d[:1] in "+-"][2:]
    assert diff == ["-  - 1.0", "-  - 3.0", "+  - 2.0"], diff  # the tiny2 profile's [0.0, 1.0, 3.0]

    exp = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)
    shown = _run([sys.executable, "-m", "pipeline_steps.both.exps"], tiny_repo).stdout
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 100, shown
    assert f"{exp}  " in shown and "evaluate.guidance_ws=[0.0, 2.0]" in shown
    assert "evaluate.guidance_ws=[0.0, 1.0, 3.0]" in shown  # the baseline commit's list
    assert "runtime" not in shown and "label." not in shown  # only the params that differ
    headline = json.loads((tiny_repo / "data/aggregate/metrics.json").read_text())["headline"]
    row = next(line for line in lines[lines.index("cheetah-run (return)") :] if line.startswith(exp))
    assert row.split()[1] == number(headline["cheetah-run"]["flow_bc"])  # flow_bc, the first column


def test_editing_gc_w_list_reruns_only_gc_evaluate_gc_plot_and_aggregate(tiny_repo):
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["gc_evaluate"]["guidance_ws"] = [0.0, 1.0, 2.0, 3.0]
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params))
    out = _run(["dvc", "repro"], tiny_repo).stdout
    gc = "pointmaze-medium-navigate"
    assert sorted(_ran_stages(out)) == ["aggregate", f"gc_evaluate@{gc}-0", f"gc_plot@{gc}", "params"], out
    summary = pd.read_csv(tiny_repo / f"data/gc_evaluate/{gc}/seed0/summary.csv")
    assert sorted(summary.w[summary.method == "cfgrl"].unique()) == [0.0, 1.0, 2.0, 3.0]


def test_editing_a_dataset_param_invalidates_the_dataset_and_downstream(tiny_repo):
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["dataset"]["collect"]["correlated"]["theta"] = 0.5
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params))
    status = _run(["dvc", "status", "--json"], tiny_repo).stdout
    changed = set(json.loads(status)) - {"params"}  # the params slices: params.yaml changed
    assert "dataset@cheetah-run" in changed
    assert {
        "label@cheetah-run-0",
        "train_cfgrl@cheetah-run-0",
        "evaluate@cheetah-run-0",
    } <= changed or changed == {"dataset@cheetah-run"}  # downstream shows once the dataset hash changes


def test_noise_streams_do_not_depend_on_neighbours_and_refill():
    """Env 1's noise is the same whether it runs alone or beside others, across a block boundary."""
    from pipeline_steps.core.rollouts import NoiseStreams

    together, alone = NoiseStreams([11, 22, 33], 2, block=4), NoiseStreams([11, 22, 33], 2, block=4)
    a = torch.stack([together.next(np.array([0, 1, 2]))[1] for _ in range(10)])
    b = torch.stack([alone.next(np.array([1]))[0] for _ in range(10)])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len({tuple(v.tolist()) for v in a}) == 10  # fresh noise every step, also past the first block
    assert not torch.equal(together.next(np.array([0]))[0], together.next(np.array([2]))[0])
