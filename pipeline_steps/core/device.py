"""torch set-up of every stage: the device (runtime.device), threads, seeds."""

from __future__ import annotations

import torch

from pipeline_steps.core.params import RuntimeParams


def resolve_device(name: str) -> torch.device:
    """runtime.device -> a torch device: 'auto' is cuda where torch sees a GPU, else the CPU; 'cuda'
    without a GPU is an error naming the value (a run never falls back silently)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"runtime.device = {name!r}, but torch {torch.__version__} sees no CUDA GPU here "
            "(a CPU-only torch build, or no GPU visible); use 'cpu' or 'auto'"
        )
    return torch.device(name)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's parameters live on."""
    return next(module.parameters()).device


def set_threads(runtime: RuntimeParams) -> None:
    """torch's thread count from runtime.threads (0: torch's default, all cores)."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)


def setup_torch(seed: int, runtime: RuntimeParams) -> torch.Generator:
    """Seed torch globally and return a dedicated generator, on runtime.device, for minibatch / noise
    sampling (on the CPU the same stream as before devices existed: the determinism tests hold)."""
    set_threads(runtime)
    torch.set_flush_denormal(True)  # denormal Adam moments (always-zero features) slow CPU updates ~15x
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator(device=resolve_device(runtime.device)).manual_seed(seed)
