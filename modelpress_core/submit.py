"""Submitting a job, as a use case with plain types: no FastAPI, no torch.

``submit(request, ctx)`` does, in this order (each step's refusal is the same RFC 9457 problem the
route has always answered with):

1. the tenant's submission rate (429 rate-limited);
2. the spec: its size, then ``parse_spec`` (422 spec-invalid);
3. the data parts the steps and goal need are present (422, before any byte is staged);
4. each upload staged once: streamed into the store's staging folder, counted and hashed on the way
   (``modelpress_core/storage/staging.py``);
5. an Idempotency-Key replay (200 with the first job, or 409);
6. the tenant's unfinished jobs and the queue depth (429);
7. the bounded, torch-free checks of every file, in an intake slot (415/413/422, 503 when saturated);
8. the architecture, the state_dict's fit and a distillation student's config, from shapes the workers
   published in Redis or, only when none are published for that (architecture, config), by asking a
   live worker (``modelpress_core/inspection.py``);
9. the data parts' labels;
10. the record, with typed inputs (``model``, ``data: {part: ...}``): the store adopts each staged file
    (a rename on a local store), then the record is created and the task enqueued (503 if not).
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import redis

from modelpress_core import intake
from modelpress_core.capabilities import data_problems, goal_problems
from modelpress_core.config import Settings
from modelpress_core.datafiles import array_names, check_data_file
from modelpress_core.errors import (
    IdempotencyKeyInFlight, IdempotencyKeyReused, InvalidSpec, InvalidUpload, RateLimited, TenantJobLimit, TooManyJobs, Unavailable,
)
from modelpress_core.formats import FORMATS
from modelpress_core.inspection import inspect_state_dict, read_catalog
from modelpress_core.job import ArtifactInfo, JobRecord, new_job_id, utcnow
from modelpress_core.queue import enqueue_job, queue_for, resolve_device
from modelpress_core.spec import JobSpec, parse_spec
from modelpress_core.storage import keys
from modelpress_core.storage.artifacts import ArtifactStore
from modelpress_core.storage.jobs import TenantJobs
from modelpress_core.storage.ratelimit import SubmitRateLimiter
from modelpress_core.storage.staging import StagedFile, stage

log = logging.getLogger("modelpress.submit")

DATA_EXTENSIONS = {"npz": "npz", "safetensors": "safetensors"}


@dataclass
class SubmitRequest:
    tenant: str
    spec: str
    model: BinaryIO  # readable binary streams, read once
    data: dict[str, BinaryIO] = field(default_factory=dict)  # part -> stream (calibration, train, eval)
    idempotency_key: str | None = None


@dataclass
class SubmitContext:
    settings: Settings
    redis: redis.Redis
    jobs: TenantJobs
    store: ArtifactStore
    check_slot: Callable[[], AbstractContextManager] = lambda: ExitStack()  # holds one intake slot (503 when saturated)
    count_upload_bytes: Callable[[int], None] = lambda n: None


@dataclass
class Submitted:
    record: JobRecord
    replayed: bool  # True: an Idempotency-Key replay of an earlier request (HTTP 200, not 202)


@dataclass
class _Staged:
    part: str  # "model" or a data part
    file: StagedFile
    format: str | None = None  # known once checked
    name: str | None = None  # its name under inputs/


def submit(request: SubmitRequest, ctx: SubmitContext) -> Submitted:
    settings, jobs = ctx.settings, ctx.jobs
    _check_rate(request.tenant, ctx)
    if len(request.spec.encode()) > settings.max_spec_bytes:
        raise InvalidSpec(f"spec is longer than {settings.max_spec_bytes} bytes")
    spec = parse_spec(request.spec)
    _check_parts_present(spec, set(request.data))
    staging = settings.artifacts_path / ".staging"
    with ExitStack() as cleanup:
        staged = [_stage(cleanup, "model", request.model, staging, ctx)]
        staged += [_stage(cleanup, part, stream, staging, ctx) for part, stream in request.data.items()]
        idempotency = _Idempotency.of(request, spec, staged, ctx)
        if idempotency is not None and (replay := idempotency.replay()) is not None:
            return Submitted(replay, replayed=True)
        _check_capacity(jobs, settings)
        with ctx.check_slot():  # the CPU-bound checks
            header, arrays = _check_files(staged, spec, settings)
        _check_model_fits(header, spec, ctx)
        _check_students(spec, ctx)
        _check_labels(spec, arrays)
        device = resolve_device(spec, ctx.redis)
        job_id = new_job_id()
        if idempotency is not None and not idempotency.claim(job_id):
            replay = idempotency.replay()  # a concurrent twin won the race
            if replay is not None:
                return Submitted(replay, replayed=True)
        try:
            model, data = _store_inputs(job_id, staged, ctx.store)
        except (OSError, Unavailable) as exc:  # a disk or the S3 store failed
            ctx.store.remove_job(job_id)
            if idempotency is not None:
                idempotency.release()
            raise Unavailable(f"could not store the upload: {exc}") from exc
    now = utcnow()
    record = JobRecord(
        id=job_id, tenant=jobs.tenant, spec=spec.model_dump(mode="json"), queue=queue_for(device), device=device,
        created_at=now, updated_at=now, inputs=[model, *data.values()], model=model, data=data,
    )
    _create_and_enqueue(record, ctx, idempotency)
    return Submitted(record, replayed=False)


def _check_rate(tenant: str, ctx: SubmitContext) -> None:
    s = ctx.settings
    allowed, retry_after = SubmitRateLimiter(ctx.redis, s.submit_rate_per_min, s.submit_burst).take(tenant)
    if not allowed:
        raise RateLimited(
            f"tenant {tenant!r} may submit {s.submit_rate_per_min:g} jobs per minute, "
            f"{s.submit_burst} at once (MODELPRESS_SUBMIT_RATE_PER_MIN, MODELPRESS_SUBMIT_BURST); retry in {retry_after} s",
            retry_after_s=retry_after,
        )


def _stage(cleanup: ExitStack, part: str, stream: BinaryIO, staging: Path, ctx: SubmitContext) -> _Staged:
    staged = stage(stream, staging, prefix=f"{part}-")
    cleanup.callback(staged.discard)  # a no-op once the store adopted it
    ctx.count_upload_bytes(staged.bytes)
    return _Staged(part, staged)


@dataclass
class _Idempotency:
    """One Idempotency-Key: the same key and the same request (spec, model and data hashes) return the same job."""

    redis: redis.Redis
    jobs: TenantJobs
    key: str
    fingerprint: str
    ttl_s: int

    @classmethod
    def of(cls, request: SubmitRequest, spec: JobSpec, staged: list[_Staged], ctx: SubmitContext) -> "_Idempotency | None":
        if not request.idempotency_key:
            return None
        model_sha = staged[0].file.sha256
        data_shas = ",".join(f"{s.part}:{s.file.sha256}" for s in staged[1:])
        body = json.dumps(spec.model_dump(mode="json"), sort_keys=True) + model_sha + data_shas
        return cls(
            redis=ctx.redis, jobs=ctx.jobs, ttl_s=ctx.settings.idempotency_ttl_s,
            key=keys.idempotency(ctx.jobs.tenant, hashlib.sha256(request.idempotency_key.encode()).hexdigest()),
            fingerprint=hashlib.sha256(body.encode()).hexdigest(),
        )

    def replay(self) -> JobRecord | None:
        """The job an earlier request with this key created, if any; 409 if its request differed or is in flight."""
        raw = self.redis.get(self.key)
        if raw is None:
            return None
        stored = json.loads(raw)
        if stored["fingerprint"] != self.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was first used with a different spec or model; use a new key for a new job",
                job_id=stored["job_id"],
            )
        try:
            return self.jobs.get(stored["job_id"])
        except Exception:
            raise IdempotencyKeyInFlight("the first request with this Idempotency-Key is still being processed; retry shortly") from None

    def claim(self, job_id: str) -> bool:
        return bool(self.redis.set(self.key, json.dumps({"fingerprint": self.fingerprint, "job_id": job_id}), nx=True, ex=self.ttl_s))

    def release(self) -> None:
        self.redis.delete(self.key)


def _check_capacity(jobs: TenantJobs, settings: Settings) -> None:
    """Early, before the upload is checked; ``jobs.create`` checks the tenant's limit again, atomically."""
    limit = settings.tenant_max_active_jobs
    if limit and jobs.active_count() >= limit:
        raise TenantJobLimit.of(jobs.tenant, limit)
    if settings.max_queued_jobs and jobs.repo.queued_count() >= settings.max_queued_jobs:
        raise TooManyJobs(f"{settings.max_queued_jobs} jobs are already queued; retry later", limit=settings.max_queued_jobs)


