"""Which modules a step acts on: ``include`` / ``exclude`` name globs and ``op_types``."""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

from modelpress_core.steps import StepConfig


def select_modules(model: nn.Module, step: StepConfig, default_types: tuple[type[nn.Module], ...]) -> list[tuple[str, nn.Module]]:
    wanted = set(step.op_types)
    default_names = {t.__name__ for t in default_types}
    chosen = []
    for name, module in model.named_modules():
        if not name:
            continue
        type_name = module_type_name(module)
        if wanted:
            if type_name not in wanted:
                continue
        elif isinstance(module, torch.jit.ScriptModule):
            if type_name not in default_names:
                continue
        elif not isinstance(module, default_types):
            continue
        if step.include and not any(fnmatchcase(name, p) for p in step.include):
            continue
        if any(fnmatchcase(name, p) for p in step.exclude):
            continue
        chosen.append((name, module))
    return chosen


def module_type_name(module: nn.Module) -> str:
    """The class name, also for a TorchScript submodule (its ``original_name``)."""
    if isinstance(module, torch.jit.ScriptModule):
        return getattr(module, "original_name", type(module).__name__)
    return type(module).__name__
