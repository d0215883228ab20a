"""The one exception hierarchy. Each error renders as RFC 9457 problem details.

    ModelpressError                       500 internal
    ├── Unauthorized                      401 unauthorized (missing, unknown or revoked API key)
    ├── NotFound                          404 job-not-found, artifact-not-found
    ├── Conflict                          409 job-not-finished, job-finished, illegal-transition,
    │                                         idempotency-key-reused
    ├── Gone                              410 job-expired (files removed by retention or purge)
    ├── InvalidSpec                       422 spec-invalid
    ├── InvalidUpload                     422 upload-invalid (corrupt, wrong keys, ...)
    ├── UnsafeUpload                      422 upload-unsafe (pickles)
    ├── UnsupportedUpload                 415 upload-unsupported (unknown format)
    ├── UploadTooLarge                    413 upload-too-large
    ├── TooManyJobs                       429 too-many-jobs (MODELPRESS_MAX_QUEUED_JOBS),
    │   │                                     tenant-job-limit (MODELPRESS_TENANT_MAX_ACTIVE_JOBS)
    │   └── RateLimited                   429 rate-limited (MODELPRESS_SUBMIT_RATE_PER_MIN)
    ├── Unavailable                       503 unavailable (Redis or workers down)
    │   └── SandboxUnavailable            503 sandbox-unavailable (user model code needs a sandbox this host cannot set up)
    └── SandboxFailed                     500 sandbox-failed (the sandboxed child died, broke its protocol or named a bad output)

A failed job stores the same shape (``to_problem()``) in its record.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://modelpress.dev/problems/"


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
        return problem


class NotFound(ModelpressError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ModelpressError):
    status, slug, title = 409, "conflict", "Conflict"


class InvalidSpec(ModelpressError):
    status, slug, title = 422, "spec-invalid", "The job spec is invalid"


class InvalidUpload(ModelpressError):
    status, slug, title = 422, "upload-invalid", "The uploaded file cannot be used"


class UnsafeUpload(ModelpressError):
    status, slug, title = 422, "upload-unsafe", "The upload would need unpickling, which modelpress never does"


class UnsupportedUpload(ModelpressError):
    status, slug, title = 415, "upload-unsupported", "Unsupported upload format"


class UploadTooLarge(ModelpressError):
    status, slug, title = 413, "upload-too-large", "Upload too large"


class Unavailable(ModelpressError):
    status, slug, title = 503, "unavailable", "Service unavailable"


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
