// The identify golden vectors against the oracle: Meta's Business SDK for Node must still give
// every hash in tests/oracle/vectors.json (which `cargo test` checks the Rust normalisation
// against, in src/core/identity.rs). If the SDK or the file drifts, this fails; regenerate with
// `node tests/oracle/meta_oracle.mjs --write` and let cargo test say whether Tandem still agrees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildRows, oracle, VECTORS } from '../oracle/meta_oracle.mjs';

test('Meta SDK oracle agrees with every checked-in golden vector', () => {
  const file = JSON.parse(readFileSync(VECTORS, 'utf8'));
  const live = buildRows();
  assert.equal(file.rows.length, live.length, 'same rows as the oracle script builds');
  let hashed = 0;
  for (let i = 0; i < live.length; i++) {
    assert.deepEqual(file.rows[i], live[i], `row ${i}: ${live[i].field} ${JSON.stringify(live[i].input)}`);
    if (live[i].meta) hashed++;
  }
  assert.ok(hashed >= 50, `${hashed} rows hashed by the SDK`);
  // Rows Tandem refuses are ones the SDK would hash against Meta's documented rule.
  for (const r of file.rows.filter((r) => r.tandem_refuses)) {
    assert.notEqual(oracle(r.field, r.sdk_input ?? r.input), undefined);
  }
});
