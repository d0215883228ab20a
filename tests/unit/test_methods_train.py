"""The training steps (finetune, distill, quantize:qat) on tiny models and a seeded synthetic task."""

import pytest
import torch
from torch import nn

from service.domain.errors import InvalidSpec
from service.domain.steps import FineTune, MagnitudePrune
from worker.methods import StepContext, apply_step


def blobs(n=384, dim=16, classes=4, seed=0):
    """A seeded, learnable classification task: Gaussian clusters around fixed centres."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(0)) * 2.5  # fixed: one task
    labels = torch.arange(n) % classes
    inputs = centres[labels] + torch.randn(n, dim, generator=torch.Generator().manual_seed(100 + seed))
    return inputs, labels


def mlp(hidden=32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, 4)).eval()


def trained_mlp():
    """A teacher that fits the task well."""
    x, y = blobs()
    model = mlp(64)
    c = ctx(train=x, train_labels=y)
    return apply_step(model, FineTune(epochs=15, lr=1e-2), c)


def ctx(**extra):
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 16), **extra)


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_finetune_learns_from_labels_and_records_the_epochs():
    x, y = blobs()
    xt, yt = blobs(seed=1)
    model = mlp()
    before = accuracy(model, xt, yt)
    c = ctx(train=x, train_labels=y)
    messages = []
    c.report = lambda fraction, message, phase="compressing": messages.append((phase, fraction, message))
    out = apply_step(model, FineTune(epochs=4, lr=1e-2, batch_size=32), c)
    assert accuracy(out, xt, yt) > max(before, 0.9)
    record = c.training[0]
    assert record["epochs_completed"] == 4 and len(record["epoch_loss"]) == 4
    assert record["epoch_loss"][-1] < record["epoch_loss"][0]
    assert all(phase == "training" for phase, _, _ in messages) and messages[-1][1] == pytest.approx(1.0)
    assert "epoch 4/4" in messages[-1][2] and "loss" in messages[-1][2]
    assert not any(p.requires_grad for p in out.parameters()) and not out.training


def test_finetune_after_magnitude_pruning_keeps_the_zeros_exactly():
    x, y = blobs()
    xt, yt = blobs(seed=1)
    pruned = apply_step(trained_mlp(), MagnitudePrune(amount=0.8), ctx())
    pruned_accuracy = accuracy(pruned, xt, yt)
    zeros = {n: p == 0 for n, p in pruned.named_parameters() if p.dim() == 2}
    c = ctx(train=x, train_labels=y)
    out = apply_step(pruned, FineTune(epochs=3, lr=1e-2), c)
    for name, p in out.named_parameters():
        if p.dim() == 2:
            assert torch.equal(p == 0, zeros[name]), name  # the same zeros, no more, no fewer
    assert c.training[0]["masked_tensors"] == 2
    assert accuracy(out, xt, yt) > max(pruned_accuracy, 0.9)


def test_finetune_with_distill_from_original_needs_only_inputs():
    x, _ = blobs()
    teacher = trained_mlp()
    student = apply_step(trained_mlp(), MagnitudePrune(amount=0.8), ctx())
    c = ctx(train=x, original=teacher)
    out = apply_step(student, FineTune(epochs=5, lr=1e-2, distill_from_original=True), c)
    xt, yt = blobs(seed=1)
    assert accuracy(out, xt, yt) > 0.9
    assert "distillation only" in c.training[0]["objective"]


def test_finetune_is_deterministic():
    x, y = blobs()
    a = apply_step(mlp(), FineTune(epochs=2), ctx(train=x, train_labels=y, seed=3))
    b = apply_step(mlp(), FineTune(epochs=2), ctx(train=x, train_labels=y, seed=3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_finetune_without_labels_or_data_is_refused():
    x, _ = blobs()
    with pytest.raises(InvalidSpec, match="labels"):
        apply_step(mlp(), FineTune(), ctx(train=x))
    with pytest.raises(InvalidSpec, match="train"):
        apply_step(mlp(), FineTune(), ctx())


def test_max_seconds_stops_training_early_with_a_warning():
    x, y = blobs(n=4096)
    c = ctx(train=x, train_labels=y)
    apply_step(mlp(), FineTune(epochs=1000, batch_size=8, max_seconds=0.2), c)
    record = c.training[0]
    assert record["stopped_early"] and record["epochs_completed"] < 1000 and record["seconds"] < 5
    assert any("stopped early" in w for w in c.warnings)


def test_cancellation_is_checked_between_batches():
    x, y = blobs()
    calls = []

    class Cancelled(Exception):
        pass

    def check():
        calls.append(1)
        if len(calls) > 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        apply_step(mlp(), FineTune(epochs=5, batch_size=16), ctx(train=x, train_labels=y, check_cancelled=check))
