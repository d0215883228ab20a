"""The web dashboard: server-rendered HTML plus a little inline JavaScript, no build step.

`/ui` lists jobs (states refreshed live), with a submit form; `/ui/jobs/{id}` follows one job over
its event stream and links its report, metrics and downloads. Everything it shows comes from the
public API, so the dashboard can do nothing a client cannot.

With auth on, the pages are shells: the browser keeps an API key in sessionStorage (typed into the
key field, or passed once as ``/ui#key=mp_...``; a fragment never reaches the server or its logs)
and the scripts send it as ``Authorization: Bearer``. With a key the event stream is read with
``fetch`` (an ``EventSource`` cannot send headers; without a key it is a plain ``EventSource``), and
downloads are fetched with the key, then saved as blobs.
"""

from __future__ import annotations

import json
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from service.api.access import unauthenticated_tenant
from modelpress_core.job import JobRecord
from modelpress_core.storage.jobs import JobRepository, TenantJobs

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


COMMON_JS = """
const KEY = 'modelpress-api-key';
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
(() => {  // /ui#key=mp_...: keep the key for this tab, then drop it from the address bar
  const m = location.hash.match(/[#&]key=([^&]+)/);
  if (m) { sessionStorage.setItem(KEY, decodeURIComponent(m[1])); history.replaceState(null, '', location.pathname + location.search); }
})();
function api(path, opts = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = {...(opts.headers || {}), ...(key ? {'Authorization': 'Bearer ' + key} : {})};
  return fetch(path, {...opts, headers});
}
async function stream(path, on) {  // Server-Sent Events; over fetch when there is a key to send in a header
  if (!sessionStorage.getItem(KEY)) {  // no key (auth off): a plain EventSource
    const source = new EventSource(path);
    ['state', 'progress', 'log', 'end'].forEach(t => source.addEventListener(t, m => {
      if (t === 'end') source.close();
      if (on[t]) on[t](JSON.parse(m.data));
    }));
    return;
  }
  const response = await api(path, {headers: {'Accept': 'text/event-stream'}});
  if (!response.ok) { on.failed && on.failed(response); return; }
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf('\\n\\n')) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let type = 'message'; const data = [];
      for (const line of block.split('\\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length && on[type]) on[type](JSON.parse(data.join('\\n')));
      if (type === 'end') { reader.cancel(); return; }
    }
  }
}
document.addEventListener('click', async ev => {  // links to API resources: fetched with the key
  const a = ev.target.closest('a.api');
  if (!a || !sessionStorage.getItem(KEY)) return;
  ev.preventDefault();
  const response = await api(a.getAttribute('href'));
  const url = URL.createObjectURL(await response.blob());
  if (a.dataset.save) { const s = document.createElement('a'); s.href = url; s.download = a.dataset.save; s.click(); }
  else { window.open(url); }
});
"""

KEY_FORM = """<form id="keyform"><label>API key <input type="password" name="key" autocomplete="off" size="60"></label>
<button type="submit">use</button> <button type="button" id="forget">forget</button> <span id="keystate"></span></form>"""

KEY_JS = """
function showKey() { document.getElementById('keystate').textContent = sessionStorage.getItem(KEY) ? 'a key is set for this tab' : 'no key set'; }
document.getElementById('keyform').addEventListener('submit', ev => {
  ev.preventDefault(); sessionStorage.setItem(KEY, ev.target.key.value.trim()); ev.target.key.value = ''; showKey(); refresh();
});
document.getElementById('forget').addEventListener('click', () => { sessionStorage.removeItem(KEY); showKey(); refresh(); });
showKey();
"""


def _page(title: str, body: str, script: str = "", body_attrs: str = "") -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body{body_attrs}><nav><a href=\"/ui\">jobs</a><a href=\"/docs\">API</a></nav>"
        f"{body}<script>{COMMON_JS}{script}</script></body></html>"
    )


