"""Entry-point plugins: ``registry._ensure_loaded`` imports modules of ``modelpress.architectures``."""

import logging
import sys
from pathlib import Path

import pytest
import torch

from modelpress_torch.architectures import registry

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "modelpress-plugin-example" / "src"
PLUGIN_MODULES = ("modelpress_plugin_example", "modelpress_plugin_example.architectures", "broken_zoo_plugin")


def _fake_distribution(root: Path) -> None:
    """A dist-info on sys.path that importlib.metadata finds, naming the example plus a broken plugin."""
    dist_info = root / "fake_modelpress_plugins-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-modelpress-plugins\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[modelpress.architectures]\n"
        "tiny_convnet = modelpress_plugin_example.architectures\n"
        "broken = broken_zoo_plugin\n"
    )
    (root / "broken_zoo_plugin.py").write_text("raise RuntimeError('this plugin is broken')\n")


@pytest.fixture
def fresh_registry(tmp_path, monkeypatch):
    """Registry state as before first use, with the fake distribution on sys.path; restored after."""
    registry._ensure_loaded()  # built-ins in place, so the copy below holds them
    _fake_distribution(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    builtins = {name: arch for name, arch in registry._REGISTRY.items() if arch.source == "builtin"}
    monkeypatch.setattr(registry, "_REGISTRY", builtins)  # as if no plugin were installed yet
    monkeypatch.setattr(registry, "_loaded", False)
    for name in PLUGIN_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def test_entry_point_plugins_are_loaded(fresh_registry, caplog):
    assert "tiny_convnet" not in registry._REGISTRY
    with caplog.at_level(logging.ERROR, logger=registry.__name__):
        arch = registry.get_architecture("tiny_convnet")

    # the fake distribution, or the real example package when the test command installed it too
    assert arch.source in ("plugin:fake-modelpress-plugins", "plugin:modelpress-plugin-example")
    assert registry.get_architecture("resnet18").source == "builtin"
    assert "broken_zoo_plugin" in caplog.text  # logged, not raised

    torch.manual_seed(0)
    model = registry.build_model("tiny_convnet", {"width": 4})
    assert set(model.state_dict()) == {
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "head.weight",
        "head.bias",
    }
    config = arch.parse_config({"width": 4})
    assert model(torch.randn(arch.input_shape(config))).shape == (1, 10)


def test_registry_is_restored_after_plugin_test():
    registry._ensure_loaded()
    arch = registry._REGISTRY.get("tiny_convnet")
    assert arch is None or arch.source == "plugin:modelpress-plugin-example"  # only the really installed one
