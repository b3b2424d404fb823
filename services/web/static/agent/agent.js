// soundalert phone agent: listens through the microphone, runs YAMNet on this device (LiteRT.js,
// WebAssembly) beside the RP2040 board's T3 smoke / T4 CO / 520 Hz pattern detectors (its C core
// compiled to WebAssembly), and publishes only event and status JSON over MQTT-over-WebSocket.
// The page also shows alerts: it is the live display (app.js) with this panel on top.
//
// Honesty first: whenever this page cannot be sure it is listening (hidden page, locked screen,
// suspended audio, lost microphone, no samples), it says so on screen in plain words AND publishes
// a retained "offline" status, so the home's alert service raises "sensor stopped listening".
//
// Nothing heard is lost: every event waits in IndexedDB (outbox.js) until the aggregator's
// retained ack on <root>/<site>/<node>/ack covers its seq; each is sent once per connection, again
// after a reconnect or a reload, and again when acks stop advancing (ResendTimer). With the
// server's agent_delivery "broker", an event leaves on its PUBACK instead.
import { roomName } from '/static/app.js'; // the display: takes ?token=, shows alerts (runs first)
import {
  DEFAULT_PIPELINE, EventBuilder, PatternDetector, ResendTimer, Resampler, Stats, WINDOW_SAMPLES, Windower, eventPriority,
  hopSamples, listeningHealth, parseAck, parseClassMap, statusDoc, topLabels, topics, validId, validNodeId,
} from './core.js';
import { Outbox } from './outbox.js';
import { PERSONAL_SOURCE, learnSound, matchSound, packOf, parsePack, soundId, soundWindows } from './sounds.js';

const TOKEN_KEY = 'soundalert.token';
const SITE_KEY = 'soundalert.agent.site';
const NODE_KEY = 'soundalert.agent.node';
const seqKey = (site, node) => `soundalert.agent.seq.${site}.${node}`;
const MAX_PENDING_WINDOWS = 4; // beyond this the model is too slow: drop (and count) windows
const HEALTH_EVERY_MS = 1000;
const SEND_BATCH = 32;

const $ = (id) => document.getElementById(id);
const agent = {
  config: null, names: null, model: null, Tensor: null, ready: null, patternsWasm: null, patterns: null,
  site: null, node: null, topics: null, sounds: new Map(), soundsRefused: 0,
  background: [], teach: { examples: [], recording: null, learned: null },
  client: null, connected: false,
  ctx: null, stream: null, track: null, worklet: null,
  resampler: null, windower: null, builder: null, stats: new Stats(),
  queue: Promise.resolve(), pending: 0, published: 0, startedAt: 0,
  lastAudioAt: null, health: { ok: false, reason: 'not started' }, listening: false,
  wakeLock: null, wakeText: '', timers: [],
  outbox: null, sentSeq: -1, pumping: false, pumpAgain: false, resend: null, ackedSeq: -1, delivered: 0,
  acksIgnored: 0,
};

// -- small helpers ---------------------------------------------------------------------------
function say(title, reason, ok) {
  const box = $('agent');
  box.dataset.state = ok ? 'listening' : (agent.listening ? 'suspended' : 'idle');
  $('agent-title').textContent = title;
  $('agent-reason').textContent = reason;
}

function setText(id, text) { const el = $(id); if (el && el.textContent !== text) el.textContent = text; }

