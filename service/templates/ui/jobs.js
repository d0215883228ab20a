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
  else { out.textContent = body.detail + (body.errors ? '\n' + JSON.stringify(body.errors, null, 2) : ''); }
});
