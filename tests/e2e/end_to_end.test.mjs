// One conversion, one event_id, five destinations: fbq, gtag (GA4 + Ads), ttq and the endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  setup, needsDist, countProbes, waitFor, waitForLoaded, waitForEvents, waitForCalls, getCalls, cookieMap, settle,
  fbqEvents, gtagEvents, ttqEvents, eventSchemaErrors, assertPayloadsValid, UUID_V4,
} from './helpers.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.teardown(); });

const LANDING = '/fixtures/basic.html?gclid=G1&fbclid=F1&utm_source=news&utm_medium=email&utm_campaign=c1';
const PURCHASE = { value: 49.9, currency: 'EUR', order_id: 'o-1', contents: [{ id: 'sku1', quantity: 2, price: 24.95 }] };
const hasId = (id) => (c) => JSON.stringify(c.args).includes(JSON.stringify(id));

test('a Purchase reaches fbq, gtag, Google Ads, ttq and the endpoint with one event_id', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage();
  await page.goto(env.url(LANDING));
  await waitForLoaded(page);
  const id = await page.evaluate((p) => window.tandem('track', 'Purchase', p), PURCHASE);
  assert.equal(id, 'o-' + PURCHASE.order_id, 'a Purchase without eventId is named by its order id');

  // Meta
  await waitForCalls(page, hasId(id), { count: 3, message: `3 platform calls carrying ${id}` });
  const calls = await getCalls(page);
  const fb = fbqEvents(calls, 'Purchase').filter((e) => e.eventID === id);
  assert.equal(fb.length, 1, `one fbq Purchase with eventID ${id}: ${JSON.stringify(fbqEvents(calls))}`);
  assert.ok(['track', 'trackSingle'].includes(fb[0].fn));
  assert.equal(fb[0].params.value, 49.9);
  assert.equal(fb[0].params.currency, 'EUR');

  // GA4
  const ga = gtagEvents(calls, 'purchase').filter((e) => e.params.event_id === id);
  assert.equal(ga.length, 1, `one gtag purchase with event_id: ${JSON.stringify(gtagEvents(calls))}`);
  assert.equal(ga[0].params.transaction_id, 'o-1');
  assert.equal(ga[0].params.value, 49.9);
  assert.equal(ga[0].params.currency, 'EUR');
  assert.ok(Array.isArray(ga[0].params.items) && ga[0].params.items.length === 1, 'GA4 items[]');
  assert.equal(ga[0].params.items[0].item_id, 'sku1');
  assert.equal(ga[0].params.items[0].quantity, 2);
  assert.ok(String(ga[0].params.send_to || '').includes('G-TEST123'), `GA4 send_to names the tag id: ${ga[0].params.send_to}`);

  // Google Ads conversion
  const conv = gtagEvents(calls, 'conversion').filter((e) => e.params.send_to === 'AW-123456789/pUrChAsE');
  assert.equal(conv.length, 1, `one Ads conversion: ${JSON.stringify(gtagEvents(calls, 'conversion'))}`);
  assert.equal(conv[0].params.transaction_id, 'o-1');
  assert.equal(conv[0].params.value, 49.9);
  assert.equal(conv[0].params.currency, 'EUR');

  // TikTok
  const tt = ttqEvents(calls, 'Purchase').filter((e) => e.opts && e.opts.event_id === id);
  assert.equal(tt.length, 1, `one ttq.track Purchase with event_id: ${JSON.stringify(ttqEvents(calls))}`);
  assert.equal(tt[0].props.value, 49.9);

  // Endpoint
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
  assert.equal(ev.event_name, 'Purchase');
  assert.equal(ev.action_source, 'website');
  assert.equal(ev.custom_data.value, 49.9);
  assert.equal(ev.custom_data.currency, 'EUR');
  assert.equal(ev.custom_data.order_id, 'o-1');
  assert.equal(ev.custom_data.contents?.[0]?.id, 'sku1');
  assert.equal(ev.custom_data.contents?.[0]?.quantity, 2);
  assert.equal(ev.click_ids?.gclid?.value, 'G1');
  assert.equal(ev.click_ids?.fbclid?.value, 'F1');
  assert.equal(ev.utm?.first?.source, 'news');
  assert.equal(ev.utm?.first?.medium, 'email');
  assert.equal(ev.utm?.first?.campaign, 'c1');
  assert.ok(Math.abs(ev.event_time - Date.now() / 1000) < 120, 'event_time is now, in seconds');

  // Cookies
  const cookies = await cookieMap(context);
  // On an IP host the subdomain index is 0 (Meta's capi-param-builder: IP -> 0); on a named host it is
  // the registrable domain's label count - 1 (see the www.tandem.test test below).
  assert.match(cookies._fbc || '', /^fb\.[01]\.\d{13}\.F1$/, `_fbc cookie: ${cookies._fbc}`);
  assert.match(cookies._fbp || '', /^fb\.[01]\.\d{13}\.\d+$/, `_fbp cookie: ${cookies._fbp}`);
  assert.ok(cookies._tandem_cid, '_tandem_cid cookie set');
  assert.equal(ev.user_data.fbc, cookies._fbc);
  assert.equal(ev.user_data.fbp, cookies._fbp);
  assert.equal(ev.client_id, cookies._tandem_cid);

  // Sent once, everywhere.
  await settle(300);
  const again = await getCalls(page);
  assert.equal(fbqEvents(again).filter((e) => e.eventID === id).length, 1);
  assert.equal(env.server.events.filter((e) => e.event_id === id).length, 1);
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('attribution persists to a later page without parameters', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage();
  await page.goto(env.url(LANDING));
  await waitForLoaded(page);
  const first = await page.evaluate(() => window.tandem('track', 'ViewContent', { content_ids: ['sku1'], content_type: 'product' }));
  const [ev1] = await waitForEvents(env.server, (e) => e.event_id === first);

  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const stored = await page.evaluate(() => localStorage.getItem('tandem:attribution'));
  assert.ok(stored, 'localStorage tandem:attribution is kept');
  const second = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  assert.match(String(second), UUID_V4);
  const [ev2] = await waitForEvents(env.server, (e) => e.event_id === second);
  assert.deepEqual(eventSchemaErrors(ev2), []);
  assert.equal(ev2.click_ids?.gclid?.value, 'G1', `gclid carried over: ${JSON.stringify(ev2.click_ids)}`);
  assert.equal(ev2.click_ids?.fbclid?.value, 'F1');
  assert.equal(ev2.click_ids.gclid.ts, ev1.click_ids.gclid.ts, 'first-seen time of the click id is kept');
  assert.equal(ev2.utm?.first?.source, 'news');
  assert.equal(ev2.client_id, ev1.client_id, 'same client_id across pages');
  assert.equal(ev2.user_data.fbc, ev1.user_data.fbc, '_fbc unchanged when no new fbclid arrives');
  assert.ok(!String(ev2.event_source_url).includes('gclid'), 'the later page URL has no click id');
  const cookies = await cookieMap(context);
  assert.match(cookies._fbc || '', /^fb\.[01]\.\d{13}\.F1$/);
  assert.deepEqual(pageErrors, []);
});

