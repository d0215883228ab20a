"""No lost jobs: a killed pool child, a killed (then restarted) worker, a restarted redis-server.

Destructive, so these run on their own stack (module-scoped) whose jobs are held in their test
delay (``MODELPRESS_TEST_DELAY_S``, 600 s) until the test releases them (``MODELPRESS_TEST_DELAY_RELEASE_FILE``):
no wall-clock window to catch a job in. The sweeper runs every half second. Each test leaves the stack healthy.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_stack
from tests.integration.helpers import in_test_delay, output_files, spec, submit, wait, wait_for

INT8 = {"method": "quantize", "kind": "dynamic_int8"}
EXPECTED_OUTPUTS = ["metrics.json", "model.torchscript.pt"]


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("crash")
    s = start_stack(data_dir, MODELPRESS_TEST_DELAY_S="600", MODELPRESS_TEST_DELAY_RELEASE_FILE=str(data_dir / "release"),
                    MODELPRESS_SWEEP_INTERVAL_S="0.5", MODELPRESS_TEST_DELAY_CANCELLABLE="false",
                    MODELPRESS_CANCEL_GRACE_S="0.5", MODELPRESS_MAX_ATTEMPTS="2")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def held(crash_stack):
    """Every test starts with jobs held in their delay; ``release`` lets them go on."""
    (crash_stack.data_dir / "release").unlink(missing_ok=True)


def release(stack) -> None:
    (stack.data_dir / "release").touch()


@pytest.fixture
def crash_api(crash_stack):
    with httpx.Client(base_url=crash_stack.base_url, timeout=60) as client:
        yield client


def child(stack, name):
    return next(c for c in stack.children if c.name == name)


def pool_children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def wait_until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def assert_one_clean_result(stack, job: dict) -> None:
    assert job["state"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert sorted(a["name"] for a in job["artifacts"]) == ["model.torchscript.pt"]
    assert output_files(stack.data_dir / "artifacts", job["id"]) == EXPECTED_OUTPUTS  # no temp files, no duplicates


def test_a_cancel_the_job_ignores_is_terminated_after_the_grace(crash_api, crash_stack, digits_mlp_path):
    job_id = submit(crash_api, digits_mlp_path, spec(INT8)).json()["id"]
    wait_for(crash_api, job_id, in_test_delay)
    worker = child(crash_stack, "worker-0")
    (pool_child,) = pool_children(worker.process.pid)
    assert crash_api.post(f"/jobs/{job_id}/cancel").json()["state"] == "cancelling"
    job = wait(crash_api, job_id, timeout=60)
    assert job["state"] == "cancelled" and "terminated" in job["progress"]["message"], job["progress"]
    # a new pool process imports torch first: up to worker_proc_alive_timeout (120 s) on a busy host
    wait_until(lambda: pool_children(worker.process.pid) and pool_children(worker.process.pid) != [pool_child], timeout=150)
    assert output_files(crash_stack.data_dir / "artifacts", job_id) == []
    assert crash_api.get(f"/jobs/{job_id}").json()["attempts"] == 1  # never re-run


def test_killed_pool_child_the_job_is_redelivered_and_succeeds(crash_api, crash_stack, digits_mlp_path):
    job_id = submit(crash_api, digits_mlp_path, spec(INT8)).json()["id"]
    wait_for(crash_api, job_id, in_test_delay)
    worker = child(crash_stack, "worker-0")
    (pool_child,) = pool_children(worker.process.pid)
    os.kill(pool_child, signal.SIGKILL)
    release(crash_stack)  # the second attempt goes straight through its delay
    assert_one_clean_result(crash_stack, wait(crash_api, job_id, timeout=120))
    assert worker.alive()


def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(crash_api, crash_stack, digits_mlp_path):
    job_id = submit(crash_api, digits_mlp_path, spec(INT8)).json()["id"]
    worker = child(crash_stack, "worker-0")
    for attempt in (1, 2):  # like a model that gets the pool process OOM-killed every time
        wait_for(crash_api, job_id, lambda j: in_test_delay(j) and j["attempts"] == attempt)
        (pool_child,) = pool_children(worker.process.pid)
        os.kill(pool_child, signal.SIGKILL)
    job = wait(crash_api, job_id, timeout=60)
    assert job["state"] == "failed" and job["error"]["type"].endswith("/worker-lost"), job
    assert "max_attempts=2" in job["error"]["detail"] and job["attempts"] == 2
    assert output_files(crash_stack.data_dir / "artifacts", job_id) == []


def test_killed_worker_is_restarted_and_the_sweeper_requeues_its_job(crash_api, crash_stack, digits_mlp_path):
    job_id = submit(crash_api, digits_mlp_path, spec(INT8)).json()["id"]
    wait_for(crash_api, job_id, in_test_delay)
    worker = child(crash_stack, "worker-0")
    os.killpg(worker.process.pid, signal.SIGKILL)  # the main process and its pool: no goodbye, no requeue
    wait_until(lambda: not worker.alive())
    release(crash_stack)
    assert crash_stack.supervise_once() == ["worker-0"]  # what `modelpress up` does every second
    assert worker.restarts == 1
    assert_one_clean_result(crash_stack, wait(crash_api, job_id, timeout=90))


def test_a_job_queued_across_a_redis_restart_completes(crash_api, crash_stack, digits_mlp_path):
    worker, redis_child = child(crash_stack, "worker-0"), child(crash_stack, "redis")
    release(crash_stack)
    worker.stop(timeout=30)  # no worker: the job stays queued
    job_id = submit(crash_api, digits_mlp_path, spec(INT8)).json()["id"]
    assert crash_api.get(f"/jobs/{job_id}").json()["state"] == "queued"
    redis_child.stop(timeout=10)  # SIGTERM: redis-server flushes its append-only file and exits
    assert sorted(crash_stack.supervise_once()) == ["redis", "worker-0"]
    job = wait(crash_api, job_id, timeout=90)
    assert job["state"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert output_files(crash_stack.data_dir / "artifacts", job_id) == EXPECTED_OUTPUTS
