"""Every integer a spec carries is bounded at submit, and a spec's JSON is strict (no duplicate keys)."""

from __future__ import annotations

import json

import pytest

from modelpress_core import strict_json
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import JobSpec, parse_spec
from modelpress_core.steps import ALL_STEP_TYPES

MLP = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
       "input": {"shape": [1, 784], "dtype": "float32"}}
INT8 = {"method": "quantize", "kind": "dynamic_int8"}
HUGE = 2**70


def integer_schemas(schema, defs, path="", seen=None):
    """(path, schema) of every integer in a JSON schema, following $refs."""
    seen = set() if seen is None else seen
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].split("/")[-1]
            if name not in seen:
                yield from integer_schemas(defs[name], defs, f"{path}<{name}>", seen | {name})
            return
        if schema.get("type") == "integer":
            yield path, schema
        for key, value in schema.items():
            if key != "$defs":
                yield from integer_schemas(value, defs, f"{path}.{key}", seen)
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from integer_schemas(value, defs, f"{path}[{i}]", seen)


@pytest.mark.parametrize("model", [JobSpec, *ALL_STEP_TYPES], ids=lambda m: m.__name__)
def test_every_integer_field_has_a_lower_and_an_upper_bound(model):
    schema = model.model_json_schema()
    found = list(integer_schemas(schema, schema.get("$defs", {})))
    # an enum (a Literal of a few ints) is bounded by its members
    unbounded = [path for path, s in found if "enum" not in s and "const" not in s and ("maximum" not in s or "minimum" not in s)]
    assert unbounded == []
    if model is JobSpec:
        assert any(path.endswith("seed") for path, _ in found)  # the walk reaches the fields it is about


def spec(*steps, **extra) -> str:
    return json.dumps({"model": MLP, "steps": list(steps) or [INT8], **extra})


@pytest.mark.parametrize("text,loc", [
    (spec(seed=HUGE), "seed"),
    (spec(seed=-1), "seed"),
    (spec(evaluate={"batch_sizes": [HUGE]}), "evaluate.batch_sizes.0"),
    (spec(goal={"max_size_bytes": HUGE}), "goal.max_size_bytes"),
    (spec({"method": "lowrank", "kind": "svd", "rank": HUGE}), "steps.0.lowrank.svd.rank"),
    (spec({"method": "quantize", "kind": "kmeans", "layer_bits": {"fc1": HUGE}}), "steps.0.quantize.kmeans.layer_bits.fc1"),
    (spec({"method": "finetune", "kind": "train", "epochs": HUGE}), "steps.0.finetune.epochs"),
    (spec({"method": "quantize", "kind": "static_int8", "calibration_batch_size": HUGE}), "steps.0.quantize.static_int8.calibration_batch_size"),
    (json.dumps({"model": {**MLP, "input": {"shape": [1, HUGE]}}, "steps": [INT8]}), "model.input.shape.1"),
    (json.dumps({"model": {**MLP, "config": {"sizes": [784, HUGE, 10]}}, "steps": [INT8]}), "model.config"),
    (spec({"method": "distill", "kind": "hinton", "student": {"architecture": "mlp", "config": {"sizes": [784, HUGE]}}}),
     "steps.0.distill.student.config"),
])
def test_an_out_of_range_integer_is_a_422_naming_the_field(text, loc):
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(text)
    assert caught.value.status == 422 and caught.value.slug == "spec-invalid"
    assert caught.value.extra["errors"][0]["loc"] == loc, caught.value.extra["errors"]
    if "config" in loc:
        assert "sizes[1]" in caught.value.detail and "out of range" in caught.value.detail


def test_the_largest_seed_torch_and_numpy_take_is_accepted():
    assert parse_spec(spec(seed=2**32 - 1)).seed == 2**32 - 1


@pytest.mark.parametrize("text,key", [
    ('{"a": 1, "a": 2}', "a"),
    (spec().replace('"steps": [', '"steps": [{"method": "prune", "kind": "magnitude", "amount": 0.1, "amount": 0.9}, '), "amount"),
    (spec().replace('"model": {', '"model": {"format": "torchscript", '), "format"),
    ('{"model": {"config": {"x": {"deep": [{"k": 1, "k": 1}]}}}}', "k"),
])
def test_a_duplicate_key_at_any_depth_is_a_422_naming_it(text, key):
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(text)
    assert caught.value.status == 422 and f"{key!r} twice" in caught.value.detail
    assert caught.value.extra["errors"] == [{"loc": key, "msg": "duplicate key", "type": "json_duplicate_key"}]


@pytest.mark.parametrize("text", ['{"seed": NaN}', '{"seed": Infinity}', '{"seed": -Infinity}', '{"seed": 1e400}'])
def test_non_finite_numbers_are_not_json(text):
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        parse_spec(text)


def test_deep_nesting_is_a_422_not_a_crash():
    with pytest.raises(InvalidSpec, match="nested too deeply"):
        parse_spec("[" * 100_000 + "]" * 100_000)


def test_strict_loads_keeps_ordinary_json_as_json_loads_reads_it():
    text = '{"a": [1, 2.5, "x", null, true, {"b": {}}], "c": {"d": -3e10}}'
    assert strict_json.loads(text) == json.loads(text)
    with pytest.raises(strict_json.DuplicateKey):
        strict_json.loads('[{"x": 1}, {"y": 1, "y": 2}]')