test('on a named host, _fbc/_fbp are fb.1.<ms>.… on the registrable domain', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({ initScripts: [countProbes] });
  await page.goto(env.hostUrl('/fixtures/basic.html?fbclid=F1&gclid=G1', 'www.tandem.test'));
  await waitForLoaded(page);
  assert.ok(await page.evaluate(() => window.__probes) > 0, 'the first page asks the browser');
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  const jar = await context.cookies('http://www.tandem.test/');
  const fbc = jar.find((c) => c.name === '_fbc');
  const fbp = jar.find((c) => c.name === '_fbp');
  assert.match(fbc?.value || '', /^fb\.1\.\d{13}\.F1$/, `_fbc: ${fbc?.value}`);
  assert.match(fbp?.value || '', /^fb\.1\.\d{13}\.\d+$/, `_fbp: ${fbp?.value}`);
  assert.equal(fbc.domain, '.tandem.test', 'set on the registrable domain, shared by subdomains');
  assert.equal(ev.user_data.fbc, fbc.value);
  // The answer is remembered: the site's next page sets no test cookie, and its cookies still go
  // on the registrable domain.
  const remembered = await page.evaluate(() => localStorage.getItem('tandem:domain'));
  assert.match(remembered || '', /^\d{13} tandem\.test$/, `tandem:domain: ${remembered}`);
  await page.goto(env.hostUrl('/fixtures/basic.html?fbclid=F2', 'www.tandem.test'));
  await waitForLoaded(page);
  const newFbc = async () => (await context.cookies('http://www.tandem.test/')).find((c) => c.name === '_fbc' && c.value.endsWith('.F2'));
  await waitFor(newFbc, { message: 'the _fbc of the new fbclid' });
  assert.equal(await page.evaluate(() => window.__probes), 0, 'no test cookie on the next page');
  assert.equal((await newFbc()).domain, '.tandem.test', 'set on the remembered domain');
  // A sibling subdomain shares the ids.
  await page.goto(env.hostUrl('/fixtures/basic.html', 'shop.tandem.test'));
  await waitForLoaded(page);
  const id2 = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  const [ev2] = await waitForEvents(env.server, (e) => e.event_id === id2);
  assert.equal(ev2.user_data.fbp, ev.user_data.fbp, 'same _fbp on shop.tandem.test');
  assert.equal(ev2.client_id, ev.client_id, 'same client id on shop.tandem.test');
  assert.deepEqual(pageErrors, []);
});

