"""The metrics.json contract: what the pipeline writes validates against the published schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from modelpress_core.metrics import METRICS_SCHEMA, Metrics, metrics_json_schema
from modelpress_core.spec import JobSpec
from worker import evaluate

SPEC = {
    "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
              "input": {"shape": [1, 784], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9},
              {"method": "quantize", "kind": "dynamic_int8"}],
    "evaluate": {"latency": True, "batch_sizes": [1, 8]},
}


@pytest.fixture(scope="module")
def pipeline_metrics(digits_mlp_path, digits_test_set, tmp_path_factory):
    """A real pipeline run with a labelled eval set (real held-out digits)."""
    import numpy as np

    from worker.pipeline import run_pipeline

    work = tmp_path_factory.mktemp("work")
    x_test, y_test = digits_test_set
    np.savez(work / "eval.npz", inputs=np.asarray(x_test, np.float32), labels=np.asarray(y_test, np.int64))
    result = run_pipeline(JobSpec.model_validate(SPEC), digits_mlp_path, work,
                          progress=lambda *a: None, check_cancelled=lambda: None, warmup=1, runs=3, input_sha256="ab" * 32,
                          data={"eval": (work / "eval.npz", "npz")}, data_sha256={"eval.npz": "cd" * 32})
    return json.loads(json.dumps(result.metrics, default=str))  # exactly what the worker writes


def test_pipeline_metrics_validate_against_the_json_schema(pipeline_metrics):
    jsonschema.Draft202012Validator.check_schema(metrics_json_schema())
    jsonschema.validate(pipeline_metrics, metrics_json_schema())
    parsed = Metrics.model_validate(pipeline_metrics)
    assert parsed.schema_ == METRICS_SCHEMA == "modelpress.metrics/v1"
    assert [lat.batch_size for lat in parsed.after.latency] == [1, 8]


def test_real_metrics_carry_macs_tail_latency_memory_and_intervals(pipeline_metrics):
    before, after, verdict = pipeline_metrics["before"], pipeline_metrics["after"], pipeline_metrics["verdict"]
    assert before["macs"]["macs"] == 784 * 300 + 300 * 100 + 100 * 10  # dense: unstructured zeros still multiply
    assert after["macs"]["macs"] == before["macs"]["macs"] and "int8 modules" in after["macs"]["method"]
    for lat in before["latency"] + after["latency"]:
        assert lat["p50"] <= lat["p90"] <= lat["p99"]
        assert lat["throughput"] == pytest.approx(lat["batch_size"] * 1000 / lat["mean"], rel=1e-3)
    assert before["memory"]["rss_peak_growth_bytes"] > 1_000_000  # the float weights alone are ~1 MB
    assert "VmHWM" in after["memory"]["method"]
    q = pipeline_metrics["quality"]
    assert q["metric"] == "top1_accuracy" and q["count"] == 360
    lo, hi = q["accuracy_before_ci95"]
    assert lo < q["top1_accuracy_before"] < hi
    lo, hi = q["accuracy_drop_ci95"]
    assert lo <= q["accuracy_drop"] <= hi
    assert verdict["quality"]["metric"] == "top1_accuracy" and verdict["simulated_only"] is False
    assert pipeline_metrics["fidelity"]["source"] == "eval"
    assert pipeline_metrics["provenance"]["input_sha256"] == {"model": "ab" * 32, "eval.npz": "cd" * 32}
    assert pipeline_metrics["provenance"]["libraries"]["torch"].startswith("2.")


def test_structured_pruning_shows_fewer_macs():
    import torch

    from modelpress_torch.architectures import build_model
    from worker.methods import StepContext, apply_step
    from modelpress_core.steps import StructuredPrune

    torch.manual_seed(0)
    model = build_model("mlp", {"sizes": [784, 300, 100, 10]}).eval()
    x = torch.randn(1, 784)
    dense = evaluate.count_macs(model, x)["macs"]
    ctx = StepContext(device=torch.device("cpu"), example_input=x, seed=0, check_cancelled=lambda: None)
    pruned = apply_step(model, StructuredPrune(amount=0.5), ctx)
    assert evaluate.count_macs(pruned, x)["macs"] < 0.6 * dense


def test_confidence_intervals():
    import torch

    assert evaluate.wilson_interval(90, 100) == pytest.approx([0.8256, 0.9448], abs=1e-4)  # textbook value
    assert evaluate.wilson_interval(0, 10)[0] == 0.0
    diff = torch.tensor([1.0] * 10 + [0.0] * 90)
    lo, hi = evaluate.paired_bootstrap(diff, seed=0)
    assert lo < 0.1 < hi and evaluate.paired_bootstrap(diff, seed=0) == [lo, hi]  # seeded: deterministic
    assert evaluate.mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024, abs=1e-6)
    assert evaluate.mcnemar_exact_p(3, 3) == 1.0


def test_regression_quality_reports_mse():
    import torch

    targets = torch.linspace(0, 1, 50).reshape(50, 1)
    q = evaluate.regression_quality(targets.clone(), targets + 0.1, targets, seed=0)
    assert q["metric"] == "mse" and q["mse_before"] == 0 and q["mse_after"] == pytest.approx(0.01, rel=1e-4)
    assert q["mse_increase_ci95"][0] == pytest.approx(0.01, rel=1e-3)


def test_goal_search_keys_validate_and_stay_strict(pipeline_metrics):
    """The contract of goal search / sensitivity analysis (synthetic values, the real rest)."""
    from tests.unit.test_report import SEARCH

    schema = metrics_json_schema()
    jsonschema.validate({**pipeline_metrics, **SEARCH}, schema)
    for key, broken in (("candidates", [{k: v for k, v in SEARCH["candidates"][0].items() if k != "pareto"}]),
                        ("goal", {"spec": {}, "met": "yes", "diagnosis": None}),
                        ("sensitivity", {**SEARCH["sensitivity"], "kind": "distill"})):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**pipeline_metrics, **SEARCH, key: broken}, schema)


def test_schema_rejects_a_wrong_version_and_missing_fields(pipeline_metrics):
    bad = dict(pipeline_metrics, schema="modelpress.metrics/v0")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, metrics_json_schema())
    bad = {k: v for k, v in pipeline_metrics.items() if k != "verdict"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, metrics_json_schema())


def test_cpu_info_reads_model_and_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                       "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8\n\nprocessor\t: 1\n")
    info = evaluate.cpu_info(str(cpuinfo))
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["flags"] == {"avx2": True, "avx512": True, "avx512_vnni": True, "avx_vnni": False, "amx": True, "vnni": True,
                             "avx512_fp16": False, "avx512_bf16": False, "amx_bf16": False, "amx_fp16": False}
    cpuinfo.write_text("model name\t: Old\nflags\t\t: fpu sse sse2\n")
    assert not any(evaluate.cpu_info(str(cpuinfo))["flags"].values())


def test_float_labels_give_mse_quality_that_validates():
    import torch

    from modelpress_core.metrics import Quality
    from worker.data import Dataset
    from worker.pipeline import _quality, quality_verdict

    torch.manual_seed(0)
    model, half = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    half.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
    data = Dataset(torch.randn(40, 3), torch.randn(40, 2))
    q = _quality(model, half, data, torch.device("cpu"), seed=0)
    Quality.model_validate(q)
    assert q["metric"] == "mse" and q["count"] == 40 and q["mse_increase"] == pytest.approx(q["mse_after"] - q["mse_before"], abs=1e-6)
    verdict = quality_verdict({"cosine_similarity": 0.9, "inputs": "x"}, q)
    assert verdict["metric"] == "mse" and verdict["change"] == q["mse_increase"]
