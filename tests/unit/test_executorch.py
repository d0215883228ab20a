"""The ExecuTorch output: a .pte with the XNNPACK delegate, written, loaded through the ExecuTorch runtime and
compared with torch on real digits; int8 through the XNNPACK quantizer (runtime 'executorch')."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("executorch")

from modelpress.artifacts import load_executorch  # noqa: E402
from modelpress.datasets import digits_28x28  # noqa: E402
from modelpress_core.errors import InvalidSpec  # noqa: E402
from modelpress_core.spec import parse_spec  # noqa: E402
from worker.pipeline import run_pipeline  # noqa: E402

MLP = {"architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]}}


@pytest.fixture(scope="module")
def eval_npz(tmp_path_factory):
    _, _, x, y = digits_28x28(0)
    path = tmp_path_factory.mktemp("data") / "eval.npz"
    np.savez(path, inputs=x, labels=y)
    return path


def job(model_path, tmp_path, steps, data=None, **spec):
    body = {"model": MLP, "steps": steps, "evaluate": {"batch_sizes": [1, 32]}, **spec}
    return run_pipeline(parse_spec(json.dumps(body)), model_path, tmp_path, progress=lambda *a: None, check_cancelled=lambda: None,
                        warmup=2, runs=5, input_sha256="test", data={k: (p, "npz") for k, p in (data or {}).items()})


def test_float_model_to_pte_agrees_with_torch(digits_mlp_path, eval_npz, tmp_path):
    result = job(digits_mlp_path, tmp_path, [{"method": "prune", "kind": "magnitude", "amount": 0.5}], {"eval": eval_npz},
                 outputs=["executorch"])
    m = result.metrics
    check = m["artifacts"]["model.pte"]["check"]
    assert check["delegate"] == "XNNPACK" and check["delegate_calls"] >= 1 and check["dynamic_batch"] and check["passed"]
    assert m["verdict"]["runtime"] == "executorch"
    assert check["max_abs_error_vs_torch"] < 1e-4  # the .pte against the pruned float model it was lowered from
    assert m["fidelity"]["top1_agreement"] >= 0.98  # against the unpruned upload, on the real held-out digits
    assert [entry["batch_size"] for entry in m["after"]["latency"]] == [1, 32]
    program = load_executorch(tmp_path / "model.pte")
    assert program(torch.zeros(3, 784)).shape == (3, 10)


@pytest.mark.parametrize("kind", ["dynamic_int8", "static_int8"])
def test_int8_through_the_xnnpack_quantizer(digits_mlp_path, eval_npz, tmp_path, kind):
    result = job(digits_mlp_path, tmp_path, [{"method": "quantize", "kind": kind, "runtime": "executorch"}],
                 {"eval": eval_npz, "calibration": eval_npz})
    m = result.metrics
    assert [o.name for o in result.outputs] == ["model.pte"]
    assert m["after"]["file_bytes"] * 3 < m["before"]["file_bytes"]  # int8 weights in the program
    assert m["fidelity"]["top1_agreement"] >= 0.97 and abs(m["quality"]["accuracy_drop"]) <= 0.02
    assert any("XNNPACKQuantizer" in n for n in m["notes"])


@pytest.mark.parametrize("body, match", [
    ({"steps": [{"method": "quantize", "kind": "dynamic_int8"}], "outputs": ["executorch"]}, "runtime 'executorch'"),
    ({"steps": [{"method": "quantize", "kind": "dynamic_int8", "runtime": "executorch"}], "outputs": ["torchscript"]}, "executorch"),
    ({"steps": [{"method": "quantize", "kind": "fp16", "runtime": "executorch"}]}, "runtime"),
])
def test_impossible_executorch_specs_are_422(body, match):
    with pytest.raises(InvalidSpec, match=match):
        parse_spec(json.dumps({"model": MLP, **body}))


def test_lenet_pte_runs_every_batch_and_larger_inputs_in_chunks(digits_lenet5_path, tmp_path):
    from safetensors.torch import load_file

    from modelpress_torch.architectures import build_model
    from worker.executorch_export import MAX_BATCH, write_executorch

    model = build_model("lenet5", {})
    model.load_state_dict(load_file(str(digits_lenet5_path)))
    model.eval()
    check = write_executorch(model, tmp_path / "model.pte", torch.zeros(1, 1, 28, 28))
    assert check["dynamic_batch"] and check["passed"]
    program = load_executorch(tmp_path / "model.pte")
    assert program.max_batch == MAX_BATCH
    _, _, x, _ = digits_28x28(0)
    x = torch.as_tensor(x).reshape(-1, 1, 28, 28)  # 360 digits: more than one planned batch
    for batch in (x[:1], x[:32], x):
        with torch.no_grad():
            assert torch.allclose(program(batch), model(batch), atol=1e-4)