async function getJson(url) {
  const token = localStorage.getItem(TOKEN_KEY);
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

function nextSeq() {
  return agent.builder ? agent.builder.nextSeq : Number(localStorage.getItem(seqKey(agent.site, agent.node)) || 0);
}

function status(state, extra = {}, { will = false } = {}) {
  const stats = { ...agent.stats.summary(), events_sent: agent.published, events_published: agent.delivered,
    ...(agent.outbox ? agent.outbox.figures() : {}), ...extra };
  if (agent.ctx) stats.sample_rate_hz = agent.ctx.sampleRate;
  if (agent.startedAt) stats.uptime_s = Math.round((performance.now() - agent.startedAt) / 100) / 10;
  if (!agent.health.ok && agent.listening) stats.reason = agent.health.reason;
  if (agent.wakeText) stats.screen = agent.wakeText;
  const delivery = will || !agent.outbox ? {} : { pendingFromSeq: agent.outbox.pendingFromSeq(nextSeq()), nextSeq: nextSeq() };
  return JSON.stringify(statusDoc({
    site: agent.site, node: agent.node, state, atMs: Date.now(), heartbeatS: agent.config.heartbeat_s,
    software: agent.config.software, capabilities: ['yamnet', 'patterns'], stats, ...delivery,
  }));
}

// -- the model -------------------------------------------------------------------------------
async function loadPatterns(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`pattern detectors: HTTP ${response.status}`);
  const { module } = await WebAssembly.instantiate(await response.arrayBuffer(), {});
  return module;
}

async function loadModel(config) {
  const litert = await import(config.runtime.litert);
  await litert.loadLiteRt(config.runtime.wasm_dir);
  const [model, csv, patterns] = await Promise.all([
    litert.loadAndCompile(config.model.url, { accelerator: 'wasm' }),
    fetch(config.model.class_map_url).then((r) => { if (!r.ok) throw new Error(`class map: HTTP ${r.status}`); return r.text(); }),
    loadPatterns(config.runtime.patterns),
  ]);
  agent.patternsWasm = patterns;
  agent.model = model;
  agent.Tensor = litert.Tensor;
  agent.names = parseClassMap(csv);
}

/** YAMNet scores (521) for one 15 600-sample window. */
async function scoresOf(samples) {
  return (await modelOf(samples)).scores;
}

/** YAMNet scores (521) and embedding (1024; the served model outputs it) for one window. */
async function modelOf(samples) {
  const input = new agent.Tensor(samples, [1, WINDOW_SAMPLES]);
  let outputs = [];
  try {
    outputs = await agent.model.run([input]);
    const arrays = outputs.map((t) => Float32Array.from(t.toTypedArray()));
    return { scores: arrays[0], embedding: arrays.find((a) => a.length === 1024) || null };
  } finally {
    input.delete();
    for (const t of outputs) t.delete();
  }
}

// -- learned sounds: the site's sound packs, recognised in this phone's windows --------------
async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function takeSoundPack(topic, payload) {
  const sound = topic.split('/').at(-1);
  if (!payload.length) { agent.sounds.delete(sound); return; }
  const source = agent.config.model.source;
  try {
    const pack = await parsePack(payload, { model: 'yamnet', version: source.version, dims: 1024 }, sha256Hex);
    agent.sounds.set(sound, pack);
  } catch (err) {
    agent.soundsRefused += 1;
    console.warn(`refused the sound pack on ${topic}: ${err.message}`);
  }
}

// -- teaching a sound on the phone (embeddings only; the recording never exists as audio) ----
const BACKGROUND_WINDOWS = 240;
const EXAMPLE_MS = 3000;

function keepForTeaching(window, embedding, found) {
  const rec = agent.teach.recording;
  if (rec && performance.now() <= rec.until) rec.windows.push({ embedding, levelDbfs: window.levelDbfs });
  else if (!found && !rec && !agent.teach.examples.length) {
    // While a sound is being taught it sounds between the examples: that is not the room.
    agent.background.push(embedding);
    if (agent.background.length > BACKGROUND_WINDOWS) agent.background.shift();
  }
}

function recordExample() {
  if (agent.teach.recording) return;
  const rec = { until: performance.now() + EXAMPLE_MS, windows: [] };
  agent.teach.recording = rec;
  setText('teach-status', 'Recording: make the sound now…');
  $('teach-record').disabled = true;
  setTimeout(() => {
    // The windows ending inside the 3 s are analysed within a second of it.
    setTimeout(() => {
      agent.teach.recording = null;
      const sound = soundWindows(rec.windows);
      if (sound.length) agent.teach.examples.push(sound);
      const n = agent.teach.examples.length;
      setText('teach-status', sound.length
        ? `Example ${n} recorded (${sound.length} windows of sound). ${n < 3 ? 'Record at least 3.' : 'Record more, or press Learn it.'}`
        : 'Nothing loud enough was heard: try again, closer.');
      $('teach-record').disabled = false;
      $('teach-learn').disabled = n === 0;
    }, 1200);
  }, EXAMPLE_MS);
}

