// soundalert live display. Plain ES module, no build step.
import { icon } from './icons.js';

const TOKEN_KEY = 'soundalert.token';
const NAME_KEY = 'soundalert.name';
const INFORMATIONAL = new Set(['node_online', 'node_stopped']);
const PRIORITY_RANK = { critical: 0, high: 1, normal: 2 };
const PRIORITY_WORD = { critical: 'Critical', high: 'Important', normal: 'Notice' };
// Longer and more insistent as the priority rises (milliseconds on, off, on, ...).
const VIBRATION = {
  critical: [1000, 300, 1000, 300, 1000, 300, 1000],
  high: [600, 250, 600, 250, 600],
  normal: [400, 200, 400],
};
const FALLBACK = { title: '', priority: 'normal', color: '#37474f', text: '#ffffff', icon: 'bell' };

const $ = (id) => document.getElementById(id);
const state = {
  token: null,
  name: 'display',
  categories: {},
  alerts: new Map(),
  nodes: new Map(),
  services: new Map(),
  announced: new Set(),
  shownId: null,
  index: 0,
  source: null,
  retry: 0,
  focus: null, // an alert opened from a notification's link (#alert=ID)
};

// -- helpers ---------------------------------------------------------------------------------
const escapeHtml = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
export function roomName(id) {
  if (!id) return 'Unknown room';
  const words = id.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}
const category = (name) => ({ ...FALLBACK, title: roomName(name), ...(state.categories[name] || {}) });
const titleOf = (a) => a.title || category(a.category).title;
const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
function dayTime(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return today ? `Today ${t}` : `${d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' })} ${t}`;
}
export function ago(iso, now = Date.now()) {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 5) return 'just now';
  if (s < 60) return `${s} seconds ago`;
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? '1 minute ago' : `${m} minutes ago`;
  const h = Math.round(m / 60);
  if (h < 24) return h === 1 ? '1 hour ago' : `${h} hours ago`;
  const d = Math.round(h / 24);
  return d === 1 ? 'yesterday' : `${d} days ago`;
}

// -- the token -------------------------------------------------------------------------------
function takeTokenFromUrl() {
  const url = new URL(location.href);
  let changed = false;
  for (const [param, key] of [['token', TOKEN_KEY], ['name', NAME_KEY]]) {
    const value = url.searchParams.get(param);
    if (value) { localStorage.setItem(key, value); url.searchParams.delete(param); changed = true; }
  }
  if (changed) history.replaceState(null, '', url.pathname + url.search + url.hash);
  state.token = localStorage.getItem(TOKEN_KEY);
  state.name = localStorage.getItem(NAME_KEY) || 'display';
}

