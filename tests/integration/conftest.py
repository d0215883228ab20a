"""The integration tier: a private redis-server, a real Celery worker and a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest

from modelpress.redis_server import free_port
from modelpress.stack import Stack, tail

MAX_UPLOAD_BYTES = 3 * 1024 * 1024  # small, so the oversized-upload test is cheap


FAST_ENV = {
    "MODELPRESS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
    "MODELPRESS_LATENCY_RUNS": "10",
    "MODELPRESS_LATENCY_WARMUP": "3",
    "MODELPRESS_WORKER_HEARTBEAT_S": "1",
    "MODELPRESS_INSPECT_TIMEOUT_S": "60",  # CI machines are slow; a skipped check would accept the upload
    "MODELPRESS_SUBMIT_RATE_PER_MIN": "0",  # the shared stack's tests submit in bursts; test_auth checks the limits
    "MODELPRESS_TENANT_MAX_ACTIVE_JOBS": "0",
}


def start_stack(data_dir, api_log_level: str = "warning", **env: str) -> Stack:
    """A private stack (redis-server, uvicorn, one Celery worker); ``env`` adds MODELPRESS_ settings."""
    s = Stack(data_dir=data_dir, api_port=free_port(), extra_env={**FAST_ENV, **env}, api_log_level=api_log_level)
    try:
        s.start(ready_timeout=180)
    except Exception:
        for child in s.children:
            print(f"--- {child.name} ---\n{tail(child.log_path, 60)}")
        s.stop()
        raise
    return s


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        yield client


@pytest.fixture
def artifact_root(stack):
    return stack.data_dir / "artifacts"


@pytest.fixture
def nothing_left_behind(api, artifact_root):
    """A rejected request leaves no job record, no job directory and no staged upload behind."""
    from tests.integration.helpers import job_count, staging_files, stored_job_dirs

    before_jobs, before_dirs = job_count(api), stored_job_dirs(artifact_root)
    yield
    assert job_count(api) == before_jobs
    assert stored_job_dirs(artifact_root) == before_dirs
    assert staging_files(artifact_root) == []


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 endpoint (a moto.server process on a free loopback port), shared by the session."""
    from tests.integration.s3server import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A bare private redis-server (no API, no worker), flushed per test."""
    import redis as redis_lib

    from modelpress.redis_server import redis_command
    from modelpress.stack import Child

    (tmp_path / "redis").mkdir()
    port = free_port()
    child = Child("redis", redis_command(tmp_path / "redis", port, "pw"), tmp_path / "redis.out", {})
    child.start()
    client = redis_lib.Redis.from_url(f"redis://:pw@127.0.0.1:{port}/0", socket_timeout=5)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis_lib.RedisError:
            import time

            time.sleep(0.05)
    yield client
    client.close()
    child.stop(timeout=5)
