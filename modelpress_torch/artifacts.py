"""Load what the service produced. A model that changed shape (structured pruning, low-rank
factorization) is written as safetensors whose ``__metadata__`` holds a JSON architecture manifest:

    {"schema": "modelpress.manifest/v1", "architecture": "mlp", "config": {...},
     "modules": {"0": {"type": "Linear", "in_features": 784, "out_features": 150, "bias": true}, ...}}

``modules`` lists every Linear / Conv / BatchNorm (and each Sequential that replaced a layer) with its
shape, parents before children. An optional ``masks`` list names the parameters pruned with
``permanent: false`` (``"0.weight"``): the file holds torch's ``<name>_orig`` and ``<name>_mask`` for each,
and the loader re-attaches torch's pruning reparametrization. ``load_pruned`` builds the named architecture, swaps in plain
``nn`` layers of the manifest's shapes and loads the tensors strictly. No pickle involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpress_core.manifest import MANIFEST_KEY, MANIFEST_SCHEMA, read_manifest


def _describe(module) -> dict[str, Any] | None:
    from torch import nn

    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features, "bias": module.bias is not None}
    if type(module).__module__.startswith("torch.ao.nn.quantized") and type(module).__name__ == "Linear":  # an int8 Linear
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features, "bias": module.bias() is not None}
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return {
            "type": type(module).__name__,
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "kernel_size": list(module.kernel_size),
            "stride": list(module.stride),
            "padding": module.padding if isinstance(module.padding, str) else list(module.padding),
            "dilation": list(module.dilation),
            "groups": module.groups,
            "bias": module.bias is not None,
        }
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {
            "type": type(module).__name__,
            "num_features": module.num_features,
            "eps": module.eps,
            "momentum": module.momentum,
            "affine": module.affine,
            "track_running_stats": module.track_running_stats,
        }
    return None


def manifest_of(model, architecture: str, config: dict[str, Any], original=None) -> dict[str, Any]:
    """Describe ``model``'s layers; Sequentials that are not in ``original`` (replaced layers) are listed too."""
    from torch import nn

    original_names = {n: type(m) for n, m in original.named_modules()} if original is not None else {}
    modules: dict[str, Any] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        described = _describe(module)
        if described is None and isinstance(module, nn.Sequential) and original_names.get(name) is not nn.Sequential:
            described = {"type": "Sequential"}
        if described is not None:
            modules[name] = described
    return {"schema": MANIFEST_SCHEMA, "architecture": architecture, "config": config, "modules": modules}


def _build(entry: dict[str, Any]):
    from torch import nn

    kind = entry["type"]
    if kind == "Linear":
        return nn.Linear(entry["in_features"], entry["out_features"], bias=entry["bias"])
    if kind in ("Conv1d", "Conv2d"):
        cls = getattr(nn, kind)
        padding = entry["padding"] if isinstance(entry["padding"], str) else tuple(entry["padding"])
        return cls(
            entry["in_channels"], entry["out_channels"], tuple(entry["kernel_size"]), stride=tuple(entry["stride"]),
            padding=padding, dilation=tuple(entry["dilation"]), groups=entry["groups"], bias=entry["bias"],
        )
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, kind)(
            entry["num_features"], eps=entry["eps"], momentum=entry["momentum"], affine=entry["affine"],
            track_running_stats=entry["track_running_stats"],
        )
    if kind == "Sequential":
        return nn.Sequential()
    raise ValueError(f"manifest: unsupported module type {kind!r}")


def rebuild(manifest: dict[str, Any], skeleton=None):
    """The module tree the manifest describes (weights uninitialized). ``skeleton``: the original architecture, built
    from the manifest's name and config when not given (needs the architecture's builder installed)."""
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ValueError(f"not a modelpress manifest: schema {manifest.get('schema')!r}")
    if skeleton is None:
        from modelpress_torch.architectures import build_model

        skeleton = build_model(manifest["architecture"], manifest["config"])
    for name, entry in manifest["modules"].items():
        parent_name, _, child = name.rpartition(".")
        parent = skeleton.get_submodule(parent_name) if parent_name else skeleton
        if entry["type"] == "Sequential" and isinstance(getattr(parent, child, None), _sequential_type()):
            continue
        parent.add_module(child, _build(entry))
    return skeleton


def _sequential_type():
    from torch import nn

    return nn.Sequential


def load_pruned(path: str | Path, skeleton=None):
    """Load a safetensors artifact whose model changed shape (structured pruning, low-rank), in eval mode."""
    from safetensors.torch import load_file

    manifest = read_manifest(path)
    if manifest is None:
        raise ValueError(f"{path}: no {MANIFEST_KEY!r} in the safetensors metadata; load it into your own model with load_state_dict")
    model = rebuild(manifest, skeleton)
    masked = list(manifest.get("masks", []))
    _attach_masks(model, masked)
    model.load_state_dict(load_file(str(path)), strict=True)
    _apply_masks(model, masked)
    return model.eval()


def _attach_masks(model, keys: list[str]) -> None:
    """torch's pruning reparametrization (``<param>_orig``, ``<param>_mask``, a forward pre-hook) on each ``"<module>.<param>"``,
    as ``torch.nn.utils.prune`` leaves it without ``prune.remove``: a later fine-tune keeps the pruned values at zero."""
    from torch.nn.utils import prune

    for key in keys:
        module_name, _, param = key.rpartition(".")
        prune.identity(model.get_submodule(module_name) if module_name else model, param)


