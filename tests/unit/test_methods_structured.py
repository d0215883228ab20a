"""prune:structured: channels and neurons really go; the manifest loader rebuilds the new shapes."""

import copy

import pytest
import torch
from safetensors.torch import save_file

from modelpress.artifacts import load_pruned, manifest_of, read_manifest
from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import StructuredPrune
from modelpress_torch.architectures import build_model
from worker.export import write_safetensors
from worker.methods import StepContext, apply_step

CASES = [("mlp", {"sizes": [64, 48, 32, 10]}, [1, 64]), ("lenet5", {}, [1, 1, 28, 28]), ("cnn", {"channels": [8, 16]}, [1, 3, 16, 16]),
         ("lenet_300_100", {"in_features": 64}, [1, 64])]


def params(model):
    return sum(p.numel() for p in model.parameters())


def prune(arch, config, shape, **fields):
    torch.manual_seed(0)
    model = build_model(arch, config).eval()
    example = torch.randn(*shape)
    pruned = apply_step(copy.deepcopy(model), StructuredPrune(**fields), StepContext(device=torch.device("cpu"), example_input=example))
    return model, pruned, example


@pytest.mark.parametrize("arch,config,shape", CASES)
def test_structured_prune_removes_parameters_and_keeps_outputs(arch, config, shape, tmp_path):
    original, pruned, example = prune(arch, config, shape, amount=0.5)
    assert params(pruned) < 0.6 * params(original)
    assert pruned(example).shape == original(example).shape
    path = tmp_path / "m.safetensors"
    write_safetensors(pruned, path, example, manifest_of(pruned, arch, config, original))
    assert read_manifest(path)["architecture"] == arch
    reloaded = load_pruned(path)
    assert params(reloaded) == params(pruned)
    with torch.no_grad():
        assert torch.allclose(reloaded(example), pruned(example), atol=1e-6)


def test_mlp_hidden_widths_halve_and_round_to():
    _, pruned, _ = prune("mlp", {"sizes": [64, 48, 32, 10]}, [1, 64], amount=0.5, round_to=8)
    assert [pruned[0].out_features, pruned[2].out_features, pruned[4].out_features] == [24, 16, 10]
    assert pruned[0].out_features % 8 == 0


@pytest.mark.parametrize("importance", ["l1", "l2"])
def test_both_importances_prune(importance):
    original, pruned, _ = prune("mlp", {"sizes": [64, 48, 32, 10]}, [1, 64], amount=0.5, importance=importance)
    assert pruned[0].out_features == 24 and params(pruned) < params(original)


def test_only_the_output_layer_targeted_is_an_error():
    with pytest.raises(InvalidSpec, match="outputs"):
        prune("mlp", {"sizes": [64, 48, 32, 10]}, [1, 64], amount=0.5, include=["4"])


def test_load_pruned_refuses_a_plain_state_dict(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="manifest"):
        load_pruned(path)


def test_structured_model_scripts_to_torchscript(tmp_path):
    from worker.export import write_torchscript

    _, pruned, example = prune("cnn", {"channels": [8, 16]}, [1, 3, 16, 16], amount=0.5)
    write_torchscript(pruned, tmp_path / "m.pt", example)
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        assert torch.allclose(loaded(example), pruned(example), atol=1e-6)
