"""Checkpoints of trained agents: written atomically with everything needed to rebuild the agent (weights
with observation statistics, its config, dimensions, where it came from), and read back checked for
their kind. Each algorithm's `from_checkpoint` rebuilds its agent through `restore_agent`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from pipeline_steps.core.io import atomic_output


def restore_agent(
    path: Path, kind: str, build: Callable[[dict], torch.nn.Module], device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """Rebuild a trained agent from its checkpoint (saved on any device): build(checkpoint) makes the
    module, the weights (incl. observation statistics) are loaded into it, and it is returned on
    `device`, in eval mode."""
    ckpt = load_checkpoint(path, kind)
    agent = build(ckpt)
    agent.load_state_dict(ckpt["state_dict"])
    return agent.to(device).eval()


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
            "config": cfg if isinstance(cfg, dict) else cfg.model_dump(),
            "state_dict": {k: v.cpu() for k, v in agent.state_dict().items()},  # loads on any machine
        },
        path,
    )


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
