"""Model intake over HTTP: TorchScript uploads of a model the zoo does not know, zip bombs,
traversal names, tampered archives, eval data, ONNX output, /capabilities and /architectures."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from tests.integration.helpers import submit, wait
from tests.torchscript_archives import FromFile, archive
from tests.zips import CLASSES, EVIL_PICKLE, FEATURES, entry_name, rezip, torchscript_bytes, zip_bomb

TS_SPEC = {
    "model": {"format": "torchscript", "input": {"shape": [1, FEATURES], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.5}],
    "evaluate": {"latency": False},
}


def eval_npz(n: int = 64) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez(buffer, inputs=rng.normal(size=(n, FEATURES)).astype(np.float32), labels=rng.integers(0, CLASSES, n))
    return buffer.getvalue()


def test_torchscript_prune_to_onnx_with_eval_accuracy(api):
    job_spec = {**TS_SPEC, "outputs": ["torchscript", "onnx"]}
    response = api.post(
        "/jobs",
        files={"model": ("m.pt", torchscript_bytes(), "application/zip"), "eval": ("e.npz", eval_npz(), "application/zip")},
        data={"spec": json.dumps(job_spec)},
    )
    assert response.status_code == 202, response.text
    assert [i["name"] for i in response.json().get("inputs", [])] in ([], ["model.torchscript.pt", "eval.npz"])
    job = wait(api, response.json()["id"], timeout=60)
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    assert metrics["after"]["sparsity"] > 0.4
    check = metrics["artifacts"]["model.onnx"]["check"]
    assert check["passed"] is True and check["max_abs_diff"] <= check["tolerance"]
    quality = metrics["quality"]
    assert quality["count"] == 64 and 0 <= quality["top1_accuracy_after"] <= 1
    assert set(metrics["provenance"]["input_sha256"]) == {"model", "eval.npz"}
    onnx_bytes = api.get(f"/jobs/{job['id']}/artifacts/model.onnx")
    assert onnx_bytes.status_code == 200 and len(onnx_bytes.content) > 0


def test_capabilities_and_architectures(api):
    caps = api.get("/capabilities").json()
    int8 = next(m for m in caps["methods"] if m["kind"] == "dynamic_int8")
    assert int8["formats"]["torchscript"]["supported"] is False
    assert "properties" in int8["schema"]
    archs = api.get("/architectures")
    assert archs.status_code == 200
    assert "mlp" in archs.json()["architectures"]
    assert "config_schema" in archs.json()["architectures"]["mlp"]


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/" + slug)
    return response.json()


@pytest.mark.usefixtures("nothing_left_behind")
class TestRejectedIntake:
    def test_zip_bomb(self, api):
        _problem(submit(api, zip_bomb(64), TS_SPEC, filename="m.pt"), 422, "upload-unsafe")

    @pytest.mark.parametrize("name", ["../../evil.py", "/etc/cron.d/x", "m\\..\\x"])
    def test_path_traversal(self, api, name):
        data = rezip(torchscript_bytes(), add={name: b"x"})
        _problem(submit(api, data, TS_SPEC, filename="m.pt"), 422, "upload-unsafe")

    def test_tampered_data_pkl(self, api):
        data = torchscript_bytes()
        evil = rezip(data, replace={entry_name(data, "/data.pkl"): EVIL_PICKLE})
        problem = _problem(submit(api, evil, TS_SPEC, filename="m.pt"), 422, "upload-unsafe")
        assert "os system" in problem["detail"]

    def test_dynamic_int8_on_torchscript(self, api):
        job_spec = {**TS_SPEC, "steps": [{"method": "quantize", "kind": "dynamic_int8"}]}
        problem = _problem(submit(api, torchscript_bytes(), job_spec, filename="m.pt"), 422, "spec-invalid")
        assert "quantize_dynamic" in problem["detail"]

    def test_torchscript_without_input(self, api):
        job_spec = {**TS_SPEC, "model": {"format": "torchscript"}}
        _problem(submit(api, torchscript_bytes(), job_spec, filename="m.pt"), 422, "spec-invalid")

    def test_a_file_reading_op_is_refused_at_submit(self, api):
        evil = archive(torch.jit.script(FromFile()))
        problem = _problem(submit(api, evil, TS_SPEC, filename="m.pt"), 422, "upload-unsafe")
        assert problem["op"] == "aten::from_file" and problem["title"] == "The TorchScript code uses an op modelpress refuses"
        assert "aten::from_file" in problem["detail"] and "FromFile.forward" in problem["detail"]

    def test_code_that_does_not_parse_is_refused_at_submit(self, api):
        data = torchscript_bytes()
        broken = rezip(data, replace={entry_name(data, ".py"): b"def forward(self, x:\n  return x\n"})
        problem = _problem(submit(api, broken, TS_SPEC, filename="m.pt"), 422, "upload-invalid")
        assert "not valid syntax" in problem["detail"]


def test_tampered_code_fails_the_job_with_a_reason(api):
    data = torchscript_bytes()
    code = entry_name(data, ".py")
    # valid syntax, so the submit-time scan passes it; torch.jit.load then finds no class Odd
    broken = rezip(data, replace={code: b"def forward(self, x):\n  return x\n"})
    response = submit(api, broken, TS_SPEC, filename="m.pt")
    assert response.status_code == 202, response.text
    job = wait(api, response.json()["id"], timeout=60)
    assert job["state"] == "failed"
    assert job["error"]["type"].endswith("/upload-invalid")
