"""Impossible step combinations are rejected at submit time."""

import json

import pytest

from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec

MODEL = {"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}}


def spec(*steps, **extra):
    return json.dumps({"model": MODEL, "steps": list(steps), **extra})


QUANT = {"method": "quantize", "kind": "static_int8"}
STRUCT = {"method": "prune", "kind": "structured", "amount": 0.5}


@pytest.mark.parametrize(
    "text",
    [
        spec(QUANT, STRUCT),
        spec({"method": "quantize", "kind": "fp16"}, {"method": "lowrank", "kind": "svd", "rank": 8}),
        spec({"method": "quantize", "kind": "dynamic_int8"}, QUANT),
        spec({"method": "quantize", "kind": "weight_only_int8"}, outputs=["safetensors"]),
        spec(QUANT, device="cuda"),
        spec({**STRUCT, "amount": 1.0}),
        spec({**STRUCT, "importance": "l3"}),
        spec({"method": "lowrank", "kind": "svd"}),
        spec({**QUANT, "include": ["0"]}),  # whole graph; only 'exclude' (keep in float) is allowed
        spec({"method": "prune", "kind": "magnitude", "pattern": "2:4", "amount": 0.5}),
        spec({"method": "prune", "kind": "random", "amount": 1.2}),
    ],
)
def test_rejected(text):
    with pytest.raises(InvalidSpec):
        parse_spec(text)


def test_structured_then_quantize_is_fine_and_defaults_to_torchscript():
    parsed = parse_spec(spec(STRUCT, QUANT))
    assert parsed.resolved_outputs == ["torchscript"]


def test_structured_defaults_to_safetensors_with_manifest():
    assert parse_spec(spec(STRUCT)).resolved_outputs == ["safetensors"]
