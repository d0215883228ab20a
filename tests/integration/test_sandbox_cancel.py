"""Cancelling a sandboxed job that is running kills its child: no process of the job is left (checked in /proc)."""

from __future__ import annotations

import httpx
import pytest
import torch

from tests.integration.conftest import start_stack
from tests.integration.helpers import in_test_delay, submit, wait, wait_for
from tests.integration.sandbox_attacks import (
    PAYLOAD_SPEC,
    STACK_ENV,
    sandbox_children_of,
    scripted,
)


@pytest.fixture(scope="module")
def slow_sandboxed(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("sandbox-cancel"), MODELPRESS_TEST_DELAY_S="600", **STACK_ENV)
    yield s
    s.stop()


@pytest.fixture
def api(slow_sandboxed):
    with httpx.Client(base_url=slow_sandboxed.base_url, timeout=60) as client:
        yield client


def test_cancel_kills_the_sandbox_child(api):
    response = submit(api, scripted(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))),
                      PAYLOAD_SPEC, filename="model.pt")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(api, job_id, in_test_delay, timeout=300)  # the child is in its (uncancellable from inside) test delay
    children = sandbox_children_of(job_id)
    assert children, "no process works in the job's directory"
    commands = [open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0") for pid in children]
    assert any(b"worker.sandbox.child" in command for command in commands), commands
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    job = wait(api, job_id, timeout=120)
    assert job["state"] == "cancelled", job
    assert sandbox_children_of(job_id) == []
    for pid in children:  # gone, not a zombie either (a reused pid would be some other, live process)
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except FileNotFoundError:
            continue
        assert state != "Z" and b"worker.sandbox.child" not in command, (pid, state, command)
