"""Quantize runtimes: the spec's contract (what is 422 at submit time) and the worker's onnxruntime and
inductor paths on a small seeded MLP (int8 really in the artifact, outputs close, loads in its runtime)."""

import json

import pytest
import torch
from torch import nn

from modelpress_core import capabilities
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import DynamicInt8, StaticInt8
from worker.evaluate import parameter_stats
from worker.export import load_for_measurement, writer
from worker.methods import StepContext, apply_step
from worker.onnx_export import OnnxProgram

MODEL = {"architecture": "mlp", "config": {"sizes": [32, 64, 10]}}


def spec(*steps, **extra) -> str:
    return json.dumps({"model": MODEL, "steps": list(steps), **extra})


def q(kind, runtime=None, **fields):
    return {"method": "quantize", "kind": kind, **({"runtime": runtime} if runtime else {}), **fields}


@pytest.mark.parametrize(
    "step,output",
    [(q("dynamic_int8"), "torchscript"), (q("dynamic_int8", "onnxruntime"), "onnx"), (q("static_int8", "onnxruntime"), "onnx"),
     (q("static_int8", "inductor"), "pt2"), (q("static_int8", "eager"), "torchscript")],
)
def test_the_runtime_decides_the_artifact_format(step, output):
    job = parse_spec(spec(step))
    assert job.resolved_outputs == [output]
    assert job.steps[0].runtime == step.get("runtime", "eager")
    assert parse_spec(spec(step, outputs=[output])).resolved_outputs == [output]


@pytest.mark.parametrize(
    "text,loc,needle",
    [
        (spec(q("dynamic_int8", "inductor")), "steps.0.runtime", "no fast dynamic int8 path in inductor"),
        (spec(q("fp16", "onnxruntime")), "steps.0.runtime", "no onnxruntime path"),
        (spec(q("weight_only_int8", "inductor")), "steps.0.runtime", "no inductor path"),
        (spec(q("dynamic_int8", "onnxruntime", include=["0"])), "steps.0.runtime", "whole graph"),
        (spec(q("static_int8", "onnxruntime"), outputs=["torchscript"]), "outputs.0", "writes its artifact as 'onnx'"),
        (spec(q("static_int8", "inductor"), outputs=["onnx"]), "outputs.0", "writes its artifact as 'pt2'"),
        (spec(q("static_int8"), outputs=["pt2"]), "outputs", "runtime 'inductor'"),
        (spec(q("dynamic_int8"), outputs=["onnx"]), "outputs", "runtime 'onnxruntime'"),
        (spec(q("static_int8", "tensorrt")), "steps.0", "runtime"),
        (spec({"method": "prune", "kind": "magnitude", "amount": 0.5}, outputs=["pt2"]), "outputs", "runtime 'inductor'"),
    ],
)
def test_impossible_runtime_combinations_are_rejected_with_the_reason(text, loc, needle):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(text)
    problem = json.dumps(info.value.to_problem())
    assert needle in problem and loc in problem


def test_the_capabilities_table_lists_runtimes_per_kind():
    table = capabilities.table()
    rows = {m["kind"]: m["runtimes"] for m in table["methods"] if m["method"] == "quantize"}
    assert {r for r, v in rows["static_int8"].items() if v["supported"]} == {"eager", "inductor", "onnxruntime", "executorch"}
    assert {r for r, v in rows["dynamic_int8"].items() if v["supported"]} == {"eager", "onnxruntime", "executorch"}
    assert "reason" in rows["dynamic_int8"]["inductor"] and set(table["runtimes"]) == {"eager", "inductor", "onnxruntime", "executorch"}
    assert {r for r, v in rows["fp16"].items() if v["supported"]} == {"eager"}


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def ctx(**extra):
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 32, generator=torch.Generator().manual_seed(0)), **extra)


@pytest.mark.parametrize("step", [DynamicInt8(runtime="onnxruntime"), StaticInt8(runtime="onnxruntime")], ids=lambda s: s.kind)
def test_onnxruntime_paths_write_an_int8_onnx_that_runs_in_onnxruntime(step, tmp_path):
    c = ctx(calibration=torch.randn(64, 32, generator=torch.Generator().manual_seed(1)))
    model = apply_step(mlp(), step, c)
    assert isinstance(model, OnnxProgram)
    assert parameter_stats(model)["dtypes"]["int8"] == 32 * 64 + 64 * 10
    check = writer("onnx")(model, tmp_path / "model.onnx", c.example_input)
    assert check["passed"] and check["int8_weight_tensors"] == 2
    ops = set(check["quantized_ops"])
    assert ops >= ({"MatMulInteger"} if step.kind == "dynamic_int8" else {"QuantizeLinear", "DequantizeLinear"})
    loaded, runtime = load_for_measurement("onnx", tmp_path / "model.onnx", mlp)
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    assert runtime == "onnxruntime"
    torch.testing.assert_close(loaded(x), mlp()(x).detach(), atol=0.1, rtol=0.05)
    if step.kind == "static_int8":
        assert any("given calibration data (64 samples)" in n for n in c.notes)


def test_inductor_path_writes_a_pt2_with_int8_weights_that_loads(tmp_path):
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  registers the ops torch.export.load needs

    c = ctx(calibration=torch.randn(64, 32, generator=torch.Generator().manual_seed(1)))
    model = apply_step(mlp(), StaticInt8(runtime="inductor", calibration_batch_size=16), c)
    assert parameter_stats(model)["dtypes"]["int8"] == 32 * 64 + 64 * 10  # and no float copy of the weights left
    assert parameter_stats(model)["dtypes"].get("float32", 0) < 200
    check = writer("pt2")(model, tmp_path / "model.pt2", c.example_input)
    assert check["dynamic_batch"]
    program = torch.export.load(str(tmp_path / "model.pt2")).module()  # uncompiled: same graph, reference kernels
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(program(x), mlp()(x), atol=0.1, rtol=0.05)
        assert program(x[:1]).shape == (1, 10)  # one artifact for every batch size
    assert any("given calibration data (64 samples)" in n and "PT2E" in n for n in c.notes)


def test_dynamic_int8_has_no_inductor_handler():
    from worker.methods.registry import handler_for

    with pytest.raises(NotImplementedError):
        handler_for(DynamicInt8.model_construct(runtime="inductor"))
