// The CI size guard: fails when the gzip -9 size of what a browser loads from dist/ (the loader
// with its glue, and the wasm) exceeds the ceiling in size-budget.json. Sizes are deterministic
// for a given toolchain, so this never flakes; timings are never asserted in CI.
import { readFileSync } from 'node:fs';
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
if (total > budget.ceiling_gzip_bytes) {
  console.error(`size: over the ceiling by ${total - budget.ceiling_gzip_bytes} B. Make it smaller, or raise ceiling_gzip_bytes in size-budget.json with a reason in the commit.`);
  process.exit(1);
}
if (total > budget.goal_gzip_bytes) {
  console.log(`size: ${total - budget.goal_gzip_bytes} B over the ${budget.goal_gzip_bytes} B goal`);
}
