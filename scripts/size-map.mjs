#!/usr/bin/env node
// `node scripts/size-map.mjs [DIR]`: where the wasm's bytes go, by Rust module. Reads a build that
// kept its function names (`node scripts/build.mjs --names --out dist-names`, the default DIR) and
// prints the code bytes of each module of the tag (`core::outbox`, `platforms::meta`, ...), of the
// standard library and of the rest, with the data section (string literals, tables). Sizes are
// uncompressed function bodies: the shares, not the gzip bytes, which cannot be split by module.
// The names build is the release build with its name section kept, so the bodies are the same.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.resolve(ROOT, process.argv[2] || 'dist-names');
const file = path.join(dir, 'tandem_bg.wasm');
if (!fs.existsSync(file)) {
  console.error(`size-map: no ${path.relative(ROOT, file)}; build it with: node scripts/build.mjs --names --out ${path.relative(ROOT, dir)}`);
  process.exit(2);
}
const bytes = fs.readFileSync(file);
let at = 8; // after the magic number and the version
function leb() {
  let result = 0, shift = 0, byte;
  do {
    byte = bytes[at++];
    result += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return result;
}
function name() {
  const length = leb();
  const text = bytes.toString('utf8', at, at + length);
  at += length;
  return text;
}

let importedFunctions = 0;
let bodies = [];
let dataBytes = 0;
const names = new Map();
while (at < bytes.length) {
  const id = bytes[at++];
  const size = leb();
  const end = at + size;
  if (id === 2) { // imports: functions among them take the first indices
    for (let n = leb(); n > 0; n--) {
      name(); name();
      const kind = bytes[at++];
      if (kind === 0) { leb(); importedFunctions++; }
      else if (kind === 1) { at++; const flags = leb(); leb(); if (flags & 1) leb(); }
      else if (kind === 2) { const flags = leb(); leb(); if (flags & 1) leb(); }
      else if (kind === 3) { at += 2; }
    }
  } else if (id === 10) {
    for (let n = leb(); n > 0; n--) {
      const length = leb();
      bodies.push(length);
      at += length;
    }
  } else if (id === 11) {
    dataBytes = size;
  } else if (id === 0 && name() === 'name') {
    while (at < end) {
      const sub = bytes[at++];
      const subSize = leb();
      const subEnd = at + subSize;
      if (sub === 1) {
        for (let n = leb(); n > 0; n--) {
          const index = leb();
          names.set(index, name());
        }
      }
      at = subEnd;
    }
  }
  at = end;
}
if (!names.size) {
  console.error('size-map: the wasm has no function names; build it with --names');
  process.exit(2);
}

// The tag's modules, one per file under src/ (`core::outbox` for src/core/outbox.rs).
const modules = new Set();
for (const entry of fs.readdirSync(path.join(ROOT, 'src'), { withFileTypes: true })) {
  if (entry.isDirectory()) {
    for (const f of fs.readdirSync(path.join(ROOT, 'src', entry.name))) {
      if (f.endsWith('.rs') && f !== 'mod.rs') modules.add(`${entry.name}::${f.slice(0, -3)}`);
    }
  }
}
// `tandem[hash]::core::outbox::...` -> core::outbox (a function of a mod.rs or lib file -> its
// folder's name); other crates by name.
function group(fn) {
  const own = /tandem\[[0-9a-f]+\]::(\w+)(?:::(\w+))?/.exec(fn);
  if (own) return modules.has(`${own[1]}::${own[2]}`) ? `${own[1]}::${own[2]}` : own[1];
  const crate = /^<?(\w+)\[[0-9a-f]+\]/.exec(fn);
  if (crate) return `(crate ${crate[1]})`;
  return fn.startsWith('__wbindgen') || fn.startsWith('__wbg') ? '(wasm-bindgen)' : '(other)';
}
const groups = new Map();
bodies.forEach((length, i) => {
  const key = group(names.get(i + importedFunctions) || '');
  const entry = groups.get(key) || { bytes: 0, functions: 0 };
  entry.bytes += length;
  entry.functions += 1;
  groups.set(key, entry);
});
const code = bodies.reduce((a, b) => a + b, 0);
const rows = [...groups].sort((a, b) => b[1].bytes - a[1].bytes);
console.log(`${path.relative(ROOT, file)}: ${bytes.length} B, of which code ${code} B in ${bodies.length} functions, data ${dataBytes} B`);
console.log('module'.padEnd(28), 'code B'.padStart(8), 'share'.padStart(7), 'functions'.padStart(10));
for (const [key, { bytes: b, functions }] of rows) {
  console.log(key.padEnd(28), String(b).padStart(8), `${(100 * b / code).toFixed(1)} %`.padStart(7), String(functions).padStart(10));
}
