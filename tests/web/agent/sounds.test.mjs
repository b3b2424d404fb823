// services/web/static/agent/sounds.js against the Python agent's learned-sound matching, on a
// fixture tests/personal/test_phone_sounds.py writes (FIXTURE): a real sound pack, windows'
// embeddings and what edge/personal decides for each, and damaged packs with their reasons.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { float16ToFloat32, matchSound, parsePack } from '../../../services/web/static/agent/sounds.js';

const fixture = JSON.parse(readFileSync(process.env.FIXTURE, 'utf8'));
const sha256 = async (bytes) => createHash('sha256').update(bytes).digest('hex');

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
