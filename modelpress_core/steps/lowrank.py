"""Low-rank factorization step configs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from modelpress_core.bounds import RANK_MAX
from modelpress_core.steps.base import StepConfig


class SVDLowRank(StepConfig):
    """Replace each targeted Linear (and 1x1 Conv2d) ``W`` by two layers ``U_r (S_r V_r)`` from a truncated SVD.

    ``rank`` fixes the rank; ``energy`` keeps the smallest rank holding that fraction of the squared
    singular values. Layers where the factorization would not have fewer parameters are left alone.
    """

    method: Literal["lowrank"] = "lowrank"
    kind: Literal["svd"] = "svd"
    rank: int | None = Field(default=None, ge=1, le=RANK_MAX, description="Rank to keep in every factorized layer.")
    energy: float | None = Field(default=None, gt=0.0, le=1.0, description="Fraction of spectral energy to keep, in (0, 1].")

    @model_validator(mode="after")
    def _one_of(self) -> "SVDLowRank":
        if (self.rank is None) == (self.energy is None):
            raise ValueError("lowrank:svd needs exactly one of 'rank' or 'energy'")
        return self
