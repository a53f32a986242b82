// The loader's plain-JS path (used when WebAssembly is refused) against its delivery rules, run
// in Node on a simulated page: fake timers, localStorage and a fetch that refuses a keepalive body
// over 64 KiB, as browsers do. No browser is needed, and the simulated clock makes minutes instant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const LOADER = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'www', 'loader.js');
const ENDPOINT = 'https://shop.example/collect';

function simulatedPage(store = new Map(), start = 1_800_000_000_000, tabId = 'tab1') {
  let now = start;
  const timers = [];
  const localStorage = {
    get length() { return store.size; },
    key: (i) => [...store.keys()][i] ?? null,
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k),
  };
  const requests = [];
  const beacons = [];
  const events = []; // every event the endpoint was sent
  const win = {
    document: { cookie: '', referrer: '' },
    location: { href: 'https://shop.example/' },
    localStorage,
    navigator: { sendBeacon: (url, body) => { beacons.push(body.length); return true; } },
    fetch(url, init) {
      requests.push({ bytes: init.body.length, keepalive: init.keepalive });
      if (init.keepalive && init.body.length > 65536) return Promise.reject(new TypeError('keepalive body too large'));
      events.push(...JSON.parse(init.body).events);
      return Promise.resolve({ status: 200 });
    },
  };
  const context = {
    URL, JSON, Math, console, Promise,
    Date: Object.assign(function Date() {}, { now: () => now }), // a constructor, for instanceof
    setTimeout: (f, ms) => { timers.push([now + (ms || 0), f]); return timers.length; },
    clearTimeout: () => {},
  };
  vm.createContext(context);
  vm.runInContext(fs.readFileSync(LOADER, 'utf8') + '\nthis.createJsPath = createJsPath;', context);
  const errors = [];
  const tag = context.createJsPath(win, 'test', (code, message, input) => errors.push({ code, message, input }), tabId);
  const turn = () => new Promise((r) => setImmediate(r));
  async function run(ms) {
    const end = now + ms;
    for (;;) {
      await turn();
      timers.sort((a, b) => a[0] - b[0]);
      if (!timers.length || timers[0][0] > end) break;
      const [at, f] = timers.shift();
      now = Math.max(now, at);
      f();
    }
    now = end;
    await turn();
  }
  const queued = () => JSON.parse(store.get('tandem:q:tab1') || '{"items":[]}').items.length;
  // A frozen tab: its clock moves on, its timers do not run until the next `run`.
  const freeze = (ms) => { now += ms; };
  return { tag, win, store, requests, beacons, events, errors, run, queued, freeze, context, now: () => now };
}

// A Purchase with 200 long contents: about 70 KB, more than one keepalive request may carry.
function bigPurchase(now) {
  const contents = Array.from({ length: 200 }, (_, i) => ({ id: 'sku-' + i, quantity: 1, item_price: 9.5, title: 'T'.repeat(320) }));
  return { event_id: 'order-1', event_name: 'Purchase', event_time_ms: now - 1000, custom_data: { value: 1900, currency: 'EUR', contents } };
}

test('JS path: an event over the keepalive limit goes by a plain fetch, not retried forever', async () => {
  const page = simulatedPage();
  page.store.set('tandem:q:old', JSON.stringify({ until: 0, items: [[ENDPOINT, bigPurchase(page.now())]] }));
  page.tag('init', { endpoint: ENDPOINT }); // adopts the earlier page's Purchase, then its own PageView
  await page.run(60_000);
  assert.equal(page.queued(), 0, `delivered: ${JSON.stringify(page.requests)}`);
  const big = page.requests.filter((r) => r.bytes > 65536);
  assert.equal(big.length, 1, `sent once: ${JSON.stringify(page.requests)}`);
  assert.equal(big[0].keepalive, false);
});

test('JS path: at unload, an event over the budget stays stored and does not hold back the ones behind it', async () => {
  const page = simulatedPage();
  const now = page.now();
  const small = (id) => ({ event_id: id, event_name: 'Lead', event_time_ms: now - 1000 });
  // 20 KB: over the batch size, within the unload budget, so it may go alone in a beacon.
  const mid = Object.assign(bigPurchase(now), { event_id: 'order-2' });
  mid.custom_data.contents = mid.custom_data.contents.slice(0, 55);
  page.store.set('tandem:q:old', JSON.stringify({ until: 0, items: [small('first'), bigPurchase(now), mid, small('last')].map((ev) => [ENDPOINT, ev]) }));
  page.win.fetch = (url, init) => {
    page.requests.push(JSON.parse(init.body).events.map((e) => e.event_id));
    return new Promise(() => {}); // still in flight when the page goes
  };
  const beaconed = [];
  page.win.navigator.sendBeacon = (url, body) => { beaconed.push(JSON.parse(body).events.map((e) => e.event_id)); return true; };
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  await page.run(1000);
  assert.deepEqual(page.requests, [['first']]);
  page.tag('__flush', 'pagehide');
  assert.deepEqual(beaconed, [['order-2'], ['last']]);
  // 'first' went with keepalive, which outlives the page: kept, the next page would send it again.
  assert.deepEqual(JSON.parse(page.store.get('tandem:q:tab1')).items.map((p) => p[1].event_id), ['order-1'], 'the rest stays for the next page');
});

test('JS path: when the queue is full, the oldest event not in flight is dropped, also after a pagehide', async () => {
  const page = simulatedPage();
  page.win.fetch = (url, init) => {
    page.requests.push(JSON.parse(init.body).events.map((e) => e.event_id));
    return new Promise(() => {}); // in flight for good
  };
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {}, { eventId: 'in-flight' });
  page.win.navigator.sendBeacon = () => false; // nothing is handed over: the page comes back from the bfcache
  page.tag('__flush', 'pagehide');
  for (let i = 0; i <= 100; i++) page.tag('track', 'Lead', {}, { eventId: 'lead-' + i });
  const stored = JSON.parse(page.store.get('tandem:q:tab1')).items.map((p) => p[1].event_id);
  assert.equal(stored.length, 100);
  assert.equal(stored[0], 'lead-1', 'lead-0, the oldest waiting, went first');
  assert.deepEqual(page.requests, [['in-flight']]);
});

test('JS path: the queue is bounded by bytes too, and by the site\'s queue settings, as the core\'s is', async () => {
  // A failing endpoint: every event waits. Long page URLs make each event about 2.4 KB, so 60 of
  // them (about 145 KB) pass the default 100,000 bytes while staying under 100 events.
  const failing = () => {
    const page = simulatedPage();
    page.win.fetch = () => Promise.resolve({ status: 503 });
    page.win.location.href = 'https://shop.example/p?q=' + 'x'.repeat(2000);
    return page;
  };
  const storedItems = (page) => JSON.parse(page.store.get('tandem:q:tab1')).items;
  const bytesOf = (items) => items.reduce((n, [url, ev]) => n + url.length + JSON.stringify(ev).length + 8, 0);

  const page = failing();
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  for (let i = 0; i < 60; i++) page.tag('track', 'Lead', {}, { eventId: 'lead-' + i });
  let items = storedItems(page);
  assert.ok(bytesOf(items) <= 100_000, `${bytesOf(items)} bytes of ${items.length} events kept`);
  assert.ok(items.length >= 35 && items.length < 60, `${items.length} events kept`);
  assert.equal(items[items.length - 1][1].event_id, 'lead-59', 'the newest kept, the oldest dropped');
  const full = page.errors.filter((e) => e.code === 'queue_full');
  assert.equal(full.reduce((n, e) => n + Number(e.input), 0), 60 - items.length, 'every drop reported');
  assert.match(full[0].message, /at most 100 events and 100000 bytes\): dropped the 1 oldest/);

  // The site's own bounds (config.queue), within the core's ranges; others fall back to the defaults.
  const small = failing();
  small.tag('init', { endpoint: ENDPOINT, autoPageView: false, queue: { maxEvents: 5, maxBytes: 1_000_000 } });
  for (let i = 0; i < 8; i++) small.tag('track', 'Lead', {}, { eventId: 'small-' + i });
  // small-0 is on its way (its request not answered yet within this task): never dropped.
  assert.deepEqual(storedItems(small).map((p) => p[1].event_id), ['small-0', 'small-4', 'small-5', 'small-6', 'small-7']);
  const wrong = failing();
  wrong.tag('init', { endpoint: ENDPOINT, autoPageView: false, queue: { maxEvents: 0.5, maxBytes: 'lots' } });
  for (let i = 0; i < 60; i++) wrong.tag('track', 'Lead', {}, { eventId: 'wrong-' + i });
  items = storedItems(wrong);
  assert.ok(bytesOf(items) <= 100_000 && items.length < 60, `${items.length} events kept on the defaults`);
});

