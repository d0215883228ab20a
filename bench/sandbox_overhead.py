"""What running a TorchScript job in the sandbox costs, against the same job in-process.

The same scripted digits MLP (mlp [784, 300, 100, 10], pruned 50 %, TorchScript + ONNX outputs, no
latency timing) runs ``--runs`` times each way, alternating:

- in-process: ``worker.pipeline.run_pipeline`` in this process, torch and the pipeline already
  imported (as in a warm Celery pool process);
- sandboxed: ``worker.sandbox.runner.run_sandboxed`` (a fresh confined child per job).

Reports, per way, the median wall time per job; for the sandbox also child start -> confined
(``ready``) and child start -> first progress message (the per-job overhead: a fresh interpreter
importing torch and the pipeline). Run from the repository root:

    python -m bench.sandbox_overhead --runs 5 --out bench/results/sandbox_overhead.json
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def scripted_digits() -> bytes:
    from modelpress.examples import save_digits_mlp
    from safetensors.torch import load_file

    from modelpress_torch.architectures import build_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digits.safetensors"
        save_digits_mlp(path)
        model = build_model("mlp", {"sizes": [784, 300, 100, 10]})
        model.load_state_dict(load_file(str(path)))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model.eval()), buffer)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    import os
    import sys

    load_at_start = [round(x, 2) for x in os.getloadavg()]

    from modelpress_core.config import Settings
    from modelpress_core.spec import JobSpec
    from worker.pipeline import run_pipeline
    from worker.sandbox.probe import startup_check
    from worker.sandbox.runner import run_sandboxed

    spec = JobSpec.model_validate({"model": {"format": "torchscript", "input": {"shape": [1, 784], "dtype": "float32"}},
                                   "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}],
                                   "evaluate": {"latency": False}, "outputs": ["torchscript", "onnx"]})
    model_bytes = scripted_digits()
    common = {"warmup": 3, "runs": 10, "input_sha256": "bench", "data_sha256": {}}
    figures: dict[str, list[float]] = {"in_process_s": [], "sandboxed_s": [], "child_ready_s": [], "child_first_progress_s": []}
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        startup_check(settings)  # the worker's start-up probe, done once before any job
        for _ in range(args.runs):
            for way in ("in_process", "sandboxed"):
                job = Path(tempfile.mkdtemp())
                model = job / "model.torchscript.pt"
                model.write_bytes(model_bytes)
                started = time.monotonic()
                if way == "in_process":
                    run_pipeline(spec, model, job, progress=lambda *a: None, check_cancelled=lambda: None, data={}, **common)
                else:
                    seen: dict[str, float] = {}

                    def say(message: str, level: str = "info", seen=seen, started=started) -> None:
                        if message.startswith("sandbox child started"):
                            seen["ready"] = time.monotonic() - started

                    def progress(*_, seen=seen, started=started) -> None:
                        seen.setdefault("progress", time.monotonic() - started)

                    run_sandboxed(spec, model, job, settings=settings, progress=progress, say=say,
                                  check_cancelled=lambda: None, data={}, **common)
                    figures["child_ready_s"].append(seen["ready"])
                    figures["child_first_progress_s"].append(seen["progress"])
                figures[f"{way}_s"].append(time.monotonic() - started)
                shutil.rmtree(job)
    summary = {name: {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}
               for name, values in figures.items()}
    summary["runs"] = args.runs
    summary["note"] = "times from the worker's spawn call; ready and first progress include the process start"
    summary["command"] = "python -m bench.sandbox_overhead " + " ".join(sys.argv[1:])
    summary["load_avg_at_start"] = load_at_start
    summary["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
