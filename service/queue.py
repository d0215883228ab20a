"""Enqueue jobs by task name, on the queue the spec's device asks for. No worker code is imported."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery
from kombu import Exchange, Queue

RUN_JOB_TASK = "modelpress.run_job"
QUEUES = {"cpu": "cpu", "cuda": "gpu"}

# Each queue has its own direct exchange and routing key, declared identically by producer and
# workers; a shared exchange would copy a cpu job into the gpu list (and back).
CELERY_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in ("cpu", "gpu"))


def queue_for(device: str) -> str:
    return QUEUES[device]


@lru_cache(maxsize=4)
def producer(broker_url: str) -> Celery:
    app = Celery("modelpress-producer", broker=broker_url)
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_queues=CELERY_QUEUES,
    )
    return app


def enqueue_job(broker_url: str, job_id: str, queue: str) -> None:
    producer(broker_url).send_task(RUN_JOB_TASK, args=[job_id], task_id=job_id, queue=queue)
