"""A small typed client for the modelpress HTTP API (httpx)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

TERMINAL_STATES = {"succeeded", "failed", "cancelled", "expired"}
DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_STATUSES = {429, 503}  # too many requests, unavailable: both say when to come back (Retry-After)


class ApiError(Exception):
    """An RFC 9457 problem returned by the server."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


def retry_after_s(response: httpx.Response, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP date (RFC 9110 10.2.3); None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ModelpressClient:
    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None, max_retries: int = 3, max_retry_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        """``base_url``: default ``$MODELPRESS_URL``, else http://127.0.0.1:8000. ``api_key``: sent as
        ``Authorization: Bearer``; default ``$MODELPRESS_API_KEY`` (none when unset, for a server with auth off).

        A 429 or 503 answer is retried up to ``max_retries`` times, after the ``Retry-After`` the server
        sent (1, 2, 4... s when it sent none), each wait at most ``max_retry_wait_s``; a server asking for
        longer than that gets no retry, and the caller the ApiError at once."""
        base_url = base_url or os.environ.get("MODELPRESS_URL") or DEFAULT_URL
        api_key = api_key or os.environ.get("MODELPRESS_API_KEY") or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, headers=headers)
        self.max_retries, self.max_retry_wait_s, self._sleep = max_retries, max_retry_wait_s, sleep

    def _wait_before_retry(self, response: httpx.Response, attempt: int) -> bool:
        """Sleep before retrying ``response`` (attempt 0, 1, ...); False when it is not to be retried."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return False
        wait = retry_after_s(response)
        wait = float(2 ** attempt) if wait is None else wait
        if wait > self.max_retry_wait_s:
            return False
        self._sleep(wait)
        return True

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on 429/503 as the server's Retry-After says (an upload's files are re-read from the start)."""
        attempt = 0
        while True:
            response = self.http.request(method, url, **kwargs)
            if not self._wait_before_retry(response, attempt):
                return response
            attempt += 1

    @contextmanager
    def _stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        attempt = 0
        while True:
            with self.http.stream(method, url, **kwargs) as response:
                if response.status_code in RETRY_STATUSES:
                    response.read()
                    if self._wait_before_retry(response, attempt):
                        attempt += 1
                        continue
                yield response
                return

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ModelpressClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        return response

    def submit(self, model: str | Path, spec: dict[str, Any], *, idempotency_key: str | None = None,
               data: dict[str, str | Path] | None = None) -> dict[str, Any]:
        """Submit a job. ``data``: optional data files by part (``calibration``, ``train``, ``eval``:
        .npz or safetensors with ``inputs`` and optional ``labels``). With ``idempotency_key``,
        retrying the same submission returns the same job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        handles = {"model": open(model, "rb")}
        try:
            for part, path in (data or {}).items():
                handles[part] = open(path, "rb")
            names = {"model": model, **(data or {})}
            files = {part: (Path(names[part]).name, f, "application/octet-stream") for part, f in handles.items()}
            return self._check(self._request("POST", "/jobs", files=files, data={"spec": json.dumps(spec)}, headers=headers)).json()
        finally:
            for f in handles.values():
                f.close()

    def cancel(self, job_id: str) -> dict[str, Any]:
        """queued -> cancelled now; running -> cancelling (then cancelled). 409 once finished."""
        return self._check(self._request("POST", f"/jobs/{job_id}/cancel")).json()

    def purge(self, job_id: str) -> dict[str, Any]:
        """Remove a finished job's files now (state expired; the record stays)."""
        return self._check(self._request("DELETE", f"/jobs/{job_id}", params={"purge": "true"})).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._check(self._request("GET", f"/jobs/{job_id}")).json()

    def jobs(self, state: str | None = None, limit: int = 20, cursor: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "cursor": cursor}
        if state:
            params["state"] = state
        return self._check(self._request("GET", "/jobs", params=params)).json()

    def metrics(self, job_id: str) -> dict[str, Any]:
        return self._check(self._request("GET", f"/jobs/{job_id}/metrics")).json()

    def events(self, job_id: str, *, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Live events of a job from ``GET /jobs/{id}/events`` (Server-Sent Events), as dicts with an
        ``event`` key: ``state`` (first: the current record), ``progress``, ``log`` and ``end`` (last;
        the iterator stops after it). ``timeout``: longest silence between events (heartbeats count)."""
        read_timeout = httpx.Timeout(self.http.timeout.connect or 60.0, read=timeout)
        with self._stream("GET", f"/jobs/{job_id}/events", timeout=read_timeout,
                              headers={"Accept": "text/event-stream"}) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            kind, data = "message", []
            for line in response.iter_lines():
                if line == "":
                    if data:
                        event = {**json.loads("\n".join(data)), "event": kind}
                        yield event
                        if kind == "end":
                            return
                    kind, data = "message", []
                elif line.startswith(":"):
                    continue  # keep-alive comment
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

    def logs(self, job_id: str, tail: int | None = None) -> list[dict[str, Any]]:
        """The job's log lines, oldest first: ``[{ts, level, message}]``."""
        params = {"tail": tail} if tail else None
        return self._check(self._request("GET", f"/jobs/{job_id}/logs", params=params)).json()["lines"]

    def report(self, job_id: str, dest: str | Path | None = None) -> str:
        """The job's self-contained HTML report; also written to ``dest`` when given."""
        html = self._check(self._request("GET", f"/jobs/{job_id}/report")).text
        if dest is not None:
            Path(dest).write_text(html, encoding="utf-8")
        return html

    def wait(self, job_id: str, *, timeout: float = 3600, interval: float = 0.5,
             on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update:
                on_update(job)
            if job["state"] in TERMINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(interval)

    def download(self, job_id: str, name: str, dest: str | Path) -> Path:
        """Stream one artifact to ``dest`` (a file or a directory) and verify its Repr-Digest."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / name
        digest = hashlib.sha256()
        tmp = dest.with_name(dest.name + ".part")
        with self._stream("GET", f"/jobs/{job_id}/artifacts/{name}") as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            expected = response.headers.get("repr-digest", "")
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
        got = "sha-256=:" + base64.b64encode(digest.digest()).decode() + ":"
        if expected and expected != got:
            tmp.unlink(missing_ok=True)
            raise ApiError(502, {"title": "Digest mismatch", "detail": f"expected {expected}, got {got}"})
        tmp.replace(dest)
        return dest
