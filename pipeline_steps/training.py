"""Training plumbing shared by the label / train_cfgrl / train_awr stages: seeding, minibatch
sampling, the logged training loop, atomic checkpoints. No algorithm logic lives here."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pipeline_steps.config import RuntimeParams
from pipeline_steps.data import atomic_output

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A logged loss became NaN or inf; training stops before any checkpoint is written."""


def setup_torch(seed: int, runtime: RuntimeParams) -> torch.Generator:
    """Seed torch globally and return a dedicated generator for minibatch / noise sampling."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    torch.set_flush_denormal(True)  # denormal Adam moments (always-zero features) slow CPU updates ~15x
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Sampler:
    """Uniform minibatches (with replacement) from in-memory tensors of equal length."""

    def __init__(self, tensors: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator):
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors of different lengths: {lengths}")
        self.tensors, self.batch_size, self.generator = tensors, batch_size, generator
        self.n = next(iter(lengths.values()))

    def sample(self) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.n, (self.batch_size,), generator=self.generator)
        return {k: v[idx] for k, v in self.tensors.items()}


def train_loop(
    update: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    sampler: Sampler,
    steps: int,
    log_every: int,
    desc: str,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[pd.DataFrame, float]:
    """Run `steps` updates; every `log_every` steps (and at the end) read the info tensors, check them
    for NaN/inf, and record a row. Returns (log table, seconds per update)."""
    rows = []
    start = time.perf_counter()
    with tqdm(range(1, steps + 1), desc=desc, unit="step", mininterval=2.0) as bar:
        for step in bar:
            info = update(sampler.sample())
            if step % log_every == 0 or step == steps:
                row = {k: float(v) for k, v in info.items()}
                bad = {k: v for k, v in row.items() if not math.isfinite(v)}
                if bad:
                    raise NonFiniteLossError(f"{desc}: non-finite values at step {step}: {bad}")
                rows.append({"step": step, **row})
                loss_key = next((k for k in row if k.endswith("/loss")), None)
                if loss_key:
                    bar.set_postfix({loss_key: f"{row[loss_key]:.4g}"})
                if on_log is not None:
                    on_log(step, row)
    sec_per_update = (time.perf_counter() - start) / steps
    return pd.DataFrame(rows), sec_per_update


def fit(agent, data: dict[str, torch.Tensor], cfg, gen: torch.Generator, desc: str, update=None):
    """Dataset observation statistics (when cfg.normalize_obs), cfg.steps updates on uniform minibatches,
    then a check that no parameter went non-finite. Returns (log table, seconds per update)."""
    if cfg.normalize_obs:
        agent.obs_norm.fit(data["observations"])
    sampler = Sampler(data, cfg.batch_size, gen)
    train_log, sec = train_loop(update or agent.update, sampler, cfg.steps, cfg.log_every, desc=desc)
    check_finite_parameters(agent, desc)
    return train_log, sec


def save_agent(path: Path, kind: str, agent: torch.nn.Module, cfg, env: str, seed: int, act_dim: int) -> None:
    """Checkpoint with everything needed to rebuild the agent: weights (incl. observation statistics),
    its config section, dimensions, and where it came from."""
    obs_dim = agent.obs_norm.mean.shape[0]
    save_checkpoint(
        {
            "kind": kind,
            "env": env,
            "seed": seed,
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "config": cfg.model_dump(),
            "state_dict": agent.state_dict(),
        },
        path,
    )


def check_finite_parameters(module: torch.nn.Module, what: str) -> None:
    for name, p in module.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise NonFiniteLossError(f"{what}: parameter {name} contains NaN or inf; not saving a checkpoint")


def save_checkpoint(obj: dict, path: Path) -> None:
    """torch.save atomically: a reader (or a later stage) never sees a half-written checkpoint."""
    with atomic_output(path) as f:
        torch.save(obj, f)


def load_checkpoint(path: Path, kind: str) -> dict:
    """Load a checkpoint written by save_checkpoint and check it is of the expected kind."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        got = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: expected a {kind!r} checkpoint, got {got!r}")
    return ckpt


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_output(path) as f:
        np.savez(f, **arrays)


def write_csv_atomic(df: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as f:
        df.to_csv(f, index=False)


def labelled_tensors(dataset_root: Path, labels_path: Path) -> dict[str, torch.Tensor]:
    """Dataset (s, a) with the label stage's advantages and labels, checked to line up."""
    from pipeline_steps.data import DatasetError, load_transitions

    tr = load_transitions(dataset_root)
    with np.load(labels_path) as z:
        adv, opt = z["advantages"], z["optimal"]
    if len(adv) != len(tr) or len(opt) != len(tr):
        raise DatasetError(
            f"{labels_path}: {len(adv)} labels for {len(tr)} transitions of {dataset_root}; "
            "rerun the label stage"
        )
    return {
        "observations": torch.from_numpy(tr.observations),
        "actions": torch.from_numpy(tr.actions),
        "advantages": torch.from_numpy(adv.astype(np.float32)),
        "optimal": torch.from_numpy(opt.astype(bool)),
    }
