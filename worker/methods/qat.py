"""Quantization-aware training (``quantize:qat``): fake-quantized fine-tuning, then a real int8 model.

The same FX graph-mode path as ``static_int8`` (x86 qconfig, Conv/BN/ReLU and Linear/ReLU fused,
``convert_fx`` to fbgemm/onednn int8 modules, written as TorchScript), but the weights learn to live
with int8 rounding: ``prepare_qat_fx`` inserts fake-quantize modules whose observers track the
activation ranges while the model trains on the ``train`` part. For the last epoch (when there is more
than one) the observers and BatchNorm statistics are frozen, so the final updates see the scales
the int8 model will use.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import QATInt8
from worker.methods.qconfigs import describe, fuse, qconfig_mapping, quantized_engine
from worker.methods.registry import StepContext, handles
from worker.methods.training import Objective, train


@handles(QATInt8)
def qat_int8(model: nn.Module, step: QATInt8, ctx: StepContext) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:qat produces CPU int8 kernels; use device 'cpu'")
    if ctx.train is None or ctx.train_labels is None:
        raise InvalidSpec("quantize:qat needs the 'train' data part with 'labels'")
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    example = ctx.example_input.cpu()
    with warnings.catch_warnings(), quantized_engine(step.backend):
        warnings.simplefilter("ignore")
        try:
            prepared = prepare_qat_fx(fuse(copy.deepcopy(model).cpu().train(), step, qat=True), qconfig_mapping(step, qat=True),
                                      (example,))
        except Exception as exc:  # symbolic tracing fails on data-dependent control flow
            raise InvalidSpec(f"quantize:qat: the model cannot be traced by torch.fx ({type(exc).__name__}: {exc})") from None

        def freeze_last_epoch(epoch: int) -> None:
            if step.epochs > 1 and epoch == step.epochs - 1:
                prepared.apply(torch.ao.quantization.disable_observer)
                prepared.apply(torch.nn.intrinsic.qat.freeze_bn_stats)

        record = train(
            prepared, ctx.train.cpu(), Objective(labels=ctx.train_labels.cpu()), epochs=step.epochs, lr=step.lr,
            batch_size=step.batch_size, max_seconds=step.max_seconds, ctx=ctx, label=step.label, on_epoch_start=freeze_last_epoch,
        )
        quantized = convert_fx(prepared.eval())
    ctx.notes.append(
        f"{step.label}: FX graph mode, {describe(step)}, {step.bits}-bit weight fake-quant; {record['epochs_completed']}/{step.epochs} fake-quant epochs on "
        f"{record['samples']} train samples, epoch loss {record['epoch_loss']}; converted to int8 ({step.backend} kernels)"
    )
    if step.bits == 4:
        clamp_to_4_bits(quantized)
        ctx.warnings.append(f"{step.label} with bits 4: the weights lie on a 4-bit grid (16 levels) but are stored and run as int8: "
                            "eager torch has no 4-bit kernel, so size and speed are int8's; the 4-bit accuracy is what was trained")
    return quantized


def clamp_to_4_bits(model: nn.Module) -> None:
    """convert_fx quantizes each weight with the fake-quant scale but clamps to int8's range: a weight at the edge
    of the symmetric 4-bit range (|w| / scale = 7.5) rounds to 8. Clamp the codes to [-8, 7], the grid QAT trained on."""
    for module in model.modules():
        weight_fn = getattr(module, "weight", None)
        if not callable(weight_fn) or not hasattr(module, "set_weight_bias"):
            continue
        weight = weight_fn()
        codes = weight.int_repr().clamp(-8, 7)
        if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            clamped = torch._make_per_channel_quantized_tensor(codes, weight.q_per_channel_scales(), weight.q_per_channel_zero_points(),
                                                               weight.q_per_channel_axis())
        else:
            clamped = torch._make_per_tensor_quantized_tensor(codes, weight.q_scale(), weight.q_zero_point())
        module.set_weight_bias(clamped, module.bias())
