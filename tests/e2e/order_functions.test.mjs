// The build's function ordering (scripts/order-functions.mjs) moves functions, never changes them:
// a module reordered computes what it computed before, through direct calls, the table and the
// exports, and the same input always gives the same bytes (the size guard relies on that).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import binaryen from 'binaryen';
import { orderFunctions } from '../../scripts/order-functions.mjs';

// Functions alike in pairs, spread apart, so the ordering has a reason to move them.
const WAT = `(module
  (type $binary (func (param i32 i32) (result i32)))
  (table 3 3 funcref)
  (elem (i32.const 0) $add_then_scale $mix $sub_then_scale)
  (func $add_then_scale (param i32 i32) (result i32)
    (i32.mul (i32.add (local.get 0) (local.get 1)) (i32.const 3)))
  (func $mix (param i32 i32) (result i32)
    (i32.xor (i32.rotl (local.get 0) (i32.const 7)) (i32.shr_u (local.get 1) (i32.const 3))))
  (func $count_down (param i32) (result i32) (local i32)
    (block $done (loop $again
      (br_if $done (i32.eqz (local.get 0)))
      (local.set 1 (i32.add (local.get 1) (call $mix (local.get 0) (local.get 1))))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br $again)))
    (local.get 1))
  (func $sub_then_scale (param i32 i32) (result i32)
    (i32.mul (i32.sub (local.get 0) (local.get 1)) (i32.const 3)))
  (func $mix_again (param i32 i32) (result i32)
    (i32.xor (i32.rotl (local.get 1) (i32.const 7)) (i32.shr_u (local.get 0) (i32.const 3))))
  (func (export "direct") (param i32 i32) (result i32)
    (i32.add (call $add_then_scale (local.get 0) (local.get 1))
      (i32.add (call $sub_then_scale (local.get 0) (local.get 1)) (call $mix_again (local.get 0) (local.get 1)))))
  (func (export "indirect") (param i32 i32 i32) (result i32)
    (call_indirect (type $binary) (local.get 1) (local.get 2) (local.get 0)))
  (func (export "loop") (param i32) (result i32)
    (call $count_down (local.get 0))))`;

function compiledExports(bytes) {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
}

test('reordered functions compute the same results, and the same input gives the same bytes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-order-'));
  try {
    const module = binaryen.parseText(WAT);
    const input = path.join(dir, 'in.wasm');
    fs.writeFileSync(input, module.emitBinary());
    module.dispose();
    const first = path.join(dir, 'first.wasm');
    const second = path.join(dir, 'second.wasm');
    orderFunctions(input, first, false);
    orderFunctions(input, second, false);
    assert.deepEqual(fs.readFileSync(first), fs.readFileSync(second), 'the ordering is not deterministic');

    const before = compiledExports(fs.readFileSync(input));
    const after = compiledExports(fs.readFileSync(first));
    for (const [a, b] of [[0, 0], [1, 2], [7, 3], [-5, 11], [123456, -98765]]) {
      assert.equal(after.direct(a, b), before.direct(a, b), `direct(${a}, ${b})`);
      for (const slot of [0, 1, 2]) assert.equal(after.indirect(slot, a, b), before.indirect(slot, a, b), `indirect(${slot}, ${a}, ${b})`);
    }
    for (const n of [0, 1, 5, 40]) assert.equal(after.loop(n), before.loop(n), `loop(${n})`);
    assert.deepEqual(WebAssembly.Module.exports(new WebAssembly.Module(fs.readFileSync(first))),
      WebAssembly.Module.exports(new WebAssembly.Module(fs.readFileSync(input))));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
