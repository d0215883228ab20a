"""Liveness and readiness."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RedisDep
from service.storage import keys

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and at least one worker is alive")
def readyz(redis_client: RedisDep) -> JSONResponse:
    try:
        redis_client.ping()
        workers = [json.loads(v) for v in _values(redis_client)]
    except Exception as exc:
        return _not_ready(f"redis does not answer: {type(exc).__name__}")
    if not workers:
        return _not_ready("no worker is alive (none has sent a heartbeat recently)", workers=[])
    return JSONResponse({"status": "ready", "redis": "ok", "workers": workers})


def _values(client) -> list[bytes]:
    names = list(client.scan_iter(match=keys.worker_heartbeat_pattern(), count=100))
    return [v for v in client.mget(names) if v] if names else []


def _not_ready(detail: str, **extra) -> JSONResponse:
    problem = {
        "type": "https://modelpress.dev/problems/not-ready",
        "title": "Not ready",
        "status": 503,
        "detail": detail,
        **extra,
    }
    return JSONResponse(problem, status_code=503, media_type="application/problem+json")
