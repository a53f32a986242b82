// Delivery guarantees end to end (issue 4): never lose an event, never double one, never break the
// page. Every scenario counts what the recording server received per event_id: `lost` (never
// arrived) and `doubled` (arrived more than once) must both be 0. The counts are printed as test
// diagnostics ("# reliability …").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  setup, needsDist, waitFor, waitForRetry, waitForLoaded, waitForEvents, settle, getCalls, waitForCalls, fbqEvents, assertPayloadsValid,
  TEST_DIST_DIR, TEST_DIST_READY, UUID_V4, loadMessageText,
} from './helpers.mjs';

let env;
let hooks;
before(async () => {
  env = await setup();
  if (TEST_DIST_READY) hooks = await setup({ distDir: TEST_DIST_DIR });
});
after(async () => {
  await env?.teardown();
  await hooks?.teardown();
});

/** Per event_id counts at the server: { sent, arrived, lost, doubled }. */
function tally(server, ids) {
  const n = (id) => server.events.filter((e) => e.event_id === id).length;
  return {
    sent: ids.length,
    arrived: ids.filter((id) => n(id) >= 1).length,
    lost: ids.filter((id) => n(id) === 0).length,
    doubled: ids.filter((id) => n(id) > 1).length,
  };
}

function check(t, name, server, ids, extra = {}) {
  const c = { ...tally(server, ids), ...extra };
  t.diagnostic(`reliability ${name}: ${JSON.stringify(c)}`);
  assert.deepEqual({ lost: c.lost, doubled: c.doubled }, { lost: 0, doubled: 0 }, `${name}: ${JSON.stringify(c)}`);
  return c;
}

const track = (page, ids, name = 'Lead') => page.evaluate(([ids, name]) => ids.map((id) => window.tandem('track', name, { value: 1, currency: 'EUR' }, { eventId: id })), [ids, name]);
const storedQueue = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tandem:q:')).map((k) => localStorage.getItem(k)).join('\n'));
const ids = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);

/** An init script: the site's own keys fill localStorage, so the tag's writes throw QuotaExceededError. */
function fillStorage() {
  try {
    const big = 'x'.repeat(1 << 19);
    for (let i = 0; i < 64; i++) localStorage.setItem('site-filler-' + i, big);
  } catch (e) { /* full */ }
  try { for (let i = 0; i < 4096; i++) localStorage.setItem('site-small-' + i, 'x'.repeat(256)); } catch (e) { /* full */ }
}

async function loaded(e, overrides, fixture = '/fixtures/basic.html', more = {}) {
  const p = await e.newPage({ overrides: { autoPageView: false, ...overrides }, ...more });
  await p.page.goto(e.url(fixture));
  await waitForLoaded(p.page);
  return p;
}

test('unload: events tracked just before a link, a form submit or a closed tab arrive once', needsDist, async (t) => {
  // A 10 s window: only the pagehide / visibilitychange flush can deliver these within the wait.
  const overrides = { batch: { windowMs: 10_000 } };
  const { page, pageErrors } = await loaded(env, overrides, '/fixtures/reliability.html');
  await track(page, ['ul-link-1', 'ul-link-2']);
  await Promise.all([page.waitForURL(/from=link/), page.click('#next')]);
  await page.goto(env.url('/fixtures/reliability.html'));
  await waitForLoaded(page);
  await track(page, ['ul-form-1'], 'Purchase');
  await Promise.all([page.waitForURL(/from=form/), page.click('#submit')]);
  await page.goto(env.url('/fixtures/reliability.html'));
  await waitForLoaded(page);
  await track(page, ['ul-close-1', 'ul-close-2']);
  await page.close({ runBeforeUnload: true });
  const all = ['ul-link-1', 'ul-link-2', 'ul-form-1', 'ul-close-1', 'ul-close-2'];
  await waitForEvents(env.server, (e) => all.includes(e.event_id), { count: all.length, timeout: 5000 });
  await settle(1500);
  const beacons = env.server.payloads.filter((p) => p.body && p.body.events.some((e) => all.includes(e.event_id)));
  check(t, 'unload', env.server, all, { requests: beacons.length });
  assert.deepEqual(pageErrors, []);
});

test('a tab closed before the wasm has arrived: the stub queue goes out once on the plain-JS path', needsDist, async (t) => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/slow-wasm.html'));
  // The loader has run (listeners registered) but the wasm is still 4 s away.
  await waitFor(() => page.evaluate(() => !!(window.tandem && window.tandem.__tandem)), { timeout: 5000, message: 'the loader' });
  assert.notEqual(await page.evaluate(() => window.tandem.loaded), true, 'not live yet');
  await page.evaluate(() => window.tandem('track', 'Purchase', { value: 9, currency: 'EUR', order_id: 'early-1' }, { eventId: 'early-1' }));
  await page.close({ runBeforeUnload: true }); // a closed tab: nothing of this page runs later
  await waitForEvents(env.server, (e) => e.event_id === 'early-1', { timeout: 8000, message: 'the Purchase tracked before the wasm arrived' });
  await settle(1500);
  check(t, 'unload before wasm', env.server, ['early-1']);
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

// What a hidden page's visibilitychange looks like to the loader (headless pages stay visible).
const hide = (page) => page.evaluate(() => {
  Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
  document.dispatchEvent(new Event('visibilitychange'));
});
// Another page of the site, opened once the hidden tab's lease on its stored queue has run out
// (2 minutes, made to now): it adopts that queue.
async function laterPageAdopts(context) {
  const next = await context.newPage();
  await next.goto(env.url('/no-tag-here'));
  await next.evaluate(() => {
    for (const k of Object.keys(localStorage)) {
      if (k.startsWith('tandem:q:')) localStorage.setItem(k, JSON.stringify({ ...JSON.parse(localStorage.getItem(k)), until: 0 }));
    }
  });
  await next.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(next);
}
const stashedIds = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tandem:q:'))
  .flatMap((k) => JSON.parse(localStorage.getItem(k)).items.map((p) => [p[1].event_name, p[1].event_id])));

