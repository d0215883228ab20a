"""Runs a job: load, apply the spec's steps in order, write artifacts, measure before and after."""

from __future__ import annotations

import copy
import functools
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from modelpress_torch.artifacts import manifest_of
from modelpress_core import __version__
from modelpress_core.metrics import METRICS_SCHEMA
from modelpress_core.spec import JobSpec
from worker import evaluate, export
from modelpress_torch.architectures import build_model
from worker.data import Dataset, load_data
from worker.loading import example_input, input_dtype, load_model
from worker.methods import StepContext, apply_step
from worker.methods.masks import masked_state_dict
from worker.packed_int8 import is_dynamic_int8

FIDELITY_SAMPLES = 64
FIDELITY_MAX_CALIBRATION = 1024


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


@dataclass
class Prepared:
    """What every candidate pipeline starts from: the loaded original, the data, the example input."""

    spec: JobSpec
    model_path: Path
    original: nn.Module
    device: torch.device
    example: torch.Tensor
    datasets: dict[str, Dataset] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # measurements of the original shared by every candidate of a search

    def context(self, check_cancelled: Callable[[], None], deadline: float | None = None) -> StepContext:
        """A fresh step context over the job's data (one per pipeline run)."""
        return StepContext(
            device=self.device, example_input=self.example.to(self.device), seed=self.spec.seed, check_cancelled=check_cancelled,
            deadline=deadline,
            **{part: d.inputs for part, d in self.datasets.items()},
            **{f"{part}_labels": d.labels for part, d in self.datasets.items() if part in ("train", "eval")},
            original=self.original, architecture=(self.spec.model.architecture, dict(self.spec.model.config)),
        )


def prepare(spec: JobSpec, model_path: Path, data: dict[str, tuple[Path, str]] | None, progress: Progress) -> Prepared:
    torch.manual_seed(spec.seed)
    how = "torch.jit.load" if spec.model.format == "torchscript" else "safetensors, strict"
    progress("loading", None, 0.02, f"loading the model ({how})")
    original = load_model(spec, model_path)
    datasets = {part: load_data(part, path, fmt, input_dtype(spec)) for part, (path, fmt) in (data or {}).items()}
    return Prepared(spec=spec, model_path=model_path, original=original, device=torch.device(spec.device),
                    example=example_input(spec, 1, spec.seed), datasets=datasets)


def compress(prepared: Prepared, steps: list, ctx: StepContext, progress: Progress,
             span: tuple[float, float] = (0.1, 0.7)) -> tuple[nn.Module, list[dict]]:
    """Apply ``steps`` in order to a copy of the original; return (model on CPU in eval mode, step timings)."""
    model = copy.deepcopy(prepared.original).to(prepared.device)
    lo, width = span[0], span[1] - span[0]
    step_log = []
    n = len(steps)
    for i, step in enumerate(steps):
        ctx.check_cancelled()
        progress("compressing", i, lo + width * i / n, f"step {i + 1}/{n}: {step.label}")
        ctx.report = lambda fraction, message, phase="compressing", i=i: progress(phase, i, lo + width * (i + fraction) / n, message)
        started = time.perf_counter()
        model = apply_step(model, step, ctx)
        step_log.append({"step": i, "label": step.label, "seconds": round(time.perf_counter() - started, 3)})
    model = model.cpu()
    model.eval()  # not chained: an exported (PT2E) module's eval() returns None
    return model, step_log


def skeleton_of(ctx: StepContext) -> Callable[[], nn.Module]:
    """Builds the architecture the compressed model is made from (a distillation student may have changed it)."""
    arch_name, arch_config = ctx.architecture
    return lambda: build_model(arch_name, arch_config)


def write_outputs(prepared: Prepared, compressed: nn.Module, formats: list[str], workdir: Path,
                  ctx: StepContext) -> tuple[list[Output], dict[str, dict]]:
    """Write one artifact per format into ``workdir``; return them and the checks the writers ran."""
    spec = prepared.spec
    workdir.mkdir(parents=True, exist_ok=True)
    arch_name, arch_config = ctx.architecture
    replaced = arch_name != spec.model.architecture or arch_config != spec.model.config  # a distilled student
    manifest = manifest_of(compressed, arch_name, arch_config, skeleton_of(ctx)() if replaced else prepared.original)
    outputs, checks = [], {}
    for fmt in formats:
        name = export.ARTIFACT_NAMES[fmt]
        path = workdir / name
        if fmt == "safetensors" and ctx.masks:  # prune steps with permanent: false: torch's <name>_orig / <name>_mask
            export.write_safetensors(compressed, path, prepared.example, {**manifest, "masks": sorted(ctx.masks)},
                                     state=masked_state_dict(compressed, ctx.masks))
            check = None
        else:
            check = export.writer(fmt)(compressed, path, prepared.example, manifest)
        if check is not None:
            checks[name] = check
        outputs.append(Output(name=name, format=fmt, path=path, media_type=export.MEDIA_TYPES[fmt]))
    return outputs, checks


