"""Submitting and reading jobs."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from modelpress_core.job import TERMINAL, JobState
from modelpress_core.lifecycle import cancel_job, expire_job
from service.api.deps import JobsDep, RedisDep, SettingsDep, StoreDep, TenantDep
from service.api.views import JobPage, JobView, Problem, job_view_json
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import tenant_record
from modelpress_core.storage.workers import waiting_reason
from modelpress_core.submit import SubmitContext, SubmitRequest, submit

log = logging.getLogger("modelpress.api")

router = APIRouter(tags=["jobs"])

PROBLEMS = {
    401: {"model": Problem, "description": "Missing, unknown or revoked API key (with WWW-Authenticate)"},
    404: {"model": Problem, "description": "Unknown job"},
    409: {"model": Problem, "description": "Idempotency-Key reused with a different request"},
    413: {"model": Problem, "description": "Upload over the size limit, or its checks over the CPU budget (MODELPRESS_INSPECTION_CPU_S)"},
    415: {"model": Problem, "description": "Unsupported model format"},
    422: {"model": Problem, "description": "Invalid spec or unusable upload"},
    429: {"model": Problem, "description": "With Retry-After: the tenant's submission rate (rate-limited) or unfinished-job "
          "limit (tenant-job-limit) is reached, or too many jobs are queued (too-many-jobs)"},
    503: {"model": Problem, "description": "Redis or the queue is unavailable, or (with Retry-After) too many uploads are being checked"},
}


def base_url(request: Request, settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


IDEMPOTENCY_KEY_MAX = 255


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobView,
    responses={200: {"model": JobView, "description": "Idempotency-Key replay: the job created by the first request"}, **PROBLEMS},
    summary="Submit a compression job",
)
def submit_job(
    request: Request,
    settings: SettingsDep,
    redis_client: RedisDep,
    jobs: JobsDep,
    store: StoreDep,
    model: Annotated[UploadFile, File(description="The model: a safetensors state_dict or a TorchScript archive.")],
    spec: Annotated[str, Form(description="The job spec as JSON text (see the README, 'The job spec').")],
    calibration: Annotated[UploadFile | None, File(description="Calibration data: .npz or safetensors with 'inputs'.")] = None,
    train: Annotated[UploadFile | None, File(description="Training data: 'inputs' and optional 'labels'.")] = None,
    eval: Annotated[
        UploadFile | None, File(description="Evaluation data: 'inputs' and optional 'labels' (accuracy before/after).")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=IDEMPOTENCY_KEY_MAX, description="Retry-safe submission: the same key and the same request return the same job."),
    ] = None,
):
    # the HTTP edge of the submit use case (modelpress_core/submit.py): form parts in, a JobView out
    parts = {"calibration": calibration, "train": train, "eval": eval}
    submitted = submit(
        SubmitRequest(tenant=jobs.tenant, spec=spec, model=model.file,
                      data={part: upload.file for part, upload in parts.items() if upload is not None},
                      idempotency_key=idempotency_key),
        SubmitContext(settings=settings, redis=redis_client, jobs=jobs, store=store,
                      check_slot=request.app.state.intake_slots.hold,
                      count_upload_bytes=request.app.state.prom.upload_bytes.inc),
    )
    if not submitted.replayed:
        request.app.state.prom.submitted.inc()
    view = JobView.of(submitted.record, base_url(request, settings))
    return JSONResponse(view.model_dump(mode="json"), status_code=200 if submitted.replayed else 202,
                        headers={"Location": view.links.self})


@router.get("/jobs", response_model=JobPage, responses={401: PROBLEMS[401]}, summary="List the tenant's jobs, newest first")
def list_jobs(
    request: Request,
    settings: SettingsDep,
    jobs: JobsDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[int, Query(ge=0, le=2**31 - 1, description="From a previous page's next_cursor.")] = 0,
):
    records, next_cursor = jobs.list(state=state, limit=limit, cursor=cursor)
    base = base_url(request, settings)
    return JobPage(items=[JobView.of(r, base) for r in records], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", response_model=JobView, responses={401: PROBLEMS[401], 404: PROBLEMS[404]}, summary="A job's state, progress and results")
async def get_job(job_id: str, request: Request, tenant: TenantDep) -> Response:
    # async on the asyncio Redis client, the view serialized once: no thread hop, no model round trips
    record = tenant_record(await request.app.state.aredis.get(keys.job(job_id)), job_id, tenant)
    waiting = None
    if record.state == JobState.queued:
        waiting = await run_in_threadpool(waiting_reason, request.app.state.redis, record.queue)
    return Response(job_view_json(record, base_url(request, request.app.state.settings), waiting), media_type="application/json")


CANCEL_RESPONSES = {
    200: {"model": JobView, "description": "Cancelled (it was queued), or purged (it had finished)"},
    401: PROBLEMS[401],
    404: PROBLEMS[404],
    409: {"model": Problem, "description": "The job has already finished (cancel), or has not (purge)"},
}


def _cancel(job_id: str, request: Request, settings, jobs, store) -> JSONResponse:
    record = cancel_job(jobs, store, job_id)
    view = JobView.of(record, base_url(request, settings))
    return JSONResponse(view.model_dump(mode="json"), status_code=200 if record.terminal else 202)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobView,
    responses=CANCEL_RESPONSES,
    summary="Cancel a job: queued -> cancelled now; running -> cancelling, then cancelled",
)
def cancel(job_id: str, request: Request, settings: SettingsDep, jobs: JobsDep, store: StoreDep):
    return _cancel(job_id, request, settings, jobs, store)


@router.delete(
    "/jobs/{job_id}",
    status_code=202,
    response_model=JobView,
    responses=CANCEL_RESPONSES,
    summary="Cancel a job; with ?purge=true remove a finished job's files now (state expired, record kept)",
)
def delete_job(
    job_id: str,
    request: Request,
    settings: SettingsDep,
    jobs: JobsDep,
    store: StoreDep,
    purge: Annotated[bool, Query(description="On a finished job: remove its inputs and artifacts now.")] = False,
):
    record = jobs.get(job_id)
    if purge and record.state in TERMINAL:
        record = expire_job(jobs, store, job_id, record_ttl_s=settings.record_ttl_s, reason="purged on request") or jobs.get(job_id)
        return JSONResponse(JobView.of(record, base_url(request, settings)).model_dump(mode="json"), status_code=200)
    return _cancel(job_id, request, settings, jobs, store)
