"""Which workers are alive and what they have, read from their heartbeats. No torch, no Celery.

A worker's main process refreshes ``mp:worker:<name>`` (a JSON description with a TTL of three
heartbeat periods) and its score in ``mp:workers:<queue>`` for every queue it consumes. A worker is
live while its heartbeat key exists.
"""

from __future__ import annotations

import json
import time

import redis

from modelpress_core.storage import keys

QUEUE_WORDS = {"cpu": "CPU", "gpu": "GPU"}


def live_workers(client: redis.Redis, queues: tuple[str, ...] = ("cpu", "gpu")) -> list[dict]:
    """Descriptions of the live workers consuming any of ``queues``, each with ``heartbeat_age_s``."""
    names: set[str] = set()
    for queue in queues:
        names.update(n.decode() if isinstance(n, bytes) else n for n in client.zrange(keys.queue_workers(queue), 0, -1))
    if not names:
        return []
    ordered = sorted(names)
    now = time.time()
    workers = []
    for raw in client.mget([keys.worker_heartbeat(n) for n in ordered]):
        if raw is None:
            continue
        try:
            described = json.loads(raw)
        except ValueError:
            continue
        described["heartbeat_age_s"] = round(max(0.0, now - float(described.get("seen_at", now))), 2)
        workers.append(described)
    return workers


def consumers(client: redis.Redis, queue: str) -> list[dict]:
    return [w for w in live_workers(client, (queue,)) if queue in w.get("queues", [])]


def gpu_available(client: redis.Redis) -> bool:
    """A live worker consumes the gpu queue and advertises a CUDA device."""
    return any(w.get("cuda") for w in consumers(client, "gpu"))


def waiting_reason(client: redis.Redis, queue: str) -> str | None:
    """Why a queued job on ``queue`` cannot start now, or None when a worker consumes that queue."""
    if consumers(client, queue):
        return None
    return f"no live {QUEUE_WORDS.get(queue, queue)} worker (queue {queue})"


def last_seen(client: redis.Redis, queue: str) -> float | None:
    """When a worker consuming ``queue`` last sent a heartbeat (unix s), if ever."""
    top = client.zrevrange(keys.queue_workers(queue), 0, 0, withscores=True)
    return float(top[0][1]) if top else None


def record_heartbeat(client: redis.Redis, name: str, queues: list[str], description: dict, ttl_s: int) -> None:
    """One heartbeat (the worker side): the description with a TTL, and the per-queue index."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.set(keys.worker_heartbeat(name), json.dumps({**description, "seen_at": now}), ex=ttl_s)
    for queue in queues:
        pipe.zadd(keys.queue_workers(queue), {name: now})
        pipe.zremrangebyscore(keys.queue_workers(queue), 0, now - 7 * 24 * 3600)  # forget long-gone names
    pipe.execute()


def forget(client: redis.Redis, name: str) -> None:
    """A worker shutting down cleanly: drop its heartbeat (its index score stays: 'last seen')."""
    client.delete(keys.worker_heartbeat(name))
