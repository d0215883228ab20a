"""What modelpress can do, as one torch-free table: methods x kinds x input formats x devices x data.

``GET /capabilities`` serves it, and ``POST /jobs`` rejects impossible combinations with it
(``problems_for``), so a spec that cannot run is a 422 at submit time, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelpress_core.formats import FORMATS, RUNTIME_OUTPUT, outputs_for
from modelpress_core.goal import Goal
from modelpress_core.steps import (
    ALL_STEP_TYPES,
    BFloat16,
    Distill,
    DynamicInt8,
    FineTune,
    Float16,
    KMeansQuantize,
    LnStructuredPrune,
    MagnitudePrune,
    MaskPruneConfig,
    QuantizeConfig,
    QATInt8,
    RandomPrune,
    RandomStructuredPrune,
    StaticInt8,
    StepConfig,
    StructuredPrune,
    Sensitivity,
    SVDLowRank,
    Tucker2LowRank,
    WeightOnlyInt4,
    WeightOnlyInt8,
)

INPUT_FORMATS: dict[str, str] = {
    "safetensors": "a state_dict plus an architecture from GET /architectures; loaded with safetensors, strict",
    "torchscript": "a torch.jit.save() archive; needs model.input; loaded with torch.jit.load in the worker",
}
REJECTED_FORMATS: dict[str, str] = {
    "pickle": "unpickling runs arbitrary code",
    "torch.save": "a pickle inside a zip",
    "exported_program (.pt2)": "torch.export.load unpickles weights and constants with weights_only=False",
}
OUTPUT_FORMATS: dict[str, str] = {f.name: f.description for f in FORMATS.values()}
RUNTIMES_DOC: dict[str, str] = {
    "eager": "torch eager int8 kernels (fbgemm/onednn); artifact: TorchScript",
    "inductor": "torch.compile (inductor, freezing on) of a PT2E int8 graph; artifact: .pt2 ExportedProgram",
    "onnxruntime": "ONNX Runtime CPU execution provider; artifact: int8 .onnx",
    "executorch": "the ExecuTorch runtime with the XNNPACK delegate (what phones run), on the worker's CPU; artifact: .pte",
}
DEVICES: dict[str, str] = {
    "cpu": "queue cpu",
    "cuda": "queue gpu",
    "auto": "queue gpu when a live GPU worker advertises a CUDA device and every step runs on CUDA, else queue cpu; "
    "the job records the device it got",
}
DATA_PARTS: dict[str, str] = {
    "calibration": "inputs for quantize:static_int8 in every runtime (synthetic inputs otherwise, stated in the metrics)",
    "train": "inputs and labels for the training steps (finetune, quantize:qat, distill) and quantize:kmeans's codebook "
    "fine-tuning; inputs alone for distill and for finetune with distill_from_original; with a goal, also calibrates static int8 when no calibration part is given",
    "eval": "inputs and optional labels: fidelity on real inputs; integer labels: top-1 accuracy before/after with 95% "
            "intervals; float labels (regression targets): MSE before/after; required by a goal with max_accuracy_drop "
            "(with integer labels for metric top1)",
}
DATA_FORMATS: dict[str, str] = {
    "npz": "numpy .npz with arrays 'inputs' and optional 'labels' (no object arrays; loaded with allow_pickle=False)",
    "safetensors": "tensors 'inputs' and optional 'labels'",
}
OUTPUTS_BY_FORMAT: dict[str, tuple[str, ...]] = {fmt: outputs_for(fmt) for fmt in INPUT_FORMATS}


@dataclass(frozen=True)
class MethodCapability:
    config: type[StepConfig]
    formats: dict[str, str | None]  # format -> None when supported, else why not
    devices: dict[str, str | None]
    data: tuple[str, ...] = ()
    quantizes: bool = False
    notes: str = ""
    runtimes: dict[str, str | None] = field(default_factory=lambda: {"eager": None})  # runtime -> None or why not

    def reason(self, fmt: str, device: str) -> str | None:
        return self.formats.get(fmt, f"not available for {fmt}") or self.devices.get(device, f"not available on {device}")


_NEEDS_GRAPH = "needs the model's Python module graph; upload a safetensors state_dict with an architecture instead"
_NEEDS_MODULES = "replaces modules, which a ScriptModule cannot; upload a safetensors state_dict with an architecture instead"
_NEEDS_HOOKS = "needs torch.nn.utils.prune's nn.Module hooks, which a ScriptModule lacks; use prune:magnitude on TorchScript"
_EAGER_ONLY = "this kind has no {runtime} path; use runtime 'eager'"


def _eager_only() -> dict[str, str | None]:
    return {"eager": None, **{r: _EAGER_ONLY.format(runtime=r) for r in ("inductor", "onnxruntime", "executorch")}}

METHODS: dict[type[StepConfig], MethodCapability] = {
    MagnitudePrune: MethodCapability(
        config=MagnitudePrune,
        formats={"safetensors": None, "torchscript": None},
        devices={"cpu": None, "cuda": None},
        notes="torch.nn.utils.prune l1_unstructured / global_unstructured; repeated steps prune a fraction of what remains "
        "(of: remaining, as torch); on TorchScript, acts on the parameters named '<module>.weight' with 2+ dimensions "
        "(no bias, no permanent: false)",
    ),
    LnStructuredPrune: MethodCapability(
        config=LnStructuredPrune,
        formats={"safetensors": None, "torchscript": _NEEDS_HOOKS},
        devices={"cpu": None, "cuda": None},
        notes="torch.nn.utils.prune.ln_structured: zeroes channels (shapes kept); prune:structured removes them",
    ),
    RandomStructuredPrune: MethodCapability(
        config=RandomStructuredPrune,
        formats={"safetensors": None, "torchscript": _NEEDS_HOOKS},
        devices={"cpu": None, "cuda": None},
        notes="torch.nn.utils.prune.random_structured, seeded by the job's seed",
    ),
    DynamicInt8: MethodCapability(
        config=DynamicInt8,
        formats={
            "safetensors": None,
            "torchscript": "quantize_dynamic cannot swap modules inside a ScriptModule "
            "(torch 2.13 returns it unchanged); upload a safetensors state_dict with an architecture instead",
        },
        devices={"cpu": None, "cuda": "dynamic int8 runs on CPU int8 kernels only; use device 'cpu'"},
        quantizes=True,
        runtimes={
            "eager": None,
            "onnxruntime": None,
            "executorch": None,
            "inductor": "no fast dynamic int8 path in inductor on x86 without VNNI (torchao's int8 dynamic config "
            "falls back to aten._int_mm, measured 2-17x slower than fp32, bench/results/quant_baselines.md); "
            "use runtime 'eager' or 'onnxruntime', or static_int8 with runtime 'inductor'",
        },
        notes="eager: torch.ao quantize_dynamic -> TorchScript; executorch: PT2E + XNNPACKQuantizer (dynamic, per-channel) -> "
        ".pte; onnxruntime: ONNX Runtime dynamic quantization "
        "(MatMul/Gemm, int8 weights) -> .onnx",
    ),
    RandomPrune: MethodCapability(
        config=RandomPrune,
        formats={"safetensors": None, "torchscript": _NEEDS_HOOKS},
        devices={"cpu": None, "cuda": None},
    ),
    StructuredPrune: MethodCapability(
        config=StructuredPrune,
        formats={"safetensors": None, "torchscript": _NEEDS_GRAPH},
        devices={"cpu": None, "cuda": None},
        notes="physically removes channels/neurons (torch-pruning dependency graph); safetensors output carries a manifest",
    ),
    WeightOnlyInt8: MethodCapability(
        config=WeightOnlyInt8,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        quantizes=True,
        runtimes=_eager_only(),
    ),
    WeightOnlyInt4: MethodCapability(
        config=WeightOnlyInt4,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": "this kind runs torch's CPU int4 kernel; use device 'cpu'"},
        quantizes=True,
        runtimes=_eager_only(),
        notes="a real int4 kernel (aten._weight_int4pack_mm_for_cpu) with bfloat16 activations: ~7x smaller Linear weights; "
        "speed depends on the CPU's bfloat16 support (measured, not assumed)",
    ),
    StaticInt8: MethodCapability(
        config=StaticInt8,
        formats={"safetensors": None, "torchscript": _NEEDS_GRAPH},
        devices={"cpu": None, "cuda": "static int8 runs on CPU int8 kernels only; use device 'cpu'"},
        data=("calibration",),
        quantizes=True,
        runtimes={"eager": None, "inductor": None, "onnxruntime": None, "executorch": None},
        notes="calibrates on the calibration part when given, else on synthetic inputs (stated in the metrics); "
        "eager: FX graph mode -> TorchScript; inductor: PT2E + X86InductorQuantizer -> .pt2; "
        "onnxruntime: static QDQ -> .onnx; executorch: PT2E + XNNPACKQuantizer (static, per-channel) -> .pte",
    ),
    Float16: MethodCapability(
        config=Float16,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        quantizes=True,
        runtimes=_eager_only(),
        notes="real speed-ups need native fp16 (GPU tensor cores); on AVX2 CPUs it is usually not faster",
    ),
    BFloat16: MethodCapability(
        config=BFloat16,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        quantizes=True,
        runtimes=_eager_only(),
    ),
    KMeansQuantize: MethodCapability(
        config=KMeansQuantize,
        formats={"safetensors": None, "torchscript": "weight sharing rewrites parameters and fine-tunes them through the "
                 "module graph; upload a safetensors state_dict with an architecture instead"},
        devices={"cpu": None, "cuda": None},
        data=("train",),
        notes="the model stays float (every format works); ask for the 'packed' output to store codebooks and codes; "
        "codebooks are fine-tuned when the train part has labels; must be the last step",
    ),
    SVDLowRank: MethodCapability(
        config=SVDLowRank,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        notes="Linear and 1x1 Conv2d (k x k convolutions: lowrank:tucker2); a spec whose targeting matches no such layer, or "
        "whose rank shrinks none, is a 422 at submit (checked against the architecture by a worker)",
    ),
    Tucker2LowRank: MethodCapability(
        config=Tucker2LowRank,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        notes="k x k Conv2d with groups 1 -> 1x1, k x k core, 1x1; a spec whose targeting matches no such convolution, or whose "
        "rank shrinks none, is a 422 at submit; with energy, the ranks depend on the weights (known when the job runs)",
    ),
    FineTune: MethodCapability(
        config=FineTune,
        formats={"safetensors": None, "torchscript": "training a ScriptModule is not supported; upload a safetensors state_dict with an architecture instead"},
        devices={"cpu": None, "cuda": None},
        data=("train",),
        notes="needs the train part with labels (inputs alone with distill_from_original); zeros stay zero",
    ),
    Distill: MethodCapability(
        config=Distill,
        formats={"safetensors": None, "torchscript": None},
        devices={"cpu": None, "cuda": None},
        data=(),
        notes="trains on the train part when given, else data-free on synthesized inputs (flagged in the metrics); "
        "a pruned-copy student needs a safetensors upload",
    ),
    QATInt8: MethodCapability(
        config=QATInt8,
        formats={"safetensors": None, "torchscript": _NEEDS_GRAPH},
        devices={"cpu": None, "cuda": "QAT converts to CPU int8 kernels; use device 'cpu'"},
        data=("train",),
        quantizes=True,
        notes="fake-quant fine-tuning (FX graph mode, x86 QAT qconfig), then converted to real int8 like static_int8",
    ),
    Sensitivity: MethodCapability(
        config=Sensitivity,
        formats={"safetensors": None, "torchscript": _NEEDS_MODULES},
        devices={"cpu": None, "cuda": None},
        notes="leaves the model unchanged; measures on the eval part when given (accuracy with labels, else agreement with the model "
        "itself), on synthetic inputs without it; writes metrics.sensitivity",
    ),
}
assert set(METHODS) == set(ALL_STEP_TYPES), "every step type needs a row in the capabilities table"


@dataclass
class Problem:
    loc: str
    msg: str
    type: str = "unsupported"

    def as_error(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg, "type": self.type}


def cuda_possible(model_format: str, steps: list[StepConfig]) -> bool:
    """Can every step run on CUDA (what ``device: auto`` needs before it picks the gpu queue)?"""
    return all(METHODS[type(s)].reason(model_format, "cuda") is None for s in steps)


def problems_for(model_format: str, device: str, steps: list[StepConfig], outputs: list[str]) -> list[Problem]:
    """Every impossible combination in a spec, each with its reason."""
    problems: list[Problem] = []
    if device == "auto":
        device = "cpu"  # auto can always fall back to cpu
    for i, step in enumerate(steps):
        cap = METHODS[type(step)]
        reason = cap.reason(model_format, device)
        if reason:
            problems.append(Problem(f"steps.{i}", f"{step.label} on {model_format}/{device}: {reason}"))
        if isinstance(step, QuantizeConfig):
            why = cap.runtimes.get(step.runtime, f"runtime {step.runtime!r} is not available")
            if why:
                problems.append(Problem(f"steps.{i}.runtime", f"{step.label} with runtime {step.runtime!r}: {why}"))
            elif step.runtime != "eager" and (step.include or step.exclude or step.op_types):
                problems.append(Problem(f"steps.{i}.runtime", f"{step.label} with runtime {step.runtime!r} quantizes the whole "
                                        "graph; include/exclude/op_types need runtime 'eager'"))
    problems.extend(mask_problems(model_format, steps, outputs))
    allowed = OUTPUTS_BY_FORMAT[model_format]
    for i, out in enumerate(outputs):
        if out not in allowed:
            problems.append(Problem(f"outputs.{i}", f"output {out!r} is not available for a {model_format} upload; choose from {list(allowed)}"))
    runtime = quantize_runtime(steps)
    quantized = any(METHODS[type(s)].quantizes for s in steps)
    if runtime not in (None, "eager"):
        wanted = RUNTIME_OUTPUT[runtime]
        for i, out in enumerate(outputs):
            if out != wanted:
                problems.append(Problem(f"outputs.{i}", f"runtime {runtime!r} writes its artifact as {wanted!r} (what that runtime "
                                        f"loads and what is measured); {out!r} cannot carry it"))
        return problems
    if "pt2" in outputs:
        problems.append(Problem("outputs", "'pt2' is the artifact of a quantize step with runtime 'inductor'; ask for 'torchscript' "
                                "or 'safetensors'"))
    if quantized and "safetensors" in outputs:
        problems.append(Problem("outputs", "'safetensors' holds a plain float32 state_dict and cannot carry a quantized or cast model; ask for 'torchscript'"))
    if quantized and "executorch" in outputs:
        problems.append(Problem("outputs", "'executorch' after eager quantization is not offered (torch.ao's eager int8 modules do not "
                                "lower to ExecuTorch); quantize with runtime 'executorch' (XNNPACK quantizer) for an int8 .pte"))
    if quantized and "onnx" in outputs:
        problems.append(Problem("outputs", "'onnx' after eager quantization is not offered (torch's ONNX exporter has no mapping for its int8 ops, e.g. quantized::linear_dynamic); "
                                "ask for 'torchscript', or quantize with runtime 'onnxruntime' for an int8 .onnx"))
    if "packed" in outputs and any(METHODS[type(s)].quantizes and not isinstance(s, DynamicInt8) for s in steps):
        problems.append(Problem("outputs", "'packed' stores float tensors (codebooks of float values) or a dynamic int8 model "
                                "(quantize:dynamic_int8: its sparse int8 layout); it cannot carry a static/QAT int8 or half-precision "
                                "model; use quantize:kmeans or dynamic_int8 for packed weights, or ask for 'torchscript'"))
    return problems


# the steps that may follow a prune step with permanent: false (its masks stay valid: same shapes, float weights)
KEEPS_MASKS = (MaskPruneConfig, FineTune)


def mask_problems(model_format: str, steps: list[StepConfig], outputs: list[str]) -> list[Problem]:
    """What ``permanent: false`` and ``parameters`` need: module hooks, a float model of the same shapes, a safetensors artifact."""
    problems: list[Problem] = []
    for i, step in enumerate(steps):
        if not isinstance(step, MaskPruneConfig):
            continue
        if model_format == "torchscript" and (not step.permanent or step.parameters != ["weight"]):
            problems.append(Problem(f"steps.{i}", f"{step.label} on torchscript: 'permanent: false' and pruning 'bias' need "
                                    "torch.nn.utils.prune's module hooks; upload a safetensors state_dict with an architecture"))
        if step.permanent:
            continue
        later = next((j for j in range(i + 1, len(steps)) if not isinstance(steps[j], KEEPS_MASKS)), None)
        if later is not None:
            problems.append(Problem(f"steps.{i}.permanent", f"{step.label} with permanent: false keeps masks over the model's weights; "
                                    f"steps[{later}] ({steps[later].label}) changes them (shapes or number format): only prune "
                                    "and finetune steps may follow, or make the pruning permanent"))
        if outputs and "safetensors" not in outputs:
            problems.append(Problem(f"steps.{i}.permanent", f"{step.label} with permanent: false keeps its masks in the 'safetensors' "
                                    "artifact (<name>_orig, <name>_mask): add 'safetensors' to outputs"))
    return problems


def quantize_runtime(steps: list[StepConfig]) -> str | None:
    """The runtime of the spec's quantize step (quantization comes last, once), or None without one."""
    return next((s.runtime for s in steps if isinstance(s, QuantizeConfig)), None)


