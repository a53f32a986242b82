// Hostile and broken input: nothing may reach the page as an exception, every rejection is reported
// through onError with {code, message, input}, and the tag keeps working afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  setup, needsDist, waitForLoaded, waitForEvents, waitFor, getCalls, settle, eventSchemaErrors, assertPayloadsValid, UUID_V4, loadMessageText,
} from './helpers.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.teardown(); });

async function loadedPage() {
  const p = await env.newPage({ overrides: { autoPageView: false } });
  await p.page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(p.page);
  // The cases read each call's reports as it returns: the first report waits for the text.
  await loadMessageText(p.page);
  return p;
}

/**
 * Runs each named case in the page. A case is the source of a function body that calls tandem;
 * returns per case { name, threw, ret, errors: [new onError reports] }.
 */
async function runCases(page, cases) {
  return page.evaluate((cases) => cases.map(([name, src]) => {
    const before = window.__errors.length;
    let ret, threw;
    try { ret = new Function(src)(); } catch (e) { threw = String(e && e.stack || e); }
    let retOut;
    try { retOut = ret === undefined ? 'undefined' : JSON.parse(JSON.stringify(ret)); } catch { retOut = String(ret); }
    return { name, threw, ret: retOut, errors: window.__errors.slice(before) };
  }), cases);
}

// Each of these must be rejected: return null, report through onError, send nothing.
const REJECTED = [
  ['null name', `return tandem('track', null);`],
  ['numeric name', `return tandem('track', 42);`],
  ['object name', `return tandem('track', { name: 'Purchase' });`],
  ['undefined name', `return tandem('track');`],
  ['empty name', `return tandem('track', '');`],
  ['1 MB name', `return tandem('track', 'x'.repeat(1 << 20));`],
  ['non-numeric value', `return tandem('track', 'Purchase', { value: 'abc', currency: 'EUR', order_id: 'bad-1' });`],
  ['NaN value', `return tandem('track', 'Purchase', { value: NaN, currency: 'EUR', order_id: 'bad-2' });`],
  ['negative value', `return tandem('track', 'Purchase', { value: -5, currency: 'EUR', order_id: 'bad-3' });`],
  ['throwing getter', `const p = { currency: 'EUR' }; Object.defineProperty(p, 'value', { enumerable: true, get() { throw new Error('boom'); } }); return tandem('track', 'Purchase', p);`],
  ['Symbol value', `return tandem('track', 'Purchase', { value: Symbol('v'), currency: 'EUR', order_id: 'bad-4' });`],
  ['BigInt value', `return tandem('track', 'Purchase', { value: 10n, currency: 'EUR', order_id: 'bad-5' });`],
  ['Purchase without currency', `return tandem('track', 'Purchase', { value: 10, order_id: 'bad-6' });`],
  ["currency 'EURO'", `return tandem('track', 'Purchase', { value: 10, currency: 'EURO', order_id: 'bad-7' });`],
  ['eventId is an object', `return tandem('track', 'Lead', {}, { eventId: { id: 1 } });`],
];

// Each of these may be repaired rather than rejected (the bad field dropped, the event still sent),
// but must never throw, must be reported through onError, and what is sent must be clean.
const REPAIRED = [
  ['circular params', 'r-circ', `const p = { value: 1, currency: 'EUR' }; p.self = p; return tandem('track', 'Lead', p, { eventId: 'r-circ' });`, 'self'],
  ['params is a string', 'r-str', `return tandem('track', 'Lead', 'value=1', { eventId: 'r-str' });`, null],
  ['throwing getter on a custom field', 'r-get', `const p = { value: 1, currency: 'EUR' }; Object.defineProperty(p, 'coupon', { enumerable: true, get() { throw new Error('boom'); } }); return tandem('track', 'Lead', p, { eventId: 'r-get' });`, 'coupon'],
  ['Symbol in a custom field', 'r-sym', `return tandem('track', 'Lead', { value: 1, currency: 'EUR', tag: Symbol('t') }, { eventId: 'r-sym' });`, 'tag'],
  ['function in a custom field', 'r-fn', `return tandem('track', 'Lead', { value: 1, currency: 'EUR', cb: function () {} }, { eventId: 'r-fn' });`, 'cb'],
];

