"""Static int8 in runtime ``inductor``: PT2E (``torchao.quantization.pt2e``) with the x86 Inductor
quantizer, written as a ``torch.export`` ExportedProgram (``model.pt2``).

The graph holds quantize/dequantize ops around float ops; its speed comes only when inductor
compiles it **with freezing** (``torch._inductor.config.freezing = True``, set globally: the
``options=`` route fails on these graphs), which lowers the patterns to oneDNN int8 kernels
(``onednn.qlinear_pointwise`` / ``qconv_pointwise``). Run eagerly or compiled without freezing it is
slower than float (bench/results/quant_baselines.md). Loading: ``worker.export.load_exported_program``
and the README's "Loading artifacts".

Strict ``torch.export`` is used (the quantizer needs ``source_fn_stack`` for modules called twice,
such as torchvision ResNet's shared ReLU); it resets dynamo's cache, so nothing is compiled before
this step runs in a job.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import StaticInt8
from worker.methods.registry import StepContext, handles
from worker.methods.static_int8 import calibration_batches

MAX_BATCH = 4096


def at_least_two(x: torch.Tensor) -> torch.Tensor:
    """torch.export specialises size-1 dimensions: trace a dynamic batch with a batch of 2 or more."""
    return x if x.shape[0] >= 2 else x.expand(2, *x.shape[1:]).contiguous()


def batch_dim() -> tuple[dict[int, object]]:
    return ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)


def drop_unused_weights(graph_module: nn.Module) -> int:
    """``convert_pt2e`` keeps the original float parameters registered next to the new int8 ones."""
    used = {n.target for n in graph_module.graph.nodes if n.op == "get_attr"}
    dropped = 0
    for name, _ in list(graph_module.named_parameters()) + list(graph_module.named_buffers()):
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph_module.get_submodule(owner) if owner else graph_module, attr)
            dropped += 1
    return dropped


def calibrate_and_convert(exported, quantizer, batches: list[torch.Tensor], ctx: StepContext) -> nn.Module:
    """PT2E with any quantizer: prepare the exported graph, calibrate it on ``batches`` (reporting progress,
    stopping when the job is cancelled), convert, drop the float weights the int8 graph no longer uses."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(exported.module(), quantizer)
    for i, batch in enumerate(batches):
        ctx.check_cancelled()
        prepared(batch.cpu())
        ctx.report((i + 1) / len(batches) * 0.9, f"calibrating {i + 1}/{len(batches)}")
    converted = convert_pt2e(prepared)
    drop_unused_weights(converted)
    allow_exported_model_train_eval(converted)  # the pipeline calls .eval() on every model
    return converted


@handles(StaticInt8, runtime="inductor")
def pt2e_static_int8(model: nn.Module, step: StaticInt8, ctx: StepContext) -> nn.Module:
    if ctx.device.type != "cpu":
        raise InvalidSpec("quantize:static_int8 produces CPU int8 kernels; use device 'cpu'")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

    batches, synthetic = calibration_batches(step, ctx)
    example = at_least_two(batches[0].cpu())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            exported = torch.export.export(copy.deepcopy(model).cpu().eval(), (example,), strict=True, dynamic_shapes=batch_dim())
        except Exception as exc:  # noqa: BLE001 - data-dependent control flow, unsupported ops
            raise InvalidSpec(
                f"quantize:static_int8 with runtime 'inductor': torch.export (strict) cannot capture the model "
                f"({type(exc).__name__}: {str(exc)[:300]}); try runtime 'onnxruntime' or 'eager'"
            ) from None
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        converted = calibrate_and_convert(exported, quantizer, batches, ctx)
    source = f"{len(batches)} synthetic batches (seeded normal noise of the declared shape, not real data)" if synthetic else (
        f"the given calibration data ({sum(b.shape[0] for b in batches)} samples)"
    )
    ctx.notes.append(
        f"{step.label}: PT2E, X86InductorQuantizer (default config: uint8 activations, int8 per-channel weights); "
        f"calibrated on {source}; runtime inductor: the .pt2 runs fast only under torch.compile with inductor freezing"
    )
    return converted
