// The phone agent's pure core: resampling, windowing, the level gate, top-k labels, and the
// wire messages. No DOM, no audio API, no MQTT, no model: runs under node for the unit tests
// (tests/web/agent/core.test.mjs), which check it against the Python agent.
//
// A faithful port of edge/agent/windowing.py, labels.py and events.py:
// * window i covers samples [i * hop, i * hop + 15600) of the 16 kHz stream;
// * its level is 10 * log10(mean(x^2)) dBFS, floored at -120; below the gate, no inference;
// * a window reports its top_k labels scoring at least min_score, best first (ties by class
//   index), scores clipped to [0, 1] and rounded to 4 decimals;
// * event ids are <node>.<stream start in ms>.<start sample>; event time is the audio clock,
//   stream start + sample / 16000; one per-node seq counter.

export const SAMPLE_RATE = 16000;
export const WINDOW_SAMPLES = 15600; // 0.975 s: YAMNet's input length
export const DEFAULT_HOP_S = 0.48;
export const LEVEL_FLOOR_DBFS = -120;
export const SCORE_DECIMALS = 4;
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const RESERVED_NODE_IDS = new Set(['alerts', 'feedback', 'sounds']);
export const EVENT_SCHEMA = 'soundalert.event/1';
export const STATUS_SCHEMA = 'soundalert.status/1';
export const ACK_SCHEMA = 'soundalert.ack/1';

export const DEFAULT_PIPELINE = Object.freeze({ hop_s: DEFAULT_HOP_S, gate_dbfs: -70, top_k: 10, min_label_score: 0.05 });

export function hopSamples(hopS) {
  const hop = Math.round(hopS * SAMPLE_RATE);
  if (!(hop >= 1 && hop <= WINDOW_SAMPLES * 4)) throw new RangeError(`hop of ${hopS} s is outside 1 sample .. 3.9 s`);
  return hop;
}

/** RMS level of x in dBFS (a full-scale square wave is 0 dBFS), accumulated in float64. */
export function levelDbfs(x) {
  if (x.length === 0) return LEVEL_FLOOR_DBFS;
  let power = 0;
  for (let i = 0; i < x.length; i++) power += x[i] * x[i];
  power /= x.length;
  if (power <= 0) return LEVEL_FLOOR_DBFS;
  return Math.max(LEVEL_FLOOR_DBFS, 10 * Math.log10(power));
}

/** Turns blocks of any size into overlapping windows; keeps only what the next one needs. */
export class Windower {
  constructor(hop) {
    if (!(hop >= 1)) throw new RangeError('hop must be at least one sample');
    this.hop = hop;
    this.buffer = new Float32Array(0);
    this.bufferStart = 0; // stream sample index of buffer[0]
    this.nextStart = 0;
    this.index = 0;
    this.samplesSeen = 0;
  }

  feed(block) {
    const x = block instanceof Float32Array ? block : Float32Array.from(block);
    this.samplesSeen += x.length;
    if (this.buffer.length) {
      const joined = new Float32Array(this.buffer.length + x.length);
      joined.set(this.buffer);
      joined.set(x, this.buffer.length);
      this.buffer = joined;
    } else {
      this.buffer = x.slice();
    }
    const out = [];
    while (this.nextStart + WINDOW_SAMPLES <= this.bufferStart + this.buffer.length) {
      const lo = this.nextStart - this.bufferStart;
      const samples = this.buffer.slice(lo, lo + WINDOW_SAMPLES);
      out.push({ index: this.index, startSample: this.nextStart, endSample: this.nextStart + WINDOW_SAMPLES,
        samples, levelDbfs: levelDbfs(samples) });
      this.index += 1;
      this.nextStart += this.hop;
    }
    const drop = Math.min(this.nextStart - this.bufferStart, this.buffer.length);
    if (drop > 0) {
      this.buffer = this.buffer.slice(drop);
      this.bufferStart += drop;
    }
    return out;
  }
}

