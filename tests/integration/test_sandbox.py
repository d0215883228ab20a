"""The sandbox around user model code, on (the default), against a real stack: TorchScript payloads
that read, leak and overwrite files from ``forward`` are stopped; a normal TorchScript job still works.

The same payloads succeed against a stack with the sandbox off (test_sandbox_off.py): that is what
shows these tests see the attacks."""

from __future__ import annotations

import io
import secrets

import httpx
import pytest
import torch

from tests.integration.conftest import start_stack
from tests.integration.helpers import spec, submit, wait
from tests.integration.sandbox_attacks import (
    STACK_ENV,
    Overwrite,
    everything_said_about,
    leak_of,
    redis_aof,
    run_payload,
    scripted,
    worker_log_line,
)


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory):
    s = start_stack(tmp_path_factory.mktemp("sandbox-on"), **STACK_ENV)
    yield s
    s.stop()


@pytest.fixture
def api(sandboxed):
    with httpx.Client(base_url=sandboxed.base_url, timeout=60) as client:
        yield client


def assert_blocked(api, sandboxed, job: dict, secret: bytes) -> None:
    assert job["state"] == "failed", job
    assert "Permission denied" in job["error"]["detail"]  # stopped by the sandbox, not by some other failure
    said = everything_said_about(api, job, sandboxed.log_dir)
    assert secret.decode("latin-1") not in said


def test_the_worker_probed_and_confines_user_code(sandboxed):
    line = worker_log_line(sandboxed.log_dir, "sandbox: ")
    assert "INFO" in line and line.endswith("sandbox: user model code (torchscript) runs in a confined child")


def test_a_secret_file_s_bytes_never_reach_the_job(api, sandboxed):
    secret_path = sandboxed.data_dir / "secret.txt"
    secret_path.write_text(f"secret-{secrets.token_hex(12)}")
    secret = secret_path.read_bytes()
    assert_blocked(api, sandboxed, run_payload(api, leak_of(secret_path, len(secret))), secret)


def test_a_shared_mapping_cannot_overwrite_a_file(api, sandboxed):
    target = sandboxed.data_dir / "target.txt"
    target.write_text("original content of a file the worker can write")
    before = target.read_bytes()
    job = run_payload(api, scripted(Overwrite(str(target), len(before))))
    assert job["state"] == "failed" and "Permission denied" in job["error"]["detail"]
    assert target.read_bytes() == before


def test_the_redis_password_cannot_be_read(api, sandboxed):
    path = sandboxed.data_dir / "redis" / "redis.password"
    secret = path.read_bytes()
    assert_blocked(api, sandboxed, run_payload(api, leak_of(path, len(secret))), secret)


def test_the_redis_append_only_file_cannot_be_read(api, sandboxed):
    path = redis_aof(sandboxed.data_dir)
    head = path.read_bytes()[:48]
    assert len(head) == 48
    assert_blocked(api, sandboxed, run_payload(api, leak_of(path, len(head))), head)


def test_another_job_s_artifact_cannot_be_read(api, sandboxed, digits_mlp_path):
    other = wait(api, submit(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 0.5})).json()["id"])
    assert other["state"] == "succeeded", other["error"]
    path = sandboxed.data_dir / "artifacts" / other["id"] / "outputs" / "model.safetensors"
    header = path.read_bytes()[:64]
    job = run_payload(api, leak_of(path, len(header), skip=8))
    assert_blocked(api, sandboxed, job, header[8:])  # the safetensors JSON header, after its 8-byte length


def test_a_normal_torchscript_job_succeeds_in_the_sandbox(api, digits_mlp_path):
    from safetensors.torch import load_file

    from modelpress_torch.architectures import build_model

    model = build_model("mlp", {"sizes": [784, 300, 100, 10]})
    model.load_state_dict(load_file(str(digits_mlp_path)))
    job_spec = {"model": {"format": "torchscript", "input": {"shape": [1, 784], "dtype": "float32"}},
                "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}],
                "evaluate": {"latency": False}, "outputs": ["torchscript", "onnx"]}
    response = submit(api, scripted(model), job_spec, filename="digits.pt")
    assert response.status_code == 202, response.text
    job = wait(api, response.json()["id"], timeout=300)
    assert job["state"] == "succeeded", job["error"]
    lines = [line["message"] for line in api.get(f"/jobs/{job['id']}/logs").json()["lines"]]
    assert any(line.startswith("sandbox child started, confined (Landlock ABI") for line in lines), lines
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["after"]["sparsity"] > 0.4 and metrics["fidelity"]["cosine_similarity"] > 0.9
    artifact = api.get(f"/jobs/{job['id']}/artifacts/model.torchscript.pt")
    assert artifact.status_code == 200
    reloaded = torch.jit.load(io.BytesIO(artifact.content))
    assert reloaded(torch.zeros(1, 784)).shape == (1, 10)
