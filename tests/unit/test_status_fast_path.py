"""StatusReadFastPath on a real app with fake Redis clients: a served read, the fall-through, Redis down."""

from __future__ import annotations

import asyncio

import httpx
import redis

from modelpress_core.config import Settings
from modelpress_core.job import JobRecord, JobState, utcnow
from modelpress_core.storage import keys
from service.main import create_app

SPEC = {"model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [4, 2]}},
        "steps": [{"method": "quantize", "kind": "dynamic_int8"}]}


class FakeAsyncRedis:
    def __init__(self, data: dict[str, str] | None = None, down: bool = False):
        self.data, self.down, self.reads = data or {}, down, 0

    async def get(self, key: str):
        self.reads += 1
        if self.down:
            raise redis.ConnectionError("Connection refused")
        return self.data.get(key)


def app_with(tmp_path, aredis: FakeAsyncRedis):
    app = create_app(Settings(data_dir=tmp_path, auth="off", api_host="127.0.0.1"))
    app.state.aredis = aredis  # no lifespan: the fakes stand in for both clients
    app.state.redis = None
    return app


def get(app, path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return await client.get(path)
    return asyncio.run(run())


def record(state: JobState, tenant: str = "local") -> JobRecord:
    now = utcnow()
    return JobRecord(id="j_1", tenant=tenant, state=state, spec=SPEC, created_at=now, updated_at=now, finished_at=now)


def test_a_finished_job_is_served_with_one_redis_read(tmp_path):
    aredis = FakeAsyncRedis({keys.job("j_1"): record(JobState.succeeded).model_dump_json()})
    r = get(app_with(tmp_path, aredis), "/jobs/j_1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["state"] == "succeeded" and r.json()["links"]["self"] == "http://127.0.0.1:8000/jobs/j_1"
    assert "tenant" not in r.json() and aredis.reads == 1


def test_another_tenants_job_falls_through_to_the_routes_404(tmp_path):
    aredis = FakeAsyncRedis({keys.job("j_1"): record(JobState.succeeded, tenant="bob").model_dump_json()})
    r = get(app_with(tmp_path, aredis), "/jobs/j_1")
    assert (r.status_code, r.headers["content-type"]) == (404, "application/problem+json")
    assert aredis.reads == 2  # the fast path's, then the route's


def test_redis_down_is_the_503_problem_after_one_retry_window(tmp_path):
    aredis = FakeAsyncRedis(down=True)
    r = get(app_with(tmp_path, aredis), "/jobs/j_1")
    assert (r.status_code, r.headers["content-type"]) == (503, "application/problem+json")
    assert r.json()["type"] == "https://modelpress.dev/problems/unavailable"
    assert aredis.reads == 1  # not a second wait in the route