test('JS path: queues adopted together past the bound drop their oldest events with a queue_full report, not silently', async () => {
  const page = simulatedPage();
  const now = page.now();
  const queueOf = (prefix, count, age) => JSON.stringify({ until: 0, items: Array.from({ length: count }, (_, i) => [ENDPOINT, { event_id: `${prefix}${i}`, event_name: 'Lead', event_time_ms: now - age + i }]) });
  page.store.set('tandem:q:older', queueOf('o', 60, 20_000));
  page.store.set('tandem:q:newer', queueOf('n', 60, 10_000));
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  await page.run(600); // the claims stand: both queues are taken
  const full = page.errors.filter((e) => e.code === 'queue_full');
  assert.equal(full.length, 1, JSON.stringify(page.errors));
  assert.equal(full[0].input, '20');
  assert.match(full[0].message, /dropped the 20 oldest undelivered event\(s\)/);
  await page.run(5000);
  assert.equal(page.events.length, 100);
});

test('JS path: batches stay under 16 KB, so every request may use keepalive', async () => {
  const page = simulatedPage();
  page.win.fetch = (url, init) => {
    page.requests.push({ bytes: init.body.length, keepalive: init.keepalive });
    return Promise.resolve({ status: 503 }); // failing: the events pile up, then go in batches
  };
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  // Long page URLs make each event about 2.4 KB: 20 of them are about 48 KB.
  page.win.location.href = 'https://shop.example/p?q=' + 'x'.repeat(2000);
  for (let i = 0; i < 20; i++) page.tag('track', 'ViewContent', {});
  await page.run(10_000);
  page.win.fetch = (url, init) => {
    page.requests.push({ bytes: init.body.length, keepalive: init.keepalive });
    return Promise.resolve({ status: 200 });
  };
  page.requests.length = 0;
  await page.run(120_000);
  assert.equal(page.queued(), 0);
  assert.ok(page.requests.length >= 2, `split: ${JSON.stringify(page.requests)}`);
  for (const r of page.requests) {
    assert.ok(r.bytes <= 16 * 1024, `a batch of ${r.bytes} B`);
    assert.equal(r.keepalive, true);
  }
});

test('JS path: a Purchase whose order id was already sent, on this page or an earlier one, is not sent again', async () => {
  const store = new Map();
  const purchase = { value: 20, currency: 'EUR', order_id: 'o-1' };
  const first = simulatedPage(store);
  first.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  const id = first.tag('track', 'Purchase', purchase);
  assert.equal(id, 'o-o-1', 'named by its order id, as the core names it');
  assert.equal(first.tag('track', 'Purchase', { ...purchase, order_id: '  o-1\n' }), id, 'the same order again on this page (trimmed) is the same event');
  await first.run(5_000);
  assert.equal(first.requests.length, 1);
  assert.match(store.get('tandem:sent') || '', /"o:o-1"/, 'kept in the sent-conversions log the wasm path reads too');
  // The thank-you page reloaded: a new page on the same storage.
  const reloaded = simulatedPage(store);
  reloaded.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  assert.equal(reloaded.tag('track', 'Purchase', purchase), null);
  assert.ok(reloaded.tag('track', 'Purchase', { ...purchase, order_id: 'o-2' }), 'another order goes');
  await reloaded.run(5_000);
  assert.equal(reloaded.requests.length, 1);
});

test('JS path: an event the site named with its own id, already sent from this browser, is not sent again after a reload', async () => {
  const store = new Map();
  const first = simulatedPage(store);
  first.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  assert.equal(first.tag('track', 'Lead', {}, 'lead-77'), 'lead-77');
  await first.run(5_000);
  assert.match(store.get('tandem:sent') || '', /"e:lead-77"/, 'kept in the log the wasm path reads (sent.rs, e:<id>)');
  const reloaded = simulatedPage(store);
  reloaded.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  assert.equal(reloaded.tag('track', 'Lead', {}, 'lead-77'), 'lead-77', 'answered with its id, as the core does');
  await reloaded.run(5_000);
  assert.deepEqual(reloaded.events, [], 'lead-77 sent a second time');
  // A site naming every event: past the log's 100 entries its ids go first, never an order id.
  reloaded.tag('track', 'Purchase', { value: 1, currency: 'EUR', order_id: 'A-1' });
  for (let i = 0; i < 120; i++) reloaded.tag('track', 'Lead', {}, 'lead-' + i);
  const keys = JSON.parse(store.get('tandem:sent')).map((entry) => entry[0]);
  assert.equal(keys.length, 100);
  assert.ok(keys.includes('o:A-1'), 'the order id kept');
});

test('JS path: the event id options of the core (eventId, eventID, event_id, a bare id) name the event', async () => {
  const page = simulatedPage();
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  assert.equal(page.tag('track', 'Lead', {}, { eventId: 'a-1' }), 'a-1');
  assert.equal(page.tag('track', 'Lead', {}, { eventID: 'a-2' }), 'a-2');
  assert.equal(page.tag('track', 'Lead', {}, { event_id: 'a-3' }), 'a-3');
  assert.equal(page.tag('track', 'Lead', {}, 'a-4'), 'a-4');
  assert.notEqual(page.tag('track', 'Lead', { order_id: 'x' }), 'o-x', 'only a Purchase is named by its order');
  // Options that are no id (true, a callback) name nothing, as in the core.
  const a = page.tag('track', 'Lead', {}, true);
  const b = page.tag('track', 'Lead', {}, function done() {});
  assert.ok(a && b && a !== b && a !== 'true', `${a} ${b}`);
  await page.run(5_000);
  assert.ok(page.requests.length >= 1);
});

test('JS path: a page with Prototype.js\'s Array.prototype.toJSON still sends valid JSON, and keeps its toJSON', async () => {
  const page = simulatedPage();
  vm.runInContext("Array.prototype.toJSON = function () { return 'not JSON'; };", page.context);
  const bodies = [];
  page.win.fetch = (url, init) => { bodies.push(init.body); return Promise.resolve({ status: 200 }); };
  page.store.set('tandem:q:old', JSON.stringify({ until: 0, items: [[ENDPOINT, bigPurchase(page.now())]] }));
  page.tag('init', { endpoint: ENDPOINT });
  await page.run(5_000);
  const events = bodies.flatMap((b) => JSON.parse(b).events);
  const purchase = events.find((e) => e.event_name === 'Purchase');
  assert.ok(events.length >= 2 && Array.isArray(purchase?.custom_data.contents), bodies.map((b) => b.slice(0, 80)).join(' | '));
  assert.equal(vm.runInContext('typeof Array.prototype.toJSON', page.context), 'function');
});

