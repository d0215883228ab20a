"""lowrank:tucker2 on k x k convolutions, against the same decomposition done by hand with torch, and the
submit-time applicability checks (worker.applicability) that turn every cannot-apply case into a 422."""

import copy

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from modelpress.artifacts import load_pruned, manifest_of
from modelpress.datasets import digits_28x28
from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import Tucker2LowRank
from worker.applicability import step_problems
from modelpress_torch.architectures import build_model
from worker.export import write_safetensors
from worker.inspector import answer
from worker.methods import StepContext, apply_step
from worker.methods.tucker import tucker2


def ctx():
    return StepContext(device=torch.device("cpu"), example_input=torch.zeros(1, 1, 28, 28))


@pytest.fixture(scope="module")
def lenet(digits_lenet5_path):
    model = build_model("lenet5", {})
    model.load_state_dict(load_file(str(digits_lenet5_path)))
    return model.eval()


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_full_ranks_reconstruct_the_kernel_exactly():
    torch.manual_seed(0)
    w = torch.randn(12, 8, 3, 3, dtype=torch.float64)
    core, u_out, u_in = tucker2(w, 12, 8, iterations=2)
    assert torch.allclose(torch.einsum("rskl,or,is->oikl", core, u_out, u_in), w, atol=1e-10)


def test_three_convolutions_compute_the_truncated_kernel_like_torch_by_hand():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, stride=2, padding=1, dilation=1).eval()
    model = apply_step(nn.Sequential(copy.deepcopy(conv)), Tucker2LowRank(rank=4, iterations=0), ctx())
    first, middle, last = model[0]
    assert (first.out_channels, middle.in_channels, middle.out_channels, last.out_channels) == (4, 4, 4, 24)
    # by hand: HOSVD with torch.linalg.svd of the two unfoldings, the kernel rebuilt, one conv2d
    w = conv.weight.detach().double()
    u_out = torch.linalg.svd(w.reshape(24, -1), full_matrices=False)[0][:, :4]
    u_in = torch.linalg.svd(w.transpose(0, 1).reshape(16, -1), full_matrices=False)[0][:, :4]
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)
    rebuilt = torch.einsum("rskl,or,is->oikl", core, u_out, u_in).float()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        assert torch.allclose(model(x), F.conv2d(x, rebuilt, conv.bias, stride=2, padding=1), atol=1e-4)


def test_a_low_tucker_rank_kernel_is_recovered_with_fewer_parameters():
    torch.manual_seed(1)
    conv = nn.Conv2d(32, 32, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.einsum("rskl,or,is->oikl", torch.randn(3, 5, 3, 3), torch.randn(32, 3), torch.randn(32, 5)))
    original = nn.Sequential(conv).eval()
    model = apply_step(copy.deepcopy(original), Tucker2LowRank(energy=0.999999), ctx())
    assert model[0][1].weight.shape == (3, 5, 3, 3)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in original.parameters()) / 10
    x = torch.randn(4, 32, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), original(x), atol=1e-3)


def test_hooi_fits_at_least_as_well_as_hosvd():
    torch.manual_seed(2)
    w = torch.randn(20, 16, 3, 3, dtype=torch.float64)
    def error(iterations):
        core, u_out, u_in = tucker2(w, 6, 5, iterations)
        return float((torch.einsum("rskl,or,is->oikl", core, u_out, u_in) - w).norm())
    assert error(10) <= error(0) + 1e-12


def test_lenet_on_real_digits_keeps_its_accuracy_and_round_trips(lenet, tmp_path):
    _, _, x, y = digits_28x28(0)
    x, y = torch.as_tensor(x).reshape(-1, 1, 28, 28), torch.as_tensor(y)
    context = ctx()
    model = apply_step(copy.deepcopy(lenet), Tucker2LowRank(energy=0.95), context)
    assert isinstance(model.features[3], nn.Sequential)  # conv2 (16x6x5x5) decomposed
    assert isinstance(model.features[0], nn.Conv2d)  # conv1 has one input channel: it would not shrink
    assert "left alone (would not shrink): features.0" in context.notes[-1]
    before, after = accuracy(lenet, x, y), accuracy(model, x, y)
    assert after >= before - 0.03, (before, after)
    path = tmp_path / "model.safetensors"
    write_safetensors(model, path, x[:1], manifest_of(model, "lenet5", {}, lenet))
    reloaded = load_pruned(path)
    with torch.no_grad():
        assert torch.equal(reloaded(x[:64]), model(x[:64]))


def test_rank_that_shrinks_nothing_fails_at_run_time_too():
    with pytest.raises(InvalidSpec, match="would shrink"):
        apply_step(nn.Sequential(nn.Conv2d(4, 4, 3)), Tucker2LowRank(rank=4), ctx())


LENET = lambda: build_model("lenet5", {})  # noqa: E731
MLP = lambda: build_model("mlp", {"sizes": [784, 300, 100, 10]})  # noqa: E731


@pytest.mark.parametrize("build, step, match", [
    (LENET, {"method": "lowrank", "kind": "svd", "rank": 2, "include": ["features.3"]}, "need lowrank:tucker2"),
    (MLP, {"method": "lowrank", "kind": "tucker2", "rank": 4}, "no k x k Conv2d"),
    (LENET, {"method": "lowrank", "kind": "tucker2", "rank": 16}, "shrinks none"),
    (MLP, {"method": "lowrank", "kind": "svd", "rank": 100, "include": ["4"]}, "shrinks none"),
    (MLP, {"method": "prune", "kind": "magnitude", "amount": 0.5, "include": ["nothing*"]}, "no Linear/Conv layer"),
    (LENET, {"method": "prune", "kind": "magnitude", "pattern": "2:4", "include": ["features.*"]}, "not a multiple of 4"),
])
def test_steps_that_cannot_apply_are_found_on_the_meta_model(build, step, match):
    problems = step_problems(build, [step])
    assert len(problems) == 1 and problems[0]["loc"] == "steps.0" and match in problems[0]["msg"], problems


def test_steps_that_apply_pass_and_checks_stop_at_a_shape_change():
    assert step_problems(LENET, [{"method": "lowrank", "kind": "tucker2", "rank": 4}, {"method": "prune", "kind": "magnitude",
                                                                                      "amount": 0.5, "include": ["gone"]}]) == []
    assert step_problems(MLP, [{"method": "lowrank", "kind": "svd", "energy": 0.9},
                               {"method": "prune", "kind": "ln_structured", "amount": 0.2, "dim": 1}]) == []


def test_the_inspector_answers_step_problems():
    from modelpress_torch.architectures.matching import expected_shapes

    shapes = expected_shapes("mlp", {"sizes": [784, 300, 100, 10]})
    reply = answer({"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}, "shapes": shapes,
                    "steps": [{"method": "lowrank", "kind": "tucker2", "rank": 4}]})
    assert reply["ok"] is False and reply["error_type"] == "steps" and reply["errors"][0]["loc"] == "steps.0"
    assert answer({"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}, "shapes": shapes, "steps": []})["ok"]
