"""Quantization step configs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator, field_validator

from modelpress_core.formats import RUNTIME_OUTPUT  # noqa: F401  re-exported: the artifact format each runtime is written as
from modelpress_core.steps.base import StepConfig

Runtime = Literal["eager", "inductor", "onnxruntime", "executorch"]
RUNTIMES: tuple[str, ...] = ("eager", "inductor", "onnxruntime", "executorch")


class QuantizeConfig(StepConfig):
    """Base of the quantize kinds: every one says which runtime its artifact is written for."""

    runtime: Runtime = Field(
        default="eager",
        description="Where the artifact runs and is measured: 'eager' (TorchScript, torch's own int8 kernels), "
        "'inductor' (a torch.export .pt2 to load and torch.compile with freezing), 'onnxruntime' (an int8 .onnx), "
        "'executorch' (a .pte for phones: PT2E with the XNNPACK quantizer, XNNPACK delegate, run by the ExecuTorch runtime). "
        "GET /capabilities lists which kinds support which runtime.",
    )


Backend = Literal["x86", "fbgemm", "qnnpack", "onednn"]
BACKENDS_DOC = ("torch's quantized engine: 'x86' (default: fbgemm + onednn, servers), 'fbgemm', 'onednn', 'qnnpack' (ARM phones; "
                "on this service it is measured on the worker's CPU, which the verdict names)")
Granularity = Literal["per_channel", "per_tensor"]
Observer = Literal["histogram", "minmax", "moving_average_minmax"]


class EagerInt8Options(QuantizeConfig):
    """Options of torch's eager int8 kinds (a base class, not a step of its own): engine and weight scales."""

    backend: Backend = Field(default="x86", description=BACKENDS_DOC + ". Runtime 'eager' only.")
    granularity: Granularity | None = Field(
        default=None, description="Weight scales per output channel or one per tensor; default: the backend's "
        "(per_channel, except per_tensor for qnnpack static/QAT, as torch's default qconfigs).",
    )

    @model_validator(mode="after")
    def _eager_backend(self) -> "EagerInt8Options":
        if self.backend != "x86" and self.runtime != "eager":
            raise ValueError(f"{self.label}: 'backend' chooses torch's eager int8 engine; runtime {self.runtime!r} has its own")
        if self.granularity is not None and self.runtime != "eager":
            raise ValueError(f"{self.label}: 'granularity' applies to runtime 'eager'")
        return self


class GraphInt8Options(EagerInt8Options):
    """Options of the FX graph-mode kinds (static, QAT): fusion and observers."""

    fuse: list[list[str]] | None = Field(
        default=None, max_length=256, description="Module-name groups fused first with torch.ao.quantization.fuse_modules (as in "
        "the eager-mode tutorial), e.g. [['features.0', 'features.1']]; FX then fuses the Conv/BN/ReLU and Linear/ReLU "
        "patterns it finds itself. Default: FX's fusion only.",
    )
    observer: Observer | None = Field(
        default=None, description="Activation range observer; default: the backend's (histogram for static, moving-average "
        "min/max for QAT). Weights: min/max, per channel or per tensor (granularity).",
    )

    @field_validator("fuse")
    @classmethod
    def _groups(cls, value: list[list[str]] | None) -> list[list[str]] | None:
        if value is None:
            return value
        names = [n for group in value for n in group]
        if any(not 2 <= len(group) <= 3 for group in value):
            raise ValueError("fuse: each group names 2 or 3 consecutive modules, e.g. ['conv', 'bn', 'relu']")
        if len(set(names)) != len(names):
            raise ValueError("fuse: a module can be in one group only")
        return value

    @model_validator(mode="after")
    def _eager_graph(self) -> "GraphInt8Options":
        if (self.fuse is not None or self.observer is not None) and self.runtime != "eager":
            raise ValueError(f"{self.label}: 'fuse' and 'observer' apply to runtime 'eager'")
        return self


class DynamicInt8(EagerInt8Options):
    """int8 weights, activations quantized on the fly (Linear, LSTM, GRU). No data needed."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["dynamic_int8"] = "dynamic_int8"


class WeightOnlyInt8(QuantizeConfig):
    """int8 weights (per output channel), float activations: a smaller file; speed depends on the runtime."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["weight_only_int8"] = "weight_only_int8"