async function learnTaught() {
  const title = $('teach-name').value.trim();
  if (!title) { setText('teach-status', 'Give the sound a name first.'); return; }
  try {
    const learned = learnSound(agent.teach.examples, agent.background);
    const sound = soundId(title);
    const source = agent.config.model.source;
    const pack = await packOf(learned, { site: agent.site, node: agent.node, sound, title,
      version: (agent.sounds.get(sound)?.version ?? 0) + 1, embedding: { model: 'yamnet', version: source.version, dims: 1024 },
      atMs: Date.now(), sha256: sha256Hex });
    if (!agent.client || !agent.connected) throw new Error('not connected to the alert server');
    await new Promise((resolve, reject) => agent.client.publish(`${agent.config.topic_root}/${agent.site}/sounds/${sound}`,
      JSON.stringify(pack), { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())));
    agent.teach = { examples: [], recording: null, learned: { sound, title, quality: learned.quality, warnings: learned.warnings } };
    $('teach-learn').disabled = true;
    const loo = learned.quality.leave_one_out;
    setText('teach-status', `Learned “${title}” from ${learned.quality.examples} examples` +
      (loo == null ? '' : ` (${Math.round(loo * 100)}% recognised leaving one out)`) + '. Every sensor of the home knows it now.' +
      (learned.warnings.length ? ` Note: ${learned.warnings.join('; ')}.` : ''));
  } catch (err) {
    setText('teach-status', `Not learned: ${err.message}`);
  }
}

// -- analysis: 16 kHz samples -> windows -> events -------------------------------------------
function onAudio(block) {
  const now = performance.now();
  agent.lastAudioAt = now;
  if (!agent.builder) {
    // Event time is the audio clock: the wall-clock time of the stream's first sample.
    const streamStartMs = Date.now() - (1000 * block.length) / agent.ctx.sampleRate;
    const nextSeq = Number(localStorage.getItem(seqKey(agent.site, agent.node)) || 0);
    agent.builder = new EventBuilder({ site: agent.site, node: agent.node, streamStartMs,
      source: agent.config.model.source, nextSeq });
  }
  const samples = agent.resampler.process(block);
  // The pattern detectors see every sample at once (they are cheap and must not lag YAMNet).
  for (const detection of agent.patterns.feed(samples)) {
    publishEvent(agent.builder.patternEvent(detection));
    agent.patternsFound += 1;
    setText('agent-patterns', `${agent.patternsFound}`);
  }
  for (const window of agent.windower.feed(samples)) {
    if (agent.pending >= MAX_PENDING_WINDOWS) { agent.stats.dropped += 1; continue; }
    agent.pending += 1;
    agent.queue = agent.queue.then(() => analyse(window)).catch((err) => {
      console.error('analysis failed', err);
      agent.health = { ok: false, reason: `the sound model failed: ${err.message}` };
    }).finally(() => { agent.pending -= 1; });
  }
}

async function analyse(window) {
  const cfg = agent.config.pipeline;
  const gated = window.levelDbfs < cfg.gate_dbfs;
  let labels = [];
  let took = null;
  if (!gated) {
    const began = performance.now();
    const { scores, embedding } = await modelOf(window.samples);
    took = performance.now() - began;
    labels = topLabels(scores, agent.names, cfg.top_k, cfg.min_label_score);
    const found = embedding && agent.sounds.size ? matchSound([...agent.sounds.values()], embedding) : null;
    if (found) publishEvent(agent.builder.personalEvent(window, found[0], found[1], PERSONAL_SOURCE));
    if (embedding) keepForTeaching(window, embedding, found);
  }
  agent.stats.window(window.levelDbfs, gated, took);
  publishEvent(agent.builder.windowEvent({ ...window, gated, labels }));
  showWindow(window.levelDbfs, gated, labels);
}

