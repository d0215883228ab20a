"""Quantize runtimes over HTTP on the digits MLP with real calibration data (real digits): the artifact is
written for its runtime, measured in it (the metrics say which), loads there and keeps accuracy."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from modelpress.datasets import digits_28x28
from tests.integration.helpers import spec, wait
from tests.integration.test_job_flow import download

CASES = {
    # name: (quantize step, artifact, runtime)
    "static_onnxruntime": ({"method": "quantize", "kind": "static_int8", "runtime": "onnxruntime"}, "model.onnx", "onnxruntime"),
    "dynamic_onnxruntime": ({"method": "quantize", "kind": "dynamic_int8", "runtime": "onnxruntime"}, "model.onnx", "onnxruntime"),
    "static_inductor": ({"method": "quantize", "kind": "static_int8", "runtime": "inductor"}, "model.pt2", "inductor"),
}


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def finished(stack, digits_mlp_path):
    import httpx

    x_train, _, x_test, y_test = digits_28x28()
    calibration = npz(inputs=x_train[:256])
    evaluation = npz(inputs=x_test, labels=y_test)
    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        ids = {}
        for name, (step, _, _) in CASES.items():
            files = {"model": ("m.safetensors", digits_mlp_path.read_bytes()), "calibration": ("c.npz", calibration),
                     "eval": ("e.npz", evaluation)}
            response = api.post("/jobs", files=files, data={"spec": json.dumps(spec(step, evaluate={"batch_sizes": [32]}))})
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        return {name: wait(api, job_id, timeout=300) for name, job_id in ids.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_runtime_end_to_end(name, finished, api, tmp_path, digits_test_set):
    step, artifact, runtime = CASES[name]
    job = finished[name]
    assert job["state"] == "succeeded", job["error"]
    assert [a["name"] for a in job["artifacts"]] == [artifact]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    print(f"\n{name}: " + json.dumps({"verdict": metrics["verdict"], "quality": metrics["quality"], "first_call_s": metrics["after"].get("first_call_s")}))
    assert metrics["after"]["latency_ms"]["runtime"] == runtime == metrics["verdict"]["runtime"]
    assert metrics["after"]["dtypes"]["int8"] >= 784 * 300 + 300 * 100 + 100 * 10
    assert metrics["quality"]["accuracy_drop"] <= 0.02 and metrics["fidelity"]["cosine_similarity"] > 0.99
    assert metrics["verdict"]["smaller"] and "speedup" in metrics["verdict"]
    if step["kind"] == "static_int8":
        assert any("given calibration data (256 samples)" in n for n in metrics["notes"])
    path = download(api, job, artifact, tmp_path)
    x, y = digits_test_set
    if runtime == "onnxruntime":  # the documented loader: a plain onnxruntime session
        import onnxruntime as ort

        assert metrics["artifacts"][artifact]["check"]["int8_weight_tensors"] == 3
        assert "speedups_vs_float32_same_runtime" in metrics["verdict"]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        predicted = session.run(None, {"input": np.asarray(x, dtype=np.float32)})[0].argmax(1)
        assert (predicted == np.asarray(y)).mean() >= metrics["quality"]["top1_accuracy_before"] - 0.02
    else:  # compiled once per measured shape before timing
        assert set(metrics["after"]["first_call_s"]) == {"32"}
        assert metrics["artifacts"][artifact]["check"]["dynamic_batch"]


@pytest.mark.parametrize(
    "step,extra,needle",
    [
        ({"method": "quantize", "kind": "dynamic_int8", "runtime": "inductor"}, {}, "no fast dynamic int8 path in inductor"),
        ({"method": "quantize", "kind": "fp16", "runtime": "onnxruntime"}, {}, "no onnxruntime path"),
        ({"method": "quantize", "kind": "static_int8", "runtime": "onnxruntime"}, {"outputs": ["torchscript"]}, "writes its artifact as 'onnx'"),
        ({"method": "quantize", "kind": "static_int8", "runtime": "jax"}, {}, "runtime"),
    ],
)
def test_impossible_runtimes_are_422_and_store_nothing(api, digits_mlp_path, nothing_left_behind, step, extra, needle):
    from tests.integration.helpers import submit

    response = submit(api, digits_mlp_path, spec(step, **extra))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("spec-invalid") and needle in json.dumps(problem)
