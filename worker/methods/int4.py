"""Uniform int4 weight-only quantization (``quantize:weight_only_int4``) on torch's CPU int4 kernel.

Per group of ``group_size`` inputs: ``w ~ (q - 8) * scale + zero`` with ``q`` in [0, 15] (asymmetric, min/max),
the layout ``aten._convert_weight_to_int4pack_for_cpu`` packs and ``aten._weight_int4pack_mm_for_cpu``
multiplies (bfloat16 activations and scales). The kernel needs outputs % 16 == 0 and inputs % group_size == 0:
other layers are zero-padded, the outputs sliced back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import WeightOnlyInt4
from worker.methods.lowrank import replace_module
from worker.methods.registry import StepContext, handles
from worker.methods.targeting import select_modules


def quantize_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes int32 [N, K] in 0..15, scale [N, K/g], zero [N, K/g]) with ``w ~ (codes - 8) * scale + zero``."""
    n, k = weight.shape
    groups = weight.float().reshape(n, k // group_size, group_size)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-6)
    codes = torch.clamp(torch.round((groups - low[..., None]) / scale[..., None]), 0, 15).to(torch.int32)
    zero = low + scale * 8
    return codes.reshape(n, k), scale, zero


def dequantize_int4(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int) -> torch.Tensor:
    n, k = codes.shape
    groups = (codes.reshape(n, k // group_size, group_size).float() - 8) * scale[..., None] + zero[..., None]
    return groups.reshape(n, k)


class Int4WeightOnlyLinear(nn.Module):
    """A Linear with int4 weights packed for torch's CPU int4 kernel; bfloat16 compute, float32 in and out."""

    def __init__(self, packed: torch.Tensor, scales_and_zeros: torch.Tensor, bias: torch.Tensor | None,
                 in_features: int, out_features: int, padded_in: int, group_size: int):
        super().__init__()
        self.in_features, self.out_features, self.padded_in, self.group_size = in_features, out_features, padded_in, group_size
        self.register_buffer("weight_int4pack", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int) -> "Int4WeightOnlyLinear":
        out_f, in_f = linear.weight.shape
        padded_out, padded_in = -(-out_f // 16) * 16, -(-in_f // group_size) * group_size
        weight = F.pad(linear.weight.detach().float(), (0, padded_in - in_f, 0, padded_out - out_f))
        codes, scale, zero = quantize_int4(weight, group_size)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.contiguous(), 1)
        scales_and_zeros = torch.stack([scale.T, zero.T], dim=-1).contiguous().to(torch.bfloat16)  # [K/g, N, 2]
        return cls(packed, scales_and_zeros, linear.bias, in_f, out_f, padded_in, group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if self.padded_in != self.in_features:
            flat = F.pad(flat, (0, self.padded_in - self.in_features))
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat.to(torch.bfloat16).contiguous(), self.weight_int4pack, self.group_size,
                                                         self.scales_and_zeros)
        out = out[:, : self.out_features].to(x.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(shape[:-1] + (self.out_features,))


@handles(WeightOnlyInt4)
def weight_only_int4(model: nn.Module, step: WeightOnlyInt4, ctx: StepContext) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:weight_only_int4 runs torch's CPU int4 kernel; use device 'cpu'")
    targets = [(n, m) for n, m in select_modules(model, step, (nn.Linear,)) if type(m) is nn.Linear]
    if not targets:
        raise InvalidSpec("quantize:weight_only_int4: the model has no Linear layer to quantize")
    padded = []
    for name, linear in targets:
        new = Int4WeightOnlyLinear.from_linear(linear.cpu(), step.group_size)
        if new.padded_in != new.in_features or new.out_features % 16:
            padded.append(name)
        replace_module(model, name, new)
    ctx.notes.append(f"{step.label}: {len(targets)} Linear weights to int4 (groups of {step.group_size}, asymmetric), "
                     "aten._weight_int4pack_mm_for_cpu with bfloat16 activations"
                     + (f"; zero-padded to the kernel's multiples: {', '.join(padded)}" if padded else ""))
    return model
