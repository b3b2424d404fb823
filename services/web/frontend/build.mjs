// Copies the phone agent's runtime files from node_modules into dist/, which the web service
// serves at /static/vendor/ (no CDN at run time), with the pattern detectors' WebAssembly build
// of the RP2040 core. Run after `npm ci` in this directory and `make wasm` in firmware/rp2040:
//
//   make -C firmware/rp2040 wasm
//   npm ci --prefix services/web/frontend && node services/web/frontend/build.mjs
//
// Idempotent; writes dist/manifest.json (file -> sha256 and size) last, so a half-finished copy
// is never taken for a complete one. Exits non-zero with a reason when something is missing.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const MODULES = join(HERE, 'node_modules');
const FIRMWARE = join(HERE, '..', '..', '..', 'firmware', 'rp2040');
const DIST = join(HERE, 'dist');

// dist name -> node_modules path. The two LiteRT runtimes: relaxed-SIMD (Chrome, Android) and
// "compat" (plain SIMD: Safari/iOS and older browsers); LiteRT.js picks one at run time.
const FILES = {
  'litertjs/core.js': '@litertjs/core/dist/index.js',
  'litertjs/wasm-utils.js': '@litertjs/wasm-utils/dist/index.js',
  'litertjs/wasm/litert_wasm_internal.js': '@litertjs/core/wasm/litert_wasm_internal.js',
  'litertjs/wasm/litert_wasm_internal.wasm': '@litertjs/core/wasm/litert_wasm_internal.wasm',
  'litertjs/wasm/litert_wasm_compat_internal.js': '@litertjs/core/wasm/litert_wasm_compat_internal.js',
  'litertjs/wasm/litert_wasm_compat_internal.wasm': '@litertjs/core/wasm/litert_wasm_compat_internal.wasm',
  'litertjs/LICENSE.txt': null, // written below (Apache-2.0, from package.json)
  'mqtt/mqtt.esm.js': 'mqtt/dist/mqtt.esm.js',
  'mqtt/LICENSE.md': 'mqtt/LICENSE.md',
};
// dist name -> path under firmware/rp2040: built here, not downloaded.
const BUILT = {
  'patterns/sa_patterns.wasm': 'build/wasm/sa_patterns.wasm',
};

function fail(message) {
  process.stderr.write(`build.mjs: ${message}\n`);
  process.exit(1);
}

if (!existsSync(MODULES)) {
  fail(`${MODULES} is missing: run 'npm ci' in ${HERE} first`);
}
const tmp = `${DIST}.tmp`;
rmSync(tmp, { recursive: true, force: true });
const manifest = { built_at: new Date().toISOString(), packages: {}, files: {} };
for (const pkg of ['@litertjs/core', '@litertjs/wasm-utils', 'mqtt']) {
  const meta = join(MODULES, pkg, 'package.json');
  if (!existsSync(meta)) fail(`${pkg} is not installed: run 'npm ci' in ${HERE}`);
  const { version, license } = JSON.parse(readFileSync(meta, 'utf8'));
  manifest.packages[pkg] = { version, license };
}
for (const [name, source] of Object.entries(FILES)) {
  const target = join(tmp, name);
  mkdirSync(dirname(target), { recursive: true });
  if (source === null) {
    writeFileSync(target, 'LiteRT.js (@litertjs/core, @litertjs/wasm-utils) is Copyright Google LLC, '
      + 'under the Apache License 2.0: https://www.apache.org/licenses/LICENSE-2.0\n');
  } else {
    const from = join(MODULES, source);
    if (!existsSync(from)) fail(`${from} is missing: run 'npm ci' in ${HERE}`);
    copyFileSync(from, target);
  }
  const data = readFileSync(target);
  manifest.files[name] = { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length };
}
for (const [name, source] of Object.entries(BUILT)) {
  const from = join(FIRMWARE, source);
  if (!existsSync(from)) fail(`${from} is missing: run 'make -C firmware/rp2040 wasm' first (needs clang and lld)`);
  const target = join(tmp, name);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(from, target);
  const data = readFileSync(target);
  manifest.files[name] = { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length };
}
writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
rmSync(DIST, { recursive: true, force: true });
renameSync(tmp, DIST);
const total = Object.values(manifest.files).reduce((sum, f) => sum + f.bytes, 0);
process.stdout.write(`build.mjs: ${Object.keys(manifest.files).length} files, ${(total / 1e6).toFixed(1)} MB in ${DIST}\n`);
