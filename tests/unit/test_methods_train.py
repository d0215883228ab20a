"""The training steps (finetune, distill, quantize:qat) on tiny models and a seeded synthetic task."""

import pytest
import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import FineTune, MagnitudePrune
from worker.methods import StepContext, apply_step


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread is fastest and the least disturbed by a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n=384, dim=16, classes=4, seed=0):
    """A seeded, learnable classification task: Gaussian clusters around fixed centres."""
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(0)) * 2.5  # fixed: one task
    labels = torch.arange(n) % classes
    inputs = centres[labels] + torch.randn(n, dim, generator=torch.Generator().manual_seed(100 + seed))
    return inputs, labels


def mlp(hidden=32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, 4)).eval()


_TEACHER: dict = {}


def trained_mlp():
    """A teacher that fits the task well (trained once, a fresh copy per call)."""
    import copy

    if "model" not in _TEACHER:
        _TEACHER["model"] = _train_teacher()
    return copy.deepcopy(_TEACHER["model"])


def _train_teacher():
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
    assert not out.training


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
    assert accuracy(out, xt, yt) >= max(pruned_accuracy, 0.9)  # equal is valid: pruning may leave it at 100%


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


def test_distill_to_a_zoo_student_learns_the_teacher_and_changes_the_architecture():
    from modelpress_core.steps import Distill

    x, y = blobs()
    xt, yt = blobs(seed=1)
    teacher = trained_mlp()
    step = Distill(student={"architecture": "mlp", "config": {"sizes": [16, 8, 4]}}, epochs=10, lr=1e-2)
    c = ctx(train=x, train_labels=y, original=teacher, architecture=("mlp", {"sizes": [16, 64, 4]}))
    student = apply_step(teacher, step, c)
    assert [m.out_features for m in student if isinstance(m, nn.Linear)] == [8, 4]
    assert c.architecture == ("mlp", {"sizes": [16, 8, 4]})
    assert accuracy(student, xt, yt) > 0.9
    record = c.training[0]
    assert record["data"] == "train" and record["parameters"]["ratio"] > 7 and "distillation" in record["objective"]
    assert not c.warnings


def test_distill_without_data_is_data_free_and_says_so():
    from modelpress_core.steps import Distill

    teacher = trained_mlp()
    c = ctx(original=teacher)
    apply_step(teacher, Distill(student={"architecture": "mlp", "config": {"sizes": [16, 8, 4]}}, epochs=1, synthetic_samples=64), c)
    assert c.training[0]["data"] == "synthetic (data-free)" and c.training[0]["samples"] == 64
    assert any("data-free" in w for w in c.warnings)


def test_distill_to_a_pruned_copy_keeps_the_teachers_architecture():
    from modelpress_core.steps import Distill

    x, y = blobs()
    teacher = trained_mlp()
    c = ctx(train=x, train_labels=y, original=teacher, architecture=("mlp", {"sizes": [16, 64, 4]}))
    student = apply_step(teacher, Distill(student={"prune_amount": 0.75}, epochs=3, lr=1e-2), c)
    assert student[0].out_features == 16 and student[2].out_features == 4
    assert c.architecture == ("mlp", {"sizes": [16, 64, 4]})  # rebuilt from the manifest on the teacher's skeleton
    assert accuracy(student, *blobs(seed=1)) > 0.9


@pytest.mark.parametrize(
    "student, needle",
    [
        ({"architecture": "no_such_net"}, "unknown student architecture"),
        ({"architecture": "mlp", "config": {"sizes": "wide"}}, "student.config"),
        ({"architecture": "mlp", "config": {"sizes": [16, 8, 3]}}, "does not match the teacher"),
    ],
)
def test_distill_refuses_students_that_cannot_work(student, needle):
    from modelpress_core.steps import Distill

    teacher = mlp()
    with pytest.raises(InvalidSpec, match=needle):
        apply_step(teacher, Distill(student=student, epochs=1), ctx(original=teacher, train=blobs()[0]))


def test_qat_converts_to_a_real_int8_model_that_keeps_accuracy():
    import warnings

    from modelpress_core.steps import QATInt8
    from worker.evaluate import parameter_stats

    x, y = blobs()
    xt, yt = blobs(seed=1)
    teacher = trained_mlp()
    c = ctx(train=x, train_labels=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = apply_step(teacher, QATInt8(epochs=2, lr=1e-4), c)
        assert "qint8" in parameter_stats(model)["dtypes"]
        assert accuracy(model, xt, yt) >= accuracy(teacher, xt, yt) - 0.02
        scripted = torch.jit.script(model)  # the same TorchScript export static_int8 uses
        assert torch.equal(scripted(xt).argmax(1), model(xt).argmax(1))
    assert c.training[0]["epochs_completed"] == 2 and "quantize:qat" in c.notes[0]


def test_qat_needs_labelled_train_data():
    from modelpress_core.steps import QATInt8

    with pytest.raises(InvalidSpec, match="labels"):
        apply_step(mlp(), QATInt8(), ctx(train=blobs()[0]))


def test_batchnorm_models_train_when_one_sample_would_be_left_over():
    x, y = blobs(n=65)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)).eval()
    c = ctx(train=x, train_labels=y)
    apply_step(model, FineTune(epochs=2, batch_size=64), c)
    assert c.training[0]["epochs_completed"] == 2 and not model.training
