"""Load what the service produced. A model that changed shape (structured pruning, low-rank
factorization) is written as safetensors whose ``__metadata__`` holds a JSON architecture manifest:

    {"schema": "modelpress.manifest/v1", "architecture": "mlp", "config": {...},
     "modules": {"0": {"type": "Linear", "in_features": 784, "out_features": 150, "bias": true}, ...}}

``modules`` lists every Linear / Conv / BatchNorm (and each Sequential that replaced a layer) with its
shape, parents before children. ``load_pruned`` builds the named architecture, swaps in plain
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
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def load_packed(path: str | Path, skeleton=None):
    """Load a packed artifact (``model.mpk``, docs/packed-format.md) as a plain float model, in eval mode.

    The file is checked (checksums), decoded to a state_dict (codebook values, sparse zeros: exact) and
    loaded strictly into the architecture its manifest names.
    """
    from modelpress_core.packed import read_header, read_raw

    manifest = read_header(path).get("manifest")
    if manifest is None:
        raise ValueError(f"{path}: the packed file carries no architecture manifest; use modelpress.unpack(path) for its state_dict")
    model = rebuild(manifest, skeleton)
    model.load_state_dict(tensors_from_raw(read_raw(path)[1]), strict=True)
    return model.eval()


def tensors_from_raw(raw: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """A packed file's raw arrays (``modelpress_core.packed.read_raw``) as torch tensors (bfloat16 kept)."""
    import numpy as np
    import torch

    out = {}
    for name, (dtype, array) in raw.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array).copy())
        out[name] = tensor.view(torch.bfloat16) if dtype == "BF16" else tensor
    return out
