"""The metrics.json contract: what the pipeline writes validates against the published schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from service.domain.metrics import METRICS_SCHEMA, Metrics, metrics_json_schema
from service.domain.spec import JobSpec
from worker import evaluate

SPEC = {
    "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
              "input": {"shape": [1, 784], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9},
              {"method": "quantize", "kind": "dynamic_int8"}],
    "evaluate": {"latency": True, "batch_sizes": [1, 8]},
}


@pytest.fixture(scope="module")
def pipeline_metrics(digits_mlp_path, tmp_path_factory):
    from worker.pipeline import run_pipeline

    result = run_pipeline(JobSpec.model_validate(SPEC), digits_mlp_path, tmp_path_factory.mktemp("work"),
                          progress=lambda *a: None, check_cancelled=lambda: None, warmup=1, runs=3, input_sha256="ab" * 32)
    return json.loads(json.dumps(result.metrics, default=str))  # exactly what the worker writes


def test_pipeline_metrics_validate_against_the_json_schema(pipeline_metrics):
    jsonschema.Draft202012Validator.check_schema(metrics_json_schema())
    jsonschema.validate(pipeline_metrics, metrics_json_schema())
    parsed = Metrics.model_validate(pipeline_metrics)
    assert parsed.schema_ == METRICS_SCHEMA == "modelpress.metrics/v1"
    assert [lat.batch_size for lat in parsed.after.latency] == [1, 8]


def test_layer_tables_show_pruning_and_int8(pipeline_metrics):
    before, after = pipeline_metrics["before"]["layers"], pipeline_metrics["after"]["layers"]
    assert [l["name"] for l in before] == ["0", "2", "4"] == [l["name"] for l in after]
    assert before[0] == {"name": "0", "type": "Linear", "shape": [300, 784], "dtype": "float32",
                         "sparsity": before[0]["sparsity"], "bytes": (300 * 784 + 300) * 4}
    assert before[0]["sparsity"] < 0.01
    assert after[0]["dtype"] == "qint8" and after[0]["type"] == "DynamicQuantizedLinear"
    assert after[0]["bytes"] == 300 * 784 + 300 * 4  # int8 weight, float bias
    assert after[0]["sparsity"] > 0.8


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
    assert info["flags"] == {"avx2": True, "avx512": True, "avx512_vnni": True, "avx_vnni": False, "amx": True, "vnni": True}
    cpuinfo.write_text("model name\t: Old\nflags\t\t: fpu sse sse2\n")
    assert not any(evaluate.cpu_info(str(cpuinfo))["flags"].values())