test('a tab hidden, then discarded, before the wasm has arrived: a later page sends what it queued, once', needsDist, async (t) => {
  const { context, page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/slow-wasm.html?gclid=HIDDEN-1'));
  await waitFor(() => page.evaluate(() => !!(window.tandem && window.tandem.__tandem)), { timeout: 5000, message: 'the loader' });
  await page.evaluate(() => window.tandem('track', 'Lead', { value: 3, currency: 'EUR' }));
  await hide(page);
  const stashed = await stashedIds(page);
  assert.deepEqual(stashed.map(([name]) => name), ['PageView', 'Lead'], JSON.stringify(stashed));
  // A mobile browser discards a hidden tab without a pagehide: the renderer just goes.
  const cdp = await context.newCDPSession(page);
  // Page.crash gets no answer: the renderer is gone.
  await Promise.race([cdp.send('Page.crash').catch(() => {}), settle(1000)]);
  const ids = stashed.map(([, id]) => id);
  assert.equal(env.server.events.filter((e) => ids.includes(e.event_id)).length, 0, 'nothing was sent by the hidden page');
  await laterPageAdopts(context);
  await waitForEvents(env.server, (e) => ids.includes(e.event_id), { count: ids.length, timeout: 8000, message: 'the hidden page\'s PageView and Lead' });
  await settle(1500);
  check(t, 'hidden then discarded before wasm', env.server, ids);
  const landing = env.server.events.find((e) => e.event_id === ids[0]);
  assert.match(landing.event_source_url, /gclid=HIDDEN-1/, 'the landing PageView keeps its URL');
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('a tab hidden before the wasm has arrived, then back: the wasm sends its events once, under the ids stored meanwhile', needsDist, async (t) => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/slow-wasm.html?back=1'));
  await waitFor(() => page.evaluate(() => !!(window.tandem && window.tandem.__tandem)), { timeout: 5000, message: 'the loader' });
  await page.evaluate(() => window.tandem('track', 'Lead', { value: 4, currency: 'EUR' }));
  await hide(page);
  const stashed = await stashedIds(page);
  const lead = stashed.find(([name]) => name === 'Lead')[1];
  await waitForLoaded(page);
  await waitForEvents(env.server, (e) => e.event_id === lead, { timeout: 8000, message: 'the Lead' });
  await settle(1500);
  check(t, 'hidden before wasm, then back', env.server, [lead]);
  const fbqLead = fbqEvents(await getCalls(page, 'fbq'), 'Lead');
  assert.deepEqual(fbqLead.map((c) => c.eventID), [lead], 'the pixel gets the same id');
  const pageViews = env.server.events.filter((e) => e.event_name === 'PageView' && e.event_source_url.includes('back=1'));
  assert.equal(pageViews.length, 1, 'one PageView');
  assert.deepEqual((await stashedIds(page)).filter(([, id]) => id === lead), [], 'the stored copy is withdrawn');
  assert.deepEqual(pageErrors, []);
});

test('a tab hidden before the wasm has arrived, its stored copy adopted by a later page, then back: its PageView keeps its one event_id', needsDist, async () => {
  const { context, page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/slow-wasm.html?adopted=1'));
  await waitFor(() => page.evaluate(() => !!(window.tandem && window.tandem.__tandem)), { timeout: 5000, message: 'the loader' });
  await page.evaluate(() => window.tandem('track', 'Lead', { value: 4, currency: 'EUR' }));
  await hide(page);
  const stashed = await stashedIds(page);
  assert.deepEqual(stashed.map(([name]) => name), ['PageView', 'Lead'], JSON.stringify(stashed));
  const ids = stashed.map(([, id]) => id);
  await laterPageAdopts(context);
  await waitForEvents(env.server, (e) => ids.includes(e.event_id), { count: ids.length, timeout: 8000, message: 'the stored PageView and Lead, from the later page' });
  // The hidden tab's wasm arrives after all: what it sends carries the same ids.
  await waitForLoaded(page);
  await waitForCalls(page, (c) => c.platform === 'fbq' && JSON.stringify(c.args).includes(ids[1]));
  await settle(1500);
  const pageViews = env.server.events.filter((e) => e.event_name === 'PageView' && e.event_source_url.includes('adopted=1'));
  assert.deepEqual([...new Set(pageViews.map((e) => e.event_id))], [ids[0]], 'one PageView id, the stored one');
  assert.deepEqual(fbqEvents(await getCalls(page, 'fbq'), 'PageView').map((e) => e.eventID), [ids[0]], 'the pixel gets the PageView once, under that id');
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('offline, then online: nothing is lost, nothing doubled, retried at once on the online event', needsDist, async (t) => {
  const { context, page, pageErrors } = await loaded(env, { batch: { windowMs: 200 } });
  await context.setOffline(true);
  const list = ids('off', 5);
  await track(page, list);
  await settle(1500);
  assert.equal(tally(env.server, list).arrived, 0, 'nothing can arrive while offline');
  const stored = await storedQueue(page);
  for (const id of list) assert.ok(stored.includes(`"${id}"`), `${id} is persisted while undelivered`);
  const back = Date.now();
  await context.setOffline(false);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 4000 });
  const latency = Date.now() - back;
  await settle(1500);
  check(t, 'offline-then-online', env.server, list, { msAfterOnline: latency });
  assert.equal(await storedQueue(page), '', 'delivered: the persisted queue is gone');
  assert.deepEqual(pageErrors, []);
});

test('5xx, then recovery: retried with backoff under the same event_ids', needsDist, async (t) => {
  const { page, pageErrors } = await loaded(env, { batch: { windowMs: 200 } });
  const before = env.server.payloads.length;
  env.server.setFault(503, 2);
  const list = ids('5xx', 4);
  await track(page, list);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 8000 });
  await settle(1500);
  const attempts = env.server.payloads.slice(before).filter((p) => p.status === 503).length;
  check(t, '5xx-then-recovery', env.server, list, { answered503: attempts });
  assert.equal(attempts, 2);
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('a 4xx is reported and not retried', needsDist, async (t) => {
  const { page } = await loaded(env, { batch: { windowMs: 100 } });
  const before = env.server.payloads.length;
  env.server.setFault(400, 1);
  await track(page, ['4xx-1']);
  await waitFor(() => page.evaluate(() => window.__errors.some((e) => e.code === 'delivery_refused')), { timeout: 4000, message: 'delivery_refused through onError' });
  await settle(2500);
  const tries = env.server.payloads.slice(before).filter((p) => p.text && p.text.includes('4xx-1')).length;
  t.diagnostic(`reliability 4xx: ${JSON.stringify({ requests: tries })}`);
  assert.equal(tries, 1, 'one request, no retry');
  assert.equal(await storedQueue(page), '');
});

/**
 * Purchases tracked into a failing endpoint stay queued; after a reload (the endpoint healthy
 * again) the next page adopts the queue and sends each once, then removes it. Returns the page.
 */
async function reloadWithPendingQueue(t, name, prefix, count, more = {}) {
  const { page, pageErrors } = await loaded(env, { batch: { windowMs: 200 } }, '/fixtures/basic.html', more);
  env.server.setFault(503, 1000);
  const list = ids(prefix, count);
  await track(page, list, 'Purchase');
  await waitForRetry(env.server, list[0]);
  assert.ok((await storedQueue(page)).includes(list[count - 1]));
  await page.reload();
  env.server.setFault(0, 0);
  await waitForLoaded(page);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 8000 });
  await settle(1500);
  check(t, name, env.server, list);
  await waitFor(async () => (await storedQueue(page)) === '', { message: 'the adopted queue is removed once delivered' });
  assert.deepEqual(pageErrors, []);
  return page;
}

test('reload with a pending queue: the next page sends it, once', needsDist, async (t) => {
  await reloadWithPendingQueue(t, 'reload-with-pending-queue', 'reload', 3);
});

/** An init script: this tab sees `key` as `value` until it writes or removes the key itself, or
 * until 400 ms after another tab's first write of it reached this one; counts the reads that
 * answered the old value while storage held another (`window.__staleReads`). */
function laggingStorageView([key, value]) {
  const S = Storage.prototype;
  const real = { get: S.getItem, set: S.setItem, remove: S.removeItem, key: S.key, length: Object.getOwnPropertyDescriptor(S, 'length').get };
  let staleUntil = Infinity;
  window.__staleReads = 0;
  addEventListener('storage', (e) => { if (e.key === key && staleUntil === Infinity) staleUntil = performance.now() + 400; });
  const stale = (s) => s === localStorage && performance.now() < staleUntil;
  const keys = (s) => {
    const out = [];
    for (let i = 0, n = real.length.call(s); i < n; i++) out.push(real.key.call(s, i));
    if (stale(s) && !out.includes(key)) out.push(key);
    return out;
  };
  Object.defineProperty(S, 'length', { configurable: true, get() { return keys(this).length; } });
  S.key = function (i) { return keys(this)[i] ?? null; };
  S.getItem = function (k) {
    if (k !== key || !stale(this)) return real.get.call(this, k);
    if (real.get.call(this, k) !== value) window.__staleReads++;
    return value;
  };
  S.setItem = function (k, v) { if (k === key) staleUntil = 0; return real.set.call(this, k, v); };
  S.removeItem = function (k) { if (k === key) staleUntil = 0; return real.remove.call(this, k); };
}

test('two tabs starting together on the queue an earlier page left: it goes out once, wasm or JS path', needsDist, async (t) => {
  for (const second of ['wasm', 'JS path']) {
    // An earlier page whose endpoint was failing: at pagehide its queue stays stored, released.
    const { context, page } = await loaded(env, { batch: { windowMs: 200 } });
    env.server.setFault(503, 1000);
    const list = ids(`together-${second === 'wasm' ? 'wasm' : 'js'}`, 3);
    await track(page, list);
    await waitForRetry(env.server, list[0]);
    await page.goto(env.url('/no-tag-here'));
    env.server.setFault(0, 0);
    const left = await page.evaluate(() => Object.entries(localStorage).filter(([k]) => k.startsWith('tandem:q:')));
    assert.equal(left.length, 1, JSON.stringify(left));
    // Two tabs that start together both read the queue as the earlier page left it: a tab's
    // localStorage view of another tab's write can lag (another renderer process, a busy main
    // thread). Here each tab's view of that key stays the earlier page's until it writes the key
    // itself, or for 400 ms after the other tab's first write reached it (its `storage` event):
    // less than the 500 ms a claim must stand, as the claim protocol assumes.
    const errors = [];
    const open = async (noWasm) => {
      const tab = await context.newPage();
      tab.on('pageerror', (e) => errors.push(String(e)));
      await tab.addInitScript(laggingStorageView, left[0]);
      if (noWasm) await tab.addInitScript(() => { delete window.WebAssembly; });
      return tab;
    };
    const tabs = [await open(false), await open(second !== 'wasm')];
    // The second tab's page is there, its tag held back until the first tab has written the key
    // (a claim, or the removal of an immediate adoption): then it starts, within the lag.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await tabs[1].route(/\/tandem(\.js|_bg\.wasm)$/, async (route) => { await held; await route.continue(); });
    const secondLoaded = tabs[1].goto(env.url('/fixtures/basic.html'));
    await tabs[0].goto(env.url('/fixtures/basic.html'));
    await tabs[0].waitForFunction(([k, v]) => localStorage.getItem(k) !== v, left[0], { polling: 5, timeout: 8000 });
    release();
    await secondLoaded;
    await Promise.all(tabs.map((tab) => waitForLoaded(tab)));
    assert.equal(await tabs[1].evaluate(() => window.tandem.degraded === true), second !== 'wasm');
    await settle(600);
    assert.ok(await tabs[1].evaluate(() => window.__staleReads) > 0, 'the second tab read the earlier queue after the first had written it: the race this is about');
    await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 8000 });
    await settle(2000);
    check(t, `two tabs together (wasm and ${second})`, env.server, list);
    assert.equal(await storedQueue(tabs[0]), '', 'the earlier queue is gone once delivered');
    assert.deepEqual(errors, []);
    await context.close();
  }
});