test('rejected input never throws, is reported through onError, and sends nothing', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const callsBefore = (await getCalls(page)).length;
  const eventsBefore = env.server.events.length;
  const res = await runCases(page, REJECTED);
  const problems = [];
  for (const r of res) {
    if (r.threw) { problems.push(`${r.name}: threw ${r.threw.split('\n')[0]}`); continue; }
    if (r.ret !== null) problems.push(`${r.name}: returned ${JSON.stringify(r.ret)} instead of null`);
    if (r.errors.length < 1) { problems.push(`${r.name}: onError was not called`); continue; }
    const e = r.errors[0];
    if (typeof e.code !== 'string' || !e.code) problems.push(`${r.name}: onError without a code ${JSON.stringify(e)}`);
    if (typeof e.message !== 'string' || !e.message) problems.push(`${r.name}: onError without a message`);
    if (!('input' in e)) problems.push(`${r.name}: onError without input`);
    if (typeof e.input === 'string' && e.input.length > 4096) problems.push(`${r.name}: onError input not capped (${e.input.length} chars)`);
  }
  const noCur = res.find((r) => r.name === 'Purchase without currency');
  if (noCur?.errors[0] && !/currency/i.test(`${noCur.errors[0].code} ${noCur.errors[0].message}`)) {
    problems.push(`Purchase without currency: the error does not name currency: ${JSON.stringify(noCur.errors[0])}`);
  }
  await settle(400);
  const newCalls = (await getCalls(page)).slice(callsBefore);
  if (newCalls.length) problems.push(`platform calls made for rejected input: ${JSON.stringify(newCalls).slice(0, 500)}`);
  const newEvents = env.server.events.slice(eventsBefore);
  if (newEvents.length) problems.push(`endpoint received rejected input: ${newEvents.map((e) => e.event_name?.slice(0, 20)).join(', ')}`);
  if (pageErrors.length) problems.push(`uncaught page errors: ${pageErrors.join(' | ')}`);
  assert.deepEqual(problems, []);

  // The tag still works.
  const id = await page.evaluate(() => window.tandem('track', 'Purchase', { value: 1.5, currency: 'EUR', order_id: 'after-bad' }));
  assert.equal(id, 'o-after-bad');
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
  assert.deepEqual(eventSchemaErrors(ev), []);
});

test('repairable input is reported, and what is sent is clean', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const res = await runCases(page, REPAIRED.map(([name, , src]) => [name, src]));
  const problems = [];
  for (const [i, r] of res.entries()) {
    const [, id, , badKey] = REPAIRED[i];
    if (r.threw) { problems.push(`${r.name}: threw ${r.threw.split('\n')[0]}`); continue; }
    if (r.errors.length < 1) problems.push(`${r.name}: onError was not called`);
    for (const e of r.errors) if (typeof e.code !== 'string' || typeof e.message !== 'string' || !('input' in e)) problems.push(`${r.name}: malformed report ${JSON.stringify(e)}`);
    if (r.ret === null) continue; // rejected outright: also fine
    if (r.ret !== id) { problems.push(`${r.name}: returned ${JSON.stringify(r.ret)}`); continue; }
    const [ev] = await waitForEvents(env.server, (e) => e.event_id === id);
    const errs = eventSchemaErrors(ev);
    if (errs.length) problems.push(`${r.name}: schema ${errs.join('; ')}`);
    if (badKey && ev.custom_data && badKey in ev.custom_data) problems.push(`${r.name}: ${badKey} was sent: ${JSON.stringify(ev.custom_data[badKey])}`);
  }
  await settle(300);
  for (const [, id] of REPAIRED) {
    const n = env.server.events.filter((e) => e.event_id === id).length;
    if (n > 1) problems.push(`${id} sent ${n} times`);
  }
  const calls = await getCalls(page);
  if (JSON.stringify(calls).includes('__symbol') || JSON.stringify(calls).includes('__function') || JSON.stringify(calls).includes('__circular')) {
    problems.push('an unserialisable value reached a platform call');
  }
  if (pageErrors.length) problems.push(`uncaught page errors: ${pageErrors.join(' | ')}`);
  assert.deepEqual(problems, []);
});