def needs_labels(step: StepConfig) -> bool:
    """Whether a step's training loss needs the train part's ``labels`` (not only its inputs)."""
    if isinstance(step, FineTune):
        return not step.distill_from_original
    return isinstance(step, QATInt8)


def data_problems(steps: list[StepConfig], parts: dict[str, set[str]]) -> list[Problem]:
    """What the steps need from the data parts that the request lacks.

    ``parts`` maps each uploaded part to the array names it holds (e.g. ``{"train": {"inputs", "labels"}}``).
    """
    problems: list[Problem] = []
    for i, step in enumerate(steps):
        for part in METHODS[type(step)].data:
            if part == "calibration":
                continue  # optional: static_int8 falls back to synthetic inputs
            if isinstance(step, KMeansQuantize):  # optional: without a train part the codebooks are not fine-tuned
                if part in parts and step.finetune_epochs and "labels" not in parts[part]:
                    problems.append(Problem(f"steps.{i}", f"{step.label} fine-tunes its codebooks on labelled data: the '{part}' part "
                                            "has no 'labels' (add them, or set finetune_epochs to 0)", type="missing_data"))
                continue
            if part not in parts:
                problems.append(Problem(f"steps.{i}", f"{step.label} trains on data: send a '{part}' part (.npz or safetensors with "
                                        "'inputs' and 'labels')", type="missing_data"))
            elif needs_labels(step) and "labels" not in parts[part]:
                hint = " (or set distill_from_original to learn from the uploaded model's outputs)" if isinstance(step, FineTune) else ""
                problems.append(Problem(f"steps.{i}", f"{step.label} needs 'labels' in the '{part}' part{hint}", type="missing_data"))
    return problems