test('queue bound: the oldest are dropped, counted and reported; the rest arrive once', needsDist, async (t) => {
  const { page, pageErrors } = await loaded(env, { batch: { windowMs: 200 }, queue: { maxEvents: 5 } });
  env.server.setFault(503, 1000);
  const list = ids('bound', 8);
  await track(page, list);
  await waitFor(() => env.server.payloads.some((p) => p.status === 503 && p.text.includes('bound-8')), { message: 'a first 503' });
  env.server.setFault(0, 0);
  const kept = list.slice(3);
  await waitForEvents(env.server, (e) => kept.includes(e.event_id), { count: kept.length, timeout: 8000 });
  await settle(1500);
  const reports = await page.evaluate(() => window.__errors.filter((e) => e.code === 'queue_full'));
  const dropped = reports.reduce((n, e) => n + Number(e.input), 0);
  const c = check(t, 'storage-bound', env.server, kept, { tracked: list.length, droppedReported: dropped });
  assert.equal(dropped, 3, 'each drop is reported through onError');
  assert.equal(tally(env.server, list.slice(0, 3)).arrived, 0, 'the dropped ones are the oldest');
  assert.equal(c.arrived + dropped, list.length, 'every event is either delivered or reported dropped');
  assert.deepEqual(pageErrors, []);
});

