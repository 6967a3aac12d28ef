"""`make compare`: a run's results beside a reference, setting by setting (pipeline_steps.both.compare)."""

from __future__ import annotations

import pandas as pd
import typer
from typer.testing import CliRunner

from pipeline_steps.both import compare


def write_run(root, offline: list[tuple], gc: list[tuple] | None = None):
    root.mkdir(parents=True)
    pd.DataFrame(
        offline, columns=["env", "method", "setting", "seeds", "return_mean", "return_ci95", "ci_over"]
    ).to_csv(root / "results.csv", index=False)
    if gc is not None:
        cols = ["env", "method", "w", "task", "success", "success_lo", "success_hi"]
        pd.DataFrame(gc, columns=cols).to_csv(root / "gc_results.csv", index=False)
    return root


def test_each_setting_gets_its_verdict(tmp_path):
    gc_env = "pointmaze-medium-navigate"
    run = write_run(
        tmp_path / "run",
        [
            ("walker-run", "cfgrl", 1.0, 1, 52.4, 4.1, "episodes"),  # bit-identical
            ("walker-run", "cfgrl", 3.0, 1, 60.0, 5.0, "episodes"),  # 55-65 vs 50-56: overlap
            ("cheetah-run", "awr", 30.0, 1, 80.0, 10.0, "episodes"),  # 70-90 vs 108-175: apart
            ("cheetah-run", "awf", 3.0, 1, 49.8, 5.2, "episodes"),  # only here
        ],
        [
            (gc_env, "cfgrl", 3.0, "all", 0.4, 0.2, 0.6),
            (gc_env, "flow_gcbc", float("nan"), "all", 0.3, None, None),
        ],
    )
    ref = write_run(
        tmp_path / "ref",
        [
            ("walker-run", "cfgrl", 1.0, 1, 52.4, 4.1, "episodes"),
            ("walker-run", "cfgrl", 3.0, 1, 53.0, 3.0, "episodes"),
            ("cheetah-run", "awr", 30.0, 1, 141.6, 33.8, "episodes"),
            ("cheetah-run", "cfgrl", 0.0, 1, 30.6, 4.4, "episodes"),  # only in the reference
        ],
        [
            (gc_env, "cfgrl", 3.0, "all", 0.5, 0.3, 0.7),
            (gc_env, "flow_gcbc", float("nan"), "all", 0.2, None, None),
        ],
    )
    table = compare.compare(compare.load(run), compare.load(ref)).set_index(["env", "setting"]).verdict
    assert table.to_dict() == {
        ("walker-run", "cfgrl w=1"): "identical",
        ("walker-run", "cfgrl w=3"): "agree",
        ("cheetah-run", "awr 1/beta=30"): "DIFFERS",
        ("cheetah-run", "awf 1/beta=3"): "only in run",
        ("cheetah-run", "cfgrl w=0"): "only in reference",
        (gc_env, "cfgrl w=3"): "agree",
        (gc_env, "flow_gcbc"): "no interval",
    }

    cli, app = CliRunner(), typer.Typer()
    app.command()(compare.main)
    app_args = ["--run", str(run), "--reference", str(ref)]
    res = cli.invoke(app, app_args)
    assert res.exit_code == 0, res.output
    assert "5 settings in both: 1 identical, 2 agree within their 95% intervals, 1 differ" in res.output
    assert (
        "| offline RL (return) | cheetah-run | awr 1/beta=30 | 80 [70, 90] | 142 [108, 175] | DIFFERS |"
        in res.output
    )
    assert cli.invoke(app, [*app_args, "--strict"]).exit_code == 1  # a DIFFERS fails a scripted check
    missing = cli.invoke(app, ["--run", str(tmp_path / "nowhere"), "--reference", str(ref)])
    assert missing.exit_code == 2 and "no results.csv" in missing.output


def test_hcfgrl_grid_settings_are_their_own_rows_and_old_references_still_load(tmp_path):
    gc_env = "pointmaze-medium-navigate"
    cols = ["env", "method", "w", "w_low", "task", "success", "success_lo", "success_hi"]
    run = write_run(tmp_path / "run", [("walker-run", "cfgrl", 1.0, 1, 52.4, 4.1, "episodes")])
    pd.DataFrame(
        [
            (gc_env, "cfgrl", 3.0, float("nan"), "all", 0.5, 0.3, 0.7),
            (gc_env, "hcfgrl", 3.0, 3.0, "all", 0.6, 0.4, 0.8),
            (gc_env, "hcfgrl", 3.0, 0.0, "all", 0.1, 0.0, 0.3),  # same w_high, another w_low
        ],
        columns=cols,
    ).to_csv(run / "gc_results.csv", index=False)
    ref = write_run(  # a reference made before the hierarchical policies: no w_low column
        tmp_path / "ref",
        [("walker-run", "cfgrl", 1.0, 1, 52.4, 4.1, "episodes")],
        [(gc_env, "cfgrl", 3.0, "all", 0.5, 0.3, 0.7)],
    )
    table = compare.compare(compare.load(run), compare.load(ref)).set_index(["env", "setting"]).verdict
    assert table.to_dict() == {
        ("walker-run", "cfgrl w=1"): "identical",
        (gc_env, "cfgrl w=3"): "identical",
        (gc_env, "hcfgrl w=3"): "only in run",
        (gc_env, "hcfgrl w_high=3,w_low=0"): "only in run",
    }