def int8_backend(spec: JobSpec) -> str | None:
    """The quantized engine the spec's eager int8 step chose (``backend``), or None."""
    return next((s.backend for s in spec.steps if getattr(s, "backend", None) and getattr(s, "runtime", "eager") == "eager"), None)


def measure(prepared: Prepared, compressed: nn.Module, outputs: list[Output], ctx: StepContext, *, warmup: int, runs: int,
            check_cancelled: Callable[[], None], progress: Progress = lambda *a: None) -> dict:
    """Before/after size, MACs, memory, latency, fidelity, accuracy and the verdict, measured on the first written artifact
    (int8 artifacts under the quantized engine their step chose, the one a user sets before loading them)."""
    backend = int8_backend(prepared.spec)
    if backend is None:
        return _measure(prepared, compressed, outputs, ctx, warmup=warmup, runs=runs, check_cancelled=check_cancelled, progress=progress)
    from worker.methods.qconfigs import quantized_engine

    with quantized_engine(backend):
        measured = _measure(prepared, compressed, outputs, ctx, warmup=warmup, runs=runs, check_cancelled=check_cancelled,
                            progress=progress)
    measured["verdict"]["int8_engine"] = backend
    if backend == "qnnpack" and not platform.machine().lower().startswith(("arm", "aarch")):
        measured["verdict"]["warnings"].append(
            f"measured where: qnnpack (the ARM engine) ran on this worker's {platform.machine()} CPU "
            f"({evaluate.cpu_info()['model']}), not on an ARM phone; load the artifact there with "
            "torch.backends.quantized.engine = 'qnnpack' (docs/edge.md); its speed on the phone is not measured here")
    return measured


