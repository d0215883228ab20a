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
    p90: float
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


class Fidelity(_Open):
    samples: int = Field(ge=1)
    max_abs_diff: float
    mean_abs_diff: float
    cosine_similarity: float
    top1_agreement: float | None = None
    inputs: str = Field(description="what the outputs were compared on, in words")


class Verdict(_Open):
    smaller: bool
    size_ratio: float = Field(description="before file bytes / after file bytes")
    runtime: str
    warnings: list[str] = Field(description="plain-word caveats: not smaller, not faster, ...")
    faster: bool | None = None
    speedup: float | None = Field(default=None, description="p50 before / after at the first batch size")
    speedups: dict[str, float] | None = Field(default=None, description="per batch size")


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


class ArtifactSize(_Open):
    format: str
    bytes: int = Field(ge=0)


class CpuInfo(_Open):
    model: str
    flags: dict[str, bool] = Field(description="avx2, avx512, avx512_vnni, avx_vnni, vnni, amx")
    logical_cpus: int | None = None


class Provenance(_Open):
    modelpress: str
    torch: str
    python: str
    machine: str
    cpu_capability: str
    cpu: CpuInfo
    quantized_engine: str
    device: str
    seed: int
    spec: dict[str, Any]
    input_sha256: dict[str, str]


class Metrics(_Open):
    """metrics.json, schema modelpress.metrics/v1."""

    schema_: Literal["modelpress.metrics/v1"] = Field(alias="schema", description="version of this document")
    device: str
    before: ModelStats
    after: ModelStats
    artifacts: dict[str, ArtifactSize]
    fidelity: Fidelity
    verdict: Verdict
    steps: list[StepTiming]
    notes: list[str]
    training: list[TrainingRecord] | None = Field(default=None, description="one record per training step, when any")
    provenance: Provenance


def metrics_json_schema() -> dict[str, Any]:
    schema = Metrics.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://modelpress.dev/schemas/metrics/v1.json"
    return schema