test('localStorage full (QuotaExceededError): events still arrive once, nothing throws', needsDist, async (t) => {
  const { page, pageErrors } = await loaded(env, { batch: { windowMs: 200 } }, '/fixtures/basic.html', { initScripts: [fillStorage] });
  const full = await page.evaluate(() => { try { localStorage.setItem('probe', 'x'.repeat(4096)); localStorage.removeItem('probe'); return false; } catch (e) { return e.name; } });
  assert.ok(full, 'storage is full');
  env.server.setFault(503, 1);
  const list = ids('quota', 4);
  const returned = await track(page, list);
  assert.deepEqual(returned, list);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 6000 });
  await settle(1500);
  check(t, 'storage-full', env.server, list, { storageError: full });
  assert.deepEqual(pageErrors, []);
});

test('SPA: a router reporting page views from its own Navigation API listener gets each new URL', needsDist, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/navigation-router.html'));
  await waitForLoaded(page);
  await waitForEvents(env.server, (e) => e.event_name === 'PageView' && e.event_source_url.endsWith('/navigation-router.html'));
  for (const path of ['/spa/one', '/spa/two', '/spa/two#reviews']) {
    await page.evaluate((p) => history.pushState({}, '', p), path);
    await waitForEvents(env.server, (e) => e.event_name === 'PageView' && e.event_source_url.endsWith(path), { message: `a PageView for ${path}` });
  }
  const views = env.server.events.filter((e) => e.event_name === 'PageView').map((e) => new URL(e.event_source_url).pathname + new URL(e.event_source_url).hash);
  assert.deepEqual(views.slice(-3), ['/spa/one', '/spa/two', '/spa/two#reviews']);
  assert.deepEqual(pageErrors, []);
});

test('a page with Prototype.js\'s Array.prototype.toJSON: the queue an earlier page left is still adopted and sent', needsDist, async (t) => {
  // Prototype.js 1.6: every array serialises itself to a string of JSON.
  const prototypeJs = () => {
    Array.prototype.toJSON = function () { return '[' + Array.prototype.map.call(this, (x) => JSON.stringify(x)).join(', ') + ']'; };
  };
  const page = await reloadWithPendingQueue(t, 'prototype-js-adoption', 'proto', 2, { initScripts: [prototypeJs] });
  assert.equal(await page.evaluate(() => typeof Array.prototype.toJSON), 'function', "the page's own toJSON is left in place");
});