function publishEvent(event) {
  localStorage.setItem(seqKey(agent.site, agent.node), String(agent.builder.nextSeq));
  agent.outbox.put(event, eventPriority(event)).then(pump, (err) => console.error('outbox', err));
}

function endToEnd() { return agent.config.delivery.mode === 'end-to-end'; }

/** Send what the outbox holds above agent.sentSeq, oldest first (each once per connection). */
async function pump() {
  if (agent.pumping) { agent.pumpAgain = true; return; }
  agent.pumping = true;
  try {
    do {
      agent.pumpAgain = false;
      while (agent.client && agent.connected) {
        const batch = await agent.outbox.after(agent.sentSeq, SEND_BATCH);
        if (!batch.length) break;
        const first = agent.outbox.firstSeq();
        if (first === null || agent.sentSeq < first) agent.resend.start(Date.now()); // none outstanding
        for (const record of batch) {
          agent.client.publish(agent.topics.events, record.payload, { qos: 1 }, (err) => {
            if (err) return;
            agent.published += 1;
            setText('agent-sent', `${agent.published}`);
            if (!endToEnd()) agent.outbox.remove(record.seq).then(() => { agent.delivered += 1; });
          });
          agent.sentSeq = record.seq;
        }
      }
    } while (agent.pumpAgain);
  } finally {
    agent.pumping = false;
  }
}

async function takeAck(payload) {
  const ack = parseAck(payload, { site: agent.site, node: agent.node, nextSeq: nextSeq() });
  if (ack.ignored) {
    agent.acksIgnored += 1;
    console.warn(`ignored the ack on ${agent.topics.ack}: ${ack.ignored}`);
    return;
  }
  if (ack.seq > agent.ackedSeq) { agent.ackedSeq = ack.seq; agent.resend.progress(Date.now()); }
  agent.delivered += await agent.outbox.acknowledge(ack.seq);
}

/** Acks stopped advancing while events are outstanding: send them all again (backing off). */
function resendIfStuck() {
  if (!agent.connected || !endToEnd()) return;
  const first = agent.outbox.firstSeq();
  if (first === null || agent.sentSeq < first || !agent.resend.due(Date.now())) return;
  agent.resend.fired(Date.now());
  agent.sentSeq = -1;
  pump();
}

function showWindow(level, gated, labels) {
  $('agent-meter').value = Math.max(-90, level);
  setText('agent-level-text', `${Math.round(level)} dBFS`);
  const list = $('agent-labels');
  if (gated) {
    list.innerHTML = '<li class="agent-quiet">Quiet</li>';
    return;
  }
  list.innerHTML = labels.slice(0, 3).map(([label, score]) => {
    const pct = Math.round(score * 100);
    const safe = label.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
    return `<li><span class="agent-label">${safe}</span><span class="agent-bar" style="--pct:${pct}%"><span class="sr-only">${pct} percent</span></span></li>`;
  }).join('') || '<li class="agent-quiet">Nothing recognised</li>';
}

