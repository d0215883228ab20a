"""The integration tier: a private redis-server, a real Celery worker and a real uvicorn server."""

from __future__ import annotations

import httpx
import pytest

from modelpress.redis_server import free_port
from modelpress.stack import Stack, tail

MAX_UPLOAD_BYTES = 3 * 1024 * 1024  # small, so the oversized-upload test is cheap


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("stack")
    s = Stack(
        data_dir=data_dir,
        api_port=free_port(),
        extra_env={
            "MODELPRESS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "MODELPRESS_LATENCY_RUNS": "10",
            "MODELPRESS_LATENCY_WARMUP": "3",
            "MODELPRESS_WORKER_HEARTBEAT_S": "1",
            "MODELPRESS_INSPECT_TIMEOUT_S": "60",  # CI machines are slow; a skipped check would accept the upload
        },
    )
    try:
        s.start(ready_timeout=180)
    except Exception:
        for child in s.children:
            print(f"--- {child.name} ---\n{tail(child.log_path, 60)}")
        s.stop()
        raise
    yield s
    s.stop()


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        yield client


@pytest.fixture
def artifact_root(stack):
    return stack.data_dir / "artifacts"