const ALL_GRANTED = { ad_storage: 'granted', analytics_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted' };

/** Two simulated tabs of one origin: one localStorage, each its own clock. */
function twoTabs() {
  const store = new Map();
  const b = simulatedPage(store, undefined, 'tabB');
  const c = simulatedPage(store, undefined, 'tabC');
  return { store, b, c };
}
const released = (now, ids) => JSON.stringify({ until: 0, items: ids.map((id) => [ENDPOINT, { event_id: id, event_name: 'Lead', event_time_ms: now - 1000 }]) });
const sentTimes = (pages, id) => pages.flatMap((p) => p.events).filter((e) => e.event_id === id).length;

test('JS path: two tabs starting together on a released queue: one of them sends it, once', async () => {
  for (const cFirst of [false, true]) {
    const { store, b, c } = twoTabs();
    const queue = released(b.now(), ['x1', 'x2']);
    store.set('tandem:q:old', queue);
    // Both read the released queue before the other's claim reached them (put back for the
    // second): the later claim is the one stored.
    const [first, second] = cFirst ? [c, b] : [b, c];
    first.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    store.set('tandem:q:old', queue);
    second.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    assert.match(store.get('tandem:q:old'), new RegExp(`^\\{"by":"tandem:q:tab${cFirst ? 'B' : 'C'}","until":\\d+,"items":\\[`));
    await first.run(1000);
    await second.run(1000);
    await first.run(10_000);
    assert.deepEqual([sentTimes([b, c], 'x1'), sentTimes([b, c], 'x2')], [1, 1], `c first: ${cFirst}`);
    assert.deepEqual([second.events.length, first.events.length], [2, 0], 'the tab whose claim stood sent them');
    assert.equal(store.has('tandem:q:old'), false);
  }
});

test('JS path: a queue claimed by a tab that closed before taking it is claimed again once the claim ran out', async () => {
  const page = simulatedPage();
  const now = page.now();
  page.store.set('tandem:q:old', JSON.stringify({ by: 'tandem:q:gone', until: now + 3000, items: JSON.parse(released(now, ['x1'])).items }));
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  await page.run(2900);
  assert.deepEqual(page.events, [], 'a live claim is left alone');
  await page.run(1000);
  assert.deepEqual(page.events.map((e) => e.event_id), ['x1']);
  assert.equal(page.store.has('tandem:q:old'), false);
});

test('JS path: a page back from the back/forward cache whose released queue another tab claimed or took sends none of it again', async () => {
  for (const taken of [true, false]) {
    const { store, b, c } = twoTabs();
    let failing = true;
    const deliver = b.win.fetch;
    b.win.fetch = (url, init) => (failing ? Promise.resolve({ status: 503 }) : deliver(url, init));
    b.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    b.tag('track', 'Lead', {}, { eventId: 'l1' });
    await b.run(300);
    // The endpoint is failing, so nothing is beaconed: the queue is released for a later page.
    b.tag('__flush', 'pagehide');
    assert.equal(JSON.parse(store.get('tandem:q:tabB')).until, 0);
    c.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    await c.run(taken ? 2000 : 100);
    assert.equal(c.events.length, taken ? 1 : 0, `taken: ${taken}`);
    // B is back and the endpoint works again: its retry finds its key gone or claimed.
    failing = false;
    await b.run(120_000);
    await c.run(5000);
    assert.equal(sentTimes([b, c], 'l1'), 1, `taken: ${taken}`);
    assert.deepEqual(c.events.map((e) => e.event_id), ['l1']);
    // What B tracks next is stored under a new key, not over C's claim, and goes once.
    failing = true;
    b.tag('track', 'Lead', {}, { eventId: 'l2' });
    assert.deepEqual(JSON.parse(store.get('tandem:q:tabB~')).items.map((p) => p[1].event_id), ['l2']);
    failing = false;
    await b.run(120_000);
    assert.deepEqual(b.events.map((e) => e.event_id), ['l2']);
    assert.equal(store.has('tandem:q:tabB'), false);
  }
});

/** Makes `page`'s requests wait for an answer the test gives: `answer(status)` answers the oldest. */
function heldRequests(page) {
  const waiting = [];
  page.win.fetch = (url, init) => {
    page.events.push(...JSON.parse(init.body).events);
    return new Promise((resolve) => waiting.push(resolve));
  };
  return { answer: (status) => waiting.shift()({ status }), get count() { return waiting.length; } };
}

test('JS path: a request answered after another tab took the queue does not write its events back', async () => {
  for (const status of [503, 200]) {
    const { store, b, c } = twoTabs();
    const held = heldRequests(b);
    b.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    b.tag('track', 'Lead', {}, { eventId: 'l1' });
    await b.run(300);
    b.freeze(130_000); // a frozen tab, its request unanswered past its lease
    assert.equal(held.count, 1);
    await c.run(130_000); // C's clock, to the same time
    c.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    await c.run(2000);
    assert.deepEqual(c.events.map((e) => e.event_id), ['l1'], 'C took the queue whose lease ran out');
    // B's request was on its way before C took the queue (the endpoint deduplicates by
    // event_id); after its answer, B neither stores l1 again nor sends it again.
    held.answer(status);
    await b.run(120_000);
    assert.equal(store.has('tandem:q:tabB'), false, `status ${status}: B's key written back`);
    assert.deepEqual(b.events.map((e) => e.event_id), ['l1'], `status ${status}: B sent l1 again`);
  }
});

test('JS path: a page back from the back/forward cache that sends its queue again holds it, so no other tab sends it too', async () => {
  const { store, b, c } = twoTabs();
  const deliver = b.win.fetch;
  b.win.fetch = () => Promise.resolve({ status: 503 });
  b.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  b.tag('track', 'Lead', {}, { eventId: 'l1' });
  await b.run(300);
  b.tag('__flush', 'pagehide');
  assert.equal(JSON.parse(store.get('tandem:q:tabB')).until, 0, 'released for a later page');
  // Back from the cache: the retry goes, and is still on its way when another tab starts.
  const held = heldRequests(b);
  await b.run(5000);
  assert.equal(held.count, 1, 'the retry went');
  assert.ok(JSON.parse(store.get('tandem:q:tabB')).until > b.now(), 'held again by a live lease');
  c.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  await c.run(5000);
  assert.deepEqual(c.events, [], 'a live tab\'s queue is left alone');
  b.win.fetch = deliver;
  held.answer(200);
  await b.run(1000);
  assert.equal(sentTimes([b, c], 'l1'), 1);
  assert.equal(store.has('tandem:q:tabB'), false);
});

test('JS path: a request unanswered after 30 s counts as a network error, and its events go again', async () => {
  const page = simulatedPage();
  const held = heldRequests(page);
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {}, { eventId: 'l1' });
  await page.run(29_000);
  page.tag('track', 'Lead', {}, { eventId: 'l2' });
  await page.run(900);
  assert.equal(held.count, 1, 'one request in flight at a time');
  await page.run(2000); // past the timeout (30 s) and the first retry's backoff (at most 1 s)
  assert.equal(held.count, 2, 'the retry went');
  held.answer(200); // the hung request's late answer changes nothing
  held.answer(200);
  await page.run(1000);
  assert.deepEqual(page.events.map((e) => e.event_id), ['l1', 'l1', 'l2'], 'the same event_id again, with l2');
  assert.equal(page.queued(), 0);
});

