"""Live progress over Server-Sent Events, and the job log, through the real stack."""

from __future__ import annotations

import json

import httpx

from tests.integration.helpers import spec, submit, wait

PRUNE = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.5}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def read_events(base_url: str, job_id: str, timeout: float = 120) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    kind = None
    with httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout)) as client:
        with client.stream("GET", f"/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((kind, json.loads(line.split(":", 1)[1])))
    return events


def test_events_stream_progress_until_the_job_ends(stack, api, digits_mlp_path):
    job = submit(api, digits_mlp_path, spec(PRUNE, INT8)).json()
    events = read_events(stack.base_url, job["id"])  # returns because the server ends the stream
    kinds = [k for k, _ in events]
    assert kinds[0] == "state" and events[0][1]["id"] == job["id"]  # starts with the current state
    assert all("event" not in data for _, data in events)  # the SSE event name is the type, not a field
    assert kinds[-1] == "end" and events[-1][1]["state"] == "succeeded"
    assert events[-1][1]["summary"]["size_ratio"] > 1
    progress = [e for k, e in events if k == "progress"]
    fractions = [events[0][1]["progress"]["fraction"]] + [e["progress"]["fraction"] for e in progress]
    assert fractions == sorted(fractions)
    # the stream may start late on a loaded machine: expect every phase still ahead of the snapshot
    if events[0][1]["progress"]["fraction"] < 0.8:
        assert "measuring" in {e["progress"]["phase"] for e in progress}, kinds
        assert any(k == "log" for k in kinds)

    # a late subscriber sees the final state at once, then the end
    late = read_events(stack.base_url, job["id"], timeout=10)
    assert [k for k, _ in late] == ["state", "end"]
    assert late[0][1]["state"] == "succeeded"


def test_logs_hold_the_story_of_the_job(api, digits_mlp_path):
    job = wait(api, submit(api, digits_mlp_path, spec(INT8)).json()["id"])
    body = api.get(f"/jobs/{job['id']}/logs").json()
    messages = [line["message"] for line in body["lines"]]
    assert messages[0].startswith("attempt 1 on worker")
    assert any("compressing" in m for m in messages)
    assert messages[-1].startswith("succeeded: model.torchscript.pt")
    assert api.get(f"/jobs/{job['id']}/logs", params={"tail": 1}).json()["lines"][0]["message"] == messages[-1]
    assert api.get("/jobs/j_nope/logs").status_code == 404
    assert api.get("/jobs/j_nope/events").status_code == 404
