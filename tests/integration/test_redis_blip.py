"""A Redis blip loses nothing; a job no process runs is recovered; a killed run's temp folder goes.

One stack (private redis-server, uvicorn, one Celery worker) whose jobs are slow
(``MODELPRESS_TEST_DELAY_S``), whose sweeper runs every half second with a 5 s lease grace, and
whose worker has a private temp dir. Every test leaves it healthy.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis

from modelpress_core.job import JobState
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import JobRepository
from tests.integration.conftest import start_stack
from tests.integration.helpers import in_test_delay, output_files, spec, submit

INT8 = {"method": "quantize", "kind": "dynamic_int8"}
EXPECTED_OUTPUTS = ["metrics.json", "model.torchscript.pt"]
TENANT = "local"  # auth is off on the loopback stack


@pytest.fixture(scope="module")
def blip_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blip-tmp")
    s = start_stack(tmp_path_factory.mktemp("blip"), MODELPRESS_TEST_DELAY_S="3", MODELPRESS_SWEEP_INTERVAL_S="0.5",
                    MODELPRESS_JOB_LEASE_GRACE_S="5", MODELPRESS_MAX_ATTEMPTS="2", TMPDIR=str(tmp))
    s.tmp = tmp
    yield s
    s.stop()


@pytest.fixture
def api(blip_stack):
    with httpx.Client(base_url=blip_stack.base_url, timeout=60) as client:
        yield client


@pytest.fixture
def client(blip_stack):
    c = redis.Redis.from_url(blip_stack.redis_url, socket_timeout=10)
    yield c
    c.close()


def child(stack, name):
    return next(c for c in stack.children if c.name == name)


def wait_until(predicate, timeout: float, what: str):
    """Poll ``predicate`` (errors count as not yet: the API may answer 5xx while Redis is away)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (httpx.HTTPError, redis.RedisError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def job_when(api, job_id, predicate, timeout: float = 120) -> dict:
    def check():
        r = api.get(f"/jobs/{job_id}")
        return r.status_code == 200 and predicate(job := r.json()) and job

    return wait_until(check, timeout, f"job {job_id}")


def finished(job: dict) -> bool:
    return job["state"] in ("succeeded", "failed", "cancelled")


def workdirs(stack, job_id: str) -> list[Path]:
    return sorted(stack.tmp.glob(f"modelpress-{job_id}-*"))


def test_a_job_running_while_redis_is_killed_and_restarted_still_finishes(api, blip_stack, client, digits_mlp_path):
    job_id = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
    job_when(api, job_id, in_test_delay)
    assert workdirs(blip_stack, job_id)  # its work folder, while it runs
    redis_child = child(blip_stack, "redis")
    os.kill(redis_child.process.pid, signal.SIGKILL)
    redis_child.process.wait(10)
    assert blip_stack.supervise_once() == ["redis"]  # what `modelpress up` does every second: same data dir and port
    job = job_when(api, job_id, finished, timeout=180)
    assert job["state"] == "succeeded", job["error"]
    assert job["attempts"] == 1  # never requeued: the run rode out the restart
    assert sorted(a["name"] for a in job["artifacts"]) == ["model.torchscript.pt"]
    assert output_files(blip_stack.data_dir / "artifacts", job_id) == EXPECTED_OUTPUTS
    assert client.scard(keys.tenant_active(TENANT)) == 0  # the tenant's active-job slot is free again
    assert not client.exists(keys.job_lease(job_id))
    assert workdirs(blip_stack, job_id) == []


def test_running_jobs_that_no_process_runs_are_requeued_or_failed_by_the_sweeper(api, blip_stack, client, digits_mlp_path):
    blocker = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
    job_when(api, blocker, in_test_delay)
    # the worker is busy (one process, late acks): the next two messages wait in Celery's queue
    retried, exhausted = (submit(api, digits_mlp_path, spec(INT8)).json()["id"] for _ in range(2))
    wait_until(lambda: client.llen(keys.celery_queue("cpu")) == 2, 30, "two waiting messages")
    client.delete(keys.celery_queue("cpu"))  # like a message Celery acked: nothing will deliver it again
    jobs = JobRepository(client)
    worker = jobs.get(blocker)
    assert worker.worker and worker.worker_instance
    for job_id, attempts in ((retried, 1), (exhausted, 2)):  # claimed by the live worker, then lost by it
        jobs.update(job_id, lambda r, attempts=attempts: [setattr(r, "state", JobState.running), setattr(r, "attempts", attempts),
                                                          setattr(r, "worker", worker.worker),
                                                          setattr(r, "worker_instance", worker.worker_instance)])
    assert not client.exists(keys.job_lease(retried)) and not client.exists(keys.job_lease(exhausted))

    failed = job_when(api, exhausted, finished)
    assert failed["state"] == "failed" and failed["error"]["type"].endswith("/worker-lost"), failed
    assert "is alive but no process has run this job" in failed["error"]["detail"]
    assert "2 of max_attempts=2" in failed["error"]["detail"]
    done = job_when(api, retried, finished)
    assert done["state"] == "succeeded", done["error"]
    assert done["attempts"] == 2  # requeued once, then run to the end
    assert output_files(blip_stack.data_dir / "artifacts", retried) == EXPECTED_OUTPUTS
    assert job_when(api, blocker, finished)["state"] == "succeeded"
    assert client.scard(keys.tenant_active(TENANT)) == 0


def test_a_killed_runs_temp_folder_is_removed_when_the_worker_starts_again(api, blip_stack, digits_mlp_path):
    live = blip_stack.tmp / "modelpress-j_20990101000000aaaaaaaaaaaa-live"  # a run elsewhere on this host, still going
    live.mkdir()
    lock = os.open(live / ".lock", os.O_WRONLY | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        job_id = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
        job_when(api, job_id, in_test_delay)
        worker = child(blip_stack, "worker-0")
        os.killpg(worker.process.pid, signal.SIGKILL)  # main process and pool: nothing cleans up
        worker.process.wait(10)
        (orphan,) = workdirs(blip_stack, job_id)
        assert orphan.is_dir()
        assert blip_stack.supervise_once() == ["worker-0"]
        wait_until(lambda: not orphan.exists(), 120, "the orphaned folder to go")
        assert live.is_dir()  # held by a live process: kept
        job = job_when(api, job_id, finished, timeout=180)  # the sweeper requeued it: the worker died
        assert job["state"] == "succeeded" and job["attempts"] == 2, job
        assert workdirs(blip_stack, job_id) == []
    finally:
        os.close(lock)
