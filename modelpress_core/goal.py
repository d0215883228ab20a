"""A job's goal: what the compressed model must achieve, instead of (or alongside) explicit steps.

With a goal the worker searches a ladder of candidate pipelines, cheapest first, and stops at the
first candidate that meets every constraint (see worker/search.py and the README, "Goals").
torch-free, FastAPI-free.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelpress_core.bounds import SIZE_BYTES_MAX

GoalMetric = Literal["top1", "agreement"]


class Goal(BaseModel):
    """Constraints on the chosen artifact; every one given must hold for the goal to be met."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Largest allowed drop of `metric` on the eval data (0.005 = half a point). Needs the `eval` data part.",
    )
    min_speedup: float | None = Field(
        default=None, gt=0.0, le=1000.0,
        description="Smallest allowed speedup (p50 latency before / after, first batch size of `evaluate`).",
    )
    max_size_bytes: int | None = Field(default=None, ge=1, le=SIZE_BYTES_MAX, description="Largest allowed artifact file, in bytes.")
    metric: GoalMetric = Field(
        default="top1",
        description="top1: top-1 accuracy on the eval labels; agreement: top-1 agreement with the original model's outputs "
        "on the eval inputs (no labels needed).",
    )
    max_seconds: float | None = Field(
        default=None, gt=0.0, le=24 * 3600,
        description="Time budget of the search, checked between candidates and passed to the steps; "
        "default MODELPRESS_SEARCH_MAX_SECONDS.",
    )

    @model_validator(mode="after")
    def _some_constraint(self) -> "Goal":
        if self.max_accuracy_drop is None and self.min_speedup is None and self.max_size_bytes is None:
            raise ValueError("a goal needs at least one of max_accuracy_drop, min_speedup, max_size_bytes")
        return self

    @property
    def needs_eval(self) -> bool:
        return self.max_accuracy_drop is not None

    @property
    def needs_labels(self) -> bool:
        return self.max_accuracy_drop is not None and self.metric == "top1"
