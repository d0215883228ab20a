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
  document.getElementById('log').textContent = log.lines.map(l => l.ts.slice(11, 19) + ' ' + l.level + ' ' + l.message + '\n').join('');
  return true;
}
async function follow() {
  if (document.body.dataset.auth && !(await load())) return;
  await stream('/jobs/' + jobId + '/events', {
    state: show, progress: show,
    log: l => { document.getElementById('log').textContent += l.ts.slice(11, 19) + ' ' + l.level + ' ' + l.message + '\n'; },
    end: e => {
      show(e);
      document.body.dataset.stream = 'ended';
      if (e.state !== 'succeeded' || document.getElementById('done').dataset.loaded) return;
      api('/jobs/' + jobId).then(r => r.json()).then(links);
    },
  });
}
follow();
