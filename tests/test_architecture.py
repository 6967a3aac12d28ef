"""The architecture contract (pyproject.toml's [tool.importlinter]: layers, independent stages, no cycles)
and the code deps of every stage: dvc.yaml lists exactly the files its module imports (less the declared
plumbing), the Snakemake rules read the same lists, and the committed dvc.lock has the tree's hashes. Each
checker is also shown failing on a deliberately broken copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_steps.both import code_deps

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def broken_copy(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Path:
    """pipeline_steps/, pyproject.toml and dvc.yaml copied to tmp_path, with `edits` (file: (old, new)
    text, old must occur; old None: a new file of text new) applied."""
    shutil.copytree(
        REPO / "pipeline_steps", tmp_path / "pipeline_steps", ignore=shutil.ignore_patterns("__pycache__")
    )
    for f in ("pyproject.toml", "dvc.yaml"):
        shutil.copy(REPO / f, tmp_path / f)
    for f, (old, new) in edits.items():
        path = tmp_path / f
        if old is None:  # a new file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            continue
        text = path.read_text()
        assert old in text, (f, old)
        path.write_text(text.replace(old, new, 1))
    return tmp_path


def test_architecture_contract_holds():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout  # every contract of pyproject.toml


@pytest.mark.parametrize(
    "edits, broken",
    [
        pytest.param(  # a stage importing another stage
            {
                "pipeline_steps/rl/render.py": (
                    "import numpy as np\n",
                    "import numpy as np\n\nfrom pipeline_steps.rl import evaluate  # noqa\n",
                )
            },
            "a stage never imports another stage BROKEN",
            id="stage-imports-stage",
        ),
        pytest.param(  # a cycle inside core (io <-> checkpoints), which no layer rule sees
            {
                "pipeline_steps/core/io.py": (
                    "import pandas as pd\n",
                    "import pandas as pd\n\nfrom pipeline_steps.core import checkpoints  # noqa\n",
                )
            },
            "no import cycles among the modules of any package BROKEN",
            id="cycle-in-core",
        ),
        pytest.param(  # plumbing importing an algorithm: a layer pointing the wrong way
            {
                "pipeline_steps/core/rollouts.py": (
                    "import torch\n",
                    "import torch\n\nfrom pipeline_steps.algorithms import cfgrl  # noqa\n",
                )
            },
            "layers: stages (rl | gc | both) > datasets > algorithms > core > envs BROKEN",
            id="core-imports-algorithm",
        ),
        pytest.param(  # the env-name rules reaching for an env module (names must stay a leaf)
            {
                "pipeline_steps/envs/names.py": (
                    "import re\n",
                    "import re\n\nfrom pipeline_steps.envs import ogbench_gc  # noqa\n",
                )
            },
            "envs: the env-name rules (names) are a leaf BROKEN",
            id="names-not-a-leaf",
        ),
        pytest.param(  # a new package outside the layers
            {"pipeline_steps/extras/__init__.py": (None, "")},
            "layers: stages (rl | gc | both) > datasets > algorithms > core > envs BROKEN",
            id="package-outside-the-layers",
        ),
    ],
)
def test_architecture_contract_fails_on_a_broken_copy(tmp_path, edits, broken):
    proc = lint_imports(broken_copy(tmp_path, edits))
    assert proc.returncode != 0
    assert broken in proc.stdout, proc.stdout


def test_dvc_code_deps_are_the_stage_imports():
    stages = code_deps.stage_modules()
    assert len(stages) == 16 and set(stages) == set(code_deps.listed())  # every stage of dvc.yaml checked
    assert code_deps.differences() == {}, "run: python -m pipeline_steps.both.code_deps --write"


def test_training_does_not_depend_on_the_evaluation_stage():
    deps = code_deps.listed()
    for stage in ("train_cfgrl", "train_awr", "train_awf", "train_gc", "label"):
        assert not any(
            d.startswith(("pipeline_steps/rl/evaluate", "pipeline_steps/gc/evaluate")) for d in deps[stage]
        )
    assert "pipeline_steps/core/rollouts.py" in deps["train_cfgrl"]  # the periodic probe's rollouts
    assert "pipeline_steps/algorithms/awr.py" in deps["train_cfgrl"]  # its weight-concentration metric


def test_code_deps_leave_out_only_the_declared_plumbing():
    everything = {str(p.relative_to(REPO)) for p in (REPO / "pipeline_steps").rglob("*.py")}
    used = {d for deps in code_deps.listed().values() for d in deps}
    exempt = {str(code_deps.module_file(m)) for m in code_deps.EXEMPT}
    assert not used & exempt
    # every module is some stage's dependency, or declared plumbing, or a tool run by hand
    tools = {
        "pipeline_steps/both/code_deps.py",
        "pipeline_steps/both/compare.py",
        "pipeline_steps/both/exps.py",
        "pipeline_steps/both/repro.py",
        "pipeline_steps/core/inference.py",  # the claim statistics: no stage reads them yet
    }
    empty_inits = {f for f in everything if f.endswith("__init__.py") and not (REPO / f).stat().st_size}
    assert everything - used - exempt - tools - empty_inits == set()


def _stage_module_copy(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> dict:
    root = broken_copy(tmp_path, edits)
    code = (
        "import json, sys; from pipeline_steps.both import code_deps; "
        "print(json.dumps(code_deps.differences()))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout)


def test_deps_check_fails_on_a_missing_dep_and_on_an_unused_one(tmp_path):
    diff = _stage_module_copy(
        tmp_path / "a",
        {
            # the plot stage starts using the stats of the goal-conditioned half's oracle module
            "pipeline_steps/rl/plot.py": (
                "import numpy as np  # noqa: E402\n",
                "import numpy as np  # noqa: E402\n\nfrom pipeline_steps.datasets import oracle  # noqa\n",
            ),
        },
    )
    assert diff == {
        "plot": [["pipeline_steps/datasets/__init__.py", "pipeline_steps/datasets/oracle.py"], []]
    } or diff == {"plot": [["pipeline_steps/datasets/oracle.py"], []]}
    diff = _stage_module_copy(
        tmp_path / "b",
        {
            "dvc.yaml": (
                "      - pipeline_steps/algorithms/awr.py\n",
                "      - pipeline_steps/rl/evaluate.py\n",
            )
        },
    )
    first = next(iter(diff.values()))
    assert first == [["pipeline_steps/algorithms/awr.py"], ["pipeline_steps/rl/evaluate.py"]]


def test_snakemake_rules_read_their_code_deps_from_dvc_yaml():
    import re

    rules = {}
    for path in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule )", path.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            rules[name] = block
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(rules) == set(stages) - {"params"}  # params: DVC only (Snakemake writes the slices itself)
    for name, block in rules.items():
        assert re.findall(r"code=code\(\"(\w+)\"\)", block) == [name], name
        assert "pipeline_steps/" not in block  # no hand-written code list


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_committed_dvc_lock_has_the_code_of_the_tree():
    """On a fresh clone `dvc status` reports only outputs not yet made, never changed code: every code
    dep recorded in dvc.lock has the hash of the file in the tree, and every stage of the default
    profile is recorded with exactly dvc.yaml's code deps."""
    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    listed = code_deps.listed()
    stale, wrong_set = [], []
    for name, entry in lock.items():
        base = name.split("@")[0]
        assert base in listed, f"dvc.lock records a stage dvc.yaml does not have: {name}"
        code = {d["path"]: d["md5"] for d in entry.get("deps", []) if d["path"].startswith("pipeline_steps/")}
        stale += [
            f"{name}: {p}" for p, md5 in code.items() if not (REPO / p).is_file() or _md5(REPO / p) != md5
        ]
        if set(code) != set(listed[base]):
            wrong_set.append(name)
    assert not stale, f"dvc.lock is stale (run make repro, or dvc commit if no output changes): {stale[:5]}"
    assert not wrong_set, f"dvc.lock's code deps differ from dvc.yaml's for {wrong_set[:5]}"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    recorded = {name.split("@")[0] for name in lock}
    assert recorded == set(listed), sorted(set(listed) - recorded)
    want = {f"evaluate@{e}-{s}" for e in params["envs"] for s in params["seeds"]}
    assert want <= set(lock)
