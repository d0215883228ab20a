"""Live progress: Server-Sent Events from the job's pub/sub channel, and the job's log.

The stream subscribes first, then reads the record, so nothing published in between is lost and a
late subscriber starts with the current state. It ends after the event that makes the job terminal.
Async Redis: an idle or slow client holds a coroutine, never a thread.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, AsyncIterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from service.api.deps import JobsDep, TenantDep
from service.api.views import LogPage, Problem
from modelpress_core.job import JobRecord
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import JobNotFound, update_event

router = APIRouter(tags=["events"])

POLL_S = 1.0  # how often the stream wakes up to check the client and the heartbeat clock

EVENTS_DOC = """Server-Sent Events (`text/event-stream`). Event types:

- `state`: the first event (the current record), and every state change;
- `progress`: `{state, progress: {phase, step, fraction, message}}` while the job runs;
- `log`: `{ts, level, message}`, one per job log line;
- `end`: the job is terminal (`succeeded`, `failed`, `cancelled`, `expired`), with `error` and `summary`;
  the server closes the stream after it.

Idle streams carry `: keep-alive` comments. Each `data:` is one JSON object."""


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _stream(request: Request, record: JobRecord, pubsub) -> AsyncIterator[str]:
    heartbeat = request.app.state.settings.sse_heartbeat_s
    seq = 0
    try:
        first = update_event(record)
        first.pop("event")
        yield "retry: 2000\n" + sse("state", first, seq)
        if record.terminal:
            yield sse("end", first, seq + 1)
            return
        state = record.state.value
        last_write = time.monotonic()
        while True:
            if await request.is_disconnected():
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
            if message is None:
                if time.monotonic() - last_write >= heartbeat:
                    last_write = time.monotonic()
                    current = await _reread(request, record.id)  # pub/sub is fire-and-forget: never hang on a lost event
                    if current is None or current.terminal:
                        final = update_event(current) if current else {"id": record.id, "state": "deleted", "terminal": True}
                        final.pop("event", None)
                        yield sse("state", final, seq + 1)
                        yield sse("end", final, seq + 2)
                        return
                    yield ": keep-alive\n\n"
                continue
            try:
                event = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            seq += 1
            last_write = time.monotonic()
            kind = event.pop("event", "update")
            if kind == "log":
                yield sse("log", event, seq)
                continue
            if event.get("terminal"):
                yield sse("state", event, seq)
                yield sse("end", event, seq + 1)
                return
            if event.get("state") != state:
                state = event.get("state")
                yield sse("state", event, seq)
            else:
                yield sse("progress", event, seq)
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def _reread(request: Request, job_id: str) -> JobRecord | None:
    raw = await request.app.state.aredis.get(keys.job(job_id))
    return JobRecord.model_validate_json(raw) if raw is not None else None


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": EVENTS_DOC}, 401: {"model": Problem}, 404: {"model": Problem}},
    summary="Live job events (Server-Sent Events) until the job ends",
)
async def job_events(job_id: str, request: Request, tenant: TenantDep):
    aredis = request.app.state.aredis
    pubsub = aredis.pubsub()
    await pubsub.subscribe(keys.job_events(job_id))
    raw = await aredis.get(keys.job(job_id))
    record = JobRecord.model_validate_json(raw) if raw is not None else None
    if record is None or record.tenant != tenant:  # another tenant's job is a job that does not exist
        await pubsub.aclose()
        raise JobNotFound(f"no job with id {job_id!r}")
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(request, record, pubsub), media_type="text/event-stream", headers=headers)


@router.get("/jobs/{job_id}/logs", response_model=LogPage, responses={401: {"model": Problem}, 404: {"model": Problem}},
            summary="The job's log lines")
def job_logs(job_id: str, jobs: JobsDep, tail: Annotated[int | None, Query(ge=1, le=keys.LOG_MAX_LINES)] = None):
    return LogPage(job_id=job_id, lines=jobs.logs(job_id, tail))
