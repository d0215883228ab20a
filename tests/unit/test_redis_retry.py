"""The retrying Redis client (modelpress_core/storage/connection.py) against a real redis-server that is
killed and started again from the same data dir, as ``modelpress up`` restarts it."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import redis

from modelpress.redis_server import free_port, redis_command
from modelpress.stack import Child
from modelpress_core.job import JobRecord, JobState, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.connection import DeadlineRetry, async_redis_client, redis_client
from modelpress_core.storage.jobs import JobRepository


class RestartableRedis:
    """A private redis-server (append-only file, like ``modelpress up``'s) that a test may kill and restart."""

    def __init__(self, data_dir: Path):
        self.dir, self.port = data_dir, free_port()
        self.dir.mkdir(exist_ok=True)
        self.url = f"redis://:pw@127.0.0.1:{self.port}/0"
        self.child = Child("redis", [], data_dir / "redis.out", {})
        self.stopped = threading.Event()

    def start(self, *extra: str, wait: bool = True) -> None:
        self.child.command = redis_command(self.dir, self.port, "pw") + list(extra)
        self.child.start()
        if wait:
            probe = redis.Redis.from_url(self.url, socket_timeout=1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    probe.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
            raise AssertionError("redis-server did not come up")

    def kill(self) -> None:
        os.kill(self.child.process.pid, signal.SIGKILL)
        self.child.process.wait(10)

    def stop(self) -> None:
        self.child.stop(timeout=5)
        self.stopped.set()


@pytest.fixture
def server(tmp_path):
    s = RestartableRedis(tmp_path / "redis")
    s.start()
    yield s
    s.stop()


class Failures:
    """Records what the client's retry saw; ``first`` is set at its first failure."""

    def __init__(self):
        self.errors: list[Exception] = []
        self.first = threading.Event()

    def __call__(self, error: Exception, failures: int) -> None:
        self.errors.append(error)
        self.first.set()


def restart_after_first_failure(server: RestartableRedis, failures: Failures, *extra: str) -> threading.Thread:
    def run() -> None:
        if failures.first.wait(30):
            server.start(*extra, wait=False)
            server.stopped.wait(120)  # the child dies with the thread that started it (PR_SET_PDEATHSIG)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_command_sent_while_redis_is_down_completes_once_it_is_back(server):
    failures = Failures()
    client = redis_client(server.url, retry_s=30, socket_timeout=5, on_failure=failures)
    client.set("k", "before")
    server.kill()
    restart_after_first_failure(server, failures)
    assert client.get("k") == b"before"  # kept by the append-only file
    client.set("k", "after")
    assert failures.errors and all(isinstance(e, redis.ConnectionError) for e in failures.errors)
    assert redis.Redis.from_url(server.url).get("k") == b"after"


def test_loading_while_the_append_only_file_replays_is_waited_out(server):
    client = redis_client(server.url, retry_s=60, socket_timeout=5, on_failure=(failures := Failures()))
    pipe = client.pipeline(transaction=False)
    for i in range(8000):
        pipe.set(f"key:{i}", i)  # one command each in the append-only file
    pipe.execute()
    server.kill()
    # 0.5 ms per command replayed: ~4 s of loading, serving clients (LOADING) every 1024 commands
    server.start("--key-load-delay", "500", wait=False)
    assert client.get("key:7999") == b"7999"
    assert any(isinstance(e, redis.BusyLoadingError) for e in failures.errors), failures.errors


def test_the_retry_gives_up_after_its_budget(server):
    failures = Failures()
    client = redis_client(server.url, retry_s=1.0, socket_timeout=5, on_failure=failures)
    client.ping()
    server.kill()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    assert elapsed < 30  # bounded: not retried forever
    assert len(failures.errors) >= 2


def test_a_transaction_cut_by_a_restart_is_run_again_on_the_restarted_server(server):
    failures = Failures()
    jobs = JobRepository(redis_client(server.url, retry_s=30, socket_timeout=5, on_failure=failures))
    now = utcnow()
    jobs.create(JobRecord(id="j_blip1", spec={}, created_at=now, updated_at=now))
    calls = []

    def claim(record: JobRecord) -> None:
        calls.append(record.state)
        if len(calls) == 1:  # between WATCH and EXEC: redis dies
            server.kill()
            restart_after_first_failure(server, failures)
        record.state = JobState.running
        record.attempts += 1

    updated = jobs.update("j_blip1", claim)
    assert calls == [JobState.queued, JobState.queued]  # read again after the restart: the first EXEC never ran
    assert updated.state == JobState.running and updated.attempts == 1
    stored = jobs.get("j_blip1")
    assert stored.state == JobState.running and stored.attempts == 1
    assert jobs.redis.sismember(keys.tenant_active(stored.tenant), "j_blip1")


def test_only_connection_errors_are_retried():
    calls = []

    def do():
        calls.append(1)
        if len(calls) < 3:
            raise redis.BusyLoadingError("LOADING Redis is loading the dataset in memory")
        return "done"

    assert DeadlineRetry(5).call_with_retry(do, lambda error: None) == "done" and len(calls) == 3

    def wrong_type():
        calls.append(1)
        raise redis.ResponseError("WRONGTYPE")

    calls.clear()
    with pytest.raises(redis.ResponseError):
        DeadlineRetry(5).call_with_retry(wrong_type, lambda error: None)
    assert len(calls) == 1


def test_the_asyncio_client_rides_out_a_restart_too(server):
    """The API's asyncio client (status reads, key checks, SSE) retries like the sync one."""
    failures = Failures()

    async def scenario() -> bytes | None:
        client = async_redis_client(server.url, retry_s=30, socket_timeout=5, on_failure=failures)
        try:
            await client.set("k", "before")
            server.kill()
            restart_after_first_failure(server, failures)
            return await client.get("k")
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == b"before"
    assert failures.errors and all(isinstance(e, redis.ConnectionError) for e in failures.errors)


def test_the_asyncio_client_gives_up_after_its_budget(server):
    failures = Failures()

    async def scenario() -> None:
        client = async_redis_client(server.url, retry_s=1.0, socket_timeout=5, on_failure=failures)
        try:
            await client.ping()
            server.kill()
            await client.get("k")
        finally:
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        asyncio.run(scenario())
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 30
    assert len(failures.errors) >= 2
