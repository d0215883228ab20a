"""Knowledge distillation: the uploaded model (the teacher) trains a smaller student.

The student is a zoo architecture with its config (fresh, seeded weights) or a structurally pruned
copy of the model so far. Loss: Hinton's soft targets at ``temperature``, weighted ``alpha``, plus
cross-entropy on the ``train`` labels when given. Without a ``train`` part the inputs are
synthesized from the declared input shape (seeded normal noise): data-free distillation, flagged
in the metrics' warnings because it rarely transfers the teacher's accuracy on real inputs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import Distill, StructuredPrune
from worker.methods.registry import StepContext, handles
from worker.methods.training import Objective, train


def make_student(model: nn.Module, step: Distill, ctx: StepContext) -> nn.Module:
    spec = step.student
    if spec.architecture is None:
        from worker.methods.structured import structured_prune

        if isinstance(model, torch.jit.ScriptModule):
            raise InvalidSpec("distill: a pruned-copy student needs a safetensors upload with an architecture")
        prune = StructuredPrune(amount=spec.prune_amount, importance=spec.importance, round_to=spec.round_to)
        return structured_prune(copy.deepcopy(model).requires_grad_(True), prune, ctx)
    from modelpress_torch.architectures import InvalidArchitectureConfig, UnknownArchitecture, build_model

    torch.manual_seed(ctx.seed)
    try:
        student = build_model(spec.architecture, spec.config)
    except UnknownArchitecture:
        raise InvalidSpec(f"distill: unknown student architecture {spec.architecture!r} (see GET /architectures)") from None
    except InvalidArchitectureConfig as exc:
        raise InvalidSpec(f"distill: student.config: {exc}") from None
    ctx.architecture = (spec.architecture, dict(spec.config))
    return student.to(ctx.device)


def synthetic_inputs(step: Distill, ctx: StepContext) -> torch.Tensor:
    example = ctx.example_input
    if not example.is_floating_point():
        raise InvalidSpec(f"distill: data-free distillation synthesizes float inputs, but the model takes {example.dtype}; send a 'train' part")
    generator = torch.Generator().manual_seed(ctx.seed + 11)
    return torch.randn((step.synthetic_samples, *example.shape[1:]), generator=generator).to(example.dtype)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@handles(Distill)
def distill(model: nn.Module, step: Distill, ctx: StepContext) -> nn.Module:
    teacher = (ctx.original if ctx.original is not None else model).to(ctx.device).eval()
    student = make_student(model, step, ctx)
    example = ctx.example_input.to(ctx.device)
    with torch.no_grad():
        t_out, s_out = teacher(example), student.eval()(example)
    if not isinstance(s_out, torch.Tensor) or not isinstance(t_out, torch.Tensor) or s_out.shape != t_out.shape:
        shape = lambda o: list(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__  # noqa: E731
        raise InvalidSpec(
            f"distill: the student's output {shape(s_out)} does not match the teacher's {shape(t_out)} on the example input "
            f"{list(example.shape)}; choose a student config with the same inputs and outputs"
        )
    data_free = ctx.train is None
    inputs = synthetic_inputs(step, ctx) if data_free else ctx.train
    labels = None if data_free else ctx.train_labels
    objective = Objective(labels=labels, teacher=teacher, temperature=step.temperature, alpha=step.alpha)
    record = train(
        student, inputs, objective, epochs=step.epochs, lr=step.learning_rate, batch_size=step.batch_size,
        max_seconds=step.max_seconds, ctx=ctx, label=step.label, schedule=step.lr_schedule,
    )
    record["data"] = "synthetic (data-free)" if data_free else "train"
    who = f"{step.student.architecture} {step.student.config}" if step.student.architecture else (
        f"a structurally pruned copy ({step.student.prune_amount:.0%} of channels removed)"
    )
    record.update(student=who, temperature=step.temperature, alpha=step.alpha if labels is not None else 1.0)
    if labels is None and step.alpha < 1.0:
        why = "no 'train' part was sent (data-free)" if data_free else "the 'train' part has no 'labels'"
        set_by = "" if "alpha" in step.model_fields_set else " (the default)"
        ctx.warnings.append(
            f"{step.label}: alpha {step.alpha:g}{set_by} did not apply: {why}, so the loss was the distillation loss alone "
            f"(soft targets at T={step.temperature:g}, weight 1); send 'labels' in the 'train' part to mix in cross-entropy"
        )
    ratio = _params(teacher) / max(_params(student), 1)
    record["parameters"] = {"teacher": _params(teacher), "student": _params(student), "ratio": round(ratio, 3)}
    ctx.notes.append(
        f"{step.label}: student {who}: {_params(teacher)} -> {_params(student)} parameters ({ratio:.1f}x fewer); "
        f"{record['epochs_completed']}/{step.epochs} epochs on {record['samples']} "
        f"{'synthetic' if data_free else 'train'} inputs ({objective.describe()}), epoch loss {record['epoch_loss']}"
    )
    if data_free:
        ctx.warnings.append(
            f"{step.label}: data-free distillation: no 'train' part, so the student learned from {len(inputs)} synthesized inputs "
            "(seeded normal noise of the declared shape), not real data; expect a larger accuracy drop than with real inputs"
        )
    return student
