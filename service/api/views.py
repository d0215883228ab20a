"""Response shapes of the HTTP API (what clients see of a job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modelpress_core.job import ArtifactInfo, JobRecord, JobState, Progress


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class JobLinks(BaseModel):
    self: str
    metrics: str
    report: str
    events: str
    logs: str
    artifacts: dict[str, str] = Field(default_factory=dict)


class JobView(BaseModel):
    id: str
    state: JobState
    progress: Progress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    attempts: int
    cancel_requested_at: datetime | None = None
    queue: str
    device: str | None = Field(default=None, description="The device it runs on: the spec's, or what `auto` resolved to.")
    waiting: str | None = Field(
        default=None,
        description="Why a queued job cannot start now, e.g. 'no live GPU worker (queue gpu)'; null when a worker serves its queue.",
    )
    error: dict[str, Any] | None = Field(default=None, description="Problem details when the job failed.")
    spec: dict[str, Any]
    inputs: list[ArtifactInfo]
    artifacts: list[ArtifactInfo]
    summary: dict[str, Any] | None = Field(default=None, description="Headline metrics; GET .../metrics has all.")
    links: JobLinks

    @classmethod
    def of(cls, record: JobRecord, base: str) -> "JobView":
        root = f"{base}/jobs/{record.id}"
        links = JobLinks(
            self=root,
            metrics=f"{root}/metrics",
            report=f"{root}/report",
            events=f"{root}/events",
            logs=f"{root}/logs",
            artifacts={a.name: f"{root}/artifacts/{a.name}" for a in record.artifacts},
        )
        return cls(**record.model_dump(exclude={"tenant", "worker", "worker_instance", "model", "data"}), links=links)


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: int | None = Field(default=None, description="Pass as ?cursor= for the next page; null at the end.")


class LogLine(BaseModel):
    ts: datetime
    level: str = Field(description="info, warning or error")
    message: str


class LogPage(BaseModel):
    job_id: str
    lines: list[LogLine] = Field(description="Oldest first; the store keeps the newest 1000.")
