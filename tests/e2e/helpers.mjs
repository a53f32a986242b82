// Shared helpers for the end-to-end tests (node:test + playwright-core + the system Chromium).
//
//   const env = await setup({ cdn: true });   // in before(): one browser + one server per file
//   const { page } = await env.newPage();     // per test: a fresh context (cookies, storage)
//   await env.teardown();                     // in after()
//
// Nothing here touches the internet: the server listens on 127.0.0.1 port 0 and every platform
// (fbq / gtag / ttq) is a local recording stub.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import Ajv2020 from 'ajv/dist/2020.js';
import { startServer } from '../../www/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// The build under test: dist/ unless TANDEM_DIST_DIR names another (the server reads it too).
export const DIST_DIR = process.env.TANDEM_DIST_DIR ? path.resolve(process.env.TANDEM_DIST_DIR) : path.join(REPO, 'dist');
export const DIST_READY = fs.existsSync(path.join(DIST_DIR, 'tandem.js')) && fs.existsSync(path.join(DIST_DIR, 'tandem_bg.wasm'));
export const MODULE_READY = fs.existsSync(path.join(DIST_DIR, 'tandem.mjs'));
// The test-hooks build (`build.mjs --test-hooks`): dist-test/ unless TANDEM_TEST_DIST_DIR names another.
export const TEST_DIST_DIR = process.env.TANDEM_TEST_DIST_DIR ? path.resolve(process.env.TANDEM_TEST_DIST_DIR) : path.join(REPO, 'dist-test');
export const TEST_DIST_READY = fs.existsSync(path.join(TEST_DIST_DIR, 'tandem.js')) && fs.existsSync(path.join(TEST_DIST_DIR, 'tandem_bg.wasm'));
/** Pass as the options of a test that needs the build: skips with a reason instead of failing. */
export const needsDist = { skip: DIST_READY ? false : 'dist/ not built (run `npm run build`)', timeout: 30_000 };

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
export const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Named hosts for cookie-domain tests (www.tandem.test, shop.tandem.test, ...), still 127.0.0.1 only.
  '--host-resolver-rules=MAP *.tandem.test 127.0.0.1, EXCLUDE localhost'];

// ---------------------------------------------------------------- schema

const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'schema', 'collect.schema.json'), 'utf8'));
const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

/** Validate one endpoint body ({events:[...]}); returns [] or a list of readable errors. */
export function schemaErrors(body) {
  if (validate(body)) return [];
  return validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
}
/** Validate one event by wrapping it in a payload. */
export function eventSchemaErrors(ev) { return schemaErrors({ events: [ev] }); }

/** Every payload the server accepted so far must be schema-valid. Throws with details if not. */
export function assertPayloadsValid(server, filter = () => true) {
  const bad = [];
  for (const p of server.payloads) {
    if (!p.body || !filter(p)) continue;
    const errs = schemaErrors(p.body);
    if (errs.length) bad.push({ errs, body: JSON.stringify(p.body).slice(0, 600) });
  }
  if (bad.length) throw new Error(`endpoint payloads violate collect.schema.json:\n${bad.map((b) => `  ${b.errs.join('; ')}\n    body: ${b.body}`).join('\n')}`);
}

// ---------------------------------------------------------------- recording stubs

/**
 * Runs in the page before any of its scripts (page.addInitScript). Defines fbq / gtag / ttq the
 * way a site that already has the platforms' base code would, recording every call into
 * window.__calls as { platform, fn, args, t } with args deep-cloned at call time.
 */
/** An init script: counts the page's writes of the registrable-domain test cookie in
 * `window.__probes` (see README, Cookies). */
export function countProbes() {
  const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
  window.__probes = 0;
  Object.defineProperty(document, 'cookie', {
    configurable: true,
    get() { return cookie.get.call(document); },
    set(value) { if (String(value).startsWith('_tandem_probe=')) window.__probes++; cookie.set.call(document, value); },
  });
}

