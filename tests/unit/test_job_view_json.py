"""The status read's one-pass JSON equals the JobView FastAPI would have built, field for field."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelpress_core.job import ArtifactInfo, JobRecord, JobState, Progress, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.apikeys import ApiKey, hash_secret, new_key, verify_async
from modelpress_core.storage.jobs import JobNotFound, tenant_record
from service.api.views import JobView, job_view_json

SPEC = {"model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [4, 2]}},
        "steps": [{"method": "quantize", "kind": "dynamic_int8"}]}


def records() -> list[JobRecord]:
    now = utcnow()
    queued = JobRecord(id="j_q", tenant="t", spec=SPEC, created_at=now, updated_at=now)
    running = JobRecord(id="j_r", tenant="t", state=JobState.running, spec=SPEC, created_at=now, started_at=now, updated_at=now,
                        worker="w@h", worker_instance="abc", attempts=1,
                        progress=Progress(phase="quantize", step=1, fraction=0.5, message="über 50 % \"done\""))
    failed = JobRecord(id="j_f", tenant="t", state=JobState.failed, spec=SPEC, created_at=now, finished_at=now, updated_at=now,
                       error={"type": "https://modelpress.dev/problems/x", "title": "X", "status": 422, "detail": "d" * 5000})
    done = JobRecord(id="j_s", tenant="t", state=JobState.succeeded, spec=SPEC, created_at=now, finished_at=now, updated_at=now,
                     inputs=[ArtifactInfo(name="model.safetensors", format="safetensors", bytes=10, sha256="0" * 64)],
                     artifacts=[ArtifactInfo(name=n, format="safetensors", bytes=3, sha256="1" * 64) for n in ("a.safetensors", "b.onnx")],
                     summary={"speedup": 1.5, "nested": {"x": [1, 2]}})
    return [queued, running, failed, done]


@pytest.mark.parametrize("record", records(), ids=lambda r: r.state.value)
@pytest.mark.parametrize("waiting", [None, "no live CPU worker (queue cpu)"])
def test_the_one_pass_json_is_the_job_view(record, waiting):
    view = JobView.of(record, "http://h:1/base")
    view.waiting = waiting
    assert json.loads(job_view_json(record, "http://h:1/base", waiting)) == view.model_dump(mode="json")


def test_a_record_of_another_tenant_reads_as_absent():
    raw = records()[0].model_dump_json()
    assert tenant_record(raw, "j_q", "t").id == "j_q"
    for stored, tenant in ((raw, "other"), (None, "t")):
        with pytest.raises(JobNotFound):
            tenant_record(stored, "j_q", tenant)


class FakeAsyncRedis:
    def __init__(self, data: dict[str, str]):
        self.data = data

    async def get(self, key: str):
        return self.data.get(key)


def test_the_async_key_check_accepts_only_a_live_key_with_its_secret():
    key_id, secret, token = new_key()
    record = ApiKey(key_id=key_id, tenant="t", name="", created_at="now", secret_sha256=hash_secret(secret))
    stored = {keys.api_key(key_id): json.dumps(record.__dict__)}
    check = lambda data, tok: asyncio.run(verify_async(FakeAsyncRedis(data), tok))  # noqa: E731
    assert check(stored, token).tenant == "t"
    assert check(stored, token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # wrong secret
    assert check({}, token) is None  # unknown id
    assert check(stored, "not-a-key") is None
    revoked = {keys.api_key(key_id): json.dumps({**record.__dict__, "revoked_at": "then"})}
    assert check(revoked, token) is None
