"""Static int8 quantization: int8 weights and activations, activation scales calibrated ahead of time.

FX graph mode (``torch.ao.quantization.quantize_fx``, x86 qconfig: fbgemm/onednn kernels) fuses
Conv/BN/ReLU and Linear/ReLU, and the result is written as TorchScript, which runs the int8 kernels
without modelpress. (PT2E + X86InductorQuantizer needs a torch.compile at load time to be fast;
not used yet.)
"""

from __future__ import annotations

import copy
import warnings
from fnmatch import fnmatchcase

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import StaticInt8
from worker.methods.qconfigs import describe, fuse, qconfig_mapping, quantized_engine
from worker.methods.registry import StepContext, handles


def calibration_batches(step: StaticInt8, ctx: StepContext) -> tuple[list[torch.Tensor], bool]:
    """The context's calibration tensor in batches, or seeded synthetic inputs; (batches, synthetic?)."""
    if ctx.calibration is not None:
        data = ctx.calibration.cpu()
        return list(data.split(step.calibration_batch_size)), False
    generator = torch.Generator().manual_seed(ctx.seed + 7)
    shape = tuple(ctx.example_input.shape[1:])
    dtype = ctx.example_input.dtype
    batches = [
        torch.randn((step.calibration_batch_size, *shape), generator=generator).to(dtype) for _ in range(step.calibration_batches)
    ]
    return batches, True


@handles(StaticInt8)
def static_int8(model: nn.Module, step: StaticInt8, ctx: StepContext) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:static_int8 produces CPU int8 kernels; use device 'cpu'")
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    batches, synthetic = calibration_batches(step, ctx)
    example = ctx.example_input.cpu()
    with warnings.catch_warnings(), quantized_engine(step.backend):
        warnings.simplefilter("ignore")
        mapping = qconfig_mapping(step, qat=False)
        kept = [name for name, _ in model.named_modules() if name and any(fnmatchcase(name, p) for p in step.exclude)]
        for name in kept:
            mapping = mapping.set_module_name(name, None)
        try:
            prepared = prepare_fx(fuse(copy.deepcopy(model).cpu().eval(), step, qat=False), mapping, (example,))
        except Exception as exc:  # symbolic tracing fails on data-dependent control flow
            raise InvalidSpec(f"quantize:static_int8: the model cannot be traced by torch.fx ({type(exc).__name__}: {exc})") from None
        with torch.inference_mode():
            for i, batch in enumerate(batches):
                ctx.check_cancelled()
                prepared(batch)
                ctx.report((i + 1) / len(batches) * 0.9, f"calibrating {i + 1}/{len(batches)}")
        quantized = convert_fx(prepared)
    source = f"{len(batches)} synthetic batches (seeded normal noise of the declared shape, not real data)" if synthetic else (
        f"the given calibration data ({sum(b.shape[0] for b in batches)} samples)"
    )
    kept_note = f"; kept in float: {', '.join(kept)}" if kept else ""
    ctx.notes.append(f"{step.label}: FX graph mode, {describe(step)}; calibrated on {source}{kept_note}")
    return quantized