def _local_jobs(request: Request) -> TenantJobs | None:
    """Auth off: the server renders tenant ``local``'s data, to loopback clients only (the API's own rule:
    anyone else gets its 401). Auth on: None; the page's scripts fetch the data with the key."""
    tenant = unauthenticated_tenant(request)
    if tenant is None:
        return None
    return TenantJobs(JobRepository(request.app.state.redis), tenant)


def _row(r: JobRecord) -> str:
    p = r.progress
    return (f'<tr data-id="{escape(r.id)}"><td><a href="/ui/jobs/{escape(r.id)}">{escape(r.id)}</a></td>'
            f'<td class="state {r.state.value}">{r.state.value}</td><td>{p.fraction:.0%} {escape(p.message)}</td>'
            f"<td>{escape(' → '.join(s.get('method', '?') for s in r.spec.get('steps', [])))}</td>"
            f"<td>{r.created_at:%Y-%m-%d %H:%M:%S}</td></tr>")


LIST_JS = """
async function refresh() {
  const response = await api('/jobs?limit=50');
  if (!response.ok) { document.getElementById('jobs').innerHTML = `<tr><td colspan="5">${esc((await response.json()).detail)}</td></tr>`; return; }
  const page = await response.json();
  document.getElementById('jobs').innerHTML = page.items.map(j =>
    `<tr data-id="${esc(j.id)}"><td><a href="/ui/jobs/${esc(j.id)}">${esc(j.id)}</a></td>` +
    `<td class="state ${esc(j.state)}">${esc(j.state)}</td><td>${Math.round(j.progress.fraction*100)}% ${esc(j.progress.message)}</td>` +
    `<td>${j.spec.steps.map(s => esc(s.method)).join(' → ')}</td><td>${esc(j.created_at.slice(0,19).replace('T',' '))}</td></tr>`).join('');
  document.getElementById('jobs').dataset.refreshed = new Date().toISOString();
}
setInterval(refresh, 2000);
if (document.body.dataset.auth) refresh();
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
api('/capabilities').then(r => r.json()).then(caps => {
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
  const response = await api('/jobs', {method: 'POST', body: form});
  const body = await response.json();
  if (response.ok) { window.location = '/ui/jobs/' + body.id; }
  else { out.textContent = body.detail + (body.errors ? '\\n' + JSON.stringify(body.errors, null, 2) : ''); }
});
"""


