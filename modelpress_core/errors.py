"""The one exception hierarchy. Each error renders as RFC 9457 problem details.

    ModelpressError                       500 internal
    ├── Unauthorized                      401 unauthorized (missing, unknown or revoked API key)
    ├── NotFound                          404 not-found
    │   ├── JobNotFound                   404 job-not-found
    │   ├── ArtifactNotFound              404 artifact-not-found
    │   └── ApiKeyNotFound                404 api-key-not-found
    ├── Conflict                          409 conflict
    │   ├── JobFinished                   409 job-finished (cancel after the end)
    │   ├── JobNotFinished                409 job-not-finished (artifacts or purge before the end)
    │   ├── IllegalTransition             409 illegal-transition
    │   ├── IdempotencyKeyReused          409 idempotency-key-reused
    │   └── IdempotencyKeyInFlight        409 idempotency-key-in-flight
    ├── Gone                              410 gone
    │   └── JobExpired                    410 job-expired (files removed by retention or purge)
    ├── InvalidSpec                       422 spec-invalid (each error with its loc)
    │   └── InvalidRequest                422 request-invalid (a request FastAPI itself refused)
    ├── InvalidUpload                     422 upload-invalid (corrupt, wrong keys, ...)
    ├── UnsafeUpload                      422 upload-unsafe (pickles)
    │   └── UnsafeTorchScriptOp           422 upload-unsafe (a TorchScript op or custom class outside the allowlist)
    ├── UnsupportedUpload                 415 upload-unsupported (unknown format)
    ├── UploadTooLarge                    413 upload-too-large
    ├── TooManyJobs                       429 too-many-jobs (MODELPRESS_MAX_QUEUED_JOBS)
    │   ├── RateLimited                   429 rate-limited (MODELPRESS_SUBMIT_RATE_PER_MIN)
    │   └── TenantJobLimit                429 tenant-job-limit (MODELPRESS_TENANT_MAX_ACTIVE_JOBS)
    ├── Unavailable                       503 unavailable (Redis or workers down; upload checks saturated,
    │   │                                     with Retry-After)
    │   ├── SandboxUnavailable            503 sandbox-unavailable (user model code needs a sandbox this host cannot set up)
    │   ├── NotReady                      503 not-ready (GET /readyz: Redis, the store or the workers are not ready)
    │   └── NoGpuWorker                   503 no-gpu-worker (a cuda job waited past MODELPRESS_GPU_WAIT_S)
    ├── SandboxFailed                     500 sandbox-failed (the sandboxed child died, broke its protocol or named a bad output)
    ├── JobFailed                         500 job-failed (a job's step raised; the detail names the exception)
    ├── TimeLimitExceeded                 500 time-limit (MODELPRESS_JOB_SOFT_TIME_LIMIT_S / MODELPRESS_JOB_TIME_LIMIT_S)
    ├── WorkerLost                        500 worker-lost (its worker died max_attempts times)
    └── MemoryLimitExceeded               500 memory-limit (MODELPRESS_WORKER_MAX_MEMORY_MB)

A failed job stores the same shape (``to_problem()``) in its record. No problem is built by hand:
``problem_class(slug)`` finds the class of a slug (e.g. for a sandboxed child's failure).

Every problem is bounded by ``bounded_problem`` (to_problem, the problem handler, a failed job's
record, the worker's and the sweeper's failures): ``detail`` at most MAX_DETAIL_CHARS characters,
other strings MAX_FIELD_CHARS, lists MAX_LIST_ITEMS items, each cut with a marker saying so.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://modelpress.dev/problems/"

MAX_DETAIL_CHARS = 2048  # a problem's detail (an exception's text can be any length: 158 KB was seen)
MAX_FIELD_CHARS = 512  # any other string in a problem: title, an error's loc or msg
MAX_LIST_ITEMS = 50  # e.g. the errors of a spec; "<name>_omitted" says how many were cut
MAX_DEPTH = 4  # members nested deeper are dropped


def bounded_text(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and a marker, ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    marker = f" [... cut: {len(text)} characters in all, {{}} shown]"
    keep = limit - len(marker.format(limit))
    return text[:keep] + marker.format(keep)


def _bounded(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return bounded_text(value, MAX_FIELD_CHARS)
    if depth >= MAX_DEPTH:
        return value if isinstance(value, (int, float, bool)) or value is None else "[... cut: nested too deep]"
    if isinstance(value, dict):
        return {bounded_text(str(k), MAX_FIELD_CHARS): _bounded(v, depth + 1) for k, v in list(value.items())[:MAX_LIST_ITEMS]}
    if isinstance(value, (list, tuple)):
        return [_bounded(v, depth + 1) for v in value[:MAX_LIST_ITEMS]]
    return value


def bounded_problem(problem: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``problem`` (RFC 9457 members plus extras) that fits the bounds above; idempotent."""
    out: dict[str, Any] = {}
    for key, value in problem.items():
        if key == "detail":
            out[key] = bounded_text(str(value), MAX_DETAIL_CHARS)
        else:
            out[key] = _bounded(value, 1)
            if isinstance(value, (list, tuple)) and len(value) > MAX_LIST_ITEMS and not str(key).endswith("_omitted"):
                out[f"{key}_omitted"] = len(value) - MAX_LIST_ITEMS
    return out


class ModelpressError(Exception):
    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, slug: str | None = None, title: str | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        if slug:
            self.slug = slug
        if title:
            self.title = title
        self.extra = extra

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            problem["instance"] = instance
        problem.update(self.extra)
        return bounded_problem(problem)


class NotFound(ModelpressError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ModelpressError):
    status, slug, title = 409, "conflict", "Conflict"


class JobNotFound(NotFound):
    slug, title = "job-not-found", "Job not found"