test('JS path: a hung request answered 2xx after its timeout, before the retry went, is not sent again', async () => {
  const page = simulatedPage();
  const held = heldRequests(page);
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {}, { eventId: 'l1' });
  await page.run(30_000); // the timeout: a network error, retried within 0.5 to 1 s
  assert.equal(held.count, 1);
  held.answer(200); // the endpoint took l1 after all, as the core hears a late answer too
  await page.run(120_000);
  assert.deepEqual(page.events.map((e) => e.event_id), ['l1'], 'l1 sent once');
  assert.equal(page.queued(), 0);
});

test('JS path: taking over a tab whose key another tab has claimed, it stores under a new key, not over the claim', async () => {
  const page = simulatedPage();
  const now = page.now();
  const claim = JSON.stringify({ by: 'tandem:q:tabC', until: now + 3000, items: JSON.parse(released(now, ['a'])).items });
  page.store.set('tandem:q:tab1', claim);
  page.win.fetch = () => Promise.resolve({ status: 503 });
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {}, { eventId: 'b' });
  await page.run(1000);
  assert.equal(page.store.get('tandem:q:tab1'), claim, 'the claim stands for the tab that made it');
  assert.deepEqual(JSON.parse(page.store.get('tandem:q:tab1~')).items.map((p) => p[1].event_id), ['b']);
});

test('JS path: a consent default after an update does not override what the update set', async () => {
  const page = simulatedPage();
  page.win.document.cookie = '_fbp=fb.1.1700000000000.123456789';
  page.tag('consent', 'update', { ad_storage: 'denied', ad_user_data: 'denied' });
  page.tag('consent', 'default', ALL_GRANTED);
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {});
  await page.run(5_000);
  assert.equal(page.events.length, 1);
  const [lead] = page.events;
  assert.equal(lead.consent.ad_storage, 'denied');
  assert.equal(lead.consent.ad_user_data, 'denied');
  assert.equal(lead.consent.analytics_storage, 'granted', 'the default still sets what no update did');
  assert.deepEqual(lead.user_data, {});
});

test('JS path: a regional denial holds against a default without region, in either order, as in the core', async () => {
  const denied = { ad_storage: 'denied', ad_user_data: 'denied', region: ['AT', 'DE'] };
  const granted = { ad_storage: 'granted', ad_user_data: 'granted' };
  for (const [first, [kind, second], expected] of [
    [denied, ['default', granted], 'denied'],
    [granted, ['default', denied], 'denied'],
    [{ ...granted, region: ['US'] }, ['default', { ad_storage: 'denied', ad_user_data: 'denied' }], 'denied'],
    [denied, ['update', granted], 'granted'], // an update still wins
  ]) {
    const page = simulatedPage();
    page.tag('consent', 'default', first);
    page.tag('consent', kind, second);
    page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    page.tag('track', 'Lead', {}, { eventId: 'lead-1' });
    await page.run(5_000);
    const { consent } = page.events[0];
    assert.deepEqual([consent.ad_storage, consent.ad_user_data], [expected, expected], JSON.stringify([first, kind, second]));
  }
});

test('JS path: without ad_storage, what an earlier visit stored (_fbp, _fbc, stored click ids) is not read', async () => {
  for (const adStorage of ['denied', 'granted']) {
    const page = simulatedPage();
    page.win.document.cookie = '_fbp=fb.1.1700000000000.123456789; _fbc=fb.1.1700000000000.IwAR1';
    page.store.set('tandem:attribution', JSON.stringify({ click_ids: { gclid: { value: 'G1', ts: 1_700_000_000_000 } } }));
    page.tag('consent', 'default', { ...ALL_GRANTED, ad_storage: adStorage });
    page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    page.tag('track', 'Lead', {});
    await page.run(5_000);
    const [lead] = page.events;
    assert.equal(lead.consent.ad_user_data, 'granted');
    if (adStorage === 'denied') {
      assert.deepEqual([lead.user_data, lead.click_ids], [{}, {}]);
    } else {
      assert.deepEqual(lead.user_data, { fbp: 'fb.1.1700000000000.123456789', fbc: 'fb.1.1700000000000.IwAR1' });
      assert.equal(lead.click_ids.gclid.value, 'G1');
    }
  }
});

test('JS path: with ad_user_data denied, the referrer carries no click id either, as in the core', async () => {
  const page = simulatedPage();
  page.win.location.href = 'https://shop.example/p?gclid=G2';
  page.win.document.referrer = 'https://shop.example/?fbclid=F1&a=1';
  page.tag('consent', 'default', { ...ALL_GRANTED, ad_user_data: 'denied' });
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  page.tag('track', 'Lead', {});
  await page.run(5_000);
  const [lead] = page.events;
  assert.deepEqual([lead.event_source_url, lead.referrer], ['https://shop.example/p', 'https://shop.example/?a=1']);
});

test('JS path: a revocation applies to the events still waiting: ad_user_data denied redacts them, basic mode drops them, as in the core', async () => {
  for (const basic of [false, true]) {
    const page = simulatedPage();
    page.win.document.cookie = '_fbp=fb.1.1700000000000.123456789';
    page.win.location.href = 'https://shop.example/p?gclid=G1';
    let status = 503;
    page.win.fetch = (url, init) => {
      if (status === 200) page.events.push(...JSON.parse(init.body).events);
      return Promise.resolve({ status });
    };
    page.tag('consent', 'default', { ...ALL_GRANTED, ad_personalization: 'denied' });
    page.tag('init', { endpoint: ENDPOINT, autoPageView: false, consentMode: basic ? 'basic' : 'advanced' });
    page.tag('track', 'Lead', {}, { eventId: 'l1' });
    await page.run(300); // failing: l1 waits, with its identifiers
    // In basic mode, what the update lets this tab adopt (ad_storage stays granted) goes too.
    if (basic) page.store.set('tandem:q:old', earlierQueue(page.now()));
    page.tag('consent', 'update', { ad_user_data: 'denied' });
    assert.doesNotMatch(page.store.get('tandem:q:tab1') || '', /fb\.1\.|gclid/, `basic: ${basic}: the stored copy`);
    // A later grant does not loosen the consent a redacted event carries.
    page.tag('consent', 'update', { ad_personalization: 'granted' });
    status = 200;
    await page.run(120_000);
    if (basic) {
      assert.deepEqual(page.events, [], 'basic mode sends nothing without ad consent, retries and adopted events included');
      assert.equal(page.store.has('tandem:q:old'), false);
    } else {
      const [lead] = page.events;
      assert.deepEqual([lead.event_id, lead.user_data, lead.event_source_url, lead.consent.ad_user_data, lead.consent.ad_personalization], ['l1', {}, 'https://shop.example/p', 'denied', 'denied']);
    }
  }
});

// An event an earlier page left undelivered, with every identifier it may carry.
function earlierQueue(now) {
  const ev = {
    event_id: 'old-1', event_name: 'Lead', event_time: Math.floor((now - 1000) / 1000), event_time_ms: now - 1000,
    event_source_url: 'https://shop.example/p?gclid=G1&a=1#top', referrer: 'https://shop.example/?fbclid=F1',
    action_source: 'website', user_data: { fbp: 'fb.1.1700000000000.1', em: ['e'.repeat(64)] }, custom_data: {},
    click_ids: { gclid: { value: 'G1', ts: now - 1000 } }, utm: {}, client_id: 'c1', tag_version: 'test',
    google_user_data: { sha256_email_address: 'e'.repeat(64) }, tiktok_user_data: { email: 'e'.repeat(64) },
    consent: { ...ALL_GRANTED },
  };
  return JSON.stringify({ until: 0, items: [[ENDPOINT, ev]] });
}

