"""Scale-out: a stack whose artifact store is S3 (a real moto.server) and whose only worker consumes
the cpu queue. Inputs and artifacts go through the bucket only; device routing and the worker list."""

from __future__ import annotations

import base64
import hashlib
import time

import httpx
import pytest

from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, stored_job_dirs, submit, wait, wait_for

PRUNE = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.5}
# The test reads the waiting job right after submitting it: it must still be queued then, so the wait is
# 15 s, a margin for one GET on a loaded machine (it was 4 s, which a busy host can overrun).
GPU_WAIT_S = 15


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory, s3_server):
    bucket = s3_server.new_bucket()
    s = start_stack(tmp_path_factory.mktemp("s3stack"), **s3_server.env(bucket),
                    MODELPRESS_GPU_WAIT_S=str(GPU_WAIT_S), MODELPRESS_SWEEP_INTERVAL_S="1")
    s.bucket = bucket
    yield s
    s.stop()


@pytest.fixture
def api(s3_stack):
    with httpx.Client(base_url=s3_stack.base_url, timeout=60) as client:
        yield client


def bucket_keys(s3_server, bucket: str, job_id: str) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=f"modelpress/{job_id}/")
    return sorted(o["Key"].split("/", 2)[2] for o in listing.get("Contents", []))


def test_a_job_runs_end_to_end_through_the_s3_store(api, s3_stack, s3_server, digits_mlp_path):
    assert api.get("/readyz").json()["store"] == "s3"
    job = wait(api, submit(api, digits_mlp_path, spec(PRUNE)).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert bucket_keys(s3_server, s3_stack.bucket, job["id"]) == [
        "inputs/model.safetensors", "outputs/metrics.json", "outputs/model.safetensors"]
    assert stored_job_dirs(s3_stack.data_dir / "artifacts") == set()  # nothing on the API's local disk

    response = api.get(f"/jobs/{job['id']}/artifacts/model.safetensors")
    assert response.status_code == 200
    info = job["artifacts"][0]
    assert int(response.headers["content-length"]) == len(response.content) == info["bytes"]
    digest = base64.b64encode(hashlib.sha256(response.content).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:" and hashlib.sha256(response.content).hexdigest() == info["sha256"]
    assert api.get(f"/jobs/{job['id']}/metrics").json()["schema"] == "modelpress.metrics/v1"

    purged = api.delete(f"/jobs/{job['id']}", params={"purge": "true"})
    assert purged.json()["state"] == "expired"
    assert bucket_keys(s3_server, s3_stack.bucket, job["id"]) == []
    assert api.get(f"/jobs/{job['id']}/artifacts/model.safetensors").status_code == 410


def test_auto_resolves_to_cpu_without_a_gpu_worker(api, digits_mlp_path):
    job = submit(api, digits_mlp_path, spec(PRUNE, device="auto")).json()
    assert (job["device"], job["queue"]) == ("cpu", "cpu")
    job = wait(api, job["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["spec"]["device"] == "auto" and job["device"] == "cpu"


def test_a_cuda_job_shows_why_it_waits_then_fails(api, digits_mlp_path):
    started = time.monotonic()
    job = submit(api, digits_mlp_path, spec(PRUNE, device="cuda")).json()
    assert (job["device"], job["queue"]) == ("cuda", "gpu")
    job = api.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "queued" and job["waiting"] == "no live GPU worker (queue gpu)"
    job = wait_for(api, job["id"], lambda j: j["state"] != "queued", timeout=GPU_WAIT_S + 60)
    assert job["state"] == "failed"
    assert job["error"]["type"] == "https://modelpress.dev/problems/no-gpu-worker"
    assert "no live GPU worker (queue gpu)" in job["error"]["detail"] and "MODELPRESS_GPU_WAIT_S" in job["error"]["detail"]
    assert time.monotonic() - started >= GPU_WAIT_S
    assert job["waiting"] is None


def test_workers_lists_the_live_worker(api):
    listing = api.get("/workers").json()
    assert listing["queues"] == {"cpu": 1, "gpu": 0}
    (worker,) = listing["workers"]
    assert worker["queues"] == ["cpu"] and worker["cuda"] is None
    assert worker["torch"].startswith("2.") and worker["host"] and worker["name"].startswith("cpu-0-")
    assert 0 <= worker["heartbeat_age_s"] < 5
    assert api.get("/readyz").json()["workers"][0]["name"] == worker["name"]
