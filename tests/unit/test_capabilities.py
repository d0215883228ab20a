import json

import pytest

from modelpress_core import capabilities
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import ALL_STEP_TYPES

TS_MODEL = {"format": "torchscript", "input": {"shape": [1, 16]}}
PRUNE = {"method": "prune", "kind": "magnitude", "amount": 0.5}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}


def spec(**fields) -> str:
    return json.dumps({"model": TS_MODEL, "steps": [PRUNE], **fields})


def test_the_table_covers_every_step_type_with_its_schema():
    table = capabilities.table()
    assert {(m["method"], m["kind"]) for m in table["methods"]} == {
        (t.model_fields["method"].default, t.model_fields["kind"].default) for t in ALL_STEP_TYPES
    }
    for method in table["methods"]:
        assert method["schema"]["type"] == "object" and "properties" in method["schema"]
        assert set(method["formats"]) == set(table["input_formats"])
    json.dumps(table)  # serialisable as is


def test_a_torchscript_prune_spec_is_accepted():
    job = parse_spec(spec(outputs=["torchscript", "onnx"]))
    assert job.model.architecture is None and job.resolved_outputs == ["torchscript", "onnx"]
    assert parse_spec(spec()).resolved_outputs == ["torchscript"]


@pytest.mark.parametrize(
    "text, needle",
    [
        (spec(steps=[INT8]), "quantize_dynamic cannot swap modules"),
        (spec(outputs=["safetensors"]), "not available for a torchscript upload"),
        (json.dumps({"model": {"format": "torchscript"}, "steps": [PRUNE]}), "give model.input"),
        (json.dumps({"model": {**TS_MODEL, "architecture": "mlp"}, "steps": [PRUNE]}), "leave out model.architecture"),
        (json.dumps({"model": {"format": "safetensors"}, "steps": [PRUNE]}), "needs model.architecture"),
        (json.dumps({"model": {"architecture": "mlp"}, "steps": [INT8], "device": "cuda"}), "CPU int8 kernels only"),
        (json.dumps({"model": {"architecture": "mlp"}, "steps": [INT8], "outputs": ["onnx"]}), "quantized::linear_dynamic"),
    ],
)
def test_impossible_combinations_are_rejected_with_the_reason(text, needle):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(text)
    assert needle in json.dumps(info.value.to_problem())
