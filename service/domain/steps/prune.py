"""Pruning step configs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.domain.steps.base import StepConfig


class MagnitudePrune(StepConfig):
    """Zero the smallest-magnitude weights (L1), made permanent: the artifact holds real zeros."""

    method: Literal["prune"] = "prune"
    kind: Literal["magnitude"] = "magnitude"
    amount: float = Field(ge=0.0, lt=1.0, description="Fraction of weights to zero, in [0, 1).")
    scope: Literal["global", "layer"] = Field(
        default="global", description="global: one threshold across all targeted layers; layer: the same fraction in each."
    )