test('SPA: one PageView for a doubled fire on one URL; back and forth are new views', needsDist, async (t) => {
  const { page } = await loaded(env, { batch: { windowMs: 100 } });
  const r = await page.evaluate(() => {
    history.pushState(null, '', '/fixtures/basic.html?view=a');
    const a1 = window.tandem('page');
    const a2 = window.tandem('page'); // router + history hook
    history.pushState(null, '', '/fixtures/basic.html?view=b');
    const b = window.tandem('page');
    history.pushState(null, '', '/fixtures/basic.html?view=a');
    const a3 = window.tandem('page');
    return { a1, a2, b, a3 };
  });
  assert.match(String(r.a1), UUID_V4);
  assert.equal(r.a2, r.a1, 'the double fire answers with the same event_id');
  assert.notEqual(r.a3, r.a1, 'coming back is a new view');
  const views = [r.a1, r.b, r.a3];
  await waitForEvents(env.server, (e) => views.includes(e.event_id), { count: 3 });
  await settle(800);
  check(t, 'spa-pageview', env.server, views);
  const pv = fbqEvents(await getCalls(page), 'PageView').filter((e) => views.includes(e.eventID));
  assert.equal(pv.length, 3, 'Meta got three views, not four');
});

test('each event keeps the URL it was tracked at, right after pushState, replaceState or a fragment change', needsDist, async () => {
  const { page } = await loaded(env, { batch: { windowMs: 100 } });
  const tracked = await page.evaluate(() => {
    const out = [];
    const at = () => out.push([window.tandem('track', 'Lead'), location.href]);
    at();
    history.pushState(null, '', '/fixtures/basic.html?step=1');
    at();
    history.replaceState(null, '', '/fixtures/basic.html?step=2');
    at();
    location.hash = 'done';
    at();
    at(); // unchanged: the location read last time
    return out;
  });
  assert.equal(new Set(tracked.map(([, url]) => url)).size, 4);
  const ids = tracked.map(([id]) => id);
  const events = await waitForEvents(env.server, (e) => ids.includes(e.event_id), { count: ids.length });
  for (const [id, url] of tracked) {
    assert.equal(events.find((e) => e.event_id === id).event_source_url, url, id);
  }
});

test('hostile input: Symbols, BigInt, throwing getters and proxies, megabyte strings never throw', needsDist, async (t) => {
  const { page, pageErrors } = await loaded(env, { batch: { windowMs: 100 } });
  await loadMessageText(page);
  const res = await page.evaluate(() => {
    const cases = {
      'Symbol name': () => window.tandem('track', Symbol('Purchase')),
      'BigInt name': () => window.tandem('track', 10n),
      'object name': () => window.tandem('track', { toString() { throw new Error('no'); } }),
      'params proxy whose ownKeys throws': () => window.tandem('track', 'Lead', new Proxy({}, { ownKeys() { throw new Error('trap'); } })),
      'options getter throws': () => window.tandem('track', 'Lead', {}, Object.defineProperty({}, 'eventId', { enumerable: true, get() { throw new Error('boom'); } })),
      'megabyte eventId': () => window.tandem('track', 'Lead', {}, { eventId: 'x'.repeat(1 << 20) }),
      'megabyte name': () => window.tandem('track', 'y'.repeat(1 << 20)),
      'Symbol command': () => window.tandem(Symbol('x')),
      'polluted prototype': () => {
        const push = Array.prototype.push;
        Object.prototype.eventId = 'evil';
        Array.prototype.push = function () { throw new Error('polluted push'); };
        try { return window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }); } finally { delete Object.prototype.eventId; Array.prototype.push = push; }
      },
    };
    const out = {};
    for (const [name, fn] of Object.entries(cases)) {
      const before = window.__errors.length;
      try {
        const ret = fn();
        out[name] = { ret: typeof ret === 'string' ? ret.slice(0, 80) : ret, errors: window.__errors.slice(before).map((e) => e.code) };
      } catch (e) {
        out[name] = { threw: String(e) };
      }
    }
    return out;
  });
  const threw = Object.entries(res).filter(([, r]) => r.threw);
  assert.deepEqual(threw, [], 'nothing throws into the page');
  for (const name of ['Symbol name', 'BigInt name', 'object name', 'options getter throws', 'megabyte eventId', 'megabyte name']) {
    assert.equal(res[name].ret, null, `${name} is rejected`);
    assert.ok(res[name].errors.length >= 1, `${name} is reported through onError`);
  }
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 2, currency: 'EUR' }, { eventId: 'after-hostile' }));
  assert.equal(id, 'after-hostile', 'the next call works');
  await waitForEvents(env.server, (e) => e.event_id === 'after-hostile');
  t.diagnostic(`reliability hostile-input: ${JSON.stringify(Object.fromEntries(Object.entries(res).map(([k, r]) => [k, r.errors])))}`);
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- degraded mode (no wasm)

