"""Quantization step configs."""

from __future__ import annotations

from typing import Literal

from service.domain.steps.base import StepConfig


class DynamicInt8(StepConfig):
    """int8 weights, activations quantized on the fly (Linear, LSTM, GRU). No data needed."""

    method: Literal["quantize"] = "quantize"
    kind: Literal["dynamic_int8"] = "dynamic_int8"
