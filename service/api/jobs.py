"""Submitting and reading jobs."""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import ExitStack
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from modelpress_core import intake
from modelpress_core.datafiles import array_names, check_data_file
from modelpress_core.capabilities import data_problems, goal_problems
from service.api.deps import JobsDep, RedisDep, SettingsDep, StoreDep, TenantDep
from service.api.views import JobPage, JobView, Problem, job_view_json
from modelpress_core.errors import Conflict, InvalidSpec, InvalidUpload, RateLimited, TooManyJobs, Unavailable
from modelpress_core.job import TERMINAL, ArtifactInfo, JobRecord, JobState, new_job_id, utcnow
from modelpress_core.spec import JobSpec, parse_spec
from modelpress_core.storage.private import private_dir
from modelpress_core.inspection import inspect_state_dict, read_catalog
from modelpress_core.lifecycle import cancel_job, expire_job
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import TenantJobLimit, TenantJobs, tenant_record
from modelpress_core.storage.ratelimit import SubmitRateLimiter
from modelpress_core.queue import enqueue_job, queue_for, resolve_device
from modelpress_core.storage.workers import waiting_reason

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

MODEL_INPUT_NAMES = {"safetensors": "model.safetensors", "torchscript": "model.torchscript.pt"}
DATA_EXTENSIONS = {"npz": "npz", "safetensors": "safetensors"}


def base_url(request: Request, settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


class IdempotencyKeyReused(Conflict):
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"


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
    allowed, retry_after = SubmitRateLimiter(redis_client, settings.submit_rate_per_min, settings.submit_burst).take(jobs.tenant)
    if not allowed:
        raise RateLimited(
            f"tenant {jobs.tenant!r} may submit {settings.submit_rate_per_min:g} jobs per minute, "
            f"{settings.submit_burst} at once (MODELPRESS_SUBMIT_RATE_PER_MIN, MODELPRESS_SUBMIT_BURST); retry in {retry_after} s",
            retry_after_s=retry_after,
        )
    if len(spec.encode()) > settings.max_spec_bytes:
        raise InvalidSpec(f"spec is longer than {settings.max_spec_bytes} bytes")
    job_spec = parse_spec(spec)
    parts = {"calibration": calibration, "train": train, "eval": eval}
    _check_data_needs(job_spec, {part: {"inputs", "labels"} for part, data in parts.items() if data is not None})
    staging = settings.artifacts_path / ".staging"
    private_dir(staging)
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.NamedTemporaryFile(dir=staging, prefix="upload-", delete=True))
        model_sha, copied = _copy_upload(model, tmp)
        request.app.state.prom.upload_bytes.inc(copied)
        upload = Path(tmp.name)
        staged = [(MODEL_INPUT_NAMES[job_spec.model.format], job_spec.model.format, upload)]
        data_shas = []
        for part, data in parts.items():
            if data is None:
                continue
            data_tmp = stack.enter_context(tempfile.NamedTemporaryFile(dir=staging, prefix=f"{part}-", delete=True))
            data_sha, data_bytes = _copy_upload(data, data_tmp)
            request.app.state.prom.upload_bytes.inc(data_bytes)
            data_shas.append(f"{part}:{data_sha}")
            staged.append((part, None, Path(data_tmp.name)))
        idem_key = fingerprint = None
        if idempotency_key:
            body = json.dumps(job_spec.model_dump(mode="json"), sort_keys=True) + model_sha + ",".join(data_shas)
            fingerprint = hashlib.sha256(body.encode()).hexdigest()
            idem_key = keys.idempotency(jobs.tenant, hashlib.sha256(idempotency_key.encode()).hexdigest())
            replay = _replay(redis_client, jobs, idem_key, fingerprint)
            if replay is not None:
                view = JobView.of(replay, base_url(request, settings))
                return JSONResponse(view.model_dump(mode="json"), status_code=200, headers={"Location": view.links.self})
        _check_tenant_active(jobs, settings)  # early, before the upload is checked; create() checks again, atomically
        if settings.max_queued_jobs and jobs.repo.queued_count() >= settings.max_queued_jobs:
            raise TooManyJobs(f"{settings.max_queued_jobs} jobs are already queued; retry later", limit=settings.max_queued_jobs)
        with request.app.state.intake_slots.hold():  # the CPU-bound checks; 503 with Retry-After when saturated
            header, arrays = _check_uploads(upload, staged, job_spec, settings)
        _check_model_fits(header, job_spec, settings, redis_client)
        _check_students(job_spec, settings, redis_client)
        _check_data_needs(job_spec, arrays)
        device = resolve_device(job_spec, redis_client)
        job_id = new_job_id()
        if idem_key is not None and not redis_client.set(
            idem_key, json.dumps({"fingerprint": fingerprint, "job_id": job_id}), nx=True, ex=settings.idempotency_ttl_s
        ):
            replay = _replay(redis_client, jobs, idem_key, fingerprint)  # a concurrent twin won the race
            if replay is not None:
                view = JobView.of(replay, base_url(request, settings))
                return JSONResponse(view.model_dump(mode="json"), status_code=200, headers={"Location": view.links.self})
        inputs = []
        try:
            for name, fmt, path in staged:
                size, sha = store.put_file(job_id, "inputs", name, path)
                inputs.append(ArtifactInfo(name=name, format=fmt, bytes=size, sha256=sha))
        except (OSError, Unavailable) as exc:  # a disk or the S3 store failed
            store.remove_job(job_id)
            if idem_key is not None:
                redis_client.delete(idem_key)
            raise Unavailable(f"could not store the upload: {exc}") from exc
    now = utcnow()
    record = JobRecord(
        id=job_id,
        tenant=jobs.tenant,
        spec=job_spec.model_dump(mode="json"),
        queue=queue_for(device),
        device=device,
        created_at=now,
        updated_at=now,
        inputs=inputs,
    )
    try:
        jobs.create(record, max_active=settings.tenant_max_active_jobs)
        enqueue_job(settings.redis_url, job_id, record.queue)
    except Exception as exc:
        if not isinstance(exc, TenantJobLimit):
            log.exception("could not queue job %s", job_id)
        try:
            jobs.repo.delete(job_id, jobs.tenant)
            if idem_key is not None:
                redis_client.delete(idem_key)
        except Exception:
            log.exception("could not clean up job %s", job_id)
        store.remove_job(job_id)
        if isinstance(exc, TenantJobLimit):
            raise
        raise Unavailable("the job could not be queued; Redis may be down. Nothing was kept; retry later.") from exc
    request.app.state.prom.submitted.inc()
    view = JobView.of(record, base_url(request, settings))
    return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": view.links.self})


