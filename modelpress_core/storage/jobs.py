"""The job repository: job records in Redis, with checked state transitions."""

from __future__ import annotations

import json
from typing import Any, Callable

import redis

from modelpress_core.errors import JobNotFound, TenantJobLimit  # noqa: F401  (re-exported: importers name them from here)
from modelpress_core.job import JobRecord, JobState, check_transition, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.connection import watched


class NoChange(Exception):
    """Raised by an ``update`` change function to leave the record as it is (``update`` returns None)."""


def _index(pipe, record: JobRecord) -> None:
    """Keep the state indexes (live, queued, finished) in step with the record, inside its MULTI."""
    if record.state == JobState.queued:
        pipe.sadd(keys.queued_jobs(), record.id)
    else:
        pipe.srem(keys.queued_jobs(), record.id)
    if record.terminal:
        pipe.srem(keys.live_jobs(), record.id)
        pipe.srem(keys.tenant_active(record.tenant), record.id)
        if record.state == JobState.expired:
            pipe.zrem(keys.finished_jobs(), record.id)
        else:
            finished = (record.finished_at or record.updated_at).timestamp()
            pipe.zadd(keys.finished_jobs(), {record.id: finished})
    else:
        pipe.sadd(keys.live_jobs(), record.id)
        pipe.sadd(keys.tenant_active(record.tenant), record.id)


