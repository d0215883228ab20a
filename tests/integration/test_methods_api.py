"""Every new step kind end to end over HTTP on the digits MLP: the artifact loads with the documented
loader, really is what the kind promises (fewer parameters, int8, zeros) and keeps accuracy."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from modelpress.artifacts import load_pruned
from modelpress.examples import accuracy
from tests.integration.helpers import spec, submit, wait
from tests.integration.test_job_flow import download, user_mlp

STRUCT = {"method": "prune", "kind": "structured", "amount": 0.3, "round_to": 4}
CASES = {
    # name: (steps, outputs, loader, max accuracy drop)
    "random": ([{"method": "prune", "kind": "random", "amount": 0.2, "scope": "layer"}], [], "plain", 0.15),  # a baseline: it hurts
    "two_four": ([{"method": "prune", "kind": "magnitude", "pattern": "2:4"}], [], "plain", 0.05),
    "structured": ([STRUCT], ["safetensors", "torchscript"], "manifest", 0.08),
    "weight_only_int8": ([{"method": "quantize", "kind": "weight_only_int8"}], [], "torchscript", 0.01),
    "fp16": ([{"method": "quantize", "kind": "fp16"}], [], "torchscript", 0.01),
    "bf16": ([{"method": "quantize", "kind": "bf16"}], [], "torchscript", 0.02),
    "static_int8": ([{"method": "quantize", "kind": "static_int8"}], [], "torchscript", 0.03),
    "structured_static_int8": ([STRUCT, {"method": "quantize", "kind": "static_int8"}], [], "torchscript", 0.1),
    "lowrank": ([{"method": "lowrank", "kind": "svd", "energy": 0.9}], ["safetensors", "torchscript"], "manifest", 0.05),
}


@pytest.fixture(scope="module")
def finished(stack, digits_mlp_path):
    """Submit every case at once (the worker runs them in turn), then wait for all."""
    import httpx

    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        ids = {}
        for name, (steps, outputs, _, _) in CASES.items():
            response = submit(api, digits_mlp_path, spec(*steps, outputs=outputs) if outputs else spec(*steps))
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        return {name: wait(api, job_id) for name, job_id in ids.items()}


def load(loader: str, path):
    if loader == "manifest":
        return load_pruned(path)  # the documented loader for models that changed shape
    if loader == "plain":
        model = user_mlp()
        model.load_state_dict(load_file(str(path)), strict=True)
        return model.eval()
    return torch.jit.load(str(path))


@pytest.mark.parametrize("name", list(CASES))
def test_kind_end_to_end(name, finished, api, digits_mlp_path, digits_test_set, tmp_path):
    steps, outputs, loader, max_drop = CASES[name]
    job = finished[name]
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    artifact = "model.torchscript.pt" if loader == "torchscript" else "model.safetensors"
    path = download(api, job, artifact, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load(loader, path)
        original = user_mlp()
        original.load_state_dict(load_file(str(digits_mlp_path)))
        x, y = digits_test_set
        acc_before, acc_after = accuracy(original.eval(), x, y), accuracy(model, x, y)
    print(f"\n{name}: " + json.dumps({
        "accuracy": [round(acc_before, 4), round(acc_after, 4)],
        "params": [metrics["before"]["parameters"], metrics["after"]["parameters"]],
        "size_ratio": metrics["verdict"]["size_ratio"], "speedup": metrics["verdict"].get("speedup"),
        "runtime": metrics["after"]["latency_ms"]["runtime"], "cosine": metrics["fidelity"]["cosine_similarity"],
    }))
    assert acc_before - acc_after <= max_drop
    assert metrics["fidelity"]["cosine_similarity"] > 0.9
    assert metrics["after"]["latency_ms"]["runtime"] == ("eager" if loader != "torchscript" else "torchscript")

    after = metrics["after"]
    if name.startswith("structured"):
        assert after["parameters"] < 0.75 * metrics["before"]["parameters"]
        if loader == "manifest":
            assert sum(p.numel() for p in model.parameters()) == after["parameters"]
            assert model[0].out_features < 300 and model[0].out_features % 4 == 0
    if name == "lowrank":
        assert sum(p.numel() for p in model.parameters()) == after["parameters"] < metrics["before"]["parameters"]
    if name == "two_four":
        assert after["sparsity"] == pytest.approx(0.5, abs=1e-3)
    if name in ("weight_only_int8", "static_int8", "fp16", "bf16"):
        assert metrics["verdict"]["smaller"] and metrics["verdict"]["size_ratio"] > 1.8
    if name == "static_int8":
        assert "qint8" in after["dtypes"] and any("synthetic" in n for n in metrics["notes"])
    if name in ("fp16", "bf16"):  # whichever way this CPU measures it, the verdict and its warnings agree
        verdict = metrics["verdict"]
        assert (verdict["faster"] is False) == any(w.startswith("not faster") for w in verdict["warnings"]), verdict
        assert not (verdict["simulated_only"] and verdict["faster"]), verdict


@pytest.mark.parametrize(
    "steps,extra,loc",
    [
        ([{"method": "quantize", "kind": "static_int8"}, STRUCT], {}, "spec"),
        ([{**STRUCT, "amount": 1.5}], {}, "steps.0.prune.structured.amount"),
        ([{"method": "quantize", "kind": "fp16"}], {"outputs": ["safetensors"]}, "spec"),
        ([{"method": "lowrank", "kind": "svd", "rank": 4, "energy": 0.5}], {}, "steps.0.lowrank.svd"),
        ([{"method": "prune", "kind": "structured", "amount": 0.5, "importance": "taylor"}], {}, "steps.0.prune.structured.importance"),
    ],
)
def test_bad_method_configs_are_422(api, digits_mlp_path, steps, extra, loc):
    response = submit(api, digits_mlp_path, spec(*steps, **extra))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("spec-invalid")
    assert any(e["loc"].startswith(loc) or loc == "spec" for e in problem["errors"]), problem