def _check_tenant_active(jobs: TenantJobs, settings) -> None:
    limit = settings.tenant_max_active_jobs
    if limit and jobs.active_count() >= limit:
        raise TenantJobLimit.of(jobs.tenant, limit)


def _replay(redis_client, jobs, idem_key: str, fingerprint: str) -> JobRecord | None:
    """The job an earlier request with this Idempotency-Key created, if any; 409 if its request differed."""
    raw = redis_client.get(idem_key)
    if raw is None:
        return None
    stored = json.loads(raw)
    if stored["fingerprint"] != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was first used with a different spec or model; use a new key for a new job",
            job_id=stored["job_id"],
        )
    try:
        return jobs.get(stored["job_id"])
    except Exception:
        raise Conflict("the first request with this Idempotency-Key is still being processed; retry shortly",
                       slug="idempotency-key-in-flight", title="A request with this Idempotency-Key is in flight") from None


def _copy_upload(upload: UploadFile, target) -> tuple[str, int]:
    """Copy the upload to ``target``; return (sha256 hex, bytes)."""
    digest = hashlib.sha256()
    copied = 0
    while chunk := upload.file.read(1024 * 1024):
        digest.update(chunk)
        target.write(chunk)
        copied += len(chunk)
    target.flush()
    return digest.hexdigest(), copied


def _check_data_needs(spec: JobSpec, arrays: dict[str, set[str]]) -> None:
    """422 when a step trains, or the goal measures accuracy, but the request has no (labelled) data part for it."""
    problems = data_problems(list(spec.steps), arrays) + goal_problems(spec.goal, arrays)
    if problems:
        raise InvalidSpec("; ".join(f"{p.loc}: {p.msg}" for p in problems), errors=[p.as_error() for p in problems])


