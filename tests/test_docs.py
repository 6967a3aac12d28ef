"""The README and docs say what the repository holds: every headline number equals its results file, the
README stays short, every "method.md §N" the code cites exists, and relative links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def headline_rows() -> list[dict[str, str]]:
    section = README.split("## Headline results", 1)[1].split("\n## ", 1)[0]
    start = section.index("\n|") + 1
    lines = section[start:].split("\n\n", 1)[0].splitlines()  # the first table only
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in l.strip("|").split("|")))) for l in lines[2:]]


def setting_of(text: str) -> float | None:
    """'w=1.5, best over w' -> 1.5, '1/beta=30 ...' -> 30.0, 'N=128 ...' -> 128.0, 'alpha=0.3' -> 0.3,
    'w_high=3, w_low=1' -> 3.0, '-' -> None."""
    m = re.match(r"(?:w|w_high|1/beta|N|alpha)=([0-9.]+)", text)
    return float(m.group(1)) if m else None


def file_value(row: dict[str, str]) -> tuple[float, float, int]:
    """(mean, 95% CI half-width, seeds) of the README row, from its file, by the rule the README states."""
    table = pd.read_csv(REPO / row["file"])
    setting = setting_of(row["setting"])
    if "task" in table:  # goal-conditioned results: one env per file, the row of task 'all'
        t = table[(table.task.astype(str) == "all") & (table.method == row["method"])]
        t = t[t.w.isna()] if setting is None else t[t.w == setting]
        # HCFGRL (a w_low column): the same w at both levels unless the row names w_low
        if setting is not None and "w_low" in t and t.w_low.notna().any():
            low = re.search(r"w_low=([0-9.]+)", row["setting"])
            t = t[t.w_low == (float(low.group(1)) if low else setting)]
        (r,) = t.itertuples()
        return r.success, max(r.success_hi - r.success, r.success - r.success_lo), r.seeds
    t = table[(table.env == row["env"]) & (table.method == row["method"]) & (table.setting == setting)]
    (r,) = t.itertuples()
    value = "success" if "success_mean" in table and pd.notna(r.success_mean) else "return"
    return getattr(r, f"{value}_mean"), getattr(r, f"{value}_ci95"), r.seeds


def test_readme_is_short_and_cites_the_paper():
    assert len(README.splitlines()) <= 200
    assert "arXiv 2505.23458" in README and "@article{frans2025diffusion" in README


@pytest.mark.parametrize("row", headline_rows(), ids=lambda r: f"{r['env']}-{r['method']}-{r['setting']}")
def test_headline_number_equals_its_results_file(row):
    mean, ci, seeds = file_value(row)
    decimals = len(row["mean"].split(".")[1])
    assert row["mean"] == f"{mean:.{decimals}f}"
    assert row["95% CI"] == f"{ci:.{decimals}f}"
    assert int(row["seeds"]) == seeds


def test_headline_table_has_both_halves():
    halves = {r["half"] for r in headline_rows()}
    assert halves == {"offline RL", "goal-conditioned"}


def test_every_method_md_citation_exists():
    headings = re.findall(r"^## (\d+)\. ", (REPO / "docs" / "method.md").read_text(), re.M)
    cited = set()
    for path in [*REPO.glob("pipeline_steps/**/*.py"), *REPO.glob("profiles/*"), REPO / "params.yaml"]:
        cited |= set(re.findall(r"method\.md §(\d+)", path.read_text()))
    assert cited and cited <= set(headings), sorted(cited - set(headings))


def test_relative_links_in_readme_and_docs_resolve():
    broken = []
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)} -> {target}")
    assert not broken, broken
