"""The one output-format registry: every artifact format modelpress writes, in one torch-free table.

Each row says the format's name (what a spec's ``outputs`` lists), its file name and media type,
what it can hold, which input formats it is offered for, which quantize runtime writes it as its
artifact (if any), and where its writer and loader live, as ``module:function`` dotted paths so
that this module stays torch-free (the worker resolves them: ``worker.export.writer`` /
``worker.export.loader``). The spec's ``outputs`` literal, the capability table, the runtimes'
artifact formats, the worker's writers and loaders and the sandbox's output check all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PACKED_MEDIA_TYPE = "application/vnd.modelpress.packed"  # modelpress_core.packed.MEDIA_TYPE (a test checks); no numpy here


@dataclass(frozen=True)
class OutputFormat:
    name: str
    file_name: str  # the artifact's name in the job's outputs
    media_type: str
    description: str  # what it holds, for GET /capabilities
    input_formats: tuple[str, ...]  # the upload formats it is offered for
    holds_quantized: bool  # can it carry an int8 or half-precision model written by eager quantization?
    runtime: str | None  # the quantize runtime whose artifact this is (None: not a runtime's artifact)
    writer: str  # "module:function" (model, path, example, manifest) -> check dict or None
    loader: str  # "module:function" (path, rebuild) -> (callable model, runtime name)


FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat(
            name="safetensors", file_name="model.safetensors", media_type="application/vnd.safetensors",
            description="a plain float state_dict (architecture uploads only)",
            input_formats=("safetensors",), holds_quantized=False, runtime=None,
            writer="worker.export:write_safetensors", loader="worker.export:load_safetensors",
        ),
        OutputFormat(
            name="torchscript", file_name="model.torchscript.pt", media_type="application/zip",
            description="a torch.jit.save() archive, int8 included",
            input_formats=("safetensors", "torchscript"), holds_quantized=True, runtime="eager",
            writer="worker.export:write_torchscript", loader="worker.export:load_torchscript",
        ),
        OutputFormat(
            name="onnx", file_name="model.onnx", media_type="application/onnx",
            description="ONNX (opset 17, legacy exporter), checked with onnx.checker and verified against torch with onnxruntime; "
            "after int8 quantization only with runtime 'onnxruntime' (then an int8 QDQ / integer-op file made by ONNX Runtime)",
            input_formats=("safetensors", "torchscript"), holds_quantized=False, runtime="onnxruntime",
            writer="worker.onnx_export:write_onnx", loader="worker.export:load_onnx_artifact",
        ),
        OutputFormat(
            name="pt2", file_name="model.pt2", media_type="application/zip",
            description="a torch.export ExportedProgram (.pt2) of a PT2E int8 graph, for quantize runtime 'inductor' only: "
            "load with torch.export.load and torch.compile with inductor freezing (README, Loading artifacts)",
            input_formats=("safetensors",), holds_quantized=False, runtime="inductor",
            writer="worker.export:write_exported_program", loader="worker.export:load_exported_program",
        ),
        OutputFormat(
            name="packed", file_name="model.mpk", media_type=PACKED_MEDIA_TYPE,
            description="model.mpk, the packed transport format (docs/packed-format.md): sparse weights with relative indexes, "
            "k-means codebooks, zstd; a storage format: unpack with `modelpress unpack` or modelpress_torch.artifacts.load_packed "
            "(latency is measured on the unpacked model); architecture uploads only. After quantize:dynamic_int8 (runtime eager) "
            "it stores the sparse int8 layout (int8 codes, pruned zeros not stored, per-channel scales) and loads back as the same "
            "dynamic int8 model: the output that makes pruning shrink an int8 file; not after static/QAT int8, fp16 or bf16",
            input_formats=("safetensors",), holds_quantized=False, runtime=None,
            writer="worker.export:write_packed", loader="worker.export:load_packed_artifact",
        ),
        OutputFormat(
            name="executorch", file_name="model.pte", media_type="application/vnd.pytorch.executorch",
            description="model.pte for ExecuTorch (phones, microcontrollers): the float model lowered to the XNNPACK delegate, or, "
            "after a quantize step with runtime 'executorch', its PT2E int8 graph (XNNPACK quantizer); measured through the "
            "ExecuTorch runtime on the worker; architecture uploads only; load with modelpress_torch.artifacts.load_executorch (docs/edge.md)",
            input_formats=("safetensors",), holds_quantized=False, runtime="executorch",
            writer="worker.executorch_export:write_executorch", loader="worker.export:load_executorch_artifact",
        ),
    )
}

OutputFormatName = Literal["safetensors", "torchscript", "onnx", "pt2", "packed", "executorch"]  # typing needs a literal: a test checks it is FORMATS' keys

# the artifact format each quantize runtime is written as (and measured in)
RUNTIME_OUTPUT: dict[str, str] = {f.runtime: f.name for f in FORMATS.values() if f.runtime is not None}


def outputs_for(input_format: str) -> tuple[str, ...]:
    """The output formats offered for an upload of ``input_format``, in registry order."""
    return tuple(f.name for f in FORMATS.values() if input_format in f.input_formats)


def by_file_name(file_name: str) -> OutputFormat | None:
    return next((f for f in FORMATS.values() if f.file_name == file_name), None)


__all__ = ["FORMATS", "OutputFormat", "OutputFormatName", "RUNTIME_OUTPUT", "by_file_name", "outputs_for"]
