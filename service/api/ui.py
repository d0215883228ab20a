"""The web dashboard: server-rendered HTML plus a little inline JavaScript, no build step.

`/ui` lists jobs (states refreshed live), with a submit form; `/ui/jobs/{id}` follows one job over
its event stream and links its report, metrics and downloads. Everything it shows comes from the
public API, so the dashboard can do nothing a client cannot.
"""

from __future__ import annotations

import json
from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service.api.deps import JobsDep
from service.domain.job import JobRecord

router = APIRouter(tags=["ui"], include_in_schema=False)

EXAMPLE_SPEC = {
    "model": {"format": "safetensors", "architecture": "mlp", "config": {"sizes": [784, 300, 100, 10]},
              "input": {"shape": [1, 784], "dtype": "float32"}},
    "steps": [{"method": "prune", "kind": "magnitude", "scope": "global", "amount": 0.9},
              {"method": "quantize", "kind": "dynamic_int8"}],
    "outputs": ["torchscript"],
}

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:1000px;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%} td,th{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left}
.state{font-weight:600} .succeeded{color:#2e7d32} .failed{color:#c62828} .running{color:#1565c0} .queued{color:#777}
.bar{background:#eee;height:10px;border-radius:5px;overflow:hidden;width:100%} .bar>div{background:#1565c0;height:100%}
textarea{width:100%;font:12px monospace} pre{background:#f6f6f6;padding:.5rem;max-height:300px;overflow:auto}
nav a{margin-right:1rem}
"""


def _page(title: str, body: str, script: str = "", body_attrs: str = "") -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body{body_attrs}><nav><a href=\"/ui\">jobs</a><a href=\"/docs\">API</a></nav>"
        f"{body}<script>{script}</script></body></html>"
    )


def _row(r: JobRecord) -> str:
    p = r.progress
    return (f'<tr data-id="{escape(r.id)}"><td><a href="/ui/jobs/{escape(r.id)}">{escape(r.id)}</a></td>'
            f'<td class="state {r.state.value}">{r.state.value}</td><td>{p.fraction:.0%} {escape(p.message)}</td>'
            f"<td>{escape(' → '.join(s.get('method', '?') for s in r.spec.get('steps', [])))}</td>"
            f"<td>{r.created_at:%Y-%m-%d %H:%M:%S}</td></tr>")


LIST_JS = """
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
async function refresh() {
  const page = await (await fetch('/jobs?limit=50')).json();
  document.getElementById('jobs').innerHTML = page.items.map(j =>
    `<tr data-id="${esc(j.id)}"><td><a href="/ui/jobs/${esc(j.id)}">${esc(j.id)}</a></td>` +
    `<td class="state ${esc(j.state)}">${esc(j.state)}</td><td>${Math.round(j.progress.fraction*100)}% ${esc(j.progress.message)}</td>` +
    `<td>${j.spec.steps.map(s => esc(s.method)).join(' → ')}</td><td>${esc(j.created_at.slice(0,19).replace('T',' '))}</td></tr>`).join('');
  document.getElementById('jobs').dataset.refreshed = new Date().toISOString();
}
setInterval(refresh, 2000);
// The spec editor: the step picker is filled from GET /capabilities; "add step" appends the chosen
// step with its schema's defaults to the spec's steps, which stay editable as JSON.
const specBox = document.getElementById('spec');
function editSpec(change) {
  const out = document.getElementById('result');
  let spec;
  try { spec = JSON.parse(specBox.value); } catch (e) { out.textContent = 'the spec is not valid JSON: ' + e.message; return; }
  change(spec); specBox.value = JSON.stringify(spec, null, 2); out.textContent = '';
}
function seededStep(cap) {
  const step = {method: cap.method, kind: cap.kind};
  for (const [name, prop] of Object.entries(cap.schema.properties || {})) {
    if (name in step || ['include', 'exclude', 'op_types'].includes(name)) continue;
    if (prop.default !== undefined && prop.default !== null) step[name] = prop.default;
    else if (name === 'amount') step[name] = 0.5;
  }
  return step;
}
fetch('/capabilities').then(r => r.json()).then(caps => {
  const picker = document.getElementById('step-kind');
  const byKey = {};
  for (const cap of caps.methods) {
    const key = cap.method + ':' + cap.kind;
    byKey[key] = cap;
    const option = document.createElement('option');
    option.value = key; option.textContent = key + ' — ' + cap.description;
    picker.appendChild(option);
  }
  document.getElementById('add-step').addEventListener('click', () =>
    editSpec(spec => { spec.steps = (spec.steps || []).concat([seededStep(byKey[picker.value])]); }));
  document.getElementById('clear-steps').addEventListener('click', () => editSpec(spec => { spec.steps = []; }));
  picker.dataset.loaded = String(caps.methods.length);
});
document.getElementById('submit').addEventListener('submit', async ev => {
  ev.preventDefault();
  const out = document.getElementById('result');
  const form = new FormData(ev.target);
  for (const [name, value] of [...form.entries()]) {  // optional data files left empty are not sent
    if (value instanceof File && value.size === 0 && value.name === '') form.delete(name);
  }
  const response = await fetch('/jobs', {method: 'POST', body: form});
  const body = await response.json();
  if (response.ok) { window.location = '/ui/jobs/' + body.id; }
  else { out.textContent = body.detail + (body.errors ? '\\n' + JSON.stringify(body.errors, null, 2) : ''); }
});
"""


@router.get("/ui", response_class=HTMLResponse)
def ui_jobs(jobs: JobsDep) -> HTMLResponse:
    records, _ = jobs.list(limit=50)
    rows = "".join(_row(r) for r in records)
    body = f"""<h1>modelpress</h1>
<h2>Jobs</h2>
<table><thead><tr><th>job</th><th>state</th><th>progress</th><th>steps</th><th>created (UTC)</th></tr></thead>
<tbody id="jobs">{rows}</tbody></table>
<h2>Submit</h2>
<form id="submit"><p><label>model (safetensors state_dict or TorchScript) <input type="file" name="model" required></label></p>
<p><label>step <select id="step-kind"></select></label> <button type="button" id="add-step">add step</button>
<button type="button" id="clear-steps">clear steps</button></p>
<p><label>spec (JSON)<br><textarea id="spec" name="spec" rows="14">{escape(json.dumps(EXAMPLE_SPEC, indent=2))}</textarea></label></p>
<fieldset><legend>data (optional: .npz or safetensors with <code>inputs</code> and <code>labels</code>)</legend>
<p><label>calibration <input type="file" name="calibration"></label></p>
<p><label>train <input type="file" name="train"></label></p>
<p><label>eval (labels: accuracy with 95% intervals) <input type="file" name="eval"></label></p></fieldset>
<p><button type="submit" id="submit-button">submit</button></p><pre id="result"></pre></form>"""
    return _page("modelpress jobs", body, LIST_JS)


JOB_JS = """
const jobId = document.body.dataset.job;
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
function show(e) {
  const el = document.getElementById('state');
  el.textContent = e.state; el.className = 'state ' + e.state;
  document.getElementById('fill').style.width = Math.round(e.progress.fraction * 100) + '%';
  document.getElementById('message').textContent = Math.round(e.progress.fraction * 100) + '% ' + e.progress.phase + ': ' + e.progress.message;
}
const source = new EventSource('/jobs/' + jobId + '/events');
['state', 'progress'].forEach(t => source.addEventListener(t, m => show(JSON.parse(m.data))));
source.addEventListener('log', m => {
  const l = JSON.parse(m.data);
  document.getElementById('log').textContent += l.ts.slice(11, 19) + ' ' + l.level + ' ' + l.message + '\\n';
});
source.addEventListener('end', m => {
  const e = JSON.parse(m.data); show(e); source.close();
  document.body.dataset.stream = 'ended';
  if (e.state !== 'succeeded' || document.getElementById('done').dataset.loaded) return;
  fetch('/jobs/' + jobId).then(r => r.json()).then(job => {
    const links = Object.entries(job.links.artifacts).map(([n, u]) => `<li><a href="${esc(u)}">${esc(n)}</a></li>`).join('');
    document.getElementById('done').innerHTML = `<p><a href="${esc(job.links.report)}">report</a> · <a href="${esc(job.links.metrics)}">metrics.json</a> · <a href="${esc(job.links.report)}?download=true">download report</a></p><ul>${links}</ul>`;
  });
});
"""


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def ui_job(job_id: str, jobs: JobsDep) -> HTMLResponse:
    r = jobs.get(job_id)
    root = f"/jobs/{escape(r.id)}"
    done = ""
    if r.state.value == "succeeded":
        links = "".join(f'<li><a href="{root}/artifacts/{escape(a.name)}">{escape(a.name)}</a> ({a.bytes:,} bytes, sha256 {a.sha256[:12]}…)</li>'
                        for a in r.artifacts)
        summary = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in (r.summary or {}).items())
        done = (f'<p><a href="{root}/report">report</a> · <a href="{root}/metrics">metrics.json</a> · '
                f'<a href="{root}/report?download=true">download report</a></p><p>{summary}</p><ul>{links}</ul>')
    error = f"<pre>{escape(json.dumps(r.error, indent=2))}</pre>" if r.error else ""
    log_text = "".join(f"{escape(line['ts'][11:19])} {escape(line['level'])} {escape(line['message'])}\n" for line in jobs.logs(job_id))
    body = f"""<h1>job <code>{escape(r.id)}</code></h1>
<p>state <span id="state" class="state {r.state.value}">{r.state.value}</span></p>
<div class="bar"><div id="fill" style="width:{r.progress.fraction:.0%}"></div></div>
<p id="message">{r.progress.fraction:.0%} {escape(r.progress.phase)}: {escape(r.progress.message)}</p>
<div id="done"{' data-loaded="1"' if done else ''}>{done}</div>{error}
<h2>Spec</h2><pre>{escape(json.dumps(r.spec, indent=2))}</pre>
<h2>Log</h2><pre id="log">{log_text}</pre>"""
    return _page(f"modelpress {r.id}", body, JOB_JS, body_attrs=f' data-job="{escape(r.id)}"')
