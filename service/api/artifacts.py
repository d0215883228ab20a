"""Downloading a finished job's artifacts and metrics."""

from __future__ import annotations

import base64
import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from service.api.deps import JobsDep, SettingsDep, StoreDep
from service.api.views import Problem
from modelpress_core.errors import JobExpired, JobNotFinished
from modelpress_core.job import JobRecord, JobState
from service.report import render_report
from modelpress_core.storage.artifacts import ArtifactNotFound

router = APIRouter(tags=["artifacts"])

METRICS_FILE = "metrics.json"


def _require_succeeded(record: JobRecord) -> None:
    if record.state == JobState.expired:
        raise JobExpired(f"job {record.id} expired: {record.progress.message or 'its files were removed'}", state="expired")
    if record.state != JobState.succeeded:
        raise JobNotFinished(
            f"job {record.id} is {record.state.value}; artifacts and metrics exist once it has succeeded",
            state=record.state.value,
        )


@router.get(
    "/jobs/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file, with Content-Length and Repr-Digest"},
        401: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem, "description": "The job has not succeeded"},
        410: {"model": Problem, "description": "The job's files were removed (retention or purge)"},
    },
    summary="Download one artifact",
)
def download_artifact(job_id: str, name: str, jobs: JobsDep, store: StoreDep):
    record = jobs.get(job_id)
    _require_succeeded(record)
    info = next((a for a in record.artifacts if a.name == name), None)
    if info is None:
        raise ArtifactNotFound(f"job {job_id} has no artifact {name!r}; it has: {', '.join(a.name for a in record.artifacts)}")
    digest = base64.b64encode(bytes.fromhex(info.sha256)).decode()
    size, chunks = store.stream(job_id, "outputs", name)  # one read: the length is the streamed object's
    headers = {
        "Content-Length": str(size),
        "Repr-Digest": f"sha-256=:{digest}:",
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    return StreamingResponse(chunks, media_type=info.media_type, headers=headers)


@router.get(
    "/jobs/{job_id}/metrics",
    responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}, 410: {"model": Problem}},
    summary="The job's full metrics (size, latency, fidelity before and after)",
)
def get_metrics(job_id: str, jobs: JobsDep, store: StoreDep) -> JSONResponse:
    record = jobs.get(job_id)
    _require_succeeded(record)
    with store.open(job_id, "outputs", METRICS_FILE) as f:
        return JSONResponse(json.load(f))


@router.get(
    "/jobs/{job_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "A self-contained HTML page (inline SVG, no scripts)"},
               401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem}},
    summary="The job's human report: verdict, summary, per-layer and latency plots",
)
def get_report(job_id: str, request: Request, jobs: JobsDep, store: StoreDep, settings: SettingsDep, download: bool = False) -> HTMLResponse:
    record = jobs.get(job_id)
    _require_succeeded(record)
    with store.open(job_id, "outputs", METRICS_FILE) as f:
        metrics = json.load(f)
    base = (settings.public_url or str(request.base_url)).rstrip("/") + f"/jobs/{job_id}"
    links = {a.name: f"{base}/artifacts/{a.name}" for a in record.artifacts} | {"metrics": f"{base}/metrics"}
    html = render_report(record.model_dump(mode="json"), metrics, links)
    headers = {"Content-Disposition": f'attachment; filename="{job_id}-report.html"'} if download else {}
    return HTMLResponse(html, headers=headers)
