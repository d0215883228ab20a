"""Lifecycle operations shared by the API and the worker's sweeper: cancel, expire (purge), liveness.

No FastAPI, no torch, no Celery: the callers bring those.
"""

from __future__ import annotations

import json

import redis

from modelpress_core.errors import JobFinished, JobNotFinished
from modelpress_core.job import TERMINAL, JobRecord, JobState, Progress, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.artifacts import ArtifactStore
from modelpress_core.storage.jobs import JobRepository, NoChange


def cancel_job(jobs: JobRepository, store: ArtifactStore, job_id: str) -> JobRecord:
    """queued -> cancelled at once; running -> cancelling (the worker stops at its next safe point);
    cancelling stays cancelling. A finished job raises JobFinished (409)."""

    def change(record: JobRecord) -> None:
        if record.state == JobState.queued:
            record.state = JobState.cancelled
            record.finished_at = utcnow()
            record.cancel_requested_at = record.finished_at
            record.progress = Progress(phase="cancelled", fraction=record.progress.fraction, message="cancelled before it started")
        elif record.state == JobState.running:
            record.state = JobState.cancelling
            record.cancel_requested_at = utcnow()
            record.progress = Progress(**{**record.progress.model_dump(), "message": "cancel requested; stopping at the next safe point"})
        elif record.state == JobState.cancelling:
            raise NoChange
        else:
            raise JobFinished(f"job {record.id} is {record.state.value}; only queued or running jobs can be cancelled",
                              state=record.state.value)

    record = jobs.update(job_id, change) or jobs.get(job_id)
    if record.state == JobState.cancelled:
        store.remove_area(job_id, "outputs")
    return record


def finish_cancel(jobs: JobRepository, store: ArtifactStore, job_id: str, message: str) -> JobRecord | None:
    """cancelling -> cancelled with partial outputs removed (no-op unless cancelling)."""

    def change(record: JobRecord) -> None:
        if record.state != JobState.cancelling:
            raise NoChange
        record.state = JobState.cancelled
        record.finished_at = utcnow()
        record.progress = Progress(phase="cancelled", fraction=record.progress.fraction, message=message)

    record = jobs.update(job_id, change)
    store.remove_area(job_id, "outputs")
    return record


def expire_job(jobs: JobRepository, store: ArtifactStore, job_id: str, *, record_ttl_s: int, reason: str) -> JobRecord | None:
    """A finished job -> expired: inputs and outputs removed now, the record kept ``record_ttl_s``.
    Already expired: nothing changes. Unfinished: JobFinished's opposite, a 409 from the caller's view."""

    def change(record: JobRecord) -> None:
        if record.state == JobState.expired:
            raise NoChange
        if record.state not in TERMINAL:
            raise JobNotFinished(f"job {record.id} is {record.state.value}; cancel it first", state=record.state.value)
        record.state = JobState.expired
        record.artifacts = []
        record.progress = Progress(phase="expired", fraction=record.progress.fraction, message=reason)

    record = jobs.update(job_id, change)
    if record is not None:
        store.remove_job(job_id)
        jobs.keep_record_for(job_id, record_ttl_s)
    return record


def instance_alive(client: redis.Redis, worker: str | None, instance: str | None) -> bool:
    """Is the worker process that claimed a job still heartbeating (same name, same instance)?"""
    if not worker:
        return False
    raw = client.get(keys.worker_heartbeat(worker))
    if raw is None:
        return False
    try:
        seen = json.loads(raw)
    except ValueError:
        return False
    return instance is None or seen.get("instance") == instance
