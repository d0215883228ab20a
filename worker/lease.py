"""Job leases on the worker side (``modelpress_core/storage/leases.py`` holds the Redis part).

The pool process that claims a job writes the lease in the claim's MULTI and deletes it when the run
ends. While the run lasts, the worker's *main* process refreshes it from its heartbeat thread for
every job Celery has active in one of its pool processes (``celery.worker.state.active_requests``):
the main process stays responsive while a job holds the GIL in a long C call (TorchScript export,
a big matmul), so a busy job never looks lost. Once Celery no longer has the task active (the pool
process died, or the task returned although its last record write failed) nobody refreshes the
lease, it lapses after three heartbeats, and the sweeper recovers the job.
"""

from __future__ import annotations

import logging
import os

import redis

from modelpress_core.queue import RUN_JOB_TASK
from modelpress_core.storage import leases
from modelpress_core.storage.leases import Holder

log = logging.getLogger("modelpress.worker")


def holder_for(instance: str, pid: int) -> Holder:
    """The lease holder of a run in pool process ``pid`` of worker ``instance``: the same whether the
    pool process (claim, release) or the main process (refresh) writes it."""
    return Holder(token=f"{instance}-{pid}", instance=instance, host=leases.this_host(), pid=pid)


class JobLease:
    """The lease of one run, in the pool process that runs it."""

    def __init__(self, client: redis.Redis, job_id: str, instance: str, heartbeat_s: float):
        self.client, self.job_id = client, job_id
        self.me = holder_for(instance, os.getpid())
        self.ttl_s = 3 * heartbeat_s

    def take(self, pipe) -> None:
        """Queue the lease write into the claim's MULTI (``pipe``)."""
        leases.take(pipe, self.job_id, self.me, self.ttl_s)

    def release(self) -> None:
        try:
            leases.release(self.client, self.job_id, self.me)
        except redis.RedisError:
            log.warning("job %s: could not release its lease; it lapses in %g s", self.job_id, self.ttl_s)


def refresh_active(client: redis.Redis, instance: str, heartbeat_s: float) -> None:
    """From the worker's main process: renew the lease of every job a pool process of ours runs now."""
    from celery.worker import state

    for request in list(state.active_requests):
        if request.name != RUN_JOB_TASK or not request.worker_pid:
            continue
        if not leases.refresh(client, request.id, holder_for(instance, request.worker_pid), 3 * heartbeat_s):
            log.warning("job %s: another run holds its lease now", request.id)
