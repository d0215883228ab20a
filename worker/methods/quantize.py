"""Quantization methods."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import DynamicInt8, WeightOnlyInt8
from worker.methods.qconfigs import dynamic_qconfig, quantized_engine
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
    granularity = step.granularity or "per_channel"
    with warnings.catch_warnings(), quantized_engine(step.backend):
        warnings.simplefilter("ignore")
        # per-channel weight scales for Linear by default (same kernels, far closer on transformers: MiniLM
        # embeddings cosine 0.979 vs 0.942 per tensor); LSTM/GRU always take the per-tensor default
        qconfig = {n: dynamic_qconfig(granularity) if isinstance(m, nn.Linear) else dynamic_qconfig("per_tensor") for n, m in targets}
        quantized = torch.ao.quantization.quantize_dynamic(model.eval(), qconfig, dtype=torch.qint8)
    ctx.notes.append(f"{step.label}: {len(names)} layers to int8 (torch.ao dynamic quantization, {granularity.replace('_', '-')} "
                     f"Linear weights, {step.backend} kernels)")
    return quantized


class Int8WeightOnlyLinear(nn.Module):
    """A Linear whose weight is stored as int8 with one float scale per output row (symmetric).

    The forward dequantizes the weight and runs a float matmul: the file is ~4x smaller; the
    compute is not int8, so on CPU it is not faster (measured, not assumed).
    """

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features = weight_int8.shape[1]
        self.out_features = weight_int8.shape[0]
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8WeightOnlyLinear":
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = torch.clamp(torch.round(w / scale[:, None]), -127, 127).to(torch.int8)
        return cls(q, scale, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_int8.to(x.dtype) * self.weight_scale.to(x.dtype)[:, None]
        return nn.functional.linear(x, weight, self.bias)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@handles(WeightOnlyInt8)
def weight_only_int8(model: nn.Module, step: WeightOnlyInt8, ctx: StepContext) -> nn.Module:
    targets = select_modules(model, step, (nn.Linear,))
    targets = [(n, m) for n, m in targets if type(m) is nn.Linear]
    if not targets:
        raise InvalidSpec("quantize:weight_only_int8: the model has no Linear layer to quantize")
    for name, linear in targets:
        _replace(model, name, Int8WeightOnlyLinear.from_linear(linear))
    ctx.notes.append(f"{step.label}: {len(targets)} Linear weights to int8 (per-row symmetric scales), dequantized at run time")
    return model
