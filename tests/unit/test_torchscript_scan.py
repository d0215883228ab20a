"""The submit-time TorchScript op check (modelpress_core.torchscript_scan) over real archives built with torch."""

import io
import pickletools
import zipfile

import pytest
import torch

from modelpress_core import intake
from modelpress_core.errors import InvalidUpload, UnsafeTorchScriptOp, UnsafeUpload
from modelpress_core.picklescan import check_pickle
from modelpress_core.torchscript_ops import DENIED_OPS, method_name_refusal, op_refusal
from modelpress_core.torchscript_scan import CodeLimits, scan_archive, scan_code
from tests import torchscript_archives as ta


def write(tmp_path, data: bytes):
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def clean():
    return ta.clean_archives()


@pytest.mark.parametrize("name", [
    "conv-scripted", "conv-traced", "mlp-scripted", "mlp-traced", "lstm-scripted", "lstm-traced",
    "int8-lstm-scripted", "int8-lstm-traced",
])
def test_real_models_pass(tmp_path, clean, name):
    assert intake.sniff(write(tmp_path, clean[name])) == "torchscript"


def refused(tmp_path, data: bytes, op: str) -> UnsafeUpload:
    with pytest.raises(UnsafeUpload) as caught:
        intake.sniff(write(tmp_path, data))
    problem = caught.value.to_problem()
    assert problem["type"].endswith("/upload-unsafe") and problem["status"] == 422
    assert problem["title"] == UnsafeTorchScriptOp.title
    assert problem["op"] == op and op in problem["detail"]
    return caught.value


def scripted(module_class) -> bytes:
    return ta.archive(torch.jit.script(module_class()))


def test_torch_from_file(tmp_path):
    error = refused(tmp_path, scripted(ta.FromFile), "aten::from_file")
    assert "FromFile.forward" in error.detail


def test_torch_save(tmp_path):
    refused(tmp_path, scripted(ta.Save), "aten::save")


def test_torch_ops_aten_from_file(tmp_path):
    refused(tmp_path, scripted(ta.OpsAtenFromFile), "aten::from_file")


def test_hidden_in_a_submodules_other_method(tmp_path):
    error = refused(tmp_path, scripted(ta.HiddenInSubmodule), "aten::from_file")
    assert "Helper.leak" in error.detail


def test_hidden_in_setstate(tmp_path):
    error = refused(tmp_path, scripted(ta.SaveInSetstate), "aten::save")
    assert "SaveInSetstate.__setstate__" in error.detail


def test_hidden_in_a_free_function(tmp_path):
    error = refused(tmp_path, scripted(ta.InFreeFunction), "aten::from_file")
    assert "function read_secret" in error.detail


def test_unknown_custom_op_namespace(tmp_path):
    error = refused(tmp_path, scripted(ta.CustomNamespace), "evil::touch")
    assert "namespace 'evil'" in error.detail


def test_custom_class_outside_the_allowlist(tmp_path):
    refused(tmp_path, scripted(ta.ScriptProfile), "__torch__.torch.classes.profiling._ScriptProfile")


@pytest.mark.parametrize("name", sorted(ta.HAND_WRITTEN))
def test_hand_written_spellings_that_torch_compiles(tmp_path, name):
    op, body = ta.HAND_WRITTEN[name]
    data = ta.with_forward_body(body)
    torch.jit.load(io.BytesIO(data))  # the attack is real: torch compiles this code
    error = refused(tmp_path, data, op)
    assert "Plain.forward" in error.detail


@pytest.mark.parametrize("code, what", [
    ("return x.save('/tmp/x')", "aten::save"),  # a method call on any value resolves to aten::<name>
    ('return getattr(x, "from_file")(1)', "aten::from_file"),
    ("return ops.prim.rpc_async(x)", "prim::rpc_async"),
    ("return ops.c10d.allreduce_(x)", "c10d::allreduce_"),
    ("return torch._share_filename_(x)", "aten::_share_filename_"),
    ("return torch.load('/tmp/x')", "aten::load"),
    ("return torch._save_for_mobile(x)", "aten::_save_for_mobile"),
    ("g = __torch__.torch.classes\n    return x", "`__torch__.torch.classes` as a plain value"),
    ("return getattr(ops, 'evil')", "`ops` as a plain value"),
    ("return __torch__.torch.classes.c10d.ProcessGroup(x)", "__torch__.torch.classes.c10d.ProcessGroup"),
])
def test_spellings_are_mapped_to_ops(what, code):
    source = f"class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n    {code}\n".encode()
    with pytest.raises(UnsafeUpload) as caught:
        scan_code(source, "m.py")
    assert what in caught.value.detail and "M.forward" in caught.value.detail


