"""prune:magnitude zeroes exactly the weights at or under the k-th smallest |w|: per layer, or over
all targeted layers together (global); in eager models and on the TorchScript path.

The expected positions are computed here with plain torch (``torch.kthvalue``), not by the code under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelpress_core.steps import MagnitudePrune
from worker.methods import StepContext, apply_step

AMOUNTS = [0.3, 0.75]


def model() -> nn.Module:
    """Three layers whose weights have different scales, so global and per-layer pruning differ."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 24), nn.ReLU(), nn.Conv1d(1, 6, 5))
    with torch.no_grad():
        net[2].weight.mul_(3.0)
        net[4].weight.mul_(0.2)
    return net.eval()


def weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if n.endswith("weight")}


def expected_zeros(original: dict[str, torch.Tensor], amount: float, scope: str) -> dict[str, torch.Tensor]:
    """Per tensor, True where |w| <= the k-th smallest |w| of its group (the tensor, or all of them)."""
    groups = [list(original)] if scope == "global" else [[n] for n in original]
    out = {}
    for names in groups:
        flat = torch.cat([original[n].abs().flatten() for n in names])
        k = round(amount * flat.numel())
        threshold = torch.kthvalue(flat, k).values
        assert torch.kthvalue(flat, k + 1).values > threshold  # no tie at the cut: the positions are unambiguous
        for n in names:
            out[n] = original[n].abs() <= threshold
    return out


def pruned(net: nn.Module, amount: float, scope: str) -> dict[str, torch.Tensor]:
    ctx = StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 16), seed=0)
    return weights(apply_step(net, MagnitudePrune(amount=amount, scope=scope), ctx))


def check(original: dict[str, torch.Tensor], after: dict[str, torch.Tensor], amount: float, scope: str) -> None:
    assert not any(bool((w == 0).any()) for w in original.values())  # every zero afterwards is the pruner's
    expected = expected_zeros(original, amount, scope)
    for name, w in after.items():
        assert torch.equal(w == 0, expected[name]), name  # exactly these positions, no more, no fewer
        assert torch.equal(w[~expected[name]], original[name][~expected[name]]), name  # the rest untouched


def test_global_and_per_layer_choose_different_positions_here():
    original = weights(model())
    a, b = expected_zeros(original, 0.5, "global"), expected_zeros(original, 0.5, "layer")
    assert any(not torch.equal(a[n], b[n]) for n in original)  # otherwise the scope tests could not tell them apart


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("amount", AMOUNTS)
def test_eager_prunes_exactly_the_smallest(amount, scope):
    net = model()
    original = weights(net)
    check(original, pruned(net, amount, scope), amount, scope)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("amount", AMOUNTS)
def test_torchscript_prunes_exactly_the_smallest(amount, scope):
    scripted = torch.jit.script(model())
    original = weights(scripted)
    after = pruned(scripted, amount, scope)
    assert set(after) == set(original) == {"0.weight", "2.weight", "4.weight"}
    check(original, after, amount, scope)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_eager_and_torchscript_agree(scope):
    eager = pruned(model(), 0.6, scope)
    scripted = pruned(torch.jit.script(model()), 0.6, scope)
    assert all(torch.equal(eager[n], scripted[n]) for n in eager)


def test_biases_are_never_pruned():
    net = model()
    biases = {n: p.detach().clone() for n, p in net.named_parameters() if n.endswith("bias")}
    apply_step(net, MagnitudePrune(amount=0.75), StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 16)))
    assert all(torch.equal(dict(net.named_parameters())[n], b) for n, b in biases.items())
