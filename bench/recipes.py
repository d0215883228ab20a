"""Which recipe wins on the digits MLP (the demo's and the README's model): size, speed and accuracy of each,
every one through ``worker.pipeline.run_pipeline`` (what a worker runs for ``POST /jobs``), scored by the
job's own metrics on the held-out digits (the ``eval`` part, with labels).

    python bench/recipes.py --out bench/results/recipes.json     # writes recipes.json and recipes.md

Speed figures on a shared machine are noisy: every job times the original and its artifact interleaved
(the speed-up is a ratio measured side by side), and the load average is recorded next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelpress.datasets import digits_28x28  # noqa: E402
from modelpress.examples import MLP_SIZES, save_digits_mlp  # noqa: E402
from modelpress_core.spec import parse_spec  # noqa: E402
from worker.pipeline import run_pipeline  # noqa: E402

PRUNE_90 = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9}
PRUNE_80 = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.8}
FINETUNE = {"method": "finetune", "kind": "train", "epochs": 5}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}

RECIPES: dict[str, tuple[list[dict], list[str]]] = {
    "int8 (torchscript)": ([INT8], ["torchscript"]),
    "int8 (packed)": ([INT8], ["packed"]),
    "prune 80% + int8 (torchscript): the old demo": ([PRUNE_80, INT8], ["torchscript"]),
    "prune 90% + int8 (torchscript): the old README example": ([PRUNE_90, INT8], ["torchscript"]),
    "prune 90% + int8 (packed)": ([PRUNE_90, INT8], ["packed"]),
    "prune 80% + finetune + int8 (packed)": ([PRUNE_80, FINETUNE, INT8], ["packed"]),
    "prune 90% + finetune + int8 (packed)": ([PRUNE_90, FINETUNE, INT8], ["packed"]),
    "int4 weight-only, groups of 32 (torchscript)": ([{"method": "quantize", "kind": "weight_only_int4"}], ["torchscript"]),
}


def save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, inputs=x, labels=y)
    return path


def run(name: str, steps: list[dict], outputs: list[str], model_path: Path, data: dict, workdir: Path, runs: int) -> dict:
    spec = {"model": {"architecture": "mlp", "config": {"sizes": MLP_SIZES}}, "steps": steps, "outputs": outputs,
            "evaluate": {"batch_sizes": [1, 32]}}
    uses = {"eval"} | ({"train"} if any(s["method"] == "finetune" for s in steps) else set())
    started = time.perf_counter()
    result = run_pipeline(parse_spec(json.dumps(spec)), model_path, workdir, progress=lambda *a: None, check_cancelled=lambda: None,
                          warmup=20, runs=runs, input_sha256="bench", data={k: (p, "npz") for k, p in data.items() if k in uses})
    m = result.metrics
    q = m["quality"]
    return {
        "recipe": name, "steps": steps, "outputs": outputs,
        "bytes": m["after"]["file_bytes"], "original_bytes": m["before"]["file_bytes"], "size_ratio": m["verdict"]["size_ratio"],
        "speedup_batch1": m["verdict"]["speedups"]["1"], "speedup_batch32": m["verdict"]["speedups"]["32"],
        "p50_ms_batch1": {"before": m["before"]["latency"][0]["p50"], "after": m["after"]["latency"][0]["p50"]},
        "accuracy_before": q["top1_accuracy_before"], "accuracy_after": q["top1_accuracy_after"],
        "accuracy_change_points": round(-q["accuracy_drop"] * 100, 2), "ci95_drop": q["accuracy_drop_ci95"],
        "sparsity": m["after"]["sparsity"], "warnings": m["verdict"]["warnings"], "seconds": round(time.perf_counter() - started, 1),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Recipes on the digits MLP", "",
             f"mlp {MLP_SIZES} trained on scikit-learn's digits (seed 0), {meta['eval_items']} held-out digits; "
             f"`python bench/recipes.py` on {meta['cpu']}, torch {meta['torch']}, {meta['threads']} thread, "
             f"load average {meta['load_before']} before / {meta['load_after']} after (a shared machine: speed-ups are "
             "ratios timed interleaved within each job).", "",
             "| recipe | bytes | smaller | speed-up b1 | speed-up b32 | accuracy | change (points) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['bytes']:,} | {r['size_ratio']:.2f}x | {r['speedup_batch1']:.2f}x | {r['speedup_batch32']:.2f}x "
                     f"| {r['accuracy_after']:.2%} | {r['accuracy_change_points']:+.2f} |")
    lines += ["", f"Original: {rows[0]['original_bytes']:,} bytes, accuracy {rows[0]['accuracy_before']:.2%}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recipes.json")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="recipe names to run (default: all)")
    parser.add_argument("--model", type=Path, help="the digits MLP already saved by modelpress.examples.save_digits_mlp (seed 0)")
    args = parser.parse_args()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="modelpress-recipes-"))
    model_path = args.model or work / "mlp.safetensors"
    if args.model is None:
        save_digits_mlp(model_path)
    x_train, y_train, x_test, y_test = digits_28x28(0)
    data = {"train": save_npz(work / "train.npz", x_train, y_train), "eval": save_npz(work / "eval.npz", x_test, y_test)}
    load_before = os.getloadavg()
    rows = []
    for i, (name, (steps, outputs)) in enumerate(RECIPES.items()):
        if args.only and name not in args.only:
            continue
        rows.append(run(name, steps, outputs, model_path, data, work / f"job{i}", args.runs))
        print(json.dumps({k: rows[-1][k] for k in ("recipe", "bytes", "size_ratio", "speedup_batch1", "accuracy_change_points")}), flush=True)
    meta = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": 1, "eval_items": len(y_test),
            "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
            "command": "python bench/recipes.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "recipes": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
