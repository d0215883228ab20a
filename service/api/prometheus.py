"""Prometheus metrics of the service, `GET /metrics` (text exposition format).

Job gauges and the duration histogram are computed from the job records in Redis at scrape time,
so every API replica reports the same numbers and a restart loses nothing. The two counters
(upload bytes, submitted jobs) are Redis integers too (``INCRBY``): correct with several uvicorn
worker processes behind one port and with several API hosts, which a per-process registry is not
(a scrape would see one random process). Queue depth is the length of Celery's Redis lists.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from service.api.deps import get_tenant
from modelpress_core.job import JobRecord, JobState
from modelpress_core.queue import QUEUES
from modelpress_core.storage import keys

log = logging.getLogger("modelpress.api")

router = APIRouter(tags=["health"])

DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
SCAN_LIMIT = 10_000  # newest job records read per scrape


def method_label(spec: dict) -> str:
    """The spec's methods in order, e.g. ``prune+quantize``."""
    return "+".join(step.get("method", "?") for step in spec.get("steps", [])) or "none"


def _duration(record: JobRecord) -> float | None:
    if record.state not in (JobState.succeeded, JobState.failed) or not record.started_at or not record.finished_at:
        return None
    return max(0.0, (record.finished_at - record.started_at).total_seconds())


class RedisCollector:
    def __init__(self, app, counters=()):
        self.app = app
        self.counters = counters

    def _records(self, client):
        ids = client.zrevrange(keys.jobs_index(), 0, SCAN_LIMIT - 1)
        for start in range(0, len(ids), 500):
            chunk = [i.decode() if isinstance(i, bytes) else i for i in ids[start:start + 500]]
            for raw in client.mget([keys.job(i) for i in chunk]):
                if raw is not None:
                    yield JobRecord.model_validate_json(raw)

    def collect(self):
        client = getattr(self.app.state, "redis", None)
        up = GaugeMetricFamily("modelpress_redis_up", "1 when Redis answered this scrape")
        if client is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            states = {s.value: 0 for s in JobState}
            durations: dict[str, list[float]] = {}
            for record in self._records(client):
                states[record.state.value] += 1
                seconds = _duration(record)
                if seconds is not None:
                    durations.setdefault(method_label(record.spec), []).append(seconds)
            depths = {queue: client.llen(keys.celery_queue(queue)) for queue in sorted(set(QUEUES.values()))}
            counters = [c.family(client) for c in self.counters]
        except Exception as exc:  # noqa: BLE001 - a scrape must answer even when Redis does not
            log.warning("metrics scrape: redis failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("modelpress_jobs", "Jobs by state (newest 10000 records)", labels=["state"])
        for state, count in states.items():
            jobs.add_metric([state], count)
        yield jobs
        hist = HistogramMetricFamily("modelpress_job_duration_seconds",
                                     "Running time (started to finished) of succeeded and failed jobs, by method",
                                     labels=["method"])
        for method, values in sorted(durations.items()):
            buckets = [(("+Inf" if b == float("inf") else str(b)), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
            hist.add_metric([method], buckets, sum_value=sum(values))
        yield hist
        depth = GaugeMetricFamily("modelpress_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        for queue, n in depths.items():
            depth.add_metric([queue], n)
        yield depth
        yield from counters


class RedisCounter:
    """A service-wide counter kept in Redis; ``inc`` never fails a request."""

    def __init__(self, app, name: str, documentation: str):
        self.app, self.name, self.documentation = app, name, documentation

    def inc(self, amount: float = 1) -> None:
        try:
            self.app.state.redis.incrby(keys.stat_counter(self.name), int(amount))
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: could not count %s: %s", self.name, exc)

    def family(self, client) -> CounterMetricFamily:
        family = CounterMetricFamily(f"modelpress_{self.name}", self.documentation)
        family.add_metric([], float(client.get(keys.stat_counter(self.name)) or 0))
        return family


class ServiceMetrics:
    """The app's own registry (not the global one: several apps may live in one process)."""

    def __init__(self, app):
        self.registry = CollectorRegistry(auto_describe=False)
        self.upload_bytes = RedisCounter(app, "upload_bytes", "Bytes of uploads received by POST /jobs (all API processes)")
        self.submitted = RedisCounter(app, "jobs_submitted", "Jobs accepted by POST /jobs (all API processes)")
        self.registry.register(RedisCollector(app, counters=(self.upload_bytes, self.submitted)))


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text exposition format)",
            responses={200: {"content": {"text/plain": {}}}}, dependencies=[Depends(get_tenant)])
def prometheus_metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.prom.registry), media_type=CONTENT_TYPE_LATEST)

