// The snippet's queue, double inclusion, the ES module build, cross-origin loading and wasm fallbacks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  setup, needsDist, MODULE_READY, DIST_READY, waitFor, waitForLoaded, waitForEvents, waitForCalls, getCalls, settle,
  fbqEvents, gtagEvents, ttqEvents, eventSchemaErrors, assertPayloadsValid, UUID_V4,
} from './helpers.mjs';

let env;
before(async () => { env = await setup({ cdn: true }); });
after(async () => { await env?.teardown(); });

const hasId = (id) => (c) => JSON.stringify(c.args).includes(JSON.stringify(id));

test('calls queued before the loader arrives are replayed in order', needsDist, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/queued.html'));
  const before = await page.evaluate(() => ({ loaded: window.__loadedBefore, q: window.__queuedBeforeLoad, returns: window.__returns }));
  assert.equal(before.loaded, false, 'the loader had not run when the calls were made (server delays it)');
  assert.ok(before.q >= 5, `5 calls sat in tandem.q: ${before.q}`);
  await waitForLoaded(page);
  assert.equal(await page.evaluate(() => window.tandem.loaded), true);
  assert.equal(await page.evaluate(() => typeof window.tandem), 'function', 'the stub is replaced by a function');

  const ids = ['q-1', 'q-2', 'q-3', 'q-4'];
  await waitForCalls(page, hasId('q-4'), { count: 3, message: 'q-4 on three platforms' });
  const calls = await getCalls(page);
  const fb = fbqEvents(calls);
  const fbIds = fb.map((e) => e.eventID);
  assert.deepEqual(fbIds.filter((i) => ids.includes(i)), ids, `fbq order: ${JSON.stringify(fb.map((e) => [e.fn, e.name, e.eventID]))}`);
  assert.equal(fb[0]?.name, 'PageView', 'the automatic PageView from init comes first');
  assert.equal(fb.find((e) => e.eventID === 'q-3')?.fn, 'trackCustom');
  const ttIds = ttqEvents(calls).map((e) => e.opts?.event_id).filter((i) => ids.includes(i));
  assert.deepEqual(ttIds, ids, 'ttq order');
  const gaIds = gtagEvents(calls).filter((e) => e.name !== 'conversion').map((e) => e.params.event_id).filter((i) => ids.includes(i));
  assert.deepEqual(gaIds, ids, 'gtag order');

  const evs = await waitForEvents(env.server, (e) => ids.includes(e.event_id), { count: 4 });
  assert.deepEqual(evs.map((e) => e.event_id), ids, 'endpoint receives them in order');
  for (const e of evs) assert.deepEqual(eventSchemaErrors(e), []);
  const t = evs.map((e) => e.event_time_ms ?? e.event_time * 1000);
  assert.ok(t.every((x, i) => i === 0 || x >= t[i - 1]), 'event times are non-decreasing');
  await settle(300);
  for (const i of ids) assert.equal(env.server.events.filter((e) => e.event_id === i).length, 1, `${i} sent once`);
  // After load, track returns the event id synchronously.
  const live = await page.evaluate(() => window.tandem('track', 'Lead', { value: 2, currency: 'EUR' }));
  assert.match(String(live), UUID_V4);
  assert.deepEqual(pageErrors, []);
});

