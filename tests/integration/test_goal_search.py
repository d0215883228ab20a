"""Goal-driven search over HTTP on the digits MLP with real eval data: a goal that is met stops early,
one that cannot be met still succeeds with the best candidate and a diagnosis, an accuracy goal
without eval data is refused at submit time, and the analyze step works alone."""

from __future__ import annotations

import io
import json
import warnings

import jsonschema
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelpress.datasets import digits_28x28
from modelpress_core.metrics import metrics_json_schema
from tests.integration.helpers import MLP_MODEL, wait
from tests.integration.test_bad_input import assert_problem
from tests.integration.test_job_flow import download

SENSITIVITY = {"method": "analyze", "kind": "sensitivity", "compress": "quantize"}


def npz(labels: bool = True) -> bytes:
    _, _, x, y = digits_28x28()
    buffer = io.BytesIO()
    np.savez(buffer, inputs=x, **({"labels": y} if labels else {}))
    return buffer.getvalue()


def post(api, model_path, job_spec: dict, **parts: bytes):
    files = {"model": ("model.safetensors", model_path.read_bytes(), "application/octet-stream"),
             **{part: (f"{part}.npz", data, "application/zip") for part, data in parts.items()}}
    return api.post("/jobs", files=files, data={"spec": json.dumps(job_spec)})


@pytest.fixture(scope="module")
def jobs(stack, digits_mlp_path):
    """Submit the three jobs at once (the worker runs them in turn), then wait for all."""
    import httpx

    fp32 = digits_mlp_path.stat().st_size
    specs = {
        # int8 is ~3.8x smaller: fp16 (at most 2x) is skipped, dynamic int8 meets it, nothing after it runs
        "met": ({"model": MLP_MODEL, "goal": {"max_size_bytes": fp32 // 3, "max_accuracy_drop": 0.02}}, {"eval": npz()}),
        "unmet": ({"model": MLP_MODEL, "goal": {"max_size_bytes": 1000, "max_accuracy_drop": 0.01}, "evaluate": {"batch_sizes": [1]}},
                  {"eval": npz()}),  # no train part: the training rungs are skipped (keeps this test quick)
        "analyze": ({"model": MLP_MODEL, "steps": [SENSITIVITY], "evaluate": {"latency": False}}, {"eval": npz()}),
    }
    with httpx.Client(base_url=stack.base_url, timeout=60) as api:
        ids = {}
        for name, (job_spec, parts) in specs.items():
            response = post(api, digits_mlp_path, job_spec, **parts)
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        return {name: wait(api, job_id, timeout=300) for name, job_id in ids.items()}


def test_a_met_goal_stops_at_the_first_candidate_that_meets_it(jobs, api, digits_mlp_path, digits_test_set, tmp_path):
    job = jobs["met"]
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    jsonschema.validate(metrics, metrics_json_schema())
    assert [c["label"] for c in metrics["candidates"]] == ["dynamic int8"]  # later candidates never ran
    chosen = metrics["candidates"][0]
    assert chosen["meets_goal"] and chosen["chosen"] and chosen["pareto"] and chosen["error"] is None
    assert metrics["goal"]["met"] is True and metrics["goal"]["diagnosis"] is None
    assert metrics["search"]["stopped"] == "goal met"
    reasons = {s["label"]: s["reason"] for s in metrics["search"]["skipped"]}
    assert reasons["fp16"].startswith("at most ~2x smaller")
    assert reasons["static int8"] == "not needed: 'dynamic int8' met the goal"
    assert job["summary"]["goal_met"] is True and job["summary"]["chosen"] == "dynamic int8"
    assert [a["name"] for a in job["artifacts"]] == ["model.torchscript.pt"]
    path = download(api, job, "model.torchscript.pt", tmp_path)
    assert path.stat().st_size == chosen["file_bytes"] <= digits_mlp_path.stat().st_size // 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.load(str(path))
        x, y = digits_test_set
        accuracy = float((model(torch.as_tensor(x)).argmax(1).numpy() == y).mean())
    assert accuracy == pytest.approx(chosen["accuracy"], abs=1e-6)
    assert api.get(f"/jobs/{job['id']}/report").status_code == 200


def test_an_unreachable_goal_still_succeeds_with_the_best_candidate_and_a_diagnosis(jobs, api):
    job = jobs["unmet"]
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    jsonschema.validate(metrics, metrics_json_schema())
    rows = metrics["candidates"]
    assert len(rows) >= 3 and metrics["search"]["stopped"] == "ladder exhausted"
    assert [r["chosen"] for r in rows].count(True) == 1 and not any(r["meets_goal"] for r in rows)
    assert any(r["pareto"] for r in rows)
    chosen = next(r for r in rows if r["chosen"])
    assert chosen["accuracy_drop"] <= 0.01  # accuracy is kept first; the smallest such artifact is chosen
    assert chosen["file_bytes"] == min(r["file_bytes"] for r in rows if not r["error"] and r["accuracy_drop"] <= 0.01)
    assert metrics["goal"]["met"] is False
    diagnosis = metrics["goal"]["diagnosis"]
    assert diagnosis.startswith(f"goal not met; returning the best candidate found ('{chosen['label']}')")
    assert "max_size_bytes=1,000: no candidate was that small" in diagnosis and "layer '0' (Linear 300x784)" in diagnosis
    assert metrics["after"]["file_bytes"] == chosen["file_bytes"]
    assert job["artifacts"] and job["summary"]["goal_met"] is False
    assert "goal search" in metrics["notes"][0]
    reasons = {s["label"]: s["reason"] for s in metrics["search"]["skipped"]}
    assert reasons["structured prune 50% + finetune + static int8"] == "needs the 'train' data part"
    assert "needs the 'train' data part" in diagnosis


def test_analyze_step_alone_measures_every_layer_and_leaves_the_model_unchanged(jobs, api, digits_mlp_path, tmp_path):
    job = jobs["analyze"]
    assert job["state"] == "succeeded", job["error"]
    metrics = api.get(f"/jobs/{job['id']}/metrics").json()
    jsonschema.validate(metrics, metrics_json_schema())
    table = metrics["sensitivity"]
    assert table["kind"] == "quantize" and table["metric"] == "top1" and table["proxy"] is False
    assert [(r["name"], r["type"]) for r in table["layers"]] == [("0", "Linear"), ("2", "Linear"), ("4", "Linear")]
    assert all(abs(r["delta"]) < 0.05 for r in table["layers"])
    path = download(api, job, "model.safetensors", tmp_path)
    original, after = load_file(str(digits_mlp_path)), load_file(str(path))
    assert all(torch.equal(original[k], after[k]) for k in original)


@pytest.mark.usefixtures("nothing_left_behind")
def test_accuracy_goal_without_eval_data_is_422(api, digits_mlp_path):
    problem = assert_problem(post(api, digits_mlp_path, {"model": MLP_MODEL, "goal": {"max_accuracy_drop": 0.005}}), 422, "spec-invalid")
    assert problem["errors"][0]["loc"] == "goal.max_accuracy_drop" and "'eval' data part" in problem["detail"]
    problem = assert_problem(
        post(api, digits_mlp_path, {"model": MLP_MODEL, "goal": {"max_accuracy_drop": 0.005}}, eval=npz(labels=False)), 422, "spec-invalid"
    )
    assert problem["errors"][0]["loc"] == "goal.metric"
    assert_problem(post(api, digits_mlp_path, {"model": MLP_MODEL}), 422, "spec-invalid")  # neither steps nor goal
