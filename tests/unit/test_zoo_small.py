"""Small zoo entries (``lenet_300_100``, ``cnn``) and properties every built-in must have."""

import pytest
import torch

from modelpress_torch.architectures import InvalidArchitectureConfig, build_model, get_architecture, list_architectures

BUILTINS = {
    "mlp", "lenet5", "lenet_300_100", "cnn", "bert",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "vgg11", "vgg11_bn", "vgg16", "vgg16_bn",
}  # fmt: skip


def test_lenet_300_100_layout_and_forward():
    torch.manual_seed(0)
    model = build_model("lenet_300_100", None)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {
        "fc1.weight": [300, 784], "fc1.bias": [300],
        "fc2.weight": [100, 300], "fc2.bias": [100],
        "fc3.weight": [10, 100], "fc3.bias": [10],
    }  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == 266_610
    assert get_architecture("lenet_300_100").input_shape(get_architecture("lenet_300_100").config_model()) == [1, 784]
    assert model(torch.randn(2, 784)).shape == (2, 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)  # images are flattened


def test_cnn_layout_and_forward():
    torch.manual_seed(0)
    config = {"in_channels": 1, "num_classes": 5, "channels": [8, 16], "image_size": 12}
    model = build_model("cnn", config).eval()
    state = model.state_dict()
    assert list(state["features.0.weight"].shape) == [8, 1, 3, 3]
    assert list(state["features.1.running_mean"].shape) == [8]
    assert list(state["features.4.weight"].shape) == [16, 8, 3, 3]
    assert list(state["classifier.weight"].shape) == [5, 16]
    assert list(state) == [k for k in state if k.startswith("features.")] + ["classifier.weight", "classifier.bias"]
    shape = get_architecture("cnn").input_shape(get_architecture("cnn").parse_config(config))
    assert shape == [1, 1, 12, 12]
    assert model(torch.randn(shape)).shape == (1, 5)


@pytest.mark.parametrize(
    "name, config",
    [
        ("cnn", {"channels": [8, 8, 8, 8], "image_size": 8}),  # 4 halvings need >= 16 px
        ("cnn", {"channels": []}),
        ("cnn", {"channels": [0]}),
        ("lenet_300_100", {"hidden": 200}),
        ("resnet18", {"num_classes": 0}),
        ("mobilenet_v2", {"width_mult": 0}),
    ],
)
def test_invalid_configs_are_rejected(name, config):
    with pytest.raises(InvalidArchitectureConfig):
        get_architecture(name).parse_config(config)


def test_builtins_are_registered_and_describable():
    described = {a.name: a.describe() for a in list_architectures() if a.source == "builtin"}
    assert BUILTINS <= set(described)
    for name in BUILTINS:
        assert described[name]["default_input"] is not None, name
        assert described[name]["config_schema"]["additionalProperties"] is False, name


@pytest.mark.parametrize("name", ["mlp", "lenet5", "lenet_300_100", "cnn", "bert"])  # vision: test_zoo_vision
def test_default_builds_on_meta_accept_their_declared_input(name):
    arch = get_architecture(name)
    config = arch.config_model()
    dtype = getattr(torch, arch.input_dtype)
    with torch.device("meta"):
        model = arch.build(None)
        out = model(torch.zeros(arch.input_shape(config), dtype=dtype))
    assert out.shape[0] == 1
