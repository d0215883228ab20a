"""Edge artifacts next to the server ones: size, latency and accuracy of ExecuTorch ``.pte`` files (XNNPACK
delegate, fp32 and int8 through the XNNPACK quantizer) and of qnnpack int8 TorchScript (ARM's engine), against
the x86 int8 TorchScript, for the digits MLP and LeNet-5, every one through ``worker.pipeline.run_pipeline``.

    python bench/edge.py --mlp MLP.safetensors --lenet5 LENET5.safetensors   # writes bench/results/edge.{json,md}

All measured on this worker's x86 CPU (1 thread): the .pte through ExecuTorch's Python runtime, qnnpack under
``torch.backends.quantized.engine = "qnnpack"``. A phone's figures differ; sizes and accuracy carry over.
Without --mlp / --lenet5 the models are trained here (seed 0) as the tests' fixtures train them.
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
from modelpress.examples import fit_classifier, save_digits_mlp  # noqa: E402
from modelpress_core.spec import parse_spec  # noqa: E402
from modelpress_torch.architectures import build_model  # noqa: E402
from worker.pipeline import run_pipeline  # noqa: E402

MODELS = {"mlp": ({"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}}, [784]),
          "lenet5": ({"architecture": "lenet5", "config": {}}, [1, 28, 28])}
RECIPES = {
    "int8 x86, TorchScript (server)": ([{"method": "quantize", "kind": "static_int8"}], None),
    "int8 qnnpack, TorchScript (ARM engine)": ([{"method": "quantize", "kind": "static_int8", "backend": "qnnpack"}], None),
    "fp32 .pte (XNNPACK)": ([], ["executorch"]),  # steps: a 0% prune, the no-op a spec needs
    "int8 dynamic .pte (XNNPACK quantizer)": ([{"method": "quantize", "kind": "dynamic_int8", "runtime": "executorch"}], None),
    "int8 static .pte (XNNPACK quantizer)": ([{"method": "quantize", "kind": "static_int8", "runtime": "executorch"}], None),
}


def lenet5(path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    x, y, _, _ = digits_28x28(0)
    save_file(fit_classifier(build_model("lenet5", {}), x.reshape(-1, 1, 28, 28), y, epochs=8, seed=0).state_dict(), str(path))


def run(model: str, name: str, steps, outputs, path: Path, data: dict, work: Path, runs: int) -> dict:
    arch, shape = MODELS[model]
    spec = {"model": {**arch, "input": {"shape": [1, *shape]}}, "steps": steps or [
        {"method": "prune", "kind": "magnitude", "amount": 0.0}], "evaluate": {"batch_sizes": [1, 32]},
        **({"outputs": outputs} if outputs else {})}
    started = time.perf_counter()
    result = run_pipeline(parse_spec(json.dumps(spec)), path, work, progress=lambda *a: None, check_cancelled=lambda: None,
                          warmup=20, runs=runs, input_sha256="bench", data={k: (p, "npz") for k, p in data.items()})
    m = result.metrics
    primary = result.outputs[0].name
    return {"model": model, "recipe": name, "artifact": primary, "runtime": m["verdict"]["runtime"],
            "int8_engine": m["verdict"].get("int8_engine"), "bytes": m["after"]["file_bytes"], "original_bytes": m["before"]["file_bytes"],
            "size_ratio": m["verdict"]["size_ratio"], "speedup_batch1": m["verdict"]["speedups"]["1"],
            "speedup_batch32": m["verdict"]["speedups"]["32"], "p50_ms_batch1": m["after"]["latency"][0]["p50"],
            "accuracy_before": m["quality"]["top1_accuracy_before"], "accuracy_after": m["quality"]["top1_accuracy_after"],
            "top1_agreement": m["fidelity"]["top1_agreement"], "check": m["artifacts"][primary].get("check"),
            "warnings": m["verdict"]["warnings"], "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "edge.json")
    parser.add_argument("--mlp", type=Path)
    parser.add_argument("--lenet5", type=Path)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="modelpress-edge-"))
    paths = {"mlp": args.mlp, "lenet5": args.lenet5}
    if paths["mlp"] is None:
        paths["mlp"] = work / "mlp.safetensors"
        save_digits_mlp(paths["mlp"])
    if paths["lenet5"] is None:
        paths["lenet5"] = work / "lenet5.safetensors"
        lenet5(paths["lenet5"])
    x_train, y_train, x_test, y_test = digits_28x28(0)
    load_before = os.getloadavg()
    rows = []
    for model, (_, shape) in MODELS.items():
        data = {"calibration": work / f"{model}_cal.npz", "eval": work / f"{model}_eval.npz"}
        np.savez(data["calibration"], inputs=x_train[:512].reshape(-1, *shape))
        np.savez(data["eval"], inputs=x_test.reshape(-1, *shape), labels=y_test)
        for i, (name, (steps, outputs)) in enumerate(RECIPES.items()):
            rows.append(run(model, name, steps, outputs, paths[model], data, work / f"{model}{i}", args.runs))
            print(json.dumps({k: rows[-1][k] for k in ("model", "recipe", "bytes", "speedup_batch1", "accuracy_after")}), flush=True)
    meta = {"cpu": platform.machine(), "torch": torch.__version__, "threads": 1, "eval_items": len(y_test),
            "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
            "command": "python bench/edge.py"}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["# Edge artifacts on real digits", "",
             f"`{meta['command']}` on this worker's {meta['cpu']} CPU, torch {meta['torch']}, 1 thread, {len(y_test)} held-out digits "
             f"(the job's labelled eval part); load average {meta['load_before']} before / {meta['load_after']} after (a shared "
             "machine: speed-ups are ratios against the float32 eager original, timed interleaved within each job). Not measured "
             "on a phone: the .pte ran through ExecuTorch's Python runtime, qnnpack through torch on x86.", "",
             "| model | artifact | bytes | smaller | speed-up b1 | speed-up b32 | accuracy (before → after) | top-1 agreement |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['recipe']} | {r['bytes']:,} | {r['size_ratio']:.2f}x | {r['speedup_batch1']:.2f}x | "
                     f"{r['speedup_batch32']:.2f}x | {r['accuracy_before']:.2%} → {r['accuracy_after']:.2%} | {r['top1_agreement']:.4f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