class ArtifactNotFound(NotFound):
    slug, title = "artifact-not-found", "Artifact not found"


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "API key not found"


class JobFinished(Conflict):
    slug, title = "job-finished", "The job has already finished"


class JobNotFinished(Conflict):
    slug, title = "job-not-finished", "The job has not finished"


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "Illegal job state transition"


class IdempotencyKeyReused(Conflict):
    slug, title = "idempotency-key-reused", "This Idempotency-Key was used for a different request"


class IdempotencyKeyInFlight(Conflict):
    slug, title = "idempotency-key-in-flight", "A request with this Idempotency-Key is in flight"


class InvalidSpec(ModelpressError):
    status, slug, title = 422, "spec-invalid", "The job spec is invalid"


class InvalidRequest(InvalidSpec):
    """A request FastAPI itself refused (a missing form part, a header too long)."""

    slug, title = "request-invalid", "The request is invalid"


class InvalidUpload(ModelpressError):
    status, slug, title = 422, "upload-invalid", "The uploaded file cannot be used"


class UnsafeUpload(ModelpressError):
    status, slug, title = 422, "upload-unsafe", "The upload would need unpickling, which modelpress never does"


class UnsafeTorchScriptOp(UnsafeUpload):
    """A TorchScript archive's code or graph uses an op outside ``modelpress_core/torchscript_ops.py``'s allowlist."""

    title = "The TorchScript code uses an op modelpress refuses"


class UnsupportedUpload(ModelpressError):
    status, slug, title = 415, "upload-unsupported", "Unsupported upload format"


class UploadTooLarge(ModelpressError):
    status, slug, title = 413, "upload-too-large", "Upload too large"


class Unavailable(ModelpressError):
    status, slug, title = 503, "unavailable", "Service unavailable"

    def __init__(self, detail: str, *, retry_after_s: int | None = None, **extra: Any):
        super().__init__(detail, **extra)
        if retry_after_s is not None:
            self.headers = {"Retry-After": str(retry_after_s)}


class SandboxUnavailable(Unavailable):
    """A format that runs user code (TorchScript) was to run, and the sandbox cannot be set up here.
    See docs/sandbox.md: MODELPRESS_SANDBOX and MODELPRESS_ALLOW_UNSANDBOXED_MODELS."""

    slug, title = "sandbox-unavailable", "The sandbox for user model code cannot be set up on this worker"


class SandboxFailed(ModelpressError):
    slug, title = "sandbox-failed", "The sandboxed job ended without a usable result"


class Gone(ModelpressError):
    status, slug, title = 410, "gone", "Gone"


class Unauthorized(ModelpressError):
    """401 with ``WWW-Authenticate: Bearer`` (RFC 6750); the detail never echoes the key."""

    status, slug, title = 401, "unauthorized", "A valid API key is required"

    def __init__(self, detail: str, *, error: str | None = None, **extra: Any):
        super().__init__(detail, **extra)
        challenge = 'Bearer realm="modelpress"' + (f', error="{error}"' if error else "")
        self.headers = {"WWW-Authenticate": challenge}


class TooManyJobs(ModelpressError):
    status, slug, title = 429, "too-many-jobs", "Too many jobs are waiting"

    def __init__(self, detail: str, *, retry_after_s: int = 30, **extra: Any):
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


class RateLimited(TooManyJobs):
    slug, title = "rate-limited", "Too many job submissions; slow down"


class TenantJobLimit(TooManyJobs):
    slug, title = "tenant-job-limit", "Too many unfinished jobs for this tenant"

    @classmethod
    def of(cls, tenant: str, limit: int) -> "TenantJobLimit":
        return cls(f"tenant {tenant!r} has {limit} unfinished jobs (queued, running or cancelling), its limit "
                   "(MODELPRESS_TENANT_MAX_ACTIVE_JOBS); retry when one has finished", limit=limit, retry_after_s=10)


class NotReady(Unavailable):
    slug, title = "not-ready", "Not ready"


class NoGpuWorker(Unavailable):
    slug, title = "no-gpu-worker", "No GPU worker took the job"


class JobExpired(Gone):
    slug, title = "job-expired", "The job's files were removed"


class JobFailed(ModelpressError):
    slug, title = "job-failed", "The job failed"

    @classmethod
    def of(cls, exc: BaseException) -> "JobFailed":
        return cls(f"{type(exc).__name__}: {exc}")


class TimeLimitExceeded(ModelpressError):
    slug, title = "time-limit", "Job time limit exceeded"

    @classmethod
    def hard(cls, limit_s: float) -> "TimeLimitExceeded":
        return cls(f"the job ran past its hard time limit ({limit_s:g} s, MODELPRESS_JOB_TIME_LIMIT_S) and was killed")

    @classmethod
    def soft(cls, limit_s: float) -> "TimeLimitExceeded":
        return cls(f"the job ran past its soft time limit ({limit_s} s)")


class WorkerLost(ModelpressError):
    slug, title = "worker-lost", "The job's worker was lost"


class MemoryLimitExceeded(ModelpressError):
    status, slug, title = 500, "memory-limit", "The job used more memory than its worker allows"

    def __init__(self, detail: str = "the job's worker process grew past MODELPRESS_WORKER_MAX_MEMORY_MB", **extra: Any):
        super().__init__(detail, **extra)


def _classes(base: type[ModelpressError]) -> list[type[ModelpressError]]:
    found = [base]
    for sub in base.__subclasses__():
        found += _classes(sub)
    return found


def problem_class(slug: str) -> type[ModelpressError] | None:
    """The class whose problem type is ``slug`` (the most general one when several share it), or None."""
    return next((c for c in _classes(ModelpressError) if c.slug == slug), None)
