"""Mask-based pruning with ``torch.nn.utils.prune`` semantics: ``magnitude`` (L1, or N:M groups with
``pattern``), ``random``, ``ln_structured`` and ``random_structured``.

Every kind calls torch's own pruning functions, so the masks are the ones torch computes by hand:
repeated steps prune a fraction of what remains (``of: remaining``; ``worker.methods.masks`` gives
each parameter its earlier mask back first), ``of: all`` is turned into torch's integer amount.
Structured pruning that removes channels lives in ``worker.methods.structured``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import LnStructuredPrune, MagnitudePrune, RandomPrune, RandomStructuredPrune
from worker.methods import masks as mask_state
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Entry = tuple[str, nn.Module, str]  # (module name, module, parameter name)


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


def _entries(model: nn.Module, step) -> list[Entry]:
    entries = [(name, module, param) for name, module in prunable_targets(model, step) for param in step.parameters
               if isinstance(getattr(module, param, None), nn.Parameter)]
    if not entries:
        raise InvalidSpec(f"step {step.label}: the targeted layers have no {' or '.join(step.parameters)} to prune")
    return entries


def _key(name: str, param: str) -> str:
    return f"{name}.{param}" if name else param


def _units(mask: torch.Tensor, dim: int | None) -> tuple[int, int]:
    """(units, units already pruned): elements, or channels along ``dim`` (a channel is pruned when all of it is)."""
    if dim is None:
        return mask.numel(), int((mask == 0).sum())
    others = [d for d in range(mask.dim()) if d != dim]
    alive = mask.sum(dim=others) != 0 if others else mask != 0
    return alive.numel(), int((~alive).sum())


def _amount(step, units: int, pruned: int) -> float | int:
    """torch's ``amount`` for this call: the step's fraction of what remains, or (``of: all``) the count still to prune."""
    if step.of == "remaining" or pruned == 0:
        return step.amount
    return max(round(step.amount * units) - pruned, 0)


def _run(model: nn.Module, step, ctx: StepContext, prune_one, *, dim: int | None = None, global_method=None) -> list[Entry]:
    """Attach earlier masks, prune each entry (or all at once with ``global_method``), detach; return the entries."""
    entries = _entries(model, step)
    for name, module, param in entries:
        mask_state.attach(module, param, _key(name, param), ctx.masks)
    if global_method is not None:
        counts = [_units(mask_state.mask_of(m, p), None) for _, m, p in entries]
        amount = _amount(step, sum(c[0] for c in counts), sum(c[1] for c in counts))
        torch_prune.global_unstructured([(m, p) for _, m, p in entries], pruning_method=global_method, amount=amount)
    else:
        for _name, module, param in entries:
            units, pruned = _units(mask_state.mask_of(module, param), dim if param == "weight" else 0 if dim is not None else None)
            prune_one(module, param, _amount(step, units, pruned), dim if param == "weight" else 0)
    for name, module, param in entries:
        key = _key(name, param)
        mask_state.detach(module, param, key, ctx.masks, keep=not step.permanent)
        ctx.pruned.add(key)
    return entries


def _note(step, ctx: StepContext, entries: list[Entry], how: str) -> None:
    values = [getattr(m, p).detach() for _, m, p in entries]
    total = sum(v.numel() for v in values)
    zeros = sum(int((v == 0).sum()) for v in values)
    layers = len({n for n, _, _ in entries})
    asked = f"asked {step.amount:.0%} of the {'remaining' if step.of == 'remaining' else 'total'}"
    kept = "; masks kept (permanent: false)" if not step.permanent else ""
    ctx.notes.append(f"{step.label}: {zeros / total:.1%} of the targeted {'/'.join(step.parameters)} values are now zero "
                     f"({asked}; {how}; {layers} layers){kept}")


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
    if step.n_m is not None:
        n, m = step.n_m
        pattern = lambda module, param, amount, dim: torch_prune.custom_from_mask(  # noqa: E731
            module, param, n_m_mask(getattr(module, param), n, m))
        entries = _run(model, step, ctx, pattern)
        ctx.notes.append(f"{step.label}: {step.pattern} pattern (keep {n} largest of every {m} weights) in {len(entries)} layers")
        return model
    if isinstance(model, torch.jit.ScriptModule):
        targets = prunable_targets(model, step)
        _prune_scripted([_weight(m) for _, m in targets], step.amount, step.scope, step.of)
        entries = [(n, m, "weight") for n, m in targets]
        _note(step, ctx, entries, f"TorchScript, {step.scope}")
        return model
    if step.scope == "global":
        entries = _run(model, step, ctx, None, global_method=torch_prune.L1Unstructured)
    else:
        entries = _run(model, step, ctx, lambda module, param, amount, dim: torch_prune.l1_unstructured(module, param, amount))
    _note(step, ctx, entries, f"L1, {step.scope}")
    return model


@torch.no_grad()
def _prune_scripted(weights: list[torch.Tensor], amount: float, scope: str, of: str) -> None:
    """L1 unstructured pruning on a ScriptModule's parameters, in place (``torch.nn.utils.prune``
    cannot hook a ScriptModule): the same counts as torch, zeros counting as already pruned."""
    groups = [weights] if scope == "global" else [[w] for w in weights]
    for group in groups:
        flat = torch.cat([w.detach().abs().flatten() for w in group])
        zero = flat == 0
        already = int(zero.sum())
        k = already + round(amount * (flat.numel() - already)) if of == "remaining" else max(round(amount * flat.numel()), already)
        if k == already:
            continue
        keep = torch.ones_like(flat)
        keep[torch.topk(torch.where(zero, torch.full_like(flat, -1.0), flat), k, largest=False).indices] = 0
        offset = 0
        for w in group:
            w.mul_(keep[offset : offset + w.numel()].view_as(w).to(w.dtype))
            offset += w.numel()


def _no_torchscript(model: nn.Module, step) -> None:
    if isinstance(model, torch.jit.ScriptModule):
        raise InvalidSpec(f"{step.label} does not apply to a TorchScript upload; use prune:magnitude")


@handles(RandomPrune)
def random_prune(model: nn.Module, step: RandomPrune, ctx: StepContext) -> nn.Module:
    _no_torchscript(model, step)
    torch.manual_seed(ctx.seed)
    if step.scope == "global":
        entries = _run(model, step, ctx, None, global_method=torch_prune.RandomUnstructured)
    else:
        entries = _run(model, step, ctx, lambda module, param, amount, dim: torch_prune.random_unstructured(module, param, amount))
    _note(step, ctx, entries, f"random, {step.scope}, seed {ctx.seed}")
    return model


@handles(LnStructuredPrune)
def ln_structured_prune(model: nn.Module, step: LnStructuredPrune, ctx: StepContext) -> nn.Module:
    _no_torchscript(model, step)
    entries = _run(model, step, ctx, lambda module, param, amount, dim: torch_prune.ln_structured(
        module, param, amount, n=step.torch_norm, dim=dim), dim=step.dim)
    _note(step, ctx, entries, f"channels along dim {step.dim} by L{step.norm} norm, per layer")
    return model


@handles(RandomStructuredPrune)
def random_structured_prune(model: nn.Module, step: RandomStructuredPrune, ctx: StepContext) -> nn.Module:
    _no_torchscript(model, step)
    torch.manual_seed(ctx.seed)
    entries = _run(model, step, ctx, lambda module, param, amount, dim: torch_prune.random_structured(
        module, param, amount, dim=dim), dim=step.dim)
    _note(step, ctx, entries, f"random channels along dim {step.dim}, per layer, seed {ctx.seed}")
    return model
