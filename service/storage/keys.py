"""Every Redis key modelpress uses, in one place. All start with ``mp:``."""

PREFIX = "mp:"


def job(job_id: str) -> str:
    """String: the job record as JSON."""
    return f"{PREFIX}job:{job_id}"


def jobs_index() -> str:
    """Sorted set: job ids scored by creation time (ms)."""
    return f"{PREFIX}jobs"


def job_events(job_id: str) -> str:
    """Pub/sub channel: progress and state events of one job."""
    return f"{PREFIX}events:{job_id}"


def job_log(job_id: str) -> str:
    """List: the job's log lines (capped)."""
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