test('JS path: with ad_storage denied the queue is neither written nor adopted, and events still go from memory', async () => {
  const page = simulatedPage();
  page.store.set('tandem:q:old', earlierQueue(page.now()));
  let status = 503;
  page.win.fetch = (url, init) => {
    if (status === 200) page.events.push(...JSON.parse(init.body).events);
    return Promise.resolve({ status });
  };
  page.tag('consent', 'default', { ...ALL_GRANTED, ad_storage: 'denied' });
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  const id = page.tag('track', 'Lead', {});
  await page.run(5_000); // failing: the Lead waits
  page.win.navigator.sendBeacon = () => false; // its last-chance beacon refused: it stays in memory
  page.tag('__flush', 'pagehide');
  assert.deepEqual([...page.store.keys()], ['tandem:q:old'], 'nothing written, the earlier queue untouched');
  status = 200;
  await page.run(120_000);
  assert.deepEqual(page.events.map((e) => e.event_id), [id], 'delivered from memory; the earlier page\'s event unread');
  page.tag('consent', 'update', { ad_storage: 'granted' }); // now it may be read: it goes
  await page.run(5_000);
  assert.deepEqual(page.events.map((e) => e.event_id), [id, 'old-1']);
  assert.equal(page.store.has('tandem:q:old'), false);
});

test('JS path: with the queue kept in memory only (ad_storage denied, storage blocked), the unload beacon goes even with a failing endpoint', async () => {
  for (const blocked of [false, true]) {
    const page = simulatedPage();
    if (blocked) Object.defineProperty(page.win, 'localStorage', { get() { throw new Error('SecurityError'); } });
    page.win.fetch = () => Promise.resolve({ status: 503 });
    const beaconed = [];
    page.win.navigator.sendBeacon = (url, body) => { beaconed.push(...JSON.parse(body).events.map((e) => e.event_id)); return true; };
    if (!blocked) page.tag('consent', 'default', { ...ALL_GRANTED, ad_storage: 'denied' });
    page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
    page.tag('track', 'Lead', {}, { eventId: 'l1' });
    await page.run(300); // failed once: the retry waits
    page.tag('__flush', 'pagehide');
    // Nothing is stored for a later page: the beacon is l1's last chance, as in the core's hide.
    assert.deepEqual(beaconed, ['l1'], `blocked: ${blocked}`);
  }
});

test('JS path: events adopted from an earlier page carry no identifiers while ad_user_data is denied', async () => {
  const page = simulatedPage();
  const stored = earlierQueue(page.now());
  page.store.set('tandem:q:old', stored);
  page.tag('consent', 'default', { ...ALL_GRANTED, ad_user_data: 'denied' });
  page.tag('init', { endpoint: ENDPOINT, autoPageView: false });
  await page.run(5_000);
  // As the core's payload::redact: the event as if tracked now, the rest (client_id too) as it was.
  const { google_user_data, tiktok_user_data, ...rest } = JSON.parse(stored).items[0][1];
  assert.deepEqual(page.events, [{
    ...rest,
    event_source_url: 'https://shop.example/p?a=1#top', referrer: 'https://shop.example/',
    user_data: {}, click_ids: {}, consent: { ...ALL_GRANTED, ad_user_data: 'denied' },
  }]);
});

// The whole loader (bootTandem) on the simulated page, with the stub snippet's queue. Without
// `core`, the page has no fetch for the wasm: the loader takes the plain-JS path. With it, `core`
// stands in for the wasm's `command` (src/shell/mod.rs), replying as `reply` does.
// `wasmArrives`: a promise the wasm's download waits for (else it arrives at once). The page's
// lifecycle listeners are kept, for `hide()` and `pagehide()`.
function bootedPage(queuedCalls, core, { store, start, wasmArrives } = {}) {
  const page = simulatedPage(store, start);
  const glue = {};
  const logged = [];
  const listeners = {};
  page.win.addEventListener = (type, f) => { listeners[type] = f; };
  page.win.document.addEventListener = (type, f) => { listeners[type] = f; };
  page.win.document.visibilityState = 'visible';
  page.win.console = { error: (m) => logged.push(m), warn: () => {}, log: () => {} };
  const stub = function () { (stub.q = stub.q || []).push(arguments); };
  page.win.tandem = stub;
  for (const call of queuedCalls) stub(...call);
  page.context.TANDEM_VERSION = 'test';
  if (core) {
    page.context.fetch = () => Promise.resolve(wasmArrives).then(() => ({ ok: true, headers: { get: () => 'application/octet-stream' }, arrayBuffer: () => Promise.resolve(new ArrayBuffer(8)) }));
    page.context.WebAssembly = { compile: () => Promise.resolve({}) };
    // `glue.shared`: the page's object the loader gives each instance (src/shell/transport.rs);
    // `glue.relay` and `glue.tabId`, as the shell gets them.
    page.context.createGlue = () => ({ init: () => Promise.resolve(), set_relay(relay, tabId, shared) { Object.assign(glue, { relay, tabId, shared }); }, command: core });
  }
  page.context.bootTandem(page.win, { src: 'https://shop.example/tandem.js', nonce: '' });
  const hide = () => { page.win.document.visibilityState = 'hidden'; listeners.visibilitychange(); };
  const pagehide = () => listeners.pagehide();
  return { ...page, glue, logged, hide, pagehide, tandem: (...args) => page.win.tandem(...args) };
}

const refusal = (input) => JSON.stringify({ event_id: null, errors: [{ code: 'invalid_config', message: 'tandem.init expects a config object, got a string', input }], warnings: [] });

test('a refused init config leaves the tag as before: a later init works, and the refusal is reported once', async () => {
  const calls = [];
  let initialized = false;
  const page = bootedPage([['consent', 'default', { ad_user_data: 'denied' }], ['init', 'G-1']], (name, json) => {
    const args = JSON.parse(json);
    calls.push(name);
    if (name === 'init') {
      if (typeof args[0] === 'string') return refusal(json);
      initialized = true;
      return '';
    }
    if (name === 'track') return initialized ? 'e-' + calls.length : JSON.stringify({ event_id: null, errors: [{ code: 'not_initialized', message: 'Call init', input: 'track' }], warnings: [] });
    return '';
  });
  await page.run(1_000);
  assert.equal(page.win.tandem.loaded, true, 'live');
  assert.equal(page.tandem('track', 'Lead'), undefined, 'held: no configuration is in force yet');
  page.tandem('init', { endpoint: ENDPOINT, autoPageView: false });
  assert.match(String(page.tandem('track', 'Lead')), /^e-/);
  assert.deepEqual(calls, ['consent', 'init', 'init', 'track', 'track'], 'the consent default before the core, the held Lead after the good init');
  assert.deepEqual(page.logged.filter((m) => /config object/.test(m)).length, 1, page.logged.join('\n'));
  assert.deepEqual(page.logged.filter((m) => /Call init/.test(m)), []);
});

