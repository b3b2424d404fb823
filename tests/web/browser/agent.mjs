// Drives the phone agent page (/agent) in Debian's chromium (playwright-core), step by step with
// tests/web/test_agent_browser.py: JSON lines on stdout say what happened, JSON lines on stdin say
// what the test saw. Every byte the page sends on its websockets is kept and parsed as MQTT, so the
// test can check that only event and status JSON leaves the phone.
//
// MODE=scores : feed SAMPLES_FILE (float32 little-endian, 16 kHz) through the page's windowing and
//               model path (window.soundalertAgent.analyseSamples), write the scores to SCORES_OUT.
// MODE=listen : listen to the fake microphone (AUDIO_FILE), show the alert, screenshot, close.
// MODE=delivery: listen to AUDIO_FILE, then do what the test asks ({"step": "do", "do": "state" |
//               "stop" | "reload" | "close"}), answering {"step": "done", "state": ...} each time.
import { createInterface } from 'node:readline';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const { AGENT_URL, CHROMIUM = '/usr/bin/chromium', MODE, AUDIO_FILE, SHOTS } = process.env;

const reader = createInterface({ input: process.stdin });
const lines = reader[Symbol.asyncIterator]();
const say = (doc) => process.stdout.write(`${JSON.stringify(doc)}\n`);
async function hear(step) {
  const { value, done } = await lines.next();
  if (done) throw new Error(`stdin closed while waiting for ${step}`);
  const doc = JSON.parse(value);
  if (doc.step !== step) throw new Error(`expected step ${step}, got ${value}`);
  return doc;
}

// -- MQTT 3.1.1 packets out of websocket frames ----------------------------------------------
const TYPES = { 1: 'CONNECT', 3: 'PUBLISH', 4: 'PUBACK', 6: 'PUBREL', 8: 'SUBSCRIBE', 10: 'UNSUBSCRIBE', 12: 'PINGREQ', 14: 'DISCONNECT' };
class MqttStream {
  constructor() { this.buffer = Buffer.alloc(0); this.packets = []; this.frameBytes = 0; this.packetBytes = 0; this.textFrames = 0; }

  push(payload) {
    if (typeof payload === 'string') { this.textFrames += 1; payload = Buffer.from(payload); }
    this.frameBytes += payload.length;
    this.buffer = Buffer.concat([this.buffer, payload]);
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      let length = 0; let mult = 1; let i = 1;
      for (;; i++) {
        if (i >= b.length) return;
        length += (b[i] & 0x7f) * mult; mult *= 128;
        if (!(b[i] & 0x80)) break;
      }
      const start = i + 1;
      if (b.length < start + length) return;
      this.packets.push(parse(b[0], b.subarray(start, start + length), start + length));
      this.packetBytes += start + length;
      this.buffer = b.subarray(start + length);
    }
  }
}
function str(body, at) { const n = body.readUInt16BE(at); return [body.subarray(at + 2, at + 2 + n), at + 2 + n]; }
function parse(first, body, bytes) {
  const type = TYPES[first >> 4] || `type${first >> 4}`;
  const packet = { type, bytes, at_ms: Date.now() };
  if (type === 'CONNECT') {
    let [name, at] = str(body, 0);
    packet.protocol = name.toString(); packet.level = body[at]; const flags = body[at + 1];
    packet.keepalive = body.readUInt16BE(at + 2); at += 4;
    let id; [id, at] = str(body, at); packet.client_id = id.toString();
    if (flags & 0x04) {
      let topic; let payload; [topic, at] = str(body, at); [payload, at] = str(body, at);
      packet.will = { topic: topic.toString(), payload: payload.toString('utf8'), qos: (flags >> 3) & 3, retain: !!(flags & 0x20) };
    }
    packet.username = !!(flags & 0x80); packet.password = !!(flags & 0x40);
  } else if (type === 'PUBLISH') {
    const qos = (first >> 1) & 3;
    let [topic, at] = str(body, 0);
    if (qos) at += 2;
    const payload = body.subarray(at);
    Object.assign(packet, { topic: topic.toString(), qos, retain: !!(first & 1), payload: payload.toString('utf8'), payload_bytes: payload.length });
  } else if (type === 'SUBSCRIBE') {
    packet.topics = [];
    for (let at = 2; at < body.length;) { let topic; [topic, at] = str(body, at); packet.topics.push(topic.toString()); at += 1; }
  }
  return packet;
}

