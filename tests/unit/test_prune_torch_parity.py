"""Every mask-based prune option against the same thing done by hand with ``torch.nn.utils.prune``,
on models trained on real digits: the masks must be bit-identical."""

import copy

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from torch.nn.utils import prune

from modelpress.artifacts import load_pruned, manifest_of, read_manifest
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import FineTune, LnStructuredPrune, MagnitudePrune, RandomPrune, RandomStructuredPrune
from modelpress_torch.architectures import build_model
from worker.export import write_safetensors
from worker.methods import StepContext, apply_step
from worker.methods.masks import masked_state_dict

MLP = {"sizes": [784, 300, 100, 10]}


@pytest.fixture(scope="module")
def mlp(digits_mlp_path):
    model = build_model("mlp", MLP)
    model.load_state_dict(load_file(str(digits_mlp_path)))
    return model.eval()


@pytest.fixture(scope="module")
def lenet(digits_lenet5_path):
    model = build_model("lenet5", {})
    model.load_state_dict(load_file(str(digits_lenet5_path)))
    return model.eval()


def ctx(seed=0, **kw):
    return StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, 784), seed=seed, **kw)


def layers(model):
    return [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]


def run(model, steps, context=None):
    context = context or ctx()
    model = copy.deepcopy(model)
    for step in steps:
        model = apply_step(model, step, context)
    return model, context


def assert_same_masks(ours, by_hand, param="weight"):
    for a, b in zip(layers(ours), layers(by_hand), strict=True):
        assert torch.equal(getattr(a, param) == 0, getattr(b, f"{param}_mask") == 0)
        assert torch.equal(getattr(a, param), getattr(b, param))


def test_two_layer_steps_prune_what_remains_like_two_torch_calls(mlp):
    ours, context = run(mlp, [MagnitudePrune(amount=0.5, scope="layer")] * 2)
    by_hand = copy.deepcopy(mlp)
    for _ in range(2):
        for layer in layers(by_hand):
            prune.l1_unstructured(layer, "weight", amount=0.5)
    assert_same_masks(ours, by_hand)
    assert float((layers(ours)[0].weight == 0).float().mean()) == pytest.approx(0.75, abs=1e-4)
    assert "75.0% of the targeted weight values are now zero" in context.notes[-1]
    assert "50.0%" in context.notes[0]


def test_two_global_steps_match_two_global_unstructured_calls(mlp):
    ours, _ = run(mlp, [MagnitudePrune(amount=0.6), MagnitudePrune(amount=0.5)])
    by_hand = copy.deepcopy(mlp)
    for amount in (0.6, 0.5):
        prune.global_unstructured([(m, "weight") for m in layers(by_hand)], pruning_method=prune.L1Unstructured, amount=amount)
    assert_same_masks(ours, by_hand)


def test_of_all_makes_the_amount_the_total_fraction(mlp):
    ours, context = run(mlp, [MagnitudePrune(amount=0.5, of="all"), MagnitudePrune(amount=0.7, of="all")])
    by_hand = copy.deepcopy(mlp)  # the same as one global call with the final fraction: magnitude order is kept
    prune.global_unstructured([(m, "weight") for m in layers(by_hand)], pruning_method=prune.L1Unstructured, amount=0.7)
    assert_same_masks(ours, by_hand)
    again, _ = run(ours, [MagnitudePrune(amount=0.5, of="all")])
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(layers(again), layers(ours), strict=True))  # nothing to add
    assert "70.0%" in context.notes[-1]


def test_weight_and_bias_pruned_together_globally(mlp):
    ours, _ = run(mlp, [MagnitudePrune(amount=0.4, parameters=["weight", "bias"])])
    by_hand = copy.deepcopy(mlp)
    prune.global_unstructured([(m, p) for m in layers(by_hand) for p in ("weight", "bias")],
                              pruning_method=prune.L1Unstructured, amount=0.4)
    assert_same_masks(ours, by_hand, "weight")
    assert_same_masks(ours, by_hand, "bias")
    assert any(bool((m.bias == 0).any()) for m in layers(ours))


@pytest.mark.parametrize("norm, dim", [(1, 0), (2, 0), (2, 1), (3, 1), ("inf", 0), ("-inf", 1)])
def test_ln_structured_matches_torch_on_lenet(lenet, norm, dim):
    step = LnStructuredPrune(amount=0.3, norm=norm, dim=dim)
    ours, context = run(lenet, [step, step])
    n = {"inf": float("inf"), "-inf": float("-inf")}.get(norm, norm)
    by_hand = copy.deepcopy(lenet)
    for _ in range(2):
        for layer in layers(by_hand):
            prune.ln_structured(layer, "weight", amount=0.3, n=n, dim=dim)
    assert_same_masks(ours, by_hand)
    conv = layers(ours)[1].weight
    others = [d for d in range(4) if d != dim]
    assert int((conv.abs().sum(dim=others) == 0).sum()) > 0  # whole channels went


def test_random_kinds_match_torch_with_the_same_seed(lenet):
    ours, _ = run(lenet, [RandomStructuredPrune(amount=0.25, dim=1)], ctx(seed=3))
    by_hand = copy.deepcopy(lenet)
    torch.manual_seed(3)
    for layer in layers(by_hand):
        prune.random_structured(layer, "weight", amount=0.25, dim=1)
    assert_same_masks(ours, by_hand)
    ours, _ = run(lenet, [RandomPrune(amount=0.5, scope="layer")] * 2, ctx(seed=5))
    by_hand = copy.deepcopy(lenet)
    for _ in range(2):
        torch.manual_seed(5)  # the handler seeds every step with the job's seed
        for layer in layers(by_hand):
            prune.random_unstructured(layer, "weight", amount=0.5)
    assert_same_masks(ours, by_hand)


