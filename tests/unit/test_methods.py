import pytest
import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import DynamicInt8, MagnitudePrune
from worker.evaluate import parameter_stats
from worker.methods import StepContext, apply_step


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))


def ctx():
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 20))


def test_global_magnitude_prune_makes_real_zeros():
    model = apply_step(mlp(), MagnitudePrune(amount=0.5), ctx())
    weights = torch.cat([model[0].weight.flatten(), model[2].weight.flatten()])
    assert float((weights == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert not list(model[0]._forward_pre_hooks) and "weight_orig" not in dict(model[0].named_parameters())


def test_layer_scope_prunes_each_layer_equally():
    model = apply_step(mlp(), MagnitudePrune(amount=0.7, scope="layer"), ctx())
    for layer in (model[0], model[2]):
        assert float((layer.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)


def test_exclude_leaves_a_layer_alone():
    model = apply_step(mlp(), MagnitudePrune(amount=0.5, scope="layer", exclude=["2"]), ctx())
    assert int((model[2].weight == 0).sum()) == 0


def test_targeting_nothing_is_an_error():
    with pytest.raises(InvalidSpec):
        apply_step(mlp(), MagnitudePrune(amount=0.5, include=["nope"]), ctx())


def test_dynamic_int8_quantizes_linear_and_counts_int8():
    model = apply_step(mlp().eval(), DynamicInt8(), ctx())
    stats = parameter_stats(model)
    assert stats["dtypes"].get("qint8") == 20 * 30 + 30 * 10
    assert stats["parameters"] == parameter_stats(mlp())["parameters"]


def test_dynamic_int8_with_exclude():
    model = apply_step(mlp().eval(), DynamicInt8(exclude=["2"]), ctx())
    assert isinstance(model[2], nn.Linear) and not isinstance(model[0], nn.Linear)
