"""What this deployment can do: ``GET /capabilities`` (the static table) and ``GET /architectures``
(the zoo, as the workers published it to Redis)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import RedisDep
from service.api.views import Problem
from modelpress_core import capabilities
from modelpress_core.errors import Unavailable
from modelpress_core.inspection import read_catalog

router = APIRouter(tags=["capabilities"])


@router.get("/capabilities", summary="Methods x kinds x input formats x devices x data, and each step's JSON schema")
def get_capabilities() -> dict[str, Any]:
    return capabilities.table()


@router.get(
    "/architectures",
    summary="The architecture zoo: config schema and default input of each, as the workers publish it",
    responses={503: {"model": Problem, "description": "No worker has published its catalog yet"}},
)
def get_architectures(redis_client: RedisDep) -> dict[str, Any]:
    try:
        catalog = read_catalog(redis_client)
    except Exception as exc:
        raise Unavailable(f"redis does not answer: {type(exc).__name__}") from exc
    if catalog is None:
        raise Unavailable("no worker has published its architecture catalog yet; start a worker and retry")
    return catalog
