"""Goal search pieces: the goal in the spec, the Pareto front, the ladder's order and applicability,
the diagnosis, and per-layer sensitivity (deterministic, model unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.goal import Goal
from modelpress_core.spec import JobSpec, parse_spec
from modelpress_core.steps import Sensitivity
from worker.data import Dataset
from worker.methods import StepContext
from worker.methods.sensitivity import most_sensitive, sensitivity
from worker.pipeline import Prepared
from worker.search import LADDER, Candidate, SearchContext, available, diagnose, meets, pareto_flags, plan, shortfall

MLP = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}}


def row(label, size, latency=None, accuracy=None, drop=None, speedup=None, error=None):
    return {"label": label, "steps": [], "file_bytes": size, "latency_ms": latency, "accuracy": accuracy, "accuracy_drop": drop,
            "speedup": speedup, "meets_goal": False, "pareto": False, "chosen": False, "seconds": 0.1, "error": error}


# -- the goal in the spec -------------------------------------------------------------------------

def test_a_goal_alone_is_a_valid_spec_and_steps_become_optional():
    spec = parse_spec(json.dumps({"model": MLP, "goal": {"max_accuracy_drop": 0.005, "min_speedup": 2}}))
    assert spec.steps == [] and spec.goal.needs_eval and spec.goal.needs_labels
    assert parse_spec(json.dumps({"model": MLP, "goal": {"max_size_bytes": 10, "metric": "agreement", "max_accuracy_drop": 0.1}})).goal.needs_labels is False


@pytest.mark.parametrize("extra, loc", [
    ({}, "steps"),  # neither steps nor goal
    ({"goal": {}}, "goal"),  # no constraint
    ({"goal": {"max_size_bytes": 0}}, "goal.max_size_bytes"),
    ({"goal": {"max_accuracy_drop": 0.01, "metric": "top5"}}, "goal.metric"),
    ({"goal": {"min_speedup": 2}, "evaluate": {"latency": False}}, "evaluate.latency"),
    ({"goal": {"min_speedup": 2, "colour": "red"}}, "goal.colour"),
])
def test_bad_goals_are_422_naming_the_field(extra, loc):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(json.dumps({"model": MLP, **extra}))
    assert info.value.status == 422
    assert info.value.extra["errors"][0]["loc"] == loc


# -- Pareto front, meeting the goal, the best when none meets it ----------------------------------

def test_pareto_front_over_size_latency_accuracy():
    rows = [
        row("a", 100, 1.0, 0.90),
        row("b", 200, 0.5, 0.90),  # faster than a: on the front
        row("c", 200, 1.0, 0.90),  # dominated by a and b
        row("d", 300, 2.0, 0.99),  # most accurate: on the front
        row("e", 50, None, 0.5, error="boom"),  # failed: never on the front
        row("f", 100, 1.0, 0.90),  # equal to a: neither dominates the other
    ]
    assert pareto_flags(rows) == [True, True, False, True, False, True]


def test_pareto_skips_dimensions_that_were_not_measured():
    assert pareto_flags([row("a", 100), row("b", 200)]) == [True, False]
    assert pareto_flags([row("a", 100, accuracy=0.5), row("b", 200, accuracy=0.9)]) == [True, True]


def test_meets_and_shortfall():
    goal = Goal(max_size_bytes=1000, max_accuracy_drop=0.01)
    assert meets(row("ok", 900, drop=0.005), goal)
    assert not meets(row("big", 1100, drop=0.0), goal)
    assert not meets(row("no eval", 900), goal)  # an accuracy goal needs a measured drop
    assert not meets(row("err", 10, drop=0.0, error="x"), goal)
    broken_small = row("broken but tiny", 10, drop=0.2)
    close = row("close", 1500, drop=0.0)
    far = row("far", 9000, drop=0.0)
    best = min([broken_small, far, close], key=lambda r: shortfall(r, goal))
    assert best["label"] == "close"  # accuracy first, then the smallest violation


def test_diagnosis_names_the_blocking_constraint_and_layer():
    goal = Goal(max_size_bytes=1000, max_accuracy_drop=0.005)
    rows = [row("dynamic int8", 280_000, drop=0.0), row("prune", 190_000, drop=0.02)]
    layers = [{"name": "0", "type": "Linear", "shape": [300, 784], "bytes": 900}, {"name": "2", "type": "Linear", "shape": [100, 300], "bytes": 100}]
    text = diagnose(rows, goal, rows[0], stopped="ladder exhausted", skipped=[{"label": "fp16", "reason": "at most ~2x smaller"}], layers=layers)
    assert text.startswith("goal not met; returning the best candidate found ('dynamic int8')")
    assert "max_size_bytes=1,000: no candidate was that small; the smallest was 'prune' at 190,000 bytes (190.0x over)" in text
    assert "layer '0' (Linear 300x784) holds 90% of the weight bytes" in text
    assert "not tried: fp16 (at most ~2x smaller)" in text
    assert "max_accuracy_drop" not in text  # 'dynamic int8' kept accuracy: not blocking

    acc_goal = Goal(max_accuracy_drop=0.001)
    rows = [row("a", 100, drop=0.01), row("b", 100, drop=0.02)]
    table = {"kind": "quantize", "metric": "top1", "layers": [{"name": "fc1", "type": "Linear", "delta": 0.002},
                                                              {"name": "fc2", "type": "Linear", "delta": 0.03}]}
    text = diagnose(rows, acc_goal, rows[0], stopped="time budget", skipped=[], sensitivity=table)
    assert "the least was 'a' with a drop of 1.00 points" in text
    assert "the most sensitive layer is 'fc2' (Linear): int8 on it alone costs 0.0300 top1 drop" in text
    assert "the time budget ran out after 2 candidate(s)" in text

    both = [row("small", 500, drop=0.1), row("accurate", 5000, drop=0.0)]
    text = diagnose(both, goal, both[1], stopped="ladder exhausted", skipped=[])
    assert "no candidate met every constraint at once ('small' misses max_accuracy_drop, 'accurate' misses max_size_bytes)" in text
    met = dict(row("x", 1, drop=0.0), meets_goal=True)
    assert diagnose([met], goal, met, stopped="goal met", skipped=[]) is None


# -- the ladder -----------------------------------------------------------------------------------

def search_context(tmp_path: Path, spec: dict, model: nn.Module, data: dict[str, Dataset] | None = None, file_bytes: int = 1_000_000):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\0" * file_bytes)
    job = JobSpec.model_validate(spec)
    prepared = Prepared(spec=job, model_path=path, original=model, device=torch.device("cpu"), example=torch.zeros(1, 4), datasets=data or {})
    return SearchContext(prepared=prepared, goal=job.goal, check_cancelled=lambda: None, deadline=1e18,
                         layer_types={type(m).__name__ for m in model.modules()})


def test_ladder_is_in_cost_order_and_skips_what_cannot_apply(tmp_path):
    assert [c.cost for c in LADDER] == sorted(c.cost for c in LADDER)
    spec = {"model": MLP, "goal": {"max_size_bytes": 400_000}}  # needs 2.5x: fp16 (2x) is hopeless
    runnable, skipped = plan(LADDER, search_context(tmp_path, spec, nn.Sequential(nn.Linear(4, 4))))
    labels = [c.label for c in runnable]
    assert labels[:3] == ["dynamic int8", "dynamic int8 (onnxruntime)", "static int8"]
    reasons = {s["label"]: s["reason"] for s in skipped}
    assert reasons["fp16"] == "at most ~2x smaller; the size goal needs 2.5x"
    assert reasons["dynamic int8, sensitive layers in float"] == "keeping layers in float only helps an accuracy goal"

    conv_only = nn.Sequential(nn.Conv2d(1, 2, 3))
    runnable, skipped = plan(LADDER, search_context(tmp_path, {"model": MLP, "goal": {"min_speedup": 1.1}}, conv_only))
    assert "dynamic int8" not in [c.label for c in runnable]
    assert {s["label"]: s["reason"] for s in skipped}["dynamic int8"] == "the model has no Linear/LSTM/GRU layer"


def test_applicability_reuses_the_spec_rules(tmp_path):
    ts = {"model": {"format": "torchscript", "input": {"shape": [1, 4]}}, "goal": {"max_size_bytes": 10}}
    runnable, skipped = plan(LADDER, search_context(tmp_path, ts, nn.Sequential(nn.Linear(4, 4))))
    assert runnable == []  # every rung needs module surgery or the graph, which a TorchScript upload lacks
    assert "quantize_dynamic cannot swap modules inside a ScriptModule" in {s["label"]: s["reason"] for s in skipped}["dynamic int8"]
    # adding a rung is one line; its data needs are checked
    needs_train = Candidate("finetune", 5, ({"method": "prune", "kind": "magnitude", "amount": 0.5},), needs=("train",))
    _, skipped = plan([needs_train], search_context(tmp_path, {"model": MLP, "goal": {"max_size_bytes": 10}}, nn.Linear(4, 4)))
    assert skipped == [{"label": "finetune", "reason": "needs the 'train' data part"}]
    # outputs asked for by the user rule out candidates that cannot produce them
    runnable, skipped = plan(LADDER, search_context(tmp_path, {"model": MLP, "goal": {"max_size_bytes": 10}, "outputs": ["onnx"]}, nn.Linear(4, 4)))
    assert all(s.get("runtime") == "onnxruntime" for c in runnable if isinstance(c.steps, tuple)
               for s in c.build(None) if s.get("method") == "quantize")  # only the ONNX Runtime rungs write onnx
    assert {"dynamic int8 (onnxruntime)", "static int8 (onnxruntime)"} <= {c.label for c in runnable}
    assert "'onnx' after eager quantization is not offered" in {s["label"]: s["reason"] for s in skipped}["dynamic int8"]


# -- sensitivity ----------------------------------------------------------------------------------

def toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        model[2].weight[0, 0] = 50.0  # one outlier: a per-tensor int8 scale wipes out the rest of this layer
    return model.eval()


def context(seed=0, labels=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 16, generator=g)
    return StepContext(device=torch.device("cpu"), example_input=x[:1], seed=seed, eval=x,
                       eval_labels=toy()(x).argmax(1).detach() if labels else None)


@pytest.mark.parametrize("compress", ["quantize", "prune"])
def test_sensitivity_is_deterministic_and_leaves_the_model_unchanged(compress):
    model = toy()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    step = Sensitivity(compress=compress, **({"amount": 0.8} if compress == "prune" else {}))
    first = sensitivity(model, step, context(), max_layers=30, max_samples=1000)
    second = sensitivity(toy(), step, context(), max_layers=30, max_samples=1000)
    assert first == second
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert first["metric"] == "top1" and first["proxy"] is False and first["baseline"] == 1.0
    assert [r["name"] for r in first["layers"]] == ["0", "2", "4"]
    if compress == "quantize":
        assert most_sensitive(first, 1) == ["2"]


def test_sensitivity_without_labels_uses_agreement_and_many_layers_use_the_proxy():
    table = sensitivity(toy(), Sensitivity(), context(labels=False), max_layers=30, max_samples=50)
    assert table["metric"] == "agreement" and table["samples"] == 50
    proxy = sensitivity(toy(), Sensitivity(), context(), max_layers=2, max_samples=1000)
    assert proxy["proxy"] is True and proxy["metric"] == "weight_error" and "proxy" in proxy["method"]
    assert most_sensitive(proxy, 1) == ["2"]


def test_rungs_for_methods_this_modelpress_lacks_are_skipped_with_the_reason(tmp_path):
    future = Candidate("future", 1, ({"method": "quantize", "kind": "dynamic_int8"},),
                       when=available(steps=("quantize:dynamic_int8", "quantize:teleport"), outputs=("torchscript", "hologram")))
    _, skipped = plan([future], search_context(tmp_path, {"model": MLP, "goal": {"max_size_bytes": 10}}, nn.Linear(4, 4)))
    assert skipped == [{"label": "future", "reason": "this modelpress has no quantize:teleport, output 'hologram'"}]
    labelled = Candidate("qat", 1, ({"method": "quantize", "kind": "qat"},), needs=("train:labels",))
    unlabelled = {"train": Dataset(torch.zeros(2, 784))}
    _, skipped = plan([labelled], search_context(tmp_path, {"model": MLP, "goal": {"max_size_bytes": 10}}, nn.Linear(4, 4), unlabelled))
    assert skipped == [{"label": "qat", "reason": "needs 'labels' in the 'train' data part"}]
