"""int8 in runtime ``executorch``: PT2E (``torchao.quantization.pt2e``) with ExecuTorch's XNNPACK quantizer.

``dynamic_int8``: per-channel int8 weights, activations quantized per call (``is_dynamic``);
``static_int8``: per-channel int8 weights and int8 activations calibrated on the calibration part (or
synthetic inputs, stated). The result is a PT2E graph that ``worker.executorch_export`` lowers to the
XNNPACK delegate and writes as ``model.pte``, measured through the ExecuTorch runtime.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import DynamicInt8, StaticInt8
from worker.methods.pt2e import at_least_two, batch_dim, calibrate_and_convert
from worker.methods.registry import StepContext, handles
from worker.methods.static_int8 import calibration_batches


def _quantize(model: nn.Module, step, ctx: StepContext, example: torch.Tensor, batches: list[torch.Tensor], dynamic: bool) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec(f"{step.label} with runtime 'executorch' produces XNNPACK int8 kernels; use device 'cpu'")
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    except ImportError:
        raise InvalidSpec("runtime 'executorch' needs the executorch package on the worker (pip install 'modelpress[worker]')") from None

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            exported = torch.export.export(copy.deepcopy(model).cpu().eval(), (at_least_two(example),), dynamic_shapes=batch_dim())
        except Exception as exc:  # noqa: BLE001 - data-dependent control flow, unsupported ops
            raise InvalidSpec(f"{step.label} with runtime 'executorch': torch.export cannot capture the model "
                              f"({type(exc).__name__}: {str(exc)[:300]})") from None
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic))
        converted = calibrate_and_convert(exported, quantizer, batches, ctx)
    return converted


@handles(DynamicInt8, runtime="executorch")
def xnnpack_dynamic_int8(model: nn.Module, step: DynamicInt8, ctx: StepContext) -> nn.Module:
    example = ctx.example_input.cpu()
    converted = _quantize(model, step, ctx, example, [at_least_two(example)], dynamic=True)
    ctx.notes.append(f"{step.label}: PT2E, XNNPACKQuantizer (dynamic: int8 per-channel weights, activations quantized per call); "
                     "lowered to the XNNPACK delegate in model.pte")
    return converted


@handles(StaticInt8, runtime="executorch")
def xnnpack_static_int8(model: nn.Module, step: StaticInt8, ctx: StepContext) -> nn.Module:
    batches, synthetic = calibration_batches(step, ctx)
    converted = _quantize(model, step, ctx, batches[0].cpu(), batches, dynamic=False)
    source = f"{len(batches)} synthetic batches (seeded normal noise of the declared shape, not real data)" if synthetic else (
        f"the given calibration data ({sum(b.shape[0] for b in batches)} samples)")
    ctx.notes.append(f"{step.label}: PT2E, XNNPACKQuantizer (static: int8 per-channel weights, int8 activations), calibrated on "
                     f"{source}; lowered to the XNNPACK delegate in model.pte")
    return converted
