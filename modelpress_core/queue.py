"""Enqueue jobs by task name, on the queue the spec's device asks for. No worker code is imported.

Devices: ``cpu`` -> queue ``cpu``; ``cuda`` -> queue ``gpu``; ``auto`` -> ``cuda`` when a live worker
on the gpu queue advertises a CUDA device and every step can run on CUDA, else ``cpu``. The resolved
device is recorded in the job (``JobRecord.device``).
"""

from __future__ import annotations

from functools import lru_cache

import redis
from celery import Celery
from kombu import Exchange, Queue

from modelpress_core.capabilities import cuda_possible
from modelpress_core.spec import JobSpec
from modelpress_core.storage.workers import gpu_available

RUN_JOB_TASK = "modelpress.run_job"
QUEUES = {"cpu": "cpu", "cuda": "gpu"}
QUEUE_NAMES = ("cpu", "gpu")

# Each queue has its own direct exchange and routing key, declared identically by producer and
# workers; a shared exchange would copy a cpu job into the gpu list (and back).
CELERY_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUE_NAMES)


def queue_for(device: str) -> str:
    return QUEUES[device]


def resolve_device(spec: JobSpec, client: redis.Redis) -> str:
    """The device a job will run on: the spec's, or for ``auto`` what the live workers offer."""
    if spec.device != "auto":
        return spec.device
    if cuda_possible(spec.model.format, list(spec.steps)) and gpu_available(client):
        return "cuda"
    return "cpu"


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
