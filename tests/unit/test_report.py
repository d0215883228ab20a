"""The HTML report: self-contained, escaped, with the plots as inline SVG."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from service.report import bar_chart, render_report


def layer(name, type_="Linear", dtype="float32", sparsity=0.0, nbytes=1000):
    return {"name": name, "type": type_, "shape": [10, 20], "dtype": dtype, "sparsity": sparsity, "bytes": nbytes}


def lat(batch, p50, runtime="eager"):
    return {"p50": p50, "p90": p50 * 1.2, "batch_size": batch, "threads": 1, "runs": 10, "warmup": 3, "runtime": runtime}


METRICS = {
    "schema": "modelpress.metrics/v1",
    "device": "cpu",
    "before": {"file_bytes": 1_070_000, "parameters": 266_610, "nonzero_parameters": 266_000, "sparsity": 0.002,
               "parameter_bytes": 1_066_440, "dtypes": {"float32": 266_610},
               "layers": [layer("0", nbytes=941_200), layer("<script>alert(1)</script>", nbytes=120_400)],
               "latency": [lat(1, 0.2), lat(32, 1.5)], "latency_ms": lat(1, 0.2)},
    "after": {"artifact": "model.torchscript.pt", "file_bytes": 280_000, "parameters": 266_610, "nonzero_parameters": 26_661,
              "sparsity": 0.9, "parameter_bytes": 270_000, "dtypes": {"qint8": 266_200, "float32": 410},
              "layers": [layer("0", "DynamicQuantizedLinear", "qint8", 0.9, 236_500), layer("<script>alert(1)</script>", nbytes=30_100)],
              "latency": [lat(1, 0.25, "torchscript"), lat(32, 0.9, "torchscript")], "latency_ms": lat(1, 0.25, "torchscript")},
    "artifacts": {"model.torchscript.pt": {"format": "torchscript", "bytes": 280_000}},
    "fidelity": {"samples": 64, "max_abs_diff": 0.3, "mean_abs_diff": 0.02, "cosine_similarity": 0.998,
                 "top1_agreement": 0.97, "inputs": "64 synthetic inputs"},
    "verdict": {"smaller": True, "size_ratio": 3.82, "runtime": "torchscript", "speedup": 0.8, "faster": False,
                "speedups": {"1": 0.8, "32": 1.67}, "warnings": ["not faster: the artifact ran at 0.80x"]},
    "steps": [{"step": 0, "label": "prune magnitude 90%", "seconds": 0.1}],
    "notes": ["prune: zeroed 90% of weights"],
    "provenance": {"modelpress": "0.1.0", "torch": "2.13.0", "python": "3.11", "machine": "x86_64", "cpu_capability": "AVX2",
                   "cpu": {"model": "Test CPU", "flags": {"avx2": True, "avx512": False, "vnni": False, "amx": False}},
                   "quantized_engine": "x86", "device": "cpu", "seed": 0, "spec": {}, "input_sha256": {"model": "ab"}},
}
JOB = {"id": "j_test", "state": "succeeded", "created_at": "2026-11-23T09:00:00Z", "finished_at": "2026-11-23T09:01:00Z"}


def test_report_is_self_contained_with_svg_plots():
    html = render_report(JOB, METRICS, {"model.torchscript.pt": "http://x/jobs/j_test/artifacts/model.torchscript.pt"})
    assert html.startswith("<!doctype html>")
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3  # layer size, layer sparsity, latency by batch size
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert "Latency p50 by batch size" in html and "batch 32" in html
    assert "<script" not in html and "&lt;script&gt;" in html  # escaped, and no JS at all
    assert not re.search(r"""(src|href)=["']?https?://(?!x/)""", html)  # no external assets
    assert "3.82x smaller" in html and "not faster: the artifact ran at 0.80x" in html
    assert "Test CPU" in html and "avx2" in html


def test_bar_chart_scales_to_the_largest_value():
    svg = bar_chart("t", ["a", "b"], [("s", "#000", [10.0, 5.0])], "ms")
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths[0] == 2 * widths[1]


def test_report_without_latency_has_no_latency_plot():
    metrics = {**METRICS, "before": {k: v for k, v in METRICS["before"].items() if not k.startswith("latency")},
               "after": {k: v for k, v in METRICS["after"].items() if not k.startswith("latency")},
               "verdict": {k: v for k, v in METRICS["verdict"].items() if k not in ("speedup", "faster", "speedups")}}
    html = render_report(JOB, metrics)
    assert "Latency p50" not in html and html.count("<svg") == 2


def test_low_fidelity_earns_a_caution_and_a_warning_box():
    assert 'class="verdict good"' not in render_report(JOB, METRICS)  # not faster: warn
    fine = {**METRICS, "verdict": {**METRICS["verdict"], "faster": True, "speedup": 1.3, "warnings": []}}
    assert 'class="verdict good"' in render_report(JOB, fine)
    poor = {**fine, "fidelity": {**METRICS["fidelity"], "cosine_similarity": 0.87}}
    html = render_report(JOB, poor)
    assert 'class="verdict warn"' in html and "the outputs differ noticeably" in html