def goal_problems(goal: Any, parts: dict[str, set[str]]) -> list[Problem]:
    """What a goal needs from the data parts that the request lacks (``goal``: a ``modelpress_core.goal.Goal`` or None)."""
    if goal is None or not goal.needs_eval:
        return []
    if "eval" not in parts:
        labels = " and labels, for metric top1" if goal.metric == "top1" else ""
        return [Problem("goal.max_accuracy_drop", f"an accuracy goal needs an evaluation set: send the 'eval' data part (inputs{labels})",
                        type="missing_data")]
    if goal.needs_labels and "labels" not in parts["eval"]:
        return [Problem("goal.metric", "metric 'top1' needs 'labels' in the 'eval' part; add them, or use metric 'agreement'",
                        type="missing_data")]
    return []


def table() -> dict[str, Any]:
    """The document GET /capabilities serves."""
    methods = []
    for cap in METHODS.values():
        fields = cap.config.model_fields
        methods.append(
            {
                "method": fields["method"].default,
                "kind": fields["kind"].default,
                "description": (cap.config.__doc__ or "").strip(),
                "formats": {f: {"supported": r is None, **({"reason": r} if r else {})} for f, r in cap.formats.items()},
                "devices": {d: {"supported": r is None, **({"reason": r} if r else {})} for d, r in cap.devices.items()},
                "data": list(cap.data),
                "notes": cap.notes,
                "runtimes": {r: {"supported": w is None, **({"reason": w} if w else {})} for r, w in cap.runtimes.items()}
                if issubclass(cap.config, QuantizeConfig) else {},
                "schema": cap.config.model_json_schema(),
            }
        )
    return {
        "methods": methods,
        "input_formats": INPUT_FORMATS,
        "rejected_formats": REJECTED_FORMATS,
        "output_formats": OUTPUT_FORMATS,
        "outputs_by_input_format": {k: list(v) for k, v in OUTPUTS_BY_FORMAT.items()},
        "devices": DEVICES,
        "runtimes": RUNTIMES_DOC,
        "data_parts": DATA_PARTS,
        "data_formats": DATA_FORMATS,
        "goal": {
            "description": "Instead of (or besides) steps: the worker searches candidate pipelines, cheapest first, until one "
            "meets every constraint (see the README, 'Goals'); max_accuracy_drop needs the eval part",
            "schema": Goal.model_json_schema(),
        },
    }


__all__ = ["METHODS", "MethodCapability", "Problem", "data_problems", "goal_problems", "needs_labels", "problems_for", "quantize_runtime", "table"]
