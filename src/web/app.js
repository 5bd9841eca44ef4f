// The tsvisor web console: the VMs with their state and live graphs, their power actions,
// the CD-ROM drive, the screen (noVNC over the API's WebSocket to the VM's VNC server) and
// the serial console (xterm.js over the API's console WebSocket). It talks only to the
// daemon's REST API (src/api/server.ts), logged in by the session cookie (src/api/web.ts).
import RFB from '/web/vendor/novnc/core/rfb.js';
import { Terminal } from '/web/vendor/xterm/lib/xterm.mjs';
import uPlot from '/web/vendor/uplot/uPlot.esm.js';

const POLL_MS = 2000;
/** Points kept per graph (2 s apart: 4 minutes). */
const HISTORY = 120;

const $ = (id) => document.getElementById(id);
const state = { vms: [], top: new Map(), history: new Map(), selected: null, tab: 'screen', timer: null };
let screen = null; // { name, rfb }
let serial = null; // { name, term, ws }
let charts = null;

/** Calls the API; resolves with the parsed JSON answer (null for 204). Throws Error with the API's message. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'x-tsvisor-request': '1', ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) { showLogin(); throw new Error('not logged in'); }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.error?.message ?? `HTTP ${res.status}`);
  return data;
}

function showError(e) {
  $('error').textContent = e ? String(e.message ?? e) : '';
}

function showLogin(message) {
  stopPolling();
  closeScreen();
  closeSerial();
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
}

async function login(token) {
  const res = await fetch('/v1/session', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json', 'x-tsvisor-request': '1' },
    body: JSON.stringify({ token }),
  });
  if (res.status !== 204) {
    const data = await res.json().catch(() => null);
    showLogin(data?.error?.message ?? `the token was refused (HTTP ${res.status})`);
    return false;
  }
  return true;
}

async function start() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  await refresh();
  stopPolling();
  state.timer = setInterval(() => { refresh().catch(showError); }, POLL_MS);
}

function stopPolling() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

const mib = (bytes) => `${Math.round(bytes / (1024 * 1024))} MiB`;

/** Reads the VMs and their live figures, and redraws. */
async function refresh() {
  const [list, top] = await Promise.all([api('GET', '/v1/vms'), api('GET', '/v1/top')]);
  state.vms = list.vms;
  const now = Date.now() / 1000;
  for (const row of top.vms) {
    state.top.set(row.name, row);
    const h = state.history.get(row.name) ?? { t: [], cpu: [], mem: [], diskRead: [], diskWrite: [], netRx: [], netTx: [] };
    h.t.push(now); h.cpu.push(row.cpuPercent); h.mem.push(row.memoryBytes / (1024 * 1024));
    h.diskRead.push(row.diskReadBytesPerSec / 1e6); h.diskWrite.push(row.diskWrittenBytesPerSec / 1e6);
    h.netRx.push(row.netRxBytesPerSec / 1e6); h.netTx.push(row.netTxBytesPerSec / 1e6);
    for (const k of Object.keys(h)) if (h[k].length > HISTORY) h[k].splice(0, h[k].length - HISTORY);
    state.history.set(row.name, h);
  }
  showError(null);
  renderTable();
  renderDetail();
}

const ACTIONS = [
  ['start', ['stopped', 'crashed']],
  ['stop', ['running', 'paused']],
  ['pause', ['running']],
  ['resume', ['paused']],
  ['restart', ['running']],
];

/**
 * Brings the VM table up to date in place: a VM's row, and its buttons, stay the same
 * elements from one poll to the next, so a click that straddles a poll is not lost.
 */