def cand(label, kb, acc, pareto=False, chosen=False, meets=True, error=None):
    return {"label": label, "steps": ["prune magnitude 50%", "quantize dynamic_int8"], "file_bytes": kb * 1000,
            "latency_ms": 0.2, "accuracy": acc, "accuracy_drop": 0.95 - acc if acc is not None else None, "speedup": 1.2,
            "meets_goal": meets, "pareto": pareto, "chosen": chosen, "seconds": 1.5, "error": error}


# The goal-search / sensitivity contract (metrics["candidates"], ["goal"], ["sensitivity"]), synthetic values.
SEARCH = {
    "candidates": [cand("int8", 280, 0.95, pareto=True, chosen=True), cand("prune 50% + int8", 250, 0.93, pareto=True),
                   cand("prune 90% + int8", 120, 0.80, pareto=True, meets=False), cand("fp16", 540, 0.949),
                   cand("svd rank 32", 400, 0.90), cand("broken", 1, None, error="ValueError: x")],
    "goal": {"spec": {"max_accuracy_drop": 0.01}, "met": True, "diagnosis": None},
    "sensitivity": {"kind": "quantize", "metric": "top1_accuracy",
                    "layers": [{"name": "0", "type": "Linear", "delta": 0.002}, {"name": "2", "type": "Linear", "delta": 0.011},
                               {"name": "4", "type": "Linear", "delta": -0.001}]},
}

FULL = {
    **METRICS,
    "before": {**METRICS["before"], "macs": {"macs": 266_200, "input_shape": [1, 784], "method": "FlopCounterMode"},
               "memory": {"rss_peak_growth_bytes": 14_000_000, "method": "peak RSS growth (VmHWM)"},
               "latency": [dict(lat(1, 0.2), p99=0.4, mean=0.21, throughput=4761.9), dict(lat(32, 1.5), p99=2.0, mean=1.6, throughput=20000.0)]},
    "after": {**METRICS["after"], "macs": {"macs": 125_600, "input_shape": [1, 784], "method": "FlopCounterMode"},
              "memory": {"rss_peak_growth_bytes": 9_000_000, "method": "peak RSS growth (VmHWM)"},
              "latency": [dict(lat(1, 0.25, "eager"), p99=0.5, mean=0.26, throughput=3846.2), dict(lat(32, 0.9, "eager"), p99=1.1, mean=0.95, throughput=33684.2)]},
    "quality": {"dataset": "eval", "count": 360, "metric": "top1_accuracy", "method": "Wilson", "top1_accuracy_before": 0.95,
                "top1_accuracy_after": 0.94, "accuracy_before_ci95": [0.92, 0.97], "accuracy_after_ci95": [0.91, 0.96],
                "accuracy_drop": 0.01, "accuracy_drop_ci95": [0.0, 0.02], "mcnemar_p": 0.2},
    "verdict": {**METRICS["verdict"], "simulated_only": True, "simulated_reasons": ["quantize:weight_only_int8: dequantized"]},
    **SEARCH,
}


def svgs_of(html):
    found = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    return [ET.fromstring(svg) for svg in found]  # each well-formed


def test_report_plots_macs_pareto_front_and_sensitivity():
    html = render_report(JOB, FULL)
    titles = [svg.find("{http://www.w3.org/2000/svg}title").text for svg in svgs_of(html)]
    assert titles == ["Layer size", "Layer sparsity", "Latency p50 by batch size", "Multiply-accumulates per forward pass",
                      "Accuracy against size", "Per-layer sensitivity: top1_accuracy drop when only that layer is quantized"]
    pareto = svgs_of(html)[4]
    ns = "{http://www.w3.org/2000/svg}"
    on_front = [c for c in pareto.iter(ns + "circle") if c.get("class") == "pareto"]
    dominated = [c for c in pareto.iter(ns + "circle") if c.get("class") == "candidate"]
    assert len(on_front) == 3 and len(dominated) == 2  # the errored candidate is not plotted
    front = pareto.find(ns + "polyline").get("points").split()
    assert len(front) == 3 and [float(p.split(",")[0]) for p in front] == sorted(float(p.split(",")[0]) for p in front)
    sens_bars = [r for r in svgs_of(html)[5].iter(ns + "rect")]
    assert len(sens_bars) == 3 and float(sens_bars[0].get("width")) > float(sens_bars[1].get("width"))  # largest first
    assert "simulated only" in html and "95% CI 92.0% to 97.0%" in html and "p99" in html and "samples/s" in html
    assert "2.12x fewer" in html and "Goal met" in html and "error: ValueError: x" in html
    assert "<script" not in html


def test_pareto_chart_with_no_plottable_candidate():
    html = render_report(JOB, {**FULL, "candidates": [cand("x", 1, None, error="boom")]})
    assert "No candidate has both" in html
