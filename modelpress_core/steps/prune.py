"""Pruning step configs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelpress_core.steps.base import StepConfig


class MagnitudePrune(StepConfig):
    """Zero the smallest-magnitude weights (L1), made permanent: the artifact holds real zeros."""

    method: Literal["prune"] = "prune"
    kind: Literal["magnitude"] = "magnitude"
    amount: float | None = Field(
        default=None, ge=0.0, lt=1.0, description="Fraction of weights to zero, in [0, 1); required unless `pattern` is given."
    )
    scope: Literal["global", "layer"] = Field(
        default="global", description="global: one threshold across all targeted layers; layer: the same fraction in each."
    )
    pattern: str | None = Field(
        default=None,
        description="N:M semi-structured sparsity, e.g. '2:4': in every group of M consecutive input weights keep the N largest.",
    )

    @field_validator("pattern")
    @classmethod
    def _n_m(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError("pattern must look like 'N:M', e.g. '2:4'")
        n, m = int(parts[0]), int(parts[1])
        if not (0 < n < m <= 32):
            raise ValueError("pattern N:M needs 0 < N < M <= 32")
        return value

    @model_validator(mode="after")
    def _amount_or_pattern(self) -> "MagnitudePrune":
        if (self.amount is None) == (self.pattern is None):
            raise ValueError("prune:magnitude needs exactly one of 'amount' or 'pattern'")
        if self.pattern is not None and self.scope != "global":
            raise ValueError("prune:magnitude with 'pattern' applies per group of weights; leave 'scope' at its default")
        return self

    @property
    def n_m(self) -> tuple[int, int] | None:
        if self.pattern is None:
            return None
        n, m = self.pattern.split(":")
        return int(n), int(m)


class RandomPrune(StepConfig):
    """Zero a random fraction of weights (a baseline to compare magnitude pruning against), made permanent."""

    method: Literal["prune"] = "prune"
    kind: Literal["random"] = "random"
    amount: float = Field(ge=0.0, lt=1.0, description="Fraction of weights to zero, in [0, 1).")
    scope: Literal["global", "layer"] = Field(
        default="global", description="global: the fraction across all targeted layers; layer: the same fraction in each."
    )


class StructuredPrune(StepConfig):
    """Physically remove output channels / neurons (torch-pruning's dependency graph): fewer parameters, new shapes.

    The model's last layer (its outputs) is never pruned. The result no longer fits the original
    architecture config: it is written as safetensors with an architecture manifest (load with
    ``modelpress_torch.artifacts.load_pruned``) or as TorchScript.
    """

    method: Literal["prune"] = "prune"
    kind: Literal["structured"] = "structured"
    amount: float = Field(gt=0.0, lt=1.0, description="Fraction of channels / neurons to remove from each targeted layer, in (0, 1).")
    importance: Literal["l1", "l2"] = Field(default="l2", description="Channel importance: L1 or L2 norm of its weights.")
    round_to: int | None = Field(default=None, ge=1, le=1024, description="Keep channel counts a multiple of this (e.g. 8).")
