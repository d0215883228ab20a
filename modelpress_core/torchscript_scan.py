"""The code of a TorchScript archive, read with ``ast`` (never run) and checked against the op allowlist.

A TorchScript archive carries every class, method (``forward``, helpers, ``__setstate__``) and
function it needs as Python-syntax text under ``<root>/code/__torch__/...py``; ``torch.jit.load``
compiles exactly that text. How ops appear in it (measured on scripted and traced modules):

    torch.from_file(...)            aten::from_file  (``torch`` is the aten namespace; also torch.autograd.x)
    ops.quantized.linear_dynamic(x) quantized::linear_dynamic; ops.prim.RaiseException, ops.evil.x
    x.save(...)                     a method call on a tensor, list or string resolves to aten::save
    getattr(x, "save")              the same, spelled as a special form
    __torch__.torch.classes.ns.C    a C++ custom class (checked against its own allowlist)
    __torch__.pkg.Class / .fn       the archive's own code, itself scanned

``torch``, ``ops`` and ``__torch__`` used as plain values (``t = torch``; ``getattr(ops, "evil")``)
would hide which op a later call names, so they are refused. Parsing is bounded: total code bytes,
AST nodes, nesting depth; a parser that gives up is a 422 ``upload-invalid``.
"""

from __future__ import annotations

import ast
import zipfile
from dataclasses import dataclass

from modelpress_core.errors import InvalidUpload, UnsafeTorchScriptOp
from modelpress_core.torchscript_ops import (
    CUSTOM_CLASS_PREFIX,
    custom_class_refusal,
    method_name_refusal,
    op_refusal,
)

ROOT_NAMES = frozenset({"torch", "ops", "__torch__"})


@dataclass(frozen=True)
class CodeLimits:
    """Measured on real archives (``bench/results/torchscript_code.json``: a 12-layer traced BERT, a scripted and
    a traced nn.Transformer): at most 123,178 bytes of code in all, 29,283 in one file, 29,497 AST nodes, depth 16.
    ``ast.parse`` of adversarial code costs hundreds of MB per 512 KiB file, so the byte caps are what bound the
    parser; the node and depth caps bound the walk."""

    max_total_bytes: int = 2 * 1024 * 1024  # all code files together
    max_file_bytes: int = 512 * 1024  # one code file (parsed one at a time)
    max_nodes: int = 500_000  # AST nodes, all files together
    max_depth: int = 100  # AST nesting


def code_entries(names: list[str]) -> list[str]:
    """The entries ``torch.jit.load`` can compile: ``<root>/code/**.py``."""
    return [n for n in names if n.endswith(".py") and n.split("/", 2)[1:2] == ["code"]]


def scan_archive(archive: zipfile.ZipFile, names: list[str], limits: CodeLimits = CodeLimits()) -> None:
    """Raise ``UnsafeTorchScriptOp`` naming the first refused op (and where it is), or ``InvalidUpload`` when
    the code cannot be read within the limits."""
    entries = code_entries(names)
    sizes = {n: archive.getinfo(n).file_size for n in entries}  # check_zip has verified the declared sizes
    total = sum(sizes.values())
    if total > limits.max_total_bytes:
        raise InvalidUpload(
            f"the TorchScript archive has {total} bytes of code (limit {limits.max_total_bytes})", detected="code-too-large"
        )
    for name, size in sizes.items():
        if size > limits.max_file_bytes:
            raise InvalidUpload(f"{name} has {size} bytes of code (limit {limits.max_file_bytes})", detected="code-too-large")
    budget = _Budget(limits)
    for name in entries:
        scan_code(archive.read(name), name, budget)


class _Budget:
    def __init__(self, limits: CodeLimits):
        self.limits = limits
        self.nodes = 0

    def count(self, depth: int, where: str) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise InvalidUpload(f"the TorchScript code has more than {self.limits.max_nodes} syntax nodes", detected="code-too-large")
        if depth > self.limits.max_depth:
            raise InvalidUpload(f"{where}: the TorchScript code nests deeper than {self.limits.max_depth}", detected="code-too-deep")


def scan_code(source: bytes, filename: str, budget: _Budget | None = None) -> None:
    budget = budget or _Budget(CodeLimits())
    tree = _parse(source, filename)
    # An explicit stack, not recursion: (node, depth, where, is the .value of an Attribute)
    stack: list[tuple[ast.AST, int, str, bool]] = [(tree, 0, filename, False)]
    while stack:
        node, depth, where, attribute_value = stack.pop()
        budget.count(depth, where)
        where = _where(node, where, filename)
        _check_node(node, attribute_value, where)
        children = list(ast.iter_child_nodes(node))
        for child in reversed(children):  # popped in source order, so the first offence is the one reported
            is_value = isinstance(node, ast.Attribute) and child is node.value
            stack.append((child, depth + 1, where, is_value))


