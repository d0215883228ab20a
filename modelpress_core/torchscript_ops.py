"""Which TorchScript ops and custom classes an uploaded archive may use. Data only, torch-free.

One source of truth for both lines that read TorchScript: the API's scan of the archive's code
(``modelpress_core.torchscript_scan``) and the worker's walk of the loaded, inlined graphs
(``worker.torchscript_graph``). Both ask ``op_refusal`` / ``custom_class_refusal``.

The rule: an op's namespace must be one real models use (measured: scripted and traced conv nets,
MLPs, LSTMs and dynamic-int8 models use only ``aten``, ``prim`` and ``quantized``), and the op must
not be on the deny list: anything that touches files, shared memory, processes or the network, or
calls back into Python. The deny list is explicit (``DENIED_OPS``) plus a word rule
(``DENIED_WORDS``) so that a renamed or new file op in an allowed namespace is refused too.
docs/security-torchscript.md explains the list and its known gaps.
"""

from __future__ import annotations

ALLOWED_NAMESPACES = frozenset({"aten", "prim", "quantized"})

FILE = "reads or writes a file"
SHARED_MEMORY = "maps or shares memory with other processes through files or descriptors"
NETWORK = "talks to other processes over the network"
PYTHON = "calls back into Python"

DENIED_OPS: dict[str, str] = {
    "aten::from_file": FILE,  # torch.from_file / storage.from_file: mmap or read any path
    "aten::save": FILE,  # torch.save inside TorchScript: writes any path
    "aten::load": FILE,
    "aten::_save_for_mobile": FILE,
    "aten::_load_for_mobile": FILE,
    "aten::_new_with_file": FILE,
    "aten::share_memory_": SHARED_MEMORY,
    "aten::_share_fd_": SHARED_MEMORY,
    "aten::_share_filename_": SHARED_MEMORY,
    "aten::_new_shared": SHARED_MEMORY,
    "aten::_new_shared_fd": SHARED_MEMORY,
    "aten::_new_shared_filename": SHARED_MEMORY,
    "aten::_shared_decref": SHARED_MEMORY,
    "aten::_shared_incref": SHARED_MEMORY,
    "aten::_release_ipc_counter": SHARED_MEMORY,
    "prim::rpc_async": NETWORK,
    "prim::rpc_sync": NETWORK,
    "prim::rpc_remote": NETWORK,
    "aten::rpc_async": NETWORK,
    "aten::rpc_sync": NETWORK,
    "aten::rpc_remote": NETWORK,
    "prim::PythonOp": PYTHON,
    "prim::IgnoredPythonOp": PYTHON,
}

# An op in an allowed namespace whose name has one of these words (split on "_") is refused as well:
# the deny list's intent, for ops it does not name yet.
DENIED_WORDS = frozenset({
    "file", "filename", "files", "save", "load", "shared", "shm", "mmap", "pickle", "unpickle", "ipc", "fd",
    "rpc", "socket", "process", "exec", "system", "environ", "dlopen", "library",
})

# TorchScript custom classes (``__torch__.torch.classes.<ns>.<Class>``): C++ objects with their own
# methods. Allowed: the packed-weight holders quantized models carry, nothing else (c10d process
# groups and stores, dist_rpc, profiling and test classes are refused).
ALLOWED_CUSTOM_CLASSES = frozenset({
    "quantized.LinearPackedParamsBase",  # dynamic/static int8 Linear (measured)
    "quantized.Conv2dPackedParamsBase",  # static int8 Conv2d
    "quantized.Conv3dPackedParamsBase",
    "quantized.EmbeddingPackedParamsBase",
    "rnn.CellParamsBase",  # dynamic int8 LSTM/GRU cells (measured)
})
CUSTOM_CLASS_PREFIX = "__torch__.torch.classes."


def op_refusal(op: str) -> str | None:
    """Why ``op`` (``namespace::name``) may not run, or None when it may."""
    namespace, sep, name = op.partition("::")
    if not sep or not namespace or not name:
        return "is not a namespaced op"
    if namespace not in ALLOWED_NAMESPACES:
        return f"is in namespace {namespace!r}; allowed: {', '.join(sorted(ALLOWED_NAMESPACES))}"
    if op in DENIED_OPS:
        return DENIED_OPS[op]
    if op.rstrip("_") in DENIED_OPS:  # the in-place spelling of a denied op
        return DENIED_OPS[op.rstrip("_")]
    words = set(name.strip("_").lower().split("_"))
    hit = sorted(words & DENIED_WORDS)
    if hit:
        return f"has {hit[0]!r} in its name (file, memory-sharing, process and network ops are refused)"
    return None


def method_name_refusal(name: str) -> str | None:
    """Why ``x.<name>(...)`` may not appear: TorchScript resolves a method call on a tensor, list or
    string to ``aten::<name>``, so the explicitly denied aten op names are refused on any receiver."""
    for op in (f"aten::{name}", f"aten::{name.rstrip('_')}"):
        if op in DENIED_OPS:
            return DENIED_OPS[op]
    return None


def custom_class_refusal(qualified: str) -> str | None:
    """Why the custom class ``<ns>.<Class>`` may not be used, or None when it may."""
    if qualified in ALLOWED_CUSTOM_CLASSES:
        return None
    return "is a TorchScript custom class outside the allowlist (" + ", ".join(sorted(ALLOWED_CUSTOM_CLASSES)) + ")"
