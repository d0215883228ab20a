"""Low-rank factorization: a Linear (or 1x1 Conv2d) ``W`` becomes two layers from a truncated SVD.

``W ~ (U_r sqrt(S_r)) (sqrt(S_r) V_r^T)``: the first layer maps to ``r`` features (no bias), the
second back to the outputs (with the original bias). Layers where ``r (in + out) >= in * out``
are left alone: they would not shrink.
"""

from __future__ import annotations

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import SVDLowRank
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules


def choose_rank(singular: torch.Tensor, step: SVDLowRank) -> int:
    if step.rank is not None:
        return min(step.rank, singular.numel())
    energy = (singular**2).cumsum(0) / (singular**2).sum().clamp(min=1e-30)
    return int(torch.searchsorted(energy, torch.tensor(step.energy, dtype=energy.dtype) - 1e-7).item()) + 1


def _factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).float(), (root[:, None] * vh[:rank]).float()


def _is_pointwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 and m.stride == (1, 1) and m.padding in ((0, 0), "valid")


def factorize(module: nn.Module, step: SVDLowRank) -> tuple[nn.Module, int] | None:
    weight = module.weight.detach()
    out_f, in_f = weight.shape[0], weight.shape[1]
    matrix = weight.reshape(out_f, in_f)
    singular = torch.linalg.svdvals(matrix.double())
    rank = choose_rank(singular, step)
    if rank * (in_f + out_f) >= in_f * out_f:
        return None
    first, second = _factors(matrix, rank)
    bias = module.bias is not None
    if isinstance(module, nn.Linear):
        a, b = nn.Linear(in_f, rank, bias=False), nn.Linear(rank, out_f, bias=bias)
    else:
        a, b = nn.Conv2d(in_f, rank, 1, bias=False), nn.Conv2d(rank, out_f, 1, bias=bias)
    with torch.no_grad():
        a.weight.copy_(second.reshape(a.weight.shape))
        b.weight.copy_(first.reshape(b.weight.shape))
        if bias:
            b.bias.copy_(module.bias.detach())
    return nn.Sequential(a, b).to(weight.device).eval().requires_grad_(False), rank


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def svd_targets(model: nn.Module, step) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in select_modules(model, step, (nn.Linear, nn.Conv2d)) if type(m) is nn.Linear or _is_pointwise(m)]


@handles(SVDLowRank)
def svd_lowrank(model: nn.Module, step: SVDLowRank, ctx: StepContext) -> nn.Module:
    targets = svd_targets(model, step)
    if not targets:
        raise InvalidSpec("lowrank:svd: no Linear or 1x1 Conv2d layer matches the step's targeting (k x k convolutions: lowrank:tucker2)")
    done, skipped = [], []
    for name, module in targets:
        result = factorize(module, step)
        if result is None:
            skipped.append(name)
            continue
        new, rank = result
        replace_module(model, name, new)
        done.append(f"{name}(r={rank})")
    if not done:
        raise InvalidSpec(f"lowrank:svd: no layer would shrink at rank={step.rank} energy={step.energy} ({len(skipped)} layers checked)")
    ctx.notes.append(f"{step.label}: factorized {', '.join(done)}" + (f"; left alone (would not shrink): {', '.join(skipped)}" if skipped else ""))
    return model
