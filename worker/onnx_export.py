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


class OnnxModel:
    """Calls an ONNX file like a torch module (tensor in, tensor out), for measuring."""

    def __init__(self, path: Path):
        self.session = _session(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"input": x.detach().cpu().numpy()})[0])

    def eval(self) -> "OnnxModel":
        return self


def load_onnx(path: Path) -> OnnxModel:
    return OnnxModel(path)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _first(output) -> torch.Tensor:
    while isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, dict):
        return _first(next(iter(output.values())))
    return output