export function recordingStubs() {
  if (window.__calls) return;
  const calls = (window.__calls = []);
  const clone = (v, seen = new WeakSet(), depth = 0) => {
    try {
      if (v === null || v === undefined) return v;
      const t = typeof v;
      if (t === 'string' || t === 'number' || t === 'boolean') return v;
      if (t === 'bigint') return { __bigint: String(v) };
      if (t === 'symbol') return { __symbol: String(v) };
      if (t === 'function') return { __function: v.name || 'anonymous' };
      if (seen.has(v) || depth > 20) return { __circular: true };
      seen.add(v);
      if (Array.isArray(v) || (typeof v.length === 'number' && Object.prototype.toString.call(v) === '[object Arguments]')) {
        return Array.prototype.map.call(v, (x) => clone(x, seen, depth + 1));
      }
      const out = {};
      for (const k of Object.keys(v)) {
        try { out[k] = clone(v[k], seen, depth + 1); } catch (e) { out[k] = { __threw: String(e) }; }
      }
      return out;
    } catch (e) { return { __uncloneable: String(e) }; }
  };
  const record = (platform, fn, args) => calls.push({ platform, fn, args: clone(Array.from(args)), t: Date.now() });

  const fbq = function () { record('fbq', String(arguments[0]), Array.prototype.slice.call(arguments)); };
  fbq.loaded = true; fbq.version = '2.0'; fbq.queue = []; fbq.push = fbq; fbq.callMethod = function () { fbq.apply(null, arguments); };
  window.fbq = window._fbq = fbq;

  window.dataLayer = window.dataLayer || [];
  window.gtag = function gtag() { record('gtag', String(arguments[0]), Array.prototype.slice.call(arguments)); window.dataLayer.push(arguments); };

  const ttqMethods = ['track', 'page', 'identify', 'load', 'instance', 'holdConsent', 'grantConsent', 'revokeConsent', 'enableCookie', 'disableCookie', 'ready', 'alias', 'group', 'on', 'off', 'once', 'setUserProperties'];
  const makeTtq = (prefix) => {
    const o = [];
    for (const m of ttqMethods) {
      o[m] = function () {
        record('ttq', prefix + m, Array.prototype.slice.call(arguments));
        if (m === 'instance') return makeTtq(`instance(${arguments[0]}).`);
        return o;
      };
    }
    return o;
  };
  const ttq = makeTtq('');
  ttq.methods = ttqMethods; ttq._i = {}; ttq.loaded = true;
  window.TiktokAnalyticsObject = 'ttq';
  window.ttq = ttq;
}

/** Calls recorded by the stubs, optionally filtered. */
export async function getCalls(page, platform) {
  const calls = await page.evaluate(() => window.__calls || []);
  return platform ? calls.filter((c) => c.platform === platform) : calls;
}

// ---------------------------------------------------------------- waiting

/** Poll fn() until it returns a truthy value or the deadline passes. */
export async function waitFor(fn, { timeout = 5000, interval = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); } catch (e) { last = undefined; if (Date.now() >= deadline) throw e; }
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Waits until the endpoint has answered 503 twice to requests carrying `text`: the page has then
 * read the first failure (its retry shows it). The server logs a 503 before the page reads it, and
 * a keepalive request still in flight at pagehide counts as delivered (core::outbox, `hide`), so
 * a navigation right after the first 503 could leave nothing stored.
 */
export async function waitForRetry(server, text) {
  await waitFor(() => server.payloads.filter((p) => p.status === 503 && p.text.includes(text)).length >= 2, { timeout: 8000, message: `a retry after a 503 for ${text}` });
}

/** Wait until at least `count` events on the server match pred; returns all matching events. */
export async function waitForEvents(server, pred, { count = 1, timeout = 5000, message } = {}) {
  return waitFor(() => {
    const m = server.events.filter(pred);
    return m.length >= count ? m : null;
  }, { timeout, message: message || `${count} endpoint event(s)` }).catch((e) => {
    const summary = server.events.map((ev) => `${ev.event_name}#${ev.event_id}`).join(', ') || '(none)';
    throw new Error(`${e.message}; the endpoint has: ${summary}`);
  });
}

/** Wait until at least `count` recorded stub calls match pred; returns them. */
export async function waitForCalls(page, pred, { count = 1, timeout = 5000, message } = {}) {
  let calls = [];
  try {
    return await waitFor(async () => {
      calls = await page.evaluate(() => window.__calls || []);
      const m = calls.filter(pred);
      return m.length >= count ? m : null;
    }, { timeout, message: message || `${count} platform call(s)` });
  } catch (e) {
    const summary = calls.map((c) => `${c.platform}.${c.fn}(${JSON.stringify(c.args).slice(0, 160)})`).join('\n    ') || '(none)';
    throw new Error(`${e.message}; recorded calls:\n    ${summary}`);
  }
}

/** Wait for the live tandem function (tandem.loaded === true). */
export async function waitForLoaded(page, { timeout = 8000, global = 'tandem' } = {}) {
  try {
    await page.waitForFunction((g) => window[g] && window[g].loaded === true, global, { timeout, polling: 20 });
  } catch (e) {
    const state = await page.evaluate((g) => ({ type: typeof window[g], loaded: window[g] && window[g].loaded, q: window[g] && window[g].q && window[g].q.length, errors: window.__errors })).catch(() => null);
    throw new Error(`tandem never reported loaded within ${timeout} ms: ${JSON.stringify(state)}`);
  }
}