/**
 * Streaming sample-rate conversion to 16 kHz: a Blackman-windowed sinc low-pass evaluated at
 * each output instant (any ratio, 44.1 or 48 kHz in practice), cut off at 0.45 x the lower of
 * the two rates, 24 zero crossings each side. Output sample n is at input time n * inRate / 16000.
 */
export class Resampler {
  constructor(inRate, outRate = SAMPLE_RATE, { zeros = 24 } = {}) {
    if (!(inRate > 0 && outRate > 0)) throw new RangeError('rates must be positive');
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.cutoff = 0.45 * Math.min(1, outRate / inRate); // cycles per input sample
    this.half = Math.ceil(zeros / (2 * this.cutoff)); // half-width, input samples
    this.history = new Float32Array(0);
    this.historyStart = 0; // stream index of history[0]
    this.nextOut = 0; // index of the next output sample
    this.passthrough = inRate === outRate;
    this.cache = new Map();
  }

  kernel(d) {
    const fc = this.cutoff;
    const x = 2 * fc * d;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
    const w = d / this.half; // -1 .. 1
    const blackman = 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
    return 2 * fc * sinc * blackman;
  }

  /** Normalised kernel taps for offsets t - lo, t - lo - 1, ... (cached by phase). */
  taps(first) {
    const key = Math.round(first * 1e6);
    let taps = this.cache.get(key);
    if (!taps) {
      const n = 2 * this.half + 1;
      taps = new Float64Array(n);
      let norm = 0;
      for (let i = 0; i < n; i++) {
        const d = first - i;
        taps[i] = Math.abs(d) <= this.half ? this.kernel(d) : 0;
        norm += taps[i];
      }
      for (let i = 0; i < n; i++) taps[i] /= norm;
      if (this.cache.size > 4096) this.cache.clear();
      this.cache.set(key, taps);
    }
    return taps;
  }

  /** Feed input samples (Float32Array); returns the 16 kHz samples now computable. */
  process(block) {
    if (this.passthrough) return block.slice();
    const joined = new Float32Array(this.history.length + block.length);
    joined.set(this.history);
    joined.set(block, this.history.length);
    const end = this.historyStart + joined.length; // stream index one past the last input
    const out = [];
    for (;;) {
      const t = this.nextOut * this.step;
      const hi = Math.floor(t) + this.half;
      if (hi >= end) break;
      const lo = Math.ceil(t) - this.half;
      const taps = this.taps(t - lo);
      let acc = 0;
      for (let k = lo; k <= hi; k++) {
        const j = k - this.historyStart;
        if (j >= 0) acc += joined[j] * taps[k - lo]; // before the stream began: silence
      }
      out.push(acc);
      this.nextOut += 1;
    }
    const keepFrom = Math.max(this.historyStart, Math.ceil(this.nextOut * this.step) - this.half - 1);
    this.history = joined.slice(keepFrom - this.historyStart);
    this.historyStart = keepFrom;
    return Float32Array.from(out);
  }
}

/** Class index -> display name, from the model's index,mid,display_name CSV. */
export function parseClassMap(text) {
  const rows = parseCsv(text);
  const header = rows.shift() || [];
  const iIndex = header.indexOf('index');
  const iName = header.indexOf('display_name');
  if (iIndex < 0 || iName < 0) throw new Error('expected a CSV with columns index,mid,display_name');
  const names = new Array(rows.length).fill('');
  for (const row of rows) {
    const index = Number(row[iIndex]);
    if (!Number.isInteger(index) || index < 0 || index >= rows.length) throw new Error(`class index ${row[iIndex]} out of range`);
    names[index] = (row[iName] || '').trim();
  }
  if (names.some((n) => !n)) throw new Error('missing or empty class names');
  return names;
}

