"""Cancel, purge, idempotency and the queue limit, over HTTP against real processes."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.conftest import start_stack
from tests.integration.helpers import assert_cancel_accepted, in_test_delay, output_files, spec, submit, wait, wait_for

INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/" + slug), problem
    return problem


# --- on the shared (fast) stack --------------------------------------------------------------


def test_idempotency_key_returns_the_same_job(api, digits_mlp_path):
    headers = {"Idempotency-Key": "order-42"}
    first = submit(api, digits_mlp_path, spec(INT8), headers=headers)
    assert first.status_code == 202, first.text
    again = submit(api, digits_mlp_path, spec(INT8), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers["location"].endswith(first.json()["id"])
    other_body = submit(api, digits_mlp_path, spec(INT8, seed=1), headers=headers)
    problem = assert_problem(other_body, 409, "idempotency-key-reused")
    assert problem["job_id"] == first.json()["id"]
    other_model = submit(api, digits_mlp_path.read_bytes()[:-4] + b"    ", spec(INT8), headers=headers)
    assert_problem(other_model, 409, "idempotency-key-reused")
    assert submit(api, digits_mlp_path, spec(INT8), headers={"Idempotency-Key": "order-43"}).json()["id"] != first.json()["id"]
    assert wait(api, first.json()["id"])["state"] == "succeeded"


def test_finished_job_cannot_be_cancelled_but_can_be_purged(api, digits_mlp_path, artifact_root):
    job = wait(api, submit(api, digits_mlp_path, spec(INT8)).json()["id"])
    assert job["state"] == "succeeded"
    assert_problem(api.post(f"/jobs/{job['id']}/cancel"), 409, "job-finished")
    assert_problem(api.delete(f"/jobs/{job['id']}"), 409, "job-finished")
    purged = api.delete(f"/jobs/{job['id']}", params={"purge": "true"})
    assert purged.status_code == 200 and purged.json()["state"] == "expired"
    assert purged.json()["artifacts"] == [] and purged.json()["progress"]["message"] == "purged on request"
    assert not (artifact_root / job["id"]).exists()
    assert_problem(api.get(f"/jobs/{job['id']}/artifacts/model.torchscript.pt"), 410, "job-expired")
    assert_problem(api.get(f"/jobs/{job['id']}/metrics"), 410, "job-expired")
    assert api.delete(f"/jobs/{job['id']}", params={"purge": "true"}).status_code == 200  # idempotent
    assert_problem(api.post("/jobs/j_nope/cancel"), 404, "job-not-found")


def test_retention_expires_a_finished_job(tmp_path, digits_mlp_path):
    s = start_stack(tmp_path / "retention", MODELPRESS_ARTIFACT_TTL_S="2", MODELPRESS_SWEEP_INTERVAL_S="0.5")
    try:
        with httpx.Client(base_url=s.base_url, timeout=60) as api:
            job_id = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
            job = wait_for(api, job_id, lambda j: j["state"] in ("expired", "failed"), timeout=60)
            assert job["state"] == "expired" and job["artifacts"] == [] and job["finished_at"]
            assert "removed" in job["progress"]["message"]
            job_dir = s.data_dir / "artifacts" / job_id
            deadline = time.monotonic() + 5  # the record says expired first, then the files go
            while job_dir.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not job_dir.exists()
            assert_problem(api.get(f"/jobs/{job_id}/artifacts/model.torchscript.pt"), 410, "job-expired")
    finally:
        s.stop()


# --- on a stack whose jobs are slow (test delay), so they can be caught running --------------


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("slow"), MODELPRESS_TEST_DELAY_S="10", MODELPRESS_MAX_QUEUED_JOBS="2",
                    MODELPRESS_SWEEP_INTERVAL_S="1")
    yield s
    s.stop()


@pytest.fixture
def slow_api(slow_stack):
    with httpx.Client(base_url=slow_stack.base_url, timeout=60) as client:
        yield client


def test_cancel_running_and_queued_jobs(slow_api, slow_stack, digits_mlp_path):
    running = submit(slow_api, digits_mlp_path, spec(INT8)).json()["id"]
    queued = submit(slow_api, digits_mlp_path, spec(INT8)).json()["id"]
    wait_for(slow_api, running, in_test_delay)

    response = slow_api.post(f"/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    response = slow_api.delete(f"/jobs/{running}")
    assert response.status_code == 202 and response.json()["state"] == "cancelling"
    assert response.json()["cancel_requested_at"]

    job = wait(slow_api, running, timeout=30)
    assert job["state"] == "cancelled" and job["artifacts"] == []
    assert output_files(slow_stack.data_dir / "artifacts", running) == []
    never_ran = wait(slow_api, queued)
    assert never_ran["state"] == "cancelled" and never_ran["attempts"] == 0 and never_ran["started_at"] is None


def test_sdk_cancel_and_idempotency_key(slow_stack, digits_mlp_path):
    from modelpress.client import ApiError, ModelpressClient

    with ModelpressClient(slow_stack.base_url) as client:
        job = client.submit(digits_mlp_path, spec(INT8), idempotency_key="sdk-1")
        assert client.submit(digits_mlp_path, spec(INT8), idempotency_key="sdk-1")["id"] == job["id"]
        assert client.cancel(job["id"])["state"] in ("cancelled", "cancelling")
        assert client.wait(job["id"], timeout=30, interval=0.1)["state"] == "cancelled"
        with pytest.raises(ApiError) as info:
            client.cancel(job["id"])
        assert info.value.status == 409
        assert client.purge(job["id"])["state"] == "expired"


def test_too_many_queued_jobs_is_429(slow_api, digits_mlp_path):
    first = submit(slow_api, digits_mlp_path, spec(INT8)).json()["id"]
    wait_for(slow_api, first, in_test_delay)
    ids = [first] + [submit(slow_api, digits_mlp_path, spec(INT8)).json()["id"] for _ in range(2)]
    response = submit(slow_api, digits_mlp_path, spec(INT8))
    problem = assert_problem(response, 429, "too-many-jobs")
    assert response.headers["retry-after"] and problem["limit"] == 2
    for job_id in ids:
        assert_cancel_accepted(slow_api.post(f"/jobs/{job_id}/cancel"))
    assert all(wait(slow_api, job_id, timeout=30)["state"] == "cancelled" for job_id in ids)

