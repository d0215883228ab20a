"""torchvision-compatible zoo entries: parameter counts, state_dict keys and shapes, forward."""

import pytest
import torch

from modelpress_torch.architectures import build_model, get_architecture


def _meta(name, config=None):
    with torch.device("meta"):
        return build_model(name, config)


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# torchvision's published parameter counts (weights tables in its docs)
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_torchvision(name):
    assert _n_params(_meta(name)) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"groups": 32, "width_per_group": 4}, 25_028_904),  # resnext50_32x4d
        ({"width_per_group": 128}, 68_883_240),  # wide_resnet50_2
    ],
)
def test_resnet50_variants_match_torchvision(config, expected):
    assert _n_params(_meta("resnet50", config)) == expected


# (state_dict length, first key, last key, {key: shape}) as in torchvision's state_dicts
STATE_DICTS = {
    "resnet18": (
        122,
        "conv1.weight",
        "fc.bias",
        {
            "conv1.weight": [64, 3, 7, 7],
            "bn1.running_mean": [64],
            "layer1.0.conv1.weight": [64, 64, 3, 3],
            "layer2.0.downsample.0.weight": [128, 64, 1, 1],
            "layer2.0.downsample.1.num_batches_tracked": [],
            "layer4.1.bn2.running_var": [512],
            "fc.weight": [1000, 512],
        },
    ),
    "resnet34": (
        218,
        "conv1.weight",
        "fc.bias",
        {
            "layer3.5.conv2.weight": [256, 256, 3, 3],
            "layer4.0.downsample.0.weight": [512, 256, 1, 1],
            "layer4.2.bn2.bias": [512],
            "fc.weight": [1000, 512],
        },
    ),
    "resnet50": (
        320,
        "conv1.weight",
        "fc.bias",
        {
            "layer1.0.conv1.weight": [64, 64, 1, 1],
            "layer1.0.conv3.weight": [256, 64, 1, 1],
            "layer1.0.downsample.0.weight": [256, 64, 1, 1],
            "layer3.5.bn3.running_mean": [1024],
            "layer4.2.conv2.weight": [512, 512, 3, 3],
            "fc.weight": [1000, 2048],
        },
    ),
    "mobilenet_v2": (
        314,
        "features.0.0.weight",
        "classifier.1.bias",
        {
            "features.0.0.weight": [32, 3, 3, 3],
            "features.0.1.weight": [32],
            "features.1.conv.0.0.weight": [32, 1, 3, 3],
            "features.1.conv.1.weight": [16, 32, 1, 1],
            "features.1.conv.2.running_var": [16],
            "features.2.conv.0.0.weight": [96, 16, 1, 1],
            "features.2.conv.1.0.weight": [96, 1, 3, 3],
            "features.2.conv.2.weight": [24, 96, 1, 1],
            "features.17.conv.2.weight": [320, 960, 1, 1],
            "features.18.0.weight": [1280, 320, 1, 1],
            "classifier.1.weight": [1000, 1280],
        },
    ),
    "mobilenet_v3_small": (
        244,
        "features.0.0.weight",
        "classifier.3.bias",
        {
            "features.0.0.weight": [16, 3, 3, 3],
            "features.1.block.0.0.weight": [16, 1, 3, 3],
            "features.1.block.1.fc1.weight": [8, 16, 1, 1],
            "features.1.block.1.fc2.weight": [16, 8, 1, 1],
            "features.1.block.2.0.weight": [16, 16, 1, 1],
            "features.4.block.2.fc1.weight": [24, 96, 1, 1],
            "features.12.0.weight": [576, 96, 1, 1],
            "classifier.0.weight": [1024, 576],
            "classifier.3.weight": [1000, 1024],
        },
    ),
    "vgg11_bn": (
        62,
        "features.0.weight",
        "classifier.6.bias",
        {
            "features.0.weight": [64, 3, 3, 3],
            "features.1.running_mean": [64],
            "features.4.weight": [128, 64, 3, 3],
            "features.25.weight": [512, 512, 3, 3],
            "features.26.running_var": [512],
            "classifier.0.weight": [4096, 25088],
            "classifier.3.weight": [4096, 4096],
            "classifier.6.weight": [1000, 4096],
        },
    ),
}


@pytest.mark.parametrize("name", sorted(STATE_DICTS))
def test_state_dict_keys_and_shapes(name):
    length, first, last, shapes = STATE_DICTS[name]
    state = _meta(name).state_dict()
    keys = list(state)
    assert (len(keys), keys[0], keys[-1]) == (length, first, last)
    for key, shape in shapes.items():
        assert list(state[key].shape) == shape, key


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small"])
def test_forward_and_strict_round_trip(name):
    torch.manual_seed(0)
    model = build_model(name, {"num_classes": 7}).eval()
    clone = build_model(name, {"num_classes": 7}).eval()
    clone.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 7)
        torch.testing.assert_close(clone(x), out)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_meta_forward_matches_declared_input(name):
    arch = get_architecture(name)
    shape = arch.input_shape(arch.config_model())
    assert shape == [1, 3, 224, 224]
    assert _meta(name)(torch.empty(shape, device="meta")).shape == (1, 1000)


def test_width_mult_scales_mobilenets():
    half_v2, half_v3 = _meta("mobilenet_v2", {"width_mult": 0.5}), _meta("mobilenet_v3_small", {"width_mult": 0.5})
    assert half_v2.state_dict()["features.0.0.weight"].shape == (16, 3, 3, 3)
    assert half_v2.state_dict()["classifier.1.weight"].shape == (1000, 1280)  # last channel never shrinks
    assert half_v3.state_dict()["features.0.0.weight"].shape == (8, 3, 3, 3)
    assert _n_params(half_v2) < PUBLISHED_PARAMS["mobilenet_v2"]


def test_basic_block_resnets_reject_grouping():
    from modelpress_torch.architectures import InvalidArchitectureConfig

    with pytest.raises(InvalidArchitectureConfig):
        get_architecture("resnet18").parse_config({"groups": 32})