function parseCsv(text) {
  const rows = [];
  let row = []; let field = ''; let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/**
 * Python's round(value, decimals): the exact binary value rounded, ties (exact halves, such as
 * -35.25) to even. Number.toFixed alone rounds ties away from zero.
 */
export function round(value, decimals) {
  const [whole, frac] = Math.abs(value).toFixed(decimals + 30).split('.');
  if (/^50*$/.test(frac.slice(decimals))) {
    const digits = whole + frac.slice(0, decimals);
    if (Number(digits.at(-1)) % 2 === 0) {
      const down = Number(decimals ? `${whole}.${frac.slice(0, decimals)}` : whole);
      return value < 0 ? -down : down;
    }
  }
  return Number(value.toFixed(decimals));
}

/** The k best [label, score] pairs with score >= minScore, best first (ties by class index). */
export function topLabels(scores, names, k, minScore) {
  if (scores.length !== names.length) throw new RangeError(`expected ${names.length} scores, got ${scores.length}`);
  const clipped = Array.from(scores, (s) => (Number.isNaN(s) ? 0 : Math.min(1, Math.max(0, s))));
  const order = clipped.map((_, i) => i).sort((a, b) => (clipped[b] - clipped[a]) || (a - b)).slice(0, k);
  const out = [];
  for (const i of order) {
    const score = round(clipped[i], SCORE_DECIMALS);
    if (score < minScore) break;
    out.push([names[i], score]);
  }
  return out;
}

/** An ISO 8601 UTC timestamp with microseconds, like the Python agent's. */
export function isoMicros(micros) {
  const ms = Math.floor(micros / 1000);
  const base = new Date(ms).toISOString().slice(0, 19);
  const frac = String(Math.round(micros - Math.floor(micros / 1e6) * 1e6)).padStart(6, '0');
  return `${base}.${frac}Z`;
}

export function validId(id) {
  return typeof id === 'string' && ID_PATTERN.test(id);
}

export function validNodeId(id) {
  return validId(id) && !RESERVED_NODE_IDS.has(id);
}

export function topics(root, site, node) {
  if (!validId(site)) throw new Error(`site id ${JSON.stringify(site)} does not match [A-Za-z0-9_-]{1,64}`);
  if (!validNodeId(node)) throw new Error(`node id ${JSON.stringify(node)} is not allowed`);
  return { events: `${root}/${site}/${node}/events`, status: `${root}/${site}/${node}/status`, ack: `${root}/${site}/${node}/ack`,
    sounds: `${root}/${site}/sounds/+` };
}

/** Builds ClassificationEvent documents for one node and one audio stream. */
export class EventBuilder {
  constructor({ site, node, streamStartMs, source, nextSeq = 0 }) {
    this.site = site;
    this.node = node;
    this.streamStartMicros = Math.round(streamStartMs * 1000);
    this.streamId = Math.round(streamStartMs);
    this.source = source; // {kind: 'yamnet', model: 'yamnet', version}
    this.nextSeq = nextSeq;
  }

  at(sample) {
    return isoMicros(this.streamStartMicros + Math.round((sample * 1e6) / SAMPLE_RATE));
  }

  windowEvent({ startSample, endSample, levelDbfs: level, gated, labels }) {
    const seq = this.nextSeq;
    this.nextSeq += 1;
    return {
      schema: EVENT_SCHEMA,
      event_id: `${this.node}.${this.streamId}.${startSample}`,
      site: this.site,
      node: this.node,
      seq,
      window_start: this.at(startSample),
      window_end: this.at(endSample),
      source: { ...this.source },
      labels: labels.map(([label, score]) => ({ label, score })),
      level_dbfs: round(level, 1),
      features: gated ? { gated: true } : {},
    };
  }

  /** A window recognised as a learned sound, as the Python agent's personal_event. */
  personalEvent({ startSample, endSample, levelDbfs: level }, sound, score, source) {
    const seq = this.nextSeq;
    this.nextSeq += 1;
    return {
      schema: EVENT_SCHEMA,
      event_id: `${this.node}.${this.streamId}.${source.kind}.${startSample}`,
      site: this.site,
      node: this.node,
      seq,
      window_start: this.at(startSample),
      window_end: this.at(endSample),
      source: { ...source },
      labels: [{ label: sound, score: round(score, SCORE_DECIMALS) }],
      level_dbfs: round(level, 1),
      features: {},
    };
  }

  /** A pattern detection (PatternDetector.feed) as the Python agent's pattern_event. */
  patternEvent({ kind, confidence, onsetSample, confirmedSample, toneHz, cycle }) {
    const seq = this.nextSeq;
    this.nextSeq += 1;
    return {
      schema: EVENT_SCHEMA,
      event_id: `${this.node}.${this.streamId}.${kind}.${confirmedSample}`,
      site: this.site,
      node: this.node,
      seq,
      window_start: this.at(onsetSample),
      window_end: this.at(confirmedSample),
      source: { ...PATTERN_SOURCE },
      labels: [{ label: kind, score: confidence }],
      level_dbfs: null,
      features: { tone_hz: toneHz, cycle },
    };
  }
}

export const PATTERN_SOURCE = Object.freeze({ kind: 'pattern', model: 'soundalert-patterns', version: '1' });
export const PATTERN_KINDS = Object.freeze(['t3', 't4', 'lf520']);

/** Float samples in [-1, 1] to int16, rounded and saturated as edge/dsp/synth.py's to_int16. */
export function toInt16(x, out) {
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i] * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

/**
 * The T3 smoke, T4 CO and 520 Hz detectors: the RP2040 board's fixed-point C core compiled to
 * WebAssembly (firmware/rp2040/wasm), so a phone names a smoke alarm by the same code as a board.
 * `exports` is an instance's exports (WebAssembly.instantiate); feed 16 kHz float blocks of any
 * size, get back the detections they confirmed, sample positions counted from the first sample.
 */
export class PatternDetector {
  constructor(exports) {
    this.wasm = exports;
    this.capacity = exports.sa_wasm_input_capacity();
    this.fields = exports.sa_wasm_fields();
    exports.sa_wasm_reset();
  }

  feed(block) {
    const out = [];
    for (let at = 0; at < block.length; at += this.capacity) {
      const part = block.subarray(at, Math.min(block.length, at + this.capacity));
      // Views are made afresh: a memory that grows detaches old ones.
      const input = new Int16Array(this.wasm.memory.buffer, this.wasm.sa_wasm_input(), part.length);
      toInt16(part, input);
      const n = this.wasm.sa_wasm_push(part.length);
      const rows = new Int32Array(this.wasm.memory.buffer, this.wasm.sa_wasm_output(), n * this.fields);
      for (let i = 0; i < n; i++) {
        const r = rows.subarray(i * this.fields, (i + 1) * this.fields);
        out.push({ kind: PATTERN_KINDS[r[0]], confidence: r[1] / 1000, onsetSample: r[2],
          confirmedSample: r[3], toneHz: r[4], cycle: r[5] });
      }
    }
    return out;
  }
}

/** A NodeStatus document; with end-to-end delivery, the lowest seq still held and the next. */
export function statusDoc({ site, node, state, atMs, heartbeatS, software, capabilities = ['yamnet'], stats = {},
  pendingFromSeq = null, nextSeq = null }) {
  const doc = {
    schema: STATUS_SCHEMA,
    site,
    node,
    state,
    at: isoMicros(Math.round(atMs * 1000)),
    heartbeat_s: heartbeatS,
    software,
    capabilities,
    stats,
  };
  if (pendingFromSeq !== null) doc.pending_from_seq = pendingFromSeq;
  if (nextSeq !== null) doc.next_seq = nextSeq;
  return doc;
}

/**
 * The aggregator's retained DeliveryAck for this node (as edge/agent/publisher.py takes it):
 * `{ seq }` to apply (every event up to seq is stored), or `{ ignored: reason }`. An ack at or
 * above the node's next seq is from an earlier life of the node (its queue was wiped).
 */
export function parseAck(text, { site, node, nextSeq }) {
  let doc;
  try { doc = JSON.parse(text); } catch { return { ignored: 'malformed_json' }; }
  if (!doc || typeof doc !== 'object' || doc.schema !== ACK_SCHEMA) return { ignored: 'schema_violation' };
  if (!Number.isSafeInteger(doc.seq) || doc.seq < -1 || typeof doc.at !== 'string') return { ignored: 'schema_violation' };
  if (doc.site !== site || doc.node !== node) return { ignored: 'topic_mismatch' };
  if (doc.seq >= nextSeq) return { ignored: 'earlier_life' };
  return { seq: doc.seq };
}

/** Outbox priority, as edge/agent/publisher.py's event_priority: patterns outlive the rest. */
export function eventPriority(event) {
  if (event.source.kind === 'pattern') return 2;
  return event.labels.length ? 1 : 0;
}

/**
 * When to send outstanding events again: when no ack advanced for `timeoutS`, doubling up to
 * `maxS` while acks stay stuck (an aggregator outage is not a resend storm). Times in ms.
 */
export class ResendTimer {
  constructor(timeoutS, maxS) {
    this.base = timeoutS * 1000;
    this.max = Math.max(maxS * 1000, this.base);
    this.wait = this.base;
    this.since = 0;
  }

  /** An ack advanced: wait the base timeout again. */
  progress(nowMs) { this.since = nowMs; this.wait = this.base; }

  /** Something was sent while nothing was outstanding (or a new connection): count from now. */
  start(nowMs) { this.since = nowMs; }

  due(nowMs) { return nowMs - this.since >= this.wait; }

  /** Sent everything again: wait twice as long for the next try. */
  fired(nowMs) { this.since = nowMs; this.wait = Math.min(2 * this.wait, this.max); }
}

/** Heartbeat figures, with the Python agent's key names. */
export class Stats {
  constructor() { this.reset(); }

  reset() {
    this.windows = 0; this.gated = 0; this.dropped = 0;
    this.levelLast = null; this.levelMax = null; this.inferenceMs = [];
  }

  window(level, gated, inferenceMs) {
    this.windows += 1;
    if (gated) this.gated += 1;
    this.levelLast = level;
    this.levelMax = this.levelMax === null ? level : Math.max(this.levelMax, level);
    if (inferenceMs != null) { this.inferenceMs.push(inferenceMs); if (this.inferenceMs.length > 2048) this.inferenceMs.shift(); }
  }

  summary() {
    const out = { windows: this.windows, windows_gated: this.gated, windows_dropped: this.dropped };
    if (this.levelLast !== null) out.level_dbfs = round(this.levelLast, 1);
    if (this.levelMax !== null) out.level_max_dbfs = round(this.levelMax, 1);
    if (this.inferenceMs.length) {
      const t = [...this.inferenceMs].sort((a, b) => a - b);
      out.inference_ms_mean = round(t.reduce((s, v) => s + v, 0) / t.length, 3);
      out.inference_ms_p95 = round(t[Math.min(t.length - 1, Math.ceil(0.95 * t.length) - 1)], 3);
      out.inference_ms_max = round(t[t.length - 1], 3);
    }
    return out;
  }
}

/**
 * Whether this page can be trusted to be listening right now, and if not, why (in words the
 * person reads on the screen and the aggregator shows in its offline alert).
 */
export function listeningHealth({ visible, contextState, trackState, lastAudioAgoMs, modelReady }) {
  if (!modelReady) return { ok: false, reason: 'the sound model is not loaded' };
  if (trackState !== 'live') return { ok: false, reason: 'the microphone was stopped or taken away' };
  if (contextState !== 'running') return { ok: false, reason: `the browser suspended audio (${contextState})` };
  if (!visible) return { ok: false, reason: 'the page is in the background or the screen is locked; browsers stop listening there' };
  if (lastAudioAgoMs == null || lastAudioAgoMs > 3000) return { ok: false, reason: 'no sound has reached the page for 3 seconds' };
  return { ok: true, reason: '' };
}
