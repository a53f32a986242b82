// load: true — Tandem injects each platform's base code itself. The platforms' script URLs are routed
// to local stand-ins (tests/e2e/stubs/); anything else off 127.0.0.1 is aborted and reported.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, needsDist, waitForLoaded, waitForEvents, waitFor } from './helpers.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.teardown(); });

const STUB_FOR = { 'connect.facebook.net': 'fbevents.js', 'www.googletagmanager.com': 'gtag.js', 'analytics.tiktok.com': 'events.js' };

/**
 * Routes every request off 127.0.0.1: a platform's script to its local stand-in (its URL noted in
 * `requested`), anything else aborted (noted in `offsite`).
 */
async function routeOffsite(context) {
  const seen = { requested: [], offsite: [] };
  await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, async (route) => {
    const url = route.request().url();
    const stub = STUB_FOR[new URL(url).host];
    if (stub) {
      seen.requested.push(url);
      const r = await fetch(`${env.server.url}/stub/${stub}`);
      return route.fulfill({ status: 200, contentType: 'text/javascript', body: await r.text() });
    }
    seen.offsite.push(url);
    return route.abort();
  });
  return seen;
}

test('load: true injects the base code of Meta, Google and TikTok (routed to local stand-ins)', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({
    stubs: false,
    overrides: {
      meta: { pixelId: '333333333333333', load: true },
      google: { tagId: 'G-LOADTRUE1', load: true },
      tiktok: { pixelId: 'CLOADTRUE00000000000', load: true },
    },
  });
  const { offsite } = await routeOffsite(context);
  await page.goto(env.url('/fixtures/basic.html'));
  await waitForLoaded(page);
  await waitFor(() => page.evaluate(() => window.__stubLoaded && window.__stubLoaded.meta && window.__stubLoaded.google && window.__stubLoaded.tiktok), { message: 'the three platform scripts were requested', timeout: 5000 });
  const id = await page.evaluate(() => window.tandem('track', 'Lead', { value: 1, currency: 'EUR' }));
  await waitForEvents(env.server, (e) => e.event_id === id);
  const state = await page.evaluate(() => ({
    fbqQueue: JSON.stringify((window.fbq && window.fbq.queue || []).map((a) => Array.from(a))),
    dataLayer: JSON.stringify((window.dataLayer || []).map((a) => Array.from(a))),
    ttq: typeof window.ttq,
    pushStatePageViews: window.fbq && window.fbq.disablePushState,
  }));
  assert.ok(state.fbqQueue.includes('"init","333333333333333"'), `fbq init queued: ${state.fbqQueue.slice(0, 300)}`);
  assert.equal(state.pushStatePageViews, true, "fbevents.js's own PageView on pushState is off (Tandem's page() sends it)");
  assert.ok(state.fbqQueue.includes(id), 'the Lead (with its eventID) is queued for fbevents.js');
  assert.ok(state.dataLayer.includes('"config","G-LOADTRUE1"'), `gtag config: ${state.dataLayer.slice(0, 300)}`);
  assert.ok(state.dataLayer.includes(id), 'the Lead is in the dataLayer');
  assert.notEqual(state.ttq, 'undefined');
  assert.deepEqual(offsite, [], 'no other off-site request');
  assert.deepEqual(pageErrors, []);
});

test('Trusted Types enforced: the base code cannot be injected, and the tag carries on (init, PageView, the endpoint)', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({
    stubs: false,
    overrides: {
      meta: { pixelId: '444444444444444', load: true },
      google: { tagId: 'G-TRUSTED01', load: true },
      tiktok: { pixelId: 'CTRUSTED000000000000', load: true },
    },
  });
  const { requested, offsite } = await routeOffsite(context);
  await page.goto(env.url('/fixtures/trusted-types.html'));
  await waitForLoaded(page);
  const pageView = await waitForEvents(env.server, (e) => e.event_name === 'PageView', { count: 1, timeout: 8000 });
  const state = await page.evaluate(() => ({
    fbqQueue: (window.fbq && window.fbq.queue || []).map((a) => Array.from(a)[0]),
    errors: window.__errors.map((e) => e.code),
  }));
  assert.deepEqual(state.fbqQueue.slice(0, 1), ['init'], `Meta's init went to the queueing stub: ${JSON.stringify(state.fbqQueue)}`);
  assert.ok(state.fbqQueue.includes('track'), 'and the PageView after it');
  assert.ok(!state.errors.includes('internal_error'), `no crash: ${state.errors}`);
  assert.deepEqual([...requested, ...offsite], [], 'no platform script, nor anything else off-site, was requested');
  assert.ok(pageView);
  assert.deepEqual(pageErrors, []);
});

test('the ES module passes the page\'s CSP nonce to the platform scripts it injects', needsDist, async () => {
  const { page, context, pageErrors } = await env.newPage({
    stubs: false,
    overrides: { meta: { pixelId: '555555555555555', load: true } },
  });
  const { requested } = await routeOffsite(context);
  await page.goto(env.url('/fixtures/module-nonce.html'));
  await page.waitForFunction(() => window.__ready !== undefined, null, { timeout: 8000 });
  assert.equal(await page.evaluate(() => window.__ready), true, 'the wasm is live under the nonce CSP');
  await waitFor(() => requested.length > 0 && page.evaluate(() => !!(window.__stubLoaded && window.__stubLoaded.meta)), { message: 'fbevents.js ran (it carried the nonce)', timeout: 5000 });
  const nonce = await page.evaluate(() => { const s = [...document.scripts].find((x) => x.src.includes('fbevents.js')); return s && s.nonce; });
  assert.equal(nonce, 'r4nd0mN0nce');
  assert.deepEqual(pageErrors, []);
});
