"""The human report of a job: one self-contained HTML page rendered from metrics.json.

No external assets, no JavaScript: the plots are inline SVG drawn here (shapes from numbers, every
label escaped, so their output is marked safe); the page itself is ``templates/report.html``, with
autoescape, so every value from the job record or the metrics is text. torch-free (the API renders
it on request).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from markupsafe import Markup

from service.templating import render

BEFORE, AFTER = "#8da0cb", "#e78a4e"
FIDELITY_CAUTION = 0.99  # output cosine below this earns a caution in the report (the verdict is unchanged)
MAX_LAYERS = 40  # the chart shows the largest layers; the table lists all

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}
h1{font-size:1.4rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0} td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left} .muted{color:#666} code{background:#f4f4f4;padding:0 .2rem}
.verdict{padding:.6rem 1rem;border-radius:6px;margin:1rem 0} .good{background:#e8f5e9} .warn{background:#fff4e5}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
svg text{font:11px system-ui,sans-serif}
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return str(n)


def _h2(text: str) -> dict:
    return {"kind": "h2", "text": text}


def _table(head: tuple[str, ...], rows: list) -> dict:
    return {"kind": "table", "head": head, "rows": rows}


def _note(text: str) -> dict:
    return {"kind": "note", "text": text}


def _svg(markup: Markup) -> dict:
    return {"kind": "svg", "svg": markup}


LEGEND = {"kind": "legend"}


def bar_chart(title: str, labels: list[str], series: list[tuple[str, str, list[float]]], unit: str,
              fmt=lambda v: f"{v:,.3g}") -> Markup:
    """Horizontal grouped bars: one group per label, one bar per series (name, colour, values)."""
    bar_h, gap, label_w, plot_w, value_w = 12, 10, 220, 560, 90
    group_h = bar_h * len(series) + gap
    height = 30 + group_h * len(labels) + 10
    top = max([v for _, _, values in series for v in values if v is not None] + [1e-12])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + plot_w + value_w}" '
             f'height="{height}" viewBox="0 0 {label_w + plot_w + value_w} {height}">',
             f"<title>{escape(title)}</title>",
             f'<text x="0" y="14" font-weight="bold">{escape(title)} ({escape(unit)})</text>']
    for g, label in enumerate(labels):
        y0 = 30 + g * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + bar_h * len(series) / 2 + 4}" text-anchor="end">{escape(label[:34])}</text>')
        for s, (name, colour, values) in enumerate(series):
            value = values[g]
            if value is None:
                continue
            w = max(1.0, plot_w * value / top)
            y = y0 + s * bar_h
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}">'
                         f"<title>{escape(name)}: {escape(fmt(value))} {escape(unit)}</title></rect>")
            parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}">{escape(fmt(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def layer_chart(before: list[dict], after: list[dict]) -> Markup:
    after_by_name = {row["name"]: row for row in after}
    rows = sorted(before, key=lambda r: -r["bytes"])[:MAX_LAYERS]
    labels = [f"{r['name']} ({r['type']})" for r in rows]
    size = bar_chart("Layer size", labels, [
        ("before", BEFORE, [r["bytes"] / 1000 for r in rows]),
        ("after", AFTER, [after_by_name[r["name"]]["bytes"] / 1000 if r["name"] in after_by_name else None for r in rows]),
    ], "KB")
    sparsity = bar_chart("Layer sparsity", labels, [
        ("before", BEFORE, [r["sparsity"] * 100 for r in rows]),
        ("after", AFTER, [after_by_name[r["name"]]["sparsity"] * 100 if r["name"] in after_by_name else None for r in rows]),
    ], "% zeros", fmt=lambda v: f"{v:.1f}")
    note = Markup(f'<p class="muted">The {MAX_LAYERS} largest of {len(before)} layers.</p>') if len(before) > MAX_LAYERS else ""
    return size + sparsity + note


def latency_chart(before: list[dict], after: list[dict]) -> Markup:
    labels = [f"batch {b['batch_size']}" for b in before]
    return bar_chart("Latency p50 by batch size", labels, [
        ("before", BEFORE, [b["p50"] for b in before]),
        ("after", AFTER, [a["p50"] for a in after]),
    ], "ms", fmt=lambda v: f"{v:.3f}")


def macs_chart(before: dict, after: dict) -> Markup:
    return bar_chart("Multiply-accumulates per forward pass", ["MACs"], [
        ("before", BEFORE, [before["macs"] / 1e6]),
        ("after", AFTER, [after["macs"] / 1e6]),
    ], "millions", fmt=lambda v: f"{v:,.4g}")


PARETO, OTHER, CHOSEN = "#1b7837", "#bbbbbb", "#d6604d"


def pareto_chart(candidates: list[dict]) -> Markup:
    """Accuracy against file size, one dot per candidate; the Pareto front joined and highlighted."""
    points = [c for c in candidates if c.get("accuracy") is not None and c.get("file_bytes") and not c.get("error")]
    if not points:
        return Markup('<p class="muted">No candidate has both an accuracy and a size to plot.</p>')
    left, top_pad, plot_w, plot_h, right = 70, 30, 600, 300, 200
    width, height = left + plot_w + right, top_pad + plot_h + 45
    xs, ys = [c["file_bytes"] / 1000 for c in points], [c["accuracy"] * 100 for c in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    x_pad, y_pad = (x_hi - x_lo) * 0.05 or max(x_hi * 0.05, 1.0), (y_hi - y_lo) * 0.08 or 0.5
    x_lo, x_hi, y_lo, y_hi = max(0.0, x_lo - x_pad), x_hi + x_pad, y_lo - y_pad, y_hi + y_pad

    def px(x: float) -> float:
        return left + plot_w * (x - x_lo) / (x_hi - x_lo)

    def py(y: float) -> float:
        return top_pad + plot_h * (1 - (y - y_lo) / (y_hi - y_lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="pareto" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>Accuracy against size</title>',
             '<text x="0" y="14" font-weight="bold">Accuracy against size (Pareto front highlighted)</text>',
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
             f'<text x="{left + plot_w / 2}" y="{height - 5}" text-anchor="middle">file size (KB)</text>',
             f'<text x="14" y="{top_pad + plot_h / 2}" text-anchor="middle" transform="rotate(-90 14 {top_pad + plot_h / 2})">accuracy (%)</text>']
    for i in range(5):
        xv, yv = x_lo + (x_hi - x_lo) * i / 4, y_lo + (y_hi - y_lo) * i / 4
        parts.append(f'<text x="{px(xv):.1f}" y="{top_pad + plot_h + 15}" text-anchor="middle">{xv:,.0f}</text>')
        parts.append(f'<text x="{left - 5}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.1f}</text>')
    front = sorted((c for c in points if c.get("pareto")), key=lambda c: c["file_bytes"])
    if len(front) > 1:
        path = " ".join(f"{px(c['file_bytes'] / 1000):.1f},{py(c['accuracy'] * 100):.1f}" for c in front)
        parts.append(f'<polyline class="front" points="{path}" fill="none" stroke="{PARETO}" stroke-width="2"/>')
    for c in sorted(points, key=lambda c: bool(c.get("pareto"))):  # front drawn last, on top
        colour = CHOSEN if c.get("chosen") else PARETO if c.get("pareto") else OTHER
        r = 7 if c.get("chosen") else 5
        x, y = px(c["file_bytes"] / 1000), py(c["accuracy"] * 100)
        tip = (f"{c['label']}: {_bytes(c['file_bytes'])}, accuracy {c['accuracy']:.2%}"
               + (", on the Pareto front" if c.get("pareto") else "") + (", chosen" if c.get("chosen") else "")
               + ("" if c.get("meets_goal") else ", misses the goal"))
        parts.append(f'<circle class="{"pareto" if c.get("pareto") else "candidate"}" cx="{x:.1f}" cy="{y:.1f}" r="{r}" '
                     f'fill="{colour}" stroke="#333" stroke-width="{1.5 if c.get("meets_goal") else 0.5}">'
                     f"<title>{escape(tip)}</title></circle>")
        if c.get("pareto") or c.get("chosen"):
            parts.append(f'<text x="{x + 8:.1f}" y="{y - 6:.1f}">{escape(c["label"][:28])}</text>')
    legend_y = top_pad + 10
    for i, (name, colour) in enumerate((("Pareto front", PARETO), ("chosen", CHOSEN), ("dominated", OTHER))):
        y = legend_y + 18 * i
        parts.append(f'<circle cx="{left + plot_w + 20}" cy="{y}" r="5" fill="{colour}"/>'
                     f'<text x="{left + plot_w + 30}" y="{y + 4}">{name}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sensitivity_chart(sensitivity: dict) -> Markup:
    layers = sorted(sensitivity.get("layers", []), key=lambda r: -r["delta"])[:MAX_LAYERS]
    labels = [f"{r['name']} ({r['type']})" for r in layers]
    return bar_chart(f"Per-layer sensitivity: {sensitivity.get('metric', 'metric')} drop when only that layer is "
                     f"{'quantized' if sensitivity.get('kind') == 'quantize' else 'pruned'}", labels,
                     [("drop", AFTER, [max(0.0, r["delta"]) for r in layers])], str(sensitivity.get("metric", "")),
                     fmt=lambda v: f"{v:.4g}")


def _candidates_table(candidates: list[dict]) -> dict:
    rows = []
    for c in candidates:
        flags = ", ".join(w for w, on in (("chosen", c.get("chosen")), ("Pareto", c.get("pareto")), ("meets goal", c.get("meets_goal"))) if on)
        rows.append((c["label"], " → ".join(c.get("steps", [])), _bytes(c.get("file_bytes")),
                     _num(c.get("accuracy"), 4), _num(c.get("accuracy_drop"), 4), _num(c.get("latency_ms"), 3),
                     f"{c['speedup']:.2f}x" if c.get("speedup") else "–", flags if not c.get("error") else f"error: {c['error']}",
                     f"{c.get('seconds', 0):.1f}"))
    return _table(("candidate", "steps", "size", "accuracy", "drop", "latency ms", "speedup", "", "seconds"), rows)


def _ci(interval: list[float] | None, pct: bool = True) -> str:
    if not interval:
        return ""
    lo, hi = interval
    return f" (95% CI {lo:.1%} to {hi:.1%})" if pct else f" (95% CI {lo:.4g} to {hi:.4g})"


def _cautions(metrics: dict[str, Any]) -> list[str]:
    v, f = metrics["verdict"], metrics["fidelity"]
    cautions = list(v.get("warnings", []))
    if f["cosine_similarity"] < FIDELITY_CAUTION and not any(w.startswith("outputs differ") for w in cautions):
        cautions.append(f"the outputs differ noticeably from the original's (cosine {f['cosine_similarity']:.4f} on "
                        f"{f.get('inputs', 'the comparison inputs')}); check accuracy on real data before using it")
    return cautions


def _headline(metrics: dict[str, Any]) -> str:
    v, f = metrics["verdict"], metrics["fidelity"]
    simulated = " — simulated only, no real low-precision kernel ran" if v.get("simulated_only") else ""
    return (f"{v['size_ratio']:.2f}x {'smaller' if v['smaller'] else 'size (not smaller)'}"
            + (f", {v['speedup']:.2f}x speed ({'faster' if v.get('faster') else 'not faster'}{simulated})" if v.get("speedup") else "")
            + f", output cosine {f['cosine_similarity']:.4f}")


def _summary_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    b, a, v, f = metrics["before"], metrics["after"], metrics["verdict"], metrics["fidelity"]
    rows = [
        ("file size", _bytes(b["file_bytes"]), _bytes(a["file_bytes"]), f"{v['size_ratio']:.2f}x smaller" if v["smaller"] else f"{v['size_ratio']:.2f}x (not smaller)"),
        ("parameter bytes", _bytes(b["parameter_bytes"]), _bytes(a["parameter_bytes"]), ""),
        ("parameters", _num(b["parameters"]), _num(a["parameters"]), ""),
        ("nonzero parameters", _num(b["nonzero_parameters"]), _num(a["nonzero_parameters"]), f"sparsity {a['sparsity']:.1%}"),
        ("dtypes", ", ".join(b.get("dtypes", {})), ", ".join(a.get("dtypes", {})), ""),
    ]
    if (b.get("macs") or {}).get("macs") and (a.get("macs") or {}).get("macs"):
        rows.append(("MACs per forward pass", _num(b["macs"]["macs"]), _num(a["macs"]["macs"]),
                     f"{b['macs']['macs'] / a['macs']['macs']:.2f}x fewer" if a["macs"]["macs"] < b["macs"]["macs"] else "no fewer"))
    if b.get("latency_ms") and a.get("latency_ms"):
        lb, la = b["latency_ms"], a["latency_ms"]
        rows.append((f"latency p50 (batch {lb['batch_size']}, {lb['threads']} thread(s))", f"{lb['p50']:.3f} ms",
                     f"{la['p50']:.3f} ms ({la['runtime']})", f"{v.get('speedup', 0):.2f}x"))
        if "p99" in lb and "p99" in la:
            rows.append(("latency p99", f"{lb['p99']:.3f} ms", f"{la['p99']:.3f} ms", ""))
            rows.append(("throughput", f"{lb['throughput']:,.0f} samples/s", f"{la['throughput']:,.0f} samples/s", ""))
    mb, ma = b.get("memory") or {}, a.get("memory") or {}
    if mb.get("rss_peak_growth_bytes") is not None and ma.get("rss_peak_growth_bytes") is not None:
        rows.append(("peak RSS growth (load + run)", _bytes(mb["rss_peak_growth_bytes"]), _bytes(ma["rss_peak_growth_bytes"]), ""))
    if mb.get("cuda_forward_peak_bytes") is not None:
        rows.append(("CUDA model / forward peak", f"{_bytes(mb.get('cuda_model_bytes'))} / {_bytes(mb['cuda_forward_peak_bytes'])}",
                     f"{_bytes(ma.get('cuda_model_bytes'))} / {_bytes(ma.get('cuda_forward_peak_bytes'))}", ""))
    q = metrics.get("quality")
    if q and q.get("metric", "top1_accuracy") == "top1_accuracy":
        rows.append((f"top-1 accuracy ({q['count']} labelled eval items)",
                     f"{q['top1_accuracy_before']:.2%}{_ci(q.get('accuracy_before_ci95'))}",
                     f"{q['top1_accuracy_after']:.2%}{_ci(q.get('accuracy_after_ci95'))}",
                     f"drop {q['accuracy_drop'] * 100:.2f} points{_ci_points(q.get('accuracy_drop_ci95'))}"))
    elif q and q.get("metric") == "mse":
        rows.append((f"MSE ({q['count']} eval items with float targets)", f"{q['mse_before']:.4g}{_ci(q.get('mse_before_ci95'), False)}",
                     f"{q['mse_after']:.4g}{_ci(q.get('mse_after_ci95'), False)}",
                     f"+{q['mse_increase']:.4g}{_ci(q.get('mse_increase_ci95'), False)}"))
    rows.append(("output cosine vs original", "1.0", _num(f["cosine_similarity"], 4), ""))
    if f.get("top1_agreement") is not None:
        rows.append(("top-1 agreement", "100%", f"{f['top1_agreement']:.1%}", ""))
    rows.append(("max abs output difference", "0", _num(f["max_abs_diff"], 5), ""))
    return rows


def _ci_points(interval: list[float] | None) -> str:
    if not interval:
        return ""
    lo, hi = interval
    return f" (95% CI {lo * 100:.2f} to {hi * 100:.2f} points)"


def _layer_blocks(b: dict, a: dict) -> list[dict]:
    after_by_name = {row["name"]: row for row in a.get("layers", [])}
    rows = []
    for row in b["layers"]:
        other = after_by_name.get(row["name"], {})
        rows.append((row["name"], row["type"] + (f" → {other['type']}" if other.get("type") not in (None, row["type"]) else ""),
                     "×".join(map(str, row["shape"])), row["dtype"] + (f" → {other['dtype']}" if other.get("dtype") not in (None, row["dtype"]) else ""),
                     f"{row['sparsity']:.1%} → {other['sparsity']:.1%}" if other else f"{row['sparsity']:.1%}",
                     f"{_bytes(row['bytes'])} → {_bytes(other['bytes'])}" if other else _bytes(row["bytes"])))
    return [_h2("Layers"), LEGEND, _svg(layer_chart(b["layers"], a.get("layers", []))),
            _table(("layer", "type", "shape", "dtype", "sparsity", "bytes"), rows)]


def _latency_blocks(b: dict, a: dict, v: dict) -> list[dict]:
    def pcts(x: dict) -> str:
        return " / ".join(f"{x[k]:.3f}" for k in ("p50", "p90", "p99") if k in x)

    lb = b["latency"][0]
    blocks = [_h2("Latency"), LEGEND, _svg(latency_chart(b["latency"], a["latency"])),
              _table(("batch", "before p50 / p90 / p99 ms", "after p50 / p90 / p99 ms", "throughput before → after (samples/s)", "speedup"),
                     [(str(x["batch_size"]), pcts(x), pcts(y),
                       f"{x['throughput']:,.0f} → {y['throughput']:,.0f}" if "throughput" in x and "throughput" in y else "–",
                       f"{x['p50'] / y['p50']:.2f}x" if y["p50"] else "–") for x, y in zip(b["latency"], a["latency"])]),
              _note(f'{lb.get("runs")} timed runs after {lb.get("warmup")} warm-up calls, {lb.get("threads")} thread(s), '
                    f'on {lb.get("hardware") or lb.get("device") or "?"}; after: {a["latency"][0].get("runtime")}. {lb.get("method", "")}')]
    if v.get("simulated_only"):
        blocks.append({"kind": "box", "tone": "warn", "title": "Simulated only", "code": "", "text": "; ".join(v.get("simulated_reasons", []))})
    return blocks


def _provenance_rows(p: dict) -> list:
    cpu = p.get("cpu", {})
    flags = ", ".join(k for k, on in cpu.get("flags", {}).items() if on) or "none of avx2/avx512/vnni/amx"
    gpu = p.get("gpu")
    return [
        ("modelpress / torch / python", f"{p.get('modelpress')} / {p.get('torch')} / {p.get('python')}"),
        ("CPU", f"{cpu.get('model', '?')} ({p.get('machine')}, {cpu.get('logical_cpus')} logical CPUs)"),
        ("CPU flags", flags),
        ("torch CPU capability / int8 engine", f"{p.get('cpu_capability')} / {p.get('quantized_engine')}"),
        ("device / seed", f"{p.get('device')} / {p.get('seed')}"),
        ("GPU", f"{gpu.get('name')} (compute capability {gpu.get('capability')}, CUDA {gpu.get('cuda')})" if gpu else "none"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in (p.get("libraries") or {}).items())),
        *[(f"sha256 of {name}", {"code": str(digest)}) for name, digest in (p.get("input_sha256") or {}).items()],
    ]


def _blocks(metrics: dict[str, Any], links: dict[str, str]) -> list[dict]:
    b, a, v, f = metrics["before"], metrics["after"], metrics["verdict"], metrics["fidelity"]
    blocks = [_h2("Summary"), _table(("", "before", "after", "change"), _summary_rows(metrics)), _note(f"Fidelity: {f.get('inputs', '')}.")]
    if b.get("layers"):
        blocks += _layer_blocks(b, a)
    if b.get("latency") and a.get("latency"):
        blocks += _latency_blocks(b, a, v)
    if (b.get("macs") or {}).get("macs") and (a.get("macs") or {}).get("macs"):
        blocks += [_h2("Compute"), LEGEND, _svg(macs_chart(b["macs"], a["macs"])),
                   _note(f'For input shape {b["macs"].get("input_shape")}; {a["macs"].get("method", "")}. {a["macs"].get("note") or ""}')]
    mb, ma = b.get("memory") or {}, a.get("memory") or {}
    if mb.get("method"):
        blocks += [_h2("Memory"), _note(f"{mb['method']}." + (f" Before: {mb['note']}." if mb.get("note") else "")
                                        + (f" After: {ma['note']}." if ma.get("note") else ""))]
    if metrics.get("candidates"):
        goal = metrics.get("goal") or {}
        blocks.append(_h2("Candidates"))
        if goal:
            blocks.append({"kind": "box", "tone": "good" if goal.get("met") else "warn", "title": f"Goal {'met' if goal.get('met') else 'not met'}",
                           "code": json.dumps(goal.get("spec"), sort_keys=True),
                           "text": f" — {goal['diagnosis']}" if goal.get("diagnosis") else ""})
        blocks += [_svg(pareto_chart(metrics["candidates"])), _candidates_table(metrics["candidates"])]
    if (metrics.get("sensitivity") or {}).get("layers"):
        blocks += [_h2("Sensitivity"), _svg(sensitivity_chart(metrics["sensitivity"])),
                   _note("Each bar: how much the metric drops when only that layer is compressed; "
                         "the tallest bars are the layers to keep at higher precision or density.")]
    blocks += [_h2("Steps"), _table(("#", "step", "seconds"), [(str(s["step"] + 1), s["label"], f"{s['seconds']:.2f}") for s in metrics.get("steps", [])])]
    if metrics.get("notes"):
        blocks.append({"kind": "list", "items": metrics["notes"]})
    if metrics.get("training"):
        blocks += [_h2("Training"), _table(
            ("step", "objective", "samples", "epochs", "loss per epoch", "seconds", "stopped early"),
            [(t["step"], t["objective"] + (f"; student {t['student']}" if t.get("student") else "")
              + (f"; lr schedule {t['schedule']}" if t.get("schedule") else ""), _num(t["samples"]), f"{t['epochs_completed']} / {t['epochs']}",
              ", ".join(f"{x:.4f}" for x in t["epoch_loss"]), f"{t['seconds']:.2f}", t.get("stopped_early") or "no")
             for t in metrics["training"]],
        )]
    artifacts = [({"href": links.get(name, name), "text": name}, info["format"], _bytes(info["bytes"]),
                  (f"{info['size_ratio']:.2f}x {'smaller' if info.get('smaller') else '(not smaller)'}" if info.get("size_ratio") else "–"),
                  "yes" if info.get("measured") else "")
                 for name, info in metrics.get("artifacts", {}).items()]
    blocks += [_h2("Artifacts"), _table(("file", "format", "size", "vs upload", "measured"), artifacts)]
    if links.get("metrics"):
        blocks.append({"kind": "link", "href": links["metrics"], "text": "metrics.json"})
    blocks += [_h2("Provenance"), _table(("", ""), _provenance_rows(metrics.get("provenance", {})))]
    return blocks


def render_report(job: dict[str, Any], metrics: dict[str, Any], links: dict[str, str] | None = None) -> str:
    """``job``: the job record as JSON (id, state, spec, artifacts, times); ``metrics``: metrics.json."""
    v = metrics["verdict"]
    cautions = _cautions(metrics)
    ok = bool(v.get("smaller") and v.get("faster") is not False and not cautions)
    return render("report.html", css=Markup(CSS), job_id=job["id"], state=job["state"], created=str(job.get("created_at", "")),
                  finished=str(job.get("finished_at") or ""), schema=str(metrics.get("schema", "?")), ok=ok,
                  headline=_headline(metrics), cautions=cautions, blocks=_blocks(metrics, links or {}),
                  before_colour=BEFORE, after_colour=AFTER)
