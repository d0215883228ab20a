"""Response shapes of the HTTP API (what clients see of a job)."""

from __future__ import annotations

import json
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
        return cls(**record.model_dump(exclude=HIDDEN_RECORD_FIELDS), links=JobLinks(**links_of(record, base)))


HIDDEN_RECORD_FIELDS = {"tenant", "worker", "worker_instance", "model", "data"}  # on the record, never in a JobView


def links_of(record: JobRecord, base: str) -> dict[str, Any]:
    root = f"{base}/jobs/{record.id}"
    return {
        "self": root,
        "metrics": f"{root}/metrics",
        "report": f"{root}/report",
        "events": f"{root}/events",
        "logs": f"{root}/logs",
        "artifacts": {a.name: f"{root}/artifacts/{a.name}" for a in record.artifacts},
    }


def job_view_json(record: JobRecord, base: str, waiting: str | None = None) -> bytes:
    """``JobView.of(record, base)`` (with ``waiting``) as JSON, serialized once from the record.

    The hot path of a status read: the record's own JSON less the hidden fields, with ``waiting``
    and ``links`` appended, instead of a dict, a JobView and FastAPI's response-model pass over it
    (a unit test holds the two equal)."""
    body = record.model_dump_json(exclude=HIDDEN_RECORD_FIELDS)
    tail = json.dumps({"waiting": waiting, "links": links_of(record, base)}, ensure_ascii=False, separators=(",", ":"))
    return (body[:-1] + "," + tail[1:]).encode()


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
