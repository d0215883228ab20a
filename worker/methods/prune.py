"""Unstructured pruning with ``torch.nn.utils.prune`` semantics, made permanent (real zeros, no masks).

``magnitude`` (L1, or N:M groups with ``pattern``) and ``random``; structured pruning lives in
``worker.methods.structured``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import MagnitudePrune, RandomPrune
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _weight(module: nn.Module) -> torch.Tensor | None:
    if isinstance(module, torch.jit.ScriptModule):
        weight = dict(module.named_parameters(recurse=False)).get("weight")
        return weight if weight is not None and weight.dim() >= 2 else None
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, nn.Parameter) else None


def prunable_targets(model: nn.Module, step) -> list[tuple[str, nn.Module]]:
    targets = [(n, m) for n, m in select_modules(model, step, PRUNABLE) if _weight(m) is not None]
    if not targets:
        raise InvalidSpec(f"step {step.label}: no Linear/Conv layer matches include={step.include} exclude={step.exclude} op_types={step.op_types}")
    return targets


def _unstructured(targets, method, amount: float, scope: str) -> None:
    if scope == "global":
        torch_prune.global_unstructured([(m, "weight") for _, m in targets], pruning_method=method, amount=amount)
    else:
        for _, m in targets:
            method.apply(m, "weight", amount=amount)
    for _, m in targets:
        torch_prune.remove(m, "weight")


def n_m_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest |w| in every group of ``m`` consecutive weights along the input dimension."""
    flat = weight.detach().reshape(weight.shape[0], -1)
    if flat.shape[1] % m:
        raise InvalidSpec(f"pattern {n}:{m}: a layer has {flat.shape[1]} inputs per output, not a multiple of {m}; exclude it")
    groups = flat.abs().reshape(flat.shape[0], -1, m)
    keep = groups.topk(n, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(weight.shape)


@handles(MagnitudePrune)
def magnitude_prune(model: nn.Module, step: MagnitudePrune, ctx: StepContext) -> nn.Module:
    targets = prunable_targets(model, step)
    if step.n_m is not None:
        n, m = step.n_m
        with torch.no_grad():
            for _, module in targets:
                weight = _weight(module)
                weight.mul_(n_m_mask(weight, n, m))
        ctx.notes.append(f"{step.label}: {step.pattern} pattern (keep {n} largest of every {m} weights) in {len(targets)} layers")
        return model
    if isinstance(model, torch.jit.ScriptModule):
        _prune_scripted([_weight(m) for _, m in targets], step.amount, step.scope)
        ctx.notes.append(f"{step.label}: zeroed {step.amount:.0%} of weights in {len(targets)} TorchScript layers ({step.scope})")
        return model
    _unstructured(targets, torch_prune.L1Unstructured, step.amount, step.scope)
    ctx.notes.append(f"{step.label}: zeroed {step.amount:.0%} of weights in {len(targets)} layers ({step.scope})")
    return model


@torch.no_grad()
def _prune_scripted(weights: list[torch.Tensor], amount: float, scope: str) -> None:
    """L1 unstructured pruning on a ScriptModule's parameters, in place (``torch.nn.utils.prune``
    cannot hook a ScriptModule): zero the ``round(amount * n)`` smallest |w|, globally or per layer."""
    groups = [weights] if scope == "global" else [[w] for w in weights]
    for group in groups:
        flat = torch.cat([w.detach().abs().flatten() for w in group])
        k = round(amount * flat.numel())
        if k == 0:
            continue
        keep = torch.ones_like(flat)
        keep[torch.topk(flat, k, largest=False).indices] = 0
        offset = 0
        for w in group:
            w.mul_(keep[offset : offset + w.numel()].view_as(w).to(w.dtype))
            offset += w.numel()


@handles(RandomPrune)
def random_prune(model: nn.Module, step: RandomPrune, ctx: StepContext) -> nn.Module:
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidSpec("prune:random does not apply to a TorchScript upload; use prune:magnitude")
    targets = prunable_targets(model, step)
    torch.manual_seed(ctx.seed)
    _unstructured(targets, torch_prune.RandomUnstructured, step.amount, step.scope)
    ctx.notes.append(f"{step.label}: zeroed a random {step.amount:.0%} of weights in {len(targets)} layers ({step.scope}, seed {ctx.seed})")
    return model
