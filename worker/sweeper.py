"""The sweeper: a thread in every worker's main process; one of them sweeps each period (a Redis lock).

Each sweep:
- a ``running`` job that no process runs any more is put back on the queue (``running -> queued``,
  re-enqueued with the same task id) until ``max_attempts``, then ``failed`` with a ``worker-lost``
  problem. No process runs it when its lease (``mp:lease:<job>``, refreshed every heartbeat by the
  process running it, lapsing after three) is gone and either its worker instance no longer heartbeats
  (killed, OOM, host lost) or the lease has now been missing for ``job_lease_grace_s`` on consecutive
  sweeps (the worker lives but lost the task: Celery acked it, its last write failed). The grace lets
  a runner whose lease lapsed during a long Redis outage renew it once Redis is back. (A pool child
  killed under a live main process needs no sweep: Celery's ``task_reject_on_worker_lost`` redelivers at once.)
- a ``cancelling`` job whose worker is gone ends ``cancelled``; one still running after
  ``cancel_grace_s`` has its Celery task revoked with terminate, then ends ``cancelled``.
- a ``queued`` job for the gpu queue while no live worker consumes that queue: once neither the job
  (since it was queued) nor the queue (since its last GPU worker's heartbeat) has seen one for
  ``gpu_wait_s``, it ends ``failed`` with a ``no-gpu-worker`` problem. (``GET /jobs/{id}`` shows the
  reason, ``waiting``, all along.)
- a finished job older than ``artifact_ttl_s`` goes ``expired``: inputs and outputs removed, the
  record kept ``record_ttl_s``; index entries of records that have gone are pruned.

Besides, every worker removes its host's orphaned job folders and stale staging files every
``ORPHAN_SCAN_S`` (``worker/workdirs.py``), lock or not.

``sweep()`` is plain logic over the repository (tests call it directly with a clock).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Callable

import redis

from modelpress_core.config import Settings
from modelpress_core.errors import NoGpuWorker, WorkerLost, bounded_problem
from modelpress_core.job import JobRecord, JobState, Progress, utcnow
from modelpress_core.lifecycle import expire_job, finish_cancel, instance_alive
from modelpress_core.storage import keys, leases
from modelpress_core.storage.artifacts import ArtifactStore, make_store
from modelpress_core.storage.connection import redis_client
from modelpress_core.storage.jobs import JobRepository, NoChange
from modelpress_core.storage.workers import consumers, last_seen, waiting_reason
from worker.workdirs import ORPHAN_SCAN_S, remove_orphan_workdirs, remove_stale_staging

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
                reason = _unattended(jobs.redis, settings, record, now)
                if reason:
                    _lost(jobs, store, settings, record, enqueue, done, reason)
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
    problem = NoGpuWorker(
        f"{reason} for {settings.gpu_wait_s:g} s (MODELPRESS_GPU_WAIT_S); start a worker with -Q {record.queue} on a CUDA "
        "host, or submit with device 'cpu' or 'auto'", queue=record.queue,
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


def _unattended(client: redis.Redis, settings: Settings, record: JobRecord, now) -> str | None:
    """Why no process runs this running job any more, or None while one may."""
    if leases.holder(client, record.id) is not None:
        client.delete(keys.job_lease_missing(record.id))
        return None
    if not instance_alive(client, record.worker, record.worker_instance):
        return f"the worker running this job ({record.worker}) stopped heartbeating"
    missing = keys.job_lease_missing(record.id)
    client.set(missing, now.timestamp(), nx=True, ex=max(60, int(10 * (settings.job_lease_grace_s + settings.sweep_interval_s))))
    since = float(client.get(missing) or now.timestamp())
    if now.timestamp() - since < settings.job_lease_grace_s:
        return None
    client.delete(missing)
    return (f"its worker ({record.worker}) is alive but no process has run this job for "
            f"{now.timestamp() - since:.0f} s (its lease lapsed)")


def _lost(jobs: JobRepository, store: ArtifactStore, settings: Settings, record: JobRecord, enqueue: Enqueue, done,
          reason: str) -> None:
    lost_worker, lost_attempt = record.worker_instance, record.attempts

    def change(r: JobRecord) -> None:
        if r.state != JobState.running or r.worker_instance != lost_worker or r.attempts != lost_attempt:
            raise NoChange  # someone else moved it meanwhile
        if r.attempts >= settings.max_attempts:
            r.state = JobState.failed
            r.finished_at = utcnow()
            r.error = WorkerLost(f"{reason}; {r.attempts} of max_attempts={settings.max_attempts} attempts used").to_problem()
        else:
            r.state = JobState.queued
            r.progress = Progress(phase="queued", fraction=0.0, message=f"requeued: {reason} (attempt {r.attempts})")
        r.worker_instance = None

    updated = jobs.update(record.id, change)
    if updated is None:
        return
    store.remove_area(record.id, "outputs")
    if updated.state == JobState.queued:
        enqueue(record.id, updated.queue)
        done["requeued"].append(record.id)
        log.warning("sweeper: job %s requeued: %s", record.id, reason)
    else:
        done["failed"].append(record.id)
        log.warning("sweeper: job %s failed after %d attempts: %s", record.id, updated.attempts, reason)


def sweeper_loop(settings: Settings, stop: threading.Event) -> None:
    from modelpress_core.queue import enqueue_job
    from worker.celery_app import app
    from worker.lifecycle import INSTANCE

    client = redis_client(settings.redis_url, retry_s=settings.redis_retry_s, socket_timeout=10)
    jobs = JobRepository(client)
    store = make_store(settings)

    def enqueue(job_id: str, queue: str) -> None:
        enqueue_job(settings.redis_url, job_id, queue)

    def revoke(job_id: str) -> None:
        app.control.revoke(job_id, terminate=True, signal="SIGTERM")

    period_ms = max(100, int(settings.sweep_interval_s * 1000 * 0.9))
    next_scan = time.monotonic() + ORPHAN_SCAN_S  # the first scan ran at worker start
    while not stop.wait(settings.sweep_interval_s):
        if time.monotonic() >= next_scan:  # host-local files: every worker, not only the lock holder
            next_scan = time.monotonic() + ORPHAN_SCAN_S
            remove_orphans(settings)
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


def remove_orphans(settings: Settings) -> None:
    """Job folders in this host's temp dir that no live run holds, and stale staging files of a local store."""
    try:
        remove_orphan_workdirs()
        if settings.artifact_store == "local":
            remove_stale_staging(settings.artifacts_path)
    except Exception:
        log.exception("could not remove orphaned job folders")
