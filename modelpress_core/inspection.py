"""Ask a live worker whether an upload's state_dict fits the named architecture.

The API never imports torch, so it sends the upload's tensor names and shapes
(from the safetensors header) to the workers' inspector thread over Redis and
waits briefly for the answer. With no worker answering in time, the check is
skipped and the worker's strict load decides (the job then fails with a reason).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import redis

from modelpress_core.storage import keys


def inspect_state_dict(
    client: redis.Redis, architecture: str, config: dict[str, Any], shapes: dict[str, list[int]] | None, timeout_s: float,
    steps: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Return the worker's report ``{ok, error?, missing, unexpected, mismatched, suggestions}`` or None.

    With ``shapes`` None only the architecture name and config are checked (a distillation student).
    With ``steps`` (the spec's steps as JSON) the worker also says which cannot apply to the architecture
    (``error_type`` "steps", ``errors`` one per step).
    """
    if timeout_s <= 0 or not client.keys(keys.worker_heartbeat_pattern()):
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
