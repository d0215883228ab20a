"""Runs a job: load, apply the spec's steps in order, write artifacts, measure before and after."""

from __future__ import annotations

import copy
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from modelpress.artifacts import manifest_of
from service import __version__
from service.domain.metrics import METRICS_SCHEMA
from service.domain.spec import JobSpec
from worker import evaluate, export
from worker.architectures import build_model
from worker.data import Dataset, load_data
from worker.loading import example_input, input_dtype, load_model
from worker.methods import StepContext, apply_step

FIDELITY_SAMPLES = 64


@dataclass
class Output:
    name: str
    format: str
    path: Path
    media_type: str


@dataclass
class PipelineResult:
    outputs: list[Output]
    metrics: dict
    summary: dict


Progress = Callable[[str, int | None, float, str], None]


def run_pipeline(
    spec: JobSpec,
    model_path: Path,
    workdir: Path,
    *,
    progress: Progress,
    check_cancelled: Callable[[], None],
    warmup: int,
    runs: int,
    input_sha256: str,
    delay_s: float = 0.0,
    delay_cancellable: bool = True,
    data: dict[str, tuple[Path, str]] | None = None,
    data_sha256: dict[str, str] | None = None,
) -> PipelineResult:
    torch.manual_seed(spec.seed)
    device = torch.device(spec.device)
    how = "torch.jit.load" if spec.model.format == "torchscript" else "safetensors, strict"
    progress("loading", None, 0.02, f"loading the model ({how})")
    original = load_model(spec, model_path)
    compressed = copy.deepcopy(original).to(device)
    example = example_input(spec, 1, spec.seed)
    datasets = {part: load_data(part, path, fmt, input_dtype(spec)) for part, (path, fmt) in (data or {}).items()}
    ctx = StepContext(
        device=device, example_input=example.to(device), seed=spec.seed, check_cancelled=check_cancelled,
        **{part: d.inputs for part, d in datasets.items()},
        **{f"{part}_labels": d.labels for part, d in datasets.items() if part in ("train", "eval")},
        original=original, architecture=(spec.model.architecture, dict(spec.model.config)),
    )

    step_log = []
    n = len(spec.steps)
    for i, step in enumerate(spec.steps):
        check_cancelled()
        progress("compressing", i, 0.1 + 0.6 * i / n, f"step {i + 1}/{n}: {step.label}")
        ctx.report = lambda fraction, message, phase="compressing", i=i: progress(phase, i, 0.1 + 0.6 * (i + fraction) / n, message)
        started = time.perf_counter()
        compressed = apply_step(compressed, step, ctx)
        step_log.append({"step": i, "label": step.label, "seconds": round(time.perf_counter() - started, 3)})
    compressed = compressed.cpu()
    compressed.eval()  # not chained: an exported (PT2E) module's eval() returns None

    check_cancelled()
    progress("exporting", None, 0.72, "writing artifacts")
    outputs = []
    arch_name, arch_config = ctx.architecture
    replaced = arch_name != spec.model.architecture or arch_config != spec.model.config  # a distilled student
    skeleton = lambda: build_model(arch_name, arch_config)  # noqa: E731  (the architecture the artifact is built from)
    manifest = manifest_of(compressed, arch_name, arch_config, skeleton() if replaced else original)
    checks: dict[str, dict] = {}
    for fmt in spec.resolved_outputs:
        name = export.ARTIFACT_NAMES[fmt]
        path = workdir / name
        check = export.WRITERS[fmt](compressed, path, example, manifest)
        if check is not None:
            checks[name] = check
        outputs.append(Output(name=name, format=fmt, path=path, media_type=export.MEDIA_TYPES[fmt]))

    if delay_s:  # test-only (MODELPRESS_TEST_DELAY_S): a deterministic slow job, cancellable throughout
        progress("measuring", None, 0.75, f"test delay: {delay_s} s")
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline:
            if delay_cancellable:
                check_cancelled()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    check_cancelled()
    progress("measuring", None, 0.8, "measuring size, latency and fidelity")
    torch.set_num_threads(spec.evaluate.threads)
    primary = outputs[0]
    artifact_model, runtime = export.load_for_measurement(primary.format, primary.path, skeleton)
    before = {"file_bytes": model_path.stat().st_size, **evaluate.parameter_stats(original), "layers": evaluate.layers(original)}
    after = {"artifact": primary.name, "file_bytes": primary.path.stat().st_size, **evaluate.parameter_stats(compressed),
             "layers": evaluate.layers(compressed)}
    measure_on = _measurement_device(device, runtime)
    original, artifact_model = original.to(measure_on), artifact_model.to(measure_on)
    reference = _same_runtime_reference(compressed, runtime)
    if runtime == "inductor":  # compile once per measured shape before any timing (warm-up, excluded)
        progress("measuring", None, 0.82, "compiling the artifact with torch.compile (inductor, freezing)")
        after["first_call_s"] = {
            str(batch): evaluate.first_call_seconds(artifact_model, example_input(spec, batch, spec.seed))
            for batch in (spec.evaluate.batch_sizes if spec.evaluate.latency else [])
        }
    if spec.evaluate.latency:
        before["latency"], after["latency"] = [], []
        same_runtime = []
        for batch in spec.evaluate.batch_sizes:
            check_cancelled()
            models, runtimes = [original, artifact_model], ["eager", runtime]
            if reference is not None:
                models.append(reference)
                runtimes.append(f"{runtime} (float32 reference)")
            timings = evaluate.paired_latency(
                models, example_input(spec, batch, spec.seed).to(measure_on), warmup=warmup, runs=runs, runtimes=runtimes,
            )
            before["latency"].append(timings[0])
            after["latency"].append(timings[1])
            if reference is not None:
                same_runtime.append(timings[2])
        before["latency_ms"], after["latency_ms"] = before["latency"][0], after["latency"][0]
        if same_runtime:
            after["float32_same_runtime_latency"] = same_runtime
    eval_set = datasets.get("eval")
    if eval_set is not None:
        fidelity = evaluate.fidelity(original, artifact_model, eval_set.inputs.to(measure_on))
        fidelity["inputs"] = f"the {len(eval_set)} inputs of the uploaded eval data"
    else:
        inputs = example_input(spec, FIDELITY_SAMPLES, spec.seed + 1).to(measure_on)
        fidelity = evaluate.fidelity(original, artifact_model, inputs)
        fidelity["inputs"] = f"{FIDELITY_SAMPLES} synthetic inputs of the declared shape (seeded normal noise), not real data"
    quality = _quality(original, artifact_model, eval_set, measure_on)

    verdict = make_verdict(before, after, runtime)
    verdict["warnings"].extend(ctx.warnings)
    metrics = {
        "schema": METRICS_SCHEMA,
        "device": spec.device,
        "before": before,
        "after": after,
        "artifacts": {
            o.name: {"format": o.format, "bytes": o.path.stat().st_size, **({"check": checks[o.name]} if o.name in checks else {})}
            for o in outputs
        },
        "fidelity": fidelity,
        **({"quality": quality} if quality else {}),
        "verdict": verdict,
        "steps": step_log,
        "notes": ctx.notes,
        **({"training": ctx.training} if ctx.training else {}),
        "provenance": provenance(spec, input_sha256, data_sha256 or {}),
    }
    summary = {
        "size_ratio": verdict["size_ratio"],
        "speedup": verdict.get("speedup"),
        "smaller": verdict["smaller"],
        "faster": verdict.get("faster"),
        "cosine_similarity": fidelity["cosine_similarity"],
        "sparsity": after["sparsity"],
    }
    progress("done", None, 1.0, "finished")
    return PipelineResult(outputs=outputs, metrics=metrics, summary=summary)


