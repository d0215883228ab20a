"""The SDK honours Retry-After on 429 and 503, a bounded number of times (httpx.MockTransport: a small
fake server in process; the waits are recorded, not slept)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from modelpress.client import ApiError, ModelpressClient, retry_after_s

JOB = {"id": "j_1", "state": "queued"}


def busy_then_ok(statuses: list[int], retry_after: str | None = "2"):
    """A server answering each status in turn (with Retry-After), then 200 with the job; it records what it got."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        request.read()
        if len(seen) <= len(statuses):
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return httpx.Response(statuses[len(seen) - 1], headers=headers,
                                  json={"title": "Too Many Requests", "detail": "slow down", "status": statuses[len(seen) - 1]})
        return httpx.Response(202 if request.method == "POST" else 200, json=JOB)

    return handler, seen


def client_for(handler, **kwargs) -> tuple[ModelpressClient, list[float]]:
    waits: list[float] = []
    client = ModelpressClient("http://mp.test", transport=httpx.MockTransport(handler), sleep=waits.append, **kwargs)
    return client, waits


def test_a_429_then_a_503_are_retried_after_the_servers_retry_after():
    handler, seen = busy_then_ok([429, 503])
    client, waits = client_for(handler)
    assert client.job("j_1") == JOB
    assert len(seen) == 3 and waits == [2.0, 2.0]


def test_a_submit_is_retried_with_the_whole_upload(tmp_path):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"x" * 100_000)
    handler, seen = busy_then_ok([429])
    client, waits = client_for(handler)
    assert client.submit(model, {"steps": []}) == JOB
    assert waits == [2.0]
    assert len(seen) == 2 and all(b"x" * 100_000 in r.content for r in seen)  # the file was re-read from its start


def test_retries_are_bounded_and_the_last_problem_is_raised():
    handler, seen = busy_then_ok([503] * 10)
    client, waits = client_for(handler, max_retries=3)
    with pytest.raises(ApiError) as caught:
        client.job("j_1")
    assert caught.value.status == 503 and len(seen) == 4 and waits == [2.0, 2.0, 2.0]


def test_a_retry_after_beyond_the_cap_is_not_waited_for():
    handler, seen = busy_then_ok([429], retry_after="3600")
    client, waits = client_for(handler, max_retry_wait_s=60)
    with pytest.raises(ApiError):
        client.job("j_1")
    assert len(seen) == 1 and waits == []


def test_without_retry_after_the_waits_double():
    handler, seen = busy_then_ok([503, 503, 503], retry_after=None)
    client, waits = client_for(handler)
    assert client.job("j_1") == JOB and waits == [1.0, 2.0, 4.0]


def test_other_errors_are_not_retried():
    handler, seen = busy_then_ok([500, 404])
    client, waits = client_for(handler)
    with pytest.raises(ApiError):
        client.job("j_1")
    assert len(seen) == 1 and waits == []


def test_a_download_is_retried_too(tmp_path):
    handler, seen = busy_then_ok([503])
    client, waits = client_for(handler)
    path = client.download("j_1", "model.bin", tmp_path)
    assert path.read_bytes() == httpx.Response(200, json=JOB).content and waits == [2.0]


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    response = httpx.Response(503, headers={"Retry-After": format_datetime(now + timedelta(seconds=7), usegmt=True)})
    assert retry_after_s(response, now=now.timestamp()) == 7.0
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_the_base_url_comes_from_modelpress_url(monkeypatch):
    monkeypatch.setenv("MODELPRESS_URL", "http://elsewhere.test:9000/")
    assert str(ModelpressClient().http.base_url) == "http://elsewhere.test:9000"
    monkeypatch.delenv("MODELPRESS_URL")
    assert str(ModelpressClient().http.base_url) == "http://127.0.0.1:8000"
    from modelpress.cli import default_url

    assert default_url({"MODELPRESS_URL": "https://mp.example.com/"}) == "https://mp.example.com" and default_url({}) == "http://127.0.0.1:8000"
