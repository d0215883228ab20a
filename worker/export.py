"""Artifact writers and loaders, found through the output-format registry (``modelpress_core/formats.py``).

A writer writes one file and returns None or the check it ran on it; a loader reloads it the way a
user would (for measuring in that runtime). ``writer(fmt)`` / ``loader(fmt)`` resolve the registry's
dotted paths, so the registry names every format's code in one place.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from modelpress_core import packed
from modelpress_core.formats import FORMATS
from modelpress_torch.artifacts import MANIFEST_KEY, load_executorch, load_packed, load_pruned, read_manifest
from worker.onnx_export import load_onnx
from worker.packed_int8 import is_dynamic_int8, quantized_arrays

ARTIFACT_NAMES = {name: f.file_name for name, f in FORMATS.items()}
MEDIA_TYPES = {name: f.media_type for name, f in FORMATS.items()}


def write_safetensors(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None,
                      state: dict[str, torch.Tensor] | None = None) -> None:
    """A plain state_dict (or ``state``: one with pruning masks); with ``manifest`` (the layer shapes, see
    ``modelpress_torch.artifacts``) in its metadata."""
    state = {k: v.detach().contiguous().cpu() for k, v in (model.state_dict() if state is None else state).items()}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor) or v.is_quantized]
    if bad:
        raise ValueError(f"safetensors cannot hold quantized tensors ({bad[:3]}); ask for torchscript")
    metadata = {MANIFEST_KEY: json.dumps(manifest, separators=(",", ":"))} if manifest is not None else None
    save_file(state, str(path), metadata=metadata)


def write_torchscript(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, str(path))
            return
        try:
            scripted = torch.jit.script(model)
        except Exception:
            scripted = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(scripted, str(path))


def write_exported_program(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None) -> dict:
    """A ``torch.export`` ExportedProgram of a PT2E int8 graph, batch dimension dynamic where it can be."""
    from worker.methods.pt2e import at_least_two, batch_dim

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(model, (at_least_two(example),), dynamic_shapes=batch_dim())
            dynamic = True
        except Exception:  # noqa: BLE001 - a graph that specialised on its batch: one shape only
            program = torch.export.export(model, (example,))
            dynamic = False
        program.example_inputs = None  # else torch.export.save stores the example batch too
        torch.export.save(program, str(path))
    return {"format": "torch.export ExportedProgram", "torch": torch.__version__, "dynamic_batch": dynamic,
            "load": "import torchao.quantization.pt2e.quantize_pt2e; torch._inductor.config.freezing = True; "
            "torch.compile(torch.export.load(path).module())", "passed": True}


class CompiledProgram:
    """A loaded .pt2 under ``torch.compile`` (inductor, freezing): compiles on the first call of each shape."""

    def __init__(self, path: Path):
        import torch._inductor.config as inductor_config
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  registers quantized_decomposed ops for load

        # Global, not options=: options={"freezing": True} fails on PT2E graphs (onednn.qlinear_prepack).
        inductor_config.freezing = True
        self.module = torch.export.load(str(path)).module()
        self.compiled = torch.compile(self.module, dynamic=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.compiled(x)

    def eval(self) -> "CompiledProgram":
        return self

    def to(self, device) -> "CompiledProgram":
        if torch.device(device).type != "cpu":
            raise ValueError("the inductor artifact is measured on the CPU")
        return self


def state_arrays(model: nn.Module) -> tuple[dict[str, "np.ndarray"], dict[str, str]]:
    """The state_dict as numpy arrays (bfloat16 as its uint16 bits, named in the second dict)."""
    arrays, dtypes = {}, {}
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor) or value.is_quantized:
            raise ValueError(f"the packed format holds plain tensors; {name!r} is quantized: put the int8 step aside or ask for torchscript")
        value = value.detach().contiguous().cpu()
        if value.dtype == torch.bfloat16:
            arrays[name], dtypes[name] = value.view(torch.int16).numpy().view("<u2"), "BF16"
        else:
            arrays[name] = value.numpy()
    return arrays, dtypes


def write_packed(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None) -> dict:
    """The packed transport format (docs/packed-format.md), then a bit-exact round-trip check of what was written.

    A dynamic-int8 model is stored in the sparse int8 layout (``worker.packed_int8``): int8 codes, scales, zero points."""
    if is_dynamic_int8(model):
        arrays, int8 = quantized_arrays(model)
        dtypes: dict[str, str] = {}
        manifest = {**(manifest or {}), "int8": int8}
    else:
        arrays, dtypes = state_arrays(model)
    summary = packed.pack(arrays, path, manifest=manifest, dtypes=dtypes)
    _, back = packed.read_raw(path)
    mismatched = [n for n, a in arrays.items() if n not in back or back[n][1].tobytes() != np.ascontiguousarray(a).tobytes()]
    if mismatched or set(back) != set(arrays):
        raise RuntimeError(f"packed round trip is not bit-exact for {mismatched[:3]}")
    encodings: dict[str, int] = {}
    for t in summary["tensors"].values():
        encodings[t["encoding"]] = encodings.get(t["encoding"], 0) + 1
    shared = {n: t["codebook_size"] for n, t in summary["tensors"].items() if "codebook_size" in t}
    return {"round_trip": "bit-exact", "passed": True, "encodings": encodings, "codebook_sizes": shared,
            "header_bytes": summary["header_bytes"], **({"layout": "sparse int8 (dynamic)"} if "int8" in (manifest or {}) else {})}


def resolve(dotted: str) -> Callable:
    """The function a registry row names as ``module:function``."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def writer(fmt: str) -> Callable[..., dict | None]:
    """(model, path, example, manifest) -> None, or the check it ran on what it wrote (metrics.artifacts[name].check)."""
    return resolve(FORMATS[fmt].writer)


def loader(fmt: str) -> Callable[[Path, Callable[[], nn.Module]], tuple[nn.Module, str]]:
    """(path, rebuild) -> (callable model, runtime name)."""
    return resolve(FORMATS[fmt].loader)


def load_for_measurement(fmt: str, path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    """Load a written artifact the way a user would; return (callable model, runtime name)."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    return loader(fmt)(path, rebuild)


def load_torchscript(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval(), "torchscript"


def load_onnx_artifact(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    return load_onnx(path), "onnxruntime"


def load_exported_program(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    return CompiledProgram(path), "inductor"


def load_packed_artifact(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    """A storage format: measured unpacked, as the eager model it rebuilds (int8: scripted, see load_packed)."""
    model = load_packed(path, skeleton=rebuild())
    return model, "torchscript" if isinstance(model, torch.jit.ScriptModule) else "eager"


def load_executorch_artifact(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    return load_executorch(path), "executorch"


def load_safetensors(path: Path, rebuild: Callable[[], nn.Module]) -> tuple[nn.Module, str]:
    from safetensors.torch import load_file

    if read_manifest(path) is not None:
        return load_pruned(path, skeleton=rebuild()), "eager"
    model = rebuild()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval(), "eager"