def _same_runtime_reference(compressed, runtime: str):
    """The float32 model in the artifact's own runtime, when that is cheap to have (the float ONNX file a
    runtime-onnxruntime step quantized): it shows how much of the speed-up is int8 and how much the runtime."""
    if runtime != "onnxruntime" or getattr(compressed, "fp32_onnx_bytes", None) is None:
        return None
    from worker.onnx_export import OnnxModel

    return OnnxModel(compressed.fp32_onnx_bytes)


def _measurement_device(device: torch.device, runtime: str) -> torch.device:
    """Measure where the job ran: on the GPU for cuda jobs (both models), on the CPU otherwise."""
    return device if device.type == "cuda" else torch.device("cpu")


NOISE = 0.05  # speed differences under 5% are reported as "no real change"


def make_verdict(before: dict, after: dict, runtime: str) -> dict:
    size_ratio = before["file_bytes"] / after["file_bytes"]
    verdict: dict = {"smaller": size_ratio > 1.0, "size_ratio": round(size_ratio, 3), "runtime": runtime, "warnings": []}
    if size_ratio <= 1.0:
        verdict["warnings"].append(
            f"the artifact is not smaller than the upload ({after['file_bytes']} vs {before['file_bytes']} bytes)"
            + ("; zeros from pruning take as much space as other weights in this format" if after["sparsity"] > 0.01 else "")
        )
    if "latency_ms" in before:
        speedups = [b["p50"] / a["p50"] for b, a in zip(before["latency"], after["latency"])]
        speedup = speedups[0]
        verdict.update(speedup=round(speedup, 3), faster=speedup > 1 + NOISE)
        verdict["speedups"] = {str(b["batch_size"]): round(s, 3) for b, s in zip(before["latency"], speedups)}
        verdict["baseline"] = "the uploaded model, float32, torch eager, timed interleaved with the artifact"
        if speedup <= 1 + NOISE:
            verdict["warnings"].append(
                f"not faster: the artifact ran at {speedup:.2f}x the original's speed (p50, batch {before['latency_ms']['batch_size']}, {runtime})"
            )
        reference = after.get("float32_same_runtime_latency")
        if reference:
            own = {str(r["batch_size"]): round(r["p50"] / a["p50"], 3) for r, a in zip(reference, after["latency"])}
            verdict["speedups_vs_float32_same_runtime"] = own
            first = next(iter(own.values()))
            if first <= 1 + NOISE:
                verdict["warnings"].append(
                    f"the speed-up comes from {runtime}, not from int8: the float32 model in {runtime} is as fast "
                    f"({first:.2f}x, batch {before['latency_ms']['batch_size']})"
                )
    return verdict


def _quality(original, artifact_model, eval_set: Dataset | None, device: torch.device) -> dict | None:
    """Top-1 accuracy before/after on the uploaded, labelled eval set."""
    if eval_set is None or eval_set.labels is None:
        return None
    inputs, labels = eval_set.inputs.to(device), eval_set.labels.to(device)
    before = evaluate.accuracy(original, inputs, labels)
    after = evaluate.accuracy(artifact_model, inputs, labels)
    return {
        "dataset": "eval",
        "count": len(eval_set),
        "top1_accuracy_before": before,
        "top1_accuracy_after": after,
        "accuracy_drop": round(before - after, 6),
    }


def provenance(spec: JobSpec, input_sha256: str, data_sha256: dict[str, str]) -> dict:
    return {
        "modelpress": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": evaluate.cpu_info(),
        "quantized_engine": torch.backends.quantized.engine,
        "device": spec.device,
        "seed": spec.seed,
        "spec": spec.model_dump(mode="json"),
        "input_sha256": {"model": input_sha256, **data_sha256},
    }