async function degradedPage(t, name, how, list) {
  const { page, pageErrors, consoleErrors } = await env.newPage({ overrides: { autoPageView: false }, initScripts: how.initScripts || [] });
  const warnings = [];
  page.on('console', (m) => { if (m.type() === 'warning' && m.text().includes('WebAssembly could not start')) warnings.push(m.text()); });
  if (how.route) await page.route('**/*.wasm', how.route);
  await page.goto(env.url(how.fixture || '/fixtures/basic.html'));
  await waitForLoaded(page);
  assert.equal(await page.evaluate(() => window.tandem.degraded), true, `${name}: on the JS path`);
  if (list.length) {
    const returned = await track(page, list);
    assert.deepEqual(returned, list);
  }
  return { page, pageErrors, consoleErrors, warnings };
}

test('degraded mode: without WebAssembly every queued event reaches the endpoint once', needsDist, async (t) => {
  const modes = {
    'wasm blocked': { route: (route) => route.abort('blockedbyclient') },
    'wasm 404': { route: (route) => route.fulfill({ status: 404, body: 'not found' }) },
    'no WebAssembly': { initScripts: [() => { delete window.WebAssembly; }] },
  };
  for (const [name, how] of Object.entries(modes)) {
    const list = ids(`deg-${name.replace(/\W+/g, '')}`, 3);
    env.server.setFault(503, 1); // the JS path retries too
    const { page, pageErrors, warnings } = await degradedPage(t, name, how, list);
    await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 6000 });
    await settle(1200);
    check(t, `degraded (${name})`, env.server, list, { loaderWarnings: warnings.length });
    assert.equal(warnings.length, 1, `${name}: the loader says so once`);
    assert.deepEqual(pageErrors, []);
    await page.close();
  }
  // A CSP without 'wasm-unsafe-eval': the page's own queued Purchase goes on the JS path.
  const { page, pageErrors, warnings } = await degradedPage(t, 'CSP', { fixture: '/fixtures/csp.html' }, []);
  await waitForEvents(env.server, (e) => e.event_id === 'csp-1', { timeout: 6000 });
  await settle(800);
  check(t, 'degraded (CSP without wasm-unsafe-eval)', env.server, ['csp-1'], { loaderWarnings: warnings.length });
  assert.equal(warnings.length, 1);
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('degraded mode: a pending queue survives a reload', needsDist, async (t) => {
  const how = { route: (route) => route.abort('blockedbyclient') };
  env.server.setFault(503, 1000);
  const list = ids('degreload', 2);
  const { page, pageErrors } = await degradedPage(t, 'reload', how, list);
  await waitForRetry(env.server, 'degreload-1');
  await page.reload();
  env.server.setFault(0, 0);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 8000 });
  await settle(1500);
  check(t, 'degraded reload-with-pending-queue', env.server, list);
  assert.deepEqual(pageErrors, []);
});

const JS_PATH_FILE = /\/tandem-jspath-[0-9a-f]{12}\.js$/;

test('degraded mode: the plain-JS path\'s delivery code is fetched once, and only where WebAssembly cannot run', needsDist, async () => {
  const live = await env.newPage({ overrides: { autoPageView: false } });
  await live.page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(live.page);
  await track(live.page, ['jsfile-live']);
  await waitForEvents(env.server, (e) => e.event_id === 'jsfile-live');
  assert.deepEqual(live.requests.filter((u) => JS_PATH_FILE.test(u)), [], 'a page whose wasm runs never loads it');
  await live.page.close();

  const { page, pageErrors, requests } = await env.newPage({ overrides: { autoPageView: false } });
  await page.route('**/*.wasm', (route) => route.abort('blockedbyclient'));
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  assert.equal(await page.evaluate(() => window.tandem.degraded), true);
  const list = ids('jsfile-degraded', 2);
  await track(page, list);
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: 2, timeout: 6000 });
  assert.equal(requests.filter((u) => JS_PATH_FILE.test(u)).length, 1, 'fetched once');
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('degraded mode without its delivery code: the loader\'s own copy of the path stores the events and beacons them when the page is hidden, once', needsDist, async (t) => {
  const { page, pageErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await page.route('**/*.wasm', (route) => route.abort('blockedbyclient'));
  await page.route(JS_PATH_FILE, (route) => route.fulfill({ status: 404, body: 'not found' }));
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  assert.equal(await page.evaluate(() => window.tandem.degraded), true);
  const list = ids('nojsfile', 2);
  await track(page, list);
  await settle(500);
  assert.deepEqual(env.server.events.filter((e) => list.includes(e.event_id)), [], 'nothing sent while the page is shown');
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tandem:q:')).length), 1, 'stored for a later page meanwhile');
  await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true })));
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: 2, timeout: 6000 });
  await settle(500);
  check(t, 'degraded without the delivery code', env.server, list);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('degraded mode: a page closing while the delivery code is on its way hands its calls to the loader\'s own copy, which beacons them once', needsDist, async (t) => {
  const { page, pageErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await page.route('**/*.wasm', (route) => route.abort('blockedbyclient'));
  await page.route(JS_PATH_FILE, () => { /* never answered */ });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitFor(() => page.evaluate(() => !!(window.tandem && window.tandem.__tandem)), { message: 'the loader' });
  const list = ids('gap', 2);
  const returned = await page.evaluate((list) => list.map((id) => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: id })), list);
  assert.deepEqual(returned, [undefined, undefined], 'queued while the delivery code is on its way');
  await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false })));
  assert.equal(await page.evaluate(() => window.tandem.degraded), true, 'the loader\'s copy took over at pagehide');
  await waitForEvents(env.server, (e) => list.includes(e.event_id), { count: 2, timeout: 6000 });
  await settle(500);
  check(t, 'degraded, closing before the delivery code arrived', env.server, list);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

