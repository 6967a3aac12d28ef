"""experiments/breadth_table.py (docs/results/breadth): a finished task's row from its results and
dataset stats, and a task whose stage failed listed as missing with that stage's last log line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
from conftest import REPO


def test_breadth_table_rows_and_missing_reasons(tmp_path):
    # one finished task: a real results table (the committed breadth run's walker-run rows)
    res = pd.read_csv(REPO / "docs/results/breadth/results.csv")
    res = res[res.env == "walker-run"]
    (tmp_path / "data/plots/walker-run").mkdir(parents=True)
    res.to_csv(tmp_path / "data/plots/walker-run/results.csv", index=False)
    png = (REPO / "docs/results/breadth/walker-run_return_vs_w.png").read_bytes()
    (tmp_path / "data/plots/walker-run/return_vs_w.png").write_bytes(png)
    stats = {"transitions": 100000, "episodes": 100, "steps_per_second": 1234.0, "build_seconds": 81.0}
    for env in ("walker-run", "cheetah-run"):
        (tmp_path / f"data/dataset/{env}").mkdir(parents=True)
        (tmp_path / f"data/dataset/{env}/stats.json").write_text(json.dumps(stats))
    # cheetah-run: the dataset finished, its critic failed; walker-walk: never started
    (tmp_path / "logs/dataset").mkdir(parents=True)
    (tmp_path / "logs/dataset/cheetah-run.log").write_text("done\n")
    (tmp_path / "logs/label/cheetah-run").mkdir(parents=True)
    (tmp_path / "logs/label/cheetah-run/seed0.log").write_text(
        "Traceback (most recent call last):\n  File x\nRuntimeError: boom\n"
    )
    text = (REPO / "profiles/breadth.yaml").read_text()
    text = re.sub(r"(?m)^envs:.*\n(- .*\n)*", "envs: [walker-run, cheetah-run, walker-walk]\n", text)
    (tmp_path / "p.yaml").write_text(text)
    proc = subprocess.run(
        [sys.executable, str(REPO / "experiments/breadth_table.py"), "--params", "p.yaml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "out/table.md").read_text()
    bc = res[(res.method == "cfgrl") & (res.setting == 0.0)].iloc[0]
    bc_cell = f"{bc.return_mean:.1f} ± {bc.return_ci95:.1f}"
    row = f"| walker-run | collect, 100,000, 1,234 steps/s | return | {bc_cell} |"
    assert row in table
    assert "| cheetah-run | missing: label: RuntimeError: boom |" in table
    assert "| walker-walk | missing: dataset: not run |" in table
    assert "| 247 ± 10 | 282 ± 6 |" in table  # the paper's AWR and CFGRL beside walker-run
    summary = pd.read_csv(tmp_path / "out/summary.csv")
    assert list(summary.env) == ["walker-run"]
    assert (tmp_path / "out/walker-run_return_vs_w.png").read_bytes() == png
    assert (tmp_path / "out/return_vs_w.png").stat().st_size > 10_000
