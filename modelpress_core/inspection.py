"""Does an upload's state_dict fit the named architecture? Answered from Redis when it can be, else by a live worker.

Building an architecture to learn its state_dict shapes needs torch, which the API never imports.
Workers therefore publish the expected shapes of each (architecture, config) they know under
``keys.expected_shapes(shapes_digest(architecture, config))``: every zoo architecture's default
config at start-up, and every config a worker has been asked about since. The API then:

1. reads the published shapes; when the upload's shapes equal them, it fits: no round trip;
2. otherwise (an unseen config, or shapes that differ and need the worker's full report with
   suggestions) sends the tensor names and shapes to the workers' inspector thread over Redis and
   waits up to ``MODELPRESS_INSPECT_TIMEOUT_S`` for the answer. With no live worker (read from the
   per-queue worker sets and heartbeat keys, never a ``KEYS`` scan) or no answer in time, the check
   is skipped and the worker's strict load decides (the job then fails with a reason).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import redis

from modelpress_core.storage import keys
from modelpress_core.storage.workers import live_workers

SHAPES_TTL_S = 7 * 24 * 3600  # a worker republishes the defaults at start-up; other configs age out


def shapes_digest(architecture: str, config: dict[str, Any]) -> str:
    """The cache identity of one (architecture, config): sha256 of their canonical JSON."""
    return hashlib.sha256(json.dumps([architecture, config], sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def step_digest(architecture: str, config: dict[str, Any], steps: list[dict[str, Any]]) -> str:
    """The cache identity of one (architecture, config, steps) applicability answer."""
    return hashlib.sha256(json.dumps([architecture, config, steps], sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def publish_step_verdict(client: redis.Redis, architecture: str, config: dict[str, Any], steps: list[dict[str, Any]],
                         verdict: dict[str, Any]) -> None:
    """The worker side: whether ``steps`` apply to (architecture, config) (``{"ok": True}`` or the steps problem)."""
    client.set(keys.step_verdict(step_digest(architecture, config, steps)), json.dumps(verdict), ex=SHAPES_TTL_S)


def publish_shapes(client: redis.Redis, architecture: str, config: dict[str, Any], shapes: dict[str, list[int]]) -> None:
    """The worker side: what (architecture, config) builds, for the API to compare uploads against."""
    client.set(keys.expected_shapes(shapes_digest(architecture, config)), json.dumps(shapes), ex=SHAPES_TTL_S)


def published_shapes(client: redis.Redis, architecture: str, config: dict[str, Any]) -> dict[str, list[int]] | None:
    raw = client.get(keys.expected_shapes(shapes_digest(architecture, config)))
    return json.loads(raw) if raw else None


def inspect_state_dict(
    client: redis.Redis, architecture: str, config: dict[str, Any], shapes: dict[str, list[int]] | None, timeout_s: float,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Return the report ``{ok, error?, missing, unexpected, mismatched, suggestions}`` or None (not checked).

    With ``shapes`` None only the architecture name and config are checked (a distillation student).
    With ``steps`` (the spec's steps as JSON) the worker also says which cannot apply to the architecture
    (``error_type`` "steps", ``errors`` one per step).
    """
    expected = published_shapes(client, architecture, config)
    if expected is not None and (shapes is None or {k: list(v) for k, v in shapes.items()} == expected):
        if not steps:
            return {"ok": True, "answered_by": "published shapes"}
        # whether the steps apply needs the model built (a worker); its answer for these very steps is cached
        raw = client.get(keys.step_verdict(step_digest(architecture, config, steps)))
        if raw is not None:
            return {**json.loads(raw), "answered_by": "published shapes and step verdict"}
    if timeout_s <= 0 or not live_workers(client):
        return None
    request_id = secrets.token_hex(8)
    request = {"id": request_id, "architecture": architecture, "config": config, "shapes": shapes, "steps": steps}
    client.rpush(keys.inspect_requests(), json.dumps(request))
    client.expire(keys.inspect_requests(), 60)
    reply = client.blpop([keys.inspect_reply(request_id)], timeout=timeout_s)
    if reply is None:
        client.lrem(keys.inspect_requests(), 1, json.dumps(request))
        return None
    return json.loads(reply[1])


def read_catalog(client: redis.Redis) -> dict[str, Any] | None:
    raw = client.get(keys.catalog())
    return json.loads(raw) if raw else None
