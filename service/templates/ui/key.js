function showKey() { document.getElementById('keystate').textContent = sessionStorage.getItem(KEY) ? 'a key is set for this tab' : 'no key set'; }
document.getElementById('keyform').addEventListener('submit', ev => {
  ev.preventDefault(); sessionStorage.setItem(KEY, ev.target.key.value.trim()); ev.target.key.value = ''; showKey(); refresh();
});
document.getElementById('forget').addEventListener('click', () => { sessionStorage.removeItem(KEY); showKey(); refresh(); });
showKey();