// ---------------------------------------------------------------- crash recovery (test-hooks build)

test('a wasm panic is reported and recovered from; queued and persisted events survive, once', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  const { page, pageErrors } = await loaded(hooks, { batch: { windowMs: 200 } });
  hooks.server.setFault(503, 1000);
  await track(page, ['pk-1']);
  await waitFor(() => hooks.server.payloads.some((p) => p.status === 503), { message: 'a first 503' });
  const r = await page.evaluate(() => {
    const out = {};
    try {
      out.panic = window.tandem('__test_panic');
      out.during = window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'pk-2' });
    } catch (e) {
      out.threw = String(e);
    }
    return out;
  });
  assert.equal(r.threw, undefined, r.threw);
  await waitForLoaded(page);
  const third = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'pk-3' }));
  assert.equal(third, 'pk-3', 'a call after the panic works');
  hooks.server.setFault(0, 0);
  const list = ['pk-1', 'pk-2', 'pk-3'];
  await waitForEvents(hooks.server, (e) => list.includes(e.event_id), { count: 3, timeout: 8000 });
  // The same event_id after the restart is still recognised.
  const again = await page.evaluate(() => window.tandem('track', 'Lead', {}, { eventId: 'pk-1' }));
  assert.equal(again, 'pk-1');
  await settle(1500);
  const reported = await page.evaluate(() => window.__errors.filter((e) => e.code === 'internal_error').length);
  check(t, 'panic-recovery', hooks.server, list, { panicsReported: reported });
  assert.equal(reported, 1, 'the panic is reported once');
  assert.deepEqual(pageErrors, []);
});

/** The tag's delivery queues in the page's localStorage. */
function queueKeys(page) {
  return page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tandem:q:')));
}

/** The endpoint (test-hooks server) answers again and the browser is online: `list` arrives once. */
async function recoveredDeliversOnce(t, name, page, list) {
  hooks.server.setFault(0, 0);
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await waitForEvents(hooks.server, (e) => list.includes(e.event_id), { count: list.length, timeout: 8000 });
  await settle(1500);
  check(t, name, hooks.server, list);
}

test('a wasm panic with localStorage full: the events the crashed instance held in memory only are delivered once', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  const { page, pageErrors } = await loaded(hooks, { batch: { windowMs: 200 } }, '/fixtures/basic.html', { initScripts: [fillStorage] });
  hooks.server.setFault(503, 1000);
  const list = ['full-crash-1', 'full-crash-2'];
  await track(page, list);
  await waitForRetry(hooks.server, list[0]);
  assert.deepEqual(await queueKeys(page), [], 'nothing stored: storage is full');
  await page.evaluate(() => { try { window.tandem('__test_panic'); } catch (e) { /* never throws */ } });
  await waitForLoaded(page);
  await recoveredDeliversOnce(t, 'panic-storage-full', page, list);
  assert.deepEqual(pageErrors, []);
});

test('the wasm memory is capped: running out of it traps, is reported, and the tag carries on', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async () => {
  // Every wasm memory the page makes, to read their sizes afterwards.
  const watchMemories = () => {
    window.__memories = [];
    const instantiate = WebAssembly.instantiate;
    WebAssembly.instantiate = function () {
      return instantiate.apply(this, arguments).then((result) => {
        const exports = (result.instance || result).exports;
        for (const name in exports) if (exports[name] instanceof WebAssembly.Memory) window.__memories.push(exports[name]);
        return result;
      });
    };
  };
  const { page, pageErrors } = await loaded(hooks, {}, '/fixtures/basic.html', { initScripts: [watchMemories] });
  const r = await page.evaluate(() => {
    try {
      return { reply: window.tandem('__test_exhaust_memory') };
    } catch (e) {
      return { threw: String(e) };
    }
  });
  assert.equal(r.threw, undefined, r.threw);
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'mem-1' }));
  assert.equal(id, 'mem-1', 'a call after the failed allocation works');
  const sizes = await page.evaluate(() => window.__memories.map((m) => m.buffer.byteLength));
  assert.ok(sizes.length === 2 && sizes.every((bytes) => bytes <= 16 * 1024 * 1024), `the exhausted instance stopped at the maximum, 16 MiB: ${sizes}`);
  await waitForEvents(hooks.server, (e) => e.event_id === 'mem-1', { count: 1, timeout: 8000 });
  // The page's first report waits for the message text (README, "Message text"): under load that
  // fetch can end after the event arrived.
  await waitFor(() => page.evaluate(() => window.__errors.some((e) => e.code === 'internal_error')), { timeout: 5000, message: 'the internal_error report' });
  const reported = await page.evaluate(() => window.__errors.filter((e) => e.code === 'internal_error').length);
  assert.equal(reported, 1, 'reported once');
  assert.deepEqual(pageErrors, []);
});