def _check_students(spec: JobSpec, settings, redis_client) -> None:
    """A distillation student must be a known architecture with a valid config (asked of a live worker)."""
    catalog = read_catalog(redis_client)
    for i, step in enumerate(spec.steps):
        if step.method != "distill" or step.student.architecture is None:
            continue
        name, loc = step.student.architecture, f"steps.{i}.student"
        if catalog is not None and name not in catalog["architectures"]:
            known = ", ".join(sorted(catalog["architectures"]))
            raise InvalidSpec(
                f"{loc}.architecture: unknown student architecture {name!r}; known: {known}",
                errors=[{"loc": f"{loc}.architecture", "msg": "unknown architecture", "type": "unknown"}],
            )
        report = inspect_state_dict(redis_client, name, step.student.config, None, settings.inspect_timeout_s)
        if report is not None and report.get("ok") is False:
            errors = [{**e, "loc": f"{loc}.config" + (f".{e['loc']}" if e.get("loc") else "")} for e in report.get("errors", [])]
            raise InvalidSpec(f"{loc}.config: {report.get('error')}",
                              errors=errors or [{"loc": f"{loc}.config", "msg": str(report.get("error")), "type": "config"}])


def _check_uploads(upload: Path, staged: list, spec: JobSpec, settings) -> tuple[intake.SafetensorsHeader | None, dict[str, set[str]]]:
    """The bounded, torch-free checks of every uploaded file, under one CPU/byte budget.

    Returns the model's safetensors header (None for TorchScript) and the arrays of each data part;
    renames each staged data part to its format's extension."""
    budget = settings.zip_limits.budget()
    kind = intake.sniff(upload, settings.zip_limits, budget, op_check=settings.torchscript_op_check)
    if kind != spec.model.format:
        raise InvalidUpload(f"the model file is {kind}, but the spec says model.format={spec.model.format!r}")
    header = None
    if kind == "safetensors":
        header = intake.read_safetensors_header(
            upload, max_tensors=settings.max_tensors, max_parameters=settings.max_parameters,
            max_header_bytes=settings.max_header_bytes, budget=budget,
        )
        if not header.tensors:
            raise InvalidUpload("the safetensors file holds no tensors")
    arrays: dict[str, set[str]] = {}
    for i, (part, fmt, path) in enumerate(staged):
        if fmt is None:
            fmt = check_data_file(
                part, path, max_tensors=settings.max_tensors,
                max_parameters=settings.max_parameters, zip_limits=settings.zip_limits, budget=budget,
            )
            staged[i] = (f"{part}.{DATA_EXTENSIONS[fmt]}", fmt, path)
            arrays[part] = array_names(path, fmt, max_tensors=settings.max_tensors, max_parameters=settings.max_parameters)
    return header, arrays


def _check_model_fits(header: intake.SafetensorsHeader | None, spec: JobSpec, settings, redis_client) -> None:
    """A safetensors state_dict must fit the named architecture (asked of a live worker, outside the check slots)."""
    if header is None:
        return  # TorchScript: no architecture to check against; the worker's torch.jit.load decides
    catalog = read_catalog(redis_client)
    if catalog is not None and spec.model.architecture not in catalog["architectures"]:
        known = ", ".join(sorted(catalog["architectures"]))
        raise InvalidSpec(
            f"model.architecture: unknown architecture {spec.model.architecture!r}; known: {known}",
            errors=[{"loc": "model.architecture", "msg": "unknown architecture", "type": "unknown"}],
        )
    report = inspect_state_dict(
        redis_client, spec.model.architecture, spec.model.config, header.shapes(), settings.inspect_timeout_s,
        steps=[s.model_dump(mode="json") for s in spec.steps],
    )
    if report is None or report.get("ok") is not False:
        return
    if report.get("error_type") == "config":
        raise InvalidSpec(f"model.config: {report['error']}", errors=report.get("errors", []))
    if report.get("error_type") == "steps":  # a step that cannot apply to this architecture (worker.applicability)
        raise InvalidSpec(report["error"], errors=report.get("errors", []))
    raise InvalidUpload(
        report.get("error") or "the state_dict does not fit the architecture",
        missing=report.get("missing", []),
        unexpected=report.get("unexpected", []),
        mismatched=report.get("mismatched", []),
        suggestions=report.get("suggestions", []),
    )


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