def _measure(prepared: Prepared, compressed: nn.Module, outputs: list[Output], ctx: StepContext, *, warmup: int, runs: int,
             check_cancelled: Callable[[], None], progress: Progress = lambda *a: None) -> dict:
    spec, original, device, model_path, datasets = prepared.spec, prepared.original, prepared.device, prepared.model_path, prepared.datasets
    skeleton = skeleton_of(ctx)
    torch.set_num_threads(spec.evaluate.threads)
    primary = outputs[0]
    artifact_model, runtime = export.load_for_measurement(primary.format, primary.path, skeleton)
    before = {"file_bytes": model_path.stat().st_size, **evaluate.parameter_stats(original), "layers": evaluate.layers(original)}
    after = {"artifact": primary.name, "file_bytes": primary.path.stat().st_size, **evaluate.parameter_stats(compressed),
             "layers": evaluate.layers(compressed)}
    macs_input = example_input(spec, 1, spec.seed)
    before["macs"] = evaluate.count_macs(original, macs_input)
    after["macs"] = {**evaluate.count_macs(compressed, macs_input),
                     "counted_on": "the compressed model in memory, before export (the artifact runs the same layers)"}
    measure_on = _measurement_device(device, runtime)
    rebuild = lambda: build_model(spec.model.architecture, spec.model.config)  # noqa: E731
    memory_batch = max(spec.evaluate.batch_sizes)
    if measure_on.type == "cpu":
        check_cancelled()
        progress("measuring", None, 0.82, f"measuring peak memory at batch {memory_batch}")
        memory_input = example_input(spec, memory_batch, spec.seed)
        key = ("before_memory", memory_batch)  # the same upload at the same batch: measured once per job
        if key not in prepared.cache:
            prepared.cache[key] = evaluate.peak_rss_growth(lambda: load_model(spec, model_path), memory_input)
        before["memory"] = dict(prepared.cache[key])
        after["memory"] = evaluate.peak_rss_growth(
            lambda: export.load_for_measurement(primary.format, primary.path, rebuild)[0], memory_input)
    original, artifact_model = original.to(measure_on), artifact_model.to(measure_on)
    if measure_on.type == "cuda":
        memory_input = example_input(spec, memory_batch, spec.seed).to(measure_on)
        note = "resident-set growth is not measured on CUDA jobs (CUDA does not survive fork)"
        for side, model in ((before, original), (after, artifact_model)):
            try:
                side["memory"] = {"rss_peak_growth_bytes": None, "method": note, **evaluate.cuda_peak_memory(model, memory_input)}
            except Exception as exc:  # noqa: BLE001 - a measurement that cannot be taken is reported, not fatal
                side["memory"] = {"rss_peak_growth_bytes": None, "method": note, "note": f"CUDA peak not measured: {exc}"[:300]}
    hardware = (evaluate.gpu_info() or {}).get("name") if measure_on.type == "cuda" else evaluate.cpu_info()["model"]
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
            before["latency"].append({**timings[0], "hardware": hardware})
            after["latency"].append({**timings[1], "hardware": hardware})
            if reference is not None:
                same_runtime.append({**timings[2], "hardware": hardware})
        before["latency_ms"], after["latency_ms"] = before["latency"][0], after["latency"][0]
        if same_runtime:
            after["float32_same_runtime_latency"] = same_runtime
    eval_set, calibration = datasets.get("eval"), datasets.get("calibration")
    if eval_set is not None:
        fidelity = evaluate.fidelity(original, artifact_model, eval_set.inputs.to(measure_on))
        fidelity.update(source="eval", inputs=f"the {len(eval_set)} inputs of the uploaded eval data")
    elif calibration is not None:
        inputs = calibration.inputs[:FIDELITY_MAX_CALIBRATION]
        fidelity = evaluate.fidelity(original, artifact_model, inputs.to(measure_on))
        fidelity.update(source="calibration", inputs=f"{inputs.shape[0]} inputs of the uploaded calibration data (no labelled eval set)")
    else:
        inputs = example_input(spec, FIDELITY_SAMPLES, spec.seed + 1).to(measure_on)
        fidelity = evaluate.fidelity(original, artifact_model, inputs)
        fidelity.update(source="synthetic",
                        inputs=f"{FIDELITY_SAMPLES} synthetic inputs of the declared shape (seeded normal noise), not real data")
    quality = _quality(original, artifact_model, eval_set, measure_on, spec.seed)

    simulated = simulated_reasons(spec, measure_on, evaluate.cpu_info()["flags"])
    verdict = {"artifact": primary.name,
               **make_verdict(before, after, runtime, simulated=simulated, fidelity=fidelity, quality=quality)}
    verdict["warnings"].extend(ctx.warnings)
    verdict["warnings"].extend(sparsity_warnings(spec, after, primary.format, runtime))
    if primary.format == "packed" and not is_dynamic_int8(compressed):
        verdict["warnings"].append(
            "not faster: packed is a storage/transport format; its size is the file's, its latency is the unpacked "
            "dense float model's (eager), the same compute as the original's"
        )
    prepared.original = prepared.original.cpu()
    return {"before": before, "after": after, "fidelity": fidelity, **({"quality": quality} if quality else {}),
            "verdict": verdict, **({"training": ctx.training} if ctx.training else {})}


def artifact_table(outputs: list[Output], checks: dict[str, dict], before: dict) -> dict:
    primary = outputs[0]
    return {
        o.name: {"format": o.format, "bytes": o.path.stat().st_size,
                 "size_ratio": round(before["file_bytes"] / o.path.stat().st_size, 3),
                 "smaller": o.path.stat().st_size < before["file_bytes"],
                 "measured": o.name == primary.name,  # latency, memory and fidelity are measured on this one
                 **({"check": checks[o.name]} if o.name in checks else {})}
        for o in outputs
    }


