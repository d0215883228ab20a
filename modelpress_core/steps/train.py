"""Step configs that train: fine-tuning, knowledge distillation and quantization-aware training.

Each takes the uploaded ``train`` data part (``inputs`` and, for supervised losses, ``labels``);
which parts a step needs is checked at submit time (``modelpress_core.capabilities.data_problems``).
Training is seeded (the job's ``seed``), reports each epoch's loss as progress, stops between
batches when the job is cancelled, and stops early (keeping what it has) after ``max_seconds``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelpress_core.bounds import check_config
from modelpress_core.steps.base import StepConfig
from modelpress_core.steps.quantize import GraphInt8Options


class TrainingBudget(StepConfig):
    """Fields shared by every training step (a base class, not a step of its own)."""

    epochs: int = Field(default=3, ge=1, le=1000, description="Passes over the training data.")
    lr: float = Field(default=1e-3, gt=0.0, le=10.0, description="Adam learning rate.")
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_seconds: float | None = Field(
        default=None, gt=0.0, le=86400.0, description="Stop training after this long (between batches), keeping the model so far."
    )


class FineTune(TrainingBudget):
    """Train the model so far on the ``train`` part, keeping zeros zero.

    Every weight that is exactly zero when the step starts (e.g. after ``prune:magnitude``) stays zero:
    its gradient and its value are masked after every update, so the result is exactly as sparse as
    before. With ``distill_from_original`` the loss adds Hinton distillation from the uploaded model
    (then ``inputs`` alone suffice; otherwise the ``train`` part needs ``labels``).
    """

    method: Literal["finetune"] = "finetune"
    kind: Literal["train"] = "train"
    distill_from_original: bool = Field(default=False, description="Also learn from the uploaded model's soft outputs.")
    temperature: float = Field(default=4.0, gt=0.0, le=100.0, description="Distillation temperature (with distill_from_original).")
    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="Weight of the distillation loss (with distill_from_original).")

    @model_validator(mode="after")
    def _no_targeting(self) -> "FineTune":
        if self.include or self.exclude or self.op_types:
            raise ValueError("finetune trains the whole model; include/exclude/op_types are not supported")
        return self

    @property
    def label(self) -> str:
        return "finetune"


class Student(BaseModel):
    """The student: an architecture from GET /architectures with its config, or a structurally pruned copy of the teacher."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    architecture: str | None = Field(default=None, min_length=1, max_length=100, description="A name from GET /architectures.")
    config: dict[str, Any] = Field(default_factory=dict, description="That architecture's config.")
    prune_amount: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Instead of an architecture: remove this fraction of the teacher's channels/neurons."
    )
    importance: Literal["l1", "l2"] = Field(default="l2", description="Channel importance for prune_amount.")
    round_to: int | None = Field(default=None, ge=1, le=1024, description="Keep pruned channel counts a multiple of this.")

    @field_validator("config")
    @classmethod
    def _bounded_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return check_config(config)

    @model_validator(mode="after")
    def _one_source(self) -> "Student":
        if (self.architecture is None) == (self.prune_amount is None):
            raise ValueError("student needs exactly one of 'architecture' (with 'config') or 'prune_amount'")
        if self.architecture is None and self.config:
            raise ValueError("student.config goes with student.architecture")
        return self


class Distill(TrainingBudget):
    """Knowledge distillation: the uploaded model teaches a smaller student (Hinton loss, plus hard labels when given).

    Without a ``train`` part, inputs are synthesized from the declared input shape (seeded normal
    noise): data-free distillation, which the metrics flag with a warning.
    """

    method: Literal["distill"] = "distill"
    kind: Literal["hinton"] = "hinton"
    student: Student
    temperature: float = Field(default=4.0, gt=0.0, le=100.0, description="Softmax temperature of the soft targets.")
    alpha: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Weight of the soft (teacher) loss; 1 - alpha weighs the hard labels when given."
    )
    synthetic_samples: int = Field(default=2048, ge=1, le=1_000_000, description="Inputs to synthesize when no train part is given.")
    epochs: int = Field(default=10, ge=1, le=1000, description="Passes over the training data.")
    schedule: Literal["cosine", "constant"] | None = Field(
        default=None, description="Learning-rate schedule: cosine (annealed to 0 over the epochs, per batch) or constant; default "
        "cosine for an architecture student (bench/results/distill.md), constant for a pruned copy (as before: not re-measured).",
    )
    lr: float | None = Field(  # type: ignore[assignment]
        default=None, gt=0.0, le=10.0, description="Adam learning rate; default 1e-2 for an architecture student (fresh weights), "
        "1e-3 for a pruned copy of the teacher (already trained). Chosen on a validation split: bench/distill_validation.py.",
    )

    @property
    def lr_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "cosine" if self.student.architecture is not None else "constant"

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-2 if self.student.architecture is not None else 1e-3

    @model_validator(mode="after")
    def _no_targeting(self) -> "Distill":
        if self.include or self.exclude or self.op_types:
            raise ValueError("distill replaces the whole model; include/exclude/op_types are not supported")
        return self

    @property
    def label(self) -> str:
        return "distill"


class QATInt8(TrainingBudget, GraphInt8Options):
    """Quantization-aware training: fake-quantized fine-tuning on the ``train`` part, then a real int8 model.

    FX graph mode (the backend's QAT qconfig, Linear/Conv/BN/ReLU fused), the same conversion and TorchScript
    artifact as ``static_int8``: the result runs the backend's int8 kernels on CPU. Observers are
    frozen for the last epoch. Whole graph only (no targeting). Needs ``train`` with ``labels``.
    """

    method: Literal["quantize"] = "quantize"
    kind: Literal["qat"] = "qat"
    bits: Literal[8, 4] = Field(
        default=8, description="Weight bits of the fake quantization: 8, or 4 (weights trained on a 4-bit grid [-8, 7]; stored "
        "and run as int8, since eager torch has no 4-bit kernel: the verdict says so)."
    )
    lr: float = Field(default=1e-4, gt=0.0, le=10.0, description="Adam learning rate (small: the model is already trained).")
    epochs: int = Field(default=2, ge=1, le=1000, description="Passes over the training data.")

    @model_validator(mode="after")
    def _whole_graph(self) -> "QATInt8":
        if self.include or self.exclude or self.op_types:
            raise ValueError("quantize:qat quantizes the whole graph; include/exclude/op_types are not supported")
        return self
