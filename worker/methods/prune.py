"""Pruning with ``torch.nn.utils.prune`` semantics, made permanent (real zeros, no masks)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune as torch_prune

from service.domain.errors import InvalidSpec
from service.domain.steps import MagnitudePrune
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _targets(model: nn.Module, step) -> list[tuple[str, nn.Module]]:
    targets = [(n, m) for n, m in select_modules(model, step, PRUNABLE) if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not targets:
        raise InvalidSpec(f"step {step.label}: no Linear/Conv layer matches include={step.include} exclude={step.exclude} op_types={step.op_types}")
    return targets


@handles(MagnitudePrune)
def magnitude_prune(model: nn.Module, step: MagnitudePrune, ctx: StepContext) -> nn.Module:
    targets = _targets(model, step)
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