test('JS path: a refused init config leaves the tag as before: a later init works, and the refusal is reported once', async () => {
  const other = 'https://collect.example/e';
  const page = bootedPage([['consent', 'default', { ad_user_data: 'denied' }], ['init', 'G-1'], ['track', 'Lead', {}, { eventId: 'lead-1' }]]);
  assert.equal(page.win.tandem.degraded, true);
  const urls = [];
  page.win.fetch = (url, init) => { urls.push(url); page.events.push(...JSON.parse(init.body).events); return Promise.resolve({ status: 200 }); };
  page.tandem('init', { endpoint: other, autoPageView: false });
  await page.run(5_000);
  assert.deepEqual(page.events.map((e) => [e.event_id, e.consent.ad_user_data]), [['lead-1', 'denied']]);
  assert.deepEqual(urls, [other]);
  assert.equal(page.logged.filter((m) => /config object/.test(m)).length, 1, page.logged.join('\n'));
});

test('init with no config (null) starts the tag on its defaults, on either path', async () => {
  let initialized = false;
  const wasm = bootedPage([['init', null]], (name, json) => {
    if (name === 'init') initialized = true;
    return name === 'track' && initialized ? 'e-1' : '';
  });
  await wasm.run(1_000);
  assert.equal(wasm.tandem('track', 'Lead'), 'e-1', 'not held as if no init had come');
  const js = bootedPage([['init', null], ['track', 'Lead', {}, { eventId: 'lead-1' }]]);
  await js.run(5_000);
  assert.deepEqual(js.events.map((e) => e.event_id).filter((id) => id === 'lead-1'), ['lead-1']);
});

test('what emitting earlier tracks reports, before another command, reaches onError and the console', async () => {
  // As src/shell/mod.rs: a track's effects are emitted by the next non-track command, which the
  // loader now runs as an `__emit` call of its own; a queue_full from the outbox is in its reply.
  let deferred = 0;
  const page = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], (name) => {
    if (name === 'track') { deferred++; return 'e-' + deferred; }
    if (deferred) { deferred = 0; return JSON.stringify({ event_id: null, errors: [{ code: 'queue_full', message: 'The delivery queue is full: dropped the 1 oldest undelivered event(s)', input: '1' }], warnings: [] }); }
    return '';
  });
  await page.run(1_000);
  page.tandem('track', 'Lead');
  page.tandem('page');
  assert.equal(page.logged.filter((m) => /queue is full/.test(m)).length, 1, JSON.stringify(page.logged));
});

test('a command whose emission of earlier tracks traps on the last restart goes to the plain-JS path', async () => {
  const page = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], (name) => {
    if (name === 'identify' || name === '__emit') throw new Error('unreachable');
    if (name === 'track') return 'e-1';
    return '';
  });
  for (let i = 0; i < 3; i++) { await page.run(1_000); page.tandem('identify', { email: 'a@b.c' }); }
  await page.run(1_000);
  assert.equal(page.win.tandem.loaded, true);
  page.tandem('track', 'Lead', {}, { eventId: 'lead-1' });
  page.tandem('page');
  await page.run(10_000);
  assert.equal(page.win.tandem.degraded, true);
  assert.ok(page.events.map((e) => e.event_name).includes('PageView'), JSON.stringify(page.events.map((e) => e.event_name)));
});

test('after a crash, a consent wait that ended is not started again, and the automatic PageView is not sent twice', async () => {
  for (const [crashAt, waitLeft, pageViewAgain] of [[1_000, undefined, false], [100, 400, true]]) {
    const calls = [];
    const page = bootedPage([['consent', 'default', { ad_storage: 'granted', wait_for_update: 500 }], ['init', { endpoint: ENDPOINT }]], (name, json) => {
      calls.push([name, JSON.parse(json)]);
      if (name === 'identify') throw new Error('unreachable');
      return '';
    });
    await page.run(crashAt);
    calls.length = 0;
    page.tandem('identify', { email: 'a@b.c' }); // traps: a fresh instance takes over
    await page.run(1_000);
    const consent = calls.find(([name]) => name === 'consent');
    const restore = calls.find(([name]) => name === 'restore');
    assert.ok(consent && restore, JSON.stringify(calls));
    assert.equal(consent[1][1].wait_for_update, waitLeft, `crash at +${crashAt} ms: ${JSON.stringify(consent)}`);
    assert.equal(consent[1][1].ad_storage, 'granted', JSON.stringify(consent));
    assert.equal(restore[1][0].autoPageView !== false, pageViewAgain, JSON.stringify(restore));
    assert.equal(restore[1][0].endpoint, ENDPOINT);
  }
});

test('after a crash, the consent calls made after init follow the restore as __consent_restored, never folded into those made before it', async () => {
  const calls = [];
  const page = bootedPage([['consent', 'default', { ad_storage: 'denied' }], ['init', { endpoint: ENDPOINT }]], (name, json) => {
    calls.push([name, JSON.parse(json)]);
    if (name === 'identify') throw new Error('unreachable');
    return '';
  });
  await page.run(1_000);
  page.tandem('consent', 'update', { ad_storage: 'granted' });
  // Past the loader's 100 remembered calls, defaults after init fold into each other only.
  for (let i = 0; i < 120; i++) page.tandem('consent', 'default', { ad_user_data: i % 2 ? 'granted' : 'denied', wait_for_update: 5_000 });
  calls.length = 0;
  page.tandem('identify', { email: 'a@b.c' }); // traps: a fresh instance takes over
  await page.run(1_000);
  assert.equal(calls.shift()[0], 'identify');
  const names = calls.map(([name]) => name);
  const afterInit = calls.filter(([name]) => name === '__consent_restored').map(([, args]) => args);
  assert.deepEqual(names.slice(0, 2 + afterInit.length), ['consent', 'restore', ...afterInit.map(() => '__consent_restored')], JSON.stringify(names));
  assert.deepEqual(calls[0][1], ['default', { ad_storage: 'denied' }], 'the default before init, alone and before restore');
  assert.equal(calls[1][1][0].autoPageView, false, 'a wait begun after init held no PageView: none is made again');
  assert.deepEqual(afterInit[0], ['update', { ad_storage: 'granted' }]);
  assert.ok(afterInit.length > 1 && afterInit.length <= 100, String(afterInit.length));
  for (const call of afterInit.slice(1)) assert.equal(call[0], 'default', JSON.stringify(call));
  assert.equal(afterInit[afterInit.length - 1][1].ad_user_data, 'granted', 'the latest default is the one in force');
  const wait = afterInit[afterInit.length - 1][1].wait_for_update;
  assert.ok(wait > 0 && wait <= 5_000, `what is left of the wait: ${wait}`);
});