def summary_of(measured: dict) -> dict:
    verdict = measured["verdict"]
    return {
        "size_ratio": verdict["size_ratio"],
        "speedup": verdict.get("speedup"),
        "smaller": verdict["smaller"],
        "faster": verdict.get("faster"),
        "simulated_only": verdict["simulated_only"],
        "cosine_similarity": measured["fidelity"]["cosine_similarity"],
        "sparsity": measured["after"]["sparsity"],
    }


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
    delay_release: Path | None = None,
    data: dict[str, tuple[Path, str]] | None = None,
    data_sha256: dict[str, str] | None = None,
    search_max_seconds: float | None = None,
) -> PipelineResult:
    prepared = prepare(spec, model_path, data, progress)
    if spec.goal is not None:
        from worker.search import run_search

        result = run_search(prepared, workdir, progress=progress, check_cancelled=check_cancelled, warmup=warmup, runs=runs,
                            max_seconds=search_max_seconds)
        result.metrics["provenance"] = provenance(spec, input_sha256, data_sha256 or {})
        progress("done", None, 1.0, "finished")
        return result
    ctx = prepared.context(check_cancelled)
    compressed, step_log = compress(prepared, list(spec.steps), ctx, progress)

    check_cancelled()
    progress("exporting", None, 0.72, "writing artifacts")
    outputs, checks = write_outputs(prepared, compressed, spec.resolved_outputs, workdir, ctx)

    if delay_s:  # test-only (MODELPRESS_TEST_DELAY_S): a deterministic slow job, cancellable throughout,
        # held until MODELPRESS_TEST_DELAY_RELEASE_FILE exists when that is set
        progress("measuring", None, 0.75, f"test delay: {delay_s} s")
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline and not (delay_release is not None and delay_release.exists()):
            try:
                if delay_cancellable:
                    check_cancelled()
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            except Exception as exc:  # not cancellable: like one long C call, deaf to the soft time limit too
                if delay_cancellable or type(exc).__name__ != "SoftTimeLimitExceeded":
                    raise
    check_cancelled()
    progress("measuring", None, 0.8, "measuring size, latency and fidelity")
    measured = measure(prepared, compressed, outputs, ctx, warmup=warmup, runs=runs, check_cancelled=check_cancelled, progress=progress)
    metrics = {
        "schema": METRICS_SCHEMA,
        "device": spec.device,
        **measured,
        "artifacts": artifact_table(outputs, checks, measured["before"]),
        "steps": step_log,
        "notes": ctx.notes,
        **ctx.results,
        "provenance": provenance(spec, input_sha256, data_sha256 or {}),
    }
    progress("done", None, 1.0, "finished")
    return PipelineResult(outputs=outputs, metrics=metrics, summary=summary_of(measured))


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


ACCURACY_DROP_WARNING = 0.01  # a top-1 drop above one point earns a warning
COSINE_WARNING = 0.99


SPARSITY_WORTH_STORING = 0.3  # from this share of zero weights on, a sparse layout is clearly smaller (measured: docs/recipes.md)
DENSE_FORMATS = ("torchscript", "onnx", "pt2", "safetensors")


def sparsity_warnings(spec: JobSpec, after: dict, fmt: str, runtime: str) -> list[str]:
    """Pruning that the artifact's bytes do not show: the zeros are stored like any other weight. Names the output that shrinks."""
    sparsity = after.get("sparsity") or 0.0
    if sparsity < SPARSITY_WORTH_STORING or fmt not in DENSE_FORMATS:
        return []
    kinds = {s.label for s in spec.steps}
    if "quantize:dynamic_int8" in kinds and runtime in ("torchscript", "eager"):
        better = "ask for outputs ['packed', ...]: its sparse int8 layout stores only the nonzero int8 weights (same kernels)"
    elif any(s.method == "quantize" and s.label != "quantize:kmeans" for s in spec.steps):
        better = "no sparse layout exists for this quantized format: quantize:dynamic_int8 with outputs ['packed'] stores the sparsity"
    else:
        better = "ask for outputs ['packed', ...]: it stores only the nonzero weights (and quantize:kmeans shares their values)"
    return [f"pruning did not shrink the file: {sparsity:.0%} of the weights are zero, but {fmt} stores them like any other "
            f"weight ({after['file_bytes']} bytes); {better}"]


def simulated_reasons(spec: JobSpec, measure_on: torch.device, cpu_flags: dict) -> list[str]:
    """Why the artifact's speed is *simulated only*: a low-precision format ran without a real
    low-precision kernel (dequantized in eager, or half precision converted on a CPU without it)."""
    reasons = []
    for step in spec.steps:
        if step.method != "quantize":
            continue
        if step.kind == "weight_only_int8":
            reasons.append(f"{step.label}: the int8 weights are dequantized to float on every call; no int8 kernel ran")
        elif step.kind in ("fp16", "bf16") and measure_on.type != "cuda":
            native = (cpu_flags.get("avx512_fp16") or cpu_flags.get("amx_fp16")) if step.kind == "fp16" \
                else (cpu_flags.get("avx512_bf16") or cpu_flags.get("amx_bf16"))
            if not native:
                reasons.append(f"{step.label}: this CPU has no native {step.kind} arithmetic "
                               f"({'avx512_fp16/amx_fp16' if step.kind == 'fp16' else 'avx512_bf16/amx_bf16'} absent); "
                               "values are converted, not computed fast")
    return reasons


def quality_verdict(fidelity: dict, quality: dict | None) -> dict:
    if quality and quality["metric"] == "top1_accuracy":
        return {"metric": "top1_accuracy", "change": -quality["accuracy_drop"],
                "ci95": [-quality["accuracy_drop_ci95"][1], -quality["accuracy_drop_ci95"][0]],
                "basis": f"labelled eval set ({quality['count']} items)"}
    if quality and quality["metric"] == "mse":
        return {"metric": "mse", "change": quality["mse_increase"], "ci95": quality["mse_increase_ci95"],
                "basis": f"eval set with float targets ({quality['count']} items)"}
    return {"metric": "output_cosine", "change": round(fidelity["cosine_similarity"] - 1.0, 6), "ci95": None,
            "basis": f"agreement with the original on {fidelity['inputs']}"}


