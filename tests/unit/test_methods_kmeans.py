"""quantize:kmeans: Deep Compression weight sharing (deterministic, zeros kept, <= 2**bits values) and its spec rules."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec
from modelpress_core.steps import KMeansQuantize, MagnitudePrune
from worker.methods import StepContext, apply_step
from worker.methods.kmeans import kmeans_1d


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10)).eval()


def ctx(**extra):
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 64), seed=3, **extra)


def pruned(amount=0.8):
    return apply_step(mlp(), MagnitudePrune(amount=amount, scope="layer"), ctx())


def distinct(t: torch.Tensor) -> int:
    return torch.unique(t.detach()).numel()


def test_linear_init_kmeans_reaches_lloyds_fixed_point():
    x = torch.tensor([0.0, 0.1, 0.2, 1.0, 1.1, 5.0])
    centroids, codes = kmeans_1d(x, 3)  # linear init 0, 2.5, 5: the middle centroid stays empty (as in the paper)
    assert torch.allclose(centroids, torch.tensor([0.48, 2.5, 5.0], dtype=torch.float64))
    assert codes.tolist() == [0, 0, 0, 0, 0, 2]
    centroids, codes = kmeans_1d(x, 3, init="density")
    assert torch.allclose(centroids, torch.tensor([0.1, 1.05, 5.0], dtype=torch.float64)) and codes.tolist() == [0, 0, 0, 1, 1, 2]


@pytest.mark.parametrize("bits", [2, 5])
def test_pruned_layers_keep_their_zeros_and_at_most_2_to_the_bits_values(bits):
    model = pruned()
    zeros = [(m.weight == 0).clone() for m in (model[0], model[2])]
    apply_step(model, KMeansQuantize(bits=bits, finetune_epochs=0), ctx())
    for layer, was_zero in zip((model[0], model[2]), zeros):
        assert torch.equal(layer.weight == 0, was_zero)  # zeros stay, nothing new becomes zero
        assert distinct(layer.weight) <= 2**bits
        assert not torch.signbit(layer.weight[layer.weight == 0]).any()  # +0.0 only


def test_dense_layers_use_all_codes_and_layer_bits_override():
    model = mlp()
    c = ctx()
    apply_step(model, KMeansQuantize(bits=3, layer_bits={"2": 6}, finetune_epochs=0), c)
    assert distinct(model[0].weight) <= 8 and 8 < distinct(model[2].weight) <= 64
    assert "0:3b/8c" in c.notes[0] and "2:6b/64c" in c.notes[0]


def test_deterministic_under_seed_and_targeting_respected():
    a, b = pruned(), pruned()
    step = KMeansQuantize(bits=4, exclude=["2"], finetune_epochs=0)
    untouched = b[2].weight.clone()
    apply_step(a, step, ctx())
    apply_step(b, step, ctx())
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(b[2].weight, untouched)


def test_unknown_layer_bits_name_is_an_invalid_spec():
    with pytest.raises(InvalidSpec, match="fc9"):
        apply_step(mlp(), KMeansQuantize(layer_bits={"fc9": 4}), ctx())


def test_codebook_fine_tuning_moves_centroids_not_codes():
    torch.manual_seed(1)
    x = torch.randn(256, 64)
    teacher = mlp()
    y = teacher(x).argmax(1)
    model = pruned(0.7)
    step = KMeansQuantize(bits=3, finetune_epochs=0)
    reference = apply_step(pruned(0.7), step, ctx())
    c = ctx(train=x, train_labels=y)
    tuned = apply_step(model, KMeansQuantize(bits=3, finetune_epochs=4, learning_rate=1e-2, batch_size=32), c)
    for r, t in zip((reference[0], reference[2]), (tuned[0], tuned[2])):
        assert torch.equal(r.weight == 0, t.weight == 0) and distinct(t.weight) <= 8
        codes_r = torch.unique(r.weight, return_inverse=True)[1].flatten()
        codes_t = torch.unique(t.weight, return_inverse=True)[1].flatten()
        pairs = torch.unique(torch.stack([codes_r, codes_t]), dim=1).shape[1]
        assert pairs == distinct(r.weight) == distinct(t.weight)  # the same weights still share one value
        assert not torch.equal(r.weight, t.weight)  # but the values moved
    note = next(n for n in c.notes if "fine-tuned" in n)
    before, after = (float(v) for v in note.rsplit("train accuracy ", 1)[1].split(" -> "))
    assert after >= before
    again = apply_step(pruned(0.7), KMeansQuantize(bits=3, finetune_epochs=4, learning_rate=1e-2, batch_size=32), ctx(train=x, train_labels=y))
    assert all(torch.equal(p, q) for p, q in zip(tuned.state_dict().values(), again.state_dict().values()))


def test_unlabelled_train_data_is_noted_not_used():
    c = ctx(train=torch.randn(16, 64))
    apply_step(pruned(), KMeansQuantize(), c)
    assert any("no labels" in n for n in c.notes)


MODEL = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [64, 48, 10]}}
KM = {"method": "quantize", "kind": "kmeans", "bits": 5}
PRUNE = {"method": "prune", "kind": "magnitude", "amount": 0.9}


def spec(*steps, **extra):
    return json.dumps({"model": MODEL, "steps": list(steps), **extra})


def test_spec_defaults_to_packed_and_allows_float_outputs():
    assert parse_spec(spec(PRUNE, KM)).resolved_outputs == ["packed"]
    assert parse_spec(spec(PRUNE, KM, outputs=["packed", "safetensors", "onnx"])).resolved_outputs == ["packed", "safetensors", "onnx"]
    assert parse_spec(spec(PRUNE, outputs=["packed"])).resolved_outputs == ["packed"]


@pytest.mark.parametrize(
    "text,fragment",
    [
        (spec(KM, PRUNE), "codebooks"),
        (spec(PRUNE, {"method": "quantize", "kind": "static_int8"}, outputs=["packed"]), "'packed' stores float tensors"),
        (spec({**KM, "bits": 9}), "less than or equal to 8"),
        (spec({**KM, "layer_bits": {"0": 1}}), "greater than or equal to 2"),
        (spec({**KM, "centroids": 3}), "Extra inputs"),
        (json.dumps({"model": {"format": "torchscript", "input": {"shape": [1, 64]}}, "steps": [KM]}), "quantize:kmeans on torchscript"),
        (json.dumps({"model": {"format": "torchscript", "input": {"shape": [1, 64]}}, "steps": [PRUNE], "outputs": ["packed"]}),
         "'packed' is not available for a torchscript upload"),
    ],
)
def test_impossible_kmeans_specs_are_rejected(text, fragment):
    with pytest.raises(InvalidSpec) as exc:
        parse_spec(text)
    assert fragment in json.dumps(exc.value.extra.get("errors")) or fragment in exc.value.detail


def test_train_part_is_optional_but_needs_labels_to_fine_tune():
    from modelpress_core.capabilities import data_problems

    step = KMeansQuantize()
    assert data_problems([step], {}) == []
    assert data_problems([step], {"train": {"inputs", "labels"}}) == []
    assert "no 'labels'" in data_problems([step], {"train": {"inputs"}})[0].msg
    assert data_problems([KMeansQuantize(finetune_epochs=0)], {"train": {"inputs"}}) == []