def _raise_problems(problems: list) -> None:
    if problems:
        raise InvalidSpec("; ".join(f"{p.loc}: {p.msg}" for p in problems), errors=[p.as_error() for p in problems])


def _check_parts_present(spec: JobSpec, parts: set[str]) -> None:
    """422 when a step trains, or the goal measures accuracy, and the request lacks the data part (labels not yet known)."""
    assumed = {part: {"inputs", "labels"} for part in parts}
    _raise_problems(data_problems(list(spec.steps), assumed) + goal_problems(spec.goal, assumed))


def _check_labels(spec: JobSpec, arrays: dict[str, set[str]]) -> None:
    """422 when a present data part lacks the ``labels`` a step or the goal needs (known once the files are checked)."""
    _raise_problems(data_problems(list(spec.steps), arrays) + goal_problems(spec.goal, arrays))


def _check_files(staged: list[_Staged], spec: JobSpec, settings: Settings) -> tuple[intake.SafetensorsHeader | None, dict[str, set[str]]]:
    """The bounded, torch-free checks of every staged file, under one CPU/byte budget.

    Returns the model's safetensors header (None for TorchScript) and the arrays of each data part; names each file."""
    budget = settings.zip_limits.budget()
    model = staged[0]
    kind = intake.sniff(model.file.path, settings.zip_limits, budget, op_check=settings.torchscript_op_check)
    if kind != spec.model.format:
        raise InvalidUpload(f"the model file is {kind}, but the spec says model.format={spec.model.format!r}")
    model.format, model.name = kind, FORMATS[kind].file_name
    header = None
    if kind == "safetensors":
        header = intake.read_safetensors_header(
            model.file.path, max_tensors=settings.max_tensors, max_parameters=settings.max_parameters,
            max_header_bytes=settings.max_header_bytes, budget=budget,
        )
        if not header.tensors:
            raise InvalidUpload("the safetensors file holds no tensors")
    arrays: dict[str, set[str]] = {}
    for data in staged[1:]:
        data.format = check_data_file(
            data.part, data.file.path, max_tensors=settings.max_tensors,
            max_parameters=settings.max_parameters, zip_limits=settings.zip_limits, budget=budget,
        )
        data.name = f"{data.part}.{DATA_EXTENSIONS[data.format]}"
        arrays[data.part] = array_names(data.file.path, data.format, max_tensors=settings.max_tensors,
                                        max_parameters=settings.max_parameters)
    return header, arrays