test('after a crash, the identify calls the core took follow the restore as __identity_restored, in order; identify(null) forgets those before it, and one that trapped is not replayed', async () => {
  const calls = [];
  const page = bootedPage([['identify', { email: 'before@init.example' }], ['init', { endpoint: ENDPOINT }]], (name, json) => {
    const args = JSON.parse(json);
    calls.push([name, args]);
    if ((name === 'identify' || name === '__identity_restored') && args[0] && args[0].poison) throw new Error('unreachable');
    if (name === 'page') throw new Error('unreachable');
    return '';
  });
  await page.run(1_000);
  const firstName = { firstName: 'Ann' };
  page.tandem('identify', { phone: '+1 650 555 1212' });
  page.tandem('identify', null);
  page.tandem('identify', { email: 'a@b.example' });
  page.tandem('identify', firstName);
  firstName.firstName = 'changed after the call';
  page.tandem('identify', 'not an object');
  page.tandem('identify', { poison: true }); // traps: a fresh instance takes over
  await page.run(1_000);
  let names = calls.map(([name]) => name);
  let after = names.lastIndexOf('restore');
  assert.ok(after > 0, names.join(' '));
  assert.deepEqual(calls.slice(after + 1).map(([name, args]) => [name, args[0]]), [
    ['__identity_restored', { email: 'a@b.example' }],
    ['__identity_restored', { firstName: 'Ann' }],
  ], 'as the core read them, none before identify(null), and neither the refused nor the trapping call');

  // Past the loader's 100 remembered calls, the oldest fold into one; a field's latest value wins.
  for (let i = 0; i < 150; i++) page.tandem('identify', i % 2 ? { externalId: 'u' + i } : { zip: String(10000 + i) });
  calls.length = 0;
  page.tandem('page'); // traps
  await page.run(1_000);
  names = calls.map(([name]) => name);
  after = names.lastIndexOf('restore');
  const replayed = calls.slice(after + 1).filter(([name]) => name === '__identity_restored').map(([, args]) => args[0]);
  assert.ok(replayed.length <= 100 && replayed.length > 50, String(replayed.length));
  const state = Object.assign({}, ...replayed);
  assert.deepEqual(state, { email: 'a@b.example', firstName: 'Ann', zip: '10148', externalId: 'u149' });
});

test('after a crash, the events a consent wait held are tracked again on the fresh instance under their ids; once the wait has ended, none are', async () => {
  const calls = [];
  let held = 0;
  // As the shell does: `shared.held` is the number of events the core holds, after each call.
  const hold = (n) => { held = n; page.glue.shared.held = n; };
  const page = bootedPage([['consent', 'default', { ad_storage: 'denied', wait_for_update: 5_000 }], ['init', { endpoint: ENDPOINT }]], (name, json) => {
    const args = JSON.parse(json);
    calls.push([name, args]);
    if (name === 'identify') throw new Error('unreachable'); // the trap
    if (name === 'restore') hold(0);
    if (name === 'consent' && args[0] === 'update') hold(0);
    if (name === 'track') {
      hold(held + 1);
      return (args[2] && args[2].eventId) || 'e-' + calls.length;
    }
    if (name === 'page') {
      hold(held + 1);
      return 'pv-' + calls.length;
    }
    return '';
  });
  await page.run(1_000);
  const lead = page.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, 'lead-1');
  const view = page.tandem('page');
  const contact = page.tandem('track', 'Contact', {});
  page.tandem('consent', 'default', { analytics_storage: 'denied' }); // the wait still runs
  calls.length = 0;
  page.tandem('identify', { email: 'a@b.example' }); // traps: a fresh instance takes over
  await page.run(1_000);
  const after = calls.map(([name]) => name).lastIndexOf('restore');
  const tracks = calls.slice(after + 1).filter(([name]) => name === 'track').map(([, args]) => [args[0], args[2].eventId]);
  assert.deepEqual(tracks, [['Lead', lead], ['PageView', view], ['Contact', contact]], 'each once, in order, under its id');
  assert.equal(calls.slice(after + 1).filter(([name]) => name === 'page').length, 0);

  // The wait ends (an update): nothing is held, so a later crash replays none of them.
  page.tandem('consent', 'update', { ad_storage: 'granted' });
  calls.length = 0;
  page.tandem('identify', { email: 'a@b.example' });
  await page.run(1_000);
  assert.ok(calls.some(([name]) => name === 'restore'), 'restarted');
  assert.deepEqual(calls.filter(([name]) => name === 'track'), []);
});

test('after a crash loop, the events a consent wait held in the last instance go to the endpoint on the plain-JS path, under their ids', async () => {
  let held = 0;
  const hold = (n) => { held = n; page.glue.shared.held = n; };
  const page = bootedPage([['consent', 'default', { ad_storage: 'granted', ad_user_data: 'granted', wait_for_update: 60_000 }], ['init', { endpoint: ENDPOINT }]], (name, json) => {
    const args = JSON.parse(json);
    if (name === 'identify') throw new Error('unreachable'); // the trap, every time
    if (name === 'restore') hold(0);
    if (name === 'track') {
      hold(held + 1);
      return (args[2] && args[2].eventId) || 'e-' + args[0];
    }
    return '';
  });
  await page.run(1_000);
  const lead = page.tandem('track', 'Lead', { value: 1, currency: 'EUR' });
  const contact = page.tandem('track', 'Contact', {}, 'contact-1');
  for (let crash = 0; crash < 4; crash++) {
    page.tandem('identify', { email: 'a@b.example' });
    await page.run(2_000);
  }
  assert.equal(page.win.tandem.degraded, true, 'on the plain-JS path after the fourth trap');
  await page.run(5_000);
  const sent = page.events.map((e) => [e.event_name, e.event_id]);
  assert.deepEqual(sent.filter(([name]) => name !== 'PageView'), [['Lead', lead], ['Contact', contact]], JSON.stringify(sent));
});

test('after a crash loop, the plain-JS path does not send again what the last instance had on its way when its answer comes within a second', async () => {
  for (const answerAfter of [0, 300]) {
    const page = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], (name) => {
      if (name === 'identify') throw new Error('unreachable'); // the trap, every time
      if (name === 'track') {
        // As the shell: l1 stored under the tab's key, and its request on its way.
        page.store.set('tandem:q:' + page.glue.tabId, JSON.stringify({ until: page.now() + 120_000, items: [[ENDPOINT, { event_id: 'l1', event_name: 'Lead', event_time_ms: page.now() }]] }));
        return 'l1';
      }
      return '';
    });
    await page.run(1_000);
    page.tandem('track', 'Lead', {}, 'l1');
    for (let crash = 0; crash < 4; crash++) {
      page.tandem('identify', { email: 'a@b.example' });
      await page.run(crash < 3 ? 100 : answerAfter);
    }
    assert.equal(page.win.tandem.degraded, true);
    page.tandem('track', 'Lead', {}, 'l2'); // a track right away does not send l1 with it
    page.glue.relay('__delivered', [200, 'l1']); // the answer to the last instance's request
    await page.run(60_000);
    assert.deepEqual(page.events.map((e) => e.event_id), ['l2'], `answered after ${answerAfter} ms: l1 sent again`);
    assert.equal(page.store.has('tandem:q:' + page.glue.tabId), false);
  }
});

test('after a crash, a fresh instance and then the plain-JS path keep the queue key the tab had moved to, and send what it holds', async () => {
  let first = null;
  const page = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], (name) => {
    if (name === 'identify') throw new Error('unreachable'); // the trap, every time
    if (name === 'track' && !first) {
      // As the shell, after another tab took this tab's first queue (Outbox::key_checked): l1
      // waits under the key it moved to, `<tab id>~`, and the shell's shared.own names that key.
      first = page.glue.tabId;
      const moved = 'tandem:q:' + first + '~';
      page.store.set(moved, JSON.stringify({ until: page.now() + 120_000, items: [[ENDPOINT, { event_id: 'l1', event_name: 'Lead', event_time_ms: page.now() }]] }));
      page.glue.shared.own = moved;
      return 'l1';
    }
    return '';
  });
  await page.run(1_000);
  page.tandem('track', 'Lead', {}, 'l1');
  page.tandem('identify', { email: 'a@b.example' });
  await page.run(100);
  assert.equal(page.glue.tabId, first + '~', 'the fresh instance reads and writes the key its tab moved to');
  for (let crash = 1; crash < 4; crash++) {
    page.tandem('identify', { email: 'a@b.example' });
    await page.run(100);
  }
  assert.equal(page.win.tandem.degraded, true);
  await page.run(5_000);
  assert.deepEqual(page.events.map((e) => e.event_id), ['l1'], 'l1 stranded under a key no tab of this page reads');
  assert.equal(page.store.has('tandem:q:' + first + '~'), false);
});

