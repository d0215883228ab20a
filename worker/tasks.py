"""The only task: ``run_job(job_id)``. Thin and idempotent; the job record is the truth."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_ready
from celery.worker.request import Request

from modelpress_core.config import get_settings
from modelpress_core.errors import JobFailed, ModelpressError, TimeLimitExceeded, WorkerLost, bounded_problem
from modelpress_core.job import ArtifactInfo, JobState, Progress, utcnow
from modelpress_core.spec import JobSpec
from modelpress_core.lifecycle import finish_cancel
from modelpress_core.queue import RUN_JOB_TASK
from modelpress_core.storage import leases
from modelpress_core.storage.artifacts import make_store
from modelpress_core.storage.connection import redis_client
from modelpress_core.storage.jobs import JobNotFound, JobRepository, NoChange
from worker.celery_app import app
from worker.guard import MemoryLimitExceeded, memory_guard, memory_problem
from worker.lease import JobLease
from worker.lifecycle import INSTANCE
from worker.workdirs import job_workdir
from worker.sandbox.policy import runs_user_code
from worker.sandbox.probe import report_sandbox, startup_check

log = logging.getLogger("modelpress.worker")

METRICS_FILE = "metrics.json"


class JobCancelled(Exception):
    pass


class JobSuperseded(Exception):
    """The record moved on without this run (requeued, or claimed by another run): stop, touch nothing."""


def hard_time_limit_problem(limit_s: float) -> dict:
    return TimeLimitExceeded.hard(limit_s).to_problem()


def _failure(exc: BaseException, elapsed_s: float = 0.0) -> dict:
    """The problem a failed job records, bounded (an exception's text can be any length)."""
    return _failure_error(exc, elapsed_s).to_problem()


def _failure_error(exc: BaseException, elapsed_s: float) -> ModelpressError:
    if isinstance(exc, ModelpressError):
        return exc
    hard = get_settings().job_time_limit_s
    if isinstance(exc, SystemExit) and elapsed_s >= hard - 1:  # the pool's SIGTERM at the hard time limit
        return TimeLimitExceeded.hard(hard)
    if isinstance(exc, SoftTimeLimitExceeded):
        return TimeLimitExceeded.soft(get_settings().job_soft_time_limit_s)
    return JobFailed.of(exc)


def _logger(jobs: JobRepository, job_id: str):
    """The job's log (capped Redis list + live pub/sub); a lost line never fails the job."""

    def say(message: str, level: str = "info") -> None:
        try:
            jobs.log(job_id, message, level)
        except Exception:  # noqa: BLE001
            log.warning("could not write a log line of job %s", job_id, exc_info=True)

    return say


@worker_init.connect
def _probe_sandbox(**_) -> None:
    """Once per worker start, before the pool forks: can user model code be confined here? (see docs/sandbox.md)"""
    startup_check(get_settings())


@worker_ready.connect
def _say_sandbox(**_) -> None:
    """Every start says how user model code runs (loudly when unconfined), once logging is set up."""
    report_sandbox(get_settings())


@worker_process_init.connect
def _preload(**_) -> None:
    """Import torch and the pipeline when a pool process starts, not inside its first job: a time
    limit (or the memory guard) landing in the middle of that import would leave torch
    half-registered in the process for good ("Only a single TORCH_LIBRARY ...")."""
    import worker.pipeline  # noqa: F401
    from worker.evaluate import warm_up_mac_counter

    warm_up_mac_counter()


def job_repository(socket_timeout: float = 30.0) -> JobRepository:
    """The worker's view of the records, through a client that retries across a Redis restart."""
    settings = get_settings()
    return JobRepository(redis_client(settings.redis_url, retry_s=settings.redis_retry_s, socket_timeout=socket_timeout))


def held_elsewhere(client, job_id: str) -> leases.Holder | None:
    """The holder of the job's lease when that is another live run (not this process, not a dead
    pool process of this worker whose task Celery redelivered), else None."""
    held = leases.holder(client, job_id)
    if held is None or held.pid == os.getpid() and held.instance == INSTANCE:
        return None
    if held.instance == INSTANCE and not leases.process_alive(held.pid):
        return None
    return held


@app.task(name=RUN_JOB_TASK, bind=True, Request="worker.tasks:JobRequest")
def run_job(self, job_id: str) -> None:
    settings = get_settings()
    jobs = job_repository()
    store = make_store(settings)
    try:
        record = jobs.get(job_id)
    except JobNotFound:
        log.warning("job %s is gone; dropping the message", job_id)
        return
    if record.terminal:
        return  # redelivered after it finished, or cancelled while queued: nothing to do
    if record.state != JobState.queued and (other := held_elsewhere(jobs.redis, job_id)):
        log.warning("job %s is being run by %s pid %s; dropping this duplicate delivery", job_id, other.host, other.pid)
        return
    if record.state == JobState.cancelling:
        finish_cancel(jobs, store, job_id, "cancelled before a worker resumed it")
        return

    def claim(r):
        if r.state not in (JobState.queued, JobState.running):
            raise NoChange  # cancelled or finished since we looked
        if r.attempts >= settings.max_attempts:
            r.state = JobState.failed
            r.finished_at = utcnow()
            r.error = WorkerLost(
                f"the job was started {r.attempts} times and its worker died each time (max_attempts={settings.max_attempts})").to_problem()
            return
        r.state = JobState.running
        r.started_at = r.started_at or utcnow()
        r.attempts += 1
        r.worker = self.request.hostname
        r.worker_instance = INSTANCE
        r.progress = Progress(phase="starting", fraction=0.01, message="a worker picked up the job")

    lease = JobLease(jobs.redis, job_id, INSTANCE, settings.worker_heartbeat_s)
    # a redelivery after a crash finds it running: claimed again in place; the lease is written in the same MULTI
    claimed = jobs.update(job_id, claim, also=lambda pipe, r: lease.take(pipe) if r.state == JobState.running else None)
    if claimed is None or claimed.state != JobState.running:
        store.remove_area(job_id, "outputs")
        return
    try:
        with job_workdir(job_id) as workdir:
            _run_claimed(self, jobs, store, settings, record, claimed, lease, workdir)
    finally:
        lease.release()


def _run_claimed(task, jobs: JobRepository, store, settings, record, claimed, lease: JobLease, workdir: Path) -> None:
    job_id, attempt = claimed.id, claimed.attempts
    store.remove_area(job_id, "outputs")  # leftovers of a crashed attempt
    say = _logger(jobs, job_id)
    say(f"attempt {attempt} on worker {task.request.hostname}")
    last_message = [""]

    def ours(r) -> None:
        """The record still belongs to this run (a sweeper requeue or a takeover would have moved it on)."""
        if r.worker_instance != INSTANCE or r.attempts != attempt or r.state not in (JobState.running, JobState.cancelling):
            raise JobSuperseded(f"job {job_id} moved on to {r.state.value} (attempt {r.attempts}) while this run lasted")

    def set_progress(r, value: Progress) -> None:
        ours(r)
        r.progress = value

    def progress(phase: str, step: int | None, fraction: float, message: str) -> None:
        jobs.update(job_id, lambda r: set_progress(r, Progress(phase=phase, step=step, fraction=fraction, message=message)))
        if message != last_message[0]:
            last_message[0] = message
            say(f"[{phase} {fraction:.0%}] {message}")

    def check_cancelled() -> None:
        current = jobs.get(job_id)
        ours(current)
        if current.state == JobState.cancelling:
            raise JobCancelled()

    def killed_for_memory(peak_mb: float) -> None:  # the guard's last resort, just before it SIGKILLs this process
        say(f"failed: over the memory cap ({peak_mb:.0f} MiB > {settings.worker_max_memory_mb} MiB); process killed", "error")
        jobs.update(job_id, lambda r: _fail(r, memory_problem(settings.worker_max_memory_mb, peak_mb)))

    def succeed(r, artifacts, summary) -> None:
        if r.state == JobState.succeeded and r.attempts == attempt and r.worker_instance == INSTANCE:
            raise NoChange  # our own write, re-run after a lost EXEC reply
        ours(r)
        r.state = JobState.succeeded
        r.artifacts, r.summary, r.finished_at = artifacts, summary, utcnow()
        r.progress = Progress(phase="done", fraction=1.0, message="finished")

    started = time.monotonic()
    guard_cm = memory_guard(settings.worker_max_memory_mb, on_kill=killed_for_memory)
    guard = guard_cm.__enter__()
    try:
        from worker.pipeline import run_pipeline

        spec = JobSpec.model_validate(record.spec)
        if spec.device == "auto":  # the API resolved it at submit time (older records: from the queue)
            spec = spec.model_copy(update={"device": record.device or ("cuda" if record.queue == "gpu" else "cpu")})
        _set_job_threads(settings.worker_threads)
        model_info = record.model  # typed on the record (older records: derived from inputs by JobRecord)
        model_path = store.fetch(job_id, "inputs", model_info.name, workdir)
        data = {part: (store.fetch(job_id, "inputs", i.name, workdir), i.format) for part, i in record.data.items()}
        pipeline_args = dict(
            warmup=settings.latency_warmup,
            runs=settings.latency_runs,
            input_sha256=model_info.sha256,
            data_sha256={i.name: i.sha256 for i in record.data.values()},
            delay_s=settings.test_delay_s,
            delay_cancellable=settings.test_delay_cancellable,
            delay_release=Path(settings.test_delay_release_file) if settings.test_delay_release_file else None,
            search_max_seconds=min(settings.search_max_seconds, settings.job_soft_time_limit_s),
        )
        if runs_user_code(spec.model.format):  # user code: in a confined child, killed with the job
            from worker.sandbox.runner import run_sandboxed

            result = run_sandboxed(spec, model_path, workdir, settings=settings, progress=progress, say=say,
                                   check_cancelled=check_cancelled, watch=guard.watch if guard else lambda pid: None,
                                   data=data, **pipeline_args)
        else:  # data into a registered builder: no user code runs; in-process, as fast as before
            result = run_pipeline(spec, model_path, workdir, progress=progress, check_cancelled=check_cancelled, data=data,
                                  **pipeline_args)
        ours(jobs.get(job_id))
        artifacts = []
        for output in result.outputs:
            size, sha = store.put_file(job_id, "outputs", output.name, output.path)
            artifacts.append(ArtifactInfo(name=output.name, format=output.format, bytes=size, sha256=sha, media_type=output.media_type))
        metrics_path = workdir / METRICS_FILE
        metrics_path.write_text(json.dumps(result.metrics, indent=2, default=str))
        store.put_file(job_id, "outputs", METRICS_FILE, metrics_path)
        for warning in result.metrics.get("verdict", {}).get("warnings", []):
            say(f"warning: {warning}", "warning")
        say("succeeded: " + ", ".join(f"{a.name} ({a.bytes} bytes)" for a in artifacts))
        jobs.update(job_id, lambda r: succeed(r, artifacts, result.summary))
    except JobSuperseded as exc:  # the record and the outputs are another run's now
        log.warning("%s; this run stops and leaves them alone", exc)
    except JobCancelled:
        say("cancelled; partial outputs removed")
        finish_cancel(jobs, store, job_id, "cancelled by request")
    except BaseException as exc:  # noqa: BLE001 - every failure must end the job with a reason
        problem = guard.problem() if isinstance(exc, MemoryLimitExceeded) and guard else _failure(exc, time.monotonic() - started)
        try:
            current = jobs.get(job_id)
            ours(current)
            store.remove_area(job_id, "outputs")
            say(f"failed: {problem['detail']}", "error")
            if current.state == JobState.cancelling:  # e.g. terminated by the cancel grace revoke
                finish_cancel(jobs, store, job_id, "cancelled by request (terminated)")
            else:
                log.exception("job %s failed", job_id)
                jobs.update(job_id, lambda r: (ours(r), _fail(r, problem)))
        except JobSuperseded as superseded:
            log.warning("%s; this run's failure (%s) is not recorded", superseded, problem["detail"])
        except Exception:
            log.exception("could not mark job %s failed", job_id)
        if not isinstance(exc, Exception):
            raise
    finally:
        guard_cm.__exit__(None, None, None)


def _fail(record, problem: dict) -> None:
    if record.terminal:
        raise NoChange
    record.state = JobState.failed
    record.error = bounded_problem(problem)
    record.finished_at = utcnow()


def fail_after_hard_time_limit(jobs: JobRepository, job_id: str, limit_s: float) -> None:
    """The pool process running the job was killed at the hard time limit: say so in the record
    (nothing else would: the process is gone, and its worker still heartbeats). A cancelling job ends cancelled."""
    def change(record) -> None:
        if record.state == JobState.cancelling:
            record.state = JobState.cancelled
            record.finished_at = utcnow()
            record.progress = Progress(phase="cancelled", fraction=record.progress.fraction, message="cancelled (terminated at the time limit)")
            return
        _fail(record, hard_time_limit_problem(limit_s))

    try:
        if jobs.update(job_id, change) is not None:
            jobs.log(job_id, f"failed: killed at the hard time limit ({limit_s:g} s)", "error")
    except JobNotFound:
        pass


class JobRequest(Request):
    """Celery's request, plus: a hard time limit fails the job's record with the reason."""

    def on_timeout(self, soft, timeout):
        super().on_timeout(soft, timeout)
        if not soft and self.name == RUN_JOB_TASK:
            try:
                fail_after_hard_time_limit(job_repository(socket_timeout=10), self.id, timeout)
            except Exception:  # noqa: BLE001
                log.exception("could not mark job %s failed after its hard time limit", self.id)


_startup_threads: int | None = None


def _set_job_threads(configured: int) -> None:
    """Every job compresses with the same torch thread count: the configured one, else the count the
    process started with. (Measurement lowers it to ``evaluate.threads``; without this reset, a
    worker's later jobs would train with the previous job's measurement threads.)"""
    global _startup_threads
    import torch

    if _startup_threads is None:
        _startup_threads = torch.get_num_threads()
    torch.set_num_threads(configured or _startup_threads)
