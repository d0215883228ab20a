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
