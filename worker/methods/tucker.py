"""Tucker-2 decomposition of k x k convolutions (``lowrank:tucker2``).

``W (out, in, kh, kw) ~ einsum("rskl,or,is->oikl", core, U_out, U_in)``: HOSVD of the two channel
modes (leading left singular vectors of each unfolding), refined by HOOI, becomes
``Conv1x1(in -> r_in) -> Conv kxk(r_in -> r_out) -> Conv1x1(r_out -> out)``.
"""

from __future__ import annotations

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import Tucker2LowRank
from worker.methods.lowrank import replace_module
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules


def is_spatial_conv(module: nn.Module) -> bool:
    """A plain k x k Conv2d (not 1x1, not grouped, zero padding): what Tucker-2 applies to."""
    return (type(module) is nn.Conv2d and module.kernel_size != (1, 1) and module.groups == 1
            and module.padding_mode == "zeros")


def tucker2_params(out_c: int, in_c: int, kernel: tuple[int, int], r_out: int, r_in: int) -> int:
    """Weights of the three convolutions (no bias)."""
    return in_c * r_in + r_in * r_out * kernel[0] * kernel[1] + r_out * out_c


def _unfold(weight: torch.Tensor, mode: int) -> torch.Tensor:
    return weight.movedim(mode, 0).reshape(weight.shape[mode], -1)


def _energy_rank(matrix: torch.Tensor, energy: float) -> int:
    singular = torch.linalg.svdvals(matrix)
    share = (singular**2).cumsum(0) / (singular**2).sum().clamp(min=1e-30)
    return int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype) - 1e-7).item()) + 1


def choose_ranks(weight: torch.Tensor, step: Tucker2LowRank) -> tuple[int, int]:
    out_c, in_c = weight.shape[:2]
    if step.rank is not None:
        return min(step.rank, out_c), min(step.rank, in_c)
    w = weight.double()
    return _energy_rank(_unfold(w, 0), step.energy), _energy_rank(_unfold(w, 1), step.energy)


def _leading(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    return torch.linalg.svd(matrix, full_matrices=False)[0][:, :rank]


def tucker2(weight: torch.Tensor, r_out: int, r_in: int, iterations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(core (r_out, r_in, kh, kw), U_out (out, r_out), U_in (in, r_in)) by HOSVD + HOOI, in float64."""
    w = weight.double()
    u_out, u_in = _leading(_unfold(w, 0), r_out), _leading(_unfold(w, 1), r_in)
    for _ in range(iterations):
        u_out = _leading(_unfold(torch.einsum("oikl,is->oskl", w, u_in), 0), r_out)
        u_in = _leading(_unfold(torch.einsum("oikl,or->rikl", w, u_out), 1), r_in)
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)
    return core, u_out, u_in


def decompose(conv: nn.Conv2d, step: Tucker2LowRank) -> tuple[nn.Module, tuple[int, int]] | None:
    weight = conv.weight.detach()
    out_c, in_c = weight.shape[:2]
    r_out, r_in = choose_ranks(weight, step)
    if tucker2_params(out_c, in_c, conv.kernel_size, r_out, r_in) >= weight.numel():
        return None
    core, u_out, u_in = tucker2(weight, r_out, r_in, step.iterations)
    first = nn.Conv2d(in_c, r_in, 1, bias=False)
    middle = nn.Conv2d(r_in, r_out, conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, bias=False)
    last = nn.Conv2d(r_out, out_c, 1, bias=conv.bias is not None)
    with torch.no_grad():
        first.weight.copy_(u_in.T.reshape(r_in, in_c, 1, 1).float())
        middle.weight.copy_(core.float())
        last.weight.copy_(u_out.reshape(out_c, r_out, 1, 1).float())
        if conv.bias is not None:
            last.bias.copy_(conv.bias.detach())
    return nn.Sequential(first, middle, last).to(weight.device).eval().requires_grad_(False), (r_out, r_in)


@handles(Tucker2LowRank)
def tucker2_lowrank(model: nn.Module, step: Tucker2LowRank, ctx: StepContext) -> nn.Module:
    targets = [(n, m) for n, m in select_modules(model, step, (nn.Conv2d,)) if is_spatial_conv(m)]
    if not targets:
        raise InvalidSpec("lowrank:tucker2: no k x k Conv2d (groups 1) matches the step's targeting")
    done, skipped = [], []
    for name, conv in targets:
        result = decompose(conv, step)
        if result is None:
            skipped.append(name)
            continue
        new, (r_out, r_in) = result
        replace_module(model, name, new)
        done.append(f"{name}(r_out={r_out}, r_in={r_in})")
    if not done:
        raise InvalidSpec(f"lowrank:tucker2: no convolution would shrink at rank={step.rank} energy={step.energy} "
                          f"({len(skipped)} checked)")
    ctx.notes.append(f"{step.label}: decomposed {', '.join(done)} (HOSVD + {step.iterations} HOOI iterations)"
                     + (f"; left alone (would not shrink): {', '.join(skipped)}" if skipped else ""))
    return model
