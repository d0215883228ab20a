"""All settings, from one class. Environment variables use the ``MODELPRESS_`` prefix."""

from __future__ import annotations

import ipaddress
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelpress_core.zipsafety import ZipLimits


class AuthMode(str, Enum):
    auto = "auto"  # required, unless the API binds to a loopback address
    required = "required"  # every request needs an API key
    off = "off"  # no keys; every request is tenant "local" (loopback binds only)


LOCAL_TENANT = "local"


@lru_cache(maxsize=1024)  # asked per request of the peer's address (access.py); clients are few
def is_loopback(host: str) -> bool:
    """Is ``host`` (a bind address or name) loopback-only? ``0.0.0.0``, ``::`` and names other than
    ``localhost`` are not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


class InsecureSettings(ValueError):
    """The settings would serve without authentication on a non-loopback address."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELPRESS_", env_file=None, extra="ignore")

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis for job records, the Celery broker and progress events. "
        "`modelpress up` starts a private redis-server and sets this for its children unless it is set.",
    )
    data_dir: Path = Field(default=Path("~/.modelpress").expanduser(), description="Home of the embedded default.")
    artifact_dir: Path | None = Field(default=None, description="Local artifact store; default <data_dir>/artifacts.")
    artifact_store: Literal["local", "s3"] = Field(
        default="local",
        description="Where inputs and artifacts live: `local` (artifact_dir) or `s3` (an S3-compatible bucket shared by "
        "API and worker hosts; credentials from the standard AWS_* variables).",
    )
    s3_bucket: str | None = Field(default=None, description="S3 bucket (must exist); required with artifact_store=s3.")
    s3_prefix: str = Field(default="modelpress/", description="Key prefix inside the bucket.")
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint for MinIO, Ceph, moto…; unset = AWS.")
    s3_region: str | None = Field(default=None, description="S3 region; unset = AWS_DEFAULT_REGION / AWS_REGION.")

    api_host: str = Field(
        default="127.0.0.1",
        description="The address the API binds to. The entry points (`modelpress up`, compose) bind exactly this, "
        "and the auth rule reads it (set it to uvicorn's --host when you start uvicorn yourself).",
    )
    api_port: int = Field(default=8000, description="The port `modelpress up` binds the API to (`--port` overrides it).")
    auth: AuthMode = Field(
        default=AuthMode.auto,
        description="auto: API keys required unless api_host is loopback; required; off (refused on a non-loopback api_host).",
    )
    submit_rate_per_min: float = Field(default=60.0, ge=0, description="POST /jobs per tenant per minute (token bucket refill); 0 = no limit.")
    submit_burst: int = Field(default=20, ge=1, description="Token bucket size: submissions a tenant may make at once.")
    tenant_max_active_jobs: int = Field(default=20, ge=0, description="Most unfinished (queued, running, cancelling) jobs per tenant; 0 = no limit.")
    worker_max_memory_mb: int = Field(
        default=0, ge=0,
        description="Per job: a job whose worker process grows past this RSS fails with memory-limit, and the pool "
        "process is replaced after the task (Celery worker_max_memory_per_child); 0 = no cap.",
    )
    public_url: str | None = Field(default=None, description="Base URL clients use, for links; default from the request.")

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest accepted request body.")
    max_spec_bytes: int = Field(default=64 * 1024, ge=1, description="Longest accepted spec JSON (422 spec-invalid beyond).")
    max_tensors: int = Field(default=100_000, ge=1, description="Most tensors a safetensors header (model or data part) may declare.")
    max_parameters: int = Field(default=2_000_000_000, ge=1, description="Most elements, summed over its tensors, a safetensors header may declare.")
    max_zip_entries: int = Field(default=10_000, ge=1, description="Most entries in an uploaded zip (TorchScript, .npz).")
    max_zip_bytes: int = Field(default=4 * 1024**3, ge=1, description="Most bytes an uploaded zip may unpack to.")
    max_zip_ratio: float = Field(
        default=200.0, gt=1,
        description="Largest compression ratio of a zip entry over 64 KiB, and of a whole zip over 64 KiB unpacked.",
    )

    job_soft_time_limit_s: int = Field(default=3600, ge=1, description="Per job: past this the job fails with time-limit.")
    job_time_limit_s: int = Field(
        default=3900, ge=1,
        description="Per job: a job still running past this is killed and its pool process replaced; must exceed the soft limit.",
    )
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs one worker process runs at once (Celery pool size).")
    worker_threads: int = Field(default=0, ge=0, description="torch threads per job; 0 = torch's default.")
    worker_heartbeat_s: float = Field(default=5.0, gt=0, description="Worker heartbeat period; a worker is gone after 3 missed beats.")
    gpu_wait_s: float = Field(
        default=600.0, ge=0,
        description="How long a job for the gpu queue may wait with no live GPU worker before it fails (no-gpu-worker); 0 = forever.",
    )
    inspect_timeout_s: float = Field(default=10.0, ge=0, description="How long POST /jobs waits for a worker to check the upload against the architecture.")

    sse_heartbeat_s: float = Field(default=15.0, gt=0, description="Seconds between keep-alive comments on an idle event stream.")

    latency_warmup: int = Field(default=5, ge=0, description="Untimed forward passes before each latency measurement.")
    latency_runs: int = Field(default=30, ge=1, description="Timed forward passes per latency measurement (p50/p90/p99 are nearest rank).")

    search_max_seconds: float = Field(
        default=1800.0, gt=0,
        description="Default time budget of a goal search (goal.max_seconds overrides it), checked between candidates.",
    )
    sensitivity_max_layers: int = Field(
        default=30, ge=1,
        description="analyze:sensitivity measures each layer when there are at most this many, else uses a weight-error proxy.",
    )
    sensitivity_max_samples: int = Field(default=1000, ge=1, description="Eval inputs analyze:sensitivity measures on (the first N).")

    cancel_grace_s: float = Field(
        default=30.0, ge=0,
        description="How long a cancelling job may run on before the sweeper revokes its Celery task with terminate.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Times a job may be started before a lost worker fails it.")
    sweep_interval_s: float = Field(default=10.0, gt=0, description="How often a worker sweeps for lost, stuck and expired jobs.")
    artifact_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=0,
        description="Seconds after a job finished until its inputs and artifacts are removed (state expired); 0 keeps them forever.",
    )
    record_ttl_s: int = Field(default=30 * 24 * 3600, ge=1, description="How long an expired job's record is kept.")
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1, description="How long an Idempotency-Key is remembered.")
    max_queued_jobs: int = Field(default=0, ge=0, description="Refuse POST /jobs with 429 while this many jobs are queued; 0 = no limit.")
    test_delay_s: float = Field(
        default=0.0, ge=0,
        description="Test-only: every job sleeps this long (checking for cancellation) before measuring.",
    )
    test_delay_cancellable: bool = Field(
        default=True,
        description="Test-only: false makes the test delay ignore cancel requests and the soft time limit "
        "(to exercise the grace revoke and the hard time limit).",
    )

    # TorchScript intake (the op allowlist, modelpress_core/torchscript_ops.py)
    torchscript_op_check: bool = Field(
        default=True,
        description="Check a TorchScript upload's code at submit, and its loaded graphs in the worker, against the op "
        "allowlist (no file, shared-memory, process or network ops). Disabling it is only for testing the sandbox, "
        "the second line of defence.",
    )

    # resilience: Redis restarts, lost tasks (docs/recovery.md)
    redis_retry_s: float = Field(
        default=60.0, ge=0,
        description="How long a worker retries a Redis command (backoff 50 ms doubling to 2 s) while Redis is away: "
        "connection refused or reset, timeout, LOADING while a restarted server replays its append-only file.",
    )
    job_lease_grace_s: float = Field(
        default=30.0, ge=0,
        description="How long the sweeper lets a running job on a live worker go without its lease (refreshed every "
        "worker_heartbeat_s by the process running it, lapsing after three) before it requeues it, or fails it "
        "(worker-lost) after max_attempts.",
    )

    # --- upload parsers (issue 13): bounded intake checks, see docs/limits.md ---
    header_bytes_per_tensor: int = Field(
        default=256, ge=64,
        description="Safetensors header allowance per tensor; a header may be header_metadata_bytes + this x max_tensors bytes.",
    )
    header_metadata_bytes: int = Field(
        default=1024 * 1024, ge=4096,
        description="Safetensors header allowance for __metadata__ and framing (one header entry is at most 1 MiB).",
    )
    inspection_cpu_s: float = Field(
        default=10.0, gt=0,
        description="CPU seconds the checks of one POST /jobs may spend (unzipping, CRCs, pickle walk, header parsing) before it is refused (413).",
    )
    max_concurrent_inspections: int = Field(
        default=2, ge=1, description="Uploads checked at once per API process; more wait (up to as many again), the rest get 503.",
    )
    inspection_wait_s: float = Field(
        default=10.0, ge=0, description="How long a submit waits for a free check slot before 503 unavailable with Retry-After.",
    )

    # checks (issue 19): event-driven test waits
    test_delay_release_file: str = Field(
        default="",
        description="Test-only: when set, the test delay ends as soon as this file exists, so a test holds a job "
        "at a known point for as long as it needs and then releases it (no wall-clock window).",
    )

    # --- sandbox around user model code (worker/sandbox/, docs/sandbox.md) ---
    sandbox: Literal["on", "off"] = Field(
        default="on",
        description="on: formats that run user code (TorchScript) run in a confined child process (Landlock, no "
        "network, no secrets). off: the same child without confinement, honoured only with "
        "allow_unsandboxed_models=true (for tests that show what the sandbox stops).",
    )
    allow_unsandboxed_models: bool = Field(
        default=False,
        description="Run formats that carry user code even where the sandbox is off or cannot be set up; "
        "logged as a WARNING at every worker start. Without it such jobs fail with sandbox-unavailable.",
    )

    @model_validator(mode="after")
    def _sandbox_off_needs_opt_in(self) -> "Settings":
        if self.sandbox == "off" and not self.allow_unsandboxed_models:
            raise ValueError("MODELPRESS_SANDBOX=off runs user model code unconfined; it needs "
                             "MODELPRESS_ALLOW_UNSANDBOXED_MODELS=true as well")
        return self
    # --- end sandbox ---

    @model_validator(mode="after")
    def _store_complete(self) -> "Settings":
        if self.artifact_store == "s3" and not self.s3_bucket:
            raise ValueError("MODELPRESS_ARTIFACT_STORE=s3 needs MODELPRESS_S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _hard_limit_after_soft(self) -> "Settings":
        # Celery's prefork pool arms the hard limit when the soft one fires: a hard limit below the soft one
        # would silently act as the soft one.
        if self.job_time_limit_s <= self.job_soft_time_limit_s:
            raise ValueError(
                f"MODELPRESS_JOB_TIME_LIMIT_S ({self.job_time_limit_s}) must be greater than "
                f"MODELPRESS_JOB_SOFT_TIME_LIMIT_S ({self.job_soft_time_limit_s})"
            )
        return self

    def auth_required(self, bind_host: str | None = None) -> bool:
        """Whether requests need an API key, for an API bound to ``bind_host`` (default ``api_host``).
        Raises InsecureSettings for auth off on a non-loopback bind."""
        host = bind_host or self.api_host
        if self.auth == AuthMode.required:
            return True
        if is_loopback(host):
            return False  # auto or off, on loopback
        if self.auth == AuthMode.off:
            raise InsecureSettings(
                f"MODELPRESS_AUTH=off with the API bound to {host!r}: authentication may only be off when the API "
                "binds to a loopback address (127.0.0.1, ::1, localhost)"
            )
        return True

    @property
    def artifacts_path(self) -> Path:
        return (self.artifact_dir or self.data_dir / "artifacts").expanduser()

    @property
    def zip_limits(self) -> ZipLimits:
        return ZipLimits(
            max_entries=self.max_zip_entries, max_total_bytes=self.max_zip_bytes, max_ratio=self.max_zip_ratio,
            max_cpu_s=self.inspection_cpu_s,
        )

    @property
    def max_header_bytes(self) -> int:
        """The largest safetensors model header accepted (docs/limits.md)."""
        return self.header_metadata_bytes + self.header_bytes_per_tensor * self.max_tensors


@lru_cache
def get_settings() -> Settings:
    return Settings()
