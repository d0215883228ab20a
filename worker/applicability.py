"""Can each step apply to the architecture at all? Answered at submit time, on a model built on the ``meta``
device (shapes, no weights), so a step that cannot apply is a 422 instead of a job that fails later.

Only what the shapes decide is checked: that a step's targeting matches layers it acts on, that a fixed
rank shrinks at least one of them, that the pruned parameters exist. Steps after one that changes the
model's modules (structured pruning, low-rank, distillation) are not checked: their model is not known yet.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from pydantic import TypeAdapter
from torch import nn

from modelpress_core.steps import (
    LnStructuredPrune, MagnitudePrune, MaskPruneConfig, QATInt8, RandomPrune, RandomStructuredPrune, StaticInt8, Step, StepConfig,
    SVDLowRank, Tucker2LowRank,
)
from worker.methods.lowrank import svd_targets
from worker.methods.prune import PRUNABLE
from worker.methods.targeting import select_modules
from worker.methods.tucker import is_spatial_conv, tucker2_params

Check = Callable[[nn.Module, Any], str | None]
CHANGES_MODULES = {"prune:structured", "lowrank:svd", "lowrank:tucker2", "distill"}


def _svd(model: nn.Module, step: SVDLowRank) -> str | None:
    targets = svd_targets(model, step)
    if not targets:
        spatial = [n for n, m in select_modules(model, step, (nn.Conv2d,)) if is_spatial_conv(m)]
        hint = f"; the targeted k x k convolutions ({', '.join(spatial[:4])}) need lowrank:tucker2" if spatial else ""
        return f"no Linear or 1x1 Conv2d layer matches the step's targeting{hint}"
    if step.rank is not None:
        shapes = [(m.weight.shape[0], m.weight.shape[1]) for _, m in targets]
        if not any(min(step.rank, o, i) * (o + i) < o * i for o, i in shapes):
            return f"rank {step.rank} shrinks none of the {len(targets)} targeted layers (r (in + out) must be < in x out)"
    return None


def _tucker2(model: nn.Module, step: Tucker2LowRank) -> str | None:
    targets = [(n, m) for n, m in select_modules(model, step, (nn.Conv2d,)) if is_spatial_conv(m)]
    if not targets:
        return "no k x k Conv2d (groups 1, zero padding) matches the step's targeting (Linear and 1x1 convolutions: lowrank:svd)"
    if step.rank is not None:
        fits = [tucker2_params(m.out_channels, m.in_channels, m.kernel_size, min(step.rank, m.out_channels),
                               min(step.rank, m.in_channels)) < m.weight.numel() for _, m in targets]
        if not any(fits):
            return f"rank {step.rank} shrinks none of the {len(targets)} targeted convolutions"
    return None


def _prune(model: nn.Module, step: MaskPruneConfig) -> str | None:
    targets = [(n, m) for n, m in select_modules(model, step, PRUNABLE) if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not targets:
        return "no Linear/Conv layer matches the step's targeting"
    if "bias" in step.parameters and step.parameters == ["bias"] and not any(m.bias is not None for _, m in targets):
        return "none of the targeted layers has a bias"
    pattern = getattr(step, "n_m", None)
    if pattern is not None:
        bad = [n for n, m in targets if (m.weight[0].numel()) % pattern[1]]
        if bad:
            return f"pattern {step.pattern}: {', '.join(bad[:4])} have inputs per output that are not a multiple of {pattern[1]}; exclude them"
    return None


def _fuse(model: nn.Module, step) -> str | None:
    """Every name in ``fuse`` exists and each group is a pattern torch.ao.quantization.fuse_modules knows."""
    if not getattr(step, "fuse", None):
        return None
    from torch.ao.quantization.fuser_method_mappings import _DEFAULT_OP_LIST_TO_FUSER_METHOD

    modules = dict(model.named_modules())
    missing = [n for group in step.fuse for n in group if n not in modules]
    if missing:
        return f"fuse: no module named {', '.join(missing[:4])}"
    for group in step.fuse:
        types = tuple(type(modules[n]) for n in group)
        if types not in _DEFAULT_OP_LIST_TO_FUSER_METHOD:
            return f"fuse: {group} is {'+'.join(t.__name__ for t in types)}, not a pattern torch fuses (Conv+BN(+ReLU), Conv+ReLU, Linear+ReLU, Linear+BN, BN+ReLU)"
    return None


CHECKS: dict[type[StepConfig], Check] = {
    StaticInt8: _fuse, QATInt8: _fuse,
    SVDLowRank: _svd, Tucker2LowRank: _tucker2,
    MagnitudePrune: _prune, RandomPrune: _prune, LnStructuredPrune: _prune, RandomStructuredPrune: _prune,
}
_STEP = TypeAdapter(Step)


def step_problems(build: Callable[[], nn.Module], steps: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{"loc": "steps.i", "msg": ...}]`` for the steps that cannot apply to the model ``build`` makes (on meta)."""
    problems = []
    with torch.device("meta"):
        model = build()
    for i, raw in enumerate(steps):
        step = _STEP.validate_python(raw)
        check = CHECKS.get(type(step))
        if check is not None:
            why = check(model, step)
            if why:
                problems.append({"loc": f"steps.{i}", "msg": f"{step.label}: {why}", "type": "not_applicable"})
        if step.label in CHANGES_MODULES:
            break
    return problems