function renderTable() {
  const body = document.querySelector('#vms tbody');
  $('no-vms').hidden = state.vms.length > 0;
  const rows = new Map([...body.children].map((tr) => [tr.dataset.vm, tr]));
  let previous = null;
  for (const vm of state.vms) {
    const tr = rows.get(vm.name) ?? newRow(vm.name);
    rows.delete(vm.name);
    tr.classList.toggle('selected', vm.name === state.selected);
    const set = (cls, text) => { const td = tr.querySelector(`td.${cls}`); if (td.textContent !== text) td.textContent = text; };
    const stateCell = tr.querySelector('td.state');
    stateCell.className = `state state-${vm.state}`;
    set('state', vm.state);
    set('vcpus', String(vm.definition.vcpus));
    set('memory', mib(vm.allocatedMemoryBytes || vm.definition.memoryBytes));
    const row = state.top.get(vm.name);
    set('cpu', row && vm.state === 'running' ? `${row.cpuPercent.toFixed(0)}%` : '-');
    for (const [action, states] of ACTIONS) {
      const b = tr.querySelector(`button[data-action=${action}]`);
      if (!b.dataset.busy) b.disabled = !states.includes(vm.state);
    }
    // keep the list's order without moving rows that are already in place
    const want = previous ? previous.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    previous = tr;
  }
  for (const tr of rows.values()) tr.remove();
}

/** A new, empty table row for the VM `name`, with its name button and action buttons. */
function newRow(name) {
  const tr = document.createElement('tr');
  tr.dataset.vm = name;
  const cell = (cls) => { const td = document.createElement('td'); td.className = cls; tr.append(td); return td; };
  const nameButton = document.createElement('button');
  nameButton.type = 'button';
  nameButton.className = 'name';
  nameButton.textContent = name;
  nameButton.addEventListener('click', () => select(name));
  cell('vm-name').append(nameButton);
  cell('state');
  cell('vcpus');
  cell('memory');
  cell('cpu');
  const actions = cell('actions');
  for (const [action] of ACTIONS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = action[0].toUpperCase() + action.slice(1);
    b.dataset.action = action;
    b.addEventListener('click', () => act(name, action, b));
    actions.append(b);
  }
  return tr;
}

async function act(name, action, button) {
  button.disabled = true;
  button.dataset.busy = '1'; // a poll meanwhile leaves it disabled
  try {
    await api('POST', `/v1/vms/${encodeURIComponent(name)}/${action}`, {});
  } catch (e) {
    showError(e);
    button.disabled = false;
    return;
  } finally {
    delete button.dataset.busy;
  }
  await refresh().catch(showError);
}

function select(name) {
  if (state.selected !== name) {
    closeScreen();
    closeSerial();
    destroyCharts();
  }
  state.selected = name;
  renderTable();
  renderDetail();
}

function renderDetail() {
  const vm = state.vms.find((v) => v.name === state.selected);
  $('detail').hidden = !vm;
  if (!vm) { closeScreen(); closeSerial(); return; }
  $('detail-name').textContent = vm.name;
  $('cdrom-state').textContent = vm.cdrom ? (vm.cdrom.path ?? 'empty') + (vm.cdrom.locked ? ' (locked by the guest)' : '') : (vm.definition.cdrom ?? 'empty');
  drawCharts(vm.name);
  const alive = vm.state === 'running' || vm.state === 'paused';
  if (state.tab === 'screen') { closeSerial(); if (alive) openScreen(vm.name); else closeScreen(); }
  else { closeScreen(); if (alive) openSerial(vm.name); else closeSerial(); }
  $('screen').hidden = state.tab !== 'screen';
  $('console').hidden = state.tab !== 'console';
}

