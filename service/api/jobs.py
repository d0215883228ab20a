"""Submitting and reading jobs."""

from __future__ import annotations

import logging
from contextlib import ExitStack
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from service import intake
from service.datafiles import check_data_file
from service.api.deps import JobsDep, RedisDep, SettingsDep, StoreDep
from service.api.views import JobPage, JobView, Problem
from service.domain.errors import InvalidSpec, InvalidUpload, Unavailable
from service.domain.job import ArtifactInfo, JobRecord, JobState, new_job_id, utcnow
from service.domain.spec import JobSpec, parse_spec
from service.inspection import inspect_state_dict, read_catalog
from service.queue import enqueue_job, queue_for

log = logging.getLogger("modelpress.api")

router = APIRouter(tags=["jobs"])

PROBLEMS = {
    404: {"model": Problem, "description": "Unknown job"},
    413: {"model": Problem, "description": "Upload over the size limit"},
    415: {"model": Problem, "description": "Unsupported model format"},
    422: {"model": Problem, "description": "Invalid spec or unusable upload"},
    503: {"model": Problem, "description": "Redis or the queue is unavailable"},
}

MODEL_INPUT_NAMES = {"safetensors": "model.safetensors", "torchscript": "model.torchscript.pt"}
DATA_EXTENSIONS = {"npz": "npz", "safetensors": "safetensors"}


def base_url(request: Request, settings) -> str:
    return (settings.public_url or str(request.base_url)).rstrip("/")


@router.post("/jobs", status_code=202, response_model=JobView, responses=PROBLEMS, summary="Submit a compression job")
def submit_job(
    request: Request,
    settings: SettingsDep,
    redis_client: RedisDep,
    jobs: JobsDep,
    store: StoreDep,
    model: Annotated[UploadFile, File(description="The model: a safetensors state_dict or a TorchScript archive.")],
    spec: Annotated[str, Form(description="The job spec as JSON text (see docs/spec.md).")],
    calibration: Annotated[UploadFile | None, File(description="Calibration data: .npz or safetensors with 'inputs'.")] = None,
    train: Annotated[UploadFile | None, File(description="Training data: 'inputs' and optional 'labels'.")] = None,
    eval: Annotated[
        UploadFile | None, File(description="Evaluation data: 'inputs' and optional 'labels' (accuracy before/after).")
    ] = None,
):
    if len(spec.encode()) > settings.max_spec_bytes:
        raise InvalidSpec(f"spec is longer than {settings.max_spec_bytes} bytes")
    job_spec = parse_spec(spec)
    staging = settings.artifacts_path / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    parts = {"calibration": calibration, "train": train, "eval": eval}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.NamedTemporaryFile(dir=staging, prefix="upload-", delete=True))
        _copy_upload(model, tmp)
        upload = Path(tmp.name)
        _check_model_upload(upload, job_spec, settings, redis_client)
        staged = [(MODEL_INPUT_NAMES[job_spec.model.format], job_spec.model.format, upload)]
        for part, data in parts.items():
            if data is None:
                continue
            data_tmp = stack.enter_context(tempfile.NamedTemporaryFile(dir=staging, prefix=f"{part}-", delete=True))
            _copy_upload(data, data_tmp)
            fmt = check_data_file(
                part, Path(data_tmp.name), max_tensors=settings.max_tensors,
                max_parameters=settings.max_parameters, zip_limits=settings.zip_limits,
            )
            staged.append((f"{part}.{DATA_EXTENSIONS[fmt]}", fmt, Path(data_tmp.name)))
        job_id = new_job_id()
        inputs = []
        try:
            for name, fmt, path in staged:
                size, sha = store.put_file(job_id, "inputs", name, path)
                inputs.append(ArtifactInfo(name=name, format=fmt, bytes=size, sha256=sha))
        except OSError as exc:
            store.remove_job(job_id)
            raise Unavailable(f"could not store the upload: {exc}") from exc
    now = utcnow()
    record = JobRecord(
        id=job_id,
        spec=job_spec.model_dump(mode="json"),
        queue=queue_for(job_spec.device),
        created_at=now,
        updated_at=now,
        inputs=inputs,
    )
    try:
        jobs.create(record)
        enqueue_job(settings.redis_url, job_id, record.queue)
    except Exception as exc:
        log.exception("could not queue job %s", job_id)
        jobs.delete(job_id)
        store.remove_job(job_id)
        raise Unavailable("the job could not be queued; Redis may be down. Nothing was kept; retry later.") from exc
    view = JobView.of(record, base_url(request, settings))
    return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": view.links.self})


def _copy_upload(upload: UploadFile, target) -> None:
    while chunk := upload.file.read(1024 * 1024):
        target.write(chunk)
    target.flush()


def _check_model_upload(path: Path, spec: JobSpec, settings, redis_client) -> None:
    kind = intake.sniff(path, settings.zip_limits)
    if kind != spec.model.format:
        raise InvalidUpload(f"the model file is {kind}, but the spec says model.format={spec.model.format!r}")
    if kind == "torchscript":
        return  # no architecture to check against: the worker's torch.jit.load decides
    header = intake.read_safetensors_header(path, max_tensors=settings.max_tensors, max_parameters=settings.max_parameters)
    if not header.tensors:
        raise InvalidUpload("the safetensors file holds no tensors")
    catalog = read_catalog(redis_client)
    if catalog is not None and spec.model.architecture not in catalog["architectures"]:
        known = ", ".join(sorted(catalog["architectures"]))
        raise InvalidSpec(
            f"model.architecture: unknown architecture {spec.model.architecture!r}; known: {known}",
            errors=[{"loc": "model.architecture", "msg": "unknown architecture", "type": "unknown"}],
        )
    report = inspect_state_dict(
        redis_client, spec.model.architecture, spec.model.config, header.shapes(), settings.inspect_timeout_s
    )
    if report is None or report.get("ok") is not False:
        return
    if report.get("error_type") == "config":
        raise InvalidSpec(f"model.config: {report['error']}", errors=report.get("errors", []))
    raise InvalidUpload(
        report.get("error") or "the state_dict does not fit the architecture",
        missing=report.get("missing", []),
        unexpected=report.get("unexpected", []),
        mismatched=report.get("mismatched", []),
        suggestions=report.get("suggestions", []),
    )


@router.get("/jobs", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(
    request: Request,
    settings: SettingsDep,
    jobs: JobsDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[int, Query(ge=0)] = 0,
):
    records, next_cursor = jobs.list(state=state, limit=limit, cursor=cursor)
    base = base_url(request, settings)
    return JobPage(items=[JobView.of(r, base) for r in records], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", response_model=JobView, responses={404: PROBLEMS[404]}, summary="A job's state, progress and results")
def get_job(job_id: str, request: Request, settings: SettingsDep, jobs: JobsDep):
    return JobView.of(jobs.get(job_id), base_url(request, settings))
