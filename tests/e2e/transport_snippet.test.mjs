// The delivery shell's JS (the inline_js of src/shell/transport.rs, as the wasm imports it) run
// in Node against a localStorage that is full: a write that would make it grow throws
// QuotaExceededError, as browsers do. No browser is needed for what only storage decides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TRANSPORT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'shell', 'transport.rs');

/** The snippet's functions, in a context whose window.localStorage is `store` (capped in size). */
function snippet(store, capacity) {
  const source = fs.readFileSync(TRANSPORT, 'utf8');
  const js = source.match(/inline_js = r#"([\s\S]*?)"#\)\]/);
  assert.ok(js, 'the inline_js of transport.rs');
  const used = () => [...store].reduce((n, [k, v]) => n + k.length + v.length, 0);
  const localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem(k, v) {
      const grown = used() - (store.has(k) ? k.length + store.get(k).length : 0) + k.length + String(v).length;
      if (grown > capacity) throw Object.assign(new Error('quota'), { name: 'QuotaExceededError' });
      store.set(k, String(v));
    },
    removeItem: (k) => store.delete(k),
  };
  const context = { window: { localStorage }, Promise, Map, Set, setTimeout: () => 1, clearTimeout: () => {} };
  vm.createContext(context);
  vm.runInContext(js[1].replace(/^export /gm, ''), context);
  const relayed = [];
  const shared = {};
  context.transport_relay((name, args) => relayed.push([name, ...args]), shared);
  return { ...context, relayed, shared };
}

test('transport: a claim refused by a full storage leaves the other tab\'s queue as it was', async () => {
  const other = JSON.stringify({ until: 0, items: [['https://shop.example/collect', { event_id: 'x1' }]] });
  const store = new Map([['tandem:q:other', other]]);
  const t = snippet(store, 100);
  t.transport_store('tandem:q:other', '{"by":"tandem:q:mine","until":1,' + other.slice(1), false, true);
  t.transport_flush();
  assert.equal(store.get('tandem:q:other'), other, 'the queue is kept for whichever tab claims it next');
  await Promise.resolve();
  assert.deepEqual(t.relayed, [['__stored', 'tandem:q:other', false]]);
});

test('transport: our own key that cannot be written is removed, so no stale copy is resent, and is kept outside storage for a fresh instance', async () => {
  const store = new Map();
  const t = snippet(store, 100);
  t.transport_store('tandem:q:mine', '{"until":1,"items":[1]}', true, true);
  t.transport_flush();
  assert.equal(store.get('tandem:q:mine'), '{"until":1,"items":[1]}');
  assert.equal(t.shared.memory, undefined, 'stored: nothing kept outside storage');
  const big = '{"until":2,"items":[1,' + '2,'.repeat(50) + '3]}';
  t.transport_store('tandem:q:mine', big, true, true);
  t.transport_flush();
  assert.equal(store.has('tandem:q:mine'), false);
  assert.equal(t.shared.memory, big, 'what could not be stored is kept for a fresh instance after a crash');
  t.transport_store('tandem:q:mine', '{"until":3,"items":[4]}', true, true);
  assert.equal(t.shared.memory, undefined, 'a write on its way (coalesced) counts as stored: kept no longer');
  t.transport_flush();
  assert.equal(store.get('tandem:q:mine'), '{"until":3,"items":[4]}');
  // Any other key of the tag's (a Store effect) is removed too rather than left stale.
  store.set('tandem:sent', '[]');
  t.transport_store('tandem:sent', 'x'.repeat(200), false, true);
  t.transport_flush();
  assert.equal(store.has('tandem:sent'), false);
});

test('transport: removing our key after a write of it failed does not report that writes work again', async () => {
  // Storage full: our queue could not be written (the outbox keeps it in memory and beacons it at
  // unload). Then ad_storage is denied, and the shell removes our key (follow_consent): that
  // removal succeeds, but it says nothing of whether the queue can be stored. Reported as a
  // working write, the outbox would count on a stored copy that does not exist: no beacon at
  // unload with a failing endpoint, and a missing key later read as another tab's adoption.
  const store = new Map([['site', 'x'.repeat(90)]]);
  const t = snippet(store, 100);
  t.transport_store('tandem:q:mine', '{"until":1,"items":[1]}', true, true);
  t.transport_flush();
  await Promise.resolve();
  assert.deepEqual(t.relayed, [['__stored', 'tandem:q:mine', false]]);
  // ad_storage denied: the queue is kept outside storage only, and our key removed (follow_consent).
  t.transport_store('tandem:q:mine', '{"until":1,"items":[1]}', true, false);
  t.transport_store('tandem:q:mine', undefined, false, true);
  t.transport_flush();
  await Promise.resolve();
  assert.deepEqual(t.relayed, [['__stored', 'tandem:q:mine', false]], 'a removal reported as a working write');
  assert.equal(t.shared.memory, '{"until":1,"items":[1]}', 'the queue is still kept outside storage');
  assert.equal(store.has('tandem:q:mine'), false);
  // Delivered while denied: nothing is kept any more.
  t.transport_store('tandem:q:mine', undefined, true, false);
  assert.equal(t.shared.memory, undefined);
});
