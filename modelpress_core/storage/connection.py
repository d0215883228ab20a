"""Redis clients that ride out a Redis restart. Every worker-side connection is made here.

A command that fails because Redis is not there for a moment (connection refused or reset, a
timeout, ``LOADING`` while a restarted server replays its append-only file) is retried with
exponential backoff (50 ms, doubling, at most 2 s apart) until ``MODELPRESS_REDIS_RETRY_S`` have
passed since its first failure; then the last error is raised. The retry is redis-py's own
(``Retry`` on the connection pool), bounded by time instead of by a count, so it covers plain
commands, pipelines, connecting and authenticating alike.

A WATCH/MULTI transaction cannot be replayed by the connection: a connection lost while watching
surfaces as ``WatchError``, like a concurrent write. ``watched()`` re-runs the whole
read-check-write then (its reads see whatever the interrupted EXEC did or did not commit).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

T = TypeVar("T")
log = logging.getLogger("modelpress.redis")

# BusyLoadingError (LOADING) is a ConnectionError, so it is retried too
RETRIED_ERRORS = (ConnectionError, TimeoutError, socket.timeout)
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.05, 2.0


class DeadlineRetry(Retry):
    """redis-py's ``Retry``, stopping ``budget_s`` after the first failure rather than after N tries.
    ``on_failure(error, failures)`` hears of every failure it retries (or gives up on)."""

    def __init__(self, budget_s: float, backoff=None, on_failure: Callable[[Exception, int], None] | None = None):
        super().__init__(backoff or ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), retries=1_000_000,
                         supported_errors=RETRIED_ERRORS)
        self.budget_s = budget_s
        self.on_failure = on_failure or _log_first_failure

    def __deepcopy__(self, memo) -> DeadlineRetry:  # each connection copies the client's retry: share the callback
        return DeadlineRetry(self.budget_s, copy.deepcopy(self._backoff, memo), self.on_failure)

    def __eq__(self, other) -> bool:
        return isinstance(other, DeadlineRetry) and other.budget_s == self.budget_s and super().__eq__(other)

    __hash__ = Retry.__hash__

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        self._backoff.reset()
        failures = 0
        deadline = None
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                self.on_failure(error, failures)
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.budget_s
                if now >= deadline:
                    raise
                time.sleep(min(self._backoff.compute(failures), max(0.0, deadline - now)))


def redis_client(url: str, *, retry_s: float, socket_timeout: float = 30.0,
                 on_failure: Callable[[Exception, int], None] | None = None, **kwargs) -> redis.Redis:
    """A client whose commands are retried across a Redis restart for up to ``retry_s`` seconds."""
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=min(socket_timeout, 5.0),
                                retry=DeadlineRetry(retry_s, on_failure=on_failure), retry_on_error=list(RETRIED_ERRORS),
                                **kwargs)


class AsyncDeadlineRetry(redis.asyncio.retry.Retry):
    """``DeadlineRetry`` for redis-py's asyncio client: the same budget, backoff and failure callback."""

    def __init__(self, budget_s: float, backoff=None, on_failure: Callable[[Exception, int], None] | None = None):
        super().__init__(backoff or ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), retries=1_000_000,
                         supported_errors=RETRIED_ERRORS)
        self.budget_s = budget_s
        self.on_failure = on_failure or _log_first_failure

    def __deepcopy__(self, memo) -> AsyncDeadlineRetry:
        return AsyncDeadlineRetry(self.budget_s, copy.deepcopy(self._backoff, memo), self.on_failure)

    def __eq__(self, other) -> bool:
        return isinstance(other, AsyncDeadlineRetry) and other.budget_s == self.budget_s and super().__eq__(other)

    __hash__ = redis.asyncio.retry.Retry.__hash__

    async def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        self._backoff.reset()
        failures = 0
        deadline = None
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    await fail(error, failures)
                else:
                    await fail(error)
                self.on_failure(error, failures)
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.budget_s
                if now >= deadline:
                    raise
                await asyncio.sleep(min(self._backoff.compute(failures), max(0.0, deadline - now)))


def async_redis_client(url: str, *, retry_s: float, socket_timeout: float = 30.0,
                       on_failure: Callable[[Exception, int], None] | None = None, **kwargs) -> redis.asyncio.Redis:
    """``redis_client`` for asyncio: commands retried across a Redis restart for up to ``retry_s`` seconds."""
    return redis.asyncio.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=min(socket_timeout, 5.0),
                                        retry=AsyncDeadlineRetry(retry_s, on_failure=on_failure),
                                        retry_on_error=list(RETRIED_ERRORS), **kwargs)


def _log_first_failure(error: Exception, failures: int) -> None:
    if failures == 1:
        log.warning("redis unavailable (%s: %s); retrying", type(error).__name__, error)


def watched(client: redis.Redis, body: Callable[[redis.client.Pipeline], T]) -> T:
    """Run ``body(pipe)`` (WATCH, read, ``pipe.multi()``, write, ``pipe.execute()``) until it commits.

    A ``WatchError`` (a concurrent write, or the connection lost while watching) runs it again on a
    fresh pipeline; the client's retry waits for Redis to come back. Anything else propagates."""
    while True:
        with client.pipeline() as pipe:
            try:
                return body(pipe)
            except redis.WatchError:
                continue
