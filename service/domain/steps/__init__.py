"""The allowlist of step types: a discriminated union on ``method``, then ``kind``."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from service.domain.steps.base import StepConfig
from service.domain.steps.prune import MagnitudePrune
from service.domain.steps.quantize import DynamicInt8

PruneStep = Annotated[Union[MagnitudePrune], Field(discriminator="kind")]
QuantizeStep = Annotated[Union[DynamicInt8], Field(discriminator="kind")]

Step = Annotated[Union[PruneStep, QuantizeStep], Field(discriminator="method")]

ALL_STEP_TYPES: tuple[type[StepConfig], ...] = (MagnitudePrune, DynamicInt8)

__all__ = ["Step", "StepConfig", "ALL_STEP_TYPES", "MagnitudePrune", "DynamicInt8"]
