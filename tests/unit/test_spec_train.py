"""The training steps in the spec and the capabilities table: defaults, bounds, data needs (torch-free)."""

import json

import pytest

from modelpress_core.capabilities import data_problems
from modelpress_core.errors import InvalidSpec
from modelpress_core.spec import parse_spec

MLP = {"architecture": "mlp"}
STUDENT = {"architecture": "mlp", "config": {"sizes": [784, 32, 10]}}


def steps(*items, model=MLP, **extra):
    return parse_spec(json.dumps({"model": model, "steps": list(items), **extra})).steps


def test_defaults_and_labels():
    finetune, distill, qat = steps({"method": "finetune"}, {"method": "distill", "student": STUDENT}, {"method": "quantize", "kind": "qat"})
    assert (finetune.label, distill.label, qat.label) == ("finetune", "distill", "quantize:qat")
    assert finetune.epochs == 3 and not finetune.distill_from_original and qat.lr == 1e-4
    assert distill.student.architecture == "mlp" and distill.temperature == 4.0 and distill.alpha == 0.7


@pytest.mark.parametrize(
    "items, extra, needle",
    [
        ([{"method": "finetune", "epochs": 0}], {}, "epochs"),
        ([{"method": "finetune", "lr": -1}], {}, "lr"),
        ([{"method": "finetune", "include": ["0"]}], {}, "whole model"),
        ([{"method": "finetune", "optimizer": "sgd"}], {}, "optimizer"),
        ([{"method": "distill"}], {}, "student"),
        ([{"method": "distill", "student": {}}], {}, "exactly one of"),
        ([{"method": "distill", "student": {**STUDENT, "prune_amount": 0.5}}], {}, "exactly one of"),
        ([{"method": "distill", "student": {"prune_amount": 0.5, "config": {"a": 1}}}], {}, "goes with student.architecture"),
        ([{"method": "distill", "student": STUDENT, "alpha": 1.5}], {}, "alpha"),
        ([{"method": "quantize", "kind": "qat"}], {"device": "cuda"}, "cpu"),
        ([{"method": "quantize", "kind": "qat"}, {"method": "finetune"}], {}, "put quantization last"),
    ],
)
def test_bad_training_steps_are_rejected(items, extra, needle):
    with pytest.raises(InvalidSpec) as info:
        steps(*items, **extra)
    assert needle in json.dumps(info.value.to_problem())


def test_a_pruned_copy_student_needs_a_module_graph():
    ts = {"format": "torchscript", "input": {"shape": [1, 784]}}
    assert steps({"method": "distill", "student": STUDENT}, model=ts)  # a zoo student is fine
    with pytest.raises(InvalidSpec, match="pruned-copy student"):
        steps({"method": "distill", "student": {"prune_amount": 0.5}}, model=ts)
    with pytest.raises(InvalidSpec, match="ScriptModule"):
        steps({"method": "finetune"}, model=ts)


@pytest.mark.parametrize(
    "item, parts, problem",
    [
        ({"method": "finetune"}, {}, "send a 'train' part"),
        ({"method": "finetune"}, {"train": {"inputs"}}, "needs 'labels'"),
        ({"method": "finetune"}, {"train": {"inputs", "labels"}}, None),
        ({"method": "finetune", "distill_from_original": True}, {"train": {"inputs"}}, None),
        ({"method": "quantize", "kind": "qat"}, {"eval": {"inputs", "labels"}}, "send a 'train' part"),
        ({"method": "quantize", "kind": "qat"}, {"train": {"inputs"}}, "needs 'labels'"),
        ({"method": "distill", "student": STUDENT}, {}, None),  # data-free is allowed (and flagged)
        ({"method": "quantize", "kind": "static_int8"}, {}, None),  # calibration stays optional
    ],
)
def test_data_needs(item, parts, problem):
    found = data_problems(list(steps(item)), parts)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0].msg and found[0].loc == "steps.0"
