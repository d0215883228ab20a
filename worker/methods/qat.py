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
from worker.methods.registry import StepContext, handles
from worker.methods.training import Objective, train


@handles(QATInt8)
def qat_int8(model: nn.Module, step: QATInt8, ctx: StepContext) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:qat produces CPU int8 kernels; use device 'cpu'")
    if ctx.train is None or ctx.train_labels is None:
        raise InvalidSpec("quantize:qat needs the 'train' data part with 'labels'")
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

    example = ctx.example_input.cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.quantized.engine = "x86"
        try:
            prepared = prepare_qat_fx(copy.deepcopy(model).cpu().train(), get_default_qat_qconfig_mapping("x86"), (example,))
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
        f"{step.label}: FX graph mode, x86 QAT qconfig; {record['epochs_completed']}/{step.epochs} fake-quant epochs on "
        f"{record['samples']} train samples, epoch loss {record['epoch_loss']}; converted to int8 (fbgemm/onednn kernels)"
    )
    return quantized
