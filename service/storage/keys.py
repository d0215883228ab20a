"""Every Redis key modelpress uses, in one place. All start with ``mp:``."""

PREFIX = "mp:"


def job(job_id: str) -> str:
    """String: the job record as JSON."""
    return f"{PREFIX}job:{job_id}"


def jobs_index() -> str:
    """Sorted set: job ids scored by creation time (ms)."""
    return f"{PREFIX}jobs"


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


def worker_heartbeat_pattern() -> str:
    return f"{PREFIX}worker:*"


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
    """String: cached expected state_dict shapes of one (architecture, config)."""
    return f"{PREFIX}shapes:{digest}"


def celery_queue(name: str) -> str:
    """List: Celery's Redis-transport queue (kombu names it after the queue; not ours, read for queue depth)."""
    return name
