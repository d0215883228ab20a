"""The metrics document every successful job writes (`metrics.json`), as a versioned contract.

The worker builds it (worker/pipeline.py, worker/evaluate.py); the API serves it, renders the
report from it and publishes its JSON schema at `GET /schemas/metrics`. torch-free, FastAPI-free.
Objects allow extra fields so that a newer worker's additions do not break older readers; a
breaking change bumps METRICS_SCHEMA.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

METRICS_SCHEMA = "modelpress.metrics/v1"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Latency(_Open):
    p50: float = Field(description="median milliseconds per call")
    p90: float = Field(description="nearest-rank 90th percentile, ms")
    p99: float = Field(description="nearest-rank 99th percentile, ms (the slowest run when runs < 100)")
    mean: float = Field(ge=0, description="mean milliseconds per call")
    throughput: float = Field(ge=0, description="samples per second: batch_size / mean latency")
    hardware: str | None = Field(default=None, description="CPU model or GPU name it ran on")
    batch_size: int = Field(ge=1)
    threads: int = Field(ge=1)
    runs: int = Field(ge=1)
    warmup: int = Field(ge=0)
    runtime: str = Field(description="what executed it: eager, torchscript, ...")


class Layer(_Open):
    name: str = Field(description="module name in the model (e.g. '0', 'encoder.layer.0.attention.self.query')")
    type: str = Field(description="module class, e.g. Linear or DynamicQuantizedLinear")
    shape: list[int] = Field(description="weight shape")
    dtype: str = Field(description="weight dtype, e.g. float32 or qint8")
    sparsity: float = Field(ge=0, le=1, description="fraction of exact zeros in the weight")
    bytes: int = Field(ge=0, description="weight + bias bytes as stored")


class Macs(_Open):
    macs: int | None = Field(ge=0, description="multiply-accumulates of one forward pass on input_shape; null when uncountable")
    input_shape: list[int] = Field(description="the declared input at batch 1")
    method: str = Field(description="how it was counted")
    note: str | None = Field(default=None, description="what was counted differently or not at all")
    counted_on: str | None = Field(default=None, description="after only: which model was counted")


class Memory(_Open):
    rss_peak_growth_bytes: int | None = Field(ge=0, description="peak resident-set growth to load and run the model once; "
                                              "null when not measured (see method/note)")
    method: str = Field(description="what the number measures, in words")
    note: str | None = None
    cuda_model_bytes: int | None = Field(default=None, ge=0, description="CUDA jobs: bytes of the model's tensors on the GPU")
    cuda_forward_peak_bytes: int | None = Field(default=None, ge=0, description="CUDA jobs: peak extra allocation of one forward "
                                                "pass (torch.cuda.max_memory_allocated)")


class ModelStats(_Open):
    file_bytes: int = Field(ge=0, description="bytes of the uploaded file (before) or of the artifact (after)")
    parameters: int = Field(ge=0)
    nonzero_parameters: int = Field(ge=0)
    sparsity: float = Field(ge=0, le=1)
    parameter_bytes: int = Field(ge=0)
    dtypes: dict[str, int] = Field(description="parameter count per dtype")
    layers: list[Layer] = Field(default_factory=list, description="per-layer table")
    latency: list[Latency] | None = Field(default=None, description="one entry per requested batch size")
    latency_ms: Latency | None = Field(default=None, description="the first batch size's latency (headline)")
    artifact: str | None = Field(default=None, description="after only: the artifact that was measured")
    macs: Macs = Field(description="compute of one forward pass on the declared input")
    memory: Memory = Field(description="peak memory of loading and running the model at the largest batch size")


class Fidelity(_Open):
    samples: int = Field(ge=1)
    max_abs_diff: float
    mean_abs_diff: float
    cosine_similarity: float
    top1_agreement: float | None = None
    source: Literal["eval", "calibration", "synthetic"] = Field(description="which inputs: the uploaded eval or calibration data, or synthesized")
    inputs: str = Field(description="what the outputs were compared on, in words")


Interval = list[float]


class Quality(_Open):
    """On the uploaded, labelled eval set: top-1 accuracy (integer labels) or MSE (float labels)."""

    dataset: str
    count: int = Field(ge=1)
    metric: Literal["top1_accuracy", "mse"]
    method: str
    top1_accuracy_before: float | None = Field(default=None, ge=0, le=1)
    top1_accuracy_after: float | None = Field(default=None, ge=0, le=1)
    accuracy_before_ci95: Interval | None = Field(default=None, min_length=2, max_length=2, description="Wilson score interval")
    accuracy_after_ci95: Interval | None = Field(default=None, min_length=2, max_length=2)
    accuracy_drop: float | None = Field(default=None, description="before - after (positive: worse)")
    accuracy_drop_ci95: Interval | None = Field(default=None, min_length=2, max_length=2, description="paired bootstrap")
    mcnemar_p: float | None = Field(default=None, ge=0, le=1)
    mse_before: float | None = Field(default=None, ge=0)
    mse_after: float | None = Field(default=None, ge=0)
    mse_before_ci95: Interval | None = Field(default=None, min_length=2, max_length=2)
    mse_after_ci95: Interval | None = Field(default=None, min_length=2, max_length=2)
    mse_increase: float | None = None
    mse_increase_ci95: Interval | None = Field(default=None, min_length=2, max_length=2)


class QualityVerdict(_Open):
    metric: Literal["top1_accuracy", "mse", "output_cosine"]
    change: float = Field(description="after - before (accuracy, cosine: negative is worse; mse: positive is worse)")
    ci95: Interval | None = Field(min_length=2, max_length=2)
    basis: str = Field(description="what it was measured on, in words")


class Verdict(_Open):
    artifact: str | None = Field(default=None, description="the artifact this verdict was measured on")
    smaller: bool
    size_ratio: float = Field(description="before file bytes / after file bytes")
    runtime: str
    warnings: list[str] = Field(description="plain-word caveats: not smaller, not faster, ...")
    faster: bool | None = Field(default=None, description="p50 speed-up above 1.05x at the first batch size, and never true when simulated_only (a simulated speed is not a speed-up)")
    speedup: float | None = Field(default=None, description="p50 before / after at the first batch size")
    speedups: dict[str, float] | None = Field(default=None, description="per batch size")
    simulated_only: bool = Field(description="true when no real low-precision kernel ran (e.g. int8 weights dequantized "
                                 "in eager, fp16 on a CPU without fp16 arithmetic): the speed is not what a real kernel gives")
    simulated_reasons: list[str] = Field(default_factory=list)
    macs_ratio: float | None = Field(default=None, description="MACs before / after")
    quality: QualityVerdict | None = None


class StepTiming(_Open):
    step: int = Field(ge=0)
    label: str
    seconds: float = Field(ge=0)


class TrainingRecord(_Open):
    """One training step (finetune, distill, quantize:qat)."""

    step: str = Field(description="the step's label, e.g. finetune")
    objective: str = Field(description="the loss, in words: cross-entropy, distillation (T=...), or both with their weights")
    samples: int = Field(ge=0, description="training inputs per epoch")
    epochs: int = Field(ge=0, description="epochs asked for")
    epochs_completed: int = Field(ge=0, description="full epochs run (fewer when max_seconds stopped it)")
    epoch_loss: list[float] = Field(description="mean training loss of each epoch run (the last may be partial)")
    seconds: float = Field(ge=0)
    stopped_early: str | None = Field(default=None, description="why training stopped before its epochs, or null")
    schedule: str | None = Field(default=None, description="learning-rate schedule: constant, or cosine (annealed to 0 per batch)")
    student: str | None = Field(default=None, description="distill: the student, in words (architecture and config, or pruned copy)")
    temperature: float | None = Field(default=None, description="distill: the softmax temperature of the soft targets")
    alpha: float | None = Field(default=None, description="distill: the weight of the soft loss as applied (1.0 without labels)")


class ArtifactSize(_Open):
    format: str
    bytes: int = Field(ge=0)
    size_ratio: float | None = Field(default=None, description="uploaded file bytes / this artifact's bytes")
    smaller: bool | None = None
    measured: bool | None = Field(default=None, description="true for the artifact whose speed, memory and outputs were measured")


class CpuInfo(_Open):
    model: str
    flags: dict[str, bool] = Field(description="avx2, avx512, avx512_vnni, avx_vnni, vnni, amx")
    logical_cpus: int | None = None


class GpuInfo(_Open):
    name: str
    capability: str
    memory_bytes: int | None = None
    cuda: str | None = None


class Provenance(_Open):
    modelpress: str
    torch: str
    python: str
    machine: str
    cpu_capability: str
    cpu: CpuInfo
    gpu: GpuInfo | None = None
    libraries: dict[str, str] = Field(default_factory=dict, description="installed versions of the libraries involved")
    quantized_engine: str
    device: str
    seed: int
    spec: dict[str, Any]
    input_sha256: dict[str, str]


class Candidate(_Open):
    """One pipeline a goal search tried (metrics.candidates)."""

    label: str = Field(description="what the candidate is, in words, e.g. 'dynamic int8'")
    steps: list[str] = Field(description="its step labels, e.g. ['prune:magnitude', 'quantize:dynamic_int8']")
    file_bytes: int = Field(ge=0, description="bytes of its first artifact (0 when it failed)")
    latency_ms: float | None = Field(description="p50 milliseconds per call of its artifact, first batch size; null without latency")
    accuracy: float | None = Field(description="the goal's metric after (top-1 accuracy, or top-1 agreement); null without eval data")
    accuracy_drop: float | None = Field(description="metric before - after (agreement: 1 - agreement)")
    speedup: float | None = Field(description="p50 before / after")
    meets_goal: bool
    pareto: bool = Field(description="on the Pareto front over (file_bytes min, latency_ms min, accuracy max)")
    chosen: bool = Field(description="its artifacts are the job's artifacts")
    seconds: float = Field(ge=0, description="wall time of compressing, writing and measuring it")
    error: str | None = Field(description="why it failed; null when it ran")


class GoalResult(_Open):
    """metrics.goal: the goal, whether the chosen candidate met it, and why not."""

    spec: dict[str, Any] = Field(description="the goal as submitted")
    met: bool
    diagnosis: str | None = Field(description="plain words: which constraint or layer blocked it; null when met")


class SensitivityLayer(_Open):
    name: str
    type: str
    delta: float = Field(description="metric drop when only this layer is compressed (proxy: relative weight error)")


class SensitivityTable(_Open):
    """metrics.sensitivity: per-layer sensitivity (analyze:sensitivity, or measured by a goal search)."""

    kind: Literal["quantize", "prune"]
    metric: str = Field(description="top1, agreement, cosine, or weight_error (the proxy)")
    layers: list[SensitivityLayer]
    proxy: bool | None = Field(default=None, description="true when delta is the weight-error proxy, not a measured drop")


class Metrics(_Open):
    """metrics.json, schema modelpress.metrics/v1."""

    schema_: Literal["modelpress.metrics/v1"] = Field(alias="schema", description="version of this document")
    device: str
    before: ModelStats
    after: ModelStats
    artifacts: dict[str, ArtifactSize]
    fidelity: Fidelity
    quality: Quality | None = Field(default=None, description="only with a labelled eval set")
    verdict: Verdict
    steps: list[StepTiming]
    notes: list[str]
    training: list[TrainingRecord] | None = Field(default=None, description="one record per training step, when any")
    provenance: Provenance
    candidates: list[Candidate] | None = Field(default=None, description="goal search only: every candidate tried, in order")
    goal: GoalResult | None = Field(default=None, description="goal search only")
    sensitivity: SensitivityTable | None = Field(default=None, description="analyze:sensitivity, or a goal search that measured it")


def metrics_json_schema() -> dict[str, Any]:
    schema = Metrics.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://modelpress.dev/schemas/metrics/v1.json"
    return schema
