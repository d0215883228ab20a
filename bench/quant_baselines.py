#!/usr/bin/env python
"""Which int8 (and related) inference paths give a real speed-up on *this* CPU?

Standalone benchmark for modelpress.  Everything is measured in ONE process, at one
thread count, interleaved (round-robin over all variants of a section, several
rounds), with warm-up, and reported as medians and as ratios vs fp32 eager.

    python bench/quant_baselines.py --out bench/results/quant_baselines.json

Sections
--------
* ``mlp_b32``: 6 Linear layers 768->3072->768->3072->768->3072->768 (bias=True) as a
  plain ``nn.Sequential``: GELU after every 768->3072 layer, ReLU after the first two
  3072->768 layers, nothing after the last one; input (32, 768).  Also contains the
  50 % structured-pruned (3072 -> 1536 hidden) variants, so that their ratios are vs
  the *unpruned* fp32 eager model measured in the same rounds.
* ``mlp_b1``: the same MLP at batch 1 (a subset of the variants).
* ``resnet18_b1`` / ``resnet18_b32`` / ``mobilenet_v2_b1``: torchvision-compatible
  models (modelpress_torch.architectures if available, else inline copies; random weights,
  torchvision init, BN statistics re-estimated on random data) at 224x224.
  Sections after --budget-s seconds are skipped (recorded in the JSON).

For every variant: median / p25 / p75 latency, speed-up vs fp32 eager (ratio of medians
and median of per-round paired ratios), time to build (quantize + export + compile, incl.
the first call), serialized size (method recorded) and max abs error vs fp32 eager output.

Winner artifacts are saved to a temp dir and re-loaded in a *fresh* python process
(``--reload-check DIR``, run automatically), which checks outputs and latency.

Every build step is wrapped in try/except (+ SIGALRM time limit) and failures are
recorded in the JSON with their error message instead of crashing the run.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import json
import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

# A fresh inductor cache dir => compile times reported are cold-cache times
# (what a service pays the first time it compiles a model).  Must be set before torch.
if "--warm-cache" not in sys.argv and "--reload-check" not in sys.argv:
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="qb_inductor_"))

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
import logging

logging.getLogger("torch").setLevel(logging.ERROR)
logging.getLogger("torchao").setLevel(logging.ERROR)

# Many compiled variants share code objects (Sequential.forward, ...): lift dynamo's
# recompile limit, otherwise later variants would silently fall back to eager.
for _k in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, _k):
        setattr(torch._dynamo.config, _k, 256)
if hasattr(torch._dynamo.config, "accumulated_recompile_limit"):
    torch._dynamo.config.accumulated_recompile_limit = 4096
if hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
    torch._dynamo.config.accumulated_cache_size_limit = 4096

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- models
def build_mlp(hidden: int = 3072, dim: int = 768, blocks: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(blocks):
        layers += [nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)]
        if i < blocks - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet (BasicBlock only); same state_dict keys."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cna(inp, out, k=3, stride=1, groups=1):
    # torchvision Conv2dNormActivation == Sequential(conv, bn, ReLU6)
    return nn.Sequential(
        nn.Conv2d(inp, out, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_cna(inp, hidden, k=1))
        layers += [_cna(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (width 1.0); same state_dict keys."""

    def __init__(self, num_classes=1000):
        super().__init__()
        cfg = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        inp = 32
        features: list[nn.Module] = [_cna(3, inp, stride=2)]
        for t, c, n, s in cfg:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(_cna(inp, 1280, k=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def prepare_cnn(name: str) -> tuple[nn.Module, str]:
    """build_cnn + BatchNorm running statistics re-estimated on random data (seeded).

    With random weights and default BN buffers (mean 0, var 1) activations shrink layer
    after layer; for mobilenet_v2 the logits came out ~1e-9 (denormal arithmetic = slow
    and meaningless error numbers).  Re-estimating the BN statistics (cumulative average
    over 4 random batches of 8, train-mode forward, then eval) gives O(1) activations,
    like a trained model."""
    torch.manual_seed(0)
    model, src = build_cnn(name)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            model(torch.randn(8, 3, 224, 224, generator=g))
    return model.eval(), src + f"; BN stats re-estimated on 4x randn(8,3,224,224) ({len(bns)} BN layers)"


def build_cnn(name: str) -> tuple[nn.Module, str]:
    """Prefer the project's zoo (modelpress_torch.architectures) if it knows the model."""
    try:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from modelpress_torch.architectures import build_model  # type: ignore

        return build_model(name, {}).eval(), "modelpress_torch.architectures.build_model"
    except Exception as e:  # noqa: BLE001
        src = f"inline (modelpress_torch.architectures: {type(e).__name__}: {str(e)[:80]})"
    return ({"resnet18": ResNet, "mobilenet_v2": MobileNetV2}[name])().eval(), src


# --------------------------------------------------------------------------- helpers
class BuildTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def handler(signum, frame):
        raise BuildTimeout(f"build exceeded {seconds:.0f}s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sd_bytes(module: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getbuffer().nbytes


def file_bytes(path: str) -> int:
    n = os.path.getsize(path)
    for extra in (path + ".data", path + "_data"):
        if os.path.exists(extra):
            n += os.path.getsize(extra)
    return n


def to_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def compile_module(model, example, freezing: bool, limit: float):
    """torch.compile (inductor).  NB: freezing must be the *global* inductor config at
    compile time -- torch.compile(options={"freezing": True}) fails for PT2E models
    (UnsupportedOperatorException: onednn.qlinear_prepack)."""
    import torch._inductor.config as icfg

    with time_limit(limit), icfg.patch(freezing=freezing):
        cm = torch.compile(_unique_forward(model), dynamic=False)
        cm(example)  # compile happens here
        cm(example)
    _COMPILE_LOG.append(freezing)
    return cm


# freezing flag of every compile_module call; Section.add() uses it to remember, per
# variant, under which inductor config it must be (re)compiled -- see Section.measure.
_COMPILE_LOG: list = []


_UNIQ = [0]


def _unique_forward(model):
    """A wrapper function with its own code object.  Dynamo caches compiled graphs per
    code object (e.g. Sequential.forward) and, with inline_inbuilt_nn_modules, does not
    guard on module identity nor on inductor config: a second torch.compile of the same
    (or a deep-copied) module with freezing=True would silently reuse the first,
    non-frozen graph.  A fresh code object per variant forces a real compile."""
    _UNIQ[0] += 1
    ns: dict = {}
    exec(f"def forward_{_UNIQ[0]}(x):\n    return model(x)\n", {"model": model}, ns)
    return ns[f"forward_{_UNIQ[0]}"]


def inductor_counters() -> dict:
    try:
        from torch._dynamo.utils import counters

        return {k: v for k, v in counters["inductor"].items() if any(s in k for s in ("qlinear", "qconv", "woq", "int_mm", "extern", "mkldnn", "cache_hit", "cache_miss"))}
    except Exception:  # noqa: BLE001
        return {}


def reset_counters():
    try:
        from torch._dynamo.utils import counters

        counters.clear()
    except Exception:  # noqa: BLE001
        pass


def ort_session(path: str, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def export_onnx(model, example, path) -> str:
    """Returns which exporter worked."""
    errs = []
    try:
        torch.onnx.export(
            model, (example,), path, dynamo=True, external_data=False,
            input_names=["x"], output_names=["y"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        )
        return "torch.onnx.export(dynamo=True)"
    except Exception as e:  # noqa: BLE001
        errs.append(f"dynamo: {type(e).__name__}: {str(e)[:300]}")
    torch.onnx.export(
        model, (example,), path, dynamo=False, input_names=["x"], output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
    )
    return "torch.onnx.export(dynamo=False) [dynamo failed: " + "; ".join(errs) + "]"


class Section:
    """A set of variants measured round-robin in the same process."""

    def __init__(self, name: str, description: str, x: torch.Tensor, args, limit: float):
        self.name, self.description, self.x, self.args, self.limit = name, description, x, args, limit
        self.variants: list[dict] = []
        self.ref: torch.Tensor | None = None
        self.extra: dict = {}

    def add(self, name, group, build, *, note: str = "", baseline_ref: bool = False, compare_ref: bool = True):
        """build() -> (callable returning output, size_bytes, size_method, extra-dict)."""
        rec = {"name": name, "group": group, "ok": False, "note": note}
        log(f"{self.name}: building {name}")
        gc.collect()
        reset_counters()
        n_compiles = len(_COMPILE_LOG)
        t = time.perf_counter()
        try:
            with time_limit(self.limit * 1.5):
                fn, size, size_method, extra = build()
                out = fn()
            if len(_COMPILE_LOG) > n_compiles:
                rec["_freezing"] = _COMPILE_LOG[-1]
            rec["build_s"] = round(time.perf_counter() - t, 2)
            rec.update(size_bytes=size, size_method=size_method)
            if extra:
                rec.update(extra)
            out = torch.as_tensor(out).float()
            if baseline_ref:
                self.ref = out
            if self.ref is not None and compare_ref and out.shape == self.ref.shape:
                err = (out - self.ref).abs().max().item()
                rec["max_abs_err"] = err
                rec["rel_err"] = err / max(self.ref.abs().max().item(), 1e-12)
            c = inductor_counters()
            if c:
                rec["inductor_counters"] = c
            rec["ok"] = True
            rec["_fn"] = fn
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            rec["build_s"] = round(time.perf_counter() - t, 2)
            rec["error"] = f"{type(e).__name__}: {str(e)[:600]}"
            rec["traceback_tail"] = traceback.format_exc()[-1500:]
            log(f"  FAILED {name}: {rec['error'][:200]}")
        self.variants.append(rec)
        if rec["ok"]:
            log(f"  ok {name}: build {rec['build_s']}s, size {rec.get('size_bytes')}, err {rec.get('max_abs_err')}")
        return rec

    def get(self, name):
        return next((v for v in self.variants if v["name"] == name and v["ok"]), None)

    def measure(self, rounds: int, target_s: float, max_iters: int, slow_factor: float = 4.0, slow_rounds: int = 3):
        """Round-robin over all variants.  Per round and variant: one untimed call (absorbs
        the hand-over between thread pools, e.g. ORT spinning threads -> OpenMP), then N
        timed calls.  Variants > slow_factor x slower than fp32 eager (clearly not a
        speed-up) get only `slow_rounds` rounds of 1 call to keep the total time bounded."""
        live = [v for v in self.variants if v["ok"]]
        log(f"{self.name}: measuring {len(live)} variants x {rounds} rounds")
        # Strict torch.export (used by PT2E) calls torch._dynamo.reset(): every model compiled
        # before it is silently recompiled on its next call -- under the inductor config of
        # *that* moment (i.e. without freezing -> PT2E int8 falls back to dequant + fp32
        # addmm).  Sections quantize first and compile afterwards; as a safety net, call
        # every compiled variant once under its own config now and record recompiles.
        import torch._inductor.config as icfg
        from torch._dynamo.utils import counters

        for v in live:
            if "_freezing" in v:
                counters.clear()
                t = time.perf_counter()
                with icfg.patch(freezing=v["_freezing"]):
                    v["_fn"]()
                if counters["frames"].get("total", 0):
                    v["recompiled_before_measure_s"] = round(time.perf_counter() - t, 2)
                    log(f"  note: {v['name']} had to be recompiled before measuring")
        self.extra["loadavg_before_measure"] = os.getloadavg()
        t_measure = time.perf_counter()
        for v in live:
            fn = v["_fn"]
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
                if sum(ts) > 2.0:
                    break
            v["_est"] = min(ts)
        base_est = next((v["_est"] for v in live if v["name"] == "fp32_eager"), None) or min(v["_est"] for v in live)
        for v in live:
            est = v["_est"]
            slow = est > slow_factor * base_est
            v["_iters"] = 1 if slow else max(1, min(max_iters, int(target_s / max(est, 1e-6))))
            v["_rounds"] = min(rounds, slow_rounds) if slow else rounds
            v["_warm"] = not slow and est < 0.25
            v["_samples"] = []
            v["_round_medians"] = []
        for r in range(rounds):
            order = live[:] if r % 2 == 0 else live[::-1]  # alternate order: no fixed neighbours
            for v in order:
                if r >= v["_rounds"]:
                    continue
                fn = v["_fn"]
                if v["_warm"]:
                    fn()
                s = []
                for _ in range(v["_iters"]):
                    t = time.perf_counter()
                    fn()
                    s.append(time.perf_counter() - t)
                v["_samples"] += s
                v["_round_medians"].append(statistics.median(s))
        self.extra["loadavg_after_measure"] = os.getloadavg()
        self.extra["measure_wall_s"] = round(time.perf_counter() - t_measure, 1)
        base = self.get("fp32_eager")
        for v in live:
            s = sorted(v["_samples"])
            v["median_ms"] = round(1e3 * statistics.median(s), 3)
            v["p25_ms"] = round(1e3 * s[len(s) // 4], 3)
            v["p75_ms"] = round(1e3 * s[(3 * len(s)) // 4], 3)
            v["min_ms"] = round(1e3 * s[0], 3)
            v["n_samples"] = len(s)
            v["rounds"] = len(v["_round_medians"])
        if base:
            for v in live:
                v["speedup_vs_fp32_eager"] = round(base["median_ms"] / v["median_ms"], 3)
                v["speedup_of_p25"] = round(base["p25_ms"] / v["p25_ms"], 3)
                v["speedup_of_min"] = round(base["min_ms"] / v["min_ms"], 3)
                k = min(len(v["_round_medians"]), len(base["_round_medians"]))
                if k:
                    v["speedup_paired_median"] = round(statistics.median(
                        base["_round_medians"][i] / v["_round_medians"][i] for i in range(k)), 3)

    def result(self) -> dict:
        vs = []
        for v in self.variants:
            vs.append({k: val for k, val in v.items() if not k.startswith("_")})
        return {"description": self.description, "input_shape": list(self.x.shape), "variants": vs, **self.extra}

    def drop_fns(self):
        for v in self.variants:
            for k in [k for k in v if k.startswith("_")]:
                del v[k]


# --------------------------------------------------------------------------- recipes
def _batch_dyn():
    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def _ge2(example):
    # export specializes size-1 dims ("0/1 specialization"): trace a dynamic batch with >= 2
    return example if example.shape[0] >= 2 else example.expand(2, *example.shape[1:]).contiguous()


def pt2e_quantize(model, example, calib, dynamic=False, info=None):
    """PT2E: export -> prepare_pt2e(X86InductorQuantizer) -> calibrate -> convert_pt2e.
    Exported with a dynamic batch dim, so calibration batches may have any size and the
    resulting (.pt2) artifact serves every batch size."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    # strict=True: the default non-strict export (torch 2.13) drops `source_fn_stack`
    # metadata and X86InductorQuantizer then fails on modules reused twice (torchvision
    # ResNet's shared self.relu): "Input partition has more than one output node".
    how = []
    ep = None
    for strict in (True, False):
        for dyn in (True, False):
            try:
                ex = _ge2(calib[0]) if dyn else example
                ep = torch.export.export(model, (ex,), strict=strict, dynamic_shapes=_batch_dyn() if dyn else None)
                how = [f"export strict={strict} dynamic_batch={dyn}"]
                break
            except Exception as e:  # noqa: BLE001
                how.append(f"export strict={strict} dyn={dyn} failed: {type(e).__name__}: {str(e)[:100]}")
        if ep is not None:
            break
    q = xiq.X86InductorQuantizer()
    q.set_global(xiq.get_default_x86_inductor_quantization_config(is_dynamic=dynamic))
    prepared = prepare_pt2e(ep.module(), q)
    static_b = None if "dynamic_batch=True" in how[0] else example.shape[0]
    for c in calib:
        if static_b is not None and c.shape[0] != static_b:
            c = torch.cat([c] * (static_b // c.shape[0] + 1))[:static_b]
        prepared(c)
    converted = convert_pt2e(prepared)
    freed = strip_unused_attrs(converted)
    try:
        from torchao.quantization.pt2e import move_exported_model_to_eval

        move_exported_model_to_eval(converted)
    except Exception:  # noqa: BLE001
        pass
    if info is not None:
        info["pt2e_export"] = how
        info["pt2e_unused_fp32_bytes_stripped"] = freed
    return converted


def strip_unused_attrs(gm) -> int:
    """convert_pt2e folds the weight quantization into new int8 `_frozen_param*`
    attributes but leaves the original fp32 parameters registered (unused).  They would
    be exported/saved too (a .pt2 of the int8 MLP was 71 MB instead of 14 MB).  Drop
    every parameter/buffer that no get_attr node references.  Returns bytes freed."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    freed = 0
    for name, t in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name in used:
            continue
        mod_path, _, attr = name.rpartition(".")
        mod = gm.get_submodule(mod_path) if mod_path else gm
        freed += t.numel() * t.element_size()
        delattr(mod, attr)
    return freed


def pt2_bytes(gm, example, path=None):
    """Serialize a (PT2E-converted) GraphModule as a torch.export .pt2 archive
    (dynamic batch if possible)."""
    try:
        ep = torch.export.export(gm, (_ge2(example),), dynamic_shapes=_batch_dyn())
    except Exception:  # noqa: BLE001
        ep = torch.export.export(gm, (example,))
    # torch.export.save also stores the example inputs (19 MB for a 32x3x224x224 batch!)
    try:
        ep.example_inputs = None
    except Exception:  # noqa: BLE001
        ep._example_inputs = None
    if path is None:
        buf = io.BytesIO()
        torch.export.save(ep, buf)
        return buf.getbuffer().nbytes
    torch.export.save(ep, path)
    return os.path.getsize(path)


def fx_static_quantize(model, example, calib):
    """Deprecated torch.ao FX graph-mode static quantization (x86 backend, eager kernels)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"), (example,))
    for c in calib:
        prepared(c)
    return convert_fx(prepared)


class CalibReader:
    def __init__(self, name, batches):
        self.name, self.batches = name, [to_np(b) for b in batches]
        self.it = iter(self.batches)

    def get_next(self):
        b = next(self.it, None)
        return None if b is None else {self.name: b}

    def rewind(self):
        self.it = iter(self.batches)


def ort_variants(sec: Section, model, calib, tmp, prefix, per_channel_static, threads, fp32_too=True, dyn=True, static=True):
    """fp32 ONNX + ORT dynamic int8 + ORT static QDQ int8; returns path of fp32 model."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    x = sec.x
    xn = to_np(x)
    fp32_path = os.path.join(tmp, f"{prefix}_fp32.onnx")
    state = {}

    def b_fp32():
        state["exporter"] = export_onnx(model, x, fp32_path)
        s = ort_session(fp32_path, threads)
        return (lambda: s.run(None, {"x": xn})[0]), file_bytes(fp32_path), "ONNX file", {"exporter": state["exporter"]}

    r = sec.add(f"{prefix}ort_fp32", "onnxruntime", b_fp32, note="ORT CPU EP, ORT_ENABLE_ALL, intra_op threads = torch threads")
    if not r["ok"]:
        return None
    pre = os.path.join(tmp, f"{prefix}_pre.onnx")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(fp32_path, pre)
        pre_note = "quant_pre_process applied"
    except Exception as e:  # noqa: BLE001
        pre, pre_note = fp32_path, f"quant_pre_process failed ({type(e).__name__}: {str(e)[:120]}), using raw export"

    if dyn:
        for wt, tag in ((QuantType.QInt8, "s8"), (QuantType.QUInt8, "u8")):
            p = os.path.join(tmp, f"{prefix}_dyn_{tag}.onnx")

            def b_dyn(p=p, wt=wt):
                quantize_dynamic(pre, p, weight_type=wt)
                s = ort_session(p, threads)
                return (lambda: s.run(None, {"x": xn})[0]), file_bytes(p), "ONNX file", {}

            sec.add(f"{prefix}ort_dynamic_int8_w{tag}", "onnxruntime", b_dyn, note=f"onnxruntime.quantization.quantize_dynamic(weight_type=Q{'Int8' if tag == 's8' else 'UInt8'}); {pre_note}")
    if static:
        p = os.path.join(tmp, f"{prefix}_static_qdq.onnx")

        def b_static():
            quantize_static(pre, p, CalibReader("x", calib), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=per_channel_static, calibrate_method=CalibrationMethod.MinMax)
            s = ort_session(p, threads)
            return (lambda: s.run(None, {"x": xn})[0]), file_bytes(p), "ONNX file", {}

        sec.add(f"{prefix}ort_static_qdq_int8", "onnxruntime", b_static,
                note=f"quantize_static QDQ, act QUInt8 / weight QInt8, per_channel={per_channel_static}, MinMax, {len(calib)} calib batches; {pre_note}")
        if not prefix:
            p2 = os.path.join(tmp, f"{prefix}_static_qdq_rr.onnx")

            def b_static_rr():
                quantize_static(pre, p2, CalibReader("x", calib), quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                per_channel=per_channel_static, reduce_range=True, calibrate_method=CalibrationMethod.MinMax)
                s = ort_session(p2, threads)
                return (lambda: s.run(None, {"x": xn})[0]), file_bytes(p2), "ONNX file", {}

            sec.add(f"{prefix}ort_static_qdq_int8_reduce_range", "onnxruntime", b_static_rr,
                    note="as ort_static_qdq_int8 but reduce_range=True (7-bit weights: avoids the u8*s8 int16 saturation of AVX2 VPMADDUBSW on CPUs without VNNI)")
    return fp32_path


def prune_mlp(model, example, ratio=0.5):
    """50 % structured pruning of the hidden (3072) dims, L2 magnitude importance."""
    m = copy.deepcopy(model)
    try:
        import torch_pruning as tp

        ignored = [l for l in m if isinstance(l, nn.Linear) and l.out_features == 768]
        pruner = tp.pruner.MetaPruner(m, example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
        how = "torch_pruning.pruner.MetaPruner(MagnitudeImportance(p=2), pruning_ratio=0.5, ignored_layers=[3072->768 linears])"
    except Exception as e:  # noqa: BLE001
        how = f"manual L2-row pruning (torch_pruning failed: {type(e).__name__}: {str(e)[:120]})"
        m = copy.deepcopy(model)
        lins = [l for l in m if isinstance(l, nn.Linear)]
        for up, down in zip(lins[0::2], lins[1::2]):
            keep = up.weight.norm(dim=1).topk(int(up.out_features * (1 - ratio))).indices.sort().values
            nu, nd = nn.Linear(up.in_features, len(keep)), nn.Linear(len(keep), down.out_features)
            nu.weight.data, nu.bias.data = up.weight.data[keep].clone(), up.bias.data[keep].clone()
            nd.weight.data, nd.bias.data = down.weight.data[:, keep].clone(), down.bias.data.clone()
            for i, l in enumerate(m):
                if l is up:
                    m[i] = nu
                elif l is down:
                    m[i] = nd
    shapes = [tuple(l.weight.shape) for l in m if isinstance(l, nn.Linear)]
    return m.eval(), how, shapes


# --------------------------------------------------------------------------- sections
def run_mlp(args, tmp, threads, artifacts) -> Section:
    torch.manual_seed(0)
    model = build_mlp()
    x = torch.randn(32, 768)
    calib = [torch.randn(32, 768) for _ in range(8)]
    desc = ("nn.Sequential(Linear(768,3072), GELU, Linear(3072,768), ReLU, Linear(768,3072), GELU, "
            "Linear(3072,768), ReLU, Linear(768,3072), GELU, Linear(3072,768)); bias=True; random init "
            "(torch default); input randn(32,768); calibration: 8 x randn(32,768)")
    sec = Section("mlp_b32", desc, x, args, args.compile_limit)
    L = args.compile_limit
    fp32_sd = sd_bytes(model)
    # All strict exports (PT2E) BEFORE any torch.compile: strict export resets dynamo.
    pruned, how, shapes = prune_mlp(model, x)
    for key, mdl, dyn in (("pt2e_static", model, False), ("pt2e_dyn", model, True), ("pruned_pt2e", pruned, False)):
        try:
            info: dict = {}
            artifacts[key] = pt2e_quantize(mdl, x, calib, dynamic=dyn, info=info)
            artifacts[key + "_info"] = info
        except Exception as e:  # noqa: BLE001 -- the variant's own build retries and records the error
            log(f"  pre-quantize {key} failed: {e}")

    sec.add("fp32_eager", "fp32", lambda: ((lambda: model(x)), fp32_sd, "torch.save(state_dict)", {}), baseline_ref=True)
    sec.add("fp32_compile", "fp32", lambda: _cm(model, x, False, L, fp32_sd))
    sec.add("fp32_compile_freezing", "fp32", lambda: _cm(model, x, True, L, fp32_sd))
    sec.add("bf16_eager", "fp32", lambda: _half(model, x, torch.bfloat16))
    sec.add("fp16_eager", "fp32", lambda: _half(model, x, torch.float16))

    # --- torch.ao (deprecated) dynamic quantization, eager fbgemm/onednn kernels
    def b_qdyn():
        torch.backends.quantized.engine = "x86"
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
        artifacts["qdyn"] = q
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("ao_quantize_dynamic_eager", "dynamic int8", b_qdyn, note="torch.ao.quantization.quantize_dynamic({nn.Linear}, qint8), engine x86")

    def b_qdyn_jit():
        q = artifacts["qdyn"]
        s = torch.jit.script(q)
        buf = io.BytesIO()
        torch.jit.save(s, buf)
        p = os.path.join(tmp, "mlp_qdyn.ts")
        torch.jit.save(s, p)
        artifacts["reload"].append({"name": "mlp ao_quantize_dynamic -> TorchScript", "kind": "jit", "path": p, "input": "mlp_x.pt", "expected_from": "mlp_b32/ao_quantize_dynamic_jit_script"})
        return (lambda: s(x)), buf.getbuffer().nbytes, "torch.jit.save(torch.jit.script(m))", {}

    sec.add("ao_quantize_dynamic_jit_script", "dynamic int8", b_qdyn_jit)

    def b_qdyn_jit_frozen():
        s = torch.jit.freeze(torch.jit.script(artifacts["qdyn"]).eval())
        buf = io.BytesIO()
        torch.jit.save(s, buf)
        return (lambda: s(x)), buf.getbuffer().nbytes, "torch.jit.save(torch.jit.freeze(script))", {}

    sec.add("ao_quantize_dynamic_jit_frozen", "dynamic int8", b_qdyn_jit_frozen)

    # --- torchao quantize_
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    def b_ao(cfg_factory, key):
        def b():
            m = copy.deepcopy(model)
            quantize_(m, cfg_factory())
            artifacts[key] = m
            return (lambda: m(x)), sd_bytes(m), "torch.save(state_dict) (torchao tensor subclasses)", {}
        return b

    dyn_cfg = lambda: Int8DynamicActivationInt8WeightConfig(set_inductor_config=False)  # noqa: E731
    wo_cfg = lambda: Int8WeightOnlyConfig(set_inductor_config=False)  # noqa: E731
    sec.add("torchao_int8_dyn_eager", "dynamic int8", b_ao(dyn_cfg, "ao_dyn"), note="quantize_(m, Int8DynamicActivationInt8WeightConfig())")
    for frz in (False, True):
        sec.add(f"torchao_int8_dyn_compile{'_freezing' if frz else ''}", "dynamic int8",
                lambda frz=frz: _cm(artifacts["ao_dyn"], x, frz, L, sec.get("torchao_int8_dyn_eager")["size_bytes"]))
    sec.add("torchao_int8_weight_only_eager", "weight-only int8", b_ao(wo_cfg, "ao_wo"), note="quantize_(m, Int8WeightOnlyConfig())")
    for frz in (False, True):
        sec.add(f"torchao_int8_weight_only_compile{'_freezing' if frz else ''}", "weight-only int8",
                lambda frz=frz: _cm(artifacts["ao_wo"], x, frz, L, sec.get("torchao_int8_weight_only_eager")["size_bytes"]))

    # --- PT2E (X86InductorQuantizer) + inductor
    def b_pt2e(dynamic, freezing, key):
        def b():
            info: dict = artifacts.get(key + "_info", {})
            if key not in artifacts:
                artifacts[key] = pt2e_quantize(model, x, calib, dynamic=dynamic, info=info)
            conv = artifacts[key]
            cm = compile_module(conv, x, freezing, L)
            return (lambda: cm(x)), pt2_bytes(conv, x), "torch.export.save(export(converted)) .pt2 (dynamic batch)", info
        return b

    sec.add("pt2e_static_int8_eager_ref", "static int8", lambda: (_pt2e_eager(artifacts, "pt2e_static", model, x, calib)), note="converted model run eagerly (reference q/dq decomposed ops, no int8 kernels)")
    sec.add("pt2e_static_int8_compile", "static int8", b_pt2e(False, False, "pt2e_static"), note="freezing=False")
    sec.add("pt2e_static_int8_compile_freezing", "static int8", b_pt2e(False, True, "pt2e_static"), note="torch._inductor.config.freezing=True")
    sec.add("pt2e_dynamic_int8_compile_freezing", "dynamic int8", b_pt2e(True, True, "pt2e_dyn"), note="get_default_x86_inductor_quantization_config(is_dynamic=True), freezing=True")

    def b_fx():
        q = fx_static_quantize(model, x, calib)
        artifacts["fx_static"] = q
        p = os.path.join(tmp, "mlp_fx_static.ts")
        torch.jit.save(torch.jit.script(q), p)
        artifacts["reload"].append({"name": "mlp FX static int8 -> TorchScript", "kind": "jit", "path": p, "input": "mlp_x.pt", "expected_from": "mlp_b32/ao_fx_static_int8_eager"})
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("ao_fx_static_int8_eager", "static int8", b_fx, note="torch.ao.quantization.quantize_fx prepare_fx/convert_fx, get_default_qconfig_mapping('x86') (deprecated API)")

    # --- ONNX Runtime
    ort_variants(sec, model, calib, tmp, "", per_channel_static=False, threads=threads)

    # --- 50% structured pruning (+ int8)
    sec.extra["pruning"] = {"method": how, "linear_weight_shapes_after": shapes,
                            "note": "random weights: pruned outputs differ from the unpruned model by design; max_abs_err of pruned variants is vs UNPRUNED fp32 and only says the model changed (accuracy must be recovered by fine-tuning in real use)"}
    p_sd = sd_bytes(pruned)
    sec.add("pruned50_fp32_eager", "pruned 50%", lambda: ((lambda: pruned(x)), p_sd, "torch.save(state_dict)", {}))
    sec.add("pruned50_fp32_compile_freezing", "pruned 50%", lambda: _cm(pruned, x, True, L, p_sd))

    def b_p_qdyn():
        torch.backends.quantized.engine = "x86"
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(pruned), {nn.Linear}, dtype=torch.qint8)
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("pruned50_ao_quantize_dynamic_eager", "pruned 50% + int8", b_p_qdyn)

    def b_p_pt2e():
        conv = artifacts["pruned_pt2e"] if "pruned_pt2e" in artifacts else pt2e_quantize(pruned, x, calib)
        cm = compile_module(conv, x, True, L)
        return (lambda: cm(x)), pt2_bytes(conv, x), "torch.export.save .pt2", {}

    sec.add("pruned50_pt2e_static_int8_compile_freezing", "pruned 50% + int8", b_p_pt2e)

    def b_p_fx():
        q = fx_static_quantize(pruned, x, calib)
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("pruned50_ao_fx_static_int8_eager", "pruned 50% + int8", b_p_fx)
    ort_variants(sec, pruned, calib, tmp, "pruned50_", per_channel_static=False, threads=threads)

    torch.save(x, os.path.join(tmp, "mlp_x.pt"))
    return sec


def run_mlp_b1(args, tmp, threads) -> Section:
    """Same MLP at batch 1 (latency / memory-bound regime, where weight-only int8 is
    supposed to shine).  Reuses the dynamic-batch ONNX files of the batch-32 section."""
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    torch.manual_seed(0)
    model = build_mlp()
    x = torch.randn(1, 768)
    calib = [torch.randn(32, 768) for _ in range(8)]
    sec = Section("mlp_b1", "the mlp_b32 model (same weights) at batch 1; input randn(1,768)", x, args, args.compile_limit)
    L = args.compile_limit
    fp32_sd = sd_bytes(model)
    pre: dict = {}
    try:
        pre["pt2e"] = pt2e_quantize(model, x, calib)  # strict export before any compile
    except Exception as e:  # noqa: BLE001
        pre["err"] = e
    sec.add("fp32_eager", "fp32", lambda: ((lambda: model(x)), fp32_sd, "torch.save(state_dict)", {}), baseline_ref=True)
    sec.add("fp32_compile_freezing", "fp32", lambda: _cm(model, x, True, L, fp32_sd))

    def b_qdyn():
        torch.backends.quantized.engine = "x86"
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("ao_quantize_dynamic_eager", "dynamic int8", b_qdyn)

    def b_wo():
        m = copy.deepcopy(model)
        quantize_(m, Int8WeightOnlyConfig(set_inductor_config=False))
        return _cm(m, x, True, L, sd_bytes(m))

    sec.add("torchao_int8_weight_only_compile_freezing", "weight-only int8", b_wo)

    def b_pt2e():
        if "pt2e" not in pre:
            raise pre["err"]
        cm = compile_module(pre["pt2e"], x, True, L)
        return (lambda: cm(x)), pt2_bytes(pre["pt2e"], x), "torch.export.save .pt2", {}

    sec.add("pt2e_static_int8_compile_freezing", "static int8", b_pt2e)
    xn = to_np(x)
    for nm, f in (("ort_fp32", "_fp32.onnx"), ("ort_dynamic_int8_ws8", "_dyn_s8.onnx"), ("ort_static_qdq_int8_reduce_range", "_static_qdq_rr.onnx")):
        def b(f=f):
            path = os.path.join(tmp, f)
            sess = ort_session(path, threads)
            return (lambda: sess.run(None, {"x": xn})[0]), file_bytes(path), "ONNX file (from mlp_b32)", {}

        sec.add(nm, "onnxruntime", b)
    return sec


def _cm(model, x, freezing, limit, size):
    cm = compile_module(model, x, freezing, limit)
    return (lambda: cm(x)), size, "same artifact as the eager model (compile happens at load time)", {}


def _half(model, x, dtype):
    m = copy.deepcopy(model).to(dtype)
    xh = x.to(dtype)
    return (lambda: m(xh)), sd_bytes(m), "torch.save(state_dict)", {}


def _pt2e_eager(artifacts, key, model, x, calib):
    if key not in artifacts:
        artifacts[key] = pt2e_quantize(model, x, calib)
    conv = artifacts[key]
    return (lambda: conv(x)), pt2_bytes(conv, x), "torch.export.save .pt2", {}


def run_cnn(args, tmp, threads, name, batch, artifacts, onnx_cache) -> Section:
    if ("model", name) not in onnx_cache:
        onnx_cache[("model", name)] = prepare_cnn(name)
    model, src = onnx_cache[("model", name)]
    torch.manual_seed(batch)
    x = torch.randn(batch, 3, 224, 224)
    cb = 4
    gen = torch.Generator().manual_seed(2)
    calib = [torch.randn(cb, 3, 224, 224, generator=gen) for _ in range(args.cnn_calib_batches)]
    desc = f"{name} ({src}), random weights (torchvision init), eval mode; input randn({batch},3,224,224); calibration {len(calib)} x randn({cb},3,224,224)"
    sec = Section(f"{name}_b{batch}", desc, x, args, args.compile_limit)
    L = args.compile_limit
    sd = sd_bytes(model)
    key = f"{name}_b{batch}_pt2e"
    pre_info: dict = {}
    try:  # strict export (resets dynamo) before any torch.compile of this section
        artifacts[key] = pt2e_quantize(model, x, calib, info=pre_info)
    except Exception as e:  # noqa: BLE001 -- b_pt2e retries and records the error
        log(f"  pre-quantize {key} failed: {e}")
    sec.add("fp32_eager", "fp32", lambda: ((lambda: model(x)), sd, "torch.save(state_dict)", {}), baseline_ref=True)
    if not args.skip_fp32_compile:
        sec.add("fp32_compile_freezing", "fp32", lambda: _cm(model, x, True, L, sd))

    def b_pt2e():
        info: dict = pre_info
        conv = artifacts[key] if key in artifacts else pt2e_quantize(model, x, calib, info=info)
        artifacts[key] = conv
        cm = compile_module(conv, x, True, L)
        p = os.path.join(tmp, f"{key}.pt2")
        n = pt2_bytes(conv, x, p)
        if name == "resnet18" and batch == 1:
            torch.save(x, os.path.join(tmp, f"{name}_b{batch}_x.pt"))
            artifacts["reload"].append({"name": f"{name} b{batch} PT2E static -> .pt2 (+compile freezing at load)", "kind": "pt2", "path": p, "input": f"{name}_b{batch}_x.pt", "expected_from": f"{sec.name}/pt2e_static_int8_compile_freezing", "compile_freezing": True, "ref_model": name})
        return (lambda: cm(x)), n, "torch.export.save(export(converted)) .pt2 (dynamic batch)", info

    sec.add("pt2e_static_int8_compile_freezing", "static int8", b_pt2e, note="X86InductorQuantizer default config, torch._inductor.config.freezing=True")

    def b_fx():
        q = fx_static_quantize(model, x, calib)
        if name == "resnet18" and batch == 1:
            p = os.path.join(tmp, f"{key}_fx_static.ts")
            torch.jit.save(torch.jit.script(q), p)
            torch.save(x, os.path.join(tmp, f"{name}_b{batch}_x.pt"))
            artifacts["reload"].append({"name": f"{name} b{batch} FX static int8 -> TorchScript", "kind": "jit", "path": p, "input": f"{name}_b{batch}_x.pt", "expected_from": f"{sec.name}/ao_fx_static_int8_eager", "ref_model": name})
        return (lambda: q(x)), sd_bytes(q), "torch.save(state_dict)", {}

    sec.add("ao_fx_static_int8_eager", "static int8", b_fx, note="deprecated torch.ao FX static quantization (prepare_fx/convert_fx, get_default_qconfig_mapping('x86')), eager fbgemm/onednn kernels")

    # ORT: export once per model (dynamic batch), quantize once, reuse for both batch sizes
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    xn = to_np(x)
    fp32_path = os.path.join(tmp, f"{name}_fp32.onnx")
    qdq_path = os.path.join(tmp, f"{name}_qdq.onnx")

    def b_ort_fp32():
        if name not in onnx_cache:
            onnx_cache[name] = export_onnx(model, x, fp32_path)
        s = ort_session(fp32_path, threads)
        return (lambda: s.run(None, {"x": xn})[0]), file_bytes(fp32_path), "ONNX file", {"exporter": onnx_cache[name]}

    sec.add("ort_fp32", "onnxruntime", b_ort_fp32)

    def b_ort_qdq():
        if not os.path.exists(qdq_path):
            try:
                from onnxruntime.quantization.shape_inference import quant_pre_process

                pre = os.path.join(tmp, f"{name}_pre.onnx")
                quant_pre_process(fp32_path, pre)
            except Exception:  # noqa: BLE001
                pre = fp32_path
            quantize_static(pre, qdq_path, CalibReader("x", calib), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax)
            if name == "resnet18":
                torch.save(x, os.path.join(tmp, f"{name}_b{batch}_x.pt"))
                artifacts["reload"].append({"name": f"{name} ORT static QDQ int8 .onnx", "kind": "onnx", "path": qdq_path, "input": f"{name}_b{batch}_x.pt", "expected_from": f"{sec.name}/ort_static_qdq_int8", "ref_model": name})
        s = ort_session(qdq_path, threads)
        return (lambda: s.run(None, {"x": xn})[0]), file_bytes(qdq_path), "ONNX file", {}

    sec.add("ort_static_qdq_int8", "onnxruntime", b_ort_qdq, note="quantize_static QDQ, U8 act / S8 weight, per_channel=True, MinMax")
    return sec


# --------------------------------------------------------------------------- reload check (fresh process)
def reload_check(d: str) -> dict:
    """Load each saved artifact in this (fresh) process; compare with the output the
    building process produced and time it vs a freshly built fp32 eager model."""
    man = json.load(open(os.path.join(d, "manifest.json")))
    torch.set_num_threads(man["threads"])
    res = []
    for item in man["items"]:
        r = {"name": item["name"], "kind": item["kind"], "path": os.path.basename(item["path"]), "ok": False}
        try:
            x = torch.load(os.path.join(d, item["input"]))
            expected = torch.load(os.path.join(d, item["expected"]))
            t = time.perf_counter()
            with torch.no_grad():
                if item["kind"] == "jit":
                    m = torch.jit.load(item["path"])
                    fn = lambda: m(x)  # noqa: E731
                    r["load_code"] = "torch.jit.load(path)"
                elif item["kind"] == "pt2":
                    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401  (registers quantized ops/passes)

                    ep = torch.export.load(item["path"])
                    m = ep.module()
                    r["load_code"] = "torch.export.load(path).module(); torch._inductor.config.freezing=True; torch.compile(m)"
                    if item.get("compile_freezing"):
                        import torch._inductor.config as icfg

                        icfg.freezing = True
                        m = torch.compile(m, dynamic=False)
                    fn = lambda: m(x)  # noqa: E731
                elif item["kind"] == "onnx":
                    s = ort_session(item["path"], man["threads"])
                    r["load_code"] = "onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])"
                    xn = to_np(x)
                    fn = lambda: s.run(None, {"x": xn})[0]  # noqa: E731
                elif item["kind"] == "torchao_sd":
                    import torchao  # noqa: F401

                    with torch.device("meta"):
                        m = build_mlp()
                    try:
                        sd = torch.load(item["path"], weights_only=True)
                        r["weights_only_load"] = True
                    except Exception as e:  # noqa: BLE001
                        r["weights_only_load"] = f"failed ({type(e).__name__}: {str(e)[:150]}); used weights_only=False"
                        sd = torch.load(item["path"], weights_only=False)
                    m.load_state_dict(sd, assign=True)
                    m.eval()
                    r["load_code"] = "with torch.device('meta'): m = build_mlp(); m.load_state_dict(torch.load(path, weights_only=True), assign=True); freezing=True; torch.compile(m)"
                    if item.get("compile_freezing"):
                        import torch._inductor.config as icfg

                        icfg.freezing = True
                        m = torch.compile(m, dynamic=False)
                    fn = lambda: m(x)  # noqa: E731
                from torch._dynamo.utils import counters

                counters.clear()
                out = torch.as_tensor(fn()).float()
                c = inductor_counters()
                if c:
                    r["inductor_counters"] = c
                r["load_plus_first_call_s"] = round(time.perf_counter() - t, 2)
                r["max_abs_diff_vs_building_process"] = (out - expected).abs().max().item()
                if item.get("ref_model"):
                    ref_model = prepare_cnn(item["ref_model"])[0]
                else:
                    torch.manual_seed(0)
                    ref_model = build_mlp()
                ref_out = ref_model(x)
                r["max_abs_err_vs_fp32"] = (out - ref_out).abs().max().item()
                ts = {"artifact": [], "fp32_eager_fresh_model": []}
                fns = {"artifact": fn, "fp32_eager_fresh_model": lambda: ref_model(x)}
                for f in fns.values():
                    f()
                for _ in range(5):
                    for k, f in fns.items():
                        for _ in range(3 if x.shape[0] == 1 or x.dim() == 2 else 1):
                            t1 = time.perf_counter()
                            f()
                            ts[k].append(time.perf_counter() - t1)
                r["median_ms"] = round(1e3 * statistics.median(ts["artifact"]), 3)
                r["fp32_eager_median_ms"] = round(1e3 * statistics.median(ts["fp32_eager_fresh_model"]), 3)
                r["speedup_vs_fp32_eager"] = round(r["fp32_eager_median_ms"] / r["median_ms"], 3)
                r["speedup_of_min"] = round(min(ts["fp32_eager_fresh_model"]) / min(ts["artifact"]), 3)
                r["ok"] = True
        except Exception as e:  # noqa: BLE001
            r["error"] = f"{type(e).__name__}: {str(e)[:500]}"
        res.append(r)
    return {"items": res}


# --------------------------------------------------------------------------- machine info
def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": sys.version.split()[0]}
    try:
        txt = open("/proc/cpuinfo").read()
        model = next((l.split(":", 1)[1].strip() for l in txt.splitlines() if l.startswith("model name")), None)
        flags = set(next((l.split(":", 1)[1].split() for l in txt.splitlines() if l.startswith("flags")), []))
        info["cpu_model"] = model
        for key in ("cpu family", "model", "stepping", "microcode", "cpu MHz", "cache size"):
            val = next((l.split(":", 1)[1].strip() for l in txt.splitlines() if l.split(":", 1)[0].strip() == key), None)
            info[key.replace(" ", "_")] = val
        info["cpu_flags_of_interest"] = sorted(f for f in flags if f in ("avx", "avx2", "fma", "f16c") or f.startswith(("avx512", "amx")) or "vnni" in f)
        info["has_avx512"] = any(f.startswith("avx512") for f in flags)
        info["has_vnni"] = any("vnni" in f for f in flags)
        info["has_amx"] = any(f.startswith("amx") for f in flags)
        info["logical_cpus"] = txt.count("processor\t:")
    except Exception as e:  # noqa: BLE001
        info["cpuinfo_error"] = str(e)
    info["os_cpu_count"] = os.cpu_count()
    try:
        info["sched_affinity"] = len(os.sched_getaffinity(0))
    except Exception:  # noqa: BLE001
        pass
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["quantized_engines"] = list(torch.backends.quantized.supported_engines)
    versions = {"torch": torch.__version__}
    for mod in ("torchao", "onnxruntime", "onnx", "onnxscript", "torch_pruning", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            versions[mod] = f"unavailable: {e}"
    info["versions"] = versions
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except Exception:  # noqa: BLE001
        pass
    return info


def fmt_table(sec: dict) -> str:
    rows = ["| variant | group | median ms | min ms | speed-up: median / paired / p25 / min | size MB | max abs err (rel) | build s |",
            "|---|---|---:|---:|---|---:|---:|---:|"]
    for v in sec["variants"]:
        if v["ok"] and "median_ms" in v:
            err = "" if "max_abs_err" not in v else f"{v['max_abs_err']:.1e} ({v['rel_err']:.1e})"
            sp = " / ".join(f"{v.get(k, float('nan')):.2f}" for k in ("speedup_vs_fp32_eager", "speedup_paired_median", "speedup_of_p25", "speedup_of_min"))
            rows.append(f"| {v['name']} | {v['group']} | {v['median_ms']:.2f} | {v['min_ms']:.2f} | {sp} | {v['size_bytes'] / 1e6:.1f} | {err} | {v['build_s']} |")
        else:
            rows.append(f"| {v['name']} | {v['group']} | FAILED: {v.get('error', '')[:150].replace('|', '/')} | | | | | {v.get('build_s', '')} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/results/quant_baselines.json")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's default)")
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds per section")
    ap.add_argument("--rounds-b32", type=int, default=4, help="interleaved rounds for CNN batch>1 sections")
    ap.add_argument("--target-s", type=float, default=0.1, help="approx. seconds per variant per round")
    ap.add_argument("--compile-limit", type=float, default=240.0, help="seconds allowed per build/compile")
    ap.add_argument("--cnn", default="resnet18:1,resnet18:32,mobilenet_v2:1", help="comma list name:batch ('' to skip)")
    ap.add_argument("--cnn-calib-batches", type=int, default=4)
    ap.add_argument("--skip-mlp", action="store_true")
    ap.add_argument("--skip-mlp-b1", action="store_true", help="skip the extra MLP batch-1 section")
    ap.add_argument("--budget-s", type=float, default=450.0, help="skip remaining CNN sections once this much time has elapsed")
    ap.add_argument("--skip-fp32-compile", action="store_true", help="CNN: skip fp32 torch.compile variants")
    ap.add_argument("--skip-reload-check", action="store_true")
    ap.add_argument("--keep-artifacts", action="store_true", help="keep the temp dir with the saved .pt2/.onnx/.ts artifacts (path in JSON)")
    ap.add_argument("--warm-cache", action="store_true", help="reuse the default inductor cache (compile times then not cold)")
    ap.add_argument("--reload-check", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.reload_check:
        print(json.dumps(reload_check(args.reload_check)))
        return

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    out: dict = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable.rsplit("/", 1)[-1]] + sys.argv),
        "cwd": os.getcwd(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch_num_threads": threads,
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TORCHINDUCTOR_CACHE_DIR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")},
        "machine": machine_info(),
        "method": ("all variants of a section are built first, then measured round-robin in the same process: "
                   f"{args.rounds} rounds ({args.rounds_b32} for CNN batch>1; order reversed every other round), each round = 1 untimed call + N timed calls per variant "
                   f"(N chosen so a round takes ~{args.target_s}s per variant; variants >4x slower than fp32 eager: 3 rounds x 1 call, no untimed call); "
                   "median over all timed calls; speed-up = fp32_eager median / variant median; "
                   "'paired' = median over rounds of (fp32 eager round median / variant round median). Inputs pre-built (numpy for ORT); torch runs under torch.no_grad()."),
        "sections": {},
    }
    tmp = tempfile.mkdtemp(prefix="qb_artifacts_")
    artifacts: dict = {"reload": []}
    onnx_cache: dict = {}
    sections: list[Section] = []

    with torch.no_grad():
        if not args.skip_mlp:
            sec = run_mlp(args, tmp, threads, artifacts)
            sec.measure(args.rounds, args.target_s, 50)
            # the weight-only / dynamic torchao winners as state_dict for the reload check
            try:
                for key, nm, frz in (("ao_wo", "mlp torchao Int8WeightOnly state_dict (+compile freezing at load)", True),):
                    p = os.path.join(tmp, f"mlp_{key}.pt")
                    torch.save(artifacts[key].state_dict(), p)
                    artifacts["reload"].append({"name": nm, "kind": "torchao_sd", "path": p, "input": "mlp_x.pt", "expected_from": "mlp_b32/torchao_int8_weight_only_compile_freezing", "compile_freezing": frz})
                pp = os.path.join(tmp, "mlp_pt2e_static.pt2")
                pt2_bytes(artifacts["pt2e_static"], sec.x, pp)
                artifacts["reload"].append({"name": "mlp PT2E static -> .pt2 (+compile freezing at load)", "kind": "pt2", "path": pp, "input": "mlp_x.pt", "expected_from": "mlp_b32/pt2e_static_int8_compile_freezing", "compile_freezing": True})
                artifacts["reload"].append({"name": "mlp ORT dynamic int8 (s8 weights) .onnx", "kind": "onnx", "path": os.path.join(tmp, "_dyn_s8.onnx"), "input": "mlp_x.pt", "expected_from": "mlp_b32/ort_dynamic_int8_ws8"})
                artifacts["reload"].append({"name": "mlp ORT static QDQ int8 .onnx", "kind": "onnx", "path": os.path.join(tmp, "_static_qdq.onnx"), "input": "mlp_x.pt", "expected_from": "mlp_b32/ort_static_qdq_int8"})
            except Exception as e:  # noqa: BLE001
                out.setdefault("reload_check_setup_errors", []).append(f"{type(e).__name__}: {e}")
            sections.append(sec)
            # save expected outputs for the reload check
            for it in artifacts["reload"]:
                if it.get("expected_from", "").startswith("mlp_b32/") and "expected" not in it:
                    v = sec.get(it["expected_from"].split("/", 1)[1])
                    if v is not None:
                        it["expected"] = it["expected_from"].replace("/", "__") + ".pt"
                        torch.save(torch.as_tensor(v["_fn"]()).float(), os.path.join(tmp, it["expected"]))
            out["sections"][sec.name] = sec.result()
            sec.drop_fns()
            for k in [k for k in artifacts if k != "reload"]:
                del artifacts[k]
            gc.collect()
            _write(args.out, out)
            if not args.skip_mlp_b1:
                sec = run_mlp_b1(args, tmp, threads)
                sec.measure(args.rounds, args.target_s, 200)
                out["sections"][sec.name] = sec.result()
                sec.drop_fns()
                gc.collect()
                _write(args.out, out)
        for spec in [s for s in args.cnn.split(",") if s.strip()]:
            name, b = spec.split(":")
            if time.time() - T0 > args.budget_s:
                out.setdefault("skipped_sections", []).append(f"{name}_b{b}: skipped, elapsed {time.time() - T0:.0f}s > --budget-s {args.budget_s}")
                log(out["skipped_sections"][-1])
                continue
            sec = run_cnn(args, tmp, threads, name, int(b), artifacts, onnx_cache)
            sec.measure(args.rounds if int(b) == 1 else args.rounds_b32, args.target_s, 30)
            for it in artifacts["reload"]:
                if it.get("expected_from", "").startswith(sec.name + "/") and "expected" not in it:
                    v = sec.get(it["expected_from"].split("/", 1)[1])
                    if v is not None:
                        it["expected"] = it["expected_from"].replace("/", "__") + ".pt"
                        torch.save(torch.as_tensor(v["_fn"]()).float(), os.path.join(tmp, it["expected"]))
            out["sections"][sec.name] = sec.result()
            sec.drop_fns()
            for k in [k for k in artifacts if k != "reload"]:
                del artifacts[k]
            gc.collect()
            _write(args.out, out)

    # targets
    out["targets"] = targets(out["sections"])

    # fresh-process reload check
    if not args.skip_reload_check and artifacts["reload"]:
        items = [it for it in artifacts["reload"] if "expected" in it]
        json.dump({"threads": threads, "items": items}, open(os.path.join(tmp, "manifest.json"), "w"))
        log(f"reload check of {len(items)} artifacts in a fresh process")
        t = time.perf_counter()
        try:
            env = dict(os.environ)
            if not args.warm_cache:  # the fresh process also gets a cold inductor cache
                env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor_cache_reload")
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--reload-check", tmp], capture_output=True, text=True, timeout=600, env=env)
            out["reload_check"] = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr[-2000:]}
        except Exception as e:  # noqa: BLE001
            out["reload_check"] = {"error": f"{type(e).__name__}: {e}"}
        out["reload_check"]["wall_s"] = round(time.perf_counter() - t, 1)
    if args.keep_artifacts:
        out["artifacts_dir"] = tmp
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if os.environ.get("TORCHINDUCTOR_CACHE_DIR", "").startswith(tempfile.gettempdir() + "/qb_inductor_"):
            shutil.rmtree(os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)
    out["total_runtime_s"] = round(time.time() - T0, 1)
    out["loadavg_at_end"] = os.getloadavg()
    _write(args.out, out)
    for name, s in out["sections"].items():
        print(f"\n## {name}\n{s['description']}\n\n{fmt_table(s)}")
    print("\ntargets:", json.dumps(out["targets"], indent=1))
    if "reload_check" in out:
        print("reload check:", json.dumps(out["reload_check"], indent=1))
    log("done")


def targets(sections: dict) -> dict:
    def best(sec, pred):
        s = sections.get(sec)
        if not s:
            return None
        c = [v for v in s["variants"] if v["ok"] and "speedup_vs_fp32_eager" in v and pred(v)]
        if not c:
            return None
        b = max(c, key=lambda v: v["speedup_vs_fp32_eager"])
        return {"variant": b["name"], "speedup": b["speedup_vs_fp32_eager"], "paired": b.get("speedup_paired_median")}

    is_int8 = lambda v: ("int8" in v["name"] or "quantize_dynamic" in v["name"]) and not v["name"].startswith("pruned")  # noqa: E731
    t = {}
    b = best("mlp_b32", is_int8)
    t["mlp_best_int8_ge_5x"] = {"best": b, "met": bool(b and b["speedup"] >= 5)}
    b = best("mlp_b32", lambda v: v["name"].startswith("pruned50_") and ("int8" in v["name"] or "quantize_dynamic" in v["name"]))
    t["mlp_pruned50_plus_int8_ge_7x"] = {"best": b, "met": bool(b and b["speedup"] >= 7)}
    for sec in sections:
        if sec.startswith(("resnet", "mobilenet")):
            b = best(sec, lambda v: "int8" in v["name"])
            t[f"{sec}_static_int8_ge_2.5x"] = {"best": b, "met": bool(b and b["speedup"] >= 2.5)}
    return t


def _write(path, obj):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=str)


if __name__ == "__main__":
    main()