// -- MQTT --------------------------------------------------------------------------------------
async function connectMqtt() {
  const { default: mqtt } = await import(agent.config.runtime.mqtt);
  const url = agent.config.broker_url;
  agent.client = mqtt.connect(url, {
    clientId: `soundalert-phone-${agent.site}-${agent.node}`,
    protocolVersion: 4,
    clean: true,
    keepalive: agent.config.keepalive_s,
    reconnectPeriod: 3000,
    connectTimeout: 10000,
    username: agent.config.username || undefined,
    password: agent.config.password || undefined,
    will: { topic: agent.topics.status, payload: status('offline', {}, { will: true }), qos: 1, retain: true },
  });
  agent.client.on('connect', () => {
    agent.connected = true;
    agent.sentSeq = -1; // a new connection: everything unacknowledged goes (again)
    agent.resend.start(Date.now());
    if (endToEnd()) agent.client.subscribe(agent.topics.ack, { qos: 1 });
    agent.client.subscribe(agent.topics.sounds, { qos: 1 });
    setText('agent-mqtt', 'Connected');
    checkHealth(false);
    publishStatus();
    pump();
  });
  agent.client.on('message', (topic, payload) => {
    if (topic === agent.topics.ack && payload.length) takeAck(payload.toString()).catch((err) => console.error('ack', err));
    else if (topic.startsWith(agent.topics.sounds.slice(0, -1))) takeSoundPack(topic, payload.toString()).catch((err) => console.error('pack', err));
  });
  const down = (why) => () => {
    agent.connected = false;
    setText('agent-mqtt', `Not connected (${why}): alerts from this phone cannot get through`);
    render();
  };
  agent.client.on('close', down('connection closed'));
  agent.client.on('offline', down('offline'));
  agent.client.on('error', (err) => {
    agent.connected = false;
    setText('agent-mqtt', `Cannot reach the alert server at ${url}: ${err.message}`);
    render();
  });
}

function publishStatus() {
  if (!agent.client || !agent.connected) return;
  const state = agent.health.ok ? 'online' : 'offline';
  agent.client.publish(agent.topics.status, status(state), { qos: 1, retain: true });
}

// -- listening and its health ------------------------------------------------------------------
function checkHealth(publishChange = true) {
  const before = agent.health;
  agent.health = listeningHealth({
    visible: document.visibilityState === 'visible',
    contextState: agent.ctx ? agent.ctx.state : 'closed',
    trackState: agent.track ? agent.track.readyState : 'ended',
    lastAudioAgoMs: performance.now() - (agent.lastAudioAt ?? agent.startedAt), // grace at start
    modelReady: agent.model !== null,
  });
  if (publishChange && (before.ok !== agent.health.ok || before.reason !== agent.health.reason)) {
    publishStatus(); // at once: the alert service learns it now, not at the next heartbeat
  }
  render();
}

function render() {
  if (!agent.listening) return;
  if (agent.health.ok && agent.connected) {
    say('Listening', `This phone is listening for sounds in the ${roomName(agent.node).toLowerCase()}.`, true);
  } else if (agent.health.ok) {
    say('Listening, but not connected', 'Sounds are recognised here but cannot reach the alert server. Nobody else will be alerted.', false);
  } else {
    say('Not listening', `This phone is NOT listening: ${agent.health.reason}. Keep this page open with the screen on.`, false);
  }
}

async function keepScreenOn() {
  if (!('wakeLock' in navigator)) {
    agent.wakeText = 'this browser cannot keep the screen on';
  } else {
    try {
      agent.wakeLock = await navigator.wakeLock.request('screen');
      agent.wakeText = 'kept on while listening';
      agent.wakeLock.addEventListener('release', () => {
        agent.wakeText = 'the browser let the screen turn off';
        setText('agent-wake', agent.wakeText);
      });
    } catch (err) {
      agent.wakeText = `cannot be kept on (${err.name}): keep it awake in the phone's settings`;
    }
  }
  setText('agent-wake', agent.wakeText.charAt(0).toUpperCase() + agent.wakeText.slice(1));
}

