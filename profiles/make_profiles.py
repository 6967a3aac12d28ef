"""Regenerate profiles/*.yaml from params.yaml (keeping its comments): each profile is params.yaml
with a few keys changed. Run after editing params.yaml; tests/test_params.py fails if a profile is stale.

    .venv/bin/python profiles/make_profiles.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ("label", "train_cfgrl", "train_awr", "train_awf", "train_fql")

PROFILES: dict[str, tuple[str, dict[str, str]]] = {
    "tiny": (
        "TINY profile (tests and smoke runs; numbers are meaningless)",
        {
            "envs": "[cheetah-run]",
            "dataset.collect.behaviour": "correlated",  # seconds to make (the default's SAC run: minutes)
            "dataset.collect.transitions": "2000",
            **{
                f"{s}.{k}": v
                for s in TRAINING
                for k, v in (("steps", "60"), ("log_every", "20"), ("hidden", "[32, 32]"))
                if (s, k) != ("train_awf", "hidden")  # train_awf uses train_cfgrl's network
            },
            "train_cfgrl.flow_steps": "8",
            "train_fql.alphas": "[1.0, 10.0]",
            "train_fql.flow_steps": "4",
            "extraction.candidates": "[1, 4]",
            "extraction.resample_candidates": "[4]",
            "extraction.resample_alphas": "[1.0, 10.0]",
            "extraction.flow_steps": "8",  # = train_cfgrl.flow_steps: IFQL at N = 1 is CFGRL at w = 0
            "train_cfgrl.eval_every": "0",  # periodic evaluation off in tests (tests turn it on)
            "train_awr.eval_every": "0",
            "train_awr.inv_betas": "[1.0, 10.0]",
            "evaluate.guidance_ws": "[0.0, 1.0, 3.0]",
            "evaluate.episodes": "2",
            "evaluate.max_steps": "100",
            "evaluate.drift_states": "64",
            "evaluate.timing_repeats": "3",
            "gc_dataset.generate.episodes": "3",
            "gc_dataset.generate.episode_steps": "101",
            "train_gc.steps": "60",
            "train_gc.hidden": "[32, 32]",
            "train_gc.flow_steps": "4",
            "train_gc.log_every": "20",
            "gc_evaluate.guidance_ws": "[0.0, 1.0, 3.0]",
            "gc_evaluate.level_ws": "[0.0, 3.0]",
            "gc_evaluate.episodes": "1",
            "gc_evaluate.max_steps": "50",
            "runtime.compile": "false",
            "runtime.checkpoint_every": "20",
        },
    ),
    "paper": (
        "PAPER profile (method.md: 512x3 nets, batch 1024, 1M steps, 4 seeds, the goal-conditioned half 8;"
        " days on CPU, hours on a GPU)",
        {
            "seeds": "[0, 1, 2, 3]",
            **{
                f"{s}.{k}": v
                for s in TRAINING
                for k, v in (
                    ("steps", "1000000"),
                    ("batch_size", "1024"),
                    ("hidden", "[512, 512, 512]"),
                    ("log_every", "5000"),
                )
                if (s, k) != ("train_awf", "hidden")
            },
            "train_fql.alphas": "[0.03, 0.1, 0.3, 1.0, 3.0, 10.0]",
            "train_cfgrl.eval_every": "50000",  # 20 points on the return-over-training curve
            "train_awr.eval_every": "50000",
            "train_cfgrl.eval_episodes": "5",
            "train_awr.eval_episodes": "5",
            # goal-conditioned half at the paper's sizes (method.md §8) on OGBench's recipe data
            "gc_dataset.generate.episodes": "1000",
            "train_gc.steps": "1000000",
            "train_gc.batch_size": "1024",
            "train_gc.hidden": "[512, 512, 512, 512]",
            "train_gc.log_every": "5000",
            "gc_evaluate.episodes": "15",
            "runtime.checkpoint_every": "20000",
            "runtime.threads": "0",  # all of a job's cores (Snakemake's set-threads; the SLURM profile's 8)
            "runtime.device": "cuda",  # with the SLURM profile's --gpus=1 (workflow/profiles/slurm)
        },
    ),
}
# the paper's tasks (method.md §6, §9)
TABLE1 = (  # ExORL (RND data), one archive per domain relabelled per task
    "walker-stand, walker-walk, walker-run, quadruped-walk, quadruped-run, cheetah-run, "
    "cheetah-run-backward, jaco-reach-top-left, jaco-reach-top-right"
)
TABLE2_LOCAL = (  # OGBench single-task, data that can be made here (OGBench's oracles)
    "pointmaze-large-navigate-singletask, pointmaze-teleport-navigate-singletask, "
    "cube-single-play-singletask, scene-play-singletask, puzzle-3x3-play-singletask"
)
TABLE2 = (  # + the ant / humanoid tasks, whose data needs OGBench's expert networks: download only
    TABLE2_LOCAL + ", antmaze-large-navigate-singletask, antmaze-teleport-navigate-singletask, "
    "humanoidmaze-large-navigate-singletask, antsoccer-arena-navigate-singletask"
)
PROFILES["paper"][1].update({"envs": f"[{TABLE1}]", "dataset.source": "exorl"})
PROFILES["paper"][1]["gc_seeds"] = "[0, 1, 2, 3, 4, 5, 6, 7]"  # Table 3: 8 seeds (method.md §8)
PROFILES["paper_ogbench"] = (
    "PAPER_OGBENCH profile: Table 2, OGBench single-task offline RL at the authors' settings (method.md §9:"
    " 4x512 nets, online critic for the advantage, labels A >= 0 with dropout, t ~ U[0, 1], 16 flow steps,"
    " 20 episodes, AWR 1/beta = 10) on OGBench's downloaded datasets, 4 seeds, 1M steps; for SLURM",
    {
        **PROFILES["paper"][1],
        "envs": f"[{TABLE2}]",
        "dataset.ogbench.source": "download",
        **{f"{s}.hidden": "[512, 512, 512, 512]" for s in ("label", "train_cfgrl", "train_awr")},
        "label.advantage_critic": "online",
        "label.threshold_inclusive": "true",
        "train_cfgrl.layer_norm": "false",  # the actor: GELU MLP without LayerNorm (the critic keeps it)
        "train_cfgrl.label_scheme": "ternary_dropout",
        "train_cfgrl.time_sampling": "uniform",
        "train_cfgrl.flow_steps": "16",
        "train_awr.inv_betas": "[10.0]",
        "train_awf.inv_betas": "[10.0]",
        "evaluate.guidance_ws": "[0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0]",
        "evaluate.episodes": "20",
        "render.enabled": "false",  # the render stage covers the dm_control envs
    },
)
PROFILES["breadth"] = (
    "BREADTH profile: every Table 1 and Table 2 task whose data can be made here, on one seed at a"
    " CPU budget (local collection / OGBench's oracles, 10k training steps; docs/results/breadth;"
    " `make breadth`)",
    {
        "envs": f"[{TABLE1}, {TABLE2_LOCAL}]",
        "dataset.collect.behaviour": "correlated",  # fourteen tasks: SAC data for each is out of the budget
        "dataset.collect.transitions": "100000",
        "dataset.ogbench.generate.episodes": "50",
        **{f"{s}.steps": "10000" for s in TRAINING},
        "train_cfgrl.eval_every": "0",
        "train_awr.eval_every": "0",
        "gc_dataset.generate.episodes": "100",
        "train_gc.steps": "5000",
    },
)
TABLE3 = (  # the goal-conditioned tasks with numbers quoted for flat CFGRL vs flow GCBC (method.md §8)
    "pointmaze-large-navigate, pointmaze-giant-navigate, antmaze-medium-navigate, "
    "humanoidmaze-medium-navigate"
)
PROFILES["paper_gc"] = (
    "PAPER_GC profile: Table 3, goal-conditioned CFGRL at the authors' settings (method.md §8: 4x512 GELU"
    " velocity nets, batch 1024, 1M steps, 15 episodes per task, w swept from one checkpoint, Table 3's"
    " w = 3 among them) on OGBench's downloaded datasets, 8 seeds; for SLURM (its goal-conditioned jobs:"
    " docs/pipeline.md, Profiles)",
    {
        "gc_seeds": "[0, 1, 2, 3, 4, 5, 6, 7]",
        "gc_envs": f"[{TABLE3}]",
        "gc_dataset.source": "download",
        "train_gc.steps": "1000000",
        "train_gc.batch_size": "1024",
        "train_gc.hidden": "[512, 512, 512, 512]",
        "train_gc.log_every": "5000",
        "gc_evaluate.guidance_ws": "[0.0, 0.5, 1.0, 1.25, 1.5, 2.0, 3.0]",
        "gc_evaluate.episodes": "15",
        "runtime.checkpoint_every": "20000",
        "runtime.threads": "0",
        "runtime.device": "cuda",
    },
)
# derived profiles: a base profile with more seeds
PROFILES["tiny2"] = (
    "TINY profile with 2 offline-RL seeds (the Snakemake multi-seed smoke run; the goal-conditioned half on"
    " one seed, its multi-seed table tested on its own; numbers are meaningless)",
    {**PROFILES["tiny"][1], "seeds": "[0, 1]"},
)
PROFILES["results"] = (
    "RESULTS profile: the default profile on 3 seeds (docs/results; `make results`)",
    {"seeds": "[0, 1, 2]", "gc_seeds": "[0, 1, 2]"},
)
PROFILES["gc_large"] = (
    "GC_LARGE profile: pointmaze-large-navigate on OGBench's recipe data and a larger budget"
    " (docs/results/gc_large; `make gc-large` runs its goal-conditioned jobs only)",
    {
        "gc_seeds": "[0, 1, 2]",
        "gc_envs": "[pointmaze-large-navigate]",
        "gc_dataset.generate.episodes": "1000",
        "train_gc.steps": "50000",
        "train_gc.hidden": "[256, 256, 256]",
        "gc_evaluate.episodes": "10",
    },
)
PROFILES["gc_giant"] = (
    "GC_GIANT profile: the one-seed pilot on pointmaze-giant-navigate, OGBench's recipe data (500 x 2001)"
    " at gc_large's budget (docs/results/gc_giant; `make gc-giant` runs its goal-conditioned jobs only)",
    {
        **PROFILES["gc_large"][1],
        "gc_seeds": "[0]",
        "gc_envs": "[pointmaze-giant-navigate]",
        "gc_dataset.generate.episodes": "500",
        "gc_dataset.generate.episode_steps": "2001",
    },
)


def set_key(text: str, dotted: str, value: str) -> str:
    """Replace the value of `a.b.c: value  # comment` in a YAML text, keeping the comment. A list value
    ("[1, 2]") is written as a block list, the style `dvc exp run -S` writes back (params.yaml's style)."""
    *parents, key = dotted.split(".")
    pos, indent = 0, ""
    for parent in parents:
        m = re.compile(rf"^{indent}{parent}:[^\n]*$", re.M).search(text, pos)
        assert m, f"no section {parent!r} for {dotted}"
        pos, indent = m.end(), indent + "  "
    line_re = rf"^{indent}{key}:( *)([^#\n]*?) *(#[^\n]*)?\n((?:{indent}- [^\n]*\n)*)"  # + its block list
    m = re.compile(line_re, re.M).search(text, pos)
    assert m, f"no key {dotted}"
    comment = m.group(3) or ""
    items = re.fullmatch(r"\[(.*)\]", value.strip())
    if items and items.group(1).strip():
        head, body = f"{indent}{key}:", "".join(f"{indent}- {v.strip()}\n" for v in items.group(1).split(","))
    else:
        head, body = f"{indent}{key}: {value}", ""
    column = m.start(3) - m.start() if comment else 0  # keep the comment in its column where it fits
    if not comment:
        line = head
    else:
        line = head.ljust(column - 1) + " " + comment if len(head) < column else f"{head}  {comment}"
    return text[: m.start()] + line + "\n" + body + text[m.end() :]


def render(name: str) -> str:
    title, changes = PROFILES[name]
    text = (ROOT / "params.yaml").read_text()
    text = (
        f"# {title}.\n# Generated by profiles/make_profiles.py from params.yaml: edit those, not this file.\n"
        + text
    )
    for dotted, value in changes.items():
        text = set_key(text, dotted, value)
    return text


if __name__ == "__main__":
    for name in PROFILES:
        (ROOT / "profiles" / f"{name}.yaml").write_text(render(name))
        print(f"wrote profiles/{name}.yaml")
