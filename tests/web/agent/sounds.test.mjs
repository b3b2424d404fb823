// services/web/static/agent/sounds.js against the Python agent's learned-sound matching, on a
// fixture tests/personal/test_phone_sounds.py writes (FIXTURE): a real sound pack, windows'
// embeddings and what edge/personal decides for each, and damaged packs with their reasons.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';

import { float16ToFloat32, learnSound, matchSound, packOf, parsePack, soundWindows } from '../../../services/web/static/agent/sounds.js';

const fixture = JSON.parse(readFileSync(process.env.FIXTURE, 'utf8'));
const sha256 = async (bytes) => createHash('sha256').update(bytes).digest('hex');

test('the phone learns a sound: its pack goes to PACK_OUT for the Python side to check', async () => {
  const examples = fixture.examples.map((windows) => soundWindows(windows.map((w) => ({ embedding: Float32Array.from(w.embedding), levelDbfs: w.level }))));
  const learned = learnSound(examples, fixture.background.map((e) => Float32Array.from(e)));
  assert.equal(learned.quality.leave_one_out, 1);
  const pack = await packOf(learned, { site: 'home', node: 'phone', sound: 'microwave', title: 'Microwave', version: 1,
    embedding: fixture.embedding, atMs: Date.UTC(2026, 0, 1), sha256 });
  await parsePack(JSON.stringify(pack), fixture.embedding, sha256); // the phone takes its own pack
  writeFileSync(process.env.PACK_OUT, JSON.stringify({ pack, threshold: learned.threshold, warnings: learned.warnings }));
});

test('float16 decodes as numpy does', () => {
  const bytes = Uint8Array.from(Buffer.from(fixture.halves.bytes, 'base64'));
  assert.deepEqual(Array.from(float16ToFloat32(bytes)), fixture.halves.values);
});

test('the phone decides every window as the Python agent does', async () => {
  const pack = await parsePack(fixture.pack, fixture.embedding, sha256);
  assert.equal(pack.sound, 'microwave');
  let recognised = 0;
  for (const probe of fixture.probes) {
    const got = matchSound([pack], Float32Array.from(probe.embedding));
    if (Math.abs(probe.cosine - pack.threshold) < 1e-3) continue; // too close to call in float32
    if (probe.expected === null) {
      assert.equal(got, null, `window ${probe.index}`);
    } else {
      recognised += 1;
      assert.equal(got[0], probe.expected[0]);
      assert.ok(Math.abs(got[1] - probe.expected[1]) < 1e-3, `${got[1]} vs ${probe.expected[1]}`);
    }
  }
  assert.ok(recognised >= 2, 'the fixture holds windows of the sound');
});

test('bad packs are refused with the reason the Python side counts', async () => {
  for (const [text, reason] of fixture.bad) {
    await assert.rejects(parsePack(text, fixture.embedding, sha256), (err) => err.message.startsWith(reason));
  }
});
