"""Every cell of the capability table (step kind x input format x device x runtime x output format):
a supported cell parses and has a registered worker handler and writer; a refused one is a 422 from
spec parsing that carries the table's reason at the cell's location."""

from __future__ import annotations

import itertools
import json

import pytest

from modelpress_core.capabilities import DEVICES, INPUT_FORMATS, METHODS, problems_for
from modelpress_core.errors import InvalidSpec
from modelpress_core.formats import FORMATS
from modelpress_core.spec import parse_spec
from modelpress_core.steps import RUNTIMES, QuantizeConfig, StepConfig
from modelpress_core.steps.lowrank import SVDLowRank, Tucker2LowRank
from modelpress_core.steps.prune import LnStructuredPrune, MagnitudePrune, RandomPrune, RandomStructuredPrune, StructuredPrune
from modelpress_core.steps.train import Distill

MODELS = {
    "safetensors": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [16, 8, 4]}},
    "torchscript": {"format": "torchscript", "input": {"shape": [1, 16]}},
}
REQUIRED = {  # the least each kind needs to be a valid step on its own
    MagnitudePrune: {"amount": 0.5},
    RandomPrune: {"amount": 0.5},
    StructuredPrune: {"amount": 0.5},
    LnStructuredPrune: {"amount": 0.5},
    RandomStructuredPrune: {"amount": 0.5},
    SVDLowRank: {"rank": 2},
    Tucker2LowRank: {"rank": 2},
    Distill: {"student": {"architecture": "mlp", "config": {"sizes": [16, 4]}}},
}


def _step(config: type[StepConfig], runtime: str) -> dict:
    fields = config.model_fields
    step = {"method": fields["method"].default, "kind": fields["kind"].default, **REQUIRED.get(config, {})}
    if issubclass(config, QuantizeConfig):
        step["runtime"] = runtime
    return step


def _cells():
    for config, cap in METHODS.items():
        runtimes = RUNTIMES if issubclass(config, QuantizeConfig) else ("eager",)
        for fmt, device, runtime, output in itertools.product(INPUT_FORMATS, [d for d in DEVICES if d != "auto"], runtimes, FORMATS):
            yield pytest.param(config, fmt, device, runtime, output, id=f"{config.__name__}-{fmt}-{device}-{runtime}-{output}")


CELLS = list(_cells())


def test_the_walk_covers_every_method_format_device_runtime_and_output():
    kinds = {c.values[0] for c in CELLS}
    assert kinds == set(METHODS) and len(kinds) == 18
    assert {c.values[1] for c in CELLS} == set(INPUT_FORMATS)
    assert {c.values[2] for c in CELLS} == {"cpu", "cuda"}
    assert {c.values[3] for c in CELLS} == set(RUNTIMES)
    assert {c.values[4] for c in CELLS} == set(FORMATS)


@pytest.mark.parametrize("config, fmt, device, runtime, output", CELLS)
def test_every_cell_is_runnable_or_refused_with_its_reason(config, fmt, device, runtime, output):
    from worker import export
    from worker.methods.registry import handler_for

    step = _step(config, runtime)
    text = json.dumps({"model": MODELS[fmt], "steps": [step], "device": device, "outputs": [output]})
    step_config = config.model_validate(step)
    refused = problems_for(fmt, device, [step_config], [output])
    if not refused:
        spec = parse_spec(text)
        assert spec.resolved_outputs == [output]
        assert callable(handler_for(spec.steps[0])), "a supported cell needs a registered worker handler"
        assert callable(export.writer(output)) and callable(export.loader(output))
        return
    with pytest.raises(InvalidSpec) as info:
        parse_spec(text)
    problem = info.value.to_problem()
    assert problem["status"] == 422
    got = {(e["loc"], e["msg"]) for e in problem["errors"]}
    assert {(p.loc, p.msg) for p in refused} <= got, "the 422 carries the table's reason at the cell's location"
    assert all(p.msg and not p.msg.startswith("Value error") for p in refused)


def test_some_cells_of_each_kind_are_supported_and_some_refused():
    supported = {c.values[0] for c in CELLS if not problems_for(c.values[1], c.values[2], [c.values[0].model_validate(
        _step(c.values[0], c.values[3]))], [c.values[4]])}
    assert supported == set(METHODS), "every kind runs somewhere"
    refusals = sum(1 for c in CELLS if problems_for(c.values[1], c.values[2], [c.values[0].model_validate(
        _step(c.values[0], c.values[3]))], [c.values[4]]))
    assert 0 < refusals < len(CELLS)


# The rules spec.py used to repeat, now decided only by the table: each case they covered is refused by problems_for.
@pytest.mark.parametrize("kind", ["dynamic_int8", "static_int8", "qat"])
def test_cpu_only_int8_kinds_on_cuda_are_refused_by_the_table(kind):
    config = next(c for c in METHODS if c.model_fields["kind"].default == kind)
    assert problems_for("safetensors", "cuda", [config.model_validate(_step(config, "eager"))], [])


@pytest.mark.parametrize("config", [c for c, cap in METHODS.items() if issubclass(c, QuantizeConfig) and cap.quantizes])
def test_safetensors_output_after_eager_int8_or_cast_is_refused_by_the_table(config):
    assert problems_for("safetensors", "cpu", [config.model_validate(_step(config, "eager"))], ["safetensors"])