def _parse(source: bytes, filename: str) -> ast.Module:
    try:
        text = source.decode("utf-8")
        return ast.parse(text, filename=filename)
    except (SyntaxError, ValueError, UnicodeDecodeError) as exc:  # IndentationError is a SyntaxError
        line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        raise InvalidUpload(f"{filename}: the TorchScript code is not valid syntax{line}: {str(exc)[:200]}") from None
    except (RecursionError, MemoryError):
        raise InvalidUpload(f"{filename}: the TorchScript code is too deeply nested or too large to read", detected="code-too-deep") from None


def _where(node: ast.AST, where: str, filename: str) -> str:
    if isinstance(node, ast.ClassDef):
        return f"{filename}: class {node.name}"
    if isinstance(node, ast.FunctionDef):
        owner = where.split(": class ", 1)
        return f"{filename}: {owner[1]}.{node.name}" if len(owner) == 2 else f"{filename}: function {node.name}"
    return where


def _check_node(node: ast.AST, attribute_value: bool, where: str) -> None:
    if isinstance(node, ast.Name) and node.id in ROOT_NAMES and not attribute_value:
        _refuse(f"`{node.id}` as a plain value", "would hide which op a later call names", where, node)
    if isinstance(node, ast.Attribute):
        if not attribute_value:
            _check_chain(node, where)
        why = method_name_refusal(node.attr)
        if why:
            _refuse(f"aten::{node.attr}", why + " (named as an attribute: a method call resolves to the aten op)", where, node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
        _check_getattr(node, where)


def _check_chain(node: ast.Attribute, where: str) -> None:
    parts: list[str] = []
    value: ast.AST = node
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name) or value.id not in ROOT_NAMES:
        return
    parts.reverse()
    if value.id == "__torch__":
        _check_torch_path(parts, where, node)
        return
    op = _op_of(value.id, parts)
    if op is None:
        _refuse(f"`{'.'.join([value.id, *parts])}` as a plain value", "would hide which op a later call names", where, node)
        return
    why = op_refusal(op)
    if why:
        _refuse(op, why, where, node)


def _op_of(root: str, parts: list[str]) -> str | None:
    """The op a ``torch.*`` / ``ops.*`` chain names, as TorchScript's importer resolves it:
    ``torch`` and ``ops.<ns>`` are op namespaces, and ``.autograd`` on a namespace is aten again."""
    namespace, rest = ("aten", parts) if root == "torch" else (parts[0] if parts else None, parts[1:])
    if namespace is None:
        return None
    for part in rest:
        if part == "autograd":
            namespace = "aten"
            continue
        return f"{namespace}::{part}"
    return None


def _check_torch_path(parts: list[str], where: str, node: ast.AST) -> None:
    """``__torch__.<path>``: the archive's own classes and functions pass (their code is scanned too);
    ``__torch__.torch.classes.<ns>.<Class>`` is a C++ custom class, checked against its allowlist."""
    dotted = ".".join(["__torch__", *parts])
    if parts[:1] != ["torch"] or (len(parts) > 1 and parts[1] != "classes"):
        return
    if len(parts) < 4:
        _refuse(f"`{dotted}` as a plain value", "would hide which custom class a later call names", where, node)
    qualified = f"{parts[2]}.{parts[3]}"
    why = custom_class_refusal(qualified)
    if why:
        _refuse(CUSTOM_CLASS_PREFIX + qualified, why, where, node)


def _check_getattr(node: ast.Call, where: str) -> None:
    name = node.args[1] if len(node.args) >= 2 else None
    if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
        _refuse(f"{node.func.id}() with a computed name", "cannot be checked (TorchScript itself only allows a constant name)", where, node)  # type: ignore[attr-defined]
    why = method_name_refusal(name.value)
    if why:
        _refuse(f"aten::{name.value}", why + " (named through getattr)", where, node)


def _refuse(what: str, why: str, where: str, node: ast.AST) -> None:
    line = getattr(node, "lineno", None)
    at = f"{where}, line {line}" if line else where
    raise UnsafeTorchScriptOp(
        f"the TorchScript code uses {what}, which modelpress refuses: it {why}. Found in {at}.",
        detected="torchscript-op",
        op=what,
        location=at,
    )
