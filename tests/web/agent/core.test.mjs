// Unit tests of the phone agent's pure core (services/web/static/agent/core.js), under node.
// Run from pytest (tests/web/test_agent_core.py), which writes GOLDEN: what the Python agent
// (edge/agent) computes for the same inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  EventBuilder, ResendTimer, Resampler, Stats, WINDOW_SAMPLES, Windower, eventPriority, hopSamples, isoMicros,
  levelDbfs, listeningHealth, parseAck, parseClassMap, round, statusDoc, topLabels, topics,
} from '../../../services/web/static/agent/core.js';

const golden = process.env.GOLDEN ? JSON.parse(readFileSync(process.env.GOLDEN, 'utf8')) : null;
const needGolden = { skip: golden ? false : 'GOLDEN not set (run through pytest)' };

test('windows and levels match the Python windower, whatever the block sizes', needGolden, () => {
  const signal = Float32Array.from(golden.windowing.signal);
  const windower = new Windower(hopSamples(golden.windowing.hop_s));
  const got = [];
  let at = 0;
  for (const size of golden.windowing.blocks) {
    for (const w of windower.feed(signal.subarray(at, at + size))) {
      got.push([w.index, w.startSample, w.levelDbfs, w.samples.length, w.samples[0], w.samples[WINDOW_SAMPLES - 1]]);
    }
    at += size;
  }
  assert.equal(got.length, golden.windowing.windows.length);
  for (const [i, [index, start, level, n, first, last]] of got.entries()) {
    const [pIndex, pStart, pLevel, pFirst, pLast] = golden.windowing.windows[i];
    assert.equal(index, pIndex);
    assert.equal(start, pStart);
    assert.ok(Math.abs(level - pLevel) < 1e-9, `window ${i}: level ${level} vs ${pLevel}`);
    assert.equal(n, WINDOW_SAMPLES);
    assert.equal(first, pFirst);
    assert.equal(last, pLast);
  }
});

test('top-k labels match the Python rule (clip, NaN, ties by index, rounding, floor)', needGolden, () => {
  const names = golden.labels.names;
  for (const { scores, k, min_score: minScore, expected } of golden.labels.cases) {
    const x = Float32Array.from(scores.map((s) => (s === null ? NaN : s)));
    assert.deepEqual(topLabels(x, names, k, minScore), expected);
  }
});

test('the class map CSV parses like the Python LabelMap', needGolden, () => {
  const names = parseClassMap(readFileSync(golden.class_map.path, 'utf8'));
  assert.deepEqual(names, golden.class_map.names);
});

test('events match the Python EventBuilder (ids, times, seq, rounding)', needGolden, () => {
  const g = golden.events;
  const builder = new EventBuilder({ site: g.site, node: g.node, streamStartMs: g.stream_start_ms, source: g.source, nextSeq: g.next_seq });
  for (const { verdict, expected } of g.cases) {
    const event = builder.windowEvent({ startSample: verdict.start_sample, endSample: verdict.end_sample,
      levelDbfs: verdict.level_dbfs, gated: verdict.gated, labels: verdict.labels });
    assert.deepEqual(event, expected);
  }
});

test('rounding follows Python (ties to even on exact halves)', needGolden, () => {
  for (const [value, decimals, expected] of golden.rounding) assert.equal(round(value, decimals), expected, `${value}`);
});

test('the level of silence and of a full-scale square wave', () => {
  assert.equal(levelDbfs(new Float32Array(100)), -120);
  assert.equal(levelDbfs(new Float32Array(0)), -120);
  assert.ok(Math.abs(levelDbfs(Float32Array.from({ length: 1000 }, (_, i) => (i % 2 ? 1 : -1)))) < 1e-12);
});

function tone(freq, rate, n, amp = 0.5) {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}
function rms(x, from = 0) {
  let s = 0; for (let i = from; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / (x.length - from));
}

for (const rate of [48000, 44100]) {
  test(`resampling ${rate} Hz to 16 kHz keeps a 1 kHz tone and removes a 10 kHz one`, () => {
    const n = rate; // one second
    const keep = new Resampler(rate).process(tone(1000, rate, n));
    assert.ok(Math.abs(keep.length - 16000) < 100, `got ${keep.length} samples`);
    const expected = tone(1000, 16000, keep.length);
    const settled = 200; // past the filter's start-up
    let err = 0; for (let i = settled; i < keep.length - 10; i++) err = Math.max(err, Math.abs(keep[i] - expected[i]));
    assert.ok(err < 2e-3, `1 kHz tone off by ${err}`);
    const gone = new Resampler(rate).process(tone(10000, rate, n));
    const db = 20 * Math.log10(rms(gone, settled) / (0.5 / Math.SQRT2));
    assert.ok(db < -60, `10 kHz alias only ${db.toFixed(1)} dB down`);
  });

  test(`resampling ${rate} Hz in blocks equals resampling at once`, () => {
    const x = Float32Array.from({ length: 20000 }, (_, i) => Math.sin(i * 0.37) * Math.cos(i * 0.011));
    const whole = new Resampler(rate).process(x);
    const r = new Resampler(rate);
    const parts = [];
    for (let at = 0, size = 1; at < x.length; at += size, size = (size * 7 + 3) % 3000 + 1) parts.push(...r.process(x.subarray(at, at + size)));
    assert.equal(parts.length, whole.length);
    for (let i = 0; i < whole.length; i++) assert.equal(parts[i], whole[i]);
  });
}