function wsUrl(path) {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

function placeholder(pane, text) {
  const p = document.createElement('p');
  p.className = 'placeholder';
  p.textContent = text;
  pane.replaceChildren(p);
}

function openScreen(name) {
  if (screen?.name === name) return;
  closeScreen();
  const pane = $('screen');
  pane.replaceChildren();
  const rfb = new RFB(pane, wsUrl(`/v1/vms/${encodeURIComponent(name)}/vnc`), { shared: true });
  rfb.scaleViewport = false;
  rfb.focusOnClick = true;
  screen = { name, rfb };
  rfb.addEventListener('disconnect', () => {
    if (screen?.rfb !== rfb) return;
    screen = null;
    placeholder(pane, 'The screen disconnected.');
  });
  window.tsvisorScreen = rfb; // for tests and the browser's console
}

function closeScreen() {
  if (!screen) return;
  const s = screen;
  screen = null;
  s.rfb.disconnect();
  placeholder($('screen'), 'The VM is not running.');
}

function openSerial(name) {
  if (serial?.name === name) return;
  closeSerial();
  const pane = $('console');
  pane.replaceChildren();
  const term = new Terminal({ convertEol: false, cols: 100, rows: 30, scrollback: 2000 });
  term.open(pane);
  const ws = new WebSocket(wsUrl(`/v1/vms/${encodeURIComponent(name)}/console`));
  ws.binaryType = 'arraybuffer';
  let firstAt = 0;
  ws.addEventListener('message', (ev) => { firstAt ||= Date.now(); term.write(new Uint8Array(ev.data)); });
  ws.addEventListener('close', () => { if (serial?.ws === ws) term.write('\r\n[the console closed]\r\n'); });
  const encoder = new TextEncoder();
  // the stream starts with the console's scrollback, and xterm.js answers the queries in it
  // (cursor position, device attributes) as if they were new: those answers are dropped for
  // the first second of output, or the guest would read them as typed input
  term.onData((text) => {
    if ((firstAt === 0 || Date.now() - firstAt < 1000) && /^(\x1b\[[\d;?]*[Rcn])+$/.test(text)) return;
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
  });
  serial = { name, term, ws };
  window.tsvisorTerminal = term; // for tests and the browser's console
}

function closeSerial() {
  if (!serial) return;
  const s = serial;
  serial = null;
  s.ws.close();
  s.term.dispose();
  placeholder($('console'), 'The VM is not running.');
}

function destroyCharts() {
  if (charts) for (const c of charts.plots) c.destroy();
  charts = null;
}

function drawCharts(name) {
  const h = state.history.get(name);
  if (!h) return;
  const data = [
    [h.t, h.cpu],
    [h.t, h.mem],
    [h.t, h.diskRead, h.diskWrite],
    [h.t, h.netRx, h.netTx],
  ];
  if (charts?.name !== name) {
    destroyCharts();
    const opts = (title, series) => ({
      title, width: 300, height: 150, legend: { show: true },
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 1.5 }))],
    });
    const defs = [
      [$('chart-cpu'), opts('CPU (% of a core)', [['CPU', '#1565c0']])],
      [$('chart-memory'), opts('Memory (MiB)', [['memory', '#6a1b9a']])],
      [$('chart-disk'), opts('Disk (MB/s)', [['read', '#2e7d32'], ['written', '#ef6c00']])],
      [$('chart-net'), opts('Network (MB/s)', [['received', '#00838f'], ['sent', '#c62828']])],
    ];
    charts = { name, plots: defs.map(([el, o], i) => { el.replaceChildren(); return new uPlot(o, data[i], el); }) };
    return;
  }
  charts.plots.forEach((p, i) => p.setData(data[i]));
}

function setTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  renderDetail();
}

async function cdrom(insert) {
  const name = state.selected;
  if (!name) return;
  try {
    if (insert) await api('POST', `/v1/vms/${encodeURIComponent(name)}/cdrom`, { path: $('cdrom-path').value.trim() });
    else await api('DELETE', `/v1/vms/${encodeURIComponent(name)}/cdrom`);
    await refresh();
  } catch (e) {
    showError(e);
  }
}

async function main() {
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (await login($('login-token').value.trim())) start().catch(showError);
  });
  $('logout').addEventListener('click', async () => {
    await fetch('/v1/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'x-tsvisor-request': '1' } });
    showLogin();
  });
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => setTab(b.dataset.tab));
  $('cdrom-form').addEventListener('submit', (ev) => { ev.preventDefault(); cdrom(true); });
  $('cdrom-eject').addEventListener('click', () => cdrom(false));
  window.addEventListener('hashchange', () => { enter().catch(showError); });
  await enter();
}

/** Logs in with the token in the address's fragment, if there is one, then shows the VMs. */
async function enter() {
  // `tsvisor web` puts the token in the fragment (never sent to the server): log in with it, then drop it
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    history.replaceState(null, '', location.pathname);
    if (!(await login(decodeURIComponent(m[1])))) return;
  }
  try {
    await start();
  } catch (e) {
    if (String(e.message) !== 'not logged in') showError(e);
  }
}

main();
