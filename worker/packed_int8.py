"""The sparse int8 layout of the packed format: a dynamic-int8 model (``quantize:dynamic_int8``, eager) as plain arrays.

Each quantized Linear ``<m>`` is stored as ``<m>.weight_int8`` (I8: the integer representation, where pruned
weights are exactly 0 because the per-channel qint8 scheme is symmetric), ``<m>.weight_scale`` (F64 per
output channel, or one value), ``<m>.weight_zero_point`` (I64) and ``<m>.bias`` (F32, when there is one);
the packer's sparse encoding then stores only the nonzero codes with relative indexes, so pruning shrinks
the file. The manifest's ``int8`` entry names the modules and their scheme;
``modelpress_torch.artifacts.load_packed`` rebuilds the same quantized model, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

INT8_SCHEMA = "modelpress.packed-int8/v1"


def dynamic_linears(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return {name: m for name, m in model.named_modules() if isinstance(m, DynamicLinear)}


def is_dynamic_int8(model: nn.Module) -> bool:
    return bool(dynamic_linears(model))


def quantized_arrays(model: nn.Module) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays for ``modelpress_core.packed.pack``, the manifest's ``int8`` entry)."""
    linears = dynamic_linears(model)
    inside = tuple(f"{n}." for n in linears)  # a dynamic Linear's own LinearPackedParams child
    other_quantized = [n for n, m in model.named_modules()
                       if type(m).__module__.startswith("torch.ao.nn.quantized") and n not in linears and not n.startswith(inside)]
    if other_quantized:
        raise ValueError(f"the packed int8 layout holds dynamic int8 Linear layers only; {other_quantized[:3]} are other "
                         "quantized modules: ask for 'torchscript'")
    arrays: dict[str, np.ndarray] = {}
    modules: dict[str, dict] = {}
    for name, module in linears.items():
        weight = module.weight()
        if weight.dtype != torch.qint8:
            raise ValueError(f"{name}: {weight.dtype} weights; the packed int8 layout holds qint8")
        scheme = weight.qscheme()
        if scheme == torch.per_channel_affine:
            scale, zero_point = weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
            modules[name] = {"qscheme": "per_channel_affine", "axis": int(weight.q_per_channel_axis())}
        elif scheme == torch.per_tensor_affine:
            scale, zero_point = torch.tensor([weight.q_scale()], dtype=torch.float64), torch.tensor([weight.q_zero_point()])
            modules[name] = {"qscheme": "per_tensor_affine"}
        else:
            raise ValueError(f"{name}: qscheme {scheme} is not stored by the packed int8 layout")
        arrays[f"{name}.weight_int8"] = weight.int_repr().contiguous().numpy()
        arrays[f"{name}.weight_scale"] = scale.to(torch.float64).contiguous().numpy()
        arrays[f"{name}.weight_zero_point"] = zero_point.to(torch.int64).contiguous().numpy()
        bias = module.bias()
        modules[name]["bias"] = bias is not None
        if bias is not None:
            arrays[f"{name}.bias"] = bias.detach().float().contiguous().numpy()
    prefixes = tuple(f"{n}." for n in linears)
    for key, value in model.state_dict().items():
        if key.startswith(prefixes):
            continue
        if not isinstance(value, torch.Tensor) or value.is_quantized:
            raise ValueError(f"the packed int8 layout cannot store {key!r}")
        arrays[key] = value.detach().contiguous().cpu().numpy()
    return arrays, {"schema": INT8_SCHEMA, "scheme": "dynamic", "dtype": "qint8", "modules": modules}