test('a doubled snippet and a doubled loader send each event once', needsDist, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/double.html'));
  await waitForLoaded(page);
  await waitForCalls(page, hasId('dbl-1'), { count: 3 });
  await waitForEvents(env.server, (e) => e.event_id === 'dbl-1');
  // A third copy of the loader arrives late (a tag manager injecting it again).
  await page.evaluate(() => new Promise((resolve) => {
    const s = document.createElement('script');
    s.src = '/dist/tandem.js';
    s.onload = s.onerror = () => resolve();
    document.head.appendChild(s);
  }));
  await settle(200);
  const id2 = await page.evaluate(() => window.tandem('track', 'AddToCart', { value: 3, currency: 'EUR' }, { eventId: 'dbl-2' }));
  assert.equal(id2, 'dbl-2');
  await waitForEvents(env.server, (e) => e.event_id === 'dbl-2');
  await settle(500);
  const calls = await getCalls(page);
  for (const id of ['dbl-1', 'dbl-2']) {
    assert.equal(fbqEvents(calls).filter((e) => e.eventID === id).length, 1, `fbq got ${id} once`);
    assert.equal(gtagEvents(calls).filter((e) => e.name !== 'conversion' && e.params.event_id === id).length, 1, `gtag got ${id} once`);
    assert.equal(ttqEvents(calls).filter((e) => e.opts?.event_id === id).length, 1, `ttq got ${id} once`);
    assert.equal(env.server.events.filter((e) => e.event_id === id).length, 1, `endpoint got ${id} once`);
  }
  assert.equal(gtagEvents(calls, 'conversion').filter((e) => e.params.transaction_id === 'dbl-order').length, 1, 'one Ads conversion');
  const pv = fbqEvents(calls, 'PageView');
  assert.equal(pv.length, 1, `one PageView although init ran twice: ${JSON.stringify(pv)}`);
  assert.equal(calls.filter((c) => c.platform === 'ttq' && c.fn === 'page').length, 1, 'one ttq.page()');
  assert.equal(env.server.events.filter((e) => e.event_id === pv[0].eventID).length, 1, 'one PageView at the endpoint');
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('the ES module dist/tandem.mjs works the same', { ...needsDist, skip: !DIST_READY || !MODULE_READY ? 'dist/tandem.mjs not built' : false }, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/module.html'));
  await page.waitForFunction(() => window.__moduleReady === true, null, { timeout: 8000 });
  assert.equal(await page.evaluate(() => typeof window.__mod), 'function');
  await waitForCalls(page, hasId('mod-1'), { count: 3, message: 'mod-1 on three platforms' });
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === 'mod-1');
  assert.deepEqual(eventSchemaErrors(ev), []);
  assert.equal(ev.event_name, 'AddToCart');
  // mod-1 went out, so the module is live: track now returns the id.
  const id = await page.evaluate(() => window.__mod('track', 'Lead', { value: 1, currency: 'EUR' }));
  assert.match(String(id), UUID_V4);
  await waitForEvents(env.server, (e) => e.event_id === id);
  await settle(300);
  const calls = await getCalls(page);
  assert.equal(fbqEvents(calls).filter((e) => e.eventID === 'mod-1').length, 1);
  assert.equal(gtagEvents(calls, 'add_to_cart').filter((e) => e.params.event_id === 'mod-1').length, 1);
  assert.equal(ttqEvents(calls).filter((e) => e.opts?.event_id === 'mod-1').length, 1);
  assert.equal(fbqEvents(calls, 'PageView').length, 1, 'one automatic PageView');
  assert.equal(env.server.events.filter((e) => e.event_id === 'mod-1').length, 1);
  // Its message text comes from beside the module (import.meta.url).
  await page.evaluate(() => window.__mod('track', 'Purchase', { value: 1 }));
  await waitFor(() => page.evaluate(() => window.__errors.some((e) => e.code === 'missing_field')), { message: 'the report' });
  const report = await page.evaluate(() => window.__errors.find((e) => e.code === 'missing_field').message);
  assert.match(report, /^Purchase requires value and currency/, report);
  assert.deepEqual(pageErrors, []);
});

test('the ES module without WebAssembly: ready() resolves false at once, and events reach the endpoint on the plain-JS path', { ...needsDist, skip: !DIST_READY || !MODULE_READY ? 'dist/tandem.mjs not built' : false }, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false } });
  const started = Date.now();
  await page.goto(env.url('/fixtures/module-csp.html'));
  await page.waitForFunction(() => window.__ready !== undefined, null, { timeout: 8000 });
  assert.equal(await page.evaluate(() => window.__ready), false);
  assert.ok(Date.now() - started < 6000, 'not after the 8 s timeout');
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'modcsp-1' }));
  assert.equal(id, 'modcsp-1');
  await waitForEvents(env.server, (e) => e.event_id === 'modcsp-1');
});

