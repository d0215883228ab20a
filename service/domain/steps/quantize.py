"""Quantization step configs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from service.domain.steps.base import StepConfig


class DynamicInt8(StepConfig):
    """int8 weights, activations quantized on the fly (Linear, LSTM, GRU). No data needed."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["dynamic_int8"] = "dynamic_int8"


class WeightOnlyInt8(StepConfig):
    """int8 weights (per output channel), float activations: a smaller file; speed depends on the runtime."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["weight_only_int8"] = "weight_only_int8"


class Float16(StepConfig):
    """Cast weights and compute to float16; inputs and outputs stay float32 at the artifact's edge."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["fp16"] = "fp16"


class BFloat16(StepConfig):
    """Cast weights and compute to bfloat16; inputs and outputs stay float32 at the artifact's edge."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["bf16"] = "bf16"


class StaticInt8(StepConfig):
    """int8 weights and activations with scales calibrated ahead of time (Linear, Conv, fused ReLU/BN).

    ``exclude`` (module-name globs) keeps those modules in float32 (e.g. the most sensitive layers).
    Calibrates on the job's data when given, else on seeded synthetic inputs of the declared shape
    (recorded in the metrics' notes: synthetic calibration gives poorer activation ranges).
    """

    method: Literal["quantize"] = "quantize"
    kind: Literal["static_int8"] = "static_int8"
    calibration_batches: int = Field(default=8, ge=1, le=256, description="Batches of synthetic calibration inputs.")
    calibration_batch_size: int = Field(default=32, ge=1, le=1024)

    @model_validator(mode="after")
    def _whole_graph(self) -> "StaticInt8":
        if self.include or self.op_types:
            raise ValueError(
                "quantize:static_int8 quantizes the whole graph; include/op_types are not supported "
                "('exclude' keeps the named modules in float)"
            )
        return self
