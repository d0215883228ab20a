"""The same payloads as test_sandbox.py against a stack with MODELPRESS_SANDBOX=off (and the loud
opt-in): each attack succeeds. This is what shows the sandbox, and nothing else, stops them."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, submit, wait
from tests.integration.sandbox_attacks import (
    STACK_ENV,
    Overwrite,
    leak_of,
    redis_aof,
    run_payload,
    scripted,
    worker_log_line,
)


@pytest.fixture(scope="module")
def unsandboxed(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("sandbox-off"), MODELPRESS_SANDBOX="off",
                    MODELPRESS_ALLOW_UNSANDBOXED_MODELS="true", **STACK_ENV)
    yield s
    s.stop()


@pytest.fixture
def api(unsandboxed):
    with httpx.Client(base_url=unsandboxed.base_url, timeout=60) as client:
        yield client


def assert_leaked(job: dict, secret: bytes) -> None:
    assert job["state"] == "failed", job
    assert secret.decode("latin-1") in job["error"]["detail"]


def test_the_worker_warns_loudly_at_start(unsandboxed):
    line = worker_log_line(unsandboxed.log_dir, "SANDBOX DISABLED")
    assert "WARNING" in line and "MODELPRESS_SANDBOX=off" in line


def test_unsandboxed_a_secret_file_leaks(api, unsandboxed):
    secret_path = unsandboxed.data_dir / "secret.txt"
    secret_path.write_text(f"secret-{secrets.token_hex(12)}")
    secret = secret_path.read_bytes()
    assert_leaked(run_payload(api, leak_of(secret_path, len(secret))), secret)


def test_unsandboxed_a_shared_mapping_overwrites_a_file(api, unsandboxed):
    target = unsandboxed.data_dir / "target.txt"
    target.write_text("original content of a file the worker can write")
    size = len(target.read_bytes())
    run_payload(api, scripted(Overwrite(str(target), size)))
    assert target.read_bytes() == b"X" * size


def test_unsandboxed_the_redis_password_leaks(api, unsandboxed):
    path = unsandboxed.data_dir / "redis" / "redis.password"
    secret = path.read_bytes()
    assert_leaked(run_payload(api, leak_of(path, len(secret))), secret)


def test_unsandboxed_the_redis_append_only_file_leaks(api, unsandboxed):
    path = redis_aof(unsandboxed.data_dir)
    head = path.read_bytes()[:48]
    assert len(head) == 48
    assert_leaked(run_payload(api, leak_of(path, len(head))), head)


def test_unsandboxed_another_job_s_artifact_leaks(api, unsandboxed, digits_mlp_path):
    other = wait(api, submit(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.5})).json()["id"])
    assert other["state"] == "succeeded", other["error"]
    path = unsandboxed.data_dir / "artifacts" / other["id"] / "outputs" / "model.safetensors"
    header = path.read_bytes()[:64]
    assert_leaked(run_payload(api, leak_of(path, len(header), skip=8)), header[8:])
