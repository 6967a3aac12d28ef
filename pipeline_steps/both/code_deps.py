"""The code dependencies of every stage are its imports: the files of the modules its CLI module imports,
directly or not, inside pipeline_steps (read by grimp, import-linter's graph library, from the source:
imports inside functions count), less the plumbing that cannot change an output (EXEMPT, each with its
reason), plus every non-empty package `__init__.py` on the way (Python runs them on import).

dvc.yaml lists exactly these files under each stage's deps, and the Snakemake rules read them from
dvc.yaml, so an edit reruns every stage whose outputs it can change and no other one.

    python -m pipeline_steps.both.code_deps           # list the stages whose code deps differ (exit 1)
    python -m pipeline_steps.both.code_deps --write   # rewrite them in dvc.yaml
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path

import typer
import yaml

PACKAGE = "pipeline_steps"
ROOT = Path(__file__).resolve().parents[2]

# modules no output depends on: their code is not a dependency of any stage (nor what only they import)
EXEMPT = {
    "pipeline_steps.core.tracking": "MLflow: records each run (params, metrics, logs); writes no output",
    "pipeline_steps.core.stage": "the CLI wrapper: parses options, loads params, opens the MLflow run",
}
_CMD = re.compile(r"python -m ([\w.]+)")


@cache
def _graph():
    import grimp

    graph = grimp.build_graph(PACKAGE)
    for module in EXEMPT:
        graph.remove_module(module)
    return graph


def module_file(module: str) -> Path:
    """'pipeline_steps.core.io' -> pipeline_steps/core/io.py (a package: its __init__.py)."""
    path = Path(*module.split("."))
    return path / "__init__.py" if (ROOT / path).is_dir() else path.with_suffix(".py")


def closure(module: str) -> list[str]:
    """The repo-relative files whose code can change what `module`'s CLI writes, sorted."""
    graph = _graph()
    if module not in graph.modules:
        raise ValueError(f"{module!r} is not a module of {PACKAGE}")
    modules = {module} | graph.find_upstream_modules(module)
    packages = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
    files = {module_file(m) for m in modules}
    files |= {module_file(p) for p in packages if (ROOT / module_file(p)).stat().st_size}
    return sorted(str(f) for f in files)


def _stages(dvc_yaml: Path) -> dict[str, dict]:
    """dvc.yaml stage -> its definition (a foreach stage's `do` body)."""
    return {
        name: stage.get("do") or stage
        for name, stage in yaml.safe_load(dvc_yaml.read_text())["stages"].items()
    }


def stage_modules(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, str]:
    """dvc.yaml stage -> the module its cmd runs (`python -m <module>`)."""
    out = {}
    for name, stage in _stages(dvc_yaml).items():
        cmd = stage["cmd"]
        m = _CMD.search(cmd)
        if not m:
            raise ValueError(f"dvc.yaml stage {name}: cmd {cmd!r} does not run a module of {PACKAGE}")
        out[name] = m.group(1)
    return out


def listed(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    """dvc.yaml stage -> its deps inside pipeline_steps/, as listed."""
    return {
        name: [d for d in stage.get("deps", []) if d.startswith(f"{PACKAGE}/")]
        for name, stage in _stages(dvc_yaml).items()
    }


def differences(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, tuple[list[str], list[str]]]:
    """Stage -> (missing, extra): code deps its imports need that dvc.yaml lacks, and listed ones they
    do not need (only stages with a difference)."""
    have = listed(dvc_yaml)
    out = {}
    for name, module in stage_modules(dvc_yaml).items():
        want = closure(module)
        missing, extra = sorted(set(want) - set(have[name])), sorted(set(have[name]) - set(want))
        if missing or extra:
            out[name] = (missing, extra)
    return out


def write(dvc_yaml: Path = ROOT / "dvc.yaml") -> list[str]:
    """Rewrite each stage's pipeline_steps/ deps in dvc.yaml (first in its deps, sorted; the rest of the
    file untouched). Returns the stages changed."""
    lines = dvc_yaml.read_text().splitlines(keepends=True)
    modules = stage_modules(dvc_yaml)
    changed, out, stage, i = [], [], None, 0
    while i < len(lines):
        line = lines[i]
        top = re.match(r"^  (\w+):\s*$", line)
        if top:
            stage = top.group(1)
        dep = re.match(r"^(\s+)deps:\s*$", line)
        out.append(line)
        i += 1
        if dep and stage in modules:
            indent = dep.group(1) + "  "
            old = []
            while i < len(lines) and lines[i].startswith(f"{indent}- {PACKAGE}/"):
                old.append(lines[i].strip()[2:])
                i += 1
            new = closure(modules[stage])
            out.extend(f"{indent}- {f}\n" for f in new)
            if old != new:
                changed.append(stage)
    dvc_yaml.write_text("".join(out))
    return changed


def main(write_: bool = typer.Option(False, "--write", help="rewrite dvc.yaml's code deps")):
    """Check (or rewrite) dvc.yaml's code deps against the stages' imports."""
    if write_:
        print("rewrote the code deps of:", ", ".join(write()) or "no stage")
        return
    diff = differences()
    for name, (missing, extra) in diff.items():
        print(f"{name}: missing {missing or 'none'}; not imported {extra or 'none'}")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    typer.run(main)