function askForToken(wrong) {
  const dialog = $('token-dialog');
  if (dialog.open) return;
  $('token-title').textContent = wrong ? 'That token was not accepted. Enter the access token' : "Enter this home's access token";
  dialog.showModal();
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...(options.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  if (response.status === 401) {
    askForToken(true);
    throw new Error('the access token was not accepted');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

// -- live stream -----------------------------------------------------------------------------
function setLive(live, text) {
  const pill = $('live');
  pill.textContent = text;
  pill.className = `pill ${live ? 'pill-on' : 'pill-off'}`;
}

async function connect() {
  if (state.source) state.source.close();
  try {
    const { ticket } = await api('/api/stream/ticket', { method: 'POST' });
    const source = new EventSource(`/api/stream?ticket=${encodeURIComponent(ticket)}`);
    state.source = source;
    source.addEventListener('open', () => { state.retry = 0; setLive(true, 'Live'); });
    source.addEventListener('snapshot', (e) => {
      const snap = JSON.parse(e.data);
      state.alerts.clear();
      for (const record of snap.alerts) state.alerts.set(record.alert.alert_id, record);
      state.nodes.clear();
      for (const n of snap.nodes) state.nodes.set(`${n.site}/${n.node}`, n);
      for (const s of snap.services) state.services.set(s.node, s);
      render({ fromSnapshot: true });
    });
    source.addEventListener('alert', (e) => {
      const record = JSON.parse(e.data);
      state.alerts.set(record.alert.alert_id, record);
      render({ fromSnapshot: false });
    });
    source.addEventListener('node', (e) => {
      const n = JSON.parse(e.data);
      if (n.service) state.services.set(n.node, n); else state.nodes.set(`${n.site}/${n.node}`, n);
      renderNodes();
      renderServices();
      renderListening();
    });
    source.addEventListener('error', () => {
      source.close();
      reconnectLater();
    });
  } catch (err) {
    reconnectLater(err);
  }
}

function reconnectLater(err) {
  const delay = Math.min(15000, 1000 * 2 ** state.retry);
  state.retry += 1;
  setLive(false, `Reconnecting${err ? '' : '…'}`);
  setTimeout(connect, delay);
}

// -- what needs attention --------------------------------------------------------------------
const needsAttention = (r) => r.active && !r.handled;
const isMissed = (r) => !r.active && !r.handled && r.alert.state === 'resolved' && !INFORMATIONAL.has(r.alert.category);
function byUrgency(a, b) {
  const p = PRIORITY_RANK[a.alert.priority] - PRIORITY_RANK[b.alert.priority];
  return p || (b.alert.raised_at < a.alert.raised_at ? -1 : 1);
}

function render({ fromSnapshot }) {
  const urgent = [...state.alerts.values()].filter(needsAttention).sort(byUrgency);
  for (const r of urgent) {
    const key = `${r.alert.alert_id}#${r.alert.repeat}`;
    if (!state.announced.has(key)) {
      state.announced.add(key);
      announce(r, { notify: !fromSnapshot });
      state.index = 0; // the newest, most urgent alert comes to the front
    }
  }
  openLinked(urgent);
  renderAlert(urgent);
  renderQuiet();
  renderHistory();
  renderNodes();
  renderServices();
}

// A notification's link (#alert=ID) opens that alert: in front when it still needs
// attention, else its line in the history.
function takeLinkedAlert() {
  const match = /^#alert=(.+)$/.exec(location.hash);
  if (!match) return;
  state.focus = decodeURIComponent(match[1]);
  history.replaceState(null, '', location.pathname + location.search);
}

function openLinked(urgent) {
  if (!state.focus || !state.alerts.has(state.focus)) return;
  const at = urgent.findIndex((r) => r.alert.alert_id === state.focus);
  if (at >= 0) { state.index = at; state.shownId = null; }
  else {
    requestAnimationFrame(() => {
      const li = document.querySelector(`#history [data-alert-id="${CSS.escape(state.focus || '')}"]`);
      if (li) { li.classList.add('linked'); li.scrollIntoView({ block: 'center' }); }
    });
  }
  setTimeout(() => { state.focus = null; }, 0);
}

function announce(record, { notify }) {
  const a = record.alert;
  const text = `${PRIORITY_WORD[a.priority]} alert: ${titleOf(a)} in ${roomName(a.location)} at ${time(a.raised_at)}.`;
  $('announcer').textContent = text;
  if ('vibrate' in navigator) {
    try { navigator.vibrate(VIBRATION[a.priority] || VIBRATION.normal); } catch { /* not allowed yet */ }
  }
  if (notify && 'Notification' in window && Notification.permission === 'granted') {
    try {
      new Notification(titleOf(a), {
        body: `${roomName(a.location)} · ${time(a.raised_at)}`,
        tag: a.alert_id,
        icon: '/static/icons/icon-192.png',
        requireInteraction: a.priority === 'critical',
        vibrate: VIBRATION[a.priority],
      });
    } catch { /* some browsers only notify from a service worker */ }
  }
}

function renderAlert(urgent) {
  const panel = $('alert');
  if (!urgent.length) {
    if (!panel.hidden) {
      panel.hidden = true;
      document.body.style.overflow = '';
      state.shownId = null;
      $('main').focus?.();
    }
    return;
  }
  state.index = Math.min(state.index, urgent.length - 1);
  const record = urgent[state.index];
  const a = record.alert;
  const cat = category(a.category);
  panel.style.setProperty('--alert-bg', cat.color);
  panel.style.setProperty('--alert-fg', cat.text);
  panel.dataset.category = a.category;
  panel.dataset.alertId = a.alert_id;
  const sounding = (a.state === 'raised' || a.state === 'updated') && !a.ended_at;
  panel.classList.toggle('flashing', sounding);
  $('alert-priority').textContent = `${PRIORITY_WORD[a.priority]} alert`;
  $('alert-count').textContent = urgent.length > 1 ? `${state.index + 1} of ${urgent.length}` : '';
  $('alert-icon').innerHTML = icon(cat.icon);
  $('alert-what').textContent = titleOf(a);
  $('alert-where').innerHTML = `${icon('pin')}<span class="sr-only">Where: </span><span>${escapeHtml(roomName(a.location))}</span>`;
  const details = [];
  if (a.reason) details.push(a.reason);
  details.push(sounding ? 'Still sounding' : a.ended_at ? `Stopped at ${time(a.ended_at)}` : '');
  const others = (a.nodes || []).map((n) => n.node).filter((n) => n !== a.location);
  if (others.length) details.push(`also heard in ${others.map(roomName).join(', ')}`);
  if (a.repeat) details.push(`reminder ${a.repeat}`);
  if (a.delay_s) details.push(`reached this display ${Math.round(a.delay_s)} s late`);
  $('alert-detail').textContent = details.filter(Boolean).join(' · ');
  $('alert-nav').hidden = urgent.length < 2;
  const fresh = state.shownId !== a.alert_id;
  if (fresh) {
    $('alert-status').textContent = '';
    for (const b of [$('ack'), $('false-alarm')]) b.disabled = false;
  }
  if (panel.hidden) {
    panel.hidden = false;
    document.body.style.overflow = 'hidden';
  }
  if (fresh) {
    state.shownId = a.alert_id;
    $('ack').focus();
  }
  renderWhen();
}

function renderWhen() {
  const panel = $('alert');
  if (panel.hidden) return;
  const record = state.alerts.get(panel.dataset.alertId);
  if (!record) return;
  $('alert-when').textContent = `${time(record.alert.raised_at)} · ${ago(record.alert.raised_at)}`;
}

async function sendFeedback(alertId, verdict, statusEl, buttons) {
  const record = state.alerts.get(alertId);
  if (!record) return;
  for (const b of buttons) b.disabled = true;
  statusEl.textContent = 'Sending…';
  try {
    await api(`/api/alerts/${encodeURIComponent(alertId)}/feedback`, {
      method: 'POST',
      body: JSON.stringify({ verdict, by: state.name }),
    });
    const word = verdict === 'false_alarm' ? 'marked as a false alarm' : 'acknowledged';
    statusEl.textContent = `${titleOf(record.alert)} ${word}.`;
    $('announcer').textContent = `${titleOf(record.alert)} ${word}.`;
  } catch (err) {
    statusEl.textContent = `Not sent: ${err.message}. Try again.`;
    for (const b of buttons) b.disabled = false;
  }
}

// "This was my …": the sensor that heard it learns the sound from what it kept (embeddings only).
async function teachSound(alertId, statusEl) {
  const record = state.alerts.get(alertId);
  if (!record) return;
  const title = window.prompt('What was this sound? (for example: Doorbell, Microwave)');
  if (!title || !title.trim()) return;
  statusEl.textContent = 'Sending…';
  try {
    await api(`/api/alerts/${encodeURIComponent(alertId)}/learn`, {
      method: 'POST',
      body: JSON.stringify({ title: title.trim(), by: state.name }),
    });
    statusEl.textContent = `The ${record.alert.location} sensor is learning “${title.trim()}”; every sensor of the home will know it.`;
    setTimeout(loadSounds, 3000);
  } catch (err) {
    statusEl.textContent = `Not sent: ${err.message}. Try again.`;
  }
}

// -- quiet screen, history, sensors ----------------------------------------------------------
const HEARTBEATS = 3; // a sensor silent for this many heartbeats is not listening
export function isListening(n, now = Date.now()) {
  return n.state === 'online' && now - new Date(n.last_heard).getTime() <= HEARTBEATS * n.heartbeat_s * 1000;
}
// A replay that ended (capability "transient") was never a sensor the home counts on.
const expected = (n) => isListening(n) || !(n.capabilities || []).includes('transient');
function since(iso, now) {
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}
/** What the idle screen says about listening: "All quiet" only when every expected sensor
 * listens; otherwise how many do not, and which, with how long. */
export function listeningTruth(nodes, now = Date.now()) {
  const sensors = nodes.filter(expected);
  if (!sensors.length) return { ok: false, title: 'No sensor is listening', detail: 'No sensor has reported yet.' };
  const deaf = sensors.filter((n) => !isListening(n, now))
    .sort((x, y) => roomName(x.node).localeCompare(roomName(y.node)));
  if (!deaf.length) return { ok: true, title: 'All quiet', detail: '' };
  const named = deaf.map((n) => `${roomName(n.node)} (${n.state === 'stopped' ? 'stopped' : `offline ${since(n.last_heard, now)}`})`);
  const noun = sensors.length === 1 ? 'sensor' : 'sensors';
  const title = deaf.length === sensors.length
    ? (sensors.length === 1 ? 'The sensor is not listening' : `No sensor is listening (${sensors.length} ${noun})`)
    : `${deaf.length} of ${sensors.length} ${noun} not listening`;
  return { ok: false, title, detail: named.join(', ') };
}

function renderListening() {
  const truth = listeningTruth([...state.nodes.values()]);
  const section = $('quiet');
  section.classList.toggle('quiet-warn', !truth.ok);
  if ($('quiet-title').textContent !== truth.title) $('quiet-title').textContent = truth.title;
  const listening = $('listening');
  listening.hidden = truth.ok;
  if (listening.textContent !== truth.detail) listening.textContent = truth.detail;
  document.title = truth.ok ? 'soundalert' : `soundalert: ${truth.title}`;
}

function renderQuiet() {
  renderListening();
  const all = [...state.alerts.values()].filter((r) => !INFORMATIONAL.has(r.alert.category));
  const last = all.sort((x, y) => (y.alert.raised_at > x.alert.raised_at ? 1 : -1))[0];
  $('quiet-detail').textContent = last
    ? `Last heard: ${titleOf(last.alert)} in ${roomName(last.alert.location)}, ${dayTime(last.alert.raised_at)}`
    : 'No alert is active.';
  const missed = all.filter(isMissed).slice(0, 10);
  $('missed').hidden = !missed.length;
  $('missed-list').innerHTML = missed.map((r) => `
    <li><span class="what">${escapeHtml(titleOf(r.alert))} in ${escapeHtml(roomName(r.alert.location))}, ${escapeHtml(dayTime(r.alert.raised_at))}</span>
    <button type="button" data-seen="${escapeHtml(r.alert.alert_id)}">Mark as seen<span class="sr-only">: ${escapeHtml(titleOf(r.alert))}</span></button></li>`).join('');
}

function stateText(r) {
  const a = r.alert;
  const fb = r.feedback.at(-1);
  if (a.state === 'false_alarm' || fb?.verdict === 'false_alarm') return ['False alarm', ''];
  if (fb || a.state === 'acknowledged' || a.by) return [`Acknowledged${(fb?.by || a.by) ? ` by ${fb?.by || a.by}` : ''}`, ''];
  if (r.active) return ['Active now', 'is-active'];
  if (isMissed(r)) return ['Not acknowledged', 'is-missed'];
  return [a.state === 'resolved' ? 'Ended' : '', ''];
}

function fillSelect(select, values, label) {
  const current = select.value;
  const options = [...values.entries()].sort((x, y) => x[1].localeCompare(y[1]));
  const html = `<option value="">${label}</option>` + options.map(([v, t]) => `<option value="${escapeHtml(v)}">${escapeHtml(t)}</option>`).join('');
  if (select.dataset.html !== html) { select.innerHTML = html; select.dataset.html = html; select.value = current; }
}

function renderHistory() {
  const records = [...state.alerts.values()].sort((x, y) => (y.alert.raised_at > x.alert.raised_at ? 1 : -1));
  const cats = new Map(); const rooms = new Map();
  for (const r of records) {
    cats.set(r.alert.category, titleOf({ ...r.alert, title: category(r.alert.category).title || r.alert.title }));
    if (r.alert.location) rooms.set(r.alert.location, roomName(r.alert.location));
  }
  fillSelect($('filter-category'), cats, 'All sounds');
  fillSelect($('filter-room'), rooms, 'All rooms');
  const fc = $('filter-category').value; const fr = $('filter-room').value;
  const shown = records.filter((r) => (!fc || r.alert.category === fc) && (!fr || r.alert.location === fr)).slice(0, 100);
  $('history-empty').hidden = shown.length > 0;
  $('history-empty').textContent = records.length ? 'Nothing matches these filters.' : 'Nothing has been heard yet.';
  $('history').innerHTML = shown.map((r) => {
    const a = r.alert; const cat = category(a.category);
    const [text, cls] = stateText(r);
    return `<li class="event" style="--cat:${cat.color};--cat-text:${cat.text}" data-alert-id="${escapeHtml(a.alert_id)}">
      <span class="badge-icon">${icon(cat.icon)}</span>
      <span><span class="title">${escapeHtml(titleOf(a))}</span><br>
      <span class="meta">${escapeHtml(roomName(a.location))} · <time datetime="${escapeHtml(a.raised_at)}">${escapeHtml(dayTime(a.raised_at))}</time></span></span>
      <span class="state ${cls}">${escapeHtml(text)}</span></li>`;
  }).join('');
}

// -- learned sounds (their packs' names and quality; the display never has their weights) --------
async function loadSounds() {
  try {
    const { sounds } = await api('/api/sounds');
    for (const x of sounds) {  // a learned sound's alerts wear the colour and icon chosen for it
      state.categories[x.sound] ??= { title: x.title, priority: x.priority, color: x.color, text: x.text, icon: x.icon };
    }
    $('sounds-empty').hidden = sounds.length > 0;
    $('sounds').innerHTML = sounds.map((x) => {
      const loo = x.quality?.leave_one_out;
      const how = `${x.quality?.examples ?? '?'} examples` + (loo == null ? '' : `, ${Math.round(loo * 100)}% recognised leaving one out`);
      return `<li class="node"><span><span class="title">${escapeHtml(x.title)}</span> <span class="meta">v${Number(x.version)} · ${escapeHtml(x.priority)} · learned on ${escapeHtml(roomName(x.learned_on))} from ${escapeHtml(how)}</span></span>
        <button type="button" class="btn-false" data-site="${escapeHtml(x.site)}" data-sound="${escapeHtml(x.sound)}">Remove</button></li>`;
    }).join('');
  } catch (err) {
    $('sounds-empty').hidden = false;
    $('sounds-empty').textContent = `Cannot load the learned sounds: ${err.message}`;
  }
}

async function removeSound(site, sound) {
  try {
    await api(`/api/sounds/${encodeURIComponent(site)}/${encodeURIComponent(sound)}`, { method: 'DELETE' });
  } finally {
    await loadSounds();
  }
}

function renderNodes() {
  const nodes = [...state.nodes.values()].sort((x, y) => `${x.site}/${x.node}`.localeCompare(`${y.site}/${y.node}`));
  $('nodes-empty').hidden = nodes.length > 0;
  const now = Date.now();
  $('nodes').innerHTML = nodes.map((n) => {
    const online = isListening(n, now);
    const word = online ? 'Online' : n.state === 'stopped' ? 'Stopped' : 'Offline';
    const level = n.mic_dbfs == null ? '' :
      `<label>Mic <meter min="-90" max="0" value="${Number(n.mic_dbfs)}"></meter> ${Math.round(n.mic_dbfs)} dBFS</label>`;
    const problems = (n.problems || []).map((p) => `<span class="problem">${escapeHtml(p)}</span>`).join('');
    return `<li class="node" data-node="${escapeHtml(n.node)}">
      <span class="name">${escapeHtml(roomName(n.node))}</span>
      <span class="conn ${online ? 'on' : 'off'}">${word}</span>
      <span class="meta"><span>${online ? 'Last heard' : 'Last report'} ${escapeHtml(ago(n.last_heard, now))}</span>${level}</span>${problems}</li>`;
  }).join('');
}

function renderServices() {
  const agg = state.services.get('aggregator');
  const pill = $('service');
  if (!agg) { pill.hidden = true; return; }
  pill.hidden = agg.state === 'online';
  pill.className = 'pill pill-warn';
  pill.textContent = 'Alert service is not running: sounds are not being turned into alerts';
}

function renderNotifyButton() {
  const button = $('notify');
  if (!('Notification' in window)) return;
  button.hidden = Notification.permission !== 'default';
}

// -- wiring ----------------------------------------------------------------------------------
function wire() {
  const buttons = [$('ack'), $('false-alarm')];
  $('ack').addEventListener('click', () => sendFeedback($('alert').dataset.alertId, 'acknowledged', $('alert-status'), buttons));
  $('false-alarm').addEventListener('click', () => sendFeedback($('alert').dataset.alertId, 'false_alarm', $('alert-status'), buttons));
  $('this-was-my').addEventListener('click', () => teachSound($('alert').dataset.alertId, $('alert-status')));
  $('sounds').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-sound]');
    if (b) removeSound(b.dataset.site, b.dataset.sound);
  });
  const step = (d) => {
    const n = [...state.alerts.values()].filter(needsAttention).length;
    state.index = (state.index + d + n) % n;
    state.shownId = null;
    render({ fromSnapshot: true });
  };
  $('alert-prev').addEventListener('click', () => step(-1));
  $('alert-next').addEventListener('click', () => step(1));
  $('missed-list').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-seen]');
    if (button) sendFeedback(button.dataset.seen, 'acknowledged', $('quiet-detail'), [button]);
  });
  $('filters').addEventListener('change', renderHistory);
  $('filters').addEventListener('submit', (e) => e.preventDefault());
  $('notify').addEventListener('click', async () => {
    await Notification.requestPermission();
    renderNotifyButton();
  });
  $('token-form').addEventListener('submit', () => {
    localStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
    location.reload();
  });
  $('main').tabIndex = -1;
  setInterval(() => {
    const now = new Date();
    $('clock').textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    renderWhen();
    if (now.getSeconds() % 5 === 0) { renderNodes(); renderListening(); }
  }, 1000);
  $('clock').textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

async function start() {
  takeTokenFromUrl();
  takeLinkedAlert();
  window.addEventListener('hashchange', () => { takeLinkedAlert(); render({ fromSnapshot: true }); });
  wire();
  renderNotifyButton();
  if (!state.token) { askForToken(false); setLive(false, 'No access token'); return; }
  try {
    state.categories = (await api('/api/categories')).categories;
  } catch (err) {
    setLive(false, `Cannot load: ${err.message}`);
    return;
  }
  connect();
  loadSounds();
}

start();
