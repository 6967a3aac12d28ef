"""Network plumbing shared by the algorithm files: MLPs, a batched ensemble MLP, Polyak averaging,
observation normalisation. No algorithm logic lives here."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn


class _MishFunction(torch.autograd.Function):
    """mish(x) = x tanh(softplus(x)) from one exp: with n = e^x, tanh(softplus(x)) = n(n+2) / (n(n+2) + 2).
    Same values as F.mish (to float32 rounding) at ~1.5x less CPU time than ATen's kernel, which is
    the largest single cost of an update at 256x2 on CPU (see benchmarks/bench_updates.py)."""

    @staticmethod
    def forward(ctx, x):
        n = torch.exp(x.clamp(max=20.0))  # tanh(softplus(x)) == 1 in float32 beyond x = 20
        m = n * (n + 2.0)
        tanh_sp = m / (m + 2.0)
        ctx.save_for_backward(x, tanh_sp, n)
        return x * tanh_sp

    @staticmethod
    def backward(ctx, grad):
        x, tanh_sp, n = ctx.saved_tensors
        sigmoid = n / (1.0 + n)  # d softplus / dx
        return grad * (tanh_sp + x * (1.0 - tanh_sp * tanh_sp) * sigmoid)


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MishFunction.apply(x)


def mlp(in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool, activation=Mish) -> nn.Sequential:
    """Linear -> [LayerNorm] -> Mish per hidden layer, then a linear head (the ExORL code's MLP)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h)] + ([nn.LayerNorm(h)] if layer_norm else []) + [activation()]
        in_dim = h
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """n independent linear layers applied as one batched matmul: x [n, B, in] -> [n, B, out]."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        # same init as n separate nn.Linear layers (kaiming-uniform with a = sqrt(5))
        bound = 1.0 / in_dim**0.5
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dim with a separate affine per ensemble member."""

    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


def ensemble_mlp(
    n: int, in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool, activation=Mish
) -> nn.Sequential:
    """n MLPs (as `mlp`) evaluated together: [n, B, in] -> [n, B, out]."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += (
            [EnsembleLinear(n, in_dim, h)]
            + ([EnsembleLayerNorm(n, h)] if layer_norm else [])
            + [activation()]
        )
        in_dim = h
    layers.append(EnsembleLinear(n, in_dim, out_dim))
    return nn.Sequential(*layers)


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, rate: float) -> None:
    """target <- (1 - rate) target + rate online, for all parameters in one fused call."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), rate)


class ObsNormalizer(nn.Module):
    """(obs - mean) / std with dataset statistics stored as buffers (so they travel in every checkpoint).
    Identity (mean 0, std 1) when normalisation is off."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(obs_dim))
        self.register_buffer("std", torch.ones(obs_dim))

    @torch.no_grad()
    def fit(self, observations: torch.Tensor, eps: float = 1e-3) -> ObsNormalizer:
        self.mean.copy_(observations.mean(0))
        self.std.copy_(observations.std(0).clamp_min(eps))
        return self

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.mean) / self.std


class GradientStep:
    """zero_grad -> loss_fn(*args) -> backward -> optimizer.step, returning loss_fn's info dict.

    With `compile`, loss_fn (a pure tensor function) runs through torch.compile (inductor, whole
    graph; its backward graph is compiled too), while the optimiser step stays eager (fused Adam).
    Any compile failure (no C++ compiler, an unsupported op), in the forward or the lazily compiled
    backward, warns once and reruns the step eagerly, for good."""

    def __init__(self, loss_fn, optimizer: torch.optim.Optimizer, compile: bool):
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.compiled = torch.compile(loss_fn, fullgraph=True) if compile else None

    def __call__(self, *args) -> dict[str, torch.Tensor]:
        while True:
            fn = self.compiled or self.loss_fn
            self.optimizer.zero_grad(set_to_none=True)
            try:
                loss, info = fn(*args)
                loss.backward()
            except Exception as err:  # noqa: BLE001 - a backend failure means: run eager
                if fn is self.loss_fn:
                    raise
                warnings.warn(
                    f"torch.compile failed ({type(err).__name__}: {err}); running eager", stacklevel=2
                )
                self.compiled = None
                continue
            self.optimizer.step()
            return {k: v.detach() for k, v in info.items()}
