// The CI size guard: fails when the gzip -9 size of what a browser loads from dist/ (the loader
// with its glue, and the wasm) exceeds the ceiling in size-budget.json. Sizes are deterministic
// for a given toolchain, so this never flakes; timings are never asserted in CI. Also checks that
// the wasm declares its memory maximum (memory_max_bytes).
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const budget = JSON.parse(readFileSync(join(root, 'size-budget.json'), 'utf8'));
const dist = join(root, process.argv[2] || 'dist');

let total = 0;
for (const file of budget.files) {
  const size = gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
  total += size;
  console.log(`size: ${file} ${size} B gzip`);
}
console.log(`size: total ${total} B gzip; ceiling ${budget.ceiling_gzip_bytes} B; goal ${budget.goal_gzip_bytes} B`);
// Not counted: the message text, which a browser fetches only once there is something to report,
// and the plain-JS path's delivery code, fetched only where WebAssembly cannot run.
for (const [pattern, when] of [[/^tandem-messages-[0-9a-f]+\.json$/, 'at the first report'], [/^tandem-jspath-[0-9a-f]+\.js$/, 'where WebAssembly cannot run']]) {
  for (const file of readdirSync(dist).filter((name) => pattern.test(name))) {
    console.log(`size: ${file} ${gzipSync(readFileSync(join(dist, file)), { level: 9 }).length} B gzip, fetched only ${when} (not counted)`);
  }
}
// The wasm memory's declared limits (the memory section, id 5): the build sets the maximum from
// memory_max_bytes; a module without one, or with a larger one, fails here.
function memoryLimits(wasm) {
  let at = 8;
  const leb = () => { let value = 0, shift = 0, byte; do { byte = wasm[at++]; value += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80); return value; };
  while (at < wasm.length) {
    const id = wasm[at++], size = leb(), end = at + size;
    if (id === 5 && leb() === 1) {
      const flags = wasm[at++], initial = leb();
      return { initial, maximum: flags & 1 ? leb() : null };
    }
    at = end;
  }
  return null;
}
const PAGE = 65536;
const memory = memoryLimits(readFileSync(join(dist, 'tandem_bg.wasm')));
const maxPages = budget.memory_max_bytes / PAGE;
console.log(`memory: initial ${memory ? memory.initial : '?'} pages, maximum ${memory && memory.maximum !== null ? memory.maximum : 'none'} (limit ${maxPages} pages, ${budget.memory_max_bytes} B)`);
if (!memory || memory.maximum === null || memory.maximum > maxPages) {
  console.error(`memory: the wasm must declare a maximum of at most ${maxPages} pages (size-budget.json memory_max_bytes; scripts/build.mjs sets it)`);
  process.exit(1);
}
if (total > budget.ceiling_gzip_bytes) {
  console.error(`size: over the ceiling by ${total - budget.ceiling_gzip_bytes} B. Make it smaller, or raise ceiling_gzip_bytes in size-budget.json with a reason in the commit.`);
  process.exit(1);
}
if (total > budget.goal_gzip_bytes) {
  console.log(`size: ${total - budget.goal_gzip_bytes} B over the ${budget.goal_gzip_bytes} B goal`);
}
