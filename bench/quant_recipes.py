#!/usr/bin/env python
"""The int8 recipes that measured fastest in bench/quant_baselines.py, as small
functions, each with save + load-in-a-fresh-process.  Self-test:

    python bench/quant_recipes.py          # quantize, save, reload in a subprocess, compare

(a) dynamic int8 (Linear):  torch.ao quantize_dynamic -> TorchScript     | ORT quantize_dynamic -> .onnx
(b) static int8 (calib.):   PT2E X86InductorQuantizer -> .pt2 (+ compile  | ORT quantize_static QDQ -> .onnx
                            with freezing at load)                        | FX static (deprecated) -> TorchScript
(c) weight-only int8:       torchao Int8WeightOnlyConfig -> state_dict (re-apply nothing: load with assign=True)
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn

BATCH = torch.export.Dim("batch", min=1, max=4096)


# ----------------------------------------------------------------- (a) dynamic int8
def dynamic_int8_torchscript(model: nn.Module, example: torch.Tensor, path: str) -> None:
    torch.backends.quantized.engine = "x86"  # fbgemm/onednn int8 kernels (AVX2 ok)
    q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)
    with torch.no_grad():
        ts = torch.jit.script(q)  # models that do not script: torch.jit.trace(q, example)
    torch.jit.save(ts, path)
    # load: m = torch.jit.load(path); with torch.no_grad(): m(x)


def export_onnx_fp32(model: nn.Module, example: torch.Tensor, path: str) -> None:
    torch.onnx.export(model.eval(), (_ge2(example),), path, dynamo=True, external_data=False,
                      input_names=["x"], output_names=["y"], dynamic_shapes=({0: BATCH},))


def dynamic_int8_onnx(fp32_onnx: str, path: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = path + ".pre.onnx"
    quant_pre_process(fp32_onnx, pre)
    quantize_dynamic(pre, path, weight_type=QuantType.QInt8)
    os.remove(pre)


def ort_session(path: str, threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    # run: sess.run(None, {"x": x.numpy()})[0]


# ----------------------------------------------------------------- (b) static int8
def _ge2(x):  # export specializes size-1 dims; trace a dynamic batch with >= 2
    return x if x.shape[0] >= 2 else x.expand(2, *x.shape[1:]).contiguous()


def static_int8_pt2e(model: nn.Module, calib: list[torch.Tensor], path: str) -> None:
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with torch.no_grad():
        # strict=True: non-strict export loses source_fn_stack and the quantizer fails on
        # modules used twice (torchvision ResNet's shared ReLU).  NB strict export calls
        # torch._dynamo.reset(): do it before compiling anything else in the process.
        ep = torch.export.export(model.eval(), (_ge2(calib[0]),), strict=True, dynamic_shapes=({0: BATCH},))
        q = xiq.X86InductorQuantizer()
        q.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(ep.module(), q)
        for c in calib:
            prepared(c)
        conv = convert_pt2e(prepared)
        # convert_pt2e keeps the unused fp32 weights registered: drop them (else 4x size)
        used = {n.target for n in conv.graph.nodes if n.op == "get_attr"}
        for name, _ in list(conv.named_parameters()) + list(conv.named_buffers()):
            if name not in used:
                mod, _, attr = name.rpartition(".")
                delattr(conv.get_submodule(mod) if mod else conv, attr)
        ep2 = torch.export.export(conv, (_ge2(calib[0]),), dynamic_shapes=({0: BATCH},))
        ep2.example_inputs = None  # else the calibration batch is stored in the archive
        torch.export.save(ep2, path)


def load_pt2e(path: str):
    import torch._inductor.config as icfg
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  REQUIRED before load: registers the
    # quantized_decomposed.* ops, else "Unsupported target type ... dequantize_per_channel"

    m = torch.export.load(path).module()
    icfg.freezing = True  # REQUIRED: int8 onednn kernels are only used by the freezing passes;
    # torch.compile(options={"freezing": True}) does NOT work for these graphs.
    return torch.compile(m, dynamic=False)  # compiles on first call (per input shape) under no_grad


def static_int8_onnx_qdq(fp32_onnx: str, calib: list[torch.Tensor], path: str, per_channel: bool, reduce_range: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader:
        def __init__(self):
            self.it = iter([{"x": c.numpy()} for c in calib])

        def get_next(self):
            return next(self.it, None)

    pre = path + ".pre.onnx"
    quant_pre_process(fp32_onnx, pre)
    quantize_static(pre, path, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
                    calibrate_method=CalibrationMethod.MinMax)
    os.remove(pre)


def static_int8_fx_torchscript(model: nn.Module, calib: list[torch.Tensor], path: str) -> None:
    """Deprecated API, but eager int8 kernels: no compile at load, 2-3.5x here."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with torch.no_grad():
        prepared = prepare_fx(copy.deepcopy(model).eval(), get_default_qconfig_mapping("x86"), (calib[0],))
        for c in calib:
            prepared(c)
        torch.jit.save(torch.jit.script(convert_fx(prepared)), path)