test("the loader's reasons for values it could not read are told in full", needsDist, async () => {
  // The reasons travel from the loader's snapshot through the core's message as message tokens
  // (www/loader.js, invalidMarker): each must come out as its text, with the page's own details.
  // (A reason is told for a parameter's own value; one nested deeper is "a value that could not
  // be read" inside it.)
  const { page } = await loadedPage();
  await loadMessageText(page);
  const res = await runCases(page, [
    ['getter', `const p = {}; Object.defineProperty(p, 'coupon', { enumerable: true, get() { throw new Error('boom'); } }); return tandem('track', 'Lead', p, { eventId: 'why-1' });`],
    ['circular', `const p = {}; p.self = p; return tandem('track', 'Lead', p, { eventId: 'why-2' });`],
    ['BigInt', `return tandem('track', 'Lead', { n: 10n }, { eventId: 'why-3' });`],
    ['infinite', `return tandem('track', 'Lead', { n: Infinity }, { eventId: 'why-6' });`],
    ['long string', `return tandem('track', 'Lead', { s: 'x'.repeat(5000) }, { eventId: 'why-7' });`],
  ]);
  const told = Object.fromEntries(res.map((r) => [r.name, r.errors.map((e) => e.message).join(' | ')]));
  const expected = {
    getter: 'a property whose getter threw: boom',
    circular: 'a circular reference',
    BigInt: 'a BigInt; pass a number or a string',
    infinite: 'a number that is not finite (Infinity)',
    'long string': 'a string of 5000 characters (the limit is 4096)',
  };
  for (const [name, text] of Object.entries(expected)) {
    assert.ok(told[name].includes(text), `${name}: ${JSON.stringify(told[name])} tells "${text}"`);
    assert.ok(!told[name].includes('\u0001'), `${name}: no token left`);
  }
});

test('rejections are also logged with console.error', needsDist, async () => {
  const { page, consoleErrors } = await loadedPage();
  const n = consoleErrors.length;
  await runCases(page, [['bad currency', `return tandem('track', 'Purchase', { value: 10, currency: 'EURO' });`]]);
  await settle(100);
  assert.ok(consoleErrors.length > n, 'a console.error for the rejection');
});

test('a 1 MB custom parameter does not break the endpoint budget', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const [r] = await runCases(page, [['1 MB param', `return tandem('track', 'ViewContent', { content_name: 'x'.repeat(1 << 20), content_ids: ['sku1'] }, { eventId: 'big-1' });`]]);
  assert.equal(r.threw, undefined, r.threw);
  if (r.ret === null) {
    assert.ok(r.errors.length >= 1, 'rejected through onError');
  } else {
    assert.equal(r.ret, 'big-1');
    const [ev] = await waitForEvents(env.server, (e) => e.event_id === 'big-1');
    assert.deepEqual(eventSchemaErrors(ev), [], 'trimmed to the schema');
  }
  await settle(300);
  const over = env.server.payloads.filter((p) => p.status === 413);
  assert.equal(over.length, 0, 'the tag never posts more than 64 KB');
  assert.deepEqual(pageErrors, []);
});

test('a polluted Object.prototype does not leak into events or break the tag', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const r = await page.evaluate(() => {
    Object.prototype.polluted = 'evil';
    Object.prototype.eventId = 'not valid id';
    Object.prototype.event_id = 'evil-id';
    Object.prototype.value = 'evil';
    try {
      return { ret: window.tandem('track', 'Lead', { value: 3, currency: 'EUR' }) };
    } catch (e) { return { threw: String(e) }; }
    finally {
      delete Object.prototype.polluted; delete Object.prototype.eventId; delete Object.prototype.event_id; delete Object.prototype.value;
    }
  });
  assert.equal(r.threw, undefined, r.threw);
  assert.match(String(r.ret), UUID_V4, `a valid call still returns a fresh id: ${r.ret}`);
  const [ev] = await waitForEvents(env.server, (e) => e.event_id === r.ret);
  assert.deepEqual(eventSchemaErrors(ev), []);
  assert.ok(!JSON.stringify(ev).includes('evil'), 'no polluted key in the event');
  assert.deepEqual(pageErrors, []);
});

