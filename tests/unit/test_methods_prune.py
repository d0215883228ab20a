"""prune:random and prune:magnitude with an N:M pattern."""

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import MagnitudePrune, RandomPrune
from worker.methods import StepContext, apply_step


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


def ctx(seed=0):
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 16), seed=seed)


def zeros(layer):
    return float((layer.weight == 0).float().mean())


def test_random_prune_layer_scope_zeroes_the_fraction_in_each_layer():
    model = apply_step(mlp(), RandomPrune(amount=0.6, scope="layer"), ctx())
    for layer in (model[0], model[2]):
        assert zeros(layer) == pytest.approx(0.6, abs=0.01)
    assert "weight_orig" not in dict(model[0].named_parameters())


def test_random_prune_is_seeded_and_not_magnitude():
    a = apply_step(mlp(), RandomPrune(amount=0.5), ctx(seed=1))
    b = apply_step(mlp(), RandomPrune(amount=0.5), ctx(seed=1))
    c = apply_step(mlp(), RandomPrune(amount=0.5), ctx(seed=2))
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    m = apply_step(mlp(), MagnitudePrune(amount=0.5), ctx())
    assert not torch.equal(a[0].weight == 0, m[0].weight == 0)


def test_two_four_pattern_keeps_the_two_largest_of_every_four():
    original = mlp()
    model = apply_step(mlp(), MagnitudePrune(pattern="2:4"), ctx())
    for before, after in ((original[0], model[0]), (original[2], model[2])):
        groups = after.weight.reshape(after.weight.shape[0], -1, 4)
        assert torch.all((groups != 0).sum(-1) == 2)
        kept = before.weight.abs().reshape_as(groups).topk(2, dim=-1).values.sum(-1)
        assert torch.allclose(groups.abs().sum(-1), kept)


def test_pattern_needs_a_multiple_of_m_inputs():
    model = nn.Sequential(nn.Linear(10, 4))
    with pytest.raises(InvalidSpec, match="multiple of 4"):
        apply_step(model, MagnitudePrune(pattern="2:4"), StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 10)))


@pytest.mark.parametrize("fields", [{"pattern": "4:2"}, {"pattern": "2-4"}, {"amount": 0.5, "pattern": "2:4"}, {}, {"amount": 1.0}])
def test_bad_magnitude_configs(fields):
    with pytest.raises(ValidationError):
        MagnitudePrune(**fields)


def test_random_amount_out_of_range():
    with pytest.raises(ValidationError):
        RandomPrune(amount=-0.1)
