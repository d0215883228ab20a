"""What every step config shares: strict fields and targeting."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StepConfig(BaseModel):
    """Base of every step. Unknown fields are errors; targeting selects modules by name and type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    include: list[str] = Field(default_factory=list, description="Module-name globs to act on (default: all).")
    exclude: list[str] = Field(default_factory=list, description="Module-name globs to leave alone.")
    op_types: list[str] = Field(
        default_factory=list, description="Module class names to act on, e.g. ['Linear', 'Conv2d'] (default: the method's own)."
    )

    @property
    def label(self) -> str:
        return f"{self.method}:{self.kind}"  # type: ignore[attr-defined]