def _unknown_architecture(catalog: dict[str, Any] | None, name: str, loc: str, what: str = "architecture") -> None:
    """422 when the workers' published catalog does not list ``name`` (no catalog yet: the worker decides)."""
    if catalog is not None and name not in catalog["architectures"]:
        known = ", ".join(sorted(catalog["architectures"]))
        raise InvalidSpec(f"{loc}: unknown {what} {name!r}; known: {known}",
                          errors=[{"loc": loc, "msg": "unknown architecture", "type": "unknown"}])


def _check_model_fits(header: intake.SafetensorsHeader | None, spec: JobSpec, ctx: SubmitContext) -> None:
    """A safetensors state_dict must fit the named architecture (published shapes, else a live worker; outside the slots)."""
    if header is None:
        return  # TorchScript: no architecture to check against; the worker's torch.jit.load decides
    _unknown_architecture(read_catalog(ctx.redis), spec.model.architecture, "model.architecture")
    report = inspect_state_dict(ctx.redis, spec.model.architecture, spec.model.config, header.shapes(), ctx.settings.inspect_timeout_s,
                                steps=[s.model_dump(mode="json") for s in spec.steps])
    if report is None or report.get("ok") is not False:
        return
    if report.get("error_type") == "config":
        raise InvalidSpec(f"model.config: {report['error']}", errors=report.get("errors", []))
    if report.get("error_type") == "steps":  # a step that cannot apply to this architecture (worker/applicability.py)
        raise InvalidSpec(report["error"], errors=report.get("errors", []))
    raise InvalidUpload(
        report.get("error") or "the state_dict does not fit the architecture",
        missing=report.get("missing", []), unexpected=report.get("unexpected", []),
        mismatched=report.get("mismatched", []), suggestions=report.get("suggestions", []),
    )


def _check_students(spec: JobSpec, ctx: SubmitContext) -> None:
    """A distillation student must be a known architecture with a valid config."""
    students = [(i, s.student) for i, s in enumerate(spec.steps) if s.method == "distill" and s.student.architecture is not None]
    catalog = read_catalog(ctx.redis) if students else None
    for i, student in students:
        loc = f"steps.{i}.student"
        _unknown_architecture(catalog, student.architecture, f"{loc}.architecture", "student architecture")
        report = inspect_state_dict(ctx.redis, student.architecture, student.config, None, ctx.settings.inspect_timeout_s)
        if report is not None and report.get("ok") is False:
            errors = [{**e, "loc": f"{loc}.config" + (f".{e['loc']}" if e.get("loc") else "")} for e in report.get("errors", [])]
            raise InvalidSpec(f"{loc}.config: {report.get('error')}",
                              errors=errors or [{"loc": f"{loc}.config", "msg": str(report.get("error")), "type": "config"}])


def _store_inputs(job_id: str, staged: list[_Staged], store: ArtifactStore) -> tuple[ArtifactInfo, dict[str, ArtifactInfo]]:
    infos = {}
    for s in staged:
        size, sha = store.adopt(job_id, "inputs", s.name, s.file)
        infos[s.part] = ArtifactInfo(name=s.name, format=s.format, bytes=size, sha256=sha)
    model = infos.pop("model")
    return model, infos


def _create_and_enqueue(record: JobRecord, ctx: SubmitContext, idempotency: _Idempotency | None) -> None:
    try:
        ctx.jobs.create(record, max_active=ctx.settings.tenant_max_active_jobs)
        enqueue_job(ctx.settings.redis_url, record.id, record.queue)
    except Exception as exc:
        if not isinstance(exc, TenantJobLimit):
            log.exception("could not queue job %s", record.id)
        try:
            ctx.jobs.repo.delete(record.id, ctx.jobs.tenant)
            if idempotency is not None:
                idempotency.release()
        except Exception:
            log.exception("could not clean up job %s", record.id)
        ctx.store.remove_job(record.id)
        if isinstance(exc, TenantJobLimit):
            raise
        raise Unavailable("the job could not be queued; Redis may be down. Nothing was kept; retry later.") from exc