def _apply_masks(model, keys: list[str]) -> None:
    """``<param> = <param>_orig * <param>_mask`` right after loading (torch recomputes it before every forward)."""
    for key in keys:
        module_name, _, param = key.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        setattr(module, param, getattr(module, f"{param}_orig") * getattr(module, f"{param}_mask"))


def load_packed(path: str | Path, skeleton=None, *, script: bool = True):
    """Load a packed artifact (``model.mpk``, docs/packed-format.md) in eval mode.

    The file is checked (checksums), decoded to a state_dict (codebook values, sparse zeros: exact) and
    loaded strictly into the architecture its manifest names. A file in the sparse int8 layout (the
    manifest's ``int8`` entry, after ``quantize:dynamic_int8``) comes back as the same dynamic-int8 model
    (torch's fbgemm / qnnpack kernels), its int8 weights bit for bit, compiled with ``torch.jit.script``
    (eager dynamic-int8 modules pay Python overhead on every call: 242 us vs 55 us scripted for the digits
    MLP at batch 1, measured) unless ``script=False`` or the architecture does not script.
    """
    from modelpress_core.packed import read_header, read_raw

    manifest = read_header(path).get("manifest")
    if manifest is None:
        raise ValueError(f"{path}: the packed file carries no architecture manifest; use modelpress.unpack(path) for its state_dict")
    model = rebuild(manifest, skeleton)
    state = tensors_from_raw(read_raw(path)[1])
    int8 = manifest.get("int8")
    if int8 is None:
        model.load_state_dict(state, strict=True)
        return model.eval()
    quantized = _load_int8(model, state, int8).eval()
    if not script:
        return quantized
    import torch

    try:
        return torch.jit.script(quantized)
    except Exception:  # noqa: BLE001 - an architecture TorchScript cannot compile still runs eager
        return quantized


def _quantized_weight(state: dict, name: str, entry: dict):
    import torch

    codes, scale, zero_point = state[f"{name}.weight_int8"], state[f"{name}.weight_scale"], state[f"{name}.weight_zero_point"]
    if entry["qscheme"] == "per_channel_affine":
        return torch._make_per_channel_quantized_tensor(codes, scale, zero_point, entry["axis"])
    return torch._make_per_tensor_quantized_tensor(codes, float(scale[0]), int(zero_point[0]))


def _load_int8(model, state: dict, int8: dict):
    """The float skeleton loaded with the dequantized weights (a strict load), then quantized the way the worker did and
    given the stored int8 weights exactly."""
    import warnings

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    if int8.get("schema") != "modelpress.packed-int8/v1" or int8.get("scheme") != "dynamic":
        raise ValueError(f"packed int8 layout {int8.get('schema')!r} / {int8.get('scheme')!r} is not known to this modelpress")
    modules = int8["modules"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 flags quantized tensor creation as deprecated; the int8 kernels need it
        weights = {name: _quantized_weight(state, name, entry) for name, entry in modules.items()}
    floats = {k: v for k, v in state.items() if not any(k.startswith(f"{n}.weight_") for n in modules)}
    floats.update({f"{name}.weight": weights[name].dequantize() for name in modules})
    model.load_state_dict(floats, strict=True)
    qconfig = {name: per_channel_dynamic_qconfig if entry["qscheme"] == "per_channel_affine" else default_dynamic_qconfig
               for name, entry in modules.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model.eval(), qconfig, dtype=torch.qint8)
    for name, entry in modules.items():
        quantized.get_submodule(name).set_weight_bias(weights[name], floats.get(f"{name}.bias") if entry["bias"] else None)
    return quantized


class ExecuTorchProgram:
    """A ``.pte`` loaded through the ExecuTorch runtime (``executorch.runtime``): call it with a tensor, get a tensor.

    A program's buffers are planned for a largest batch (``max_batch``, its input's planned size); a larger
    input runs in chunks of that size."""

    def __init__(self, path: str | Path):
        from executorch.runtime import Runtime

        self.path = str(path)
        self.program = Runtime.get().load_program(self.path)
        self.method = self.program.load_method("forward")
        self.max_batch = int(self.method.metadata.input_tensor_meta(0).sizes()[0])

    def __call__(self, x):
        if x.dim() == 0 or x.shape[0] <= self.max_batch:
            return self.method.execute([x.contiguous()])[0]
        import torch

        return torch.cat([self.method.execute([chunk.contiguous()])[0] for chunk in x.split(self.max_batch)])

    def eval(self) -> "ExecuTorchProgram":
        return self

    def to(self, device) -> "ExecuTorchProgram":
        if str(device) != "cpu":
            raise ValueError("an ExecuTorch program runs on the CPU here (XNNPACK)")
        return self


def load_executorch(path: str | Path) -> ExecuTorchProgram:
    """Load ``model.pte`` (the ``executorch`` output) with ExecuTorch's Python runtime (``pip install executorch``);
    on a phone, the same file loads in ExecuTorch's Android/iOS/C++ runtime (docs/edge.md)."""
    return ExecuTorchProgram(path)


def tensors_from_raw(raw: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """A packed file's raw arrays (``modelpress_core.packed.read_raw``) as torch tensors (bfloat16 kept)."""
    import numpy as np
    import torch

    out = {}
    for name, (dtype, array) in raw.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array).copy())
        out[name] = tensor.view(torch.bfloat16) if dtype == "BF16" else tensor
    return out