test('PageView on init reaches every destination with one event_id', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { google: { tagId: 'G-TEST123', load: false, sendPageView: true } } });
  await page.goto(env.url('/fixtures/basic.html?pv=1'));
  await waitForLoaded(page);
  const [pv] = await waitForCalls(page, (c) => c.platform === 'fbq' && fbqEvents([c], 'PageView').length > 0, { message: 'fbq PageView' });
  const id = fbqEvents([pv], 'PageView')[0].eventID;
  assert.match(String(id), UUID_V4, `PageView eventID: ${id}`);
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.equal(ev.event_name, 'PageView');
  assert.deepEqual(eventSchemaErrors(ev), []);
  await waitForCalls(page, (c) => c.platform === 'ttq' && c.fn === 'page', { message: 'ttq.page()' });
  await waitForCalls(page, (c) => c.platform === 'gtag' && c.args[0] === 'event' && c.args[1] === 'page_view', { message: 'gtag page_view (sendPageView: true)' });
  await settle(300);
  const calls = await getCalls(page);
  assert.equal(fbqEvents(calls, 'PageView').length, 1, 'one fbq PageView');
  assert.equal(calls.filter((c) => c.platform === 'ttq' && c.fn === 'page').length, 1, 'one ttq.page()');
  const gpv = gtagEvents(calls, 'page_view');
  assert.equal(gpv.length, 1, 'one gtag page_view');
  assert.equal(gpv[0].params.event_id, id, 'gtag page_view carries the same event_id');
  assert.equal(ttqEvents(calls).filter((e) => e.name === 'PageView').length, 0, 'TikTok PageView goes through ttq.page(), not ttq.track');
  assert.equal(env.server.events.filter((e) => e.event_id === id).length, 1);
});

test('autoPageView: false sends no PageView until tandem("page")', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/basic.html?pv=0'));
  await waitForLoaded(page);
  await settle(300);
  assert.equal(fbqEvents(await getCalls(page), 'PageView').length, 0);
  await page.evaluate(() => window.tandem('page'));
  const [pv] = await waitForCalls(page, (c) => fbqEvents([c], 'PageView').length > 0, { message: 'fbq PageView after tandem("page")' });
  const id = fbqEvents([pv], 'PageView')[0].eventID;
  await waitForEvents(env.server, (e) => e.event_id === id && e.event_name === 'PageView');
});