test('garbage commands and configs never throw', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const res = await runCases(page, [
    ['unknown command', `return tandem('frobnicate', 1, 2);`],
    ['no arguments', `return tandem();`],
    ['init null', `return tandem('init', null);`],
    ['init number', `return tandem('init', 7);`],
    ['init twice', `return tandem('init', window.__tandemConfig);`],
    ['page with junk', `return tandem('page', { toString() { throw new Error('x'); } });`],
    ['track with options null', `return tandem('track', 'Lead', {}, null);`],
  ]);
  for (const r of res) assert.equal(r.threw, undefined, `${r.name} threw ${r.threw}`);
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  assert.match(String(id), UUID_V4);
  await waitForEvents(env.server, (e) => e.event_id === id);
  assertPayloadsValid(env.server);
  assert.deepEqual(pageErrors, []);
});

test('a refused init config leaves the tag as before: the next init works, under the consent given before it', needsDist, async () => {
  const { page, pageErrors, consoleErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await page.goto(env.url('/fixtures/late-init.html'));
  await waitForLoaded(page);
  const r = await page.evaluate(() => {
    window.tandem('consent', 'default', { ad_storage: 'granted', analytics_storage: 'granted', ad_user_data: 'denied', ad_personalization: 'denied' });
    const bad = window.tandem('init', 'G-1');
    window.tandem('init', window.__tandemConfig);
    const id = window.tandem('track', 'Lead', { value: 1, currency: 'EUR' });
    return { bad, id, errors: window.__errors.map((e) => e.code) };
  });
  assert.equal(r.bad, null);
  assert.match(String(r.id), UUID_V4, JSON.stringify(r));
  assert.deepEqual(r.errors, [], 'no not_initialized');
  const [lead] = await waitForEvents(env.server, (e) => e.event_id === r.id);
  assert.equal(lead.consent.ad_user_data, 'denied', 'the default made before the refused init is in force');
  assert.equal(lead.user_data.fbp, undefined);
  await waitFor(() => consoleErrors.some((m) => m.includes('expects a config object')), { message: 'the refusal on the console' });
  assert.equal(consoleErrors.filter((m) => m.includes('expects a config object')).length, 1, consoleErrors.join('\n'));
  assert.deepEqual(pageErrors, []);
});

test('a Purchase with the same order id is sent once (thank-you page reload)', needsDist, async () => {
  const { page } = await loadedPage();
  const first = await page.evaluate(() => window.tandem('track', 'Purchase', { value: 20, currency: 'EUR', order_id: 'dup-order-1' }));
  assert.equal(first, 'o-dup-order-1');
  await waitForEvents(env.server, (e) => e.event_id === first);
  await page.reload();
  await waitForLoaded(page);
  const second = await page.evaluate(() => window.tandem('track', 'Purchase', { value: 20, currency: 'EUR', order_id: 'dup-order-1' }));
  await settle(500);
  const purchases = env.server.events.filter((e) => e.event_name === 'Purchase' && e.custom_data?.order_id === 'dup-order-1');
  assert.equal(purchases.length, 1, `order dup-order-1 sent ${purchases.length} times (second call returned ${JSON.stringify(second)})`);
});

test('a string cut mid-emoji (a lone surrogate) is kept as U+FFFD: the call is not lost, identify keeps what it had', needsDist, async () => {
  const { page, pageErrors } = await loadedPage();
  const r = await page.evaluate(() => {
    const cut = 'Sock 😀'.slice(0, 6); // JSON.stringify writes it as "Sock \ud83d"
    const id = window.tandem('track', 'Purchase', { value: 5, currency: 'EUR', content_name: cut, contents: [{ id: 'sku-1', quantity: 1, name: cut }] }, { eventId: 'lone-1' });
    window.tandem('identify', { email: 'someone@example.com' });
    window.tandem('identify', { firstName: 'Jo' + '😀'.slice(0, 1) });
    const after = window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }, { eventId: 'lone-2' });
    return { id, after, errors: window.__errors.map((e) => e.code) };
  });
  assert.deepEqual([r.id, r.after], ['lone-1', 'lone-2'], JSON.stringify(r));
  const [purchase] = await waitForEvents(env.server, (e) => e.event_id === 'lone-1');
  assert.equal(purchase.custom_data.content_name, 'Sock \uFFFD');
  const [lead] = await waitForEvents(env.server, (e) => e.event_id === 'lone-2');
  assert.ok(lead.user_data && lead.user_data.em, `the email identify gave is still there: ${JSON.stringify(lead.user_data)}`);
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- message text (lazy)

const MESSAGES_FILE = /\/tandem-messages-[0-9a-f]{12}\.json$/;

test('message text is fetched only at the first report: a page of valid calls never loads it; reports keep the order of their calls', needsDist, async () => {
  const { page, pageErrors, consoleErrors, requests } = await env.newPage({ overrides: { autoPageView: false, debug: true } });
  const warnings = [];
  page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  const lead = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  await waitForEvents(env.server, (e) => e.event_id === lead);
  assert.deepEqual(requests.filter((u) => MESSAGES_FILE.test(u)), [], 'no message text for valid calls');

  const r = await page.evaluate(() => {
    const purchase = window.tandem('track', 'Purchase', { value: 1 });
    const consent = window.tandem('consent', 'sometimes', {});
    const warned = window.tandem('track', 'Lead', {}, { eventid: 'x' });
    window.tandem('init', {}); // the loader's own warning, its text in the same file
    return { purchase, consent, warned, reportedAtOnce: window.__errors.length };
  });
  assert.equal(r.purchase, null);
  assert.match(String(r.warned), UUID_V4);
  assert.equal(r.reportedAtOnce, 0, 'the first reports wait for the text');
  await waitFor(() => consoleErrors.length >= 2 && warnings.some((w) => w.includes('eventid')), { message: 'two errors and a warning' });
  const errors = await page.evaluate(() => window.__errors);
  assert.deepEqual(errors.map((e) => e.code), ['missing_field', 'invalid_consent'], 'in the order of the calls');
  assert.equal(errors[0].message, 'Purchase requires value and currency (Meta and Google both need them); missing: currency. The event was not sent.');
  assert.match(errors[1].message, /^tandem\('consent', …\) takes 'default' or 'update' first/);
  assert.equal(errors[1].input, '"sometimes"');
  for (const text of [...errors.map((e) => e.message), ...consoleErrors, ...warnings]) assert.ok(!text.includes('\u0001'), `a token left in ${JSON.stringify(text)}`);
  assert.ok(consoleErrors[0].includes('Purchase requires value and currency'), consoleErrors[0]);
  assert.ok(warnings.some((w) => w.includes('Unknown option "eventid" ignored')), warnings.join('\n'));
  await waitFor(() => warnings.some((w) => w.includes("tandem('init') was called again; the first configuration stays in force")), { message: "the loader's own warning, with its text" });

  // Once fetched, a report reaches onError within its call.
  const atOnce = await page.evaluate(() => {
    const before = window.__errors.length;
    window.tandem('track', 'Purchase', { currency: 'EUR' });
    return window.__errors.slice(before).map((e) => e.message);
  });
  assert.deepEqual(atOnce, ['Purchase requires value and currency (Meta and Google both need them); missing: value. The event was not sent.']);
  assert.equal(requests.filter((u) => MESSAGES_FILE.test(u)).length, 1, 'fetched once');
  assert.deepEqual(pageErrors, []);
});

test('without the message file, reports still arrive, in order, with their code, input and the keys of their text', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({ overrides: { autoPageView: false } });
  await context.route(MESSAGES_FILE, (route) => route.fulfill({ status: 404, body: 'gone' }));
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  await page.evaluate(() => {
    window.tandem('track', 'Purchase', { value: 1 });
    window.tandem('track', 'Lead', {}, { eventId: 'bad id!' });
  });
  await waitFor(() => page.evaluate(() => window.__errors.length >= 2), { message: 'two reports' });
  const errors = await page.evaluate(() => window.__errors);
  assert.deepEqual(errors.map((e) => e.code), ['missing_field', 'invalid_event_id']);
  assert.match(errors[0].message, /^\[[0-9A-Za-z]{2}\]currency\[[0-9A-Za-z]{2}\]$/, errors[0].message);
  assert.equal(errors[1].input, 'bad id!');
  const id = await page.evaluate(() => window.tandem('track', 'Lead', {}, { eventId: 'after-404' }));
  assert.equal(id, 'after-404');
  await waitForEvents(env.server, (e) => e.event_id === 'after-404');
  assert.deepEqual(pageErrors, []);
});