class Float16(QuantizeConfig):
    """Cast weights and compute to float16; inputs and outputs stay float32 at the artifact's edge."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["fp16"] = "fp16"


class BFloat16(QuantizeConfig):
    """Cast weights and compute to bfloat16; inputs and outputs stay float32 at the artifact's edge."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["bf16"] = "bf16"


class StaticInt8(GraphInt8Options):
    """int8 weights and activations with scales calibrated ahead of time (Linear, Conv, fused ReLU/BN).

    ``exclude`` (module-name globs) keeps those modules in float32 (e.g. the most sensitive layers).
    Calibrates on the job's data when given, else on seeded synthetic inputs of the declared shape
    (recorded in the metrics' notes: synthetic calibration gives poorer activation ranges).
    eager: FX graph mode -> TorchScript (``backend``, ``granularity``, ``fuse``, ``observer``);
    inductor: PT2E + X86InductorQuantizer -> .pt2; onnxruntime: ONNX Runtime static QDQ -> .onnx.
    """

    method: Literal["quantize"] = "quantize"
    kind: Literal["static_int8"] = "static_int8"
    calibration_batches: int = Field(default=8, ge=1, le=256, description="Batches of synthetic calibration inputs (when no calibration part is uploaded).")
    calibration_batch_size: int = Field(default=32, ge=1, le=1024, description="Batch size of calibration passes.")

    @model_validator(mode="after")
    def _whole_graph(self) -> "StaticInt8":
        if self.include or self.op_types:
            raise ValueError(
                "quantize:static_int8 quantizes the whole graph; include/op_types are not supported "
                "('exclude' keeps the named modules in float)"
            )
        return self


class KMeansQuantize(StepConfig):
    """Deep Compression weight sharing: per layer, k-means on the nonzero weights (linear init), every weight
    replaced by its centroid, so a layer holds at most ``2**bits`` distinct values, pruning zeros included
    (a pruned layer gets ``2**bits - 1`` nonzero centroids; its zeros stay exactly zero).

    The model stays a plain float model (measurable, exportable to every format); the ``packed`` output
    stores each layer as a codebook plus ``bits``-bit codes. With a ``train`` data part that has labels,
    the centroids are fine-tuned: the gradients of all weights sharing a centroid are summed to update it.
    Nothing may follow this step (a later step would break the codebook).
    """

    method: Literal["quantize"] = "quantize"
    kind: Literal["kmeans"] = "kmeans"
    bits: int = Field(default=5, ge=2, le=8, description="Code bits per weight: at most 2**bits distinct values per layer.")
    layer_bits: dict[str, Annotated[int, Field(ge=2, le=8)]] = Field(
        default_factory=dict, description="Per-layer override, module name -> bits (2..8), e.g. {'fc3': 6}."
    )
    init: Literal["linear", "density", "random"] = Field(
        default="linear", description="Centroid initialization: linear over [min, max] (the paper's best), CDF quantiles, or random."
    )
    iterations: int = Field(default=30, ge=1, le=300, description="Most Lloyd iterations per layer.")
    finetune_epochs: int = Field(default=3, ge=0, le=100, description="Codebook fine-tuning epochs on the labelled train data (0: none).")
    learning_rate: float = Field(default=1e-4, gt=0.0, le=1.0, description="Adam learning rate of the centroid fine-tuning.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Fine-tuning batch size.")


class WeightOnlyInt4(QuantizeConfig):
    """Uniform 4-bit weights (asymmetric, one scale and zero point per ``group_size`` inputs), run by torch's CPU int4
    kernel (``aten._weight_int4pack_mm_for_cpu``, bfloat16 activations), on Linear layers.

    The kernel needs the outputs a multiple of 16 and the inputs a multiple of ``group_size``: other layers are
    zero-padded (the padding is stored and multiplied, the outputs sliced). Runtime 'eager' (TorchScript artifact).
    """

    method: Literal["quantize"] = "quantize"
    kind: Literal["weight_only_int4"] = "weight_only_int4"
    group_size: Literal[32, 64, 128, 256] = Field(default=32, description="Inputs sharing one scale and zero point.")
