"""Distillation on real digits: modelpress's ``distill`` step (its defaults, and with a constant learning rate)
against training the student alone and against a good hand-written loop (PyTorch's knowledge-distillation
tutorial: T=2, 0.25 soft + 0.75 cross-entropy, Adam 1e-3), all for the same epochs, over three seeds.

    python bench/distill.py          # writes bench/results/distill.json and distill.md

Teacher: mlp [784, 300, 100, 10] trained on scikit-learn's digits (``modelpress.examples``, seed 0).
Student: mlp [784, 32, 10] (~10x fewer parameters), fresh seeded weights. Scored on the 360 held-out digits.
The modelpress runs call the worker's own handler (``worker.methods.apply_step``), as a job does. The defaults
were chosen on a validation split (``bench/distill_validation.py``), not on these test digits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelpress.datasets import digits_28x28  # noqa: E402
from modelpress.examples import accuracy, fit_classifier, train_digits_mlp  # noqa: E402
from modelpress_core.steps import Distill  # noqa: E402
from modelpress_torch.architectures import build_model  # noqa: E402
from worker.methods import StepContext, apply_step  # noqa: E402

STUDENT = {"sizes": [784, 32, 10]}
EPOCHS = 10


def student(seed: int):
    torch.manual_seed(seed)
    return build_model("mlp", STUDENT)


def alone(x, y, seed):
    return fit_classifier(student(seed), x, y, epochs=EPOCHS, seed=seed)


def alone_cosine(x, y, seed, lr=1e-2, batch_size=64):
    """The student alone with the distill step's schedule (cosine from 1e-2): what the teacher adds beyond the schedule."""
    model = student(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = (len(x) + batch_size - 1) // batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS * batches)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def tutorial_loop(teacher, x, y, seed, T=2.0, soft_weight=0.25, ce_weight=0.75, lr=1e-3, batch_size=64):
    """The loop of PyTorch's knowledge-distillation tutorial (train_knowledge_distillation), on these tensors."""
    model = student(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            with torch.no_grad():
                teacher_logits = teacher(x[idx])
            logits = model(x[idx])
            soft_targets = F.softmax(teacher_logits / T, dim=-1)
            soft_prob = F.log_softmax(logits / T, dim=-1)
            soft_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (T**2)
            loss = soft_weight * soft_loss + ce_weight * F.cross_entropy(logits, y[idx])
            loss.backward()
            optimizer.step()
    return model.eval()


def modelpress_distill(teacher, x, y, seed, **fields):
    ctx = StepContext(device=torch.device("cpu"), example_input=x[:1], seed=seed, train=x, train_labels=y, original=teacher)
    step = Distill(student={"architecture": "mlp", "config": STUDENT}, epochs=EPOCHS, **fields)
    return apply_step(teacher, step, ctx).eval(), ctx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distill.json")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    teacher, teacher_acc = train_digits_mlp()
    x_train, y_train, x_test, y_test = (torch.as_tensor(a) for a in digits_28x28(0))
    runs = {
        "student alone (cross-entropy, Adam 1e-3)": lambda s: alone(x_train, y_train, s),
        "student alone, cosine from lr 1e-2 (the distill schedule, no teacher)": lambda s: alone_cosine(x_train, y_train, s),
        "hand-written KD loop (PyTorch tutorial: T=2, 0.25 soft + 0.75 CE)": lambda s: tutorial_loop(teacher, x_train, y_train, s),
        "modelpress distill, defaults (T=4, alpha 0.7, cosine from lr 1e-2)": lambda s: modelpress_distill(teacher, x_train, y_train,
                                                                                                            s)[0],
        "modelpress distill, the old defaults (constant lr 1e-3)": lambda s: modelpress_distill(teacher, x_train, y_train, s,
                                                                                                schedule="constant", lr=1e-3)[0],
    }
    rows = []
    for name, make in runs.items():
        accs = [accuracy(make(seed), x_test.numpy(), y_test.numpy()) for seed in args.seeds]
        rows.append({"run": name, "accuracy": [round(a, 4) for a in accs], "mean": round(statistics.mean(accs), 4),
                     "gap_to_teacher_points": round((teacher_acc - statistics.mean(accs)) * 100, 2)})
        print(json.dumps(rows[-1]), flush=True)
    meta = {"teacher": "mlp [784, 300, 100, 10]", "teacher_accuracy": round(teacher_acc, 4), "student": f"mlp {STUDENT['sizes']}",
            "epochs": EPOCHS, "seeds": args.seeds, "test_items": len(y_test), "torch": torch.__version__,
            "load_average": [round(v, 2) for v in load_before], "command": "python bench/distill.py"}
    args.out.write_text(json.dumps({"meta": meta, "runs": rows}, indent=2) + "\n")
    lines = ["# Distillation on the digits MLP", "",
             f"Teacher {meta['teacher']} ({teacher_acc:.2%} on {len(y_test)} held-out digits), student {meta['student']} "
             f"(~10x fewer parameters), {EPOCHS} epochs each, seeds {args.seeds}; `{meta['command']}`.", "",
             "| run | accuracy per seed | mean | gap to teacher (points) |", "|---|---|---:|---:|"]
    lines += [f"| {r['run']} | {', '.join(f'{a:.2%}' for a in r['accuracy'])} | {r['mean']:.2%} | {r['gap_to_teacher_points']:.2f} |"
              for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