def test_kept_masks_are_torchs_state_dict_and_load_back_with_hooks(mlp, tmp_path, digits_test_set):
    context = ctx()
    ours, _ = run(mlp, [MagnitudePrune(amount=0.5, permanent=False), LnStructuredPrune(amount=0.2, permanent=False)], context)
    by_hand = copy.deepcopy(mlp)
    prune.global_unstructured([(m, "weight") for m in layers(by_hand)], pruning_method=prune.L1Unstructured, amount=0.5)
    for layer in layers(by_hand):
        prune.ln_structured(layer, "weight", amount=0.2, n=2, dim=0)
    state = masked_state_dict(ours, context.masks)
    expected = by_hand.state_dict()
    assert set(state) == set(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)  # orig values and masks alike
    path = tmp_path / "model.safetensors"
    write_safetensors(ours, path, torch.zeros(1, 784), {**manifest_of(ours, "mlp", MLP, mlp), "masks": sorted(context.masks)},
                      state=state)
    assert read_manifest(path)["masks"] == ["0.weight", "2.weight", "4.weight"]
    reloaded = load_pruned(path)
    assert prune.is_pruned(reloaded)
    x, _ = digits_test_set
    with torch.no_grad():
        assert torch.equal(reloaded(torch.as_tensor(x)), by_hand(torch.as_tensor(x)))
    # honoured: a torch training step on the reloaded model leaves the pruned weights at zero
    optimizer = torch.optim.SGD(reloaded.parameters(), lr=0.1)
    reloaded.train()
    torch.nn.functional.cross_entropy(reloaded(torch.as_tensor(x[:32])), torch.zeros(32, dtype=torch.long)).backward()
    optimizer.step()
    reloaded(torch.as_tensor(x[:1]))
    assert torch.equal(reloaded[0].weight == 0, by_hand[0].weight_mask == 0)


def test_finetune_keeps_pruned_biases_zero(mlp):
    from modelpress.datasets import digits_28x28

    x, y, _, _ = digits_28x28(0)
    context = ctx(train=torch.as_tensor(x[:256]), train_labels=torch.as_tensor(y[:256]))
    pruned, _ = run(mlp, [MagnitudePrune(amount=0.5, parameters=["weight", "bias"])], context)
    zero_bias = [m.bias == 0 for m in layers(pruned)]
    tuned = apply_step(pruned, FineTune(epochs=1), context)
    assert all(torch.equal(m.bias == 0, z) for m, z in zip(layers(tuned), zero_bias, strict=True))


def test_pruning_a_missing_bias_is_an_error():
    model = torch.nn.Sequential(torch.nn.Linear(8, 4, bias=False))
    with pytest.raises(InvalidSpec, match="no bias"):
        apply_step(model, MagnitudePrune(amount=0.5, parameters=["bias"]), StepContext(device=torch.device("cpu"),
                                                                                        example_input=torch.zeros(1, 8)))


def spec(steps, outputs=None, fmt="safetensors"):
    model = {"architecture": "mlp", "config": MLP} if fmt == "safetensors" else {"format": "torchscript", "input": {"shape": [1, 784]}}
    body = {"model": model, "steps": steps, **({"outputs": outputs} if outputs else {})}
    import json

    return parse_spec(json.dumps(body))


@pytest.mark.parametrize("steps, outputs, fmt, match", [
    ([{"method": "prune", "kind": "magnitude", "amount": 0.5, "permanent": False}, {"method": "quantize", "kind": "dynamic_int8"}],
     None, "safetensors", "only prune and finetune steps may follow"),
    ([{"method": "prune", "kind": "magnitude", "amount": 0.5, "permanent": False}], ["torchscript"], "safetensors",
     "add 'safetensors' to outputs"),
    ([{"method": "prune", "kind": "magnitude", "amount": 0.5, "parameters": ["weight", "bias"]}], None, "torchscript", "module hooks"),
    ([{"method": "prune", "kind": "ln_structured", "amount": 0.5}], None, "torchscript", "ScriptModule"),
    ([{"method": "prune", "kind": "ln_structured", "amount": 0.5, "dim": 1, "parameters": ["bias"]}], None, "safetensors",
     "dim must be 0"),
    ([{"method": "prune", "kind": "magnitude", "pattern": "2:4", "of": "all"}], None, "safetensors", "do not apply"),
    ([{"method": "prune", "kind": "ln_structured", "amount": 0.5, "norm": 0}], None, "safetensors", "norm"),
])
def test_impossible_prune_specs_are_rejected_at_submit(steps, outputs, fmt, match):
    with pytest.raises(InvalidSpec) as info:
        spec(steps, outputs, fmt)
    assert match in str(info.value.extra)


def test_a_valid_masked_pipeline_parses():
    parsed = spec([{"method": "prune", "kind": "ln_structured", "amount": 0.3, "norm": "inf", "dim": 1, "permanent": False},
                   {"method": "prune", "kind": "random_structured", "amount": 0.1, "permanent": False}])
    assert parsed.resolved_outputs == ["safetensors"]
    with pytest.raises(ValidationError):
        MagnitudePrune(amount=0.5, parameters=["weight", "weight"])