def make_verdict(before: dict, after: dict, runtime: str, *, simulated: list[str] | None = None,
                 fidelity: dict | None = None, quality: dict | None = None) -> dict:
    size_ratio = before["file_bytes"] / after["file_bytes"]
    simulated = simulated or []
    verdict: dict = {"smaller": size_ratio > 1.0, "size_ratio": round(size_ratio, 3), "runtime": runtime, "warnings": [],
                     "simulated_only": bool(simulated), "simulated_reasons": simulated}
    macs_b, macs_a = (before.get("macs") or {}).get("macs"), (after.get("macs") or {}).get("macs")
    if macs_b and macs_a:
        verdict["macs_ratio"] = round(macs_b / macs_a, 3)
    if size_ratio <= 1.0:
        verdict["warnings"].append(
            f"the artifact is not smaller than the upload ({after['file_bytes']} vs {before['file_bytes']} bytes)"
            + ("; zeros from pruning take as much space as other weights in this format" if after["sparsity"] > 0.01 else "")
        )
    if "latency_ms" in before:
        speedups = [b["p50"] / a["p50"] for b, a in zip(before["latency"], after["latency"])]
        speedup = speedups[0]
        # One rule: a simulated-only artifact is never reported faster, whatever the clock said (a
        # converted fp16 model can time 1.08x by noise or cache effects; no low-precision kernel ran).
        verdict.update(speedup=round(speedup, 3), faster=speedup > 1 + NOISE and not simulated)
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
    if simulated:
        verdict["warnings"].append("speed is simulated only: " + "; ".join(simulated)
                                   + " (the file is smaller; a runtime with real low-precision kernels is needed for speed)")
        if verdict.get("speedup") is not None and verdict["speedup"] > 1 + NOISE:
            verdict["warnings"].append(f"not faster: the artifact timed {verdict['speedup']:.2f}x, but its speed is "
                                       "simulated only (no real low-precision kernel ran), so it does not count")
    if fidelity is not None:
        verdict["quality"] = q = quality_verdict(fidelity, quality)
        if q["metric"] == "top1_accuracy" and -q["change"] > ACCURACY_DROP_WARNING:
            verdict["warnings"].append(f"top-1 accuracy dropped {-q['change'] * 100:.1f} points (95% CI {-q['ci95'][1] * 100:.1f} to "
                                       f"{-q['ci95'][0] * 100:.1f} points) on the {q['basis']}")
        elif q["metric"] == "output_cosine" and fidelity["cosine_similarity"] < COSINE_WARNING:
            verdict["warnings"].append(f"outputs differ from the original's (cosine {fidelity['cosine_similarity']:.4f} on "
                                       f"{fidelity['inputs']}); no labelled data was given to measure accuracy")
    return verdict


def _quality(original, artifact_model, eval_set: Dataset | None, device: torch.device, seed: int) -> dict | None:
    """On the uploaded, labelled eval set: top-1 accuracy before/after with 95% intervals (integer
    labels), or mean squared error (float labels)."""
    if eval_set is None or eval_set.labels is None:
        return None
    inputs = eval_set.inputs.to(device)
    out_b, out_a = evaluate.outputs_of(original, inputs), evaluate.outputs_of(artifact_model, inputs)
    if eval_set.labels.is_floating_point():
        result = evaluate.regression_quality(out_b, out_a, eval_set.labels, seed)
    else:
        result = evaluate.classification_quality(out_b, out_a, eval_set.labels, seed)
    return {"dataset": "eval", "count": len(eval_set), **result}


def provenance(spec: JobSpec, input_sha256: str, data_sha256: dict[str, str]) -> dict:
    return {
        "modelpress": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": evaluate.cpu_info(),
        "gpu": evaluate.gpu_info() if spec.device == "cuda" else None,
        "libraries": dict(library_versions()),
        "quantized_engine": torch.backends.quantized.engine,
        "device": spec.device,
        "seed": spec.seed,
        "spec": spec.model_dump(mode="json"),
        "input_sha256": {"model": input_sha256, **data_sha256},
    }


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact (read once per worker process: ~35 ms each time)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "numpy", "safetensors", "onnx", "onnxruntime", "torch-pruning", "celery", "pydantic"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