test('a call after the loader but before init is queued: it returns undefined, then goes out after init', needsDist, async () => {
  const { page, pageErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/late-init.html'));
  await waitForLoaded(page);
  const early = await page.evaluate(() => { const r = window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'late-1' }); return r === undefined ? 'undefined' : r; });
  assert.equal(early, 'undefined', 'undefined while queued, as the README says (null means rejected)');
  await page.evaluate(() => window.tandem('init', window.__tandemConfig));
  await waitForEvents(env.server, (e) => e.event_id === 'late-1');
  assert.deepEqual(pageErrors, []);
});

test('the loader works from another origin (CDN with CORS)', needsDist, async () => {
  const { page, pageErrors, requests } = await env.newPage();
  await page.goto(env.url(`/fixtures/cdn.html?cdn=${encodeURIComponent(env.server.cdnUrl)}`));
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 7, currency: 'EUR' }));
  assert.match(String(id), UUID_V4);
  await waitForCalls(page, hasId(id), { count: 3 });
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
  assert.ok(requests.some((u) => u.startsWith(env.server.cdnUrl + '/dist/') && u.endsWith('.js')), 'loader came from the CDN');
  assert.ok(requests.some((u) => u.startsWith(env.server.cdnUrl + '/dist/') && u.includes('.wasm')),
    `the wasm is fetched next to the loader, on the CDN: ${requests.filter((u) => u.includes('wasm')).join(', ') || 'no wasm request'}`);
  assert.ok(!requests.some((u) => u.startsWith(env.server.cdnUrl + '/collect')), 'events go to the page origin, not the CDN');
  assert.deepEqual(pageErrors, []);
});

test('wasm served as application/octet-stream still works (instantiateStreaming fallback)', needsDist, async () => {
  const { page, pageErrors, requests } = await env.newPage();
  await page.goto(env.url('/fixtures/badmime.html'));
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'Purchase', { value: 5, currency: 'EUR', order_id: 'bm-1' }));
  assert.equal(id, 'o-bm-1');
  await waitForCalls(page, hasId(id), { count: 3 });
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
  assert.ok(requests.some((u) => u.includes('/badmime/dist/') && u.includes('.wasm')),
    `the wasm was requested next to the loader: ${requests.filter((u) => u.includes('wasm')).join(', ') || 'no wasm request'}`);
  assert.deepEqual(pageErrors, []);
});

// The README snippet's compile line (`tandem.compiled`): the snippet fetches and compiles the wasm
// while the loader is on its way, and the loader instantiates that module.
for (const [label, query] of [['', ''], [', ready before the loader runs', '?late=1']]) test(`the snippet's compilation is the one the loader instantiates: one download, one compilation${label}`, needsDist, async () => {
  const { page, pageErrors, consoleErrors, requests } = await env.newPage();
  await page.goto(env.url('/fixtures/early-compile.html' + query), { waitUntil: 'domcontentloaded' });
  if (query) {
    const early = await page.evaluate(async () => (await window.tandem.compiled) instanceof WebAssembly.Module && !window.tandem.loaded);
    assert.ok(early, 'the module was compiled while the loader was still on its way');
  }
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 7, currency: 'EUR' }));
  assert.match(String(id), UUID_V4);
  await waitForCalls(page, hasId(id), { count: 3 });
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
  await waitForEvents(env.server, (e) => e.event_name === 'PageView' && e.event_source_url.endsWith('early-compile.html' + query), { message: 'the automatic PageView' });
  const wasm = requests.filter((u) => u.includes('.wasm'));
  assert.deepEqual(wasm.map((u) => new URL(u).pathname), ['/dist/tandem_bg.wasm'], 'one download');
  assert.deepEqual(await page.evaluate(() => window.__compiles), ['compileStreaming'], 'one compilation, the snippet\'s');
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});

