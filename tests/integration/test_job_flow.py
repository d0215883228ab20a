"""The spine, end to end over HTTP: submit, poll, download, load with the documented one-liners."""

from __future__ import annotations

import base64
import hashlib
import io
import warnings

import pytest
import torch
from safetensors.torch import load_file

from modelpress.examples import MLP_SIZES, accuracy
from tests.integration.helpers import spec, submit, wait

PRUNE_90 = {"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def user_mlp() -> torch.nn.Module:
    """The user's own class: the plain nn.Sequential the spec documents."""
    a, b, c, d = MLP_SIZES
    return torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.ReLU(), torch.nn.Linear(b, c), torch.nn.ReLU(), torch.nn.Linear(c, d))


def download(api, job: dict, name: str, tmp_path):
    response = api.get(f"/jobs/{job['id']}/artifacts/{name}")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    digest = base64.b64encode(hashlib.sha256(response.content).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:"
    info = next(a for a in job["artifacts"] if a["name"] == name)
    assert info["sha256"] == hashlib.sha256(response.content).hexdigest()
    path = tmp_path / name
    path.write_bytes(response.content)
    return path


def test_dynamic_int8_is_smaller_and_keeps_accuracy(api, digits_mlp_path, digits_test_set, tmp_path):
    response = submit(api, digits_mlp_path, spec(INT8))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued"
    assert response.headers["location"].endswith(f"/jobs/{job['id']}")

    job = wait(api, job["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"]["fraction"] == 1.0
    artifact = download(api, job, "model.torchscript.pt", tmp_path)
    assert artifact.stat().st_size < digits_mlp_path.stat().st_size / 3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compressed = torch.jit.load(str(artifact))  # the README's one-liner
        original = user_mlp()
        original.load_state_dict(load_file(str(digits_mlp_path)))
        x, y = digits_test_set
        acc_before, acc_after = accuracy(original.eval(), x, y), accuracy(compressed, x, y)
    assert acc_before > 0.9
    assert abs(acc_before - acc_after) <= 0.01

    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    for side in ("before", "after"):
        for field in ("file_bytes", "parameters", "nonzero_parameters", "latency_ms"):
            assert field in metrics[side]
        latency = metrics[side]["latency_ms"]
        assert latency["p50"] > 0 and latency["p90"] >= latency["p50"]
        assert latency["batch_size"] == 1 and latency["threads"] >= 1
    assert metrics["after"]["latency_ms"]["runtime"] == "torchscript"
    assert metrics["before"]["file_bytes"] == digits_mlp_path.stat().st_size
    assert metrics["fidelity"]["cosine_similarity"] > 0.99
    assert metrics["verdict"]["smaller"] is True
    assert isinstance(metrics["verdict"]["faster"], bool)


def test_prune_then_quantize_pipeline(api, digits_mlp_path, tmp_path):
    job = wait(api, submit(api, digits_mlp_path, spec(PRUNE_90, INT8)).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["artifacts"][0]["bytes"] * 3 <= digits_mlp_path.stat().st_size
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["after"]["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert [s["label"] for s in metrics["steps"]] == ["prune:magnitude", "quantize:dynamic_int8"]


def test_pruned_safetensors_drop_into_the_users_class(api, digits_mlp_path, tmp_path):
    job = wait(api, submit(api, digits_mlp_path, spec(dict(PRUNE_90, scope="layer"), outputs=["safetensors", "torchscript"])).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert {a["name"] for a in job["artifacts"]} == {"model.safetensors", "model.torchscript.pt"}
    state = load_file(str(download(api, job, "model.safetensors", tmp_path)))
    model = user_mlp()
    model.load_state_dict(state, strict=True)  # the README's one-liner
    for name in ("0.weight", "2.weight", "4.weight"):
        zeros = float((state[name] == 0).float().mean())
        assert zeros == pytest.approx(0.9, abs=0.005), name  # real zeros, per layer, no masks
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in state)
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["verdict"]["smaller"] is False  # honest: dense zeros take the same space
    assert any("not smaller" in w for w in metrics["verdict"]["warnings"])


def test_job_that_fails_in_the_worker_says_why(api, digits_mlp_path):
    bad = dict(PRUNE_90, include=["no_such_layer*"])
    # with an architecture the worker's inspector sees at submit that the step cannot apply: a 422, nothing runs
    refused = submit(api, digits_mlp_path, spec(bad))
    assert refused.status_code == 422 and "no Linear/Conv layer matches" in refused.text
    # a TorchScript upload has no architecture to check at submit: the same step fails in the worker, with the reason
    from modelpress_torch.architectures import build_model

    model = build_model("mlp", {"sizes": MLP_SIZES})
    model.load_state_dict(load_file(str(digits_mlp_path)))
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model.eval()), buffer)
    scripted = {"model": {"format": "torchscript", "input": {"shape": [1, MLP_SIZES[0]], "dtype": "float32"}}, "steps": [bad]}
    response = submit(api, buffer.getvalue(), scripted, filename="model.pt")
    assert response.status_code == 202, response.text[:500]
    job = wait(api, response.json()["id"])
    assert job["state"] == "failed"
    assert "no Linear/Conv layer matches" in job["error"]["detail"]
    assert job["error"]["type"].startswith("https://modelpress.dev/problems/")
    assert job["artifacts"] == []
    assert api.get(f"/jobs/{job['id']}/metrics").status_code == 409
    listed = api.get("/jobs", params={"state": "failed", "limit": 200}).json()["items"]
    assert next(j for j in listed if j["id"] == job["id"]) == api.get(f"/jobs/{job['id']}").json()


def test_list_jobs_newest_first_with_filter_and_pages(api, digits_mlp_path):
    first = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
    second = submit(api, digits_mlp_path, spec(INT8)).json()["id"]
    wait(api, first), wait(api, second)
    page = api.get("/jobs", params={"limit": 1}).json()
    assert page["items"][0]["id"] == second and page["next_cursor"] == 1
    assert api.get("/jobs", params={"limit": 1, "cursor": 1}).json()["items"][0]["id"] == first
    # the status read (StatusReadFastPath, below the routing) says exactly what the list's JobView says
    status = api.get(f"/jobs/{second}")
    assert status.headers["content-type"] == "application/json"
    assert status.json() == page["items"][0]
    failed = api.get("/jobs", params={"state": "failed", "limit": 200}).json()["items"]
    assert all(j["state"] == "failed" for j in failed)


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["workers"][0]["queues"] == ["cpu"]


def test_cuda_jobs_go_to_the_gpu_queue_and_cpu_jobs_never_do(stack, api, digits_mlp_path):
    """Declare both queues as a GPU worker would; a cpu job must not be copied into the gpu list."""
    import redis
    from kombu import Connection

    from modelpress_core.queue import CELERY_QUEUES

    with Connection(stack.redis_url) as connection:
        for queue in CELERY_QUEUES:
            queue(connection.default_channel).declare()
    client = redis.Redis.from_url(stack.redis_url)
    gpu_before = client.llen("gpu")
    cuda_job = submit(api, digits_mlp_path, spec(PRUNE_90, device="cuda")).json()
    assert cuda_job["queue"] == "gpu"
    cpu_job = wait(api, submit(api, digits_mlp_path, spec(INT8)).json()["id"])
    assert cpu_job["state"] == "succeeded" and cpu_job["queue"] == "cpu"
    assert client.llen("gpu") == gpu_before + 1  # only the cuda job, waiting for a GPU worker
    assert api.get(f"/jobs/{cuda_job['id']}").json()["state"] == "queued"
    # the shared stack has no GPU worker: cancel the waiting job, or it holds the stack busy until gpu_wait_s
    # and tests that wait for an idle stack (test_observability) wait on it
    cancelled = api.post(f"/jobs/{cuda_job['id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    for message in client.lrange("gpu", 0, -1):  # and drop its broker message, which no GPU worker here will take
        if cuda_job["id"].encode() in message:
            client.lrem("gpu", 1, message)
    assert client.llen("gpu") == gpu_before
