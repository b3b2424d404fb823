// Learned sounds on the phone: the site's sound packs (soundalert.soundpack/1), matched against
// each window's YAMNet embedding exactly as the Python agent does (edge/personal/learner.py:
// SoundModel.similarity and match). Pure: no DOM, no MQTT, no model; runs under node too.

export const PACK_SCHEMA = 'soundalert.soundpack/1';
export const PERSONAL_SOURCE = Object.freeze({ kind: 'personal', model: 'soundalert-personal', version: '1' });
const UNIT_TOLERANCE = 0.02;

/** IEEE 754 half-precision (little-endian bytes) to float32. */
export function float16ToFloat32(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength / 2);
  for (let i = 0; i < out.length; i += 1) {
    const h = view.getUint16(2 * i, true);
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

function base64Bytes(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error('weights: not base64');
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

function rows(text, dims, what) {
  const bytes = base64Bytes(text);
  if (bytes.length % (2 * dims)) throw new Error(`weights: ${what} is not whole ${dims}-d rows`);
  const flat = float16ToFloat32(bytes);
  const out = [];
  for (let r = 0; r < flat.length / dims; r += 1) out.push(flat.subarray(r * dims, (r + 1) * dims));
  return { bytes, rows: out };
}

const dot = (a, b) => { let s = 0; for (let i = 0; i < a.length; i += 1) s += a[i] * b[i]; return s; };

/**
 * A pack's model, or an Error whose message starts with the reason the Python side counts
 * (wrong_embedding_model, corrupt_weights, unknown_schema_version). `embedding` is what this
 * phone runs: {model, version, dims}. `sha256` (async, bytes -> hex) checks the weights' digest.
 */
export async function parsePack(text, embedding, sha256) {
  const doc = JSON.parse(text);
  if (doc.schema !== PACK_SCHEMA) throw new Error(`unknown_schema_version: ${doc.schema}`);
  const e = doc.embedding || {};
  if (e.model !== embedding.model || e.version !== embedding.version || e.dims !== embedding.dims) {
    throw new Error(`wrong_embedding_model: learned with ${e.model} ${e.version} (${e.dims}-d)`);
  }
  const w = doc.weights || {};
  let centre, prototypes, background;
  try {
    centre = rows(w.centre, e.dims, 'centre');
    prototypes = rows(w.prototypes, e.dims, 'prototypes');
    background = rows(w.background, e.dims, 'background');
  } catch (err) {
    throw new Error(`corrupt_weights: ${err.message}`);
  }
  const all = new Uint8Array(centre.bytes.length + prototypes.bytes.length + background.bytes.length);
  all.set(centre.bytes, 0);
  all.set(prototypes.bytes, centre.bytes.length);
  all.set(background.bytes, centre.bytes.length + prototypes.bytes.length);
  if ((await sha256(all)) !== w.sha256) throw new Error('corrupt_weights: sha256 does not match');
  for (const r of [...prototypes.rows, ...background.rows]) {
    if (Math.abs(Math.sqrt(dot(r, r)) - 1) > UNIT_TOLERANCE) throw new Error('corrupt_weights: rows are not unit vectors');
  }
  if (centre.rows.length !== 1 || prototypes.rows.length < 1) throw new Error('corrupt_weights: wrong shape');
  return { sound: doc.sound, title: doc.title, version: doc.version, threshold: doc.threshold, margin: doc.margin,
    centre: centre.rows[0], prototypes: prototypes.rows, background: background.rows };
}

/** [sound, score] of the learned sound one window's embedding is, or null (Python: match). */
export function matchSound(packs, embedding) {
  let best = null;
  for (const p of packs) {
    if (p.centre.length !== embedding.length) continue;
    const z = new Float32Array(embedding.length);
    for (let i = 0; i < z.length; i += 1) z[i] = embedding[i] - p.centre[i];
    const norm = Math.max(Math.sqrt(dot(z, z)), 1e-9);
    for (let i = 0; i < z.length; i += 1) z[i] /= norm;
    const s = Math.max(...p.prototypes.map((r) => dot(z, r)));
    const b = p.background.length ? Math.max(...p.background.map((r) => dot(z, r))) : -1;
    if (s >= p.threshold && s - b >= p.margin && (best === null || s > best.s)) {
      const score = Math.min(1, Math.max(0, 0.5 + (0.5 * (s - p.threshold)) / Math.max(1e-6, 1 - p.threshold)));
      best = { sound: p.sound, score, s };
    }
  }
  return best === null ? null : [best.sound, best.score];
}

// -- learning on the phone: a port of edge/personal/learner.py (learn) and packs.py (pack_of) --
const GATE_DBFS = -70;
const WITHIN_DB = 12;
const FLOOR = 0.5;
const ONE_EXAMPLE_FLOOR = 0.7;
const CEILING = 0.9;
const OVER_BACKGROUND = 0.08;
const SPREAD_QUANTILE = 0.35;
const MARGIN = 0.05;
const MAX_CENTROIDS = 8;
const SOUND_IN_BACKGROUND = 0.1;

const unit = (v) => { const n = Math.max(Math.sqrt(dot(v, v)), 1e-9); return Float32Array.from(v, (x) => x / n); };
const minus = (v, c) => Float32Array.from(v, (x, i) => x - c[i]);
const mean = (rows) => { const out = new Float32Array(rows[0].length); for (const r of rows) for (let i = 0; i < r.length; i += 1) out[i] += r[i] / rows.length; return out; };
const best = (z, rows) => (rows.length ? Math.max(...rows.map((r) => dot(z, r))) : -1);

/** numpy's default (linear) quantile. */
function quantile(values, q) {
  const v = [...values].sort((a, b) => a - b);
  const at = (v.length - 1) * q;
  const lo = Math.floor(at);
  return v[lo] + (v[Math.min(lo + 1, v.length - 1)] - v[lo]) * (at - lo);
}

/** One example's windows of sound: above the gate, within 12 dB of its loudest (sound_windows). */
export function soundWindows(windows) {
  const loud = windows.filter((w) => w.levelDbfs >= GATE_DBFS);
  if (!loud.length) return [];
  const top = Math.max(...loud.map((w) => w.levelDbfs));
  return loud.filter((w) => w.levelDbfs >= top - WITHIN_DB).map((w) => w.embedding);
}

function kmeans(rows, k) {
  k = Math.min(k, rows.length);
  let centroids = rows.filter((_, i) => i % Math.max(1, Math.floor(rows.length / k)) === 0).slice(0, k);
  for (let it = 0; it < 20; it += 1) {
    const groups = centroids.map(() => []);
    for (const r of rows) {
      let j = 0;
      centroids.forEach((c, i) => { if (dot(r, c) > dot(r, centroids[j])) j = i; });
      groups[j].push(r);
    }
    centroids = groups.map((g, i) => (g.length ? unit(mean(g)) : centroids[i]));
  }
  return centroids;
}

function spreadFloor(prototypes, windows) {
  if (windows.length < 2) return ONE_EXAMPLE_FLOOR;
  const spread = [];
  windows.forEach((ws, i) => { const others = prototypes.filter((_, j) => j !== i); for (const z of ws) spread.push(best(z, others)); });
  return Math.max(FLOOR, quantile(spread, SPREAD_QUANTILE));
}

function threshold(prototypes, background, windows) {
  const bestBg = background.length ? Math.max(...background.map((b) => best(b, prototypes))) : -1;
  return [Math.min(CEILING, Math.max(FLOOR, Math.max(bestBg + OVER_BACKGROUND, spreadFloor(prototypes, windows)))), bestBg];
}

/** The background less the sound itself, when it sounded before it was taught (_without_the_sound). */
function withoutTheSound(examples, background) {
  if (background.length < 2) return background;
  const centre = mean(background);
  const prototypes = examples.map((e) => unit(mean(e.map((x) => unit(minus(x, centre))))));
  const similar = background.map((x) => best(unit(minus(x, centre)), prototypes));
  if (Math.max(...similar) + OVER_BACKGROUND < CEILING - SOUND_IN_BACKGROUND) return background;
  const floor = spreadFloor(prototypes, examples.map((e) => e.map((x) => unit(minus(x, centre)))));
  const kept = background.filter((_, i) => similar[i] < floor - SOUND_IN_BACKGROUND);
  return kept.length >= 2 ? kept : background;
}

/** Learn a sound from examples (arrays of embeddings) against background embeddings. */
export function learnSound(examples, background) {
  examples = examples.filter((e) => e.length);
  if (!examples.length) throw new Error('no example holds a window of sound (all silent?)');
  const dims = examples[0][0].length;
  const warnings = [];
  background = withoutTheSound(examples, background);
  const centre = background.length >= 2 ? mean(background) : new Float32Array(dims);
  if (background.length < 2) warnings.push('no background yet: listen a little longer first');
  const windows = examples.map((e) => e.map((x) => unit(minus(x, centre))));
  const prototypes = windows.map((ws) => unit(mean(ws)));
  const bg = background.map((x) => unit(minus(x, centre)));
  const centroids = kmeans(bg, MAX_CENTROIDS);
  const [t, bestBg] = threshold(prototypes, bg, windows);
  let leaveOneOut = null;
  if (examples.length >= 3) {
    let hits = 0;
    windows.forEach((ws, i) => {
      const others = prototypes.filter((_, j) => j !== i);
      const [ti] = threshold(others, bg, windows.filter((_, j) => j !== i));
      if (ws.some((z) => best(z, others) >= ti && best(z, others) - best(z, centroids) >= MARGIN)) hits += 1;
    });
    leaveOneOut = hits / examples.length;
    if (leaveOneOut < 0.8) warnings.push('the examples are not alike: record more, closer');
  } else {
    warnings.push('give at least 3 examples (5 is better)');
  }
  return { centre, prototypes, background: centroids, threshold: t, margin: MARGIN,
    quality: { examples: examples.length, windows: windows.reduce((n, w) => n + w.length, 0),
      background_max: Math.round(bestBg * 1000) / 1000, ...(leaveOneOut === null ? {} : { leave_one_out: Math.round(leaveOneOut * 1000) / 1000 }) },
    warnings };
}

/** float32 to IEEE 754 half (little-endian bytes), rounding to nearest even. */
export function float32ToFloat16(values) {
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  values.forEach((v, i) => {
    f[0] = v;
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    let exp = ((x >>> 23) & 0xff) - 127 + 15;
    let mant = x & 0x7fffff;
    let h;
    if (exp >= 31) h = sign | 0x7c00;
    else if (exp <= 0) {
      if (exp < -10) h = sign;
      else { mant |= 0x800000; const shift = 14 - exp; const r = mant >> shift; const rem = mant & ((1 << shift) - 1); const half = 1 << (shift - 1); h = sign | (r + (rem > half || (rem === half && (r & 1)) ? 1 : 0)); }
    } else {
      let r = mant >> 13;
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) { r += 1; if (r === 0x400) { r = 0; exp += 1; } }
      h = exp >= 31 ? sign | 0x7c00 : sign | (exp << 10) | r;
    }
    view.setUint16(2 * i, h, true);
  });
  return out;
}

const toBase64 = (bytes) => { let s = ''; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); };
const flat = (rows) => { const out = new Float32Array(rows.length * (rows[0]?.length ?? 0)); rows.forEach((r, i) => out.set(r, i * r.length)); return out; };

/** The soundalert.soundpack/1 document of a learned sound (pack_of). */
export async function packOf(learned, { site, node, sound, title, version, embedding, atMs, sha256 }) {
  const centre = float32ToFloat16(learned.centre);
  const prototypes = float32ToFloat16(flat(learned.prototypes));
  const background = float32ToFloat16(flat(learned.background));
  const all = new Uint8Array(centre.length + prototypes.length + background.length);
  all.set(centre, 0); all.set(prototypes, centre.length); all.set(background, centre.length + prototypes.length);
  return {
    schema: PACK_SCHEMA, site, sound, title, version, learned_at: new Date(atMs).toISOString(), learned_on: node,
    embedding, weights: { dtype: 'float16', centre: toBase64(centre), prototypes: toBase64(prototypes),
      background: toBase64(background), sha256: await sha256(all) },
    threshold: Math.round(learned.threshold * 1e4) / 1e4, margin: learned.margin, priority: 'normal',
    color: '#1f4e9c', icon: 'bell', quality: learned.quality,
  };
}

export function soundId(title) {
  return title.trim().toLowerCase().replace(/[^a-z0-9_-]+/g, '_').replace(/^[_-]+|[_-]+$/g, '').slice(0, 64) || 'sound';
}