/**
 * Has the loader fetch the message text (www/loader.js, `say`) by making one refused call and
 * waiting for its report: from then on every report reaches onError within the call that made it,
 * so a test can tell which call each report came from. The refused call's report stays in
 * window.__errors (code `invalid_consent`).
 */
export async function loadMessageText(page) {
  await page.evaluate(() => new Promise((resolve) => {
    const before = window.__errors.length;
    window.tandem('consent', 'load the message text');
    (function check() { if (window.__errors.length > before) resolve(); else setTimeout(check, 10); })();
  }));
}

/** Wait a short moment for anything that should NOT happen (used to prove "sent once"). */
export const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- call shapes

/** fbq calls that carry an eventID for a given Meta event name (track / trackCustom / trackSingle*). */
export function fbqEvents(calls, name) {
  const out = [];
  for (const c of calls) {
    if (c.platform !== 'fbq') continue;
    const [fn, ...rest] = c.args;
    let evName, params, opts;
    if (fn === 'track' || fn === 'trackCustom') [evName, params, opts] = rest;
    else if (fn === 'trackSingle' || fn === 'trackSingleCustom') [, evName, params, opts] = rest;
    else continue;
    if (name && evName !== name) continue;
    out.push({ fn, name: evName, params, opts, eventID: opts && opts.eventID, pixel: fn.startsWith('trackSingle') ? rest[0] : null });
  }
  return out;
}
/** gtag('event', name, params) calls. */
export function gtagEvents(calls, name) {
  return calls.filter((c) => c.platform === 'gtag' && c.args[0] === 'event' && (!name || c.args[1] === name))
    .map((c) => ({ name: c.args[1], params: c.args[2] || {} }));
}
/** ttq.track(name, props, opts) and ttq.page() calls (also through ttq.instance(id)). */
export function ttqEvents(calls, name) {
  return calls.filter((c) => c.platform === 'ttq' && /(^|\.)(track|page)$/.test(c.fn))
    .map((c) => c.fn.endsWith('page') ? { name: 'page', props: c.args[0], opts: c.args[1], fn: c.fn }
      : { name: c.args[0], props: c.args[1], opts: c.args[2], fn: c.fn })
    .filter((e) => !name || e.name === name);
}

// ---------------------------------------------------------------- setup

/**
 * One Chromium and one server per test file. Returns
 * { server, browser, url(path), newPage(opts), teardown() }.
 */
export async function setup({ cdn = false, distDir = null } = {}) {
  const server = await startServer({ port: 0, host: '127.0.0.1', cdnPort: cdn ? 0 : null, ...(distDir ? { distDir } : {}) });
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS, timeout: 20_000 });
  } catch (e) {
    await server.close();
    throw e;
  }
  const contexts = new Set();
  return {
    server,
    browser,
    url: (p) => server.url + p,
    /** The same server under a name: hostUrl('/x', 'www.tandem.test') (see --host-resolver-rules). */
    hostUrl: (p, host = 'www.tandem.test') => `http://${host}:${server.port}${p}`,
    /**
     * A fresh context + page. opts.stubs (default true) installs recordingStubs; opts.overrides
     * becomes window.__tandemOverrides (merged into the fixture's init config by fixtures/config.js).
     * Returns { context, page, pageErrors, consoleErrors, requests }.
     */
    async newPage({ stubs = true, overrides = null, initScripts = [] } = {}) {
      const context = await browser.newContext();
      contexts.add(context);
      context.setDefaultTimeout(8000);
      context.setDefaultNavigationTimeout(10_000);
      if (stubs) await context.addInitScript(recordingStubs);
      if (overrides) await context.addInitScript((o) => { window.__tandemOverrides = o; }, overrides);
      for (const s of initScripts) await context.addInitScript(s);
      const page = await context.newPage();
      const pageErrors = [];
      const consoleErrors = [];
      const requests = [];
      page.on('pageerror', (e) => pageErrors.push(String(e && e.stack || e)));
      page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
      page.on('request', (r) => requests.push(r.url()));
      return { context, page, pageErrors, consoleErrors, requests };
    },
    async teardown() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close().catch(() => {});
      await server.close();
    },
  };
}

/** Cookies of the context as a name → value map. */
export async function cookieMap(context) {
  const out = {};
  for (const c of await context.cookies()) out[c.name] = c.value;
  return out;
}