# ----------------------------------------------------------------- (c) weight-only int8
def weight_only_int8_state_dict(model: nn.Module, path: str) -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    m = copy.deepcopy(model).eval()
    quantize_(m, Int8WeightOnlyConfig(set_inductor_config=False))  # True mutates global inductor config
    torch.save(m.state_dict(), path)  # torchao tensor subclasses; weights_only=True loading works


def load_weight_only(path: str, build_fp32_skeleton):
    import torchao  # noqa: F401  (registers the tensor subclasses as safe globals)

    with torch.device("meta"):
        m = build_fp32_skeleton()
    m.load_state_dict(torch.load(path, weights_only=True), assign=True)
    return m.eval()  # optionally torch.compile(m) -- gave no speed-up on this AVX2 CPU


# ----------------------------------------------------------------- self-test
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10)).eval()


class _TinyCNN(nn.Module):  # shared ReLU on purpose (the strict-export gotcha)
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.b1, self.c2, self.b2 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.relu, self.fc = nn.ReLU(), nn.Linear(16, 10)

    def forward(self, x):
        y = self.relu(self.b1(self.c1(x)))
        y = self.relu(self.b2(self.c2(y)) + y)
        return self.fc(y.mean((2, 3)))


def _load(kind: str, path: str):
    if kind == "jit":
        return torch.jit.load(path)
    if kind == "pt2":
        return load_pt2e(path)
    if kind == "onnx":
        sess = ort_session(path)
        return lambda x: torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])
    if kind == "wo":
        return load_weight_only(path, _mlp)
    raise ValueError(kind)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--load":  # fresh-process half of the self-test
        d = sys.argv[2]
        res = {}
        for name, (kind, path, xfile) in json.load(open(os.path.join(d, "items.json"))).items():
            x = torch.load(os.path.join(d, xfile))
            with torch.no_grad():
                m = _load(kind, path)
                out = m(x).float()
                assert m(x[:1]).shape[0] == 1  # same artifact serves another batch size
            res[name] = out.tolist()
        print(json.dumps(res))
        return
    d = tempfile.mkdtemp(prefix="qrecipes_")
    mlp, cnn = _mlp(), _TinyCNN().eval()
    xm, xc = torch.randn(8, 64), torch.randn(4, 3, 32, 32)
    cal_m, cal_c = [torch.randn(8, 64) for _ in range(4)], [torch.randn(4, 3, 32, 32) for _ in range(4)]
    torch.save(xm, os.path.join(d, "xm.pt"))
    torch.save(xc, os.path.join(d, "xc.pt"))
    p = lambda f: os.path.join(d, f)  # noqa: E731
    dynamic_int8_torchscript(mlp, xm, p("a_dyn.ts"))
    export_onnx_fp32(mlp, xm, p("mlp.onnx"))
    dynamic_int8_onnx(p("mlp.onnx"), p("a_dyn.onnx"))
    export_onnx_fp32(cnn, xc, p("cnn.onnx"))
    static_int8_onnx_qdq(p("cnn.onnx"), cal_c, p("b_qdq.onnx"), per_channel=True, reduce_range=False)
    static_int8_onnx_qdq(p("mlp.onnx"), cal_m, p("b_qdq_mlp.onnx"), per_channel=False, reduce_range=True)
    static_int8_fx_torchscript(cnn, cal_c, p("b_fx.ts"))
    static_int8_pt2e(cnn, cal_c, p("b_pt2e.pt2"))
    weight_only_int8_state_dict(mlp, p("c_wo.pt"))
    items = {
        "a dynamic int8 TorchScript (mlp)": ("jit", p("a_dyn.ts"), "xm.pt"),
        "a dynamic int8 ORT (mlp)": ("onnx", p("a_dyn.onnx"), "xm.pt"),
        "b static int8 PT2E .pt2 (cnn)": ("pt2", p("b_pt2e.pt2"), "xc.pt"),
        "b static int8 ORT QDQ (cnn)": ("onnx", p("b_qdq.onnx"), "xc.pt"),
        "b static int8 ORT QDQ reduce_range (mlp)": ("onnx", p("b_qdq_mlp.onnx"), "xm.pt"),
        "b static int8 FX TorchScript (cnn)": ("jit", p("b_fx.ts"), "xc.pt"),
        "c weight-only int8 state_dict (mlp)": ("wo", p("c_wo.pt"), "xm.pt"),
    }
    json.dump(items, open(p("items.json"), "w"))
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--load", d], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr[-3000:])
        sys.exit(1)
    outs = json.loads(r.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        refs = {"xm.pt": mlp(xm), "xc.pt": cnn(xc)}
    ok = True
    for name, (kind, path, xfile) in items.items():
        ref = refs[xfile]
        err = (torch.tensor(outs[name]) - ref).abs().max().item() / ref.abs().max().item()
        size = os.path.getsize(path)
        good = err < 0.3  # sanity only (tiny random models, 10 logits); accuracy: see quant_baselines
        ok &= good
        print(f"{'OK ' if good else 'BAD'} {name:45s} rel.err {err:.2e}  size {size / 1e3:7.1f} kB  ({os.path.basename(path)})")
    import shutil

    shutil.rmtree(d, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