async function startListening() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    say('Cannot listen here', 'The browser only gives the microphone to a secure page: open this page over https:// (or as http://localhost on this device).', false);
    return;
  }
  say('Starting…', 'Loading the sound model and asking for the microphone.', false);
  try {
    await agent.ready;
  } catch (err) {
    say('Cannot listen', `The sound model did not load: ${err.message}`, false);
    return;
  }
  // What was heard before a reload and not yet acknowledged is still here; it goes on connect.
  agent.outbox = await new Outbox(agent.site, agent.node).open();
  agent.resend = new ResendTimer(agent.config.delivery.ack_timeout_s, agent.config.delivery.ack_timeout_max_s);
  try {
    agent.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    say('No microphone', `The microphone was not allowed or is missing (${err.name}). Allow it in the browser's site settings, then reload.`, false);
    return;
  }
  agent.track = agent.stream.getAudioTracks()[0];
  agent.ctx = new AudioContext({ latencyHint: 'playback' });
  await agent.ctx.audioWorklet.addModule('/static/agent/capture-worklet.js');
  const source = agent.ctx.createMediaStreamSource(agent.stream);
  agent.worklet = new AudioWorkletNode(agent.ctx, 'soundalert-capture', { numberOfInputs: 1, numberOfOutputs: 1 });
  agent.worklet.port.onmessage = (e) => onAudio(e.data);
  source.connect(agent.worklet);
  agent.worklet.connect(agent.ctx.destination); // pulls the graph; the worklet outputs silence
  agent.resampler = new Resampler(agent.ctx.sampleRate);
  agent.windower = new Windower(hopSamples(agent.config.pipeline.hop_s));
  const { exports } = await WebAssembly.instantiate(agent.patternsWasm, {});
  agent.patterns = new PatternDetector(exports);
  agent.patternsFound = 0;
  agent.builder = null;
  agent.startedAt = performance.now();
  agent.listening = true;
  await agent.ctx.resume();
  $('agent-setup').hidden = true;
  $('agent-live').hidden = false;
  setText('agent-where', `Room: ${roomName(agent.node)} · Home: ${roomName(agent.site)}`);
  await keepScreenOn();
  checkHealth(); // before connecting: the first status says what is true now
  await connectMqtt();
  agent.timers.push(setInterval(() => { checkHealth(); resendIfStuck(); }, HEALTH_EVERY_MS));
  agent.timers.push(setInterval(() => {
    if (agent.client && agent.connected) {
      agent.client.publish(agent.topics.status, status(agent.health.ok ? 'online' : 'offline'), { qos: 1, retain: true });
    }
  }, agent.config.heartbeat_s * 1000));
}

function stopListening() {
  for (const t of agent.timers) clearInterval(t);
  agent.timers = [];
  agent.listening = false;
  if (agent.client) {
    const client = agent.client;
    agent.client = null;
    client.publish(agent.topics.status, status('stopped'), { qos: 1, retain: true }, () => client.end());
  }
  agent.stream?.getTracks().forEach((t) => t.stop());
  agent.ctx?.close();
  agent.wakeLock?.release().catch(() => {});
  agent.ctx = null; agent.track = null;
  $('agent-live').hidden = true;
  $('agent-setup').hidden = false;
  say('Not listening', 'You stopped listening. The alert service shows this phone as stopped.', false);
}

document.addEventListener('visibilitychange', () => {
  if (!agent.listening) return;
  if (document.visibilityState === 'visible') {
    agent.ctx?.resume().catch(() => {});
    if (!agent.wakeLock || agent.wakeLock.released) keepScreenOn();
  }
  checkHealth(); // hidden: publishes "offline" now, while the page can still run
});

window.addEventListener('pagehide', () => {
  // Best effort: the last will fires anyway when the socket dies.
  if (agent.client && agent.connected) {
    agent.health = { ok: false, reason: 'the page was closed' };
    agent.client.publish(agent.topics.status, status('offline'), { qos: 1, retain: true });
  }
});

// -- setup -------------------------------------------------------------------------------------
function takeFromUrl() {
  const url = new URL(location.href);
  let changed = false;
  for (const [param, key] of [['site', SITE_KEY], ['node', NODE_KEY]]) {
    const value = url.searchParams.get(param);
    if (value) { localStorage.setItem(key, value); url.searchParams.delete(param); changed = true; }
  }
  if (changed) history.replaceState(null, '', url.pathname + url.search + url.hash);
}

function fillSetup(config) {
  const sites = config.sites;
  const siteInput = $('agent-site');
  const remembered = localStorage.getItem(SITE_KEY);
  if (sites && sites.length) {
    $('agent-site-choices').innerHTML = sites.map((s) => `<option value="${s}"></option>`).join('');
    siteInput.value = sites.includes(remembered) ? remembered : sites[0];
  } else {
    siteInput.value = remembered || 'home';
  }
  $('agent-node').value = localStorage.getItem(NODE_KEY) || '';
}

