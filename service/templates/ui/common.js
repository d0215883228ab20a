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
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      let type = 'message'; const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length && on[type]) on[type](JSON.parse(data.join('\n')));
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
