"""The second look at a TorchScript upload: after ``torch.jit.load``, every node of every method of
every submodule (inlined, so helper functions and called methods are included) against the same
op allowlist the API used on the archive's code (``modelpress_core.torchscript_ops``).

This catches what the API's reading of the code text might miss (a parser differential, an op the
text spells in a way the scan does not map). It runs after loading, so ``__setstate__`` code has
already run by then: for that, only the API's scan and the sandbox stand in the way.
"""

from __future__ import annotations

import torch

from modelpress_core.errors import UnsafeTorchScriptOp
from modelpress_core.torchscript_ops import CUSTOM_CLASS_PREFIX, custom_class_refusal, op_refusal


def check_graphs(model: torch.jit.ScriptModule) -> None:
    """Raise ``UnsafeTorchScriptOp`` naming the first refused node kind (or custom class) and its method."""
    for module_name, module in model.named_modules():
        script_module = module._c
        for method_name in script_module._method_names():
            graph = script_module._get_method(method_name).graph.copy()
            torch._C._jit_pass_inline(graph)
            where = f"{type_name(script_module)}.{method_name}" + (f" (submodule {module_name})" if module_name else "")
            _check_block(graph, where)


def type_name(script_module) -> str:
    return script_module._type().qualified_name().removeprefix("__torch__.")


def _check_block(graph_or_block, where: str) -> None:
    stack = list(graph_or_block.nodes())
    for value in graph_or_block.inputs() if hasattr(graph_or_block, "inputs") else ():
        _check_type(value.type(), where)
    while stack:
        node = stack.pop()
        kind = node.kind()
        why = op_refusal(kind)
        if why:
            _refuse(kind, why, where)
        for value in node.outputs():
            _check_type(value.type(), where)
        for block in node.blocks():
            stack.extend(block.nodes())


def _check_type(value_type, where: str) -> None:
    """A value typed as a C++ custom class (``__torch__.torch.classes.<ns>.<Class>``), directly or in a container."""
    pending = [value_type]
    while pending:
        current = pending.pop()
        name = getattr(current, "qualified_name", None)
        qualified = name() if callable(name) else None
        if qualified and qualified.startswith(CUSTOM_CLASS_PREFIX):
            short = qualified[len(CUSTOM_CLASS_PREFIX):]
            why = custom_class_refusal(short)
            if why:
                _refuse(qualified, why, where)
        pending.extend(current.containedTypes())


def _refuse(what: str, why: str, where: str) -> None:
    raise UnsafeTorchScriptOp(
        f"the loaded TorchScript graph uses {what}, which modelpress refuses: it {why}. Found in {where}.",
        detected="torchscript-op",
        op=what,
        location=where,
    )
