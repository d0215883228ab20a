"""lowrank:svd: Linear -> two Linears with fewer parameters; layers that would not shrink stay."""

import copy

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from modelpress.artifacts import load_pruned, manifest_of
from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import SVDLowRank
from worker.export import write_safetensors
from worker.methods import StepContext, apply_step


def ctx():
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 64))


def low_rank_mlp(rank=4):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(64, rank) @ torch.randn(rank, 64))
    return model.eval()


def params(m):
    return sum(p.numel() for p in m.parameters())


def test_exact_rank_is_lossless_and_smaller():
    original = low_rank_mlp()
    model = apply_step(copy.deepcopy(original), SVDLowRank(rank=4), ctx())
    assert isinstance(model[0], nn.Sequential) and model[0][0].out_features == 4
    assert isinstance(model[2], nn.Linear)  # 64x3 would not shrink at rank 4
    assert params(model) < params(original)
    x = torch.randn(8, 64)
    assert torch.allclose(model(x), original(x), atol=1e-4)


def test_energy_picks_the_rank():
    model = apply_step(low_rank_mlp(rank=5), SVDLowRank(energy=0.999999), ctx())
    assert model[0][0].out_features == 5


def test_nothing_shrinks_is_an_error():
    with pytest.raises(InvalidSpec, match="no layer would shrink"):
        apply_step(low_rank_mlp(), SVDLowRank(rank=60), ctx())


def test_pointwise_conv_is_factorized():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(32, 32, 1), nn.ReLU()).eval()
    out = apply_step(model, SVDLowRank(rank=4), StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 32, 4, 4)))
    assert isinstance(out[0], nn.Sequential) and out[0][0].out_channels == 4


def test_factorized_model_round_trips_through_the_manifest(tmp_path):
    original = low_rank_mlp()
    model = apply_step(copy.deepcopy(original), SVDLowRank(rank=4), ctx())
    path = tmp_path / "m.safetensors"
    write_safetensors(model, path, torch.randn(1, 64), manifest_of(model, "mlp", {"sizes": [64, 64, 3]}, original))
    reloaded = load_pruned(path)
    x = torch.randn(4, 64)
    assert torch.allclose(reloaded(x), model(x), atol=1e-6)


@pytest.mark.parametrize("fields", [{}, {"rank": 4, "energy": 0.9}, {"rank": 0}, {"energy": 1.5}])
def test_bad_configs(fields):
    with pytest.raises(ValidationError):
        SVDLowRank(**fields)
