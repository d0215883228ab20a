"""The worker's second pass (worker.torchscript_graph): after torch.jit.load, every inlined method
graph of every submodule against the same op allowlist the API used."""

import io

import pytest
import torch

from modelpress_core.config import get_settings
from modelpress_core.errors import UnsafeUpload
from tests import torchscript_archives as ta
from worker.loading import load_torchscript
from worker.torchscript_graph import check_graphs


def loaded(data: bytes) -> torch.jit.ScriptModule:
    return torch.jit.load(io.BytesIO(data))


@pytest.fixture(scope="module")
def clean():
    return ta.clean_archives()


@pytest.mark.parametrize("name", [
    "conv-scripted", "conv-traced", "mlp-scripted", "mlp-traced", "lstm-scripted", "lstm-traced",
    "int8-lstm-scripted", "int8-lstm-traced",
])
def test_real_models_pass(clean, name):
    check_graphs(loaded(clean[name]))


def refused(module: torch.jit.ScriptModule, op: str) -> UnsafeUpload:
    with pytest.raises(UnsafeUpload) as caught:
        check_graphs(module)
    assert caught.value.extra["op"] == op and caught.value.to_problem()["type"].endswith("/upload-unsafe")
    return caught.value


@pytest.mark.parametrize("module_class, op", [
    (ta.FromFile, "aten::from_file"),
    (ta.Save, "aten::save"),
    (ta.OpsAtenFromFile, "aten::from_file"),
    (ta.InFreeFunction, "aten::from_file"),  # inlined from the helper function
    (ta.CustomNamespace, "evil::touch"),
    (ta.ScriptProfile, "__torch__.torch.classes.profiling._ScriptProfile"),
])
def test_forbidden_ops_in_the_graph(module_class, op):
    refused(loaded(ta.archive(torch.jit.script(module_class()))), op)


def test_a_submodules_other_method_is_walked():
    error = refused(loaded(ta.archive(torch.jit.script(ta.HiddenInSubmodule()))), "aten::from_file")
    assert "Helper.leak (submodule inner)" in error.detail


@pytest.mark.parametrize("name", sorted(ta.HAND_WRITTEN))
def test_hand_written_spellings_reach_the_same_ops(name):
    """Whatever the code text says, the compiled graph names the op itself."""
    _, body = ta.HAND_WRITTEN[name]
    expected = "__torch__.torch.classes.profiling._ScriptProfile" if "classes" in body else "aten::from_file"
    refused(loaded(ta.with_forward_body(body)), expected)


@pytest.fixture
def op_check(monkeypatch):
    def set_to(value: bool):
        monkeypatch.setenv("MODELPRESS_TORCHSCRIPT_OP_CHECK", "true" if value else "false")
        get_settings.cache_clear()

    yield set_to
    get_settings.cache_clear()


def test_load_torchscript_checks_unless_switched_off(tmp_path, op_check):
    path = tmp_path / "model.pt"
    path.write_bytes(ta.archive(torch.jit.script(ta.FromFile())))
    op_check(True)
    with pytest.raises(UnsafeUpload, match="aten::from_file"):
        load_torchscript(path)
    op_check(False)  # only for testing the sandbox: the attack then loads
    assert isinstance(load_torchscript(path), torch.jit.ScriptModule)
