"""Quantization options (backend, granularity, fuse, observer, QAT bits) against the same thing done by hand with
torch.ao on models trained on real digits: the int8 weights and the outputs must be identical."""

import copy
import json
import warnings

import pytest
import torch
from safetensors.torch import load_file
from torch.ao import quantization as tq
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from modelpress.datasets import digits_28x28
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import DynamicInt8, QATInt8, StaticInt8
from modelpress_torch.architectures import build_model
from worker.methods import StepContext, apply_step
from worker.methods.qconfigs import quantized_engine

warnings.filterwarnings("ignore")


@pytest.fixture(scope="module")
def mlp(digits_mlp_path):
    model = build_model("mlp", {"sizes": [784, 300, 100, 10]})
    model.load_state_dict(load_file(str(digits_mlp_path)))
    return model.eval()


@pytest.fixture(scope="module")
def lenet(digits_lenet5_path):
    model = build_model("lenet5", {})
    model.load_state_dict(load_file(str(digits_lenet5_path)))
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, _ = digits_28x28(0)
    return torch.as_tensor(x_train), torch.as_tensor(y_train), torch.as_tensor(x_test)


def ctx(shape, **kw):
    return StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, *shape), **kw)


def same_outputs(ours, by_hand, x, engine):
    with quantized_engine(engine), torch.no_grad():
        assert torch.equal(ours(x), by_hand(x))


@pytest.mark.parametrize("backend, granularity", [("x86", "per_tensor"), ("qnnpack", "per_channel"), ("qnnpack", "per_tensor"),
                                                  ("onednn", None)])
def test_dynamic_int8_matches_quantize_dynamic_by_hand(mlp, digits, backend, granularity):
    ours = apply_step(copy.deepcopy(mlp), DynamicInt8(backend=backend, granularity=granularity), ctx([784]))
    qconfig = tq.per_channel_dynamic_qconfig if granularity in (None, "per_channel") else tq.default_dynamic_qconfig
    with quantized_engine(backend):
        by_hand = tq.quantize_dynamic(copy.deepcopy(mlp), {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    for name in ("0", "2", "4"):
        a, b = ours.get_submodule(name).weight(), by_hand.get_submodule(name).weight()
        assert a.qscheme() == b.qscheme() and torch.equal(a.int_repr(), b.int_repr())
    same_outputs(ours, by_hand, digits[2][:64], backend)


def by_hand_static(model, mapping, calibration, example, fuse_groups=None):
    model = copy.deepcopy(model).eval()
    if fuse_groups:
        model = tq.fuse_modules(model, fuse_groups)
    prepared = prepare_fx(model, mapping, (example,))
    with torch.inference_mode():
        for batch in calibration.split(32):
            prepared(batch)
    return convert_fx(prepared)


def test_static_qnnpack_defaults_match_torchs_qnnpack_mapping(lenet, digits):
    x = digits[0][:256].reshape(-1, 1, 28, 28)
    ours = apply_step(copy.deepcopy(lenet), StaticInt8(backend="qnnpack"), ctx([1, 28, 28], calibration=x))
    with quantized_engine("qnnpack"):
        by_hand = by_hand_static(lenet, tq.get_default_qconfig_mapping("qnnpack"), x, x[:1])
    same_outputs(ours, by_hand, digits[2][:64].reshape(-1, 1, 28, 28), "qnnpack")
    test = digits[2].reshape(-1, 1, 28, 28)
    with quantized_engine("qnnpack"), torch.no_grad():
        agreement = float((ours(test).argmax(1) == lenet(test).argmax(1)).float().mean())
    assert agreement >= 0.97, agreement  # the qnnpack int8 artifact against fp32 on the 360 held-out digits


def test_static_explicit_fuse_observer_and_granularity_match_by_hand(lenet, digits):
    x = digits[0][:256].reshape(-1, 1, 28, 28)
    groups = [["features.0", "features.1"], ["classifier.1", "classifier.2"]]
    step = StaticInt8(fuse=groups, observer="minmax", granularity="per_tensor")
    ours = apply_step(copy.deepcopy(lenet), step, ctx([1, 28, 28], calibration=x))
    qconfig = tq.QConfig(activation=tq.MinMaxObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=127),
                         weight=tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                                                            quant_min=-128, quant_max=127))
    with quantized_engine("x86"):
        by_hand = by_hand_static(lenet, tq.get_default_qconfig_mapping("x86").set_global(qconfig), x, x[:1], groups)
    same_outputs(ours, by_hand, digits[2][:64].reshape(-1, 1, 28, 28), "x86")
    conv = [m for m in ours.modules() if type(m).__name__ == "ConvReLU2d"][0]
    assert conv.weight().qscheme() == torch.per_tensor_affine or conv.weight().qscheme() == torch.per_tensor_symmetric


def test_qat_4_bit_weights_lie_on_a_4_bit_grid_and_the_verdict_says_int8(mlp, digits):
    x, y, _ = digits
    context = ctx([784], train=x[:512], train_labels=y[:512])
    ours = apply_step(copy.deepcopy(mlp), QATInt8(bits=4, epochs=1), context)
    linears = [m for m in ours.modules() if hasattr(m, "weight") and callable(m.weight)]
    assert linears
    for m in linears:
        codes = m.weight().int_repr()
        assert int(codes.min()) >= -8 and int(codes.max()) <= 7
    assert any("4-bit grid" in w and "int8" in w for w in context.warnings)


@pytest.mark.parametrize("step, match", [
    ({"method": "quantize", "kind": "dynamic_int8", "backend": "qnnpack", "runtime": "onnxruntime"}, "backend"),
    ({"method": "quantize", "kind": "static_int8", "fuse": [["a"]]}, "2 or 3"),
    ({"method": "quantize", "kind": "static_int8", "observer": "minmax", "runtime": "inductor"}, "runtime 'eager'"),
    ({"method": "quantize", "kind": "qat", "bits": 2}, "bits"),
    ({"method": "quantize", "kind": "dynamic_int8", "granularity": "per_row"}, "granularity"),
])
def test_invalid_quantize_options_are_422(step, match):
    with pytest.raises(InvalidSpec) as info:
        parse_spec(json.dumps({"model": {"architecture": "mlp", "config": {"sizes": [784, 10]}}, "steps": [step]}))
    assert match in str(info.value.extra) + info.value.detail


def test_a_qnnpack_job_is_measured_under_qnnpack_and_says_where(digits_mlp_path, tmp_path):
    from worker.pipeline import run_pipeline

    spec = parse_spec(json.dumps({"model": {"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}},
                                  "steps": [{"method": "quantize", "kind": "dynamic_int8", "backend": "qnnpack"}]}))
    before = torch.backends.quantized.engine
    result = run_pipeline(spec, digits_mlp_path, tmp_path, progress=lambda *a: None, check_cancelled=lambda: None, warmup=1, runs=3,
                          input_sha256="test")
    verdict = result.metrics["verdict"]
    assert verdict["int8_engine"] == "qnnpack"
    assert any(w.startswith("measured where: qnnpack") for w in verdict["warnings"])
    assert torch.backends.quantized.engine == before  # restored for the next job