// ---------------------------------------------------------------- hidden before the wasm is live

/** The events a stash stored under `tandem:q:<tab id>` (the one queue key in `store`), in order. */
function stashedEvents(store) {
  const keys = [...store.keys()].filter((k) => k.startsWith('tandem:q:'));
  assert.ok(keys.length <= 1, keys.join(' '));
  return keys.length ? JSON.parse(store.get(keys[0])).items.map((p) => p[1]) : [];
}
const STASHED_CALLS = [
  ['init', { endpoint: ENDPOINT }],
  ['track', 'Lead', { value: 5, currency: 'EUR' }],
  ['track', 'Purchase', { value: 20, currency: 'EUR', order_id: 'A-1' }],
  ['track', 'Contact', {}, { eventId: 'site-1' }],
];

test('hidden before the wasm arrived: the queued calls are stored for a later page, nothing is sent, and the wasm later tracks them under the same ids', async () => {
  let arrive;
  const wasmArrives = new Promise((r) => { arrive = r; });
  const core = [];
  const page = bootedPage(STASHED_CALLS, (name, json) => {
    core.push([name, JSON.parse(json)]);
    return name === 'track' ? JSON.parse(json)[2].eventId : '';
  }, { wasmArrives });
  await page.run(500);
  page.hide();
  const stored = stashedEvents(page.store);
  assert.deepEqual(stored.map((e) => e.event_name), ['PageView', 'Lead', 'Purchase', 'Contact']);
  const [pageView, lead, purchase, contact] = stored.map((e) => e.event_id);
  assert.match(lead, /^[A-Za-z0-9_.:-]{8,64}$/, 'a generated id for the Lead');
  assert.equal(purchase, 'o-A-1');
  assert.equal(contact, 'site-1');
  assert.deepEqual([page.requests.length, page.beacons.length], [0, 0], 'nothing is sent from a stash');
  assert.equal(page.store.get('tandem:sent'), undefined, 'the order is not logged as sent: the wasm has yet to send it');
  const queueKey = [...page.store.keys()].find((k) => k.startsWith('tandem:q:'));
  assert.ok(JSON.parse(page.store.get(queueKey)).until > page.now(), 'leased as a live tab\'s');
  // Visible again, hidden again: stored again under the same ids, the PageView's too.
  page.hide();
  assert.deepEqual(stashedEvents(page.store).map((e) => e.event_id), [pageView, lead, purchase, contact]);

  arrive();
  await page.run(1_000);
  assert.equal(page.win.tandem.loaded, true, 'live');
  assert.deepEqual(stashedEvents(page.store), [], 'the stored copy is withdrawn: the wasm sends them');
  const tracks = core.filter(([name]) => name === 'track').map(([, args]) => [args[0], args[2].eventId]);
  // The automatic PageView too, under its stored id: a later page may have adopted the stored copy.
  assert.deepEqual(tracks, [['PageView', pageView], ['Lead', lead], ['Purchase', purchase], ['Contact', contact]]);
  const init = core.find(([name]) => name === 'init');
  assert.equal(init[1][0].autoPageView, false, 'init makes no PageView of its own');
  assert.equal(init[1][0].endpoint, ENDPOINT);
  assert.deepEqual(page.logged, []);
});

test('hidden, then closed before the wasm arrived: the plain-JS path sends each stored event once, under the same ids', async () => {
  const page = bootedPage(STASHED_CALLS, () => '', { wasmArrives: new Promise(() => {}) });
  await page.run(500);
  page.hide();
  const ids = stashedEvents(page.store).map((e) => e.event_id);
  const beaconed = [];
  page.win.navigator.sendBeacon = (url, body) => { beaconed.push(...JSON.parse(body).events.map((e) => e.event_id)); return true; };
  page.pagehide();
  // The first event goes by a keepalive fetch as the path starts, the rest in the beacon.
  assert.deepEqual([...page.events.map((e) => e.event_id), ...beaconed], ids);
  assert.deepEqual(stashedEvents(page.store), [], 'all handed over: nothing left for a later page to send again');
  // A later page, past the lease: nothing to adopt.
  const later = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], undefined, { store: page.store, start: page.now() + 600_000 });
  await later.run(5_000);
  assert.deepEqual(later.events, []);
});

test('hidden, then discarded before the wasm arrived: a later page sends the stored events once, landing click ids included', async () => {
  const store = new Map();
  const page = bootedPage(STASHED_CALLS, () => '', { store, wasmArrives: new Promise(() => {}) });
  page.win.location.href = 'https://shop.example/landing?gclid=CL-1';
  await page.run(500);
  page.hide();
  const ids = stashedEvents(store).map((e) => e.event_id);
  // The page is discarded: nothing of it runs again. A later page within the lease leaves the
  // queue alone (its tab may still come back); one after it adopts it.
  const soon = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], undefined, { store, start: page.now() + 60_000 });
  await soon.run(5_000);
  assert.deepEqual(soon.events, []);
  const later = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }]], undefined, { store, start: page.now() + 180_000 });
  await later.run(5_000);
  assert.deepEqual(later.events.map((e) => e.event_id), ids);
  assert.match(later.events[0].event_source_url, /gclid=CL-1/, 'the landing PageView keeps its URL');
  await later.run(60_000);
  assert.equal(later.events.length, ids.length, 'once');
});

test('hidden before the wasm arrived, with ad_storage denied: nothing is stored', async () => {
  const page = bootedPage([['consent', 'default', { ad_storage: 'denied' }], ...STASHED_CALLS], () => '', { wasmArrives: new Promise(() => {}) });
  await page.run(500);
  page.hide();
  assert.deepEqual([...page.store.keys()], []);
});

test('hidden before the wasm arrived: a call whose arguments throw does not keep the calls after it from being stored', async () => {
  const hostile = { get value() { throw new Error('getter'); } };
  const page = bootedPage([['init', { endpoint: ENDPOINT, autoPageView: false }], ['track', 'Purchase', hostile], ['track', 'Lead', {}, { eventId: 'after-1' }]], () => '', { wasmArrives: new Promise(() => {}) });
  await page.run(500);
  page.hide();
  assert.deepEqual(stashedEvents(page.store).map((e) => e.event_id), ['after-1']);
});

test('after a crash loop, the plain-JS path takes the queued calls, then those held for init, in that order', async () => {
  const page = bootedPage([], (name) => {
    if (name === 'consent') throw new Error('unreachable');
    return '';
  });
  await page.run(1_000);
  assert.equal(page.win.tandem.loaded, true);
  page.tandem('track', 'Lead', {}, { eventId: 'held-1' }); // held: no init yet
  page.tandem('consent', 'update', {}); // traps: the stub queues what follows
  for (let i = 0; i < 3; i++) page.tandem('consent', 'update', {}); // each traps a fresh instance
  page.tandem('track', 'Lead', {}, { eventId: 'queued-1' });
  await page.run(10_000);
  assert.equal(page.win.tandem.degraded, true);
  page.tandem('init', { endpoint: ENDPOINT, autoPageView: false });
  await page.run(10_000);
  assert.deepEqual(page.events.map((e) => e.event_id), ['queued-1', 'held-1']);
});
