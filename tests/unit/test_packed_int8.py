"""The packed format's sparse int8 layout: prune + dynamic int8 gives a smaller file than int8 alone, and loads
back as the same int8 model; a dense int8 artifact of a pruned model earns a warning naming 'packed'."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from modelpress.artifacts import load_packed, manifest_of
from modelpress.packed import read_header
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import DynamicInt8, MagnitudePrune
from modelpress_torch.architectures import build_model
from worker.export import write_packed, write_torchscript
from worker.methods import StepContext, apply_step
from worker.pipeline import sparsity_warnings

MLP = {"sizes": [784, 300, 100, 10]}


@pytest.fixture(scope="module")
def mlp(digits_mlp_path):
    model = build_model("mlp", MLP)
    model.load_state_dict(load_file(str(digits_mlp_path)))
    return model.eval()


def compress(model, *steps):
    model = copy.deepcopy(model)
    context = StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, 784))
    for step in steps:
        model = apply_step(model, step, context)
    return model


def write(model, original, tmp_path, name):
    path = tmp_path / name
    write_packed(model, path, torch.zeros(1, 784), manifest_of(model, "mlp", MLP, original))
    return path


def test_pruned_int8_packs_small_and_loads_back_bit_for_bit(mlp, tmp_path, digits_test_set):
    dense = compress(mlp, DynamicInt8())
    sparse = compress(mlp, MagnitudePrune(amount=0.9), DynamicInt8())
    dense_path, sparse_path = write(dense, mlp, tmp_path, "dense.mpk"), write(sparse, mlp, tmp_path, "sparse.mpk")
    script_path = tmp_path / "sparse.torchscript.pt"
    write_torchscript(sparse, script_path, torch.zeros(1, 784))
    # the dense int8 TorchScript file is as large for the pruned model; the sparse int8 layout is not
    assert sparse_path.stat().st_size * 4 < script_path.stat().st_size
    assert sparse_path.stat().st_size * 3 < dense_path.stat().st_size
    assert read_header(sparse_path)["manifest"]["int8"]["modules"]["0"]["qscheme"] == "per_channel_affine"
    loaded = load_packed(sparse_path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    eager = load_packed(sparse_path, script=False)
    for name in ("0", "2", "4"):
        a, b = eager.get_submodule(name).weight(), sparse.get_submodule(name).weight()
        assert torch.equal(a.int_repr(), b.int_repr()) and torch.equal(a.q_per_channel_scales(), b.q_per_channel_scales())
        assert torch.equal(eager.get_submodule(name).bias(), sparse.get_submodule(name).bias())
    x = torch.as_tensor(digits_test_set[0])
    with torch.no_grad():
        assert torch.equal(loaded(x), sparse(x))


def test_a_pruned_model_in_a_dense_int8_file_gets_a_warning_naming_packed():
    spec = parse_spec(json.dumps({"model": {"architecture": "mlp", "config": MLP},
                                  "steps": [{"method": "prune", "kind": "magnitude", "amount": 0.9},
                                            {"method": "quantize", "kind": "dynamic_int8"}]}))
    warnings = sparsity_warnings(spec, {"sparsity": 0.9, "file_bytes": 286929}, "torchscript", "torchscript")
    assert len(warnings) == 1 and "pruning did not shrink the file" in warnings[0] and "'packed'" in warnings[0]
    assert sparsity_warnings(spec, {"sparsity": 0.9, "file_bytes": 52776}, "packed", "torchscript") == []
    assert sparsity_warnings(spec, {"sparsity": 0.05, "file_bytes": 286929}, "torchscript", "torchscript") == []


def test_packed_is_offered_after_dynamic_int8_only():
    base = {"model": {"architecture": "mlp", "config": MLP}, "outputs": ["packed"]}
    parse_spec(json.dumps({**base, "steps": [{"method": "quantize", "kind": "dynamic_int8"}]}))
    with pytest.raises(InvalidSpec, match="packed"):
        parse_spec(json.dumps({**base, "steps": [{"method": "quantize", "kind": "static_int8"}]}))