function wireSetup(config) {
  $('agent-setup').addEventListener('submit', (e) => {
    e.preventDefault();
    const site = $('agent-site').value.trim();
    const node = $('agent-node').value.trim();
    const problem = !validId(site) ? 'The home name may use letters, digits, - and _ only.'
      : config.sites && !config.sites.includes(site) ? `This access token is for ${config.sites.join(', ')} only.`
        : !validNodeId(node) ? 'Name the room with letters, digits, - and _ only (for example kitchen or bedroom-2).' : '';
    setText('agent-setup-error', problem);
    if (problem) return;
    localStorage.setItem(SITE_KEY, site);
    localStorage.setItem(NODE_KEY, node);
    agent.site = site; agent.node = node;
    agent.topics = topics(config.topic_root, site, node);
    startListening();
  });
  $('agent-stop').addEventListener('click', stopListening);
  $('teach-record').addEventListener('click', recordExample);
  $('teach-learn').addEventListener('click', learnTaught);
}

/** Test and diagnostics hook: 16 kHz samples through the same windowing and model path. */
async function analyseSamples(samples, hopS = DEFAULT_PIPELINE.hop_s) {
  await agent.ready;
  const windower = new Windower(hopSamples(hopS));
  const out = [];
  for (const w of windower.feed(Float32Array.from(samples))) {
    const { scores, embedding } = await modelOf(w.samples);
    const found = embedding && agent.sounds.size ? matchSound([...agent.sounds.values()], embedding) : null;
    out.push({ index: w.index, start_sample: w.startSample, level_dbfs: w.levelDbfs, scores: Array.from(scores),
      embedding: embedding ? Array.from(embedding) : null, sound: found,
      labels: topLabels(scores, agent.names, agent.config.pipeline.top_k, agent.config.pipeline.min_label_score) });
  }
  return out;
}

async function main() {
  takeFromUrl();
  window.soundalertAgent = { analyseSamples, state: () => ({ listening: agent.listening, health: agent.health,
    connected: agent.connected, published: agent.published, stats: agent.stats.summary(), wake: agent.wakeText,
    sampleRate: agent.ctx?.sampleRate ?? null, delivered: agent.delivered, ackedSeq: agent.ackedSeq,
    acksIgnored: agent.acksIgnored, nextSeq: agent.site ? nextSeq() : null,
    sounds: [...agent.sounds.keys()], soundsRefused: agent.soundsRefused, taught: agent.teach.learned,
    examples: agent.teach.examples.length, background: agent.background.length,
    outbox: agent.outbox ? { seqs: [...agent.outbox.held.keys()], pendingFromSeq: agent.outbox.pendingFromSeq(nextSeq()),
      ...agent.outbox.figures() } : null }) };
  if (!localStorage.getItem(TOKEN_KEY)) {
    say('Access token needed', 'Enter the access token to set this phone up as a listening sensor.', false);
    return;
  }
  try {
    agent.config = await getJson('/api/agent/config');
  } catch (err) {
    say('Cannot set up', `The server did not give this phone its settings: ${err.message}`, false);
    return;
  }
  agent.ready = loadModel(agent.config);
  window.soundalertAgent.ready = agent.ready.then(() => true, (err) => { throw err; });
  fillSetup(agent.config);
  wireSetup(agent.config);
  if (!agent.config.broker_url) {
    say('No alert server link', 'This server has no MQTT websocket configured (agent_broker_ws), so this phone cannot report sounds.', false);
    $('agent-start').disabled = true;
    return;
  }
  say('Not listening yet', 'Choose this phone\'s room, then start listening. The sound model runs on this phone: no audio leaves it.', false);
  $('agent-setup').hidden = false;
  agent.ready.catch((err) => say('Cannot listen', `The sound model did not load: ${err.message}`, false));
}

main();
