"""The Celery app: Redis broker, late acks, one job at a time per process, time limits.

Started with: ``celery -A worker.celery_app worker -Q cpu`` (or ``-Q gpu`` on a CUDA host).
"""

from __future__ import annotations

from celery import Celery

from modelpress_core.config import get_settings
from modelpress_core.queue import CELERY_QUEUES

settings = get_settings()

app = Celery("modelpress", broker=settings.redis_url, include=["worker.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_soft_time_limit=settings.job_soft_time_limit_s,
    task_time_limit=settings.job_time_limit_s,
    broker_transport_options={"visibility_timeout": settings.job_time_limit_s + 600},
    broker_connection_retry_on_startup=True,
    task_queues=CELERY_QUEUES,
    task_default_queue="cpu",
    task_default_exchange="cpu",
    task_default_routing_key="cpu",
    worker_concurrency=settings.worker_concurrency,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    # a pool process over the cap is replaced after its task (KiB); the per-job guard (worker/guard.py) stops the task itself
    worker_proc_alive_timeout=120,  # a new pool process imports torch first (worker.tasks._preload); slow on a busy host
    worker_max_memory_per_child=settings.worker_max_memory_mb * 1024 or None,
)

import worker.lifecycle  # noqa: E402,F401  (worker_ready / shutdown hooks: heartbeat, catalog, inspector)
