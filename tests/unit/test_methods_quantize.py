"""quantize:weight_only_int8, fp16, bf16 and static_int8: real dtypes, artifacts that reload in a fresh process."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from modelpress_core.steps import BFloat16, Float16, StaticInt8, WeightOnlyInt8
from worker.evaluate import parameter_stats
from worker.export import write_torchscript
from worker.methods import StepContext, apply_step


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


def ctx(**extra):
    return StepContext(device=torch.device("cpu"), example_input=torch.randn(1, 32), **extra)


def test_weight_only_int8_stores_int8_and_stays_close():
    x = torch.randn(8, 32)
    model = apply_step(mlp(), WeightOnlyInt8(), ctx())
    assert parameter_stats(model)["dtypes"]["int8"] == 32 * 64 + 64 * 10
    assert torch.allclose(model(x), mlp()(x), atol=2e-2)


@pytest.mark.parametrize("step,dtype", [(Float16(), torch.float16), (BFloat16(), torch.bfloat16)])
def test_half_casts_weights_keep_float32_edges(step, dtype):
    x = torch.randn(8, 32)
    model = apply_step(mlp(), step, ctx())
    assert model.inner[0].weight.dtype == dtype
    out = model(x)
    assert out.dtype == torch.float32 and torch.allclose(out, mlp()(x), atol=5e-2)


def test_static_int8_notes_synthetic_calibration():
    c = ctx()
    model = apply_step(mlp(), StaticInt8(calibration_batches=2), c)
    assert any("synthetic" in n for n in c.notes)
    assert "qint8" in parameter_stats(model)["dtypes"]


def test_static_int8_uses_given_calibration_data():
    c = ctx(calibration=torch.randn(40, 32))
    apply_step(mlp(), StaticInt8(calibration_batch_size=16), c)
    assert any("given calibration data (40 samples)" in n for n in c.notes)


@pytest.mark.parametrize("step", [WeightOnlyInt8(), Float16(), BFloat16(), StaticInt8(calibration_batches=2)], ids=lambda s: s.kind)
def test_torchscript_artifact_reloads_in_a_fresh_process(step, tmp_path):
    example = torch.randn(4, 32)
    model = apply_step(mlp(), step, ctx())
    path = tmp_path / "m.pt"
    write_torchscript(model, path, example[:1])
    torch.save(example, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(example), tmp_path / "ref.pt")
    code = (
        "import torch, sys; m = torch.jit.load(sys.argv[1]); x = torch.load(sys.argv[2]); ref = torch.load(sys.argv[3]);"
        "out = m(x); assert out.dtype == torch.float32; assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(path), str(tmp_path / "x.pt"), str(tmp_path / "ref.pt")], check=True)
