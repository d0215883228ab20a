"""run_search on the digits MLP: the time budget stops the ladder between candidates, a failing
candidate is a row (not a failed job), and when every candidate fails the unchanged model is returned."""

from __future__ import annotations

import json

import jsonschema

from modelpress_core.metrics import metrics_json_schema
from modelpress_core.spec import JobSpec
from worker.pipeline import prepare
from worker.search import Candidate, run_search

MLP = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}}
INT8 = ({"method": "quantize", "kind": "dynamic_int8"},)
BROKEN = ({"method": "prune", "kind": "magnitude", "amount": 0.5, "include": ["no-such-layer"]},)  # fails at run time


def search(path, tmp_path, goal: dict, ladder: list[Candidate]):
    spec = JobSpec.model_validate({"model": MLP, "goal": goal, "evaluate": {"latency": False}})
    prepared = prepare(spec, path, None, lambda *a: None)
    result = run_search(prepared, tmp_path, progress=lambda *a: None, check_cancelled=lambda: None, warmup=1, runs=2, ladder=ladder)
    metrics = json.loads(json.dumps(result.metrics, default=str))
    metrics["provenance"] = {"modelpress": "0", "torch": "0", "python": "3", "machine": "x", "cpu_capability": "x",
                             "cpu": {"model": "x", "flags": {}}, "quantized_engine": "x", "device": "cpu", "seed": 0, "spec": {},
                             "input_sha256": {}}
    jsonschema.validate(metrics, metrics_json_schema())
    return result, metrics


def test_the_time_budget_stops_the_ladder_between_candidates(digits_mlp_path, tmp_path):
    ladder = [Candidate("first", 1, INT8), Candidate("second", 2, INT8)]
    result, metrics = search(digits_mlp_path, tmp_path, {"max_size_bytes": 10, "max_seconds": 0.001}, ladder)
    assert [c["label"] for c in metrics["candidates"]] == ["first"]  # the first always runs
    assert metrics["search"]["stopped"] == "time budget"
    assert metrics["search"]["skipped"] == [{"label": "second", "reason": "time budget of 0.001 s spent"}]
    assert "the time budget ran out after 1 candidate(s)" in metrics["goal"]["diagnosis"]
    assert result.outputs and result.summary["chosen"] == "first"


def test_failing_candidates_are_rows_and_the_unchanged_model_is_the_last_resort(digits_mlp_path, tmp_path):
    result, metrics = search(digits_mlp_path, tmp_path, {"max_size_bytes": 10}, [Candidate("broken", 1, BROKEN)])
    broken, original = metrics["candidates"]
    assert broken["error"].startswith("InvalidSpec: step prune:magnitude: no Linear/Conv layer matches") and not broken["pareto"]
    assert original["label"] == "original (no compression)" and original["chosen"] and original["steps"] == []
    assert [o.name for o in result.outputs] == ["model.safetensors"]
    assert metrics["goal"]["met"] is False