def test_prim_ops_real_code_uses_pass():
    source = (b"class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n"
              b"    _0 = ops.prim.dtype(x)\n    _1 = ops.quantized.linear_dynamic(x, self.p)\n"
              b"    if torch.__is__(x, None):\n      ops.prim.RaiseException(\"no\", \"builtins.RuntimeError\")\n"
              b"    p = annotate(List[__torch__.torch.classes.rnn.CellParamsBase], [])\n"
              b"    return torch.add(x, unchecked_cast(Tensor, _1))\n")
    scan_code(source, "m.py")


def test_the_deny_list_is_what_op_refusal_says():
    for op in DENIED_OPS:
        assert op_refusal(op) == DENIED_OPS[op]
    assert op_refusal("aten::conv2d") is None and op_refusal("prim::RaiseException") is None
    assert op_refusal("quantized::linear_dynamic") is None
    assert "file" in op_refusal("aten::_new_shiny_file_reader")  # the word rule, for ops the list does not name
    assert op_refusal("evil::x") and op_refusal("aten") and op_refusal("::x")
    assert method_name_refusal("from_file") and method_name_refusal("save") and method_name_refusal("forward") is None


def test_every_real_aten_prim_quantized_op_outside_the_deny_list_is_allowed():
    """The allowlist refuses no op of this torch build that is not meant to be refused."""
    names = {s.name for s in torch._C._jit_get_all_schemas()}
    refused_here = {n for n in names if n.split("::")[0] in ("aten", "prim", "quantized") and op_refusal(n)}
    assert refused_here == {n for n in names if n in DENIED_OPS}
    assert {"aten::from_file", "aten::save", "prim::rpc_async"} <= refused_here


# ---- bounds: a parser that gives up, or code past a cap, is 422 upload-invalid ------------------

@pytest.mark.parametrize("source", [
    b"def forward(self, x:\n  return x\n",  # syntax error
    b"def f(x):\n  return x\x00\n",  # NUL byte
    b"def f(x):\n  return '\xff'\n",  # not UTF-8
    b"def f(x):\n  return " + b"(" * 1000 + b"x" + b")" * 1000 + b"\n",  # the tokenizer's paren limit
    b"def f(x):\n  return " + b"-" * 100_000 + b"x\n",  # the parser's recursion limit
    b"".join(b" " * i + b"if x:\n" for i in range(120)) + b" " * 120 + b"pass\n",  # indentation limit
])
def test_unreadable_code_is_invalid(tmp_path, source):
    with pytest.raises(InvalidUpload) as caught:
        intake.sniff(write(tmp_path, ta.with_code(source)))
    assert caught.value.to_problem()["type"].endswith("/upload-invalid")


def test_deep_code_is_invalid():
    deep = b"def f(x):\n  return x" + b"+x" * 150 + b"\n"  # parses; nests 150 deep
    with pytest.raises(InvalidUpload, match="nests deeper than 100"):
        scan_code(deep, "deep.py")


def test_code_caps(tmp_path):
    data = ta.archive(torch.jit.script(ta.ConvNet().eval()))
    path = write(tmp_path, data)
    names = zipfile.ZipFile(path).namelist()
    with zipfile.ZipFile(path) as archive:
        scan_archive(archive, names)
        with pytest.raises(InvalidUpload, match="bytes of code"):
            scan_archive(archive, names, CodeLimits(max_total_bytes=1000))
        with pytest.raises(InvalidUpload, match="bytes of code"):
            scan_archive(archive, names, CodeLimits(max_file_bytes=1000))
        with pytest.raises(InvalidUpload, match="syntax nodes"):
            scan_archive(archive, names, CodeLimits(max_nodes=100))


def test_huge_code_is_refused_before_parsing(tmp_path):
    huge = b"def f(x):\n  return [" + b"x," * (600 * 1024) + b"]\n"
    with pytest.raises(InvalidUpload, match="bytes of code") as caught:
        intake.sniff(write(tmp_path, ta.with_code(huge)))
    assert caught.value.status == 422


def test_the_check_can_be_switched_off(tmp_path):
    path = write(tmp_path, scripted(ta.FromFile))
    assert intake.sniff(path, op_check=False) == "torchscript"
    with pytest.raises(UnsafeUpload):
        intake.sniff(path)


# ---- the pickles may only build allowed custom classes -----------------------------------------

def test_a_pickled_custom_class_outside_the_allowlist_is_refused():
    evil = b"\x80\x02c__torch__.torch.classes.c10d\nProcessGroup\nq\x00)\x81q\x01."
    list(pickletools.genops(io.BytesIO(evil)))  # a well-formed pickle
    with pytest.raises(UnsafeUpload, match="c10d.ProcessGroup"):
        check_pickle(evil, "data.pkl")
    check_pickle(evil.replace(b"c10d\nProcessGroup", b"rnn\nCellParamsBase"), "data.pkl")
