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