test('options.eventId passes through unchanged everywhere', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const myId = 'order_42.v1:A-b';
  const ret = await page.evaluate((i) => window.tandem('track', 'Purchase', { value: 10, currency: 'USD', order_id: 'o-42' }, { eventId: i }), myId);
  assert.equal(ret, myId);
  await waitForCalls(page, hasId(myId), { count: 3 });
  const calls = await getCalls(page);
  assert.equal(fbqEvents(calls, 'Purchase')[0]?.eventID, myId);
  assert.equal(gtagEvents(calls, 'purchase')[0]?.params.event_id, myId);
  assert.equal(ttqEvents(calls, 'Purchase')[0]?.opts?.event_id, myId);
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === myId);
  assert.deepEqual(eventSchemaErrors(ev), []);
});

test('a numeric options.eventId (an order number) is sent as the same string everywhere', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const ret = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 987654 }));
  if (ret === null) return; // rejecting a number is allowed too (the d.ts says string | number)
  assert.equal(ret, '987654');
  await waitForCalls(page, hasId('987654'), { count: 3 });
  const calls = await getCalls(page);
  assert.equal(fbqEvents(calls, 'Lead')[0]?.eventID, '987654');
  assert.equal(ttqEvents(calls, 'Lead')[0]?.opts?.event_id, '987654');
  await waitForEvents(env.server, (e) => e.event_id === '987654');
});

test('a custom event goes to fbq trackCustom with the same id', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'QuizCompleted', { level: 3 }));
  assert.match(String(id), UUID_V4);
  const [c] = await waitForCalls(page, (x) => x.platform === 'fbq' && hasId(id)(x));
  assert.equal(c.args[0], 'trackCustom');
  assert.equal(c.args[1], 'QuizCompleted');
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.equal(ev.event_name, 'QuizCompleted');
});

test('an invalid options.eventId is rejected through onError and sends nothing', needsDist, async () => {
  const { page, pageErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const bad = ['has space', 'x'.repeat(65), '', 'semi;colon'];
  const res = await page.evaluate((ids) => ids.map((i) => {
    try { return { ret: window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: i }) }; }
    catch (e) { return { threw: String(e) }; }
  }), bad);
  for (const [i, r] of res.entries()) {
    assert.ok(!('threw' in r), `eventId ${JSON.stringify(bad[i])} threw: ${r.threw}`);
    assert.equal(r.ret, null, `eventId ${JSON.stringify(bad[i]).slice(0, 20)} returns null`);
  }
  // The first report of a page waits for the message text (README, Message text).
  await waitFor(() => page.evaluate((n) => window.__errors.length >= n, bad.length), { message: 'a report for each' }).catch(() => {});
  const errors = await page.evaluate(() => window.__errors);
  assert.ok(errors.length >= bad.length, `onError called for each: ${JSON.stringify(errors).slice(0, 400)}`);
  for (const e of errors) {
    assert.equal(typeof e.code, 'string');
    assert.equal(typeof e.message, 'string');
    assert.ok('input' in e);
  }
  await settle(300);
  const calls = await getCalls(page);
  for (const i of bad.slice(0, 2)) assert.ok(!calls.some(hasId(i)), `no platform call carries ${i.slice(0, 12)}`);
  assert.ok(!env.server.events.some((e) => bad.includes(e.event_id)));
  // A valid call still works afterwards.
  const ok = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'fine-1' }));
  assert.equal(ok, 'fine-1');
  await waitForEvents(env.server, (e) => e.event_id === 'fine-1');
  assert.deepEqual(pageErrors, []);
});

test('several Meta pixels get trackSingle each, with the same eventID', needsDist, async () => {
  const { page } = await env.newPage({ overrides: { autoPageView: false, meta: { pixelId: ['111111111111111', '222222222222222'], load: false } } });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'AddToCart', { value: 2, currency: 'EUR' }));
  const calls = await waitForCalls(page, (c) => c.platform === 'fbq' && hasId(id)(c), { count: 2 });
  const fb = fbqEvents(calls);
  assert.deepEqual(fb.map((e) => e.fn), ['trackSingle', 'trackSingle']);
  assert.deepEqual(fb.map((e) => e.pixel).sort(), ['111111111111111', '222222222222222']);
  assert.ok(fb.every((e) => e.eventID === id && e.name === 'AddToCart'));
});

