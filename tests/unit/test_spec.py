import pytest
from hypothesis import given, settings, strategies as st

from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import DynamicInt8, MagnitudePrune

BASE = '{"model": {"architecture": "mlp"}, "steps": %s%s}'


def parse(steps: str, extra: str = ""):
    return parse_spec(BASE % (steps, extra))


def test_pipeline_parses_into_typed_steps():
    s = parse('[{"method": "prune", "kind": "magnitude", "amount": 0.5}, {"method": "quantize", "kind": "dynamic_int8"}]')
    assert [type(step) for step in s.steps] == [MagnitudePrune, DynamicInt8]
    assert s.steps[0].scope == "global" and s.device == "cpu"
    assert s.resolved_outputs == ["torchscript"]


def test_prune_only_defaults_to_safetensors():
    assert parse('[{"method": "prune", "kind": "magnitude", "amount": 0.5}]').resolved_outputs == ["safetensors"]


@pytest.mark.parametrize(
    "steps, extra, loc",
    [
        ('[{"method": "prune", "kind": "magnitude", "amount": 1.0}]', "", "steps.0.prune.magnitude.amount"),
        ('[{"method": "prune", "kind": "magnitude", "amount": -0.1}]', "", "steps.0.prune.magnitude.amount"),
        ('[{"method": "prune", "kind": "wavelet", "amount": 0.1}]', "", "steps.0.prune"),
        ('[{"method": "quantize", "kind": "dynamic_int8", "bits": 4}]', "", "steps.0.quantize.dynamic_int8.bits"),
        ("[]", "", "steps"),
        ('[{"method": "quantize", "kind": "dynamic_int8"}]', ', "device": "tpu"', "device"),
        ('[{"method": "quantize", "kind": "dynamic_int8"}]', ', "outputs": ["safetensors"]', ""),
        ('[{"method": "quantize", "kind": "dynamic_int8"}]', ', "evaluate": {"batch_sizes": [0]}', "evaluate"),
    ],
)
def test_invalid_specs_name_the_field(steps, extra, loc):
    with pytest.raises(InvalidSpec) as info:
        parse(steps, extra)
    assert info.value.status == 422
    assert info.value.extra["errors"][0]["loc"].startswith(loc)


def test_not_json():
    with pytest.raises(InvalidSpec, match="JSON"):
        parse_spec("{")


def test_input_shape_must_be_positive():
    with pytest.raises(InvalidSpec):
        parse_spec('{"model": {"architecture": "mlp", "input": {"shape": [0, 784]}}, "steps": [{"method": "quantize", "kind": "dynamic_int8"}]}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
step_like = st.fixed_dictionaries(
    {"method": st.sampled_from(["prune", "quantize", "lowrank", "x"]), "kind": st.text(max_size=12)},
    optional={"amount": json_values, "scope": json_values, "include": json_values, "pattern": json_values},
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"model": json_values, "steps": st.lists(step_like, max_size=3)},
                              optional={"device": json_values, "outputs": json_values, "evaluate": json_values}),
    )
)
def test_any_json_is_a_spec_or_a_422_never_a_crash(document):
    import json

    try:
        spec = parse_spec(json.dumps(document))
    except InvalidSpec as exc:
        assert exc.status == 422 and exc.extra["errors"]
    else:
        assert spec.steps and spec.resolved_outputs
