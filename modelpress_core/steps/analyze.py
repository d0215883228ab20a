"""Analysis steps: measure the model, leave it unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelpress_core.steps.base import StepConfig


class Sensitivity(StepConfig):
    """Per-layer sensitivity: compress one layer at a time and measure the metric drop; the model is unchanged.

    The metric is top-1 accuracy on the eval labels, else top-1 agreement (or output cosine) with the
    model itself on the eval inputs (seeded synthetic inputs without eval data). With more targeted
    layers than MODELPRESS_SENSITIVITY_MAX_LAYERS a cheaper proxy is used (relative weight error of
    the compression, no forward passes), and the metrics say so. Writes ``metrics.sensitivity``.
    """

    method: Literal["analyze"] = "analyze"
    kind: Literal["sensitivity"] = "sensitivity"
    compress: Literal["quantize", "prune"] = Field(
        default="quantize", description="quantize: int8 (dynamic for Linear, per-channel weights otherwise); prune: L1 unstructured."
    )
    amount: float | None = Field(default=None, gt=0.0, lt=1.0, description="prune only: fraction of the layer's weights zeroed (default 0.5).")

    @model_validator(mode="after")
    def _amount(self) -> "Sensitivity":
        if self.amount is not None and self.compress != "prune":
            raise ValueError("analyze:sensitivity: 'amount' applies to compress='prune' only")
        return self

    @property
    def prune_amount(self) -> float:
        return self.amount if self.amount is not None else 0.5
