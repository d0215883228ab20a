"""Read a pickle's opcodes without running it, and refuse any global outside an allowlist.

TorchScript archives hold ``data.pkl`` / ``constants.pkl``, which ``torch.jit.load`` reads with
its own restricted unpickler. As a second line of defence the API walks the opcodes
(``pickletools.genops`` never executes anything) and accepts only the globals a TorchScript
archive legitimately names: its own ``__torch__`` classes, tensor rebuild helpers, storages.
The walk streams (nothing is read whole) and is charged to the upload's ``InspectionBudget``.
"""

from __future__ import annotations

import io
import pickletools
import re
from typing import BinaryIO

from modelpress_core.budget import InspectionBudget
from modelpress_core.errors import InvalidUpload, UnsafeTorchScriptOp, UnsafeUpload
from modelpress_core.torchscript_ops import CUSTOM_CLASS_PREFIX, custom_class_refusal

ALLOWED_GLOBALS = re.compile(
    r"^(__torch__(\.[\w.]+)? \w+"
    r"|torch \w+Storage"
    r"|torch\._utils _rebuild_(tensor_v2|parameter|qtensor|sparse_tensor)"
    r"|torch (device|Size|per_tensor_affine|per_channel_affine|quint8|qint8|qint32|float32|float16|bfloat16|int64|int32|int8|uint8|bool)"
    r"|torch\.jit\._pickle (build_\w+|restore_type_tag)"
    r"|collections OrderedDict)$"
)
FORBIDDEN_OPCODES = {"STACK_GLOBAL", "INST", "OBJ"}  # TorchScript writes GLOBAL; these hide what they import
BUDGET_EVERY = 4096  # opcodes between budget checks


def check_pickle(data: bytes | BinaryIO, name: str, budget: InspectionBudget | None = None) -> None:
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    try:
        for i, (opcode, arg, _) in enumerate(pickletools.genops(stream)):
            if budget is not None and i % BUDGET_EVERY == 0:
                budget.spend()
            if opcode.name in FORBIDDEN_OPCODES:
                raise UnsafeUpload(f"{name}: pickle opcode {opcode.name} is not accepted in a TorchScript archive", detected="pickle-global")
            if opcode.name == "GLOBAL" and not ALLOWED_GLOBALS.match(str(arg)):
                raise UnsafeUpload(f"{name}: the pickle names {str(arg)[:200]!r}, which a TorchScript archive has no reason to", detected="pickle-global")
            if opcode.name == "GLOBAL" and str(arg).startswith(CUSTOM_CLASS_PREFIX):
                _check_custom_class(str(arg), name)
    except (ValueError, IndexError, EOFError) as exc:
        raise InvalidUpload(f"{name}: corrupt pickle stream ({str(exc)[:200]})") from None


def _check_custom_class(arg: str, name: str) -> None:
    """``__torch__.torch.classes.<ns> <Class>``: a C++ custom class the unpickler would build."""
    module, _, cls = arg.partition(" ")
    qualified = f"{module[len(CUSTOM_CLASS_PREFIX):]}.{cls}"
    why = custom_class_refusal(qualified)
    if why:
        raise UnsafeTorchScriptOp(f"{name}: the pickle builds {CUSTOM_CLASS_PREFIX}{qualified}, which {why}", detected="torchscript-op",
                           op=CUSTOM_CLASS_PREFIX + qualified, location=name)
