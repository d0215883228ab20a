"""The event stream's generator against a fake pub/sub: ordering, keep-alives, ending."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from types import SimpleNamespace

from service.api import events
from modelpress_core.job import JobRecord, JobState, Progress
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import update_event

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def record(state=JobState.running, fraction=0.1) -> JobRecord:
    return JobRecord(id="j_x", spec={"steps": []}, state=state, created_at=NOW, updated_at=NOW,
                     progress=Progress(phase="compressing", fraction=fraction, message="m"))


class FakePubSub:
    def __init__(self, messages):
        self.messages = list(messages)
        self.closed = False

    async def get_message(self, ignore_subscribe_messages, timeout):
        if self.messages:
            item = self.messages.pop(0)
            return None if item is None else {"type": "message", "data": json.dumps(item)}
        await asyncio.sleep(0)
        return None

    async def unsubscribe(self):
        pass

    async def aclose(self):
        self.closed = True


class FakeRedis:
    def __init__(self, stored: JobRecord | None):
        self.stored = stored

    async def get(self, key):
        assert key == keys.job("j_x")
        return self.stored.model_dump_json() if self.stored else None


def fake_request(stored, heartbeat=0.0):
    async def is_disconnected():
        return False

    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(sse_heartbeat_s=heartbeat), aredis=FakeRedis(stored)))
    return SimpleNamespace(app=app, is_disconnected=is_disconnected)


def run(gen) -> list[str]:
    async def collect():
        return [chunk async for chunk in gen]

    return asyncio.run(collect())


def parse(chunks):
    out = []
    for chunk in chunks:
        if chunk.startswith(":"):
            out.append(("comment", None))
            continue
        lines = dict(line.split(": ", 1) for line in chunk.strip().splitlines() if not line.startswith("retry"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_snapshot_progress_log_then_end(monkeypatch):
    monkeypatch.setattr(events, "POLL_S", 0)
    done = record(JobState.succeeded, 1.0)
    pubsub = FakePubSub([update_event(record(fraction=0.5)), {"event": "log", "ts": "t", "level": "info", "message": "hi"},
                         update_event(done)])
    got = parse(run(events._stream(fake_request(record(), heartbeat=60), record(), pubsub)))
    assert [k for k, _ in got] == ["state", "progress", "log", "state", "end"]
    assert got[1][1]["progress"]["fraction"] == 0.5 and got[2][1]["message"] == "hi"
    assert got[-1][1]["state"] == "succeeded" and all("event" not in d for _, d in got)
    assert pubsub.closed


def test_idle_stream_sends_keep_alives_and_notices_a_lost_terminal_event(monkeypatch):
    monkeypatch.setattr(events, "POLL_S", 0)
    request = fake_request(record(), heartbeat=0.0)
    pubsub = FakePubSub([None, None])

    async def collect():
        chunks = []
        async for chunk in events._stream(request, record(), pubsub):
            chunks.append(chunk)
            if len(chunks) == 3:  # snapshot + two keep-alives; then the job ends without an event
                request.app.state.aredis.stored = record(JobState.failed, 0.3)
        return chunks

    got = parse(asyncio.run(collect()))
    assert [k for k, _ in got] == ["state", "comment", "comment", "state", "end"]
    assert got[-1][1]["state"] == "failed"


def test_terminal_job_gets_snapshot_and_end_only():
    done = record(JobState.succeeded, 1.0)
    got = parse(run(events._stream(fake_request(done), done, FakePubSub([]))))
    assert [k for k, _ in got] == ["state", "end"]
