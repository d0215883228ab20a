"""What a worker does besides running jobs: heartbeat, catalog, upload inspection.

On ``worker_ready`` (main process) it starts three daemon threads:
- heartbeat: refreshes ``mp:worker:<hostname>`` (with a TTL) describing this worker, including
  ``instance``: an id made once per main process (pool children inherit it), so a restarted worker
  with the same name is told apart from the one that died; and the lease of every job its pool
  processes run (``worker/lease.py``);
- inspector: answers the API's "does this state_dict fit that architecture?" requests;
- sweeper: requeues jobs no process runs any more, finishes stuck cancels, expires old artifacts,
  removes orphaned job folders (``worker/sweeper.py``; the folders also once here, at start).
It also publishes the architecture catalog so the API can validate names and list them.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
import uuid

import redis
from celery.signals import worker_ready, worker_shutdown

from modelpress_core.config import get_settings
from modelpress_core.storage import keys
from modelpress_core.storage.connection import redis_client
from modelpress_core.storage.workers import forget, record_heartbeat

log = logging.getLogger("modelpress.worker")

_stop = threading.Event()
_identity: dict = {}

INSTANCE = uuid.uuid4().hex  # made in the main process at import, before the pool forks


def cuda_description() -> dict | None:
    """The CUDA devices this worker sees (name, memory), or None without CUDA."""
    import torch

    try:
        if not torch.cuda.is_available():
            return None
        devices = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"index": i, "name": props.name, "memory_bytes": int(props.total_memory),
                            "capability": f"{props.major}.{props.minor}"})
        return {"devices": devices, "count": len(devices), "cuda_version": torch.version.cuda}
    except Exception as exc:  # noqa: BLE001 - a broken driver reads as no CUDA, with the reason in the log
        log.warning("CUDA is present but unusable: %s", exc)
        return None


def worker_description(queues: list[str]) -> dict:
    import torch

    return {
        "name": _identity.get("name"),
        "instance": INSTANCE,
        "queues": queues,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": cuda_description(),
        "started_at": _identity.get("started_at"),
    }


def publish_catalog(client: redis.Redis) -> None:
    from modelpress_torch.architectures import list_architectures

    catalog = {"architectures": {a.name: a.describe() for a in list_architectures()}}
    client.set(keys.catalog(), json.dumps(catalog))


def _heartbeat_loop(client: redis.Redis, description: dict, period: float) -> None:
    from worker.lease import refresh_active

    while not _stop.is_set():
        try:
            record_heartbeat(client, description["name"], description["queues"], description, ttl_s=max(3, int(period * 3)))
            refresh_active(client, INSTANCE, period)
        except redis.RedisError:
            log.warning("heartbeat: redis unavailable")
        _stop.wait(period)


def _inspector_loop(client: redis.Redis) -> None:
    from modelpress_core.inspection import publish_shapes, publish_step_verdict
    from worker.inspector import answer, warm_up

    def publish(name: str, config: dict, shapes: dict) -> None:
        try:
            publish_shapes(client, name, config, shapes)
        except redis.RedisError:
            log.warning("inspector: could not publish the shapes of %s", name)

    warm_up(publish)
    while not _stop.is_set():
        try:
            item = client.blpop([keys.inspect_requests()], timeout=1)
        except redis.RedisError:
            _stop.wait(1)
            continue
        if item is None:
            continue
        try:
            request = json.loads(item[1])
        except ValueError:
            continue
        try:
            reply = answer(request, publish)
        except Exception as exc:  # answer anyway, so the API does not wait; the strict load decides later
            log.exception("inspector: could not check an upload")
            reply = {"ok": None, "skipped": f"{type(exc).__name__}: {exc}"}
        if request.get("steps") and (reply.get("ok") is True or reply.get("error_type") == "steps"):
            try:  # the shapes fit and the steps were judged: the next identical submit needs no round trip
                verdict = {"ok": True} if reply.get("ok") is True else {k: reply[k] for k in ("ok", "error_type", "error", "errors") if k in reply}
                publish_step_verdict(client, request["architecture"], request.get("config") or {}, request["steps"], verdict)
            except redis.RedisError:
                log.warning("inspector: could not publish a step verdict")
        try:
            client.rpush(keys.inspect_reply(request["id"]), json.dumps(reply))
            client.expire(keys.inspect_reply(request["id"]), 30)
        except redis.RedisError:
            log.warning("inspector: could not reply")


@worker_ready.connect
def on_worker_ready(sender=None, **_):
    settings = get_settings()
    from worker.sweeper import remove_orphans, sweeper_loop

    remove_orphans(settings)  # what runs killed before this start left behind
    client = redis_client(settings.redis_url, retry_s=settings.redis_retry_s, socket_timeout=10)
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender else []
    _identity.update(name=getattr(sender, "hostname", socket.gethostname()), started_at=time.time())
    publish_catalog(client)
    description = worker_description(queues)
    threading.Thread(target=_heartbeat_loop, args=(client, description, settings.worker_heartbeat_s), daemon=True, name="heartbeat").start()
    threading.Thread(target=_inspector_loop, args=(client,), daemon=True, name="inspector").start()
    threading.Thread(target=sweeper_loop, args=(settings, _stop), daemon=True, name="sweeper").start()
    log.info("modelpress worker %s ready on queues %s", description["name"], queues)


@worker_shutdown.connect
def on_worker_shutdown(sender=None, **_):
    _stop.set()
    name = _identity.get("name")
    if name:
        try:
            forget(redis.Redis.from_url(get_settings().redis_url, socket_timeout=5), name)
        except redis.RedisError:
            pass
