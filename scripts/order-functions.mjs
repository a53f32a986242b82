// Orders the wasm's functions so that gzip compresses the code section better: build.mjs runs it
// between wasm-opt's optimisation and its final strip step.
//
// Why: gzip finds repeats only within its last 32 KB (and is most effective much closer than
// that), while the code section is 90 KB in the order the linker left it. Functions with similar
// bodies (the same std routine monomorphised for two types, the platforms' mappings, the JSON
// writers) compress against each other only when they sit near one another. Order changes nothing
// but the function indices: V8 compiles each function on its own, and calls go by index.
//
// How: a greedy chain (each next function is the one that deflates best after the last 2 KB of the
// chain, relative to its size alone), then a fixed number of pseudo-random moves, each of one
// function to just before or after one of its six best partners (the functions after which it
// deflates smallest on its own), kept if the deflated code gets smaller. Moves to random places
// found about a third as much in the same time. Both steps are deterministic, so the same input
// always gives the same output. binaryen's own --reorder-functions (by call count,
// for shorter call indices) makes the gzip larger instead.
import { readFileSync, writeFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';
import binaryen from 'binaryen';

const CHAIN_WINDOW = 2048;
const REFINE_MOVES = 6000;
const PARTNERS = 6;

function readLeb(bytes, at) {
  let value = 0, shift = 0, byte;
  do {
    byte = bytes[at++];
    value |= (byte & 0x7f) << shift;
    shift += 7;
  } while (byte & 0x80);
  return [value >>> 0, at];
}

/** The code section's function bodies, in module order (defined functions only). */
function functionBodies(bytes) {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [length, start] = readLeb(bytes, at + 1);
    if (id === 10) {
      let [count, p] = readLeb(bytes, start);
      const bodies = [];
      for (let i = 0; i < count; i++) {
        const [size, body] = readLeb(bytes, p);
        bodies.push(bytes.subarray(body, body + size));
        p = body + size;
      }
      return bodies;
    }
    at = start + length;
  }
  throw new Error('order-functions: the wasm has no code section');
}

const deflatedSize = (buffer) => deflateRawSync(buffer, { level: 9 }).length;

function greedyChain(bodies, start) {
  const alone = bodies.map(deflatedSize);
  const left = new Set(bodies.keys());
  const order = [start];
  left.delete(start);
  while (left.size) {
    const tail = Buffer.concat(order.slice(-60).map((i) => bodies[i])).subarray(-CHAIN_WINDOW);
    const tailSize = deflatedSize(tail);
    let best = -1, bestRatio = Infinity;
    for (const candidate of left) {
      const ratio = (deflatedSize(Buffer.concat([tail, bodies[candidate]])) - tailSize) / alone[candidate];
      if (ratio < bestRatio) { bestRatio = ratio; best = candidate; }
    }
    order.push(best);
    left.delete(best);
  }
  return order;
}

/** Each function's best neighbours: the ones after which it deflates smallest, best first. */
function partnersOf(bodies) {
  const alone = bodies.map(deflatedSize);
  return bodies.map((body, i) => {
    const gains = [];
    bodies.forEach((other, j) => {
      if (j !== i) gains.push([alone[i] + alone[j] - deflatedSize(Buffer.concat([other, body])), j]);
    });
    gains.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    return gains.slice(0, PARTNERS).map((gain) => gain[1]);
  });
}

function refine(bodies, order, seed) {
  const size = (o) => deflatedSize(Buffer.concat(o.map((i) => bodies[i])));
  const partners = partnersOf(bodies);
  let best = size(order);
  const random = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  for (let move = 0; move < REFINE_MOVES; move++) {
    const moved = random(order.length);
    const partner = partners[moved][random(PARTNERS)];
    const tried = order.slice();
    tried.splice(tried.indexOf(moved), 1);
    tried.splice(tried.indexOf(partner) + random(2), 0, moved);
    const triedSize = size(tried);
    if (triedSize < best) { best = triedSize; order = tried; }
  }
  return order;
}

/**
 * Rewrites `input` to `output` with its functions reordered; `keepNames` keeps the name section.
 * `seed` picks the moves tried: the result moves by up to about ±90 B of gzip from seed to seed, which is
 * as much as many a code change saves, so a size review judges a change over several seeds.
 */
export function orderFunctions(input, output, keepNames, seed = 12345) {
  const bytes = readFileSync(input);
  const bodies = functionBodies(bytes);
  // The largest function starts the chain: a fixed, content-derived choice.
  let start = 0;
  bodies.forEach((body, i) => { if (body.length > bodies[start].length) start = i; });
  const order = refine(bodies, greedyChain(bodies, start), seed >>> 0);

  const module = binaryen.readBinary(bytes);
  const defined = [];
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
    if (!info.base) defined.push(info);
  }
  if (defined.length !== bodies.length) throw new Error('order-functions: binaryen and the code section disagree on the function count');
  // Removing a function and adding it again moves it to the end; the body stays in the module's
  // arena, and every reference (calls, table, exports) goes by name.
  for (const i of order) {
    const f = defined[i];
    module.removeFunction(f.name);
    module.addFunction(f.name, f.params, f.results, f.vars, f.body);
  }
  if (!module.validate()) throw new Error('order-functions: the reordered module does not validate');
  binaryen.setDebugInfo(keepNames);
  writeFileSync(output, module.emitBinary());
  module.dispose();
}
