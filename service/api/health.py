"""Liveness, readiness, and the live workers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.api.deps import RedisDep, StoreDep, TenantDep
from modelpress_core.errors import NotReady
from modelpress_core.queue import QUEUE_NAMES
from modelpress_core.storage.workers import live_workers

router = APIRouter(tags=["health"])


class CudaDevice(BaseModel):
    index: int
    name: str
    memory_bytes: int
    capability: str | None = None


class CudaInfo(BaseModel):
    devices: list[CudaDevice]
    count: int
    cuda_version: str | None = None


class WorkerView(BaseModel):
    name: str = Field(description="Celery node name, e.g. celery@host")
    host: str = Field(description="The worker's hostname")
    queues: list[str] = Field(description="Queues it consumes (cpu, gpu)")
    cuda: CudaInfo | None = Field(description="CUDA devices it sees (name, memory), or null")
    torch: str
    python: str | None = None
    pid: int | None = None
    instance: str
    started_at: float | None = None
    heartbeat_age_s: float = Field(description="Seconds since its last heartbeat")


class WorkerList(BaseModel):
    workers: list[WorkerView]
    queues: dict[str, int] = Field(description="Live workers per queue")


def _workers(redis_client) -> WorkerList:
    workers = [WorkerView.model_validate(w) for w in live_workers(redis_client, QUEUE_NAMES)]
    return WorkerList(workers=workers, queues={q: sum(q in w.queues for w in workers) for q in QUEUE_NAMES})


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict:  # no I/O: async, so no thread-pool hop
    return {"status": "ok"}


@router.get("/readyz", summary="Redis and the artifact store answer and at least one worker is alive")
def readyz(redis_client: RedisDep, store: StoreDep) -> JSONResponse:
    try:
        redis_client.ping()
        listing = _workers(redis_client)
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        return _not_ready(f"redis does not answer: {type(exc).__name__}")
    try:
        store.check()
    except Exception as exc:  # noqa: BLE001
        return _not_ready(f"the artifact store ({store.kind}) does not answer: {type(exc).__name__}: {exc}")
    workers = listing.model_dump(mode="json")["workers"]
    if not workers:
        return _not_ready("no worker is alive (none has sent a heartbeat recently)", workers=[])
    return JSONResponse({"status": "ready", "redis": "ok", "store": store.kind, "queues": listing.queues, "workers": workers})


@router.get("/workers", response_model=WorkerList, summary="Live workers: host, queues, CUDA device and memory, torch version, heartbeat age")
def list_workers(redis_client: RedisDep, _: TenantDep) -> WorkerList:
    """Any API key may read it (it names hosts, so it is not public like /readyz's short form)."""
    return _workers(redis_client)


def _not_ready(detail: str, **extra: Any) -> JSONResponse:
    problem = NotReady(detail, **extra).to_problem()
    return JSONResponse(problem, status_code=503, media_type="application/problem+json")
