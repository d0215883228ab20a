"""The lease a pool process holds while it runs a job (``service/storage/leases.py``), kept by a thread.

The thread refreshes the lease every heartbeat. When another run has taken the job over (a
redelivery or a sweeper requeue after this run looked lost, e.g. across a long Redis outage), the
refresh says so and ``check()`` raises ``JobSuperseded`` at the job's next progress report or
cancel check: the run stops without touching the record or the outputs, which are the new run's.
"""

from __future__ import annotations

import logging
import threading

import redis

from service.storage import leases
from service.storage.leases import Holder

log = logging.getLogger("modelpress.worker")


class JobSuperseded(Exception):
    """Another run holds the job now; this one must stop and leave the record alone."""


class JobLease:
    def __init__(self, client: redis.Redis, job_id: str, instance: str, heartbeat_s: float):
        self.client, self.job_id = client, job_id
        self.me = Holder.here(instance)
        self.period_s, self.ttl_s = heartbeat_s, 3 * heartbeat_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, pipe) -> None:
        """Queue the lease write into the claim's MULTI (``pipe``)."""
        leases.take(pipe, self.job_id, self.me, self.ttl_s)

    def keep(self) -> "JobLease":
        """Refresh it from a thread until ``release()``."""
        self._thread = threading.Thread(target=self._keep, daemon=True, name=f"lease-{self.job_id}")
        self._thread.start()
        return self

    def _keep(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                if not leases.refresh(self.client, self.job_id, self.me, self.ttl_s):
                    log.warning("job %s: another run holds its lease now; this run stops", self.job_id)
                    self.lost.set()
                    return
            except redis.RedisError:
                log.warning("job %s: could not refresh its lease (redis unavailable)", self.job_id)

    def check(self) -> None:
        if self.lost.is_set():
            raise JobSuperseded(f"job {self.job_id} was taken over by another run")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self.lost.is_set():
            return
        try:
            leases.release(self.client, self.job_id, self.me)
        except redis.RedisError:
            log.warning("job %s: could not release its lease; it lapses in %g s", self.job_id, self.ttl_s)
