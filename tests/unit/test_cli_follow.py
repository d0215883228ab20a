"""`submit --wait` follows the event stream and falls back to polling (a fake transport, no server)."""

from __future__ import annotations

import json

import httpx

from modelpress.cli import follow
from modelpress.client import ModelpressClient

JOB = {"id": "j_x", "state": "succeeded", "progress": {"phase": "done", "fraction": 1.0, "message": "finished"}}


def sse(*events):
    return "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events) + ": keep-alive\n\n"


def test_follow_uses_the_event_stream():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/j_x/events":
            running = {"state": "running", "progress": {"phase": "compressing", "fraction": 0.5, "message": "m"}}
            body = sse(("state", running), ("progress", running), ("log", {"ts": "t", "level": "info", "message": "x"}), ("end", JOB))
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json=JOB)

    seen = []
    with ModelpressClient("http://test", transport=httpx.MockTransport(handler)) as client:
        assert [e["event"] for e in client.events("j_x")] == ["state", "progress", "log", "end"]
        assert follow(client, "j_x", on_update=lambda e: seen.append(e["progress"]["fraction"]))["state"] == "succeeded"
    assert seen == [0.5, 0.5, 1.0]


def test_follow_falls_back_to_polling_when_the_stream_fails():
    polls = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/j_x/events":
            return httpx.Response(502, text="bad gateway")
        polls.append(1)
        return httpx.Response(200, json=JOB if len(polls) > 1 else {**JOB, "state": "running"})

    with ModelpressClient("http://test", transport=httpx.MockTransport(handler)) as client:
        client_wait = client.wait
        client.wait = lambda job_id, on_update=None: client_wait(job_id, interval=0.01, on_update=on_update)
        assert follow(client, "j_x")["state"] == "succeeded"
    assert len(polls) == 2


def test_verdict_line_says_simulated_only_and_gives_the_interval():
    from modelpress.cli import verdict_line
    from tests.unit.test_report import FULL

    line = verdict_line({**FULL, "verdict": {**FULL["verdict"], "macs_ratio": 2.119}})
    assert line == ("verdict: 3.82x smaller, 0.80x speed (not faster; simulated only: no real low-precision kernel ran), "
                    "2.12x fewer MACs, top-1 accuracy 95.0% -> 94.0% (drop 1.0 points, 95% CI 0.0 to 2.0)")
    no_labels = {k: v for k, v in FULL.items() if k != "quality"}
    no_labels["verdict"] = {**FULL["verdict"], "simulated_only": False, "faster": True, "speedup": 1.31}
    assert verdict_line(no_labels).endswith("1.31x speed (faster), output cosine 0.9980, top-1 agreement 97.0% (synthetic inputs)")
