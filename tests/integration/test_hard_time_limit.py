"""The hard time limit, for real: Celery kills the pool process of a job that ignores its soft time
limit, and the worker's main process (``JobRequest.on_timeout``) fails the job with the reason."""

from __future__ import annotations

import time

import httpx
import pytest

from modelpress_core.job import JobRecord, JobState, new_job_id, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import JobRepository
from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, submit, wait
from worker.tasks import fail_after_hard_time_limit

# The job reaches its test delay within a few seconds on a quiet machine (load, dynamic int8,
# TorchScript export of the digits MLP); the soft limit gives it 10 s, a margin for a loaded host.
# The delay (600 s, deaf to the soft limit) outlasts the hard limit by far, so only the kill can end it.
SOFT_LIMIT_S, HARD_LIMIT_S = 10, 20


@pytest.fixture(scope="module")
def limit_stack(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("limit"), MODELPRESS_TEST_DELAY_S="600", MODELPRESS_TEST_DELAY_CANCELLABLE="false",
                    MODELPRESS_JOB_SOFT_TIME_LIMIT_S=str(SOFT_LIMIT_S), MODELPRESS_JOB_TIME_LIMIT_S=str(HARD_LIMIT_S))
    yield s
    s.stop()


def pool_children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def test_a_job_past_the_hard_limit_is_killed_and_fails_with_the_reason(limit_stack, digits_mlp_path):
    worker = next(c for c in limit_stack.children if c.name == "worker-0")
    pool_before = pool_children(worker.process.pid)
    assert len(pool_before) == 1  # concurrency 1: the one pool process that will run the job
    with httpx.Client(base_url=limit_stack.base_url, timeout=60) as api:
        job_id = submit(api, digits_mlp_path, spec({"method": "quantize", "kind": "dynamic_int8"})).json()["id"]
        job = wait(api, job_id, timeout=HARD_LIMIT_S + 120)  # only the kill ends the job; the wait just bounds a hang
        assert job["state"] == "failed", job
        assert job["error"]["type"] == "https://modelpress.dev/problems/time-limit"
        assert f"hard time limit ({HARD_LIMIT_S} s" in job["error"]["detail"]
        assert job["attempts"] == 1
        lines = [line["message"] for line in api.get(f"/jobs/{job_id}/logs").json()["lines"]]
    assert any("test delay" in m for m in lines), lines  # it was sleeping in the delay, past the soft limit
    assert any("killed at the hard time limit" in m for m in lines), lines
    # the pool process that ran it is killed (Celery may record the timeout a moment before the kill lands)
    deadline = time.monotonic() + 60
    while pool_children(worker.process.pid) & pool_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pool_children(worker.process.pid) & pool_before and worker.alive()


def running_job(jobs: JobRepository, state: JobState = JobState.running) -> str:
    now = utcnow()
    record = JobRecord(id=new_job_id(), tenant="t", spec={"steps": []}, created_at=now, updated_at=now, state=JobState.queued)
    jobs.create(record)
    jobs.transition(record.id, JobState.running, started_at=now)
    if state == JobState.cancelling:
        jobs.transition(record.id, JobState.cancelling, cancel_requested_at=now)
    return record.id


def test_the_handler_leaves_a_finished_or_missing_job_alone(private_redis):
    jobs = JobRepository(private_redis)
    job_id = running_job(jobs)
    jobs.transition(job_id, JobState.succeeded, finished_at=utcnow())
    before = private_redis.get(keys.job(job_id))
    fail_after_hard_time_limit(jobs, job_id, 3900)
    assert private_redis.get(keys.job(job_id)) == before
    fail_after_hard_time_limit(jobs, "j_gone", 1)  # no record: nothing to do, no error
    assert not jobs.exists("j_gone")


def test_a_cancelling_job_killed_at_the_hard_limit_ends_cancelled(private_redis):
    jobs = JobRepository(private_redis)
    job_id = running_job(jobs, JobState.cancelling)
    fail_after_hard_time_limit(jobs, job_id, 10)
    assert jobs.get(job_id).state == JobState.cancelled