test('a wasm panic in the same task as a track: the event still goes out once, everywhere', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  // track() builds its platform calls and endpoint event at the end of its task; a crash before
  // then must not lose it (the loader gives it to the fresh instance under the same event_id).
  const { page, pageErrors } = await loaded(hooks, {});
  const r = await page.evaluate(() => {
    const own = window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'sp-1' });
    const generated = window.tandem('track', 'Purchase', { value: 5, currency: 'EUR' });
    const named = window.tandem('track', 'Purchase', { value: 6, currency: 'EUR', order_id: 'sp-order' });
    window.tandem('__test_panic');
    return { own, generated, named };
  });
  assert.equal(r.own, 'sp-1');
  assert.match(r.generated, UUID_V4);
  assert.equal(r.named, 'o-sp-order');
  await waitForLoaded(page);
  const list = ['sp-1', r.generated, r.named];
  await waitForEvents(hooks.server, (e) => list.includes(e.event_id), { count: 3, timeout: 8000 });
  await settle(1000);
  check(t, 'panic-same-task', hooks.server, list);
  for (const id of [r.generated, r.named]) {
    const meta = fbqEvents(await getCalls(page), 'Purchase').filter((e) => e.eventID === id);
    assert.equal(meta.length, 1, `the pixel got the Purchase ${id} once, under its event_id`);
  }
  assert.deepEqual(pageErrors, []);
});

test('a trap while the snippet queue is replayed: no endless loop, the rest of the queue goes to the fresh instance; an unreadable init config is reported and the next init works', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  const { page, pageErrors } = await hooks.newPage({ overrides: { autoPageView: false } });
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  await page.goto(hooks.url('/fixtures/queued-hostile.html'));
  await waitForLoaded(page);
  const list = ['qh-1', 'qh-2'];
  await waitForEvents(hooks.server, (e) => list.includes(e.event_id), { count: 2, timeout: 8000 });
  await settle(1000);
  check(t, 'queued-panic', hooks.server, list);
  const codes = await page.evaluate(() => window.__errors.map((e) => e.code));
  assert.deepEqual(codes.filter((c) => c === 'internal_error').length, 1, `the trap is reported once: ${codes}`);
  // Reported before any onError was known: on the console.
  assert.ok(consoleErrors.some((m) => m.includes('could not be read')), `the unreadable config is reported: ${consoleErrors}`);
  assert.equal(await page.evaluate(() => window.tandem.degraded), undefined, 'still on WebAssembly');
  assert.deepEqual(pageErrors, []);
});

test('a crash loop: after the fourth trap the plain-JS path takes over, and conversions still reach the endpoint', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  const { page, pageErrors } = await loaded(hooks, {});
  for (let i = 1; i <= 4; i++) {
    await page.evaluate(() => window.tandem('__test_panic'));
    await waitFor(() => page.evaluate(() => window.tandem.loaded === true), { message: `loaded again after trap ${i}` });
  }
  // The plain-JS path's delivery code is a file of its own, fetched at the fourth trap.
  await waitFor(() => page.evaluate(() => window.tandem.degraded === true), { message: 'the plain-JS path' });
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'loop-1' }));
  assert.equal(id, 'loop-1');
  await waitForEvents(hooks.server, (e) => e.event_id === 'loop-1', { count: 1, timeout: 8000 });
  await settle(500);
  check(t, 'crash-loop', hooks.server, ['loop-1']);
  assert.deepEqual(pageErrors, []);
});

test('a crash loop with ad_storage denied: the plain-JS path delivers what the last instance held in memory only, once', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async (t) => {
  const denied = () => { window.tandem = window.tandem || function () { (window.tandem.q = window.tandem.q || []).push(arguments); }; window.tandem('consent', 'default', { ad_storage: 'denied' }); };
  const { page, pageErrors } = await loaded(hooks, { batch: { windowMs: 200 } }, '/fixtures/basic.html', { initScripts: [denied] });
  hooks.server.setFault(503, 1000);
  const list = ['loop-mem-1', 'loop-mem-2'];
  await track(page, list);
  await waitForRetry(hooks.server, list[0]);
  for (let i = 1; i <= 4; i++) {
    await page.evaluate(() => window.tandem('__test_panic'));
    await waitFor(() => page.evaluate(() => window.tandem.loaded === true), { message: `loaded again after trap ${i}` });
  }
  // The plain-JS path's delivery code is a file of its own, fetched at the fourth trap.
  await waitFor(() => page.evaluate(() => window.tandem.degraded === true), { message: 'the plain-JS path' });
  assert.deepEqual(await queueKeys(page), [], 'nothing stored: ad_storage is denied');
  await recoveredDeliversOnce(t, 'crash-loop-memory', page, list);
  assert.deepEqual(pageErrors, []);
});

test('after a crash the fresh instance starts under the latest consent, even after more than 100 consent calls', { skip: TEST_DIST_READY ? false : 'test-hooks build (dist-test/) missing', timeout: 30_000 }, async () => {
  const { page, pageErrors } = await loaded(hooks, {});
  await page.evaluate(() => {
    const all = (v) => ({ ad_storage: v, analytics_storage: v, ad_user_data: v, ad_personalization: v });
    window.tandem('consent', 'default', { ad_storage: 'denied', wait_for_update: 300 });
    for (let i = 0; i < 120; i++) window.tandem('consent', 'update', all('granted'));
    window.tandem('consent', 'update', all('denied'));
    window.tandem('consent', 'update', { analytics_storage: 'granted' });
    window.tandem('__test_panic');
  });
  await waitForLoaded(page);
  await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'cs-1' }));
  const [event] = await waitForEvents(hooks.server, (e) => e.event_id === 'cs-1', { count: 1, timeout: 8000 });
  assert.deepEqual(
    [event.consent.ad_storage, event.consent.analytics_storage, event.consent.ad_user_data, event.consent.ad_personalization],
    ['denied', 'granted', 'denied', 'denied'],
    JSON.stringify(event.consent),
  );
  assert.deepEqual(pageErrors, []);
});
