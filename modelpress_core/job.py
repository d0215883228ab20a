"""The job record and its state machine. The service owns it; Celery is only transport."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, field_serializer, field_validator, model_validator

from modelpress_core.errors import IllegalTransition, bounded_problem


class JobState(str, Enum):
    queued = "queued"  # accepted, waiting for a worker
    running = "running"  # a worker claimed it
    succeeded = "succeeded"  # artifacts and metrics are stored
    failed = "failed"  # ended with an error (see record.error)
    cancelling = "cancelling"  # cancel asked while running; the worker stops at the next safe point
    cancelled = "cancelled"  # ended by the user; partial files removed
    expired = "expired"  # artifacts passed their TTL and were removed


DATA_PARTS = ("calibration", "train", "eval")  # the data parts a request may carry (capabilities.DATA_PARTS documents them)

TERMINAL = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled, JobState.expired})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    JobState.running: frozenset({JobState.succeeded, JobState.failed, JobState.cancelling, JobState.queued}),
    JobState.cancelling: frozenset({JobState.cancelled, JobState.failed}),
    JobState.succeeded: frozenset({JobState.expired}),
    JobState.failed: frozenset({JobState.expired}),
    JobState.cancelled: frozenset({JobState.expired}),
    JobState.expired: frozenset(),
}


def check_transition(current: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"a job cannot go from {current.value} to {new.value}")


class Progress(BaseModel):
    phase: str = "queued"
    step: int | None = Field(default=None, description="0-based index of the running step")
    fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    message: str = ""


class ArtifactInfo(BaseModel):
    name: str
    format: str
    bytes: int
    sha256: str
    media_type: str = "application/octet-stream"


class JobRecord(BaseModel):
    id: str
    tenant: str = "default"
    state: JobState = JobState.queued
    spec: dict[str, Any]
    queue: str = "cpu"
    device: str | None = Field(default=None, description="the device it runs on: the spec's, or what `auto` resolved to")
    progress: Progress = Field(default_factory=Progress)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    attempts: int = 0
    worker: str | None = None
    worker_instance: str | None = Field(default=None, description="the claiming worker process's instance id (heartbeat value)")
    cancel_requested_at: datetime | None = None
    error: dict[str, Any] | None = None
    inputs: list[ArtifactInfo] = Field(default_factory=list, description="every stored upload, model first (what GET /jobs/{id} lists)")
    model: ArtifactInfo | None = Field(default=None, description="the uploaded model, as stored under inputs/")
    data: dict[str, ArtifactInfo] = Field(default_factory=dict, description="each uploaded data part (calibration, train, eval)")
    artifacts: list[ArtifactInfo] = Field(default_factory=list)
    summary: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _typed_inputs(self) -> "JobRecord":
        """Records written before ``model``/``data`` existed: the model was inputs[0], a data part named ``<part>.<ext>``."""
        if self.model is None and self.inputs:
            self.model = self.inputs[0]
            self.data = {i.name.split(".", 1)[0]: i for i in self.inputs[1:] if i.name.split(".", 1)[0] in DATA_PARTS}
        return self

    @field_validator("error")
    @classmethod
    def _bounded_error_in(cls, error: dict[str, Any] | None) -> dict[str, Any] | None:
        return bounded_problem(error) if error is not None else None  # records written before errors were bounded

    @field_serializer("error")
    def _bounded_error_out(self, error: dict[str, Any] | None) -> dict[str, Any] | None:
        return bounded_problem(error) if error is not None else None  # whatever path assigned it

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def new_job_id() -> str:
    """Sortable-ish, unguessable: 'j_' + UTC timestamp + 12 random hex."""
    return "j_" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
