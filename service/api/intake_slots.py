"""A cap on the upload checks running at once in this API process.

The checks (zip streaming, CRCs, pickle walk, header parsing) are CPU work in the request's
threadpool thread. ``IntakeSlots`` lets ``size`` of them run and ``size`` more wait up to
``wait_s`` for a slot; any request beyond that, or one that waited out ``wait_s``, gets 503
``unavailable`` with ``Retry-After``. So a burst of uploads neither starves the CPU nor holds more
than ``2 x size`` of the threadpool's threads, and ``/healthz`` and ``GET /jobs/{id}`` keep answering.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from modelpress_core.errors import Unavailable


class IntakeSlots:
    def __init__(self, size: int, wait_s: float):
        self.size = size
        self.wait_s = wait_s
        self._slots = threading.Semaphore(size)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.refused = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            admitted = self.running + self.waiting < 2 * self.size
            if admitted:
                self.waiting += 1
            else:
                self.refused += 1
        if not admitted:
            raise self._busy()
        acquired = self._slots.acquire(timeout=self.wait_s)
        with self._lock:
            self.waiting -= 1
            if acquired:
                self.running += 1
            else:
                self.refused += 1
        if not acquired:
            raise self._busy()
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()

    def _busy(self) -> Unavailable:
        return Unavailable(
            f"{self.size} uploads are being checked and more are waiting (MODELPRESS_MAX_CONCURRENT_INSPECTIONS); "
            "nothing was kept, retry shortly",
            retry_after_s=max(1, math.ceil(self.wait_s)),
        )


class IntakeSlotsCollector:
    """``modelpress_intake_checks_running`` / ``_waiting`` and ``modelpress_intake_checks_refused_total``, this process."""

    def __init__(self, slots: IntakeSlots):
        self.slots = slots

    def collect(self):
        for name, value, doc in (
            ("running", self.slots.running, "Upload checks running now in this API process"),
            ("waiting", self.slots.waiting, "Uploads waiting for a check slot in this API process"),
        ):
            family = GaugeMetricFamily(f"modelpress_intake_checks_{name}", doc)
            family.add_metric([], value)
            yield family
        refused = CounterMetricFamily("modelpress_intake_checks_refused", "Uploads refused with 503 for want of a check slot (this process, since start)")
        refused.add_metric([], self.slots.refused)
        yield refused
