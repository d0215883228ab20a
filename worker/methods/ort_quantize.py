"""int8 quantization in runtime ``onnxruntime``: the model is exported to ONNX (float, dynamic batch),
then quantized by ONNX Runtime's own tools, so the artifact is an int8 ``.onnx`` file that ONNX
Runtime runs with its integer kernels (MLAS, U8S8 on x86).

- ``dynamic_int8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights with one scale per
  output channel, activation scales per call) on MatMul/Gemm nodes. No data needed. Per-channel matters
  on transformers: all-MiniLM-L6-v2's embeddings kept mean cosine 0.993 per channel vs 0.958
  (0.854 with reduce_range) per tensor on real text.
- ``static_int8``: ``quantize_static`` in QDQ format, activations uint8 and weights int8 per channel,
  MinMax scales from the calibration part (or seeded synthetic inputs, stated in the notes).

On x86 CPUs without VNNI the U8S8 kernels use ``vpmaddubsw``, which saturates int16 intermediate sums;
``reduce_range`` (7-bit weights) avoids that, at a small cost in resolution. It is on when the CPU has
no VNNI and recorded in the notes (bench/results/quant_baselines.md, gotcha 8).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec
from modelpress_core.steps import DynamicInt8, StaticInt8
from worker.evaluate import cpu_info
from worker.methods.registry import StepContext, handles
from worker.methods.static_int8 import calibration_batches
from worker.onnx_export import OnnxExportError, OnnxProgram, export_fp32_onnx


def _reduce_range() -> bool:
    return not cpu_info()["flags"]["vnni"]


def _preprocess(src: Path, dst: Path, notes: list[str], label: str) -> Path:
    """ONNX Runtime's recommended pre-processing (shape inference, graph optimisation); optional."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst))
        return dst
    except Exception as exc:  # noqa: BLE001 - quantizing the raw export still works, only less fused
        notes.append(f"{label}: onnxruntime pre-processing skipped ({type(exc).__name__}: {str(exc)[:120]})")
        return src


def _export(model: nn.Module, ctx: StepContext, label: str) -> bytes:
    if ctx.device.type != "cpu":
        raise InvalidSpec(f"{label} produces CPU int8 kernels; use device 'cpu'")
    try:
        return export_fp32_onnx(model.cpu().eval(), ctx.example_input.cpu())
    except OnnxExportError as exc:
        raise InvalidSpec(f"{label} with runtime 'onnxruntime': the model cannot be exported to ONNX ({exc})") from None


TRANSFORMER_ARCHITECTURES = {"bert": "bert"}  # zoo architecture -> onnxruntime.transformers model_type


def _attention_shape(model: nn.Module) -> tuple[int, int] | None:
    """(heads, hidden size) of the model's self-attention as it is now (after any earlier step)."""
    for module in model.modules():
        query = getattr(module, "query", None)
        if isinstance(query, nn.Linear) and isinstance(getattr(module, "num_heads", None), int):
            return module.num_heads, query.out_features
    return None


def _fuse_transformer(src: Path, dst: Path, ctx: StepContext, model: nn.Module) -> Path | None:
    """For the zoo's BERT: ONNX Runtime's transformer optimizer fuses attention, skip+LayerNorm and bias+GELU
    into single CPU kernels before quantizing, so the int8 attention (QAttention) and fused fp32 kernels run
    instead of many small ops (all-MiniLM-L6-v2, batch 8 x 128 tokens: 1.63x over torch eager on an AVX2 CPU
    without VNNI, bench/results/speed.json). Any other model: None (plain pre-processing)."""
    name, _ = ctx.architecture
    model_type = TRANSFORMER_ARCHITECTURES.get(name or "")
    shape = _attention_shape(model)
    if model_type is None or shape is None:
        return None
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(src), model_type=model_type, num_heads=shape[0], hidden_size=shape[1], opt_level=1)
        if not optimized.get_fused_operator_statistics().get("Attention"):
            return None
        optimized.save_model_to_file(str(dst))
        return dst
    except Exception as exc:  # noqa: BLE001 - unfused still quantizes, only slower
        ctx.notes.append(f"onnxruntime transformer fusion skipped ({type(exc).__name__}: {str(exc)[:120]})")
        return None


@handles(DynamicInt8, runtime="onnxruntime")
def ort_dynamic_int8(model: nn.Module, step: DynamicInt8, ctx: StepContext) -> nn.Module:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = _export(model, ctx, step.label)
    ctx.report(0.4, "exported to ONNX; quantizing with onnxruntime")
    reduce_range = _reduce_range()
    with tempfile.TemporaryDirectory(prefix="mp-ortq-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        fused = _fuse_transformer(src, Path(tmp) / "fused.onnx", ctx, model)
        if fused is not None:
            import onnx

            src_q, extra = fused, {"DefaultTensorType": onnx.TensorProto.FLOAT}  # fused ops carry no inferred types
        else:
            src_q, extra = _preprocess(src, Path(tmp) / "pre.onnx", ctx.notes, step.label), {}
        quantize_dynamic(str(src_q), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=reduce_range,
                         op_types_to_quantize=["MatMul", "Gemm", "Attention"] if fused else ["MatMul", "Gemm"],
                         extra_options=extra)
        data = out.read_bytes()
    how = f"onnxruntime quantize_dynamic, int8 per-channel weights (MatMul/Gemm), reduce_range={reduce_range}"
    if fused is not None:
        how += "; BERT graph fused first (onnxruntime.transformers: Attention, SkipLayerNormalization, BiasGelu)"
    ctx.notes.append(f"{step.label}: {how}; runtime onnxruntime")
    return OnnxProgram(data, fp32, how)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the calibration batches."""

    def __init__(self, batches: list[torch.Tensor], check_cancelled):
        self._it = iter(batches)
        self._check = check_cancelled

    def get_next(self):
        self._check()
        batch = next(self._it, None)
        return None if batch is None else {"input": batch.cpu().contiguous().numpy()}


@handles(StaticInt8, runtime="onnxruntime")
def ort_static_int8(model: nn.Module, step: StaticInt8, ctx: StepContext) -> nn.Module:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    batches, synthetic = calibration_batches(step, ctx)
    fp32 = _export(model, ctx, step.label)
    ctx.report(0.2, f"exported to ONNX; calibrating on {len(batches)} batches")
    reduce_range = _reduce_range()
    with tempfile.TemporaryDirectory(prefix="mp-ortq-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        pre = _preprocess(src, Path(tmp) / "pre.onnx", ctx.notes, step.label)
        quantize_static(
            str(pre), str(out), _Reader(batches, ctx.check_cancelled), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            reduce_range=reduce_range, calibrate_method=CalibrationMethod.MinMax,
        )
        data = out.read_bytes()
    source = f"{len(batches)} synthetic batches (seeded normal noise of the declared shape, not real data)" if synthetic else (
        f"the given calibration data ({sum(b.shape[0] for b in batches)} samples)"
    )
    how = f"onnxruntime quantize_static, QDQ, uint8 activations / int8 per-channel weights, MinMax, reduce_range={reduce_range}"
    ctx.notes.append(f"{step.label}: {how}; calibrated on {source}; runtime onnxruntime")
    return OnnxProgram(data, fp32, how)