test('when sendBeacon refuses, the event goes by fetch keepalive', needsDist, async () => {
  const { page } = await env.newPage({
    overrides: { autoPageView: false },
    initScripts: [() => { window.__beacons = 0; navigator.sendBeacon = function () { window.__beacons++; return false; }; }],
  });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
  await settle(300);
  assert.equal(env.server.events.filter((e) => e.event_id === id).length, 1, 'sent once');
});

test('the idle rehearsal compiles what a first identify() and track() run, and sends, stores and logs nothing', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({ overrides: { debug: true } });
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  await page.goto(env.url('/fixtures/basic.html?rehearsal=1'));
  await waitForLoaded(page);
  await waitForEvents(env.server, (e) => e.event_name === 'PageView' && e.event_source_url.includes('rehearsal=1'), { message: 'the PageView' });
  // The loader's idle callback was registered when it went live: the page's own, registered now,
  // runs after it.
  await page.evaluate(() => new Promise((resolve) => requestIdleCallback(() => resolve())));
  await settle(300);
  const calls = await getCalls(page);
  assert.deepEqual([...fbqEvents(calls, 'Purchase'), ...gtagEvents(calls, 'purchase'), ...ttqEvents(calls).filter((e) => e.name === 'CompletePayment')], [], 'no platform heard of the rehearsal');
  assert.deepEqual(calls.filter((c) => (c.platform === 'ttq' && c.fn === 'identify') || (c.platform === 'gtag' && c.args[1] === 'user_data') || JSON.stringify(c.args).includes('"em"')), [], 'nor of its identity');
  assert.ok(!env.server.payloads.some((p) => JSON.stringify(p.body || '').includes('rehearsal"')), 'the endpoint heard nothing of it');
  assert.ok(!logs.some((l) => /Purchase|rehearsal"/.test(l)), `the debug log shows nothing of it:\n${logs.join('\n')}`);
  const stored = await page.evaluate(() => JSON.stringify(Object.entries(localStorage)));
  assert.ok(!stored.includes('rehearsal'), `nothing of it in storage: ${stored}`);

  // V8 compiles a wasm function on its first call: count those compiled during the first
  // identify() and track() (and its emit at the end of the task). About 50 without the
  // rehearsal; 4 with it.
  const cdp = await context.newCDPSession(page);
  const traced = [];
  cdp.on('Tracing.dataCollected', (d) => traced.push(...d.value));
  const complete = new Promise((resolve) => cdp.once('Tracing.tracingComplete', resolve));
  await cdp.send('Tracing.start', { traceConfig: { includedCategories: ['v8.wasm'] } });
  const id = await page.evaluate(() => new Promise((resolve) => {
    window.tandem('identify', { email: 'Jane.Doe@example.com' });
    const id = window.tandem('track', 'Purchase', { value: 1, currency: 'EUR', order_id: 'rehearsal', contents: [{ id: 'b', quantity: 2, price: 0.5 }] });
    setTimeout(() => resolve(id), 50);
  }));
  await cdp.send('Tracing.end');
  await complete;
  const compiled = traced.filter((e) => e.name === 'wasm.CompileLazy').length;
  assert.ok(compiled < 10, `${compiled} wasm functions were compiled in the first identify() and track(), which the rehearsal should have compiled`);
  // The rehearsal's order id is not in the sent log: the same order is a real Purchase now.
  assert.equal(id, 'o-rehearsal');
  await waitForEvents(env.server, (e) => e.event_id === 'o-rehearsal', { message: 'the real Purchase' });
  assert.equal(fbqEvents(await getCalls(page), 'Purchase').length, 1);
  assert.deepEqual(pageErrors, []);
});
