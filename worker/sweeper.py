"""The sweeper: a thread in every worker's main process; one of them sweeps each period (a Redis lock).

Each sweep:
- a ``running`` job whose worker instance no longer heartbeats (killed, OOM, host lost) is put back
  on the queue (``running -> queued``, re-enqueued with the same task id) until ``max_attempts``,
  then ``failed`` with a ``worker-lost`` problem. (A pool child killed under a live main process
  needs no sweep: Celery's ``task_reject_on_worker_lost`` redelivers at once.)
- a ``cancelling`` job whose worker is gone ends ``cancelled``; one still running after
  ``cancel_grace_s`` has its Celery task revoked with terminate, then ends ``cancelled``.
- a ``queued`` job for the gpu queue while no live worker consumes that queue: once neither the job
  (since it was queued) nor the queue (since its last GPU worker's heartbeat) has seen one for
  ``gpu_wait_s``, it ends ``failed`` with a ``no-gpu-worker`` problem. (``GET /jobs/{id}`` shows the
  reason, ``waiting``, all along.)
- a finished job older than ``artifact_ttl_s`` goes ``expired``: inputs and outputs removed, the
  record kept ``record_ttl_s``; index entries of records that have gone are pruned.

``sweep()`` is plain logic over the repository (tests call it directly with a clock).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Callable

import redis

from service.config import Settings
from service.domain.errors import Unavailable, bounded_problem
from service.domain.job import JobRecord, JobState, Progress, utcnow
from service.lifecycle import expire_job, finish_cancel, instance_alive
from service.storage import keys
from service.storage.artifacts import ArtifactStore, make_store
from service.storage.jobs import JobRepository, NoChange
from service.storage.workers import consumers, last_seen, waiting_reason

log = logging.getLogger("modelpress.sweeper")

Enqueue = Callable[[str, str], None]  # (job_id, queue)
Revoke = Callable[[str], None]  # job_id (= task id)


def sweep(
    jobs: JobRepository,
    store: ArtifactStore,
    settings: Settings,
    *,
    enqueue: Enqueue,
    revoke: Revoke,
    now=None,
) -> dict[str, list[str]]:
    """One pass; returns what it did, by action."""
    now = now or utcnow()
    done: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": [], "revoked": [], "expired": [], "unserved": []}
    stale_after = timedelta(seconds=3 * settings.worker_heartbeat_s)
    gpu_served: list[bool] = []  # asked once per sweep, when there is a queued gpu job
    for record in jobs.get_many(jobs.live_ids()):
        try:
            if record.state == JobState.queued and record.queue == "gpu" and settings.gpu_wait_s:
                if not gpu_served:
                    gpu_served.append(bool(consumers(jobs.redis, "gpu")))
                if not gpu_served[0]:
                    _unserved(jobs, settings, record, now, done)
                continue
            if record.state == JobState.running and now - record.updated_at > stale_after:
                if not instance_alive(jobs.redis, record.worker, record.worker_instance):
                    _lost(jobs, store, settings, record, enqueue, done)
            elif record.state == JobState.cancelling:
                if not instance_alive(jobs.redis, record.worker, record.worker_instance) and now - record.updated_at > stale_after:
                    if finish_cancel(jobs, store, record.id, "cancelled (its worker was gone)"):
                        done["cancelled"].append(record.id)
                elif record.cancel_requested_at and (now - record.cancel_requested_at).total_seconds() > settings.cancel_grace_s:
                    revoke(record.id)
                    done["revoked"].append(record.id)
                    if finish_cancel(jobs, store, record.id, f"cancelled (terminated after the {settings.cancel_grace_s:g} s grace)"):
                        done["cancelled"].append(record.id)
        except Exception:
            log.exception("sweeper: could not handle job %s", record.id)
    if settings.artifact_ttl_s:
        for job_id in jobs.finished_before(now.timestamp() - settings.artifact_ttl_s):
            try:
                if expire_job(jobs, store, job_id, record_ttl_s=settings.record_ttl_s,
                              reason=f"inputs and artifacts removed {settings.artifact_ttl_s} s after the job finished"):
                    done["expired"].append(job_id)
            except Exception:
                log.exception("sweeper: could not expire job %s", job_id)
        jobs.prune_index((now.timestamp() - settings.artifact_ttl_s - settings.record_ttl_s) * 1000)
    return done


def _unserved(jobs: JobRepository, settings: Settings, record: JobRecord, now, done) -> None:
    """Fail a queued gpu job that has had no GPU worker for ``gpu_wait_s``."""
    since = max(record.updated_at.timestamp(), last_seen(jobs.redis, record.queue) or 0.0)
    if now.timestamp() - since <= settings.gpu_wait_s:
        return
    reason = waiting_reason(jobs.redis, record.queue)
    if reason is None:
        return  # one came up meanwhile
    problem = Unavailable(
        f"{reason} for {settings.gpu_wait_s:g} s (MODELPRESS_GPU_WAIT_S); start a worker with -Q {record.queue} on a CUDA "
        "host, or submit with device 'cpu' or 'auto'",
        slug="no-gpu-worker", title="No GPU worker took the job", queue=record.queue,
    ).to_problem()

    def change(r: JobRecord) -> None:
        if r.state != JobState.queued:
            raise NoChange
        r.state = JobState.failed
        r.finished_at = utcnow()
        r.error = bounded_problem(problem)
        r.progress = Progress(phase="failed", fraction=0.0, message=reason)

    if jobs.update(record.id, change) is not None:
        done["unserved"].append(record.id)
        log.warning("sweeper: job %s failed: %s", record.id, problem["detail"])


def _lost(jobs: JobRepository, store: ArtifactStore, settings: Settings, record: JobRecord, enqueue: Enqueue, done) -> None:
    lost_worker = record.worker_instance

    def change(r: JobRecord) -> None:
        if r.state != JobState.running or r.worker_instance != lost_worker:
            raise NoChange  # someone else moved it meanwhile
        if r.attempts >= settings.max_attempts:
            r.state = JobState.failed
            r.finished_at = utcnow()
            r.error = bounded_problem({
                "type": "https://modelpress.dev/problems/worker-lost", "title": "The job's worker was lost", "status": 500,
                "detail": f"the worker running this job ({r.worker}) stopped heartbeating, {r.attempts} of "
                          f"max_attempts={settings.max_attempts} attempts used"})
        else:
            r.state = JobState.queued
            r.progress = Progress(phase="queued", fraction=0.0, message=f"requeued: worker {r.worker} was lost (attempt {r.attempts})")
        r.worker_instance = None

    updated = jobs.update(record.id, change)
    if updated is None:
        return
    store.remove_area(record.id, "outputs")
    if updated.state == JobState.queued:
        enqueue(record.id, updated.queue)
        done["requeued"].append(record.id)
        log.warning("sweeper: job %s lost its worker %s; requeued", record.id, record.worker)
    else:
        done["failed"].append(record.id)
        log.warning("sweeper: job %s lost its worker %s; failed after %d attempts", record.id, record.worker, updated.attempts)


def sweeper_loop(settings: Settings, stop: threading.Event) -> None:
    from service.queue import enqueue_job
    from worker.celery_app import app
    from worker.lifecycle import INSTANCE

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    jobs = JobRepository(client)
    store = make_store(settings)

    def enqueue(job_id: str, queue: str) -> None:
        enqueue_job(settings.redis_url, job_id, queue)

    def revoke(job_id: str) -> None:
        app.control.revoke(job_id, terminate=True, signal="SIGTERM")

    period_ms = max(100, int(settings.sweep_interval_s * 1000 * 0.9))
    while not stop.wait(settings.sweep_interval_s):
        try:
            if not client.set(keys.sweeper_lock(), INSTANCE, nx=True, px=period_ms):
                continue
            done = sweep(jobs, store, settings, enqueue=enqueue, revoke=revoke)
            if any(done.values()):
                log.info("sweeper: %s", {k: v for k, v in done.items() if v})
        except redis.RedisError:
            log.warning("sweeper: redis unavailable")
        except Exception:
            log.exception("sweeper: sweep failed")
