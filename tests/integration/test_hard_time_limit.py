"""What the worker's main process writes when Celery kills a job's pool process at the hard time limit."""

from __future__ import annotations

from service.domain.job import JobRecord, JobState, new_job_id, utcnow
from service.storage.jobs import JobRepository
from worker.tasks import JobRequest, fail_after_hard_time_limit


def running_job(jobs: JobRepository, state: JobState = JobState.running) -> str:
    now = utcnow()
    record = JobRecord(id=new_job_id(), tenant="t", spec={"steps": []}, created_at=now, updated_at=now, state=JobState.queued)
    jobs.create(record)
    jobs.transition(record.id, JobState.running, started_at=now)
    if state == JobState.cancelling:
        jobs.transition(record.id, JobState.cancelling, cancel_requested_at=now)
    return record.id


def test_a_job_killed_at_the_hard_limit_fails_with_the_reason(private_redis):
    jobs = JobRepository(private_redis)
    job_id = running_job(jobs)
    fail_after_hard_time_limit(jobs, job_id, 3900)
    record = jobs.get(job_id)
    assert record.state == JobState.failed and record.finished_at is not None
    assert record.error["type"] == "https://modelpress.dev/problems/time-limit"
    assert "hard time limit (3900 s" in record.error["detail"]
    assert "killed at the hard time limit" in jobs.logs(job_id)[-1]["message"]
    assert not private_redis.sismember("mp:tenant:t:active", job_id)

    fail_after_hard_time_limit(jobs, job_id, 3900)  # already finished: nothing changes
    assert jobs.get(job_id).updated_at == record.updated_at
    fail_after_hard_time_limit(jobs, "j_gone", 1)  # no record: nothing to do


def test_a_cancelling_job_killed_at_the_hard_limit_ends_cancelled(private_redis):
    jobs = JobRepository(private_redis)
    job_id = running_job(jobs, JobState.cancelling)
    fail_after_hard_time_limit(jobs, job_id, 10)
    assert jobs.get(job_id).state == JobState.cancelled


def test_the_task_uses_the_request_class_that_records_it():
    from worker.tasks import run_job

    assert run_job.Request == "worker.tasks:JobRequest" and hasattr(JobRequest, "on_timeout")
