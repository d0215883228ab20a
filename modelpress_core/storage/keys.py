"""Every Redis key modelpress uses, in one place. All start with ``mp:``."""

PREFIX = "mp:"


def job(job_id: str) -> str:
    """String: the job record as JSON."""
    return f"{PREFIX}job:{job_id}"


def jobs_index() -> str:
    """Sorted set: job ids scored by creation time (ms)."""
    return f"{PREFIX}jobs"


def live_jobs() -> str:
    """Set: ids of jobs not yet finished (queued, running, cancelling); the sweeper walks it."""
    return f"{PREFIX}jobs:live"


def queued_jobs() -> str:
    """Set: ids of queued jobs (MODELPRESS_MAX_QUEUED_JOBS counts it)."""
    return f"{PREFIX}jobs:queued"


def finished_jobs() -> str:
    """Sorted set: ids of finished (succeeded, failed, cancelled) jobs scored by finished_at (s); retention walks it."""
    return f"{PREFIX}jobs:finished"


def idempotency(tenant: str, key_digest: str) -> str:
    """String with TTL: {fingerprint, job_id} for one Idempotency-Key (sha256 of the header value)."""
    return f"{PREFIX}idem:{tenant}:{key_digest}"


def sweeper_lock() -> str:
    """String with TTL: held by the one worker sweeping this period."""
    return f"{PREFIX}sweeper:lock"


def job_events(job_id: str) -> str:
    """Pub/sub channel: JSON events of one job: {"event": "update", state, progress, ...} on every
    record change and {"event": "log", ts, level, message} for every log line."""
    return f"{PREFIX}events:{job_id}"


LOG_MAX_LINES = 1000  # the job log keeps the newest lines only


def job_log(job_id: str) -> str:
    """List: the job's log lines as JSON objects {ts, level, message}, oldest first, capped at LOG_MAX_LINES."""
    return f"{PREFIX}log:{job_id}"


def worker_heartbeat(worker: str) -> str:
    """String with TTL: a live worker's description (JSON), refreshed every heartbeat."""
    return f"{PREFIX}worker:{worker}"


def queue_workers(queue: str) -> str:
    """Sorted set: names of workers consuming ``queue``, scored by their last heartbeat (unix s).
    A member is live while its ``worker_heartbeat`` key exists; the top score says when the queue last
    had a worker (the gpu wait counts from there)."""
    return f"{PREFIX}workers:{queue}"


def stat_counter(name: str) -> str:
    """String (integer): a service-wide counter (e.g. ``upload_bytes``), shared by every API process."""
    return f"{PREFIX}stats:{name}"


def catalog() -> str:
    """String: the worker-published catalog (architectures with config schemas) as JSON."""
    return f"{PREFIX}catalog"


def inspect_requests() -> str:
    """List: upload-inspection requests from the API to workers."""
    return f"{PREFIX}inspect:requests"


def inspect_reply(request_id: str) -> str:
    """List: the single reply to one inspection request."""
    return f"{PREFIX}inspect:reply:{request_id}"


def expected_shapes(digest: str) -> str:
    """String with TTL: the state_dict shapes one (architecture, config) builds, published by workers
    (``modelpress_core/inspection.py``; ``digest`` = ``shapes_digest(architecture, config)``)."""
    return f"{PREFIX}shapes:{digest}"


def step_verdict(digest: str) -> str:
    """A worker's answer to "can these steps apply to this (architecture, config)?" (``inspection.step_digest``)."""
    return f"{PREFIX}step-verdict:{digest}"


def celery_queue(name: str) -> str:
    """List: Celery's Redis-transport queue (kombu names it after the queue; not ours, read for queue depth)."""
    return name


def api_key(key_id: str) -> str:
    """String: one API key's record as JSON {key_id, tenant, name, created_at, secret_sha256, revoked_at};
    never the key itself."""
    return f"{PREFIX}apikey:{key_id}"


def api_keys_index() -> str:
    """Sorted set: API key ids scored by creation time (s)."""
    return f"{PREFIX}apikeys"


def tenant_jobs(tenant: str) -> str:
    """Sorted set: one tenant's job ids scored by creation time (ms); GET /jobs pages through it."""
    return f"{PREFIX}tenant:{tenant}:jobs"


def tenant_active(tenant: str) -> str:
    """Set: one tenant's unfinished jobs (queued, running, cancelling); the concurrency limit counts it."""
    return f"{PREFIX}tenant:{tenant}:active"


def submit_bucket(tenant: str) -> str:
    """Hash {tokens, ts_us} with TTL: one tenant's token bucket for the POST /jobs rate limit."""
    return f"{PREFIX}tenant:{tenant}:submit-bucket"


def job_lease(job_id: str) -> str:
    """String with TTL: JSON {token, instance, host, pid} of the pool process running the job; its worker
    refreshes it every heartbeat while the task is active (TTL three heartbeats). A running job without
    one has lost its runner."""
    return f"{PREFIX}lease:{job_id}"


def job_lease_missing(job_id: str) -> str:
    """String with TTL: when (unix s) a sweep first found the running job without its lease."""
    return f"{PREFIX}lease-missing:{job_id}"
