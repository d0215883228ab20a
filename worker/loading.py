"""Safe model intake in the worker: safetensors + a registered builder, strict load. No pickle, ever."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from modelpress_core.config import get_settings
from modelpress_core.errors import InvalidSpec, InvalidUpload
from modelpress_core.spec import JobSpec
from modelpress_torch.architectures import InvalidArchitectureConfig, UnknownArchitecture, build_model, get_architecture
from worker.torchscript_graph import check_graphs

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32}


def load_model(spec: JobSpec, path: Path) -> nn.Module:
    if spec.model.format == "torchscript":
        return load_torchscript(path)
    try:
        model = build_model(spec.model.architecture, spec.model.config)
    except UnknownArchitecture:
        raise InvalidSpec(f"model.architecture: unknown architecture {spec.model.architecture!r}") from None
    except InvalidArchitectureConfig as exc:
        raise InvalidSpec(f"model.config: {exc}") from None
    state = load_file(str(path))
    missing, unexpected = _diff_keys(model.state_dict().keys(), state.keys())
    if missing or unexpected:
        raise InvalidUpload(
            f"the state_dict does not fit {spec.model.architecture!r}: missing {missing[:5]}, unexpected {unexpected[:5]}",
            missing=missing[:20],
            unexpected=unexpected[:20],
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InvalidUpload(f"the state_dict does not fit {spec.model.architecture!r}: {exc}") from None
    return model.eval()


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on an archive the API has already checked (zip limits, names, CRCs, pickle globals).

    TorchScript reads ``data.pkl`` with its own restricted unpickler (TorchScript classes from the
    archive's code, tensors and containers; no arbitrary Python callables). Then every method's
    inlined graph is checked against the op allowlist (``worker.torchscript_graph``)."""
    try:
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # a tampered or incompatible archive: say so, do not crash the worker
        raise InvalidUpload(f"the TorchScript archive does not load: {type(exc).__name__}: {str(exc)[:300]}") from None
    if get_settings().torchscript_op_check:
        check_graphs(model)  # the same op allowlist as the API's scan, on the inlined graphs
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # inference only; a ScriptModule run under inference_mode needs this
    return model


def input_dtype(spec: JobSpec) -> torch.dtype:
    if spec.model.input is not None:
        return DTYPES[spec.model.input.dtype]
    return DTYPES[get_architecture(spec.model.architecture).input_dtype]


def example_input(spec: JobSpec, batch_size: int, seed: int) -> torch.Tensor:
    """A deterministic input of the declared shape (batch dimension replaced)."""
    if spec.model.input is not None:
        shape, dtype = list(spec.model.input.shape), spec.model.input.dtype
    else:
        arch = get_architecture(spec.model.architecture)
        config = arch.parse_config(spec.model.config)
        shape, dtype = arch.input_shape(config), arch.input_dtype
    shape[0] = batch_size
    generator = torch.Generator().manual_seed(seed)
    torch_dtype = DTYPES[dtype]
    if torch_dtype in (torch.int64, torch.int32):
        return torch.randint(0, 100, shape, generator=generator, dtype=torch_dtype)
    return torch.randn(shape, generator=generator).to(torch_dtype)


def _diff_keys(expected, got) -> tuple[list[str], list[str]]:
    expected, got = set(expected), set(got)
    return sorted(expected - got), sorted(got - expected)
