"""Data parts in the worker: ``.npz`` with ``allow_pickle=False`` or safetensors, to tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from modelpress_core.errors import InvalidUpload


@dataclass
class Dataset:
    inputs: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def load_data(part: str, path: Path, fmt: str, input_dtype: torch.dtype) -> Dataset:
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as arrays:
            tensors = {k: torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in arrays.files}
    elif fmt == "safetensors":
        tensors = load_file(str(path))
    else:
        raise InvalidUpload(f"{part}: unknown data format {fmt!r}")
    inputs, labels = tensors.get("inputs"), tensors.get("labels")
    if inputs is None or inputs.dim() < 1 or inputs.shape[0] == 0:
        raise InvalidUpload(f"{part}: 'inputs' must be a non-empty array, batch first")
    if labels is not None and labels.is_floating_point() and part == "eval":  # regression targets: one row per input
        if labels.dim() < 1 or labels.shape[0] != inputs.shape[0]:
            raise InvalidUpload(f"{part}: float 'labels' (regression targets) need one row per input ({inputs.shape[0]})")
        return Dataset(inputs.to(input_dtype), labels.float())
    if labels is not None and (labels.dim() != 1 or labels.shape[0] != inputs.shape[0] or labels.is_floating_point()):
        raise InvalidUpload(f"{part}: 'labels' must be integer class ids, one per input ({inputs.shape[0]})"
                            + ("" if part == "eval" else "; float labels (regression targets) are accepted for eval only"))
    return Dataset(inputs.to(input_dtype), labels.long() if labels is not None else None)