// -- the browser -----------------------------------------------------------------------------
const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];
if (MODE === 'listen' || MODE === 'delivery' || MODE === 'teach') {
  args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${AUDIO_FILE}`);
}
const profile = mkdtempSync(join(tmpdir(), 'soundalert-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, headless: true, args,
  locale: 'en-GB', timezoneId: 'UTC',
  viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, reducedMotion: 'reduce',
  permissions: MODE === 'scores' ? [] : ['microphone'],
});
const streams = [];
const received = [];
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('pageerror', (err) => say({ step: 'log', error: String(err) }));
  page.on('console', (m) => { if (m.type() === 'error') say({ step: 'log', console: m.text() }); });
  page.on('websocket', (ws) => {
    const stream = new MqttStream();
    streams.push({ url: ws.url(), stream });
    ws.on('framesent', (frame) => stream.push(frame.payload));
    ws.on('framereceived', (frame) => received.push(typeof frame.payload === 'string' ? -1 : frame.payload.length));
  });
  // As on a phone where the person allowed it: the screen may be kept on (Wake Lock API).
  const cdp = await browser.newCDPSession(page);
  await cdp.send('Browser.setPermission', { permission: { name: 'screen-wake-lock' }, setting: 'granted' })
    .catch((err) => say({ step: 'log', console: `wake lock permission: ${err.message}` }));
  const openedMs = Date.now();
  const response = await page.goto(AGENT_URL);
  if (response.status() !== 200) throw new Error(`/agent answered ${response.status()}`);
  await page.waitForFunction(() => window.soundalertAgent && window.soundalertAgent.ready, null, { timeout: 20000 });
  await page.evaluate(() => window.soundalertAgent.ready);
  say({ step: 'ready', model_load_ms: Date.now() - openedMs }); // page, runtime and model

  const state = () => page.evaluate(() => window.soundalertAgent.state());
  const start = async () => {
    await page.getByRole('button', { name: 'Start listening' }).click();
    await page.waitForFunction(() => {
      const s = window.soundalertAgent.state();
      return s.listening && s.connected && s.health.ok;
    }, null, { timeout: 30000, polling: 100 });
  };
  if (MODE === 'delivery') {
    await start();
    say({ step: 'listening', state: await state() });
    for (;;) {
      const { do: what } = await hear('do');
      if (what === 'close') break;
      if (what === 'stop') {
        await page.getByRole('button', { name: 'Stop listening' }).click();
        await page.waitForFunction(() => !window.soundalertAgent.state().listening, null, { timeout: 10000 });
      } else if (what === 'reload') {
        await page.reload();
        await page.waitForFunction(() => window.soundalertAgent && window.soundalertAgent.ready, null, { timeout: 20000 });
        await page.evaluate(() => window.soundalertAgent.ready);
        await start();
      }
      say({ step: 'done', do: what, state: await state() });
    }
    await page.close();
  } else if (MODE === 'scores') {
    const raw = readFileSync(process.env.SAMPLES_FILE);
    const samples = Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4));
    const began = Date.now();
    const windows = await page.evaluate((x) => window.soundalertAgent.analyseSamples(x), samples);
    writeFileSync(process.env.SCORES_OUT, JSON.stringify(windows));
    say({ step: 'scores', windows: windows.length, ms: Date.now() - began });
  } else if (MODE === 'teach') {
    // "Teach a sound": five examples from the (fake) microphone, then Learn it; then it listens on.
    await page.getByRole('button', { name: 'Start listening' }).click();
    // The recording is TEACH_AFTER_S of room, then the sound: teach once the page heard that far.
    const after = Math.ceil(Number(process.env.TEACH_AFTER_S) / 0.48);
    await page.waitForFunction((n) => { const s = window.soundalertAgent.state(); return s.listening && s.connected && s.stats.windows >= n; },
      after, { timeout: 60000, polling: 100 }).catch(async (err) => { throw new Error(`${err.message}: ${JSON.stringify(await state())}`); });
    await page.fill('#teach-name', 'Microwave');
    for (let i = 1; i <= 5; i += 1) {
      await page.getByRole('button', { name: 'Record an example (3 s)' }).click();
      await page.waitForFunction((n) => window.soundalertAgent.state().examples >= n
        || /Nothing loud/.test(document.getElementById('teach-status').textContent), i, { timeout: 15000, polling: 100 });
      await page.waitForFunction(() => !document.getElementById('teach-record').disabled, null, { timeout: 15000 });
    }
    await page.getByRole('button', { name: 'Learn it' }).click();
    await page.waitForFunction(() => window.soundalertAgent.state().taught
      || /Not learned/.test(document.getElementById('teach-status').textContent), null, { timeout: 15000, polling: 100 });
    say({ step: 'taught', status: await page.textContent('#teach-status'), state: await state() });
    await hear('close');
    say({ step: 'closing', state: await state() });
    await page.close();
  } else {
    // First use: the room and home come from the address (remembered), the person presses Start.
    await page.getByRole('button', { name: 'Start listening' }).click();
    await page.waitForFunction(() => {
      const s = window.soundalertAgent.state();
      return s.listening && s.connected && s.health.ok && s.published > 0;
    }, null, { timeout: 30000, polling: 100 });
    const listening = await page.evaluate(() => ({ ...window.soundalertAgent.state(), title: document.getElementById('agent-title').textContent,
      reason: document.getElementById('agent-reason').textContent, url: location.href }));
    say({ step: 'listening', listening, at_ms: Date.now() });

    await hear('alerted');
    // The same page shows the alert (the display's code), while it keeps listening.
    await page.waitForFunction(() => document.getElementById('alert').dataset.category === 'smoke_alarm'
      && !document.getElementById('alert').hidden, null, { timeout: 10000 });
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: `${SHOTS}/agent-phone-alert.png`, animations: 'disabled' });
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await page.waitForFunction(() => document.getElementById('alert').hidden, null, { timeout: 10000 });
    // Listening, with what it hears now and the acknowledged alert in the history.
    await page.waitForFunction(() => /smoke alarm/i.test(document.getElementById('agent-labels').textContent),
      null, { timeout: 20000, polling: 100 });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${SHOTS}/agent-phone.png`, animations: 'disabled' });
    const shown = await page.evaluate(() => ({ ...window.soundalertAgent.state(),
      labels: document.getElementById('agent-labels').textContent, wake: document.getElementById('agent-wake').textContent }));
    say({ step: 'shot', shown });

    await hear('close');
    const closingMs = Date.now();
    await page.close();
    say({ step: 'closed', closing_ms: closingMs });
  }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
say({
  step: 'frames',
  sockets: streams.map(({ url, stream }) => ({ url, frame_bytes: stream.frameBytes, packet_bytes: stream.packetBytes,
    leftover_bytes: stream.buffer.length, text_frames: stream.textFrames, packets: stream.packets })),
  received_frames: received.length,
});
reader.close();