@router.get("/ui", response_class=HTMLResponse)
def ui_jobs(request: Request) -> HTMLResponse:
    jobs = _local_jobs(request)
    rows = "".join(_row(r) for r in jobs.list(limit=50)[0]) if jobs else ""
    body = f"""<h1>modelpress</h1>{KEY_FORM if jobs is None else ''}
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
    script = LIST_JS + (KEY_JS if jobs is None else "")
    return _page("modelpress jobs", body, script, body_attrs=' data-auth="1"' if jobs is None else "")


JOB_JS = """
const jobId = document.body.dataset.job;
function show(e) {
  const el = document.getElementById('state');
  el.textContent = e.state; el.className = 'state ' + e.state;
  document.getElementById('fill').style.width = Math.round(e.progress.fraction * 100) + '%';
  document.getElementById('message').textContent = Math.round(e.progress.fraction * 100) + '% ' + e.progress.phase + ': ' + e.progress.message;
}
function links(job) {
  const files = Object.entries(job.links.artifacts).map(([n, u]) => `<li><a class="api" data-save="${esc(n)}" href="${esc(u)}">${esc(n)}</a></li>`).join('');
  document.getElementById('done').innerHTML = `<p><a class="api" href="${esc(job.links.report)}">report</a> · <a class="api" href="${esc(job.links.metrics)}">metrics.json</a> · <a class="api" data-save="${esc(jobId)}-report.html" href="${esc(job.links.report)}?download=true">download report</a></p><ul>${files}</ul>`;
  document.getElementById('done').dataset.loaded = '1';
}
async function load() {  // auth on: the server sent a shell; fill it in with the key
  const response = await api('/jobs/' + jobId);
  if (!response.ok) { document.getElementById('message').textContent = (await response.json()).detail; return false; }
  const job = await response.json();
  show(job);
  document.getElementById('spec').textContent = JSON.stringify(job.spec, null, 2);
  if (job.error) document.getElementById('error').textContent = JSON.stringify(job.error, null, 2);
  if (job.state === 'succeeded') links(job);
  const log = await (await api('/jobs/' + jobId + '/logs')).json();
  document.getElementById('log').textContent = log.lines.map(l => l.ts.slice(11, 19) + ' ' + l.level + ' ' + l.message + '\\n').join('');
  return true;
}
async function follow() {
  if (document.body.dataset.auth && !(await load())) return;
  await stream('/jobs/' + jobId + '/events', {
    state: show, progress: show,
    log: l => { document.getElementById('log').textContent += l.ts.slice(11, 19) + ' ' + l.level + ' ' + l.message + '\\n'; },
    end: e => {
      show(e);
      document.body.dataset.stream = 'ended';
      if (e.state !== 'succeeded' || document.getElementById('done').dataset.loaded) return;
      api('/jobs/' + jobId).then(r => r.json()).then(links);
    },
  });
}
follow();
"""


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def ui_job(job_id: str, request: Request) -> HTMLResponse:
    jobs = _local_jobs(request)
    if jobs is None:
        body = f"""<h1>job <code>{escape(job_id)}</code></h1>{KEY_FORM}
<p>state <span id="state" class="state"></span></p>
<div class="bar"><div id="fill" style="width:0%"></div></div><p id="message"></p>
<div id="done"></div><pre id="error"></pre>
<h2>Spec</h2><pre id="spec"></pre>
<h2>Log</h2><pre id="log"></pre>"""
        script = JOB_JS + KEY_JS.replace("refresh()", "location.reload()")
        return _page(f"modelpress {job_id}", body, script, body_attrs=f' data-job="{escape(job_id)}" data-auth="1"')
    r = jobs.get(job_id)
    root = f"/jobs/{escape(r.id)}"
    done = ""
    if r.state.value == "succeeded":
        links = "".join(f'<li><a class="api" data-save="{escape(a.name)}" href="{root}/artifacts/{escape(a.name)}">{escape(a.name)}</a> ({a.bytes:,} bytes, sha256 {a.sha256[:12]}…)</li>'
                        for a in r.artifacts)
        summary = ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in (r.summary or {}).items())
        done = (f'<p><a class="api" href="{root}/report">report</a> · <a class="api" href="{root}/metrics">metrics.json</a> · '
                f'<a class="api" data-save="{escape(r.id)}-report.html" href="{root}/report?download=true">download report</a></p><p>{summary}</p><ul>{links}</ul>')
    error = f"<pre>{escape(json.dumps(r.error, indent=2))}</pre>" if r.error else ""
    log_text = "".join(f"{escape(line['ts'][11:19])} {escape(line['level'])} {escape(line['message'])}\n" for line in jobs.logs(job_id))
    body = f"""<h1>job <code>{escape(r.id)}</code></h1>
<p>state <span id="state" class="state {r.state.value}">{r.state.value}</span></p>
<div class="bar"><div id="fill" style="width:{r.progress.fraction:.0%}"></div></div>
<p id="message">{r.progress.fraction:.0%} {escape(r.progress.phase)}: {escape(r.progress.message)}</p>
<div id="done"{' data-loaded="1"' if done else ''}>{done}</div>{error}
<h2>Spec</h2><pre id="spec">{escape(json.dumps(r.spec, indent=2))}</pre>
<h2>Log</h2><pre id="log">{log_text}</pre>"""
    return _page(f"modelpress {r.id}", body, JOB_JS, body_attrs=f' data-job="{escape(r.id)}"')
