"""Every rejected request: a 4xx problem+json, and no job, no file, no queue entry left behind."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from tests.integration.conftest import MAX_UPLOAD_BYTES
from tests.integration.helpers import spec, staging_files, submit

INT8 = {"method": "quantize", "kind": "dynamic_int8"}


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/modelpress-pwned",))


def torch_save_like_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}))
        z.writestr("archive/version", "3\n")
    return buffer.getvalue()


def assert_problem(response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    if slug:
        assert problem["type"].endswith("/" + slug), problem["type"]
    return problem


@pytest.mark.usefixtures("nothing_left_behind")
class TestRejectedSubmissions:
    def test_spec_that_is_not_json(self, api, digits_mlp_path):
        problem = assert_problem(submit(api, digits_mlp_path, "{not json"), 422, "spec-invalid")
        assert "JSON" in problem["detail"]

    def test_unknown_method(self, api, digits_mlp_path):
        problem = assert_problem(submit(api, digits_mlp_path, spec({"method": "sparsify", "kind": "x"})), 422, "spec-invalid")
        assert problem["errors"][0]["loc"] == "steps.0"

    def test_amount_out_of_range_names_the_field(self, api, digits_mlp_path):
        problem = assert_problem(
            submit(api, digits_mlp_path, spec({"method": "prune", "kind": "magnitude", "amount": 1.5})), 422, "spec-invalid"
        )
        assert problem["errors"][0]["loc"].endswith("amount")

    def test_unknown_field_is_an_error(self, api, digits_mlp_path):
        problem = assert_problem(submit(api, digits_mlp_path, spec(dict(INT8, bits=4))), 422, "spec-invalid")
        assert "bits" in problem["errors"][0]["loc"]

    def test_missing_model_part(self, api):
        response = api.post("/jobs", data={"spec": json.dumps(spec(INT8))})
        problem = assert_problem(response, 422)
        assert "model" in problem["detail"]

    def test_missing_spec_part(self, api, digits_mlp_path):
        response = api.post("/jobs", files={"model": ("m.safetensors", digits_mlp_path.read_bytes())})
        assert "spec" in assert_problem(response, 422)["detail"]

    def test_pickled_module_is_refused_and_never_unpickled(self, api):
        marker = Path("/tmp/modelpress-pwned")
        marker.unlink(missing_ok=True)
        problem = assert_problem(submit(api, pickle.dumps(Boom()), spec(INT8), filename="model.safetensors"), 422, "upload-unsafe")
        assert "save_file(model.state_dict()" in problem["detail"]
        assert not marker.exists()

    def test_torch_save_zip_is_refused(self, api):
        problem = assert_problem(submit(api, torch_save_like_zip(), spec(INT8), filename="model.pt"), 422, "upload-unsafe")
        assert "torch.save" in problem["detail"]

    def test_unknown_bytes_are_unsupported(self, api):
        assert_problem(submit(api, b"hello, this is not a model", spec(INT8)), 415, "upload-unsupported")

    def test_truncated_safetensors(self, api, digits_mlp_path):
        data = digits_mlp_path.read_bytes()[:5000]
        assert_problem(submit(api, data, spec(INT8)), 422, "upload-invalid")

    def test_wrong_key_names_say_which(self, api, tmp_path):
        import torch
        from safetensors.torch import save_file

        model = torch.nn.Sequential(torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
        state = {k.replace("0.", "fc1.", 1) if k.startswith("0.") else k: v for k, v in model.state_dict().items()}
        path = tmp_path / "renamed.safetensors"
        save_file(state, str(path))
        problem = assert_problem(submit(api, path, spec(INT8)), 422, "upload-invalid")
        assert "0.weight" in problem["missing"] and "fc1.weight" in problem["unexpected"]

    def test_wrong_shapes_say_which(self, api, tmp_path):
        import torch
        from safetensors.torch import save_file

        model = torch.nn.Sequential(torch.nn.Linear(784, 200), torch.nn.ReLU(), torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
        path = tmp_path / "narrow.safetensors"
        save_file(model.state_dict(), str(path))
        problem = assert_problem(submit(api, path, spec(INT8)), 422, "upload-invalid")
        assert problem["mismatched"][0] == {"key": "0.weight", "expected": [300, 784], "got": [200, 784]}  # the spec said 300 wide

    def test_unknown_architecture(self, api, digits_mlp_path):
        bad = spec(INT8)
        bad["model"] = dict(bad["model"], architecture="transformer9000")
        problem = assert_problem(submit(api, digits_mlp_path, bad), 422, "spec-invalid")
        assert "mlp" in problem["detail"]

    def test_oversized_upload(self, api):
        big = b"\0" * (MAX_UPLOAD_BYTES + 1024)
        problem = assert_problem(submit(api, big, spec(INT8)), 413, "upload-too-large")
        assert problem["limit"] == MAX_UPLOAD_BYTES

    def test_lowrank_that_cannot_apply_is_refused_at_submit(self, api, digits_mlp_path, digits_lenet5_path):
        problem = assert_problem(submit(api, digits_mlp_path, spec({"method": "lowrank", "kind": "tucker2", "rank": 4})),
                                 422, "spec-invalid")
        assert problem["errors"][0]["loc"] == "steps.0" and "no k x k Conv2d" in problem["detail"]
        conv_svd = spec({"method": "lowrank", "kind": "svd", "rank": 2, "include": ["features.3"]})
        conv_svd["model"] = {"architecture": "lenet5", "config": {}}
        problem = assert_problem(submit(api, digits_lenet5_path, conv_svd), 422, "spec-invalid")
        assert "lowrank:tucker2" in problem["detail"]

    def test_safetensors_output_for_int8_is_refused_at_submit(self, api, digits_mlp_path):
        problem = assert_problem(submit(api, digits_mlp_path, spec(INT8, outputs=["safetensors"])), 422, "spec-invalid")
        assert "torchscript" in problem["detail"]


def test_unknown_job_is_404(api):
    assert_problem(api.get("/jobs/j_nope"), 404, "job-not-found")
    assert_problem(api.get("/jobs/j_nope/metrics"), 404, "job-not-found")
    assert_problem(api.get("/jobs/j_nope/artifacts/model.safetensors"), 404, "job-not-found")


def test_unknown_route_is_a_problem_too(api):
    assert_problem(api.get("/no/such/route"), 404)


def test_a_claimed_multi_gigabyte_body_is_refused_before_it_is_read(stack, artifact_root):
    """Content-Length says 5 GB; the server answers 413 at once without waiting for (or storing) a byte."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(stack.base_url)
    request = (
        f"POST /jobs HTTP/1.1\r\nHost: {url.hostname}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 5000000000\r\n\r\n--x\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in head
    assert json.loads(body)["type"].endswith("/upload-too-large")
    assert staging_files(artifact_root) == []
