"""distill: alpha that cannot apply is a warning, the report names the student and temperature, and the defaults
(cosine from lr 1e-2 for a fresh student, bench/results/distill.md) are what the step runs."""

import torch
from safetensors.torch import load_file

from modelpress.datasets import digits_28x28
from modelpress_core.steps import Distill
from modelpress_torch.architectures import build_model
from worker.methods import StepContext, apply_step

STUDENT = {"architecture": "mlp", "config": {"sizes": [784, 16, 10]}}


def teacher(path):
    model = build_model("mlp", {"sizes": [784, 300, 100, 10]})
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def run(path, step, labels=True):
    x, y, _, _ = digits_28x28(0)
    ctx = StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, 784), train=torch.as_tensor(x[:256]),
                      train_labels=torch.as_tensor(y[:256]) if labels else None, original=teacher(path))
    apply_step(ctx.original, step, ctx)
    return ctx


def test_alpha_without_labels_is_a_warning_and_the_record_says_what_applied(digits_mlp_path):
    ctx = run(digits_mlp_path, Distill(student=STUDENT, alpha=0.3, epochs=1), labels=False)
    assert any("alpha 0.3 did not apply" in w and "no 'labels'" in w for w in ctx.warnings)
    record = ctx.training[-1]
    assert record["alpha"] == 1.0 and record["temperature"] == 4.0 and "mlp" in record["student"]
    assert record["schedule"] == "cosine" and record["lr"] == 1e-2


def test_with_labels_alpha_applies_and_no_warning(digits_mlp_path):
    ctx = run(digits_mlp_path, Distill(student=STUDENT, epochs=1, schedule="constant", lr=1e-3))
    assert not any("did not apply" in w for w in ctx.warnings)
    assert ctx.training[-1]["alpha"] == 0.7 and ctx.training[-1]["schedule"] == "constant" and ctx.training[-1]["lr"] == 1e-3


def test_defaults_depend_on_the_students_initialisation():
    fresh = Distill(student=STUDENT)
    pruned = Distill(student={"prune_amount": 0.5})
    assert (fresh.learning_rate, fresh.lr_schedule) == (1e-2, "cosine")
    assert (pruned.learning_rate, pruned.lr_schedule) == (1e-3, "constant")
