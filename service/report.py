"""The human report of a job: one self-contained HTML page rendered from metrics.json.

No external assets, no JavaScript: the plots are inline SVG drawn here. torch-free (the API
renders it on request); every value from the metrics is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable

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
    return escape(str(value))


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.2f} {unit}"
        n /= 1000
    return str(n)


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(title: str, labels: list[str], series: list[tuple[str, str, list[float]]], unit: str,
              fmt=lambda v: f"{v:,.3g}") -> str:
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
    return "".join(parts)


def _legend() -> str:
    return f'<div class="legend muted"><span style="background:{BEFORE}"></span>before<span style="background:{AFTER}"></span>after</div>'


def layer_chart(before: list[dict], after: list[dict]) -> str:
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
    note = f'<p class="muted">The {MAX_LAYERS} largest of {len(before)} layers.</p>' if len(before) > MAX_LAYERS else ""
    return size + sparsity + note


def latency_chart(before: list[dict], after: list[dict]) -> str:
    labels = [f"batch {b['batch_size']}" for b in before]
    return bar_chart("Latency p50 by batch size", labels, [
        ("before", BEFORE, [b["p50"] for b in before]),
        ("after", AFTER, [a["p50"] for a in after]),
    ], "ms", fmt=lambda v: f"{v:.3f}")


def render_report(job: dict[str, Any], metrics: dict[str, Any], links: dict[str, str] | None = None) -> str:
    """``job``: the job record as JSON (id, state, spec, artifacts, times); ``metrics``: metrics.json."""
    b, a, v, f = metrics["before"], metrics["after"], metrics["verdict"], metrics["fidelity"]
    links = links or {}
    cautions = list(v.get("warnings", []))
    if f["cosine_similarity"] < FIDELITY_CAUTION:
        cautions.append(f"the outputs differ noticeably from the original's (cosine {f['cosine_similarity']:.4f} on "
                        f"{f.get('inputs', 'the comparison inputs')}); check accuracy on real data before using it")
    ok = v.get("smaller") and v.get("faster") is not False and not cautions
    headline = (f"{v['size_ratio']:.2f}x {'smaller' if v['smaller'] else 'size (not smaller)'}"
                + (f", {v['speedup']:.2f}x speed ({'faster' if v.get('faster') else 'not faster'})" if v.get("speedup") else "")
                + f", output cosine {f['cosine_similarity']:.4f}")
    warnings = "".join(f"<li>{escape(w)}</li>" for w in cautions)
    summary_rows = [
        ("file size", _bytes(b["file_bytes"]), _bytes(a["file_bytes"]), f"{v['size_ratio']:.2f}x smaller" if v["smaller"] else f"{v['size_ratio']:.2f}x (not smaller)"),
        ("parameter bytes", _bytes(b["parameter_bytes"]), _bytes(a["parameter_bytes"]), ""),
        ("parameters", _num(b["parameters"]), _num(a["parameters"]), ""),
        ("nonzero parameters", _num(b["nonzero_parameters"]), _num(a["nonzero_parameters"]), f"sparsity {a['sparsity']:.1%}"),
        ("dtypes", escape(", ".join(b.get("dtypes", {}))), escape(", ".join(a.get("dtypes", {}))), ""),
    ]
    if b.get("latency_ms") and a.get("latency_ms"):
        lb, la = b["latency_ms"], a["latency_ms"]
        summary_rows.append((f"latency p50 (batch {lb['batch_size']}, {lb['threads']} thread(s))", f"{lb['p50']:.3f} ms",
                             f"{la['p50']:.3f} ms ({escape(la['runtime'])})", f"{v.get('speedup', 0):.2f}x"))
    summary_rows.append(("output cosine vs original", "1.0", _num(f["cosine_similarity"], 4), ""))
    if f.get("top1_agreement") is not None:
        summary_rows.append(("top-1 agreement", "100%", f"{f['top1_agreement']:.1%}", ""))
    summary_rows.append(("max abs output difference", "0", _num(f["max_abs_diff"], 5), ""))

    sections = [
        f"<h1>modelpress report: <code>{escape(job['id'])}</code></h1>",
        f'<p class="muted">state {escape(job["state"])} · created {escape(str(job.get("created_at", "")))} · '
        f'finished {escape(str(job.get("finished_at") or ""))} · schema {escape(str(metrics.get("schema", "?")))}</p>',
        f'<div class="verdict {"good" if ok else "warn"}"><strong>Verdict:</strong> {escape(headline)}'
        + (f"<ul>{warnings}</ul>" if warnings else "") + "</div>",
        "<h2>Summary</h2>",
        _table(("", "before", "after", "change"), summary_rows),
        f'<p class="muted">Fidelity: {escape(str(f.get("inputs", "")))}.</p>',
    ]
    if b.get("layers"):
        sections += ["<h2>Layers</h2>", _legend(), layer_chart(b["layers"], a.get("layers", []))]
        after_by_name = {row["name"]: row for row in a.get("layers", [])}
        rows = []
        for row in b["layers"]:
            other = after_by_name.get(row["name"], {})
            rows.append((escape(row["name"]), escape(row["type"]) + (f" → {escape(other['type'])}" if other.get("type") not in (None, row["type"]) else ""),
                         escape("×".join(map(str, row["shape"]))), escape(row["dtype"]) + (f" → {escape(other['dtype'])}" if other.get("dtype") not in (None, row["dtype"]) else ""),
                         f"{row['sparsity']:.1%} → {other['sparsity']:.1%}" if other else f"{row['sparsity']:.1%}",
                         f"{_bytes(row['bytes'])} → {_bytes(other['bytes'])}" if other else _bytes(row["bytes"])))
        sections.append(_table(("layer", "type", "shape", "dtype", "sparsity", "bytes"), rows))
    if b.get("latency") and a.get("latency"):
        sections += ["<h2>Latency</h2>", _legend(), latency_chart(b["latency"], a["latency"]),
                     _table(("batch", "before p50 / p90 ms", "after p50 / p90 ms", "speedup"),
                            [(str(x["batch_size"]), f"{x['p50']:.3f} / {x['p90']:.3f}", f"{y['p50']:.3f} / {y['p90']:.3f}",
                              f"{x['p50'] / y['p50']:.2f}x" if y["p50"] else "–") for x, y in zip(b["latency"], a["latency"])])]
    sections += ["<h2>Steps</h2>", _table(("#", "step", "seconds"), [(str(s["step"] + 1), escape(s["label"]), f"{s['seconds']:.2f}") for s in metrics.get("steps", [])])]
    if metrics.get("notes"):
        sections.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in metrics["notes"]) + "</ul>")
    if metrics.get("training"):
        sections += ["<h2>Training</h2>", _table(
            ("step", "objective", "samples", "epochs", "loss per epoch", "seconds", "stopped early"),
            [(escape(t["step"]), escape(t["objective"]), _num(t["samples"]), f"{t['epochs_completed']} / {t['epochs']}",
              escape(", ".join(f"{x:.4f}" for x in t["epoch_loss"])), f"{t['seconds']:.2f}", escape(t.get("stopped_early") or "no"))
             for t in metrics["training"]],
        )]
    quality = metrics.get("quality")
    if quality:
        sections += ["<h2>Accuracy</h2>", _table(("", "before", "after", "drop"), [(
            f"top-1 on the {_num(quality['count'])} labelled {escape(str(quality.get('dataset', 'eval')))} inputs",
            f"{quality['top1_accuracy_before']:.2%}", f"{quality['top1_accuracy_after']:.2%}",
            f"{100 * quality['accuracy_drop']:+.2f} points")])]
    artifacts = [(f'<a href="{escape(links.get(name, name))}">{escape(name)}</a>', escape(info["format"]), _bytes(info["bytes"]))
                 for name, info in metrics.get("artifacts", {}).items()]
    sections += ["<h2>Artifacts</h2>", _table(("file", "format", "size"), artifacts)]
    if links.get("metrics"):
        sections.append(f'<p><a href="{escape(links["metrics"])}">metrics.json</a></p>')
    p = metrics.get("provenance", {})
    cpu = p.get("cpu", {})
    flags = ", ".join(k for k, on in cpu.get("flags", {}).items() if on) or "none of avx2/avx512/vnni/amx"
    sections += ["<h2>Provenance</h2>", _table(("", ""), [
        ("modelpress / torch / python", escape(f"{p.get('modelpress')} / {p.get('torch')} / {p.get('python')}")),
        ("CPU", escape(f"{cpu.get('model', '?')} ({p.get('machine')}, {cpu.get('logical_cpus')} logical CPUs)")),
        ("CPU flags", escape(flags)),
        ("torch CPU capability / int8 engine", escape(f"{p.get('cpu_capability')} / {p.get('quantized_engine')}")),
        ("device / seed", escape(f"{p.get('device')} / {p.get('seed')}")),
        ("input sha256", escape(str(p.get("input_sha256", {}).get("model", "")))),
    ])]
    body = "\n".join(sections)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>modelpress report {escape(job['id'])}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
