"""The allowlist of step types: a discriminated union on ``method``, then ``kind``."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from modelpress_core.steps.analyze import Sensitivity
from modelpress_core.steps.base import StepConfig
from modelpress_core.steps.lowrank import SVDLowRank, Tucker2LowRank
from modelpress_core.steps.prune import (
    LnStructuredPrune, MagnitudePrune, MaskPruneConfig, RandomPrune, RandomStructuredPrune, StructuredPrune,
)
from modelpress_core.steps.quantize import (
    RUNTIME_OUTPUT, RUNTIMES, BFloat16, DynamicInt8, Float16, KMeansQuantize, QuantizeConfig, StaticInt8, WeightOnlyInt4, WeightOnlyInt8,
)
from modelpress_core.steps.train import Distill, FineTune, QATInt8, Student, TrainingBudget

PruneStep = Annotated[
    Union[MagnitudePrune, RandomPrune, LnStructuredPrune, RandomStructuredPrune, StructuredPrune], Field(discriminator="kind")
]
QuantizeStep = Annotated[
    Union[DynamicInt8, WeightOnlyInt8, WeightOnlyInt4, Float16, BFloat16, StaticInt8, QATInt8, KMeansQuantize], Field(discriminator="kind")
]
LowRankStep = Annotated[Union[SVDLowRank, Tucker2LowRank], Field(discriminator="kind")]
AnalyzeStep = Annotated[Union[Sensitivity], Field(discriminator="kind")]

Step = Annotated[Union[PruneStep, QuantizeStep, LowRankStep, FineTune, Distill, AnalyzeStep], Field(discriminator="method")]

ALL_STEP_TYPES: tuple[type[StepConfig], ...] = (
    MagnitudePrune,
    RandomPrune,
    LnStructuredPrune,
    RandomStructuredPrune,
    StructuredPrune,
    DynamicInt8,
    WeightOnlyInt8,
    WeightOnlyInt4,
    Float16,
    BFloat16,
    StaticInt8,
    KMeansQuantize,
    SVDLowRank,
    Tucker2LowRank,
    FineTune,
    Distill,
    QATInt8,
    Sensitivity,
)

__all__ = [
    "Step",
    "StepConfig",
    "ALL_STEP_TYPES",
    "MagnitudePrune",
    "RandomPrune",
    "LnStructuredPrune",
    "RandomStructuredPrune",
    "MaskPruneConfig",
    "StructuredPrune",
    "DynamicInt8",
    "WeightOnlyInt8",
    "WeightOnlyInt4",
    "Float16",
    "BFloat16",
    "StaticInt8",
    "KMeansQuantize",
    "SVDLowRank",
    "Tucker2LowRank",
    "QuantizeConfig",
    "RUNTIMES",
    "RUNTIME_OUTPUT",
    "FineTune",
    "Distill",
    "QATInt8",
    "Student",
    "TrainingBudget",
    "Sensitivity",
]
