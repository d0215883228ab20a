"""Pruning step configs."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, field_validator, model_validator

from modelpress_core.steps.base import StepConfig


Parameter = Literal["weight", "bias"]


class MaskPruneConfig(StepConfig):
    """What the mask-based kinds share with ``torch.nn.utils.prune`` (a base class, not a step of its own).

    ``of: remaining`` (the default, as in torch): the amount is a fraction of the weights not yet pruned,
    so two ``amount: 0.5`` steps leave 75% zeros, like calling ``l1_unstructured(amount=0.5)`` twice.
    Weights that are exactly zero when the step starts count as pruned (or, after ``permanent: false``,
    the kept mask says which are). ``of: all``: the amount is the fraction of all the weights that is
    zero after the step (already-pruned weights count towards it, nothing is un-pruned).
    ``permanent: false`` keeps torch's reparametrization instead of ``prune.remove``: the safetensors
    artifact holds ``<name>_orig`` and ``<name>_mask`` for each pruned parameter, its manifest lists
    them, and ``modelpress_torch.artifacts.load_pruned`` re-attaches the masks (the reloaded module is what
    torch leaves after pruning, forward pre-hook included).
    """

    of: Literal["remaining", "all"] = Field(
        default="remaining", description="remaining (as torch): amount is a fraction of the not-yet-pruned weights; "
        "all: amount is the fraction of all weights that is zero after the step.",
    )
    parameters: list[Parameter] = Field(
        default_factory=lambda: ["weight"], min_length=1, max_length=2, description="Parameters to prune in each targeted layer."
    )
    permanent: bool = Field(
        default=True, description="true: prune.remove (real zeros, no masks); false: masks kept in the artifact and honoured on reload."
    )

    @field_validator("parameters")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("parameters: each name at most once")
        return value


class MagnitudePrune(MaskPruneConfig):
    """Zero the smallest-magnitude weights (L1, ``torch.nn.utils.prune.l1_unstructured`` /
    ``global_unstructured`` with ``L1Unstructured``); see ``of`` and ``permanent`` for repeated steps and masks."""

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
        if self.pattern is not None and (self.of != "remaining" or self.parameters != ["weight"]):
            raise ValueError("prune:magnitude with 'pattern' keeps N of every M weights: 'of' and 'parameters' do not apply")
        return self

    @property
    def n_m(self) -> tuple[int, int] | None:
        if self.pattern is None:
            return None
        n, m = self.pattern.split(":")
        return int(n), int(m)


class RandomPrune(MaskPruneConfig):
    """Zero a random fraction of weights (``random_unstructured``; a baseline to compare magnitude pruning against)."""

    method: Literal["prune"] = "prune"
    kind: Literal["random"] = "random"
    amount: float = Field(ge=0.0, lt=1.0, description="Fraction of weights to zero, in [0, 1).")
    scope: Literal["global", "layer"] = Field(
        default="global", description="global: the fraction across all targeted layers; layer: the same fraction in each."
    )


Norm = Union[Annotated[int, Field(ge=1, le=64)], Literal["inf", "-inf"]]


class LnStructuredPrune(MaskPruneConfig):
    """Zero whole channels by their Ln norm along ``dim`` (``torch.nn.utils.prune.ln_structured``): shapes are kept.

    ``dim`` 0 zeros output channels / neurons (rows of the weight), 1 input channels (columns). Per
    layer, as in torch (torch has no global structured pruning). For fewer parameters, use
    ``prune:structured``, which removes the channels.
    """

    method: Literal["prune"] = "prune"
    kind: Literal["ln_structured"] = "ln_structured"
    amount: float = Field(gt=0.0, lt=1.0, description="Fraction of channels along `dim` to zero in each targeted layer.")
    norm: Norm = Field(default=2, description="The norm ranking channels: an integer n >= 1, 'inf' or '-inf' (torch's `n`).")
    dim: Literal[0, 1] = Field(default=0, description="0: output channels / neurons; 1: input channels / features.")

    @model_validator(mode="after")
    def _bias_dim(self) -> "LnStructuredPrune":
        _check_bias_dim(self)
        return self

    @property
    def torch_norm(self) -> float | int | str:
        return {"inf": float("inf"), "-inf": float("-inf")}.get(self.norm, self.norm)  # type: ignore[arg-type]


class RandomStructuredPrune(MaskPruneConfig):
    """Zero a random fraction of channels along ``dim`` (``torch.nn.utils.prune.random_structured``), seeded by the job's seed."""

    method: Literal["prune"] = "prune"
    kind: Literal["random_structured"] = "random_structured"
    amount: float = Field(gt=0.0, lt=1.0, description="Fraction of channels along `dim` to zero in each targeted layer.")
    dim: Literal[0, 1] = Field(default=0, description="0: output channels / neurons; 1: input channels / features.")

    @model_validator(mode="after")
    def _bias_dim(self) -> "RandomStructuredPrune":
        _check_bias_dim(self)
        return self


def _check_bias_dim(step) -> None:
    if "bias" in step.parameters and step.dim != 0:
        raise ValueError(f"prune:{step.kind}: a bias has one dimension; with 'bias' in parameters, dim must be 0")


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
