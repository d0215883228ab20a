"""The lifecycle logic (cancel, sweep for lost workers and stuck cancels, retention) on a real redis-server,
driven directly with a clock: no worker needed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from modelpress_core.config import Settings
from modelpress_core.job import JobRecord, JobState, utcnow
from modelpress_core.lifecycle import JobFinished, cancel_job, expire_job
from modelpress_core.storage import keys
from modelpress_core.storage.artifacts import LocalArtifactStore
from modelpress_core.storage.jobs import JobRepository
from worker.sweeper import sweep


@pytest.fixture
def jobs(private_redis):
    return JobRepository(private_redis)


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def settings():
    return Settings(worker_heartbeat_s=1, max_attempts=2, cancel_grace_s=5, artifact_ttl_s=60, record_ttl_s=120)


class Calls:
    def __init__(self):
        self.enqueued, self.revoked = [], []

    def enqueue(self, job_id, queue):
        self.enqueued.append((job_id, queue))

    def revoke(self, job_id):
        self.revoked.append(job_id)


def make_job(jobs, store, tmp_path, job_id="j_test1", **fields) -> JobRecord:
    now = utcnow()
    record = JobRecord(id=job_id, spec={}, created_at=now, updated_at=now)
    jobs.create(record)
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 10)
    store.put_file(job_id, "inputs", "model.safetensors", src)
    store.put_file(job_id, "outputs", "model.torchscript.pt", src)
    if fields:
        jobs.update(job_id, lambda r: [setattr(r, k, v) for k, v in fields.items()])
    return jobs.get(job_id)


def heartbeat(client, name, instance):
    client.set(keys.worker_heartbeat(name), json.dumps({"name": name, "instance": instance}), ex=30)


def run_sweep(jobs, store, settings, calls, later_s=0.0):
    return sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke, now=utcnow() + timedelta(seconds=later_s))


def test_indexes_follow_the_state(jobs, store, tmp_path, private_redis):
    make_job(jobs, store, tmp_path)
    assert jobs.live_ids() == ["j_test1"] and jobs.queued_count() == 1
    jobs.transition("j_test1", JobState.running)
    assert jobs.queued_count() == 0 and jobs.live_ids() == ["j_test1"]
    jobs.transition("j_test1", JobState.succeeded, finished_at=utcnow())
    assert jobs.live_ids() == [] and jobs.finished_before(utcnow().timestamp() + 1) == ["j_test1"]


def test_cancel_queued_is_immediate_and_finished_is_a_conflict(jobs, store, tmp_path):
    make_job(jobs, store, tmp_path)
    record = cancel_job(jobs, store, "j_test1")
    assert record.state == JobState.cancelled and record.finished_at is not None
    assert not (store.root / "j_test1" / "outputs").exists()
    with pytest.raises(JobFinished) as info:
        cancel_job(jobs, store, "j_test1")
    assert info.value.status == 409


def test_cancel_running_asks_the_worker(jobs, store, tmp_path):
    make_job(jobs, store, tmp_path, state=JobState.running)
    record = cancel_job(jobs, store, "j_test1")
    assert record.state == JobState.cancelling and record.cancel_requested_at is not None
    assert cancel_job(jobs, store, "j_test1").state == JobState.cancelling  # asking twice is fine


def test_running_job_of_a_dead_worker_is_requeued_then_failed(jobs, store, tmp_path, settings, private_redis):
    make_job(jobs, store, tmp_path, state=JobState.running, worker="w1@h", worker_instance="old", attempts=1)
    calls = Calls()
    assert run_sweep(jobs, store, settings, calls)["requeued"] == []  # not stale yet
    heartbeat(private_redis, "w1@h", "old")
    assert run_sweep(jobs, store, settings, calls, later_s=10)["requeued"] == []  # its worker is alive
    heartbeat(private_redis, "w1@h", "new")  # restarted under the same name: a different instance
    done = run_sweep(jobs, store, settings, calls, later_s=10)
    assert done["requeued"] == ["j_test1"] and calls.enqueued == [("j_test1", "cpu")]
    record = jobs.get("j_test1")
    assert record.state == JobState.queued and not (store.root / "j_test1" / "outputs").exists()
    assert (store.root / "j_test1" / "inputs" / "model.safetensors").exists()

    jobs.update("j_test1", lambda r: [setattr(r, "state", JobState.running), setattr(r, "attempts", 2),
                                      setattr(r, "worker_instance", "newer")])
    done = run_sweep(jobs, store, settings, calls, later_s=10)
    assert done["failed"] == ["j_test1"]
    record = jobs.get("j_test1")
    assert record.state == JobState.failed and record.error["type"].endswith("/worker-lost")


def test_stuck_cancel_is_revoked_after_the_grace(jobs, store, tmp_path, settings, private_redis):
    make_job(jobs, store, tmp_path, state=JobState.running, worker="w1@h", worker_instance="i1")
    heartbeat(private_redis, "w1@h", "i1")
    cancel_job(jobs, store, "j_test1")
    calls = Calls()
    assert run_sweep(jobs, store, settings, calls, later_s=1)["revoked"] == []
    done = run_sweep(jobs, store, settings, calls, later_s=6)
    assert calls.revoked == ["j_test1"] and done["cancelled"] == ["j_test1"]
    assert jobs.get("j_test1").state == JobState.cancelled
    assert not (store.root / "j_test1" / "outputs").exists()


def test_retention_expires_finished_jobs_and_keeps_the_record(jobs, store, tmp_path, settings, private_redis):
    make_job(jobs, store, tmp_path, state=JobState.running)
    jobs.transition("j_test1", JobState.succeeded, finished_at=utcnow())
    calls = Calls()
    assert run_sweep(jobs, store, settings, calls, later_s=30)["expired"] == []
    assert run_sweep(jobs, store, settings, calls, later_s=61)["expired"] == ["j_test1"]
    record = jobs.get("j_test1")
    assert record.state == JobState.expired and record.artifacts == []
    assert not (store.root / "j_test1").exists()
    assert 0 < private_redis.ttl(keys.job("j_test1")) <= 120
    assert expire_job(jobs, store, "j_test1", record_ttl_s=120, reason="again") is None  # idempotent
    private_redis.delete(keys.job("j_test1"))  # the record's TTL ran out
    run_sweep(jobs, store, settings, calls, later_s=200)
    assert private_redis.zcard(keys.jobs_index()) == 0


def gpu_job(jobs, job_id="j_gpu1") -> JobRecord:
    now = utcnow()
    jobs.create(JobRecord(id=job_id, spec={}, queue="gpu", device="cuda", created_at=now, updated_at=now))
    return jobs.get(job_id)


def test_a_gpu_job_without_a_gpu_worker_fails_after_the_wait(jobs, store):
    settings = Settings(gpu_wait_s=30, worker_heartbeat_s=1)
    record = gpu_job(jobs)
    calls = Calls()
    assert sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke, now=record.updated_at + timedelta(seconds=29))["unserved"] == []
    assert jobs.get(record.id).state == JobState.queued
    done = sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke, now=record.updated_at + timedelta(seconds=31))
    assert done["unserved"] == [record.id]
    failed = jobs.get(record.id)
    assert failed.state == JobState.failed and failed.error["type"].endswith("/no-gpu-worker")
    assert "no live GPU worker (queue gpu) for 30 s" in failed.error["detail"]


def test_a_gpu_job_waits_while_a_gpu_worker_lives_and_counts_from_its_last_heartbeat(jobs, store, private_redis):
    from modelpress_core.storage.workers import forget, record_heartbeat

    settings = Settings(gpu_wait_s=30, worker_heartbeat_s=1)
    record = gpu_job(jobs)
    calls = Calls()
    record_heartbeat(private_redis, "gpu-0@h", ["gpu"], {"name": "gpu-0@h", "queues": ["gpu"], "cuda": None}, ttl_s=30)
    later = record.updated_at + timedelta(seconds=3600)
    assert sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke, now=later)["unserved"] == []
    forget(private_redis, "gpu-0@h")  # gone now, but it was seen a moment ago: the wait starts from then
    assert sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke,
                 now=utcnow() + timedelta(seconds=20))["unserved"] == []
    assert sweep(jobs, store, settings, enqueue=calls.enqueue, revoke=calls.revoke,
                 now=utcnow() + timedelta(seconds=40))["unserved"] == [record.id]


def test_gpu_wait_zero_waits_forever(jobs, store):
    record = gpu_job(jobs)
    calls = Calls()
    done = sweep(jobs, store, Settings(gpu_wait_s=0), enqueue=calls.enqueue, revoke=calls.revoke,
                 now=record.updated_at + timedelta(days=30))
    assert done["unserved"] == [] and jobs.get(record.id).state == JobState.queued
