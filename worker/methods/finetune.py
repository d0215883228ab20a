"""Fine-tuning: train the model so far on the ``train`` part, zeros kept zero.

Typically after pruning (``prune:magnitude`` -> ``finetune``, ``prune:structured`` -> ``finetune``)
to win back the accuracy pruning cost. Exact zeros present when the step starts are masked on every
update, so the artifact is exactly as sparse as the pruned model. With ``distill_from_original`` the
uploaded model adds soft targets (Hinton); then unlabelled inputs suffice.
"""

from __future__ import annotations

from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import FineTune
from worker.methods.registry import StepContext, handles
from worker.methods.training import Objective, train, zero_masks


@handles(FineTune)
def finetune(model: nn.Module, step: FineTune, ctx: StepContext) -> nn.Module:
    if ctx.train is None:
        raise InvalidSpec("finetune needs the 'train' data part")
    teacher = ctx.original if step.distill_from_original else None
    if teacher is None and ctx.train_labels is None:
        raise InvalidSpec("finetune needs 'labels' in the 'train' part (or distill_from_original)")
    if teacher is not None:
        teacher = teacher.to(ctx.device).eval()
    masks = zero_masks(model)
    named = dict(model.named_parameters())
    for key in ctx.pruned - set(masks):  # pruned biases too (zero_masks looks at weight matrices only)
        if key in named and not bool((named[key] != 0).all()):
            masks[key] = named[key].detach() != 0
    objective = Objective(labels=ctx.train_labels, teacher=teacher, temperature=step.temperature, alpha=step.alpha)
    record = train(
        model, ctx.train, objective, epochs=step.epochs, lr=step.lr, batch_size=step.batch_size,
        max_seconds=step.max_seconds, ctx=ctx, label=step.label, masks=masks,
    )
    kept = f"; {len(masks)} sparse weight tensors kept exactly as sparse" if masks else ""
    ctx.notes.append(
        f"{step.label}: {record['epochs_completed']}/{step.epochs} epochs on {record['samples']} train samples "
        f"({objective.describe()}), epoch loss {record['epoch_loss']}{kept}"
    )
    return model
