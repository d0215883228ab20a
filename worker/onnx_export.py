"""ONNX artifacts: export with the legacy TorchScript-based exporter, check, verify against torch.

``torch.onnx.export(..., dynamo=False)`` handles eager modules and ScriptModules alike (the dynamo
exporter cannot take a ScriptModule). Every file is checked with ``onnx.checker`` and its outputs
are compared with the torch model's under onnxruntime; the result is recorded, and a file that
disagrees beyond the tolerance fails the job rather than ship.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17
VERIFY_BATCH = 4
ATOL = 1e-4
RTOL = 1e-3  # tolerance = ATOL + RTOL * max |torch output|


class OnnxExportError(RuntimeError):
    pass


def write_onnx(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None) -> dict:
    if isinstance(model, OnnxProgram):  # already ONNX (quantized in runtime onnxruntime): write it as made
        return write_onnx_program(model, path)
    batch = example.expand(VERIFY_BATCH, *example.shape[1:]).clone() if example.shape[0] == 1 else example
    generator = torch.Generator().manual_seed(1234)
    if batch.is_floating_point():
        batch = torch.randn(batch.shape, generator=generator).to(batch.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        except Exception as exc:
            raise OnnxExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:300]}") from None
        with torch.no_grad():
            expected = _first(model(batch)).float().numpy()
    onnx.checker.check_model(str(path), full_check=True)
    got = _session(path).run(None, {"input": batch.numpy()})[0]
    max_abs_diff = float(np.abs(got.astype(np.float32) - expected).max())
    tolerance = ATOL + RTOL * float(np.abs(expected).max())
    check = {
        "onnx_checker": "passed",
        "runtime": f"onnxruntime {ort.__version__}",
        "opset": OPSET,
        "samples": int(batch.shape[0]),
        "max_abs_diff": max_abs_diff,
        "tolerance": tolerance,
        "tolerance_rule": f"{ATOL} + {RTOL} * max|torch output|",
        "passed": max_abs_diff <= tolerance,
    }
    if not check["passed"]:
        raise OnnxExportError(f"the ONNX file disagrees with the torch model: max abs diff {max_abs_diff:.3g} > {tolerance:.3g}")
    return check


def export_fp32_onnx(model: nn.Module, example: torch.Tensor) -> bytes:
    """The model as float ONNX bytes (legacy exporter, dynamic batch), input ``input``, output ``output``."""
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        except Exception as exc:
            raise OnnxExportError(f"torch.onnx.export failed: {type(exc).__name__}: {str(exc)[:300]}") from None
    return buffer.getvalue()


class OnnxProgram(nn.Module):
    """A model that already is an ONNX file (made by a quantize step in runtime ``onnxruntime``).

    It carries the file's bytes (and the float file it was made from, for a same-runtime baseline);
    calling it runs ONNX Runtime, so the pipeline can treat it like any module.
    """

    def __init__(self, onnx_bytes: bytes, fp32_onnx_bytes: bytes | None = None, how: str = ""):
        super().__init__()
        self.onnx_bytes = onnx_bytes
        self.fp32_onnx_bytes = fp32_onnx_bytes
        self.how = how
        self._session: ort.InferenceSession | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            self._session = _session(self.onnx_bytes)
        return torch.from_numpy(self._session.run(None, {"input": x.detach().cpu().numpy()})[0])

    def __deepcopy__(self, memo):
        return OnnxProgram(self.onnx_bytes, self.fp32_onnx_bytes, self.how)

    def proto(self) -> onnx.ModelProto:
        return onnx.load_from_string(self.onnx_bytes)


QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                 "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul", "QGemm")


def write_onnx_program(model: OnnxProgram, path: Path) -> dict:
    """Write a quantized ONNX file as made; check it and say which integer ops it holds."""
    path.write_bytes(model.onnx_bytes)
    onnx.checker.check_model(str(path), full_check=True)
    proto = model.proto()
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type in QUANTIZED_OPS:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
    int8 = sum(1 for t in proto.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and len(t.dims) >= 2)
    if not ops or not int8:
        raise OnnxExportError("ONNX Runtime quantization produced no integer weights or ops; nothing was quantized")
    return {
        "onnx_checker": "passed",
        "runtime": f"onnxruntime {ort.__version__}",
        "quantized": model.how,
        "quantized_ops": ops,
        "int8_weight_tensors": int8,
        "passed": True,
    }


class OnnxModel:
    """Calls an ONNX file like a torch module (tensor in, tensor out), for measuring."""

    def __init__(self, path: Path | bytes):
        self.session = _session(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"input": x.detach().cpu().numpy()})[0])

    def eval(self) -> "OnnxModel":
        return self

    def to(self, device) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise ValueError("the ONNX artifact is measured with onnxruntime's CPU execution provider")
        return self


def load_onnx(path: Path) -> OnnxModel:
    return OnnxModel(path)


def _session(source: Path | bytes) -> ort.InferenceSession:
    """A CPU session with torch's current thread count (the spec's evaluate.threads while measuring)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(source if isinstance(source, bytes) else str(source), options, providers=["CPUExecutionProvider"])


def _first(output) -> torch.Tensor:
    while isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, dict):
        return _first(next(iter(output.values())))
    return output
