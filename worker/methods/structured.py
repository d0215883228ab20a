"""Structured pruning: physically remove output channels / neurons with torch-pruning's dependency graph.

Coupled layers (the next layer's inputs, BatchNorm, ...) shrink with them, so the model really has
fewer parameters and new shapes. The model's final layer keeps its outputs.
"""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import StructuredPrune
from worker.methods.prune import prunable_targets
from worker.methods.registry import StepContext, handles

IMPORTANCE = {"l1": 1, "l2": 2}


def _output_layers(model: nn.Module, example: torch.Tensor) -> set[nn.Module]:
    """Layers whose outputs are the model's outputs (their width is part of the contract)."""
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    outputs = set()
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            node = graph.module2node.get(module)
            if node is not None and _reaches_output(node):
                outputs.add(module)
    return outputs


def _reaches_output(node) -> bool:
    """True when no prunable layer follows ``node``: only parameter-free ops lie between it and the output."""
    seen, stack = set(), list(node.outputs)
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n.module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LSTM)):
            return False
        stack.extend(n.outputs)
    return True


@handles(StructuredPrune)
def structured_prune(model: nn.Module, step: StructuredPrune, ctx: StepContext) -> nn.Module:
    model = model.cpu().eval()
    example = ctx.example_input.cpu()
    targets = {m for _, m in prunable_targets(model, step)}
    outputs = _output_layers(model, example)
    ignored = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and (m not in targets or m in outputs)]
    if not targets - outputs:
        raise InvalidSpec(f"step {step.label}: the only targeted layers produce the model's outputs; nothing can be removed")
    before = sum(p.numel() for p in model.parameters())
    pruner = tp.pruner.MetaPruner(
        model,
        example_inputs=example,
        importance=tp.importance.MagnitudeImportance(p=IMPORTANCE[step.importance]),
        pruning_ratio=step.amount,
        ignored_layers=ignored,
        round_to=step.round_to,
    )
    pruner.step()
    after = sum(p.numel() for p in model.parameters())
    if after >= before:
        raise InvalidSpec(f"step {step.label}: nothing could be removed at amount={step.amount} (round_to={step.round_to})")
    for p in model.parameters():
        p.requires_grad_(False)
    ctx.notes.append(
        f"{step.label}: removed {step.amount:.0%} of channels/neurons in {len(targets - outputs)} layers "
        f"({step.importance} importance): {before} -> {after} parameters; the model changed shape"
    )
    return model.to(ctx.device)
