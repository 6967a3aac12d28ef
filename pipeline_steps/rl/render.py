"""Stage `render`: what the policies do. One episode per policy from the same start state (evaluation
episode 0 of the first seed, with its flow noise), rendered offscreen on the CPU, as a frame strip:
CFGRL at w = 0 (flow BC), w = 1 and its best w, beside AWR at its best 1/beta (best: the highest mean
return in that seed's evaluate/summary.csv).

MuJoCo renders through MUJOCO_GL (egl by default here; osmesa works too). Whether it can is probed in
a child process first (a missing GL library can crash the process that tries): if it cannot, or
params render.enabled is false, the stage writes render.json with the reason, logs it and exits 0
(the pipeline goes on; after installing the libraries docs/pipeline.md names (Rendering),
`dvc repro --force render@<env>` renders).

Writes to data/render/<env>/:
  frames.png   rows: the four policies (with their return); columns: frames evenly spaced in time
  render.json  rendered (bool), reason if not, the policies' settings, returns and frame steps
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported: it reads this once

import numpy as np
import pandas as pd
import torch

from pipeline_steps.algorithms.awr import AWR
from pipeline_steps.algorithms.cfgrl import CFGRL
from pipeline_steps.core import paths, stage
from pipeline_steps.core.device import setup_torch
from pipeline_steps.core.io import clear_outputs, write_json_atomic
from pipeline_steps.core.params import Params
from pipeline_steps.core.rollouts import (
    awr_act_fn,
    cfgrl_act_fn,
    eval_noise_seed,
    eval_reset_seed,
    run_lockstep,
)
from pipeline_steps.envs import names

log = logging.getLogger(__name__)
OUTPUTS = ("frames.png", "render.json")
_PROBE = (
    "from dm_control import suite; import sys; "
    "img = suite.load('cartpole', 'balance').physics.render(height=8, width=8, camera_id=0); "
    "sys.exit(0 if img.shape == (8, 8, 3) else 3)"
)


def render_unavailable(timeout: float = 120.0) -> str | None:
    """None if MuJoCo can render offscreen here, else why not (from a child process: a missing GL
    library can kill the process that tries)."""
    backend = os.environ.get("MUJOCO_GL", "")
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"MUJOCO_GL={backend}: a test render did not finish in {timeout:.0f} s"
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    return (
        f"MUJOCO_GL={backend}: MuJoCo cannot render offscreen here ({last}); install EGL or OSMesa "
        "(docs/pipeline.md, 'Rendering') and set MUJOCO_GL=egl or osmesa"
    )


def best_setting(summary: pd.DataFrame, method: str) -> float:
    rows = summary[summary.method == method]
    return float(rows.sort_values("return_mean", kind="stable").setting.iloc[-1])


def rollout_frames(
    env: str,
    seed: int,
    cfgrl,
    awr,
    cfgrl_ws: list[float],
    awr_index: int,
    n_frames: int,
    size: tuple[int, int],
    camera: int,
    max_steps: int = 0,
):
    """One episode (evaluation episode 0 of `seed`, cut where the evaluation cuts it: max_steps, 0 = the
    env's limit) per policy, all from the same start state: CFGRL at each of `cfgrl_ws` (with episode 0's
    flow noise), then AWR policy `awr_index`. Returns (returns [P], frames [P, F, H, W, 3] uint8, the F
    steps rendered)."""
    n_cfgrl = len(cfgrl_ws)
    n = n_cfgrl + 1
    cfgrl_act = cfgrl_act_fn(cfgrl, np.asarray(cfgrl_ws), [eval_noise_seed(seed, 0)] * n_cfgrl)
    awr_act = awr_act_fn(awr, np.array([awr_index]))

    def act(obs: torch.Tensor, idx: np.ndarray) -> torch.Tensor:  # obs [n, O] -> [n, A]
        out = torch.empty(len(idx), cfgrl.act_dim)
        is_flow = idx < n_cfgrl
        if is_flow.any():
            out[torch.from_numpy(is_flow)] = cfgrl_act(obs[torch.from_numpy(is_flow)], idx[is_flow])
        if (~is_flow).any():
            out[torch.from_numpy(~is_flow)] = awr_act(
                obs[torch.from_numpy(~is_flow)], idx[~is_flow] - n_cfgrl
            )
        return out

    height, width = size
    frames: dict[int, dict[int, np.ndarray]] = {i: {} for i in range(n)}

    def on_step(envs, t: int, running: np.ndarray) -> None:
        for i in running:
            if t % every == 0 and len(frames[i]) < n_frames:
                frames[i][t] = envs[i].physics.render(height=height, width=width, camera_id=camera)

    from pipeline_steps.envs.dmc import make_env

    probe = make_env(env)
    limit = min(filter(None, (probe.spec.max_episode_steps or 1000, max_steps)))
    probe.close()
    every = max(1, limit // n_frames)
    returns = run_lockstep(env, [eval_reset_seed(seed, 0)] * n, act, limit, on_step=on_step).returns
    steps = sorted(frames[0])
    stacked = np.stack(
        [
            np.stack([frames[i].get(t, np.zeros((height, width, 3), np.uint8)) for t in steps])
            for i in range(n)
        ]
    )
    return returns, stacked, steps


def frame_strip(frames: np.ndarray, labels: list[str], steps: list[int], title: str, path: Path) -> None:
    """frames [P, F, H, W, 3]: one row per policy (its label on the left), one column per step."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = frames.shape[:2]
    h, w = frames.shape[2:4]
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols * w / h, 1.6 * n_rows), squeeze=False)
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(frames[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {steps[c]}", fontsize=8)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def run(
    params: Params, env: str, seed: int, eval_dir: Path, cfgrl_path: Path, awr_path: Path, out_dir: Path
) -> dict:
    """Render one episode of each policy (or say why not) into out_dir; returns render.json's content."""
    cfg = params.render
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir, OUTPUTS)
    reason = None if cfg.enabled else "params render.enabled is false"
    if names.is_singletask(env):  # OGBench's envs render through their own viewer: not wired here
        reason = reason or "rendering covers the dm_control envs, not OGBench's"
    reason = reason or render_unavailable()
    if reason:
        log.warning("render %s: skipped: %s", env, reason)
        info = {"rendered": False, "reason": reason}
        write_json_atomic(info, out_dir / "render.json")
        return info
    setup_torch(seed, params.runtime)  # threads; the policies run on the CPU here
    cfgrl, awr = CFGRL.from_checkpoint(cfgrl_path), AWR.from_checkpoint(awr_path)
    summary = pd.read_csv(eval_dir / "summary.csv")
    best_w, best_inv_beta = best_setting(summary, "cfgrl"), best_setting(summary, "awr")
    ws = list(dict.fromkeys([0.0, 1.0, best_w]))  # w = 0 and 1, and the best w if it is another one
    awr_index = list(awr.cfg.inv_betas).index(best_inv_beta)
    with torch.no_grad():
        returns, frames, steps = rollout_frames(
            env,
            seed,
            cfgrl,
            awr,
            ws,
            awr_index,
            cfg.frames,
            (cfg.height, cfg.width),
            cfg.camera,
            params.evaluate.max_steps,
        )

    def name(w: float) -> str:
        tags = [t for t, on in (("flow BC", w == 0), ("best", w == best_w)) if on]
        return f"CFGRL w={w:g}" + (f" ({', '.join(tags)})" if tags else "")

    policies = [name(w) for w in ws]
    policies.append(f"AWR 1/beta={best_inv_beta:g} (best)")
    labels = [f"{name}\nreturn {r:.0f}" for name, r in zip(policies, returns)]
    frame_strip(
        frames,
        labels,
        steps,
        f"{env}, seed {seed}: one episode from the same start state",
        out_dir / "frames.png",
    )
    info = {
        "rendered": True,
        "env": env,
        "seed": seed,
        "policies": [{"policy": p, "return": float(r)} for p, r in zip(policies, returns)],
        "steps": steps,
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
    }
    write_json_atomic(info, out_dir / "render.json")
    log.info("render %s: %s", env, ", ".join(f"{p}: {r:.1f}" for p, r in zip(policies, returns)))
    return info


def main(
    env: str = stage.ENV,
    params: Path = stage.PARAMS,
    out: Path = stage.out_option("data/render/<env>"),
):
    """Render one episode of CFGRL at w = 0, 1, best and of AWR's best, on the first seed."""
    p = stage.load(params, env)
    seed = p.seeds[0]
    out_dir = out or paths.render_dir(env)
    args = (
        paths.evaluate_dir(env, seed),
        paths.cfgrl_dir(env, seed) / "policy.pt",
        paths.awr_dir(env, seed) / "policies.pt",
    )
    stage.tracked("render", p, out_dir, lambda: run(p, env, seed, *args, out_dir), env=env, seed=seed)


if __name__ == "__main__":
    stage.cli(main)
