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


class Tucker2LowRank(StepConfig):
    """Tucker-2 decomposition of each targeted k x k Conv2d (Kim et al., 2016): ``W ~ core x_0 U_out x_1 U_in``.

    The layer becomes three convolutions: 1x1 (inputs -> ``r_in``), the k x k core (``r_in`` -> ``r_out``,
    the original stride, padding and dilation) and 1x1 (``r_out`` -> outputs, the original bias).
    Factors from HOSVD refined by ``iterations`` of HOOI. ``rank`` caps both ranks; ``energy`` keeps, per
    mode, the smallest rank holding that fraction of the unfolding's squared singular values. Layers where
    the three convolutions would not have fewer parameters are left alone; grouped / depthwise and 1x1
    convolutions are not targeted (1x1 and Linear: ``lowrank:svd``).
    """

    method: Literal["lowrank"] = "lowrank"
    kind: Literal["tucker2"] = "tucker2"
    rank: int | None = Field(default=None, ge=1, le=RANK_MAX, description="Most output and input rank kept in every decomposed convolution.")
    energy: float | None = Field(default=None, gt=0.0, le=1.0, description="Fraction of spectral energy to keep per mode, in (0, 1].")
    iterations: int = Field(default=5, ge=0, le=100, description="HOOI refinement iterations after HOSVD (0: plain HOSVD).")

    @model_validator(mode="after")
    def _one_of(self) -> "Tucker2LowRank":
        if (self.rank is None) == (self.energy is None):
            raise ValueError("lowrank:tucker2 needs exactly one of 'rank' or 'energy'")
        return self