// A compile line that fails (a wrong MIME type, a missing file), a `tandem.compiled` that is not a
// promise of a module, or another release's module (a compile line left pointing at an old file)
// costs the page nothing: no unhandled rejection, no report, and the loader fetches and compiles
// the wasm itself.
// The last compilation listed is the loader's own.
for (const [label, query, compiles, order] of [
  ['a wrong MIME type', '?wasm=/badmime/dist/tandem_bg.wasm', ['compileStreaming', 'compileStreaming']],
  ['a missing file', '?wasm=/missing/tandem_bg.wasm', ['compileStreaming', 'compileStreaming']],
  ['a thenable whose then throws', '?compiled=hostile', ['compileStreaming']],
  ['a promise of a number', '?compiled=number', ['compileStreaming']],
  ["another release's module", '?compiled=other', ['compile', 'compileStreaming']],
].map((c, k) => [...c, 'early-' + k])) {
  test(`the snippet's compilation failing (${label}): the loader compiles the wasm itself, quietly`, needsDist, async () => {
    const { page, pageErrors, consoleErrors, requests } = await env.newPage();
    await page.goto(env.url('/fixtures/early-compile.html' + query));
    await waitForLoaded(page);
    const id = await page.evaluate((o) => window.tandem('track', 'Purchase', { value: 5, currency: 'EUR', order_id: o }), order);
    assert.equal(id, 'o-' + order);
    await waitForCalls(page, hasId(id), { count: 3 });
    await waitForEvents(env.server, (e) => e.event_id === id);
    assert.ok(requests.some((u) => new URL(u).pathname === '/dist/tandem_bg.wasm'), 'the loader fetched the wasm beside itself');
    assert.deepEqual(await page.evaluate(() => window.__compiles), compiles, 'the loader compiled the wasm itself');
    assert.equal(await page.evaluate(() => window.tandem.degraded), undefined, 'not the plain-JS path');
    assert.deepEqual(await page.evaluate(() => window.__errors), [], 'nothing reported to onError');
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(consoleErrors.filter((m) => !/Failed to load resource/.test(m)), []);
  });
}

test('with WebAssembly blocked (CSP, Lockdown Mode), conversions still reach the endpoint', needsDist, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.route('**/*.wasm', (route) => route.abort('blockedbyclient'));
  await page.goto(env.url('/fixtures/basic.html'));
  // Either the loader reports loaded on its JS path, or the calls keep queueing: both must not throw.
  const id = await page.evaluate(() => {
    try { return window.tandem('track', 'Purchase', { value: 9, currency: 'EUR', order_id: 'nowasm-1' }, { eventId: 'nowasm-1' }); }
    catch (e) { return 'THREW ' + e; }
  });
  assert.ok(!String(id).startsWith('THREW'), String(id));
  await waitForEvents(env.server, (e) => e.event_id === 'nowasm-1', { timeout: 8000, message: 'the Purchase on the JS path' });
  assert.deepEqual(pageErrors, []);
});

test('a blocked loader keeps the stub and its queue; nothing throws', needsDist, async () => {
  const { page, pageErrors } = await env.newPage();
  await page.goto(env.url('/fixtures/blocked.html'));
  await settle(300);
  const r = await page.evaluate(() => {
    try {
      window.tandem('track', 'Lead', { value: 1, currency: 'EUR' });
      window.tandem('track', 'Purchase', { value: 1, currency: 'EUR' });
      return { type: typeof window.tandem, q: window.tandem.q && window.tandem.q.length, loaded: window.tandem.loaded };
    } catch (e) { return { threw: String(e) }; }
  });
  assert.equal(r.threw, undefined);
  assert.equal(r.type, 'function');
  assert.equal(r.q, 3, 'init + 2 tracks queued');
  assert.notEqual(r.loaded, true);
  assert.deepEqual(pageErrors, []);
});
