"""Pruning with ``torch.nn.utils.prune`` semantics, made permanent (real zeros, no masks)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from service.domain.errors import InvalidSpec
from service.domain.steps import MagnitudePrune
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weight(module: nn.Module) -> torch.Tensor | None:
    if isinstance(module, torch.jit.ScriptModule):
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        return weight if weight is not None and weight.dim() >= 2 else None
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, nn.Parameter) else None


def _targets(model: nn.Module, step) -> list[tuple[str, nn.Module]]:
    targets = [(n, m) for n, m in select_modules(model, step, PRUNABLE) if _weight(m) is not None]
    if not targets:
        raise InvalidSpec(f"step {step.label}: no Linear/Conv layer matches include={step.include} exclude={step.exclude} op_types={step.op_types}")
    return targets


@handles(MagnitudePrune)
def magnitude_prune(model: nn.Module, step: MagnitudePrune, ctx: StepContext) -> nn.Module:
    targets = _targets(model, step)
    if isinstance(model, torch.jit.ScriptModule):
        _prune_scripted([_weight(m) for _, m in targets], step)
        ctx.notes.append(f"{step.label}: zeroed {step.amount:.0%} of weights in {len(targets)} TorchScript layers ({step.scope})")
        return model
    if step.scope == "global":
        torch_prune.global_unstructured(
            [(m, "weight") for _, m in targets], pruning_method=torch_prune.L1Unstructured, amount=step.amount
        )
    else:
        for _, m in targets:
            torch_prune.l1_unstructured(m, "weight", amount=step.amount)
    for _, m in targets:
        torch_prune.remove(m, "weight")
    ctx.notes.append(f"{step.label}: zeroed {step.amount:.0%} of weights in {len(targets)} layers ({step.scope})")
    return model


@torch.no_grad()
def _prune_scripted(weights: list[torch.Tensor], step: MagnitudePrune) -> None:
    """L1 unstructured pruning on a ScriptModule's parameters, in place (``torch.nn.utils.prune``
    cannot hook a ScriptModule): zero the ``round(amount * n)`` smallest |w|, globally or per layer."""
    groups = [weights] if step.scope == "global" else [[w] for w in weights]
    for group in groups:
        flat = torch.cat([w.detach().abs().flatten() for w in group])
        k = round(step.amount * flat.numel())
        if k == 0:
            continue
        keep = torch.ones_like(flat)
        keep[torch.topk(flat, k, largest=False).indices] = 0
        offset = 0
        for w in group:
            w.mul_(keep[offset : offset + w.numel()].view_as(w).to(w.dtype))
            offset += w.numel()
