"""Job leases: which process is running a job right now. No torch, no Celery.

The process that claims a job writes ``mp:lease:<job>`` (a JSON holder: a token naming the run,
the worker instance, host and pid of the process running it) with a TTL of three heartbeats; the
worker refreshes it every heartbeat while the job runs (``worker/lease.py``). A ``running`` record without a lease has lost its runner: the sweeper requeues
or fails it (``worker/sweeper.py``), and a redelivered message may take it over (``worker/tasks.py``).

Refresh and release only touch a lease that is still the caller's (same token), so a run that was
taken over never renews or drops the new run's lease.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from modelpress_core.storage import keys

# KEYS[1] the lease, ARGV[1] our token, ARGV[2] the value, ARGV[3] ttl (ms): set it if absent or ours
_REFRESH = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['token'] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS[1] the lease, ARGV[1] our token: delete it if ours
_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Holder:
    token: str
    instance: str
    host: str
    pid: int

    def json(self) -> str:
        return json.dumps(asdict(self))


def this_host() -> str:
    return socket.gethostname()


def holder(client: redis.Redis, job_id: str) -> Holder | None:
    """Who holds the job's lease now, or None."""
    raw = client.get(keys.job_lease(job_id))
    if raw is None:
        return None
    try:
        return Holder(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def take(client: redis.Redis, job_id: str, me: Holder, ttl_s: float) -> None:
    """Hold the lease, whoever held it before (the caller decided it may take the job over). ``client``
    may be a pipeline inside the MULTI that claims the job, so record and lease change together."""
    client.set(keys.job_lease(job_id), me.json(), px=max(1, int(ttl_s * 1000)))


def refresh(client: redis.Redis, job_id: str, me: Holder, ttl_s: float) -> bool:
    """Extend our lease (re-create it if it lapsed); False when another run holds it now."""
    return bool(client.eval(_REFRESH, 1, keys.job_lease(job_id), me.token, me.json(), max(1, int(ttl_s * 1000))))


def release(client: redis.Redis, job_id: str, me: Holder) -> None:
    """Drop our lease (a lease another run holds now is left alone)."""
    client.eval(_RELEASE, 1, keys.job_lease(job_id), me.token)


def process_alive(pid: int) -> bool:
    """Is process ``pid`` on this host still there?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not running anything
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
