"""Quantization step configs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modelpress_core.formats import RUNTIME_OUTPUT  # noqa: F401  re-exported: the artifact format each runtime is written as
from modelpress_core.steps.base import StepConfig

Runtime = Literal["eager", "inductor", "onnxruntime"]
RUNTIMES: tuple[str, ...] = ("eager", "inductor", "onnxruntime")


class QuantizeConfig(StepConfig):
    """Base of the quantize kinds: every one says which runtime its artifact is written for."""

    runtime: Runtime = Field(
        default="eager",
        description="Where the artifact runs and is measured: 'eager' (TorchScript, torch's own int8 kernels), "
        "'inductor' (a torch.export .pt2 to load and torch.compile with freezing), 'onnxruntime' (an int8 .onnx). "
        "GET /capabilities lists which kinds support which runtime.",
    )


class DynamicInt8(QuantizeConfig):
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


class StaticInt8(QuantizeConfig):
    """int8 weights and activations with scales calibrated ahead of time (Linear, Conv, fused ReLU/BN).

    ``exclude`` (module-name globs) keeps those modules in float32 (e.g. the most sensitive layers).
    Calibrates on the job's data when given, else on seeded synthetic inputs of the declared shape
    (recorded in the metrics' notes: synthetic calibration gives poorer activation ranges).
    eager: FX graph mode -> TorchScript; inductor: PT2E + X86InductorQuantizer -> .pt2;
    onnxruntime: ONNX Runtime static QDQ -> .onnx.
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
