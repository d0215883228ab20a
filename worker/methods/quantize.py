"""Quantization methods."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from service.domain.errors import InvalidSpec
from service.domain.steps import DynamicInt8
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules

DYNAMIC_TYPES = (nn.Linear, nn.LSTM, nn.GRU)


@handles(DynamicInt8)
def dynamic_int8(model: nn.Module, step: DynamicInt8, ctx: StepContext) -> nn.Module:
    """int8 weights with per-batch activation scales, run by fbgemm/onednn int8 kernels (a real int8 runtime)."""
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:dynamic_int8 produces CPU int8 kernels; use device 'cpu' (or fp16/bf16 on CUDA)")
    targets = select_modules(model, step, DYNAMIC_TYPES)
    if not targets:
        raise InvalidSpec("quantize:dynamic_int8: the model has no Linear/LSTM/GRU layer to quantize")
    names = {name for name, _ in targets}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), names, dtype=torch.qint8)
    ctx.notes.append(f"{step.label}: {len(names)} layers to int8 (torch.ao dynamic quantization, fbgemm/x86 kernels)")
    return quantized
