"""Prove the gpu queue on real CUDA: a private stack whose worker consumes only `gpu`, jobs with
device "cuda" submitted over HTTP, metrics recorded.

    python bench/gpu_queue.py --out bench/results/gpu_queue.json

Run on a CUDA host (the project's CI has none; this is run by hand on a lent GPU machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from modelpress.client import ModelpressClient  # noqa: E402
from modelpress.examples import save_digits_mlp  # noqa: E402
from modelpress.redis_server import free_port  # noqa: E402
from modelpress.stack import Stack  # noqa: E402
from modelpress_torch.architectures import build_model  # noqa: E402

JOBS = {
    "mlp_digits_prune50": (
        "mlp",
        {"sizes": [784, 300, 100, 10]},
        [1, 784],
        [{"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.5}],
    ),
    "mlp_digits_structured30": (
        "mlp",
        {"sizes": [784, 300, 100, 10]},
        [1, 784],
        [{"method": "prune", "kind": "structured", "amount": 0.3}],
    ),
    "resnet18_fp16": (
        "resnet18",
        {"num_classes": 1000},
        [1, 3, 224, 224],
        [{"method": "quantize", "kind": "fp16"}],
    ),
    "resnet18_prune30": (
        "resnet18",
        {"num_classes": 1000},
        [1, 3, 224, 224],
        [{"method": "prune", "kind": "magnitude", "scope": "layer", "amount": 0.3}],
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="bench/results/gpu_queue.json")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA device"
    work = Path(tempfile.mkdtemp(prefix="mp-gpu-"))
    models = {"mlp": work / "mlp.safetensors", "resnet18": work / "resnet18.safetensors"}
    save_digits_mlp(models["mlp"])
    torch.manual_seed(0)
    save_file(build_model("resnet18", {}).state_dict(), str(models["resnet18"]))
    results = {
        "command": "python bench/gpu_queue.py --out bench/results/gpu_queue.json",
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "jobs": {},
    }
    with Stack(data_dir=work / "stack", api_port=free_port(), queues="gpu",
               extra_env={"MODELPRESS_LATENCY_RUNS": "50"}) as stack, ModelpressClient(stack.base_url) as client:
        results["readyz"] = client.http.get("/readyz").json()
        for name, (arch, config, shape, steps) in JOBS.items():
            spec = {"model": {"format": "safetensors", "architecture": arch, "config": config,
                              "input": {"shape": shape, "dtype": "float32"}},
                    "steps": steps, "device": "cuda", "evaluate": {"batch_sizes": [1, 32]}}
            started = time.monotonic()
            job = client.wait(client.submit(models[arch], spec)["id"], timeout=600)
            entry = {"state": job["state"], "queue": job["queue"], "seconds": round(time.monotonic() - started, 2),
                     "error": job.get("error")}
            if job["state"] == "succeeded":
                m = client.metrics(job["id"])
                entry.update(before=m["before"]["latency"], after=m["after"]["latency"], verdict=m["verdict"],
                             fidelity=m["fidelity"], sparsity=m["after"]["sparsity"], device=m["device"])
            results["jobs"][name] = entry
            print(name, json.dumps(entry)[:400], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0 if all(j["state"] == "succeeded" for j in results["jobs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
