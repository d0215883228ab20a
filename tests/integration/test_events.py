"""Live progress over Server-Sent Events, and the job log, through the real stack."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.conftest import start_stack
from tests.integration.helpers import in_test_delay, spec, submit, wait, wait_for

PRUNE = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.5}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def read_events(base_url: str, job_id: str, timeout: float = 120, first: threading.Event | None = None) -> list[tuple[str, dict]]:
    """Every event of the job's stream until the server ends it; ``first`` is set once the first has arrived."""
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
                    if first is not None:
                        first.set()
    return events


@pytest.fixture(scope="module")
def held_stack(tmp_path_factory):
    """Jobs wait in their test delay until the test creates the release file: a job queued behind a
    held one is still queued when the test subscribes, however slow the machine."""
    data_dir = tmp_path_factory.mktemp("events")
    s = start_stack(data_dir, MODELPRESS_TEST_DELAY_S="600", MODELPRESS_TEST_DELAY_RELEASE_FILE=str(data_dir / "release"))
    s.release = data_dir / "release"
    yield s
    s.stop()


def test_events_stream_progress_until_the_job_ends(held_stack, digits_mlp_path):
    with httpx.Client(base_url=held_stack.base_url, timeout=60) as api:
        blocker = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
        wait_for(api, blocker, in_test_delay, timeout=180)  # the stack's one pool process is held by it
        job = submit(api, digits_mlp_path, spec(PRUNE, INT8)).json()
        first = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            stream = pool.submit(read_events, held_stack.base_url, job["id"], 300, first)
            assert first.wait(120), "no first event"  # subscribed (the server subscribes before it reads the record)
            held_stack.release.touch()  # now the blocker, then this job, run to the end
            events = stream.result()
        assert wait(api, blocker)["state"] == "succeeded"
    kinds = [k for k, _ in events]
    assert kinds[0] == "state" and events[0][1]["id"] == job["id"]  # starts with the current state
    assert events[0][1]["state"] == "queued"  # subscribed before the job started: every event is ahead
    assert all("event" not in data for _, data in events)  # the SSE event name is the type, not a field
    assert kinds[-1] == "end" and events[-1][1]["state"] == "succeeded"
    assert events[-1][1]["summary"]["size_ratio"] > 1
    assert [d["state"] for k, d in events if k == "state"] == ["queued", "running", "succeeded"]
    progress = [e for k, e in events if k == "progress"]
    fractions = [events[0][1]["progress"]["fraction"]] + [e["progress"]["fraction"] for e in progress]
    assert fractions == sorted(fractions)
    phases = list(dict.fromkeys(e["progress"]["phase"] for e in progress))  # in order of first appearance
    assert phases == ["loading", "compressing", "exporting", "measuring", "done"], phases  # "starting" came with the running state
    logs = [d["message"] for k, d in events if k == "log"]
    assert logs[0].startswith("attempt 1 on worker") and logs[-1].startswith("succeeded: model.torchscript.pt"), logs

    # a late subscriber sees the final state at once, then the end
    late = read_events(held_stack.base_url, job["id"], timeout=10)
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