test('16 kHz input passes through unchanged', () => {
  const x = tone(440, 16000, 5000);
  assert.deepEqual(new Resampler(16000).process(x), x);
});

test('timestamps carry microseconds like the Python agent', () => {
  assert.equal(isoMicros(Date.UTC(2026, 10, 21, 19, 57, 20, 480) * 1000 + 62), '2026-11-21T19:57:20.480062Z');
});

test('topics refuse ids a topic cannot carry', () => {
  assert.deepEqual(topics('soundalert/v1', 'home', 'kitchen'), { events: 'soundalert/v1/home/kitchen/events', status: 'soundalert/v1/home/kitchen/status',
    ack: 'soundalert/v1/home/kitchen/ack', sounds: 'soundalert/v1/home/sounds/+' });
  assert.throws(() => topics('soundalert/v1', 'home', 'alerts'));
  assert.throws(() => topics('soundalert/v1', 'home', 'sounds'));
  assert.throws(() => topics('soundalert/v1', 'home/x', 'kitchen'));
  assert.throws(() => topics('soundalert/v1', 'home', '#'));
});

test('listening health names the reason a page cannot be trusted', () => {
  const good = { visible: true, contextState: 'running', trackState: 'live', lastAudioAgoMs: 100, modelReady: true };
  assert.deepEqual(listeningHealth(good), { ok: true, reason: '' });
  assert.match(listeningHealth({ ...good, visible: false }).reason, /background|locked/);
  assert.match(listeningHealth({ ...good, contextState: 'suspended' }).reason, /suspended/);
  assert.match(listeningHealth({ ...good, trackState: 'ended' }).reason, /microphone/);
  assert.match(listeningHealth({ ...good, lastAudioAgoMs: 5000 }).reason, /no sound/);
  assert.match(listeningHealth({ ...good, modelReady: false }).reason, /model/);
});

test('status documents and heartbeat figures', () => {
  const stats = new Stats();
  stats.window(-40.04, false, 12); stats.window(-80, true, null); stats.window(-30, false, 20);
  const doc = statusDoc({ site: 'home', node: 'kitchen', state: 'online', atMs: Date.UTC(2026, 0, 1), heartbeatS: 15,
    software: 'soundalert-phone-agent test', stats: stats.summary() });
  assert.equal(doc.schema, 'soundalert.status/1');
  assert.equal(doc.at, '2026-01-01T00:00:00.000000Z');
  assert.deepEqual(doc.stats, { windows: 3, windows_gated: 1, windows_dropped: 0, level_dbfs: -30, level_max_dbfs: -30,
    inference_ms_mean: 16, inference_ms_p95: 20, inference_ms_max: 20 });
});

test('status documents carry the end-to-end delivery floor when given', () => {
  const base = { site: 'home', node: 'kitchen', state: 'online', atMs: 0, heartbeatS: 15, software: 't' };
  assert.equal('pending_from_seq' in statusDoc(base), false, 'not in the last will');
  const doc = statusDoc({ ...base, pendingFromSeq: 7, nextSeq: 12 });
  assert.equal(doc.pending_from_seq, 7);
  assert.equal(doc.next_seq, 12);
  assert.equal(topics('r/v1', 'home', 'kitchen').ack, 'r/v1/home/kitchen/ack');
});

test('acks apply below the next seq; from an earlier life, another node or malformed they are ignored', () => {
  const ack = (fields) => JSON.stringify({ schema: 'soundalert.ack/1', site: 'home', node: 'kitchen', seq: 4,
    at: '2026-01-01T00:00:00Z', ...fields });
  const me = { site: 'home', node: 'kitchen', nextSeq: 10 };
  assert.deepEqual(parseAck(ack({}), me), { seq: 4 });
  assert.deepEqual(parseAck(ack({ seq: -1 }), me), { seq: -1 });
  assert.deepEqual(parseAck(ack({ seq: 10 }), me), { ignored: 'earlier_life' });
  assert.deepEqual(parseAck(ack({ node: 'hall' }), me), { ignored: 'topic_mismatch' });
  assert.deepEqual(parseAck(ack({ seq: 2 ** 53 }), me), { ignored: 'schema_violation' });
  assert.deepEqual(parseAck(ack({ seq: '4' }), me), { ignored: 'schema_violation' });
  assert.deepEqual(parseAck(ack({ schema: 'soundalert.ack/2' }), me), { ignored: 'schema_violation' });
  assert.deepEqual(parseAck('{not json', me), { ignored: 'malformed_json' });
});

test('outstanding events go again when acks stop: 30 s, doubling to the maximum, reset on progress', () => {
  const timer = new ResendTimer(30, 100);
  timer.start(0);
  assert.equal(timer.due(29_999), false);
  assert.equal(timer.due(30_000), true);
  timer.fired(30_000);
  assert.equal(timer.due(89_999), false, 'then 60 s');
  timer.fired(90_000);
  timer.fired(190_000);
  assert.equal(timer.wait, 100_000, 'capped');
  timer.progress(200_000);
  assert.equal(timer.due(229_999), false);
  assert.equal(timer.due(230_000), true, 'back to 30 s after an ack advanced');
});

test('outbox priority as the Python agent: patterns, then labelled windows, then quiet ones', () => {
  assert.equal(eventPriority({ source: { kind: 'pattern' }, labels: [{ label: 't3', score: 0.9 }] }), 2);
  assert.equal(eventPriority({ source: { kind: 'yamnet' }, labels: [{ label: 'Speech', score: 0.4 }] }), 1);
  assert.equal(eventPriority({ source: { kind: 'yamnet' }, labels: [] }), 0);
});