class JobRepository:
    def __init__(self, client: redis.Redis):
        self.redis = client

    def create(self, record: JobRecord, *, max_active: int = 0) -> None:
        """Store a new record. With ``max_active``, atomically refuse (TenantJobLimit) when its tenant
        already has that many unfinished jobs."""
        active = keys.tenant_active(record.tenant)
        key, text = keys.job(record.id), record.model_dump_json()

        def store(pipe) -> bool:
            pipe.watch(key, *([active] if max_active else []))
            stored = pipe.get(key)
            if stored is not None:  # an EXEC whose reply a lost connection ate is re-run: ours is already there
                return _text(stored) == text
            if max_active and pipe.scard(active) >= max_active:
                raise TenantJobLimit.of(record.tenant, max_active)
            pipe.multi()
            pipe.set(key, text, nx=True)
            score = record.created_at.timestamp() * 1000
            pipe.zadd(keys.jobs_index(), {record.id: score})
            pipe.zadd(keys.tenant_jobs(record.tenant), {record.id: score})
            _index(pipe, record)
            return bool(pipe.execute()[0])

        if not watched(self.redis, store):
            raise RuntimeError(f"job id collision: {record.id}")

    def get(self, job_id: str) -> JobRecord:
        raw = self.redis.get(keys.job(job_id))
        if raw is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return JobRecord.model_validate_json(raw)

    def exists(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job(job_id)))

    def update(self, job_id: str, change: Callable[[JobRecord], None],
               also: Callable[[Any, JobRecord], None] | None = None) -> JobRecord | None:
        """Apply ``change`` to the record atomically (optimistic locking); transitions are checked.

        ``change`` may raise ``NoChange`` to leave the record alone; then this returns None.
        ``also(pipe, record)`` may queue more writes into the same MULTI (e.g. a claim's lease)."""
        key = keys.job(job_id)

        def apply(pipe) -> JobRecord | None:
            pipe.watch(key)
            raw = pipe.get(key)
            if raw is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            record = JobRecord.model_validate_json(raw)
            before = record.state
            try:
                change(record)
            except NoChange:
                return None
            if record.state != before:
                check_transition(before, record.state)
            record.updated_at = utcnow()
            pipe.multi()
            pipe.set(key, record.model_dump_json())
            _index(pipe, record)
            if also is not None:
                also(pipe, record)
            pipe.execute()
            return record

        record = watched(self.redis, apply)
        if record is not None:
            self.publish(job_id, update_event(record))
        return record

    def transition(self, job_id: str, new: JobState, **fields: Any) -> JobRecord:
        def change(record: JobRecord) -> None:
            record.state = new
            for name, value in fields.items():
                setattr(record, name, value)

        record = self.update(job_id, change)
        assert record is not None
        return record

    def get_many(self, job_ids: list[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        raws = self.redis.mget([keys.job(i) for i in job_ids])
        return [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]

    def live_ids(self) -> list[str]:
        return sorted(_text(i) for i in self.redis.smembers(keys.live_jobs()))

    def finished_before(self, timestamp: float, limit: int = 500) -> list[str]:
        return [_text(i) for i in self.redis.zrangebyscore(keys.finished_jobs(), "-inf", timestamp, start=0, num=limit)]

    def queued_count(self) -> int:
        return int(self.redis.scard(keys.queued_jobs()))

    def keep_record_for(self, job_id: str, seconds: int) -> None:
        """Let the record (and its log) disappear after ``seconds``; its index entry is pruned later."""
        pipe = self.redis.pipeline()
        pipe.expire(keys.job(job_id), max(1, seconds))
        pipe.expire(keys.job_log(job_id), max(1, seconds))
        pipe.execute()

    def prune_index(self, before_ms: float, limit: int = 1000) -> int:
        """Drop index entries (older than ``before_ms``) whose record has expired."""
        ids = [_text(i) for i in self.redis.zrangebyscore(keys.jobs_index(), "-inf", before_ms, start=0, num=limit)]
        if not ids:
            return 0
        gone = [i for i, raw in zip(ids, self.redis.mget([keys.job(i) for i in ids])) if raw is None]
        if gone:
            pipe = self.redis.pipeline()
            pipe.zrem(keys.jobs_index(), *gone)
            pipe.zrem(keys.finished_jobs(), *gone)
            pipe.srem(keys.live_jobs(), *gone)
            pipe.srem(keys.queued_jobs(), *gone)
            pipe.execute()
        return len(gone)

    def list(self, *, state: JobState | None = None, limit: int = 20, cursor: int = 0) -> tuple[list[JobRecord], int | None]:
        """Newest first. ``cursor`` is an offset into the index; returns the next cursor or None."""
        records: list[JobRecord] = []
        index = keys.jobs_index()
        position = cursor
        batch = max(limit, 50)
        while len(records) < limit:
            ids = self.redis.zrevrange(index, position, position + batch - 1)
            if not ids:
                return records, None
            raws = self.redis.mget([keys.job(i.decode() if isinstance(i, bytes) else i) for i in ids])
            for offset, raw in enumerate(raws):
                if raw is None:
                    continue
                record = JobRecord.model_validate_json(raw)
                if state is None or record.state == state:
                    records.append(record)
                    if len(records) == limit:
                        return records, position + offset + 1
            position += len(ids)
        return records, position

    def delete(self, job_id: str, tenant: str | None = None) -> None:
        pipe = self.redis.pipeline()
        if tenant is not None:
            pipe.zrem(keys.tenant_jobs(tenant), job_id)
            pipe.srem(keys.tenant_active(tenant), job_id)
        pipe.delete(keys.job(job_id), keys.job_log(job_id))
        pipe.zrem(keys.jobs_index(), job_id)
        pipe.zrem(keys.finished_jobs(), job_id)
        pipe.srem(keys.live_jobs(), job_id)
        pipe.srem(keys.queued_jobs(), job_id)
        pipe.execute()

    def publish(self, job_id: str, event: dict[str, Any]) -> None:
        self.redis.publish(keys.job_events(job_id), json.dumps(event, default=str))

    def log(self, job_id: str, message: str, level: str = "info") -> dict[str, Any]:
        """Append a line to the job's capped log and publish it live."""
        line = {"ts": utcnow().isoformat(), "level": level, "message": message}
        key = keys.job_log(job_id)
        pipe = self.redis.pipeline()
        pipe.rpush(key, json.dumps(line))
        pipe.ltrim(key, -keys.LOG_MAX_LINES, -1)
        pipe.publish(keys.job_events(job_id), json.dumps({"event": "log", **line}))
        pipe.execute()
        return line

    def logs(self, job_id: str, tail: int | None = None) -> list[dict[str, Any]]:
        start = -tail if tail else 0
        return [json.loads(raw) for raw in self.redis.lrange(keys.job_log(job_id), start, -1)]


def tenant_record(raw: bytes | str | None, job_id: str, tenant: str) -> JobRecord:
    """The stored record ``raw`` of ``job_id`` if it is ``tenant``'s; JobNotFound otherwise (absent or another's)."""
    if raw is None:
        raise JobNotFound(f"no job with id {job_id!r}")
    record = JobRecord.model_validate_json(raw)
    if record.tenant != tenant:
        raise JobNotFound(f"no job with id {job_id!r}")
    return record


class TenantJobs:
    """One tenant's view of the repository: every read and write of the API goes through it.

    A job of another tenant is indistinguishable from a job that does not exist (JobNotFound, 404)."""

    def __init__(self, repo: JobRepository, tenant: str):
        self.repo = repo
        self.tenant = tenant
        self.redis = repo.redis

    def get(self, job_id: str) -> JobRecord:
        return tenant_record(self.redis.get(keys.job(job_id)), job_id, self.tenant)

    def exists(self, job_id: str) -> bool:
        try:
            self.get(job_id)
        except JobNotFound:
            return False
        return True

    def active_count(self) -> int:
        """The tenant's unfinished jobs (queued, running, cancelling)."""
        return int(self.redis.scard(keys.tenant_active(self.tenant)))

    def create(self, record: JobRecord, *, max_active: int = 0) -> None:
        if record.tenant != self.tenant:
            raise ValueError(f"record of tenant {record.tenant!r} created as {self.tenant!r}")
        self.repo.create(record, max_active=max_active)

    def delete(self, job_id: str) -> None:
        self.get(job_id)
        self.repo.delete(job_id, self.tenant)

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord | None:
        def scoped(record: JobRecord) -> None:
            if record.tenant != self.tenant:
                raise JobNotFound(f"no job with id {job_id!r}")
            change(record)

        return self.repo.update(job_id, scoped)

    def logs(self, job_id: str, tail: int | None = None) -> list[dict[str, Any]]:
        self.get(job_id)
        return self.repo.logs(job_id, tail)

    def keep_record_for(self, job_id: str, seconds: int) -> None:
        self.get(job_id)
        self.repo.keep_record_for(job_id, seconds)

    def list(self, *, state: JobState | None = None, limit: int = 20, cursor: int = 0) -> tuple[list[JobRecord], int | None]:
        """Newest first, from the tenant's own index; ids whose record has gone are pruned from it."""
        records: list[JobRecord] = []
        index = keys.tenant_jobs(self.tenant)
        position = cursor
        batch = max(limit, 50)
        while len(records) < limit:
            ids = [_text(i) for i in self.redis.zrevrange(index, position, position + batch - 1)]
            if not ids:
                return records, None
            gone: list[str] = []
            for offset, (job_id, raw) in enumerate(zip(ids, self.redis.mget([keys.job(i) for i in ids]))):
                if raw is None:
                    gone.append(job_id)
                    continue
                record = JobRecord.model_validate_json(raw)
                if record.tenant == self.tenant and (state is None or record.state == state):
                    records.append(record)
                    if len(records) == limit:
                        self._prune(gone)
                        return records, position + offset + 1 - len(gone)
            self._prune(gone)
            position += len(ids) - len(gone)
        return records, position

    def _prune(self, gone: list[str]) -> None:
        if gone:
            self.redis.zrem(keys.tenant_jobs(self.tenant), *gone)


def update_event(record: JobRecord) -> dict[str, Any]:
    """The pub/sub payload for a record change (also the SSE snapshot a subscriber starts with)."""
    event: dict[str, Any] = {
        "event": "update",
        "id": record.id,
        "state": record.state.value,
        "terminal": record.terminal,
        "progress": record.progress.model_dump(),
        "updated_at": record.updated_at.isoformat(),
    }
    if record.terminal:
        event.update(error=record.error, summary=record.summary,
                     finished_at=record.finished_at.isoformat() if record.finished_at else None)
    return event


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
