"""quantize:weight_only_int4 on torch's CPU int4 kernel, against the same dequantized weights multiplied by hand,
on the digits MLP (whose 784/300/100-wide layers need the kernel's zero padding)."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from modelpress.datasets import digits_28x28
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import WeightOnlyInt4
from modelpress_torch.architectures import build_model
from worker.export import write_torchscript
from worker.methods import StepContext, apply_step
from worker.methods.int4 import Int4WeightOnlyLinear, dequantize_int4, quantize_int4


@pytest.fixture(scope="module")
def mlp(digits_mlp_path):
    model = build_model("mlp", {"sizes": [784, 300, 100, 10]})
    model.load_state_dict(load_file(str(digits_mlp_path)))
    return model.eval()


def test_codes_are_4_bit_and_dequantize_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(32, 64)
    codes, scale, zero = quantize_int4(w, 32)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 15
    error = (dequantize_int4(codes, scale, zero, 32) - w).abs().reshape(32, 2, 32)
    assert bool((error <= scale[..., None] / 2 + 1e-6).all())


def test_the_kernel_computes_the_dequantized_product(mlp):
    layer = mlp[0]
    int4 = Int4WeightOnlyLinear.from_linear(layer, 32)
    codes, scale, zero = quantize_int4(torch.nn.functional.pad(layer.weight.detach(), (0, 800 - 784, 0, 304 - 300)), 32)
    by_hand = dequantize_int4(codes, scale, zero, 32)[:300, :784]
    x = torch.as_tensor(digits_28x28(0)[2][:16])
    expected = x @ by_hand.T + layer.bias
    got = int4(x)
    assert got.shape == (16, 300)
    assert torch.allclose(got, expected, atol=0.05 * float(expected.abs().max()))  # bfloat16 activations and scales


def test_digits_accuracy_and_file_size(mlp, tmp_path, digits_test_set):
    context = StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, 784))
    model = apply_step(copy.deepcopy(mlp), WeightOnlyInt4(group_size=32), context)
    assert "zero-padded" in context.notes[-1]
    x, y = (torch.as_tensor(a) for a in digits_test_set)
    with torch.no_grad():
        before = float((mlp(x).argmax(1) == y).float().mean())
        after = float((model(x).argmax(1) == y).float().mean())
    assert after >= before - 0.02, (before, after)
    path = tmp_path / "int4.pt"
    write_torchscript(model, path, x[:1])
    reloaded = torch.jit.load(str(path))
    with torch.no_grad():
        assert torch.equal(reloaded(x[:8]), model(x[:8]))
    assert path.stat().st_size * 5 < 1_066_888  # int4 weights + bf16 scales: well under a fifth of the float32 file


def test_int4_needs_cpu_and_eager():
    body = {"model": {"architecture": "mlp", "config": {"sizes": [784, 10]}}}
    with pytest.raises(InvalidSpec):
        parse_spec(json.dumps({**body, "steps": [{"method": "quantize", "kind": "weight_only_int4", "runtime": "onnxruntime"}]}))
    with pytest.raises(InvalidSpec):
        parse_spec(json.dumps({**body, "device": "cuda", "steps": [{"method": "quantize", "kind": "weight_only_int4"}]}))
