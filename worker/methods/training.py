"""The one training loop the training steps share (finetune, distill, quantize:qat).

Seeded (shuffling and dropout), cancellable between batches, bounded by ``max_seconds``, reporting
each epoch's mean loss as progress. The loss is cross-entropy on labels, Hinton distillation from a
teacher's outputs, or ``alpha * distillation + (1 - alpha) * cross-entropy`` when both are given.
Weights under a mask (zeros that must stay zero) have their gradients and values masked on every
update, so a pruned model comes out exactly as sparse as it went in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from modelpress_core.errors import InvalidSpec
from worker.methods.registry import StepContext

REPORT_EVERY_S = 0.5  # progress updates go to Redis: at most this often within an epoch
CHECK_EVERY_S = 0.2  # cancellation checks read Redis: at the start of every epoch, then at most this often


@dataclass
class Objective:
    labels: torch.Tensor | None = None  # hard labels (cross-entropy)
    teacher: nn.Module | None = None  # soft targets (Hinton distillation)
    temperature: float = 4.0
    alpha: float = 0.5  # weight of the soft loss when both are given

    def describe(self) -> str:
        if self.teacher is not None and self.labels is not None:
            return f"{self.alpha:g} x distillation (T={self.temperature:g}) + {1 - self.alpha:g} x cross-entropy"
        if self.teacher is not None:
            return f"distillation only (T={self.temperature:g})"
        return "cross-entropy"


def zero_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """For every weight matrix/kernel holding exact zeros: where it is nonzero (the zeros must stay zero)."""
    masks = {}
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            mask = param.detach() != 0
            if not bool(mask.all()):
                masks[name] = mask
    return masks


def hinton_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2 (Hinton et al., 2015); MSE for non-logit outputs."""
    if student.dim() != 2:
        return F.mse_loss(student, teacher)
    return F.kl_div(
        F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1), reduction="batchmean"
    ) * (temperature * temperature)


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, inputs: torch.Tensor, batch_size: int, ctx: StepContext) -> torch.Tensor:
    """The teacher's outputs on every input, once (the teacher does not change while the student learns)."""
    teacher.eval()
    outs = []
    for chunk in inputs.split(max(batch_size, 256)):
        ctx.check_cancelled()
        outs.append(_tensor(teacher(chunk.to(ctx.device))).float())
    return torch.cat(outs)


def _tensor(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    raise InvalidSpec(f"training needs a model whose output is one tensor, got {type(out).__name__}")


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    objective: Objective,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    max_seconds: float | None,
    ctx: StepContext,
    label: str,
    masks: dict[str, torch.Tensor] | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    schedule: str = "constant",
) -> dict:
    """Train ``model`` in place; return the training record (losses per epoch, budget, data) for the metrics."""
    device = ctx.device
    model.to(device)
    torch.manual_seed(ctx.seed)
    generator = torch.Generator().manual_seed(ctx.seed)
    soft = teacher_outputs(objective.teacher, inputs, batch_size, ctx) if objective.teacher is not None else None
    labels = objective.labels
    params = [p for p in model.parameters() if p.is_floating_point()]
    was_trainable = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)
    named = dict(model.named_parameters())
    masks = {n: m.to(device) for n, m in (masks or {}).items()}
    n = int(inputs.shape[0])
    batches = (n + batch_size - 1) // batch_size
    if n > 1 and n % batch_size == 1:
        batches -= 1  # no last batch of one sample (BatchNorm cannot train on it); shuffling varies who sits out
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs * batches, 1)) if schedule == "cosine" else None
    started = time.monotonic()
    last_report = last_check = 0.0
    losses: list[float] = []
    stopped = None
    completed = 0
    model.train()
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0
        for b in range(batches):
            now = time.monotonic()
            if b == 0 or now - last_check >= CHECK_EVERY_S:  # a Redis read: not on every tiny batch
                last_check = now
                ctx.check_cancelled()
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                stopped = f"max_seconds ({max_seconds:g} s) reached in epoch {epoch + 1}/{epochs} after {b} of {batches} batches"
                break
            if ctx.deadline is not None and time.monotonic() >= ctx.deadline:  # a goal search's time budget
                stopped = f"the search's time budget ran out in epoch {epoch + 1}/{epochs} after {b} of {batches} batches"
                break
            idx = order[b * batch_size : (b + 1) * batch_size]
            out = _tensor(model(inputs[idx].to(device)))
            loss = out.new_zeros(())
            if soft is not None:
                soft_weight = objective.alpha if labels is not None else 1.0
                loss = loss + soft_weight * hinton_loss(out, soft[idx], objective.temperature)
            if labels is not None:
                ce = F.cross_entropy(out, labels[idx].to(device))
                loss = loss + ((1 - objective.alpha) if soft is not None else 1.0) * ce
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for name, mask in masks.items():
                if named[name].grad is not None:
                    named[name].grad.mul_(mask)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if masks:
                with torch.no_grad():
                    for name, mask in masks.items():
                        named[name].mul_(mask)
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S:
                last_report = now
                ctx.report(
                    (epoch + (b + 1) / batches) / epochs,
                    f"{label}: epoch {epoch + 1}/{epochs}, batch {b + 1}/{batches}, loss {total / seen:.4f}",
                    phase="training",
                )
        if seen:
            losses.append(round(total / seen, 6))
            ctx.report((epoch + 1) / epochs, f"{label}: epoch {epoch + 1}/{epochs} done, loss {losses[-1]:.4f}", phase="training")
        if stopped:
            break
        completed += 1
    model.eval()
    for p, flag in zip(params, was_trainable):
        p.requires_grad_(flag)  # as before: torch-pruning's graph tracing, for one, needs grad-tracking parameters
    record = {
        "step": label,
        "objective": objective.describe(),
        "samples": n,
        "epochs": epochs,
        "epochs_completed": completed,
        "epoch_loss": losses,
        "lr": lr,
        "batch_size": batch_size,
        "seconds": round(time.monotonic() - started, 3),
        "stopped_early": stopped,
        "masked_tensors": len(masks),
        "schedule": schedule,
    }
    if stopped is not None:
        ctx.warnings.append(f"{label}: training stopped early: {stopped}")
    ctx.training.append(record)
    return record
