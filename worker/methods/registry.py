"""One entry point, ``apply_step``, dispatching ``(type(step config), runtime) -> handler``.

Handlers register with ``@handles(ConfigType)`` (runtime ``eager``) or
``@handles(ConfigType, runtime="onnxruntime")``; each method module is imported once here so
its decorators run. Steps without a ``runtime`` field are ``eager``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from modelpress_core.steps import StepConfig

Handler = Callable[[nn.Module, Any, "StepContext"], nn.Module]

_HANDLERS: dict[tuple[type[StepConfig], str], Handler] = {}
_METHOD_MODULES = (
    "worker.methods.prune",
    "worker.methods.structured",
    "worker.methods.quantize",
    "worker.methods.casting",
    "worker.methods.int4",
    "worker.methods.static_int8",
    "worker.methods.lowrank",
    "worker.methods.tucker",
    "worker.methods.ort_quantize",
    "worker.methods.pt2e",
    "worker.methods.xnnpack",
    "worker.methods.finetune",
    "worker.methods.distill",
    "worker.methods.qat",
    "worker.methods.kmeans",
    "worker.methods.sensitivity",
)


@dataclass
class StepContext:
    """What a handler may use besides the model and its config."""

    device: torch.device
    example_input: torch.Tensor
    seed: int = 0
    # report(fraction of this step, message, phase="compressing"); training steps use phase "training"
    report: Callable[..., None] = lambda fraction, message, phase="compressing": None
    check_cancelled: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # plain-word caveats, added to the verdict's warnings
    calibration: torch.Tensor | None = None  # inputs of the ``calibration`` data part, if uploaded
    train: torch.Tensor | None = None  # inputs of the ``train`` data part
    eval: torch.Tensor | None = None  # inputs of the ``eval`` data part
    train_labels: torch.Tensor | None = None  # labels of the ``train`` part, if it has them
    eval_labels: torch.Tensor | None = None  # labels of the ``eval`` part, if it has them
    original: nn.Module | None = None  # the uploaded model, untouched (a teacher for distillation)
    # (architecture name, config) the model so far is built from; a distillation student changes it
    architecture: tuple[str | None, dict[str, Any]] = (None, {})
    training: list[dict[str, Any]] = field(default_factory=list)  # one record per training step (metrics["training"])
    deadline: float | None = None  # time.monotonic() by which a long step (training, search) should wrap up
    results: dict[str, Any] = field(default_factory=dict)  # what analysis steps measured, merged into the metrics
    # prune steps with ``permanent: false``: "<module>.<param>" -> (original values, mask); the model itself holds
    # the masked values, the writers put both in the safetensors artifact (worker.methods.masks)
    masks: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    pruned: set[str] = field(default_factory=set)  # every "<module>.<param>" a prune step zeroed (fine-tuning keeps its zeros)


def handles(config_type: type[StepConfig], runtime: str = "eager"):
    def register(fn: Handler) -> Handler:
        _HANDLERS[(config_type, runtime)] = fn
        return fn

    return register


_loaded = False


def _load_method_modules() -> None:
    """Import every method module once; a failed import raises on every call, never half-registers."""
    global _loaded
    if not _loaded:
        for module in _METHOD_MODULES:
            importlib.import_module(module)
        _loaded = True


def handler_for(step: StepConfig) -> Handler:
    _load_method_modules()
    runtime = getattr(step, "runtime", "eager")
    try:
        return _HANDLERS[(type(step), runtime)]
    except KeyError:
        raise NotImplementedError(f"no handler for step {step.label} in runtime {runtime}") from None


def apply_step(model: nn.Module, step: StepConfig, ctx: StepContext) -> nn.Module:
    return handler_for(step)(model, step, ctx)
