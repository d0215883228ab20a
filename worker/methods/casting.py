"""Half-precision casts (``fp16``, ``bf16``): weights and compute in the narrow type, float32 at the edges.

The artifact takes and returns float32 (like the original), so callers need not change. On a CPU
without native half-precision arithmetic this is smaller but usually not faster; the metrics say so.
"""

from __future__ import annotations

import torch
from torch import nn

from modelpress_core.steps import BFloat16, Float16
from worker.methods.registry import StepContext, handles


class CastIO(nn.Module):
    """Runs ``inner`` (already cast to ``dtype``) on inputs cast to ``dtype``; returns float32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            x = x.to(self.dtype)
        return self.inner(x).float()


def _cast(model: nn.Module, dtype: torch.dtype, step, ctx: StepContext) -> nn.Module:
    if isinstance(model, CastIO):
        model = model.inner
    model = model.to(dtype)
    ctx.notes.append(
        f"{step.label}: weights and compute in {str(dtype).replace('torch.', '')}; float32 inputs/outputs at the artifact's edge"
        + ("" if ctx.device.type == "cuda" else f" (CPU capability {torch.backends.cpu.get_cpu_capability()})")
    )
    return CastIO(model, dtype)


@handles(Float16)
def fp16(model: nn.Module, step: Float16, ctx: StepContext) -> nn.Module:
    return _cast(model, torch.float16, step, ctx)


@handles(BFloat16)
def bf16(model: nn.Module, step: BFloat16, ctx: StepContext) -> nn.Module:
    return _cast(model, torch.bfloat16, step, ctx)
