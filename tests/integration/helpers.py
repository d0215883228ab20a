"""Small helpers shared by the integration tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

MLP_MODEL = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
             "input": {"shape": [1, 784], "dtype": "float32"}}


def spec(*steps: dict, **extra) -> dict:
    return {"model": MLP_MODEL, "steps": list(steps), **extra}


def submit(api: httpx.Client, model: Path | bytes, job_spec: dict | str, *, filename: str = "model.safetensors",
           headers: dict[str, str] | None = None) -> httpx.Response:
    content = model.read_bytes() if isinstance(model, Path) else model
    text = job_spec if isinstance(job_spec, str) else json.dumps(job_spec)
    return api.post("/jobs", files={"model": (filename, content, "application/octet-stream")}, data={"spec": text}, headers=headers)


def wait(api: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        response = api.get(f"/jobs/{job_id}")
        if response.status_code != 503:  # 503: Redis is restarting; ask again
            job = response.json()
            if job["state"] in ("succeeded", "failed", "cancelled", "expired"):
                return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def job_count(api: httpx.Client) -> int:
    return len(api.get("/jobs", params={"limit": 200}).json()["items"])


def stored_job_dirs(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.exists() else set()


def staging_files(root: Path) -> list[Path]:
    staging = root / ".staging"
    return list(staging.iterdir()) if staging.exists() else []


def wait_for(api: httpx.Client, job_id: str, predicate, timeout: float = 60) -> dict:
    """Poll until ``predicate(job)`` holds (e.g. it is running its test delay)."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        response = api.get(f"/jobs/{job_id}")
        if response.status_code != 503:  # 503: Redis is restarting; ask again
            job = response.json()
            if predicate(job):
                return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached the expected point: {job}")


def wait_until_idle(api: httpx.Client, timeout: float = 180) -> None:
    """Poll until no job of this tenant is queued, running or cancelling."""
    deadline = time.monotonic() + timeout
    busy: list[str] = []
    while time.monotonic() < deadline:
        busy = [j["id"] for state in ("queued", "running", "cancelling")
                for j in api.get("/jobs", params={"state": state, "limit": 200}).json()["items"]]
        if not busy:
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs still unfinished: {busy}")


def assert_cancel_accepted(response: httpx.Response) -> None:
    """A cancel of an unfinished job: 200 with the job cancelled (it was queued), or 202 with it
    cancelling (it was running). Which one depends on where the worker is; the pair must match."""
    assert (response.status_code, response.json()["state"]) in {(200, "cancelled"), (202, "cancelling")}, response.text


def in_test_delay(job: dict) -> bool:
    return job["state"] == "running" and job["progress"]["message"].startswith("test delay")


def output_files(root: Path, job_id: str) -> list[str]:
    outputs = root / job_id / "outputs"
    return sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []
