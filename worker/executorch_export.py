"""The ``executorch`` output: ``model.pte``, the model lowered to ExecuTorch's XNNPACK delegate.

A float model is exported as it is; after a quantize step with runtime ``executorch`` the PT2E int8
graph (XNNPACK quantizer) is. The batch dimension is dynamic (up to ``MAX_BATCH``) where the graph allows:
the trace uses a batch of ``MAX_BATCH`` because ExecuTorch plans some buffers for the traced size (measured:
traced at 2, LeNet-5's program refused a batch of 32). ``load_executorch`` runs larger inputs in chunks. The writer runs the written file once through the ExecuTorch runtime
and compares it with the model it came from (the check in ``metrics.artifacts``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from modelpress_core.errors import InvalidSpec

MAX_BATCH = 256  # the program's buffers are planned for this batch (memory on the device): larger inputs run in chunks


def write_executorch(model: nn.Module, path: Path, example: torch.Tensor, manifest: dict | None = None) -> dict:
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError:
        raise InvalidSpec("the 'executorch' output needs the executorch package on the worker (pip install 'modelpress[worker]')") from None
    from modelpress_torch.artifacts import load_executorch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.export.export(model, (example[:1].expand(MAX_BATCH, *example.shape[1:]).contiguous(),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},))
            dynamic = True
        except Exception:  # noqa: BLE001 - a graph that specialised on its batch: one shape only
            try:
                program = torch.export.export(model, (example,))
            except Exception as exc:  # noqa: BLE001
                raise InvalidSpec(f"executorch output: torch.export cannot capture the model ({type(exc).__name__}: {str(exc)[:300]})") from None
            dynamic = False
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        delegated = sum(1 for n in lowered.exported_program().graph.nodes if n.op == "call_function" and "executorch_call_delegate" in str(n.target))
        left = sorted({getattr(n.target, "__name__", str(n.target)) for n in lowered.exported_program().graph.nodes
                       if n.op == "call_function" and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)})
        path.write_bytes(lowered.to_executorch().buffer)
        expected = model(example)
    loaded = load_executorch(path)
    got = loaded(example)
    error = float((got - expected).abs().max())
    scale = float(expected.abs().max()) or 1.0
    return {"format": "ExecuTorch program (.pte)", "delegate": "XNNPACK", "delegate_calls": delegated, "not_delegated_ops": left[:20],
            "dynamic_batch": dynamic, "max_batch": MAX_BATCH if dynamic else int(example.shape[0]),
            "max_abs_error_vs_torch": round(error, 8), "passed": error <= 1e-3 * scale + 1e-5 or error <= 0.05 * scale,
            "load": "modelpress_torch.artifacts.load_executorch(path) (executorch.runtime), or the ExecuTorch C++/Android/iOS runtime"}
