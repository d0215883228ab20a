"""Published JSON schemas of the documents the service produces."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from modelpress_core.metrics import metrics_json_schema

router = APIRouter(tags=["schemas"])


@router.get("/schemas/metrics", summary="JSON schema of metrics.json (modelpress.metrics/v1)")
def metrics_schema() -> JSONResponse:
    return JSONResponse(metrics_json_schema(), media_type="application/schema+json")
