#!/usr/bin/env node
// `npm run bench`: Tandem against two peer tags, side by side, in headless Chromium.
//
//   node scripts/bench.mjs [--runs 9] [--tracks 1000] [--build | --dist DIR] [--no-write] [--no-route]
//                          [--profile] [--tandem-init JSON]
//
// Tags (one fresh browser context = one cold page load per run and tag, tags interleaved):
//   tandem    dist/tandem.js + dist/tandem_bg.wasm when dist/ is newer than src/, www/loader.js, Cargo.*
//             and scripts/build.mjs, else a private build in target/bench-dist (build time not counted;
//             if that build fails, the stale dist/, labelled as such). The README snippet, meta + google
//             + tiktok configured with load: false and no-op fbq / gtag / ttq on the page (and the
//             _ttp cookie TikTok's pixel would set, on every variant).
//   segment   @segment/analytics-next dist/umd/index.js (window.AnalyticsNext), loaded with its
//             cdnSettings inline so nothing is fetched from cdn.segment.com
//   snowplow  @snowplow/browser-tracker dist/index.umd.min.js (window.snowplowBrowserTracking)
//   none      the same page without a tag: the harness's own floor (timer, yields, observers)
// Every tag sends to this script's own server on 127.0.0.1; any request to another host is
// blocked (page.route + a host-resolver rule) and printed.
//
// Measures: bytes (gzip -9 and brotli q11 of each file the page loaded, and the bytes actually sent,
// gzip-encoded, as Resource Timing saw them); navigation start -> first PageView request to the
// endpoint (Resource Timing startTime), also under DevTools network emulation (50 ms RTT, 10 Mbit/s),
// where a second sequential request costs what it costs over a real network; the CPU time of one
// Purchase track() call (1,000 calls, each
// in its own task, network stubbed to a no-op); main-thread task time per track including the tag's
// asynchronous work (CDP Performance.getMetrics, minus the no-tag page); long tasks; wasm compile and
// instantiate (WebAssembly.* wrapped by the page's first script, so the loader is not modified).
//
// Prints a table, writes the `## Tag` section of BENCHMARKS.md (unless --no-write) and the raw
// figures to target/bench/tag.json. Timings are reported, never asserted: the exit code is 0 unless
// the harness itself broke. No run starts after 200 s (at least 3 are made) and a watchdog ends the
// process after WATCHDOG_MS whatever happens. --profile adds one uncounted Tandem load under the V8
// profiler and prints where the time goes (target/bench/tandem-*.cpuprofile).

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gzipSync, brotliCompressSync, constants as zc } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import { chromium } from 'playwright-core';
import { snippetInit, SLOW, emulateSlowNetwork } from './snippet.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WATCHDOG_MS = 280_000;

// ------------------------------------------------------------------ options

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback;
}
const RUNS = option('runs', 9);
const TRACKS = option('tracks', 1000);
const FORCE_BUILD = process.argv.includes('--build');
const WRITE = !process.argv.includes('--no-write');
const ROUTE = !process.argv.includes('--no-route');
const PROFILE = process.argv.includes('--profile');
// --tandem-init '{"key": ...}': merged into Tandem's init config (to try a setting; the default is the README's).
const TANDEM_INIT = (() => {
  const i = process.argv.indexOf('--tandem-init');
  return i > 0 ? JSON.parse(process.argv[i + 1]) : null;
})();
const log = (...a) => console.error(...a);

// ------------------------------------------------------------------ the build under test

function newestMtime(p) {
  let st;
  try { st = fs.statSync(p); } catch { return 0; }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const name of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, name)));
  return newest;
}

/** dist/ when it is newer than every source it is built from; otherwise a private build. */
function tandemDist() {
  const sources = ['src', 'www/loader.js', 'Cargo.toml', 'Cargo.lock', 'scripts/build.mjs'].map((p) => path.join(ROOT, p));
  const newestSource = Math.max(...sources.map(newestMtime));
  const dist = path.join(ROOT, 'dist');
  const built = ['tandem.js', 'tandem_bg.wasm'].map((f) => newestMtime(path.join(dist, f)));
  const explicit = process.argv.indexOf('--dist');
  if (explicit > 0) return { dir: path.resolve(process.argv[explicit + 1]), note: `${process.argv[explicit + 1]} (--dist)` };
  if (!FORCE_BUILD && Math.min(...built) > 0 && Math.min(...built) >= newestSource) return { dir: dist, note: 'dist/, newer than its sources' };
  // Build into target/bench-dist, not dist/: other people's tests may be reading dist/ right now.
  log(`bench: ${FORCE_BUILD ? '--build' : 'dist/ is missing or older than its sources'}: building into target/bench-dist`);
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--out', 'target/bench-dist'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
    return { dir: path.join(ROOT, 'target', 'bench-dist'), note: 'a fresh build in target/bench-dist' };
  } catch (error) {
    // Sources mid-edit may not compile: measure the last good build rather than nothing, and say so.
    if (Math.min(...built) > 0) {
      const age = new Date(Math.min(...built)).toISOString().replace('T', ' ').slice(0, 19);
      log(`bench: the build failed; measuring the existing dist/ (built ${age} UTC, older than the sources)`);
      return { dir: dist, note: `dist/ built ${age} UTC (the sources had changed since and did not build)` };
    }
    throw error;
  }
}

// ------------------------------------------------------------------ tags

const SEGMENT_DIR = path.join(ROOT, 'node_modules', '@segment', 'analytics-next', 'dist', 'umd');
const SNOWPLOW_FILE = path.join(ROOT, 'node_modules', '@snowplow', 'browser-tracker', 'dist', 'index.umd.min.js');
function pkgVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown'; // someone's npm install may be rewriting node_modules right now
  }
}

const TAGS = ['tandem', 'segment', 'snowplow'];
const VARIANTS = [...TAGS, 'none'];
// The request that carries the PageView, per tag (checked on the server side too).
const ENDPOINT = { tandem: '/collect', segment: '/v1/p', snowplow: '/com.snowplowanalytics.snowplow/tp2' };

// The page's first script: observers, WebAssembly timing, no-op platform stubs, the Purchase data
// and the timing loop. Identical on every variant.
const COMMON_HEAD = String.raw`
<script>
(function () {
  var B = window.__bench = { lt: [], loaf: [], wasm: [], errors: [] };
  performance.setResourceTimingBufferSize(10000);
  window.addEventListener('error', function (e) { B.errors.push(String(e.message)); });
  window.addEventListener('unhandledrejection', function (e) { B.errors.push('unhandled rejection: ' + String(e.reason && e.reason.message || e.reason)); });
  try {
    new PerformanceObserver(function (l) {
      l.getEntries().forEach(function (e) {
        B.lt.push({ start: e.startTime, dur: e.duration, name: e.name, attribution: (e.attribution || []).map(function (a) { return a.containerType + ':' + a.containerSrc + ':' + a.name; }) });
      });
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { B.errors.push('no longtask observer'); }
  try {
    new PerformanceObserver(function (l) {
      l.getEntries().forEach(function (e) {
        B.loaf.push({ start: e.startTime, dur: e.duration, blocking: e.blockingDuration, scripts: (e.scripts || []).map(function (s) { return { src: s.sourceURL, dur: s.duration, invoker: s.invoker }; }) });
      });
    }).observe({ type: 'long-animation-frame', buffered: true });
  } catch (e) { /* older Chromium: long tasks only */ }
  // Wasm compile / instantiate, timed from the outside: the loader calls these on WebAssembly.
  if (typeof WebAssembly === 'object') {
    ['compileStreaming', 'compile', 'instantiate', 'instantiateStreaming'].forEach(function (fn) {
      var orig = WebAssembly[fn];
      if (typeof orig !== 'function') return;
      WebAssembly[fn] = function () {
        var t0 = performance.now();
        return orig.apply(this, arguments).then(function (r) { B.wasm.push({ fn: fn, start: t0, end: performance.now() }); return r; });
      };
    });
  }
  // The site's own fbq / gtag / ttq (load: false): no-ops, so Tandem's three mappings run and cost
  // nothing beyond Tandem itself. Present on every variant.
  var n = 0;
  window.__stubCalls = function () { return n; };
  var fbq = window.fbq = window._fbq = function () { n++; };
  fbq.loaded = true; fbq.version = '2.0'; fbq.queue = []; fbq.push = fbq; fbq.callMethod = fbq;
  window.dataLayer = []; window.gtag = function () { n++; };
  var ttq = []; ['track', 'page', 'identify', 'load', 'instance', 'ready', 'on', 'off', 'once', 'setUserProperties', 'enableCookie', 'disableCookie', 'holdConsent', 'grantConsent', 'revokeConsent'].forEach(function (m) {
    ttq[m] = function () { n++; return ttq; };
  });
  ttq.loaded = true; window.TiktokAnalyticsObject = 'ttq'; window.ttq = ttq;
  // The first-party cookie TikTok's pixel sets on a site that runs it (Tandem sends it with each
  // event for the server's Events API copy); the stub above does not set it itself.
  document.cookie = '_ttp=2kXbenchTtpCookieValue01; path=/; max-age=3600';

  // One Purchase, in canonical form; each tag maps it to its own API inside __benchTrack.
  window.__purchase = function (i) {
    return { value: 49.89, currency: 'EUR', order_id: 'o-' + i, contents: [
      { id: 'sku-1', quantity: 2, price: 19.95, name: 'Blue mug', category: 'Kitchen' },
      { id: 'sku-2', quantity: 1, price: 9.99, name: 'Tea towel', category: 'Kitchen' }] };
  };

  // The network, switchable to a no-op for the track() phase. Installed before any tag runs, so a
  // tag that keeps a reference to fetch (Snowplow does) gets the switch too. Until the switch the
  // calls go straight to the browser's own functions.
  var net = { stub: false, beacon: 0, fetch: 0, bodies: [] };
  var realFetch = window.fetch, realBeacon = navigator.sendBeacon;
  window.fetch = function (input, init) {
    if (!net.stub) return realFetch.call(window, input, init);
    net.fetch++;
    net.bodies.push(init && init.body);
    return Promise.resolve(new Response(null, { status: 204 }));
  };
  navigator.sendBeacon = function (url, data) {
    if (!net.stub) return realBeacon.call(navigator, url, data);
    net.beacon++;
    net.bodies.push(data);
    return true;
  };
  // Events in one request body: Tandem {events: [...]}, Segment one event (or {batch: [...]}),
  // Snowplow tp2 {data: [...]}. Counted after the timed calls, never inside them.
  var counted = 0, events = 0;
  function countEvents() {
    for (; counted < net.bodies.length; counted++) {
      var b = net.bodies[counted], n = 1;
      try {
        var o = JSON.parse(typeof b === 'string' ? b : '');
        n = Array.isArray(o.events) ? o.events.length : Array.isArray(o.batch) ? o.batch.length : Array.isArray(o.data) ? o.data.length : 1;
      } catch (e) { /* not JSON: one event */ }
      events += n;
    }
    return events;
  }

  // 1,000 calls, each in its own task (a MessageChannel hop between calls), with the network
  // stubbed: sendBeacon returns true and fetch resolves a 204 at once, so only the tag's own work
  // is timed. performance.now() around each call (5 us resolution: the page is cross-origin isolated).
  window.__runTracks = async function (count, prefix) {
    var sent = net;
    net.stub = true;
    var ch = new MessageChannel(), wake = null;
    ch.port1.onmessage = function () { var w = wake; wake = null; w(); };
    var hop = function () { return new Promise(function (r) { wake = r; ch.port2.postMessage(0); }); };
    var inputs = [];
    for (var i = 0; i < count; i++) inputs.push(__purchase(prefix + '-' + i));
    var samples = new Array(count);
    var lt0 = B.lt.length;
    var begin = performance.now(), inside = 0;
    for (var j = 0; j < count; j++) {
      await hop();
      var t0 = performance.now();
      __benchTrack(inputs[j]);
      var t1 = performance.now();
      // The timer's readings are multiples of 5 us, but their difference in floating point is not
      // quite (19.9999996 or 20.0000033 for 20 us): rounded to the nanosecond, a median of 20 us
      // compares as 20 with the goal, whichever way the subtraction fell.
      samples[j] = Math.round((t1 - t0) * 1e6) / 1000;
      inside += t1 - t0;
    }
    var loopMs = performance.now() - begin;
    // Let asynchronous work (queues, batching windows, promise chains, storage) finish: every event
    // handed to the network and then 300 ms without a request, at most 5 s.
    var last = -1, quietSince = performance.now(), deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      var now = sent.beacon + sent.fetch;
      if (now !== last) { last = now; quietSince = performance.now(); }
      if (countEvents() >= count && performance.now() - quietSince >= 300) break;
      await new Promise(function (r) { setTimeout(r, 50); });
    }
    return { samples: samples, loopMs: loopMs, insideMs: inside, sent: { beacon: sent.beacon, fetch: sent.fetch, events: countEvents() }, longTasks: B.lt.slice(lt0) };
  };
})();
</script>`;

function tagHead(variant) {
  if (variant === 'tandem') {
    // The README snippet, with the three platforms configured and already on the page (load: false).
    return String.raw`
<script>
${snippetInit('/tag/tandem/tandem_bg.wasm', TANDEM_INIT ? JSON.stringify(TANDEM_INIT) : '')}
window.__benchReady = function () { return !!(window.tandem && window.tandem.loaded === true); };
window.__benchTrack = function (p) { return tandem('track', 'Purchase', p); };
</script>
<script async fetchpriority="high" src="/tag/tandem/tandem.js"></script>`;
  }
  if (variant === 'segment') {
    // analytics.load({ writeKey, cdnURL, cdnSettings }) with the settings inline: no settings fetch.
    // page() is called right after load(), as the snippet does; track() goes to the Analytics
    // instance, which is what window.analytics becomes with the standalone snippet.
    return String.raw`
<script>
window.__segmentInit = function () {
  var host = location.host;
  var browser = window.AnalyticsNext.AnalyticsBrowser.load({
    writeKey: 'BENCHWRITEKEY',
    cdnURL: location.origin + '/tag/segment',
    cdnSettings: { integrations: { 'Segment.io': { apiKey: 'BENCHWRITEKEY', apiHost: host + '/v1', protocol: 'http' } } },
  }, { integrations: { 'Segment.io': { apiHost: host + '/v1', protocol: 'http' } } });
  window.analytics = browser;
  browser.page();
  browser.then(function (r) { window.__segment = r[0]; });
};
window.__benchReady = function () { return !!(window.__segment && window.__segment.initialized); };
window.__benchTrack = function (p) {
  return window.__segment.track('Order Completed', {
    order_id: p.order_id, revenue: p.value, currency: p.currency,
    products: p.contents.map(function (c) { return { product_id: c.id, sku: c.id, name: c.name, category: c.category, price: c.price, quantity: c.quantity }; }),
  });
};
</script>
<script async src="/tag/segment/index.js" onload="__segmentInit()"></script>`;
  }
  if (variant === 'snowplow') {
    // newTracker(...) then trackPageView(); a Purchase is what the Snowplow ecommerce plugin sends:
    // a snowplow_ecommerce_action (type transaction) with transaction and product entities.
    return String.raw`
<script>
window.__snowplowInit = function () {
  var sp = window.snowplowBrowserTracking;
  sp.newTracker('sp', location.origin, { appId: 'bench', platform: 'web', eventMethod: 'post' });
  sp.trackPageView();
  window.__snowplowReady = true;
};
window.__benchReady = function () { return !!window.__snowplowReady; };
var SP_ECOM = 'iglu:com.snowplowanalytics.snowplow.ecommerce/';
window.__benchTrack = function (p) {
  var qty = 0;
  var products = p.contents.map(function (c) { qty += c.quantity; return { schema: SP_ECOM + 'product/jsonschema/1-0-0', data: { id: c.id, name: c.name, category: c.category, price: c.price, currency: p.currency, quantity: c.quantity } }; });
  return window.snowplowBrowserTracking.trackSelfDescribingEvent({
    event: { schema: SP_ECOM + 'snowplow_ecommerce_action/jsonschema/1-0-2', data: { type: 'transaction' } },
    context: [{ schema: SP_ECOM + 'transaction/jsonschema/1-0-0', data: { transaction_id: p.order_id, revenue: p.value, currency: p.currency, payment_method: 'card', total_quantity: qty } }].concat(products),
  });
};
</script>
<script async src="/tag/snowplow/index.umd.min.js" onload="__snowplowInit()"></script>`;
  }
  return String.raw`
<script>
window.__benchReady = function () { return true; };
window.__benchTrack = function (p) { return p; };
</script>`;
}

function pageHtml(variant) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Order confirmed</title>${COMMON_HEAD}${tagHead(variant)}
</head><body><h1>Thank you for your order</h1><p>Bench page (${variant}).</p></body></html>
`;
}

// ------------------------------------------------------------------ files and sizes

function fileInfo(file) {
  const raw = fs.readFileSync(file);
  return {
    file: path.relative(ROOT, file),
    raw,
    gzipBody: gzipSync(raw, { level: 9 }),
    bytes: raw.length,
    gzip: gzipSync(raw, { level: 9 }).length,
    brotli: brotliCompressSync(raw, { params: { [zc.BROTLI_PARAM_QUALITY]: 11, [zc.BROTLI_PARAM_SIZE_HINT]: raw.length } }).length,
  };
}

/** Maps a URL path under /tag/ to a file, snapshotted once (a rebuild mid-run changes nothing). */
function makeFiles(distDir) {
  const cache = new Map();
  const fixed = {
    '/tag/tandem/tandem.js': path.join(distDir, 'tandem.js'),
    '/tag/tandem/tandem_bg.wasm': path.join(distDir, 'tandem_bg.wasm'),
    '/tag/segment/index.js': path.join(SEGMENT_DIR, 'index.js'),
    '/tag/snowplow/index.umd.min.js': SNOWPLOW_FILE,
  };
  for (const [p, f] of Object.entries(fixed)) cache.set(p, fileInfo(f));
  return (urlPath) => {
    if (cache.has(urlPath)) return cache.get(urlPath);
    // Segment's lazily loaded chunks (cdnURL + /analytics-next/bundles/...), if it asks for any.
    const m = urlPath.match(/^\/tag\/segment\/analytics-next\/bundles\/([A-Za-z0-9_.-]+\.js)$/);
    if (m && fs.existsSync(path.join(SEGMENT_DIR, m[1]))) {
      const info = fileInfo(path.join(SEGMENT_DIR, m[1]));
      cache.set(urlPath, info);
      return info;
    }
    return null;
  };
}

// ------------------------------------------------------------------ server

function startBenchServer(files) {
  const hits = []; // endpoint requests: { t (epoch ms), path, size, pageView }
  const unknown = [];
  const isolation = {
    'Cache-Control': 'no-store',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
    'Cross-Origin-Resource-Policy': 'same-origin',
    'Timing-Allow-Origin': '*',
  };
  const server = http.createServer((req, res) => {
    const t = performance.timeOrigin + performance.now();
    const u = new URL(req.url, 'http://x');
    const p = u.pathname;
    const isEndpoint = p === '/collect' || p.startsWith('/v1/') || p.startsWith('/com.snowplowanalytics.snowplow/') || p === '/i';
    if (isEndpoint) {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const pageView = p === '/v1/p' || /"event_name":"PageView"/.test(body) || /"e":"pv"/.test(body) || u.searchParams.get('e') === 'pv';
        hits.push({ t, path: p, size: body.length, pageView });
        res.writeHead(204, isolation);
        res.end();
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, isolation); res.end(); return; }
    let m;
    if ((m = p.match(/^\/page\/(\w+)\.html$/)) && VARIANTS.includes(m[1])) {
      const body = Buffer.from(pageHtml(m[1]));
      res.writeHead(200, { ...isolation, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length });
      res.end(body);
      return;
    }
    if (p === '/favicon.ico') { res.writeHead(204, isolation); res.end(); return; }
    const info = files(p);
    if (!info) { unknown.push(p); res.writeHead(404, isolation); res.end(); return; }
    const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] || ''));
    const body = gz ? info.gzipBody : info.raw;
    res.writeHead(200, {
      ...isolation,
      'Content-Type': p.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8',
      'Content-Length': body.length,
      ...(gz ? { 'Content-Encoding': 'gzip' } : {}),
      Vary: 'Accept-Encoding',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        origin: `http://127.0.0.1:${port}`,
        hits,
        unknown,
        close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
      });
    });
  });
}

// ------------------------------------------------------------------ statistics

const sortNum = (a) => [...a].sort((x, y) => x - y);
function quantile(values, q) {
  const v = sortNum(values.filter((x) => Number.isFinite(x)));
  if (!v.length) return NaN;
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}
const median = (v) => quantile(v, 0.5);
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
// The mean of the fastest 90 %: finer than a median of samples in 5 µs steps, and, as `npm run ab`
// reports it, without the GC pauses and preemptions that are not the tag's.
function fastestMean(values, share = 0.9) {
  const v = sortNum(values.filter((x) => Number.isFinite(x)));
  return v.length ? mean(v.slice(0, Math.max(1, Math.floor(v.length * share)))) : NaN;
}

// ------------------------------------------------------------------ one page load

// Slow loads per tag and run: one load's first beacon moves by ±10 ms with the machine, as much as
// the tags differ by, so the median is taken over three times as many of these (cheap) loads.
const SLOW_PER_RUN = 3;
// The same for the local first PageView: its three tags are within 10 % of one another, so the
// loads of the main runs (one per tag and run) are joined by three quick ones, which measure only
// that time.
const LOCAL_PER_RUN = 3;

/** Only the navigation-start -> first PageView request time, locally or over the emulated slow network. */
async function measureFirstBeacon(browser, server, variant, runIndex, slow) {
  const context = await browser.newContext();
  try {
    context.setDefaultTimeout(15_000);
    if (ROUTE) await context.route((url) => url.protocol !== 'data:' && url.protocol !== 'blob:' && url.host !== `127.0.0.1:${server.port}`, (route) => route.abort('blockedbyclient'));
    const page = await context.newPage();
    if (slow) await emulateSlowNetwork(context, page);
    await page.goto(`${server.origin}/page/${variant}.html?${slow ? 'slow' : 'quick'}=${runIndex}`, { waitUntil: 'load' });
    const ep = ENDPOINT[variant];
    await page.waitForFunction((e) => performance.getEntriesByType('resource').some((r) => new URL(r.name).pathname === e), ep, { polling: 10, timeout: 15_000 });
    return await page.evaluate((e) => {
      const res = performance.getEntriesByType('resource');
      const hit = res.filter((r) => new URL(r.name).pathname === e).sort((a, b) => a.startTime - b.startTime)[0];
      const script = res.find((r) => /^\/tag\/.*\.js$/.test(new URL(r.name).pathname));
      return { variant: location.pathname.split('/').pop().replace('.html', ''), firstBeacon: hit.startTime, scriptReceived: script ? script.responseEnd : null };
    }, ep);
  } finally {
    await context.close().catch(() => {});
  }
}

async function measureLoad(browser, server, variant, runIndex, { tracks: doTracks = true } = {}) {
  const context = await browser.newContext();
  const blocked = [];
  try {
    context.setDefaultTimeout(15_000);
    if (ROUTE) {
      await context.route((url) => url.protocol !== 'data:' && url.protocol !== 'blob:' && url.host !== `127.0.0.1:${server.port}`, (route) => {
        blocked.push(route.request().url());
        return route.abort('blockedbyclient');
      });
    }
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e && e.message || e)));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push('console: ' + m.text()); });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable', { timeDomain: 'threadTicks' }).catch(() => cdp.send('Performance.enable'));

    const hitsBefore = server.hits.length;
    const url = `${server.origin}/page/${variant}.html?run=${runIndex}`;
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(() => window.__benchReady && window.__benchReady(), null, { polling: 10, timeout: 15_000 });
    if (variant !== 'none') {
      const ep = ENDPOINT[variant];
      await page.waitForFunction((e) => performance.getEntriesByType('resource').some((r) => new URL(r.name).pathname === e), ep, { polling: 10, timeout: 15_000 });
    }
    const load = await page.evaluate((ep) => {
      const res = performance.getEntriesByType('resource');
      const hitsToEp = ep ? res.filter((r) => new URL(r.name).pathname === ep).sort((a, b) => a.startTime - b.startTime) : [];
      const tagFiles = res.filter((r) => new URL(r.name).pathname.startsWith('/tag/')).map((r) => ({
        path: new URL(r.name).pathname, start: r.startTime, responseEnd: r.responseEnd,
        transfer: r.transferSize, encoded: r.encodedBodySize, decoded: r.decodedBodySize,
      }));
      const nav = performance.getEntriesByType('navigation')[0];
      return {
        firstBeacon: hitsToEp.length ? hitsToEp[0].startTime : null,
        firstBeaconType: hitsToEp.length ? hitsToEp[0].initiatorType : null,
        tagFiles,
        wasm: window.__bench.wasm.slice(),
        domContentLoaded: nav ? nav.domContentLoadedEventEnd : null,
        loadEvent: nav ? nav.loadEventEnd : null,
        isolated: window.crossOriginIsolated === true,
        errors: window.__bench.errors.slice(),
      };
    }, variant === 'none' ? null : ENDPOINT[variant]);
    const loadHits = server.hits.slice(hitsBefore);

    if (!doTracks) return null; // warm-up

    // Let the page settle (the load's own tasks), then the tracks.
    await page.waitForTimeout(200);
    const ltAfterLoad = await page.evaluate(() => window.__bench.lt.slice());
    const hitsBeforeTracks = server.hits.length;
    const m0 = await cdp.send('Performance.getMetrics');
    const tracks = await page.evaluate(([n, prefix]) => window.__runTracks(n, prefix), [TRACKS, `r${runIndex}`]);
    const m1 = await cdp.send('Performance.getMetrics');
    const metric = (m, name) => (m.metrics.find((x) => x.name === name) || {}).value;
    const taskMs = (metric(m1, 'TaskDuration') - metric(m0, 'TaskDuration')) * 1000;
    const scriptMs = (metric(m1, 'ScriptDuration') - metric(m0, 'ScriptDuration')) * 1000;
    const extra = await page.evaluate(() => ({ loaf: window.__bench.loaf.slice(), stubCalls: window.__stubCalls(), errors: window.__bench.errors.slice() }));
    const trackHits = server.hits.length - hitsBeforeTracks;

    const tagUrlPrefix = `${server.origin}/tag/`;
    return {
      variant,
      run: runIndex,
      loadavg: os.loadavg()[0],
      ...load,
      serverFirstPageView: (() => {
        const pv = loadHits.find((h) => h.pageView);
        return pv ? pv.t : null;
      })(),
      loadHits: loadHits.map((h) => h.path),
      longTasksLoad: ltAfterLoad,
      longTasksTracks: tracks.longTasks,
      loafTag: extra.loaf.filter((f) => f.scripts.some((s) => String(s.src).startsWith(tagUrlPrefix))),
      loafAll: extra.loaf.length,
      track: {
        median: median(tracks.samples), p95: quantile(tracks.samples, 0.95), p99: quantile(tracks.samples, 0.99),
        first: tracks.samples[0], lateMedian: median(tracks.samples.slice(tracks.samples.length >> 1)),
        max: Math.max(...tracks.samples), mean: (tracks.insideMs * 1000) / TRACKS, fastestMean: fastestMean(tracks.samples), loopMs: tracks.loopMs,
        taskMsPerTrack: taskMs / TRACKS, scriptMsPerTrack: scriptMs / TRACKS,
        sent: tracks.sent, serverHitsDuringTracks: trackHits, stubCalls: extra.stubCalls,
      },
      pageErrors: [...pageErrors, ...extra.errors],
      blocked,
    };
  } finally {
    await context.close().catch(() => {});
  }
}

// ------------------------------------------------------------------ --profile (diagnosis only)

/** Self time per function in a CDP cpuprofile, top `n`, for the tag's own files. */
function topSelf(profile, n = 12) {
  const self = new Map();
  const byId = new Map(profile.nodes.map((nd) => [nd.id, nd]));
  const dt = profile.timeDeltas || [];
  (profile.samples || []).forEach((id, i) => {
    const nd = byId.get(id);
    const f = nd.callFrame;
    const file = f.url ? f.url.split('/').pop() : '';
    const key = `${f.functionName || '(anonymous)'} ${file}${f.url ? ':' + (f.lineNumber + 1) : ''}`;
    self.set(key, (self.get(key) || 0) + (dt[i] || 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => `${(v / 1000).toFixed(1).padStart(7)} ms ${((100 * v) / total).toFixed(1).padStart(5)} %  ${k}`);
}

/**
 * One extra Tandem load and 1,000 tracks under the V8 sampling profiler (50 us), after the measured
 * runs: writes target/bench/tandem-{load,track}.cpuprofile (open them in Chrome DevTools) and prints
 * where the time goes. The profiler slows everything down; these runs are not in the figures.
 */
async function profileTandem(browser, server) {
  const context = await browser.newContext();
  try {
    await context.route((url) => url.host !== `127.0.0.1:${server.port}`, (route) => route.abort('blockedbyclient'));
    const page = await context.newPage();
    // A same-origin page first, so the session's renderer is the one the measured page will use.
    await page.goto(`${server.origin}/page/none.html?profile=warm`, { waitUntil: 'load' });
    const cdp = await context.newCDPSession(page);
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
    await cdp.send('Profiler.start');
    await page.goto(`${server.origin}/page/tandem.html?profile=1`, { waitUntil: 'load' });
    await page.waitForFunction(() => window.__benchReady && window.__benchReady(), null, { polling: 10, timeout: 15_000 });
    await page.waitForTimeout(200);
    const load = (await cdp.send('Profiler.stop')).profile;
    await cdp.send('Profiler.start');
    await page.evaluate(([n]) => window.__runTracks(n, 'profile'), [TRACKS]);
    const track = (await cdp.send('Profiler.stop')).profile;
    const dir = path.join(ROOT, 'target', 'bench');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tandem-load.cpuprofile'), JSON.stringify(load));
    fs.writeFileSync(path.join(dir, 'tandem-track.cpuprofile'), JSON.stringify(track));
    console.log('\nprofile, Tandem page load (self time, top 12):\n' + topSelf(load).join('\n'));
    console.log(`\nprofile, Tandem ${TRACKS} tracks (self time, top 12):\n` + topSelf(track).join('\n'));
    console.log('written: target/bench/tandem-load.cpuprofile, target/bench/tandem-track.cpuprofile');
  } finally {
    await context.close().catch(() => {});
  }
}

// ------------------------------------------------------------------ formatting

const fmt = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? '—' : Number(v).toFixed(digits));
const kb = (b) => (b / 1000).toFixed(1) + ' KB';
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? (a / b).toFixed(2) + '×' : '—');

function table(rows, header) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
  return [line(header), '| ' + widths.map((w) => '-'.repeat(w)).join(' | ') + ' |', ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------ main

async function main() {
  const dist = tandemDist(); // a build, when one is needed, is not counted in the time budget
  const started = Date.now();
  const versions = {
    playwright: pkgVersion('playwright-core'),
    segment: pkgVersion('@segment/analytics-next'),
    snowplow: pkgVersion('@snowplow/browser-tracker'),
    tandem: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
  };
  const files = makeFiles(dist.dir);
  const server = await startBenchServer(files);
  let browser = null;
  const watchdog = setTimeout(async () => {
    log(`bench: the harness ran longer than ${WATCHDOG_MS / 1000} s; stopping`);
    try { if (browser) await browser.close(); } catch { /* ignore */ }
    try { await server.close(); } catch { /* ignore */ }
    process.exit(2);
  }, WATCHDOG_MS);
  const stop = async (sig) => {
    log(`bench: ${sig}`);
    try { if (browser) await browser.close(); } catch { /* ignore */ }
    await server.close().catch(() => {});
    process.exit(130);
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));

  const loadStart = os.loadavg();
  const results = [];
  const slowResults = [];
  const quickResults = [];
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync',
        // Belt and braces: no name but 127.0.0.1 resolves, whatever page.route lets through.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
    });
    const chromiumVersion = browser.version();
    log(`bench: Chromium ${chromiumVersion}, ${RUNS} runs × ${VARIANTS.length} pages, ${TRACKS} tracks each, tandem from ${dist.note}; load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`);

    // One warm-up load per variant (not counted): the first page of a fresh browser pays for
    // process start-up, which would otherwise fall on whichever tag comes first.
    for (const v of VARIANTS) await measureLoad(browser, server, v, -1, { tracks: false });
    for (const v of TAGS) await measureFirstBeacon(browser, server, v, -1, true);

    let runsDone = 0;
    for (let run = 0; run < RUNS; run++) {
      // Stay well inside the watchdog on a busy machine: after 3 runs, start no run past 200 s.
      if (run >= 3 && Date.now() - started > 200_000) {
        log(`bench: stopping after ${run} runs (200 s budget); the figures below are medians of ${run}`);
        break;
      }
      runsDone = run + 1;
      const order = VARIANTS.map((_, i) => VARIANTS[(i + run) % VARIANTS.length]); // rotate: interleaved
      for (const v of order) {
        const r = await measureLoad(browser, server, v, run);
        results.push(r);
        log(`  run ${run + 1}/${RUNS} ${v.padEnd(8)} first beacon ${fmt(r.firstBeacon)} ms, track median ${fmt(r.track.median)} µs, task ${fmt(r.track.taskMsPerTrack * 1000)} µs/track, long tasks ${r.longTasksLoad.length}+${r.longTasksTracks.length}, load ${r.loadavg.toFixed(2)}`);
      }
      const line = [];
      for (let k = 0; k < SLOW_PER_RUN; k++) {
        const slowOrder = TAGS.map((_, i) => TAGS[(i + run + k) % TAGS.length]);
        for (const v of slowOrder) {
          const r = await measureFirstBeacon(browser, server, v, run * SLOW_PER_RUN + k, true);
          slowResults.push(r);
          line.push(`${v} ${fmt(r.firstBeacon)} ms`);
        }
      }
      log(`  run ${run + 1}/${RUNS} slow network: first beacon ${line.join(', ')}`);
      line.length = 0;
      for (let k = 0; k < LOCAL_PER_RUN; k++) {
        const quickOrder = TAGS.map((_, i) => TAGS[(i + run + k + 1) % TAGS.length]);
        for (const v of quickOrder) {
          const r = await measureFirstBeacon(browser, server, v, run * LOCAL_PER_RUN + k, false);
          quickResults.push(r);
          line.push(`${v} ${fmt(r.firstBeacon)} ms`);
        }
      }
      log(`  run ${run + 1}/${RUNS} quick loads: first beacon ${line.join(', ')}`);
    }
    const loadEnd = os.loadavg();
    if (PROFILE) await profileTandem(browser, server);
    await browser.close();
    browser = null;

    // -------------------------------------------------------------- aggregate
    const by = (v) => results.filter((r) => r.variant === v);
    // Every local first-PageView time of a tag: its main loads' and its quick loads'.
    const beacons = (v) => by(v).map((r) => ({ firstBeacon: r.firstBeacon, scriptReceived: (r.tagFiles.find((f) => /\.js$/.test(f.path)) || {}).responseEnd }))
      .concat(quickResults.filter((r) => r.variant === v));
    const agg = {};
    for (const v of VARIANTS) {
      const rs = by(v);
      const local = beacons(v);
      const firstRun = rs[0];
      const loadedPaths = [...new Set(rs.flatMap((r) => r.tagFiles.map((f) => f.path)))];
      const fileRows = loadedPaths.map((p) => files(p)).filter(Boolean);
      const wasm = rs.map((r) => {
        const c = r.wasm.find((w) => w.fn === 'compileStreaming' || w.fn === 'compile');
        const i = r.wasm.find((w) => w.fn === 'instantiate');
        const loaderFile = r.tagFiles.find((f) => f.path.endsWith('/tandem.js'));
        const wasmFile = r.tagFiles.find((f) => f.path.endsWith('.wasm'));
        return c && i ? { compile: c.end - c.start, afterBody: wasmFile ? c.end - wasmFile.responseEnd : NaN, instantiate: i.end - i.start, loaderToLive: loaderFile ? i.end - loaderFile.responseEnd : NaN, liveToBeacon: (r.firstBeacon ?? NaN) - i.end, via: c.fn } : null;
      }).filter(Boolean);
      agg[v] = {
        runs: rs.length,
        files: fileRows.map((f) => ({ file: f.file, bytes: f.bytes, gzip: f.gzip, brotli: f.brotli })),
        gzip: fileRows.reduce((a, f) => a + f.gzip, 0),
        brotli: fileRows.reduce((a, f) => a + f.brotli, 0),
        raw: fileRows.reduce((a, f) => a + f.bytes, 0),
        wireEncoded: firstRun ? firstRun.tagFiles.reduce((a, f) => a + f.encoded, 0) : 0,
        wireTransfer: firstRun ? firstRun.tagFiles.reduce((a, f) => a + f.transfer, 0) : 0,
        requests: firstRun ? firstRun.tagFiles.length : 0,
        firstBeacon: median(local.map((r) => r.firstBeacon ?? NaN)),
        firstBeaconMin: Math.min(...local.map((r) => r.firstBeacon ?? Infinity)),
        firstBeaconMax: Math.max(...local.map((r) => r.firstBeacon ?? -Infinity)),
        firstBeaconAll: local.map((r) => r.firstBeacon),
        scriptReceived: median(local.map((r) => r.scriptReceived ?? NaN)),
        bootToBeacon: median(local.map((r) => (r.firstBeacon ?? NaN) - (r.scriptReceived ?? NaN))),
        firstBeaconType: firstRun && firstRun.firstBeaconType,
        trackMedian: median(rs.map((r) => r.track.median)),
        trackP95: median(rs.map((r) => r.track.p95)),
        trackFirst: median(rs.map((r) => r.track.first)),
        trackLateMedian: median(rs.map((r) => r.track.lateMedian)),
        trackMean: median(rs.map((r) => r.track.mean)),
        trackFastestMean: median(rs.map((r) => r.track.fastestMean)),
        taskPerTrackUs: median(rs.map((r) => r.track.taskMsPerTrack * 1000)),
        scriptPerTrackUs: median(rs.map((r) => r.track.scriptMsPerTrack * 1000)),
        longTasksLoad: rs.reduce((a, r) => a + r.longTasksLoad.length, 0),
        longTasksTracks: rs.reduce((a, r) => a + r.longTasksTracks.length, 0),
        longTaskMaxMs: Math.max(0, ...rs.flatMap((r) => [...r.longTasksLoad, ...r.longTasksTracks].map((t) => t.dur))),
        loafTag: rs.reduce((a, r) => a + r.loafTag.length, 0),
        wasmCompile: wasm.length ? median(wasm.map((w) => w.compile)) : NaN,
        wasmAfterBody: wasm.length ? median(wasm.map((w) => w.afterBody)) : NaN,
        wasmInstantiate: wasm.length ? median(wasm.map((w) => w.instantiate)) : NaN,
        wasmTotal: wasm.length ? median(wasm.map((w) => w.compile + w.instantiate)) : NaN,
        wasmLoaderToLive: wasm.length ? median(wasm.map((w) => w.loaderToLive)) : NaN,
        wasmVia: wasm.length ? wasm[0].via : null,
        wasmLiveToBeacon: wasm.length ? median(wasm.map((w) => w.liveToBeacon)) : NaN,
        sent: rs.map((r) => r.track.sent.beacon + r.track.sent.fetch),
        sentEvents: rs.map((r) => r.track.sent.events),
        serverHitsDuringTracks: rs.reduce((a, r) => a + r.track.serverHitsDuringTracks, 0),
        stubCalls: firstRun ? firstRun.track.stubCalls : 0,
        isolated: rs.every((r) => r.isolated),
        errors: [...new Set(rs.flatMap((r) => r.pageErrors))],
        blocked: rs.flatMap((r) => r.blocked),
        loadHits: firstRun ? firstRun.loadHits : [],
        serverFirstPageView: median(rs.map((r) => r.serverFirstPageView ?? NaN)),
        slowFirstBeacon: median(slowResults.filter((r) => r.variant === v).map((r) => r.firstBeacon)),
        slowScriptReceived: median(slowResults.filter((r) => r.variant === v).map((r) => r.scriptReceived ?? NaN)),
        slowFirstBeaconAll: slowResults.filter((r) => r.variant === v).map((r) => r.firstBeacon),
      };
    }
    const base = agg.none;
    for (const v of TAGS) agg[v].taskPerTrackNetUs = agg[v].taskPerTrackUs - base.taskPerTrackUs;

    const machine = {
      date: new Date().toISOString().slice(0, 10),
      time: new Date().toISOString(),
      cpus: os.cpus().length,
      cpuModel: (os.cpus()[0] || {}).model || 'unknown',
      memGB: (os.totalmem() / 2 ** 30).toFixed(1),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      chromium: chromiumVersion,
      playwright: versions.playwright,
      loadStart, loadEnd,
      loadRange: [Math.min(...results.map((r) => r.loadavg)), Math.max(...results.map((r) => r.loadavg))],
      tandemVersion: versions.tandem,
      tandemFrom: dist.note + (TANDEM_INIT ? `, init config plus ${JSON.stringify(TANDEM_INIT)}` : ''),
      segmentVersion: versions.segment,
      snowplowVersion: versions.snowplow,
      runs: runsDone, tracks: TRACKS, route: ROUTE,
      seconds: ((Date.now() - started) / 1000).toFixed(0),
    };

    // -------------------------------------------------------------- table
    const T = agg.tandem, S = agg.segment, P = agg.snowplow, N = agg.none;
    const row = (name, get, f, goal = '') => [name, f(get(T)), f(get(S)), f(get(P)), ratio(get(T), get(S)), ratio(get(T), get(P)), goal];
    const us = (v) => fmt(v, 1) + ' µs';
    const ms = (v) => fmt(v, 1) + ' ms';
    const int = (v) => String(v);
    const header = ['metric', 'tandem', 'segment', 'snowplow', 'tandem÷segment', 'tandem÷snowplow', 'goal'];
    const fastestPeerBeacon = Math.min(S.firstBeacon, P.firstBeacon);
    const verdict = (ok) => (ok ? 'met' : 'not met');
    const rows = [
      row('bytes loaded, gzip -9 (files)', (a) => a.gzip, kb),
      row('bytes loaded, brotli q11 (files)', (a) => a.brotli, kb),
      row('bytes on the wire (gzip as served, body)', (a) => a.wireEncoded, kb),
      row('bytes uncompressed', (a) => a.raw, kb),
      row('requests for the tag', (a) => a.requests, int),
      row(`first PageView request, median of ${runsDone * (1 + LOCAL_PER_RUN)} (ms after navigation start)`, (a) => a.firstBeacon, ms,
        `≤ fastest peer: ${verdict(T.firstBeacon <= fastestPeerBeacon)}`),
      row('  of which: tag script received (responseEnd)', (a) => a.scriptReceived, ms),
      row('  of which: script received → first PageView request', (a) => a.bootToBeacon, ms),
      row('  (min … max)', (a) => [a.firstBeaconMin, a.firstBeaconMax], (v) => `${fmt(v[0])} … ${fmt(v[1])}`).map((c, i) => (i === 4 || i === 5 ? '' : c)),
      row(`first PageView request, ${SLOW.latency} ms RTT + ${SLOW.downKbit / 1000} Mbit/s emulated, median of ${runsDone * SLOW_PER_RUN}`, (a) => a.slowFirstBeacon, ms,
        `≤ fastest peer: ${verdict(T.slowFirstBeacon <= Math.min(S.slowFirstBeacon, P.slowFirstBeacon))}`),
      row('  of which: tag script received (responseEnd)', (a) => a.slowScriptReceived, ms),
      row(`track() Purchase, median of ${TRACKS} calls (µs)`, (a) => a.trackMedian, us, `≤ 20 µs: ${verdict(T.trackMedian <= 20)}`),
      row('track() p95', (a) => a.trackP95, us),
      // What a page that tracks one conversion pays: the first call, with its code not yet
      // compiled or optimised (wasm functions are compiled on their first call, JS is interpreted).
      row('track() first call on the page, median of the runs', (a) => a.trackFirst, us),
      // The second half alone: the engines have optimised the code most called by then.
      row(`track() median of the last ${TRACKS - (TRACKS >> 1)} calls`, (a) => a.trackLateMedian, us),
      row('track() mean (sum of the timed calls ÷ 1,000)', (a) => a.trackMean, us),
      row('track() mean of the fastest 90 % (no 5 µs step, no GC pause)', (a) => a.trackFastestMean, us),
      row('main-thread task time per track incl. async work, minus no-tag page', (a) => a.taskPerTrackNetUs, us),
      row(`long tasks > 50 ms during load, all ${runsDone} runs`, (a) => a.longTasksLoad, int, `none: ${verdict(T.longTasksLoad + T.longTasksTracks === 0)}`),
      row(`long tasks > 50 ms during the tracks, all ${runsDone} runs`, (a) => a.longTasksTracks, int),
      row('  longest of those', (a) => a.longTaskMaxMs, (v) => (v > 0 ? ms(v) : '—')),
      row('long animation frames > 50 ms with a tag script in them', (a) => a.loafTag, int),
      ['wasm compile (compileStreaming, from the snippet\'s call: incl. the download)', ms(T.wasmCompile), 'n/a', 'n/a', '', '', ''],
      ['  of which: wasm received → compiled', ms(T.wasmAfterBody), 'n/a', 'n/a', '', '', ''],
      ['wasm instantiate', ms(T.wasmInstantiate), 'n/a', 'n/a', '', '', ''],
      ['wasm compile + instantiate', ms(T.wasmTotal), 'n/a', 'n/a', '', '', ''],
      ['loader downloaded → instance live', ms(T.wasmLoaderToLive), 'n/a', 'n/a', '', '', ''],
      ['instance live → first PageView request', ms(T.wasmLiveToBeacon), 'n/a', 'n/a', '', '', ''],
    ];
    const floorRows = [
      ['no-tag page (harness floor)', `track() median ${us(N.trackMedian)}, p95 ${us(N.trackP95)}; task time ${us(N.taskPerTrackUs)} per call; long tasks ${N.longTasksLoad} + ${N.longTasksTracks}`],
    ];
    const text = table(rows, header);
    console.log(`\nTag benchmark, ${machine.time}: ${machine.cpus} × ${machine.cpuModel}, Chromium ${machine.chromium}, load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} → ${loadEnd.map((x) => x.toFixed(2)).join(' ')}\n`);
    console.log(text);
    console.log(`\n${floorRows.map((r) => r.join(': ')).join('\n')}`);

    // Sanity: what the harness saw, so a broken tag cannot pass for a fast one.
    const notes = [];
    for (const v of TAGS) {
      const a = agg[v];
      const evMin = Math.min(...a.sentEvents);
      notes.push(`${v}: first PageView went by ${a.firstBeaconType}; endpoint requests during load: ${a.loadHits.join(', ') || 'none'}; during the tracks ${evMin === Math.max(...a.sentEvents) ? evMin : `${evMin}…${Math.max(...a.sentEvents)}`} events in ${Math.min(...a.sent)}…${Math.max(...a.sent)} requests per run reached the network stubs (the server saw ${a.serverHitsDuringTracks})${v === 'tandem' ? `; fbq/gtag/ttq calls in run 1: ${a.stubCalls}` : ''}`);
      if (evMin < TRACKS) notes.push(`WARNING ${v}: fewer than ${TRACKS} events reached the network in some run (${evMin})`);
      if (a.errors.length) notes.push(`${v}: page errors: ${a.errors.slice(0, 5).join(' | ')}`);
    }
    const blocked = VARIANTS.flatMap((v) => agg[v].blocked.map((u) => `${v}: ${u}`));
    notes.push(blocked.length ? `blocked non-local requests (${blocked.length}): ${[...new Set(blocked)].slice(0, 10).join(', ')}` : 'blocked non-local requests: none');
    if (server.unknown.length) notes.push(`unknown paths requested: ${[...new Set(server.unknown)].join(', ')}`);
    if (!agg.tandem.isolated) notes.push('WARNING: pages were not cross-origin isolated; performance.now() is coarsened to 100 µs');
    console.log('\n' + notes.join('\n'));
    console.log(`\n${machine.seconds} s (build excluded); Tandem from ${machine.tandemFrom}.`);

    fs.mkdirSync(path.join(ROOT, 'target', 'bench'), { recursive: true });
    const jsonPath = path.join(ROOT, 'target', 'bench', 'tag.json');
    fs.writeFileSync(jsonPath, JSON.stringify({ machine, agg, results, slowResults, quickResults }, null, 1));
    console.log(`raw figures: ${path.relative(ROOT, jsonPath)}`);

    if (WRITE) {
      writeMarkdown({ machine, agg, text, floorRows, notes });
      console.log('BENCHMARKS.md: ## Tag updated');
    }
  } finally {
    clearTimeout(watchdog);
    if (browser) await browser.close().catch(() => {});
    await server.close();
  }
}

// ------------------------------------------------------------------ BENCHMARKS.md

function writeMarkdown({ machine, agg, text, floorRows, notes }) {
  const T = agg.tandem;
  const files = (v) => agg[v].files.map((f) => `\`${f.file}\` ${f.bytes} B (gzip ${f.gzip}, brotli ${f.brotli})`).join(' + ');
  const section = `## Tag

\`npm run bench\` (= \`node scripts/bench.mjs\`). Headless Chromium loads one page per tag, each in a fresh
browser context (cold: no HTTP cache, no storage), from a local server on 127.0.0.1 that also is every tag's
endpoint; ${machine.runs} runs, the tags interleaved (the order rotates each run), after one uncounted warm-up
load each. Medians over the runs. Figures move with the machine's load: read ratios, not absolute values.

Run of ${machine.date}: ${machine.cpus} vCPUs (${machine.cpuModel}), ${machine.memGB} GB, ${machine.os}, Chromium ${machine.chromium}
(playwright-core ${machine.playwright}), Node ${machine.node}; load average ${machine.loadStart.map((x) => x.toFixed(2)).join(' / ')} (1/5/15 min)
at the start, 1-min load ${machine.loadRange[0].toFixed(2)}–${machine.loadRange[1].toFixed(2)} during the runs, on a machine shared with other
engineers' builds and tests. Tandem ${machine.tandemVersion} from ${machine.tandemFrom}; @segment/analytics-next ${machine.segmentVersion},
@snowplow/browser-tracker ${machine.snowplowVersion}; ${machine.tracks} track() calls per run.

${text}

Ratios are tandem ÷ peer (below 1 is better for Tandem). ${floorRows.map((r) => r.join(': ')).join('. ')}.
Goals: first PageView request no later than the fastest peer — ${T.firstBeacon <= Math.min(agg.segment.firstBeacon, agg.snowplow.firstBeacon) ? 'met' : 'not met'};
track() median ≤ 20 µs — ${T.trackMedian <= 20 ? 'met' : 'not met'}; no long task — ${T.longTasksLoad + T.longTasksTracks === 0 ? 'met' : 'not met'}.

What each tag is:
- **tandem**: the README snippet (meta, google and tiktok configured, \`load: false\`, with no-op \`fbq\` /
  \`gtag\` / \`ttq\` on the page so all three mappings run, plus the endpoint; the page carries the \`_ttp\`
  cookie TikTok's pixel would have set, on every variant), \`<script async>\` of ${files('tandem')}.
- **segment**: ${files('segment')}, i.e. the UMD build that exposes \`AnalyticsNext\`, loaded with
  \`AnalyticsBrowser.load({ writeKey, cdnURL, cdnSettings })\` so that the settings are inline and nothing is
  fetched from cdn.segment.com; then \`page()\`, and \`track('Order Completed', { order_id, revenue, currency,
  products })\` on the instance. Segment's snippet loads \`dist/umd/standalone.js\` instead (31.3 KB gzip -9), which
  cannot take inline settings and fetches \`cdn.segment.com/v1/projects/<key>/settings\` before its first event;
  the two bundles are the same code within 1.3 KB gzip. Only the Segment.io destination is on (no fan-out to
  the pixels, which Tandem does).
- **snowplow**: ${files('snowplow')} (the package's minified UMD, \`window.snowplowBrowserTracking\`; the package
  has no snippet-style sp.js), \`newTracker('sp', origin, { eventMethod: 'post' })\`, \`trackPageView()\`, and a
  Purchase as the Snowplow ecommerce plugin would send it: a self-describing \`snowplow_ecommerce_action\`
  (type transaction) with a transaction entity and two product entities. Defaults otherwise (cookies,
  localStorage event queue, web page context).
- **no tag**: the same page without a tag, the floor of every measurement.

Method:
- *Bytes*: every file the page loaded from the tag's directory, compressed here with gzip -9 and brotli
  (quality 11); the "on the wire" row is the sum of Resource Timing \`encodedBodySize\` in the first run: the
  server sends gzip -9 when asked (Chromium does not offer brotli over plain http). Inline snippets are not counted.
- *First PageView request*: \`startTime\` of the first Resource Timing entry for the tag's endpoint path
  (\`/collect\`, \`/v1/p\`, \`/com.snowplowanalytics.snowplow/tp2\`), i.e. ms from navigation start
  (\`performance.timeOrigin\`); the server checks that request is the PageView. Each run adds ${LOCAL_PER_RUN}
  quick loads per tag (a fresh context, the page loaded, that time read, nothing else) to its main load,
  so the median is of ${1 + LOCAL_PER_RUN} times as many loads; the "of which" rows are over the same loads.
- *track()*: after load, ${machine.tracks} Purchases (distinct order ids), each call in its own task, \`performance.now()\`
  around the call (pages are cross-origin isolated, so the timer has 5 µs resolution: medians are multiples of
  ~5 µs; the mean rows have no such step, and the mean of the fastest 90 % leaves out GC pauses and preemptions). The network is stubbed for this phase on every page: \`sendBeacon\` returns
  true and \`fetch\` resolves a 204 at once (the harness checks each tag sent ${machine.tracks} events to the stubs).
  Segment and Snowplow do part of their work after \`track()\` returns (promise chains, queue, storage); the
  "task time" row counts it: CDP \`Performance.getMetrics\` TaskDuration over the ${machine.tracks} calls and the quiet
  period after them, per call, minus the same on the no-tag page.
- *Long tasks*: \`PerformanceObserver('longtask')\` from the page's first script through load and the tracks;
  long animation frames (> 50 ms) are counted only when one of the tag's scripts ran in them. Both are wall
  clock: on an oversubscribed machine a short task that loses the CPU becomes a long one, so compare with the
  load average above before reading a count as the tag's.
- *Slow network*: the same first-PageView measurement under DevTools network emulation (${SLOW.latency} ms added to
  every request, ${SLOW.downKbit / 1000} Mbit/s down, ${SLOW.upKbit / 1000} Mbit/s up), ${SLOW_PER_RUN} loads per tag and run, the order rotating. On 127.0.0.1 a second
  sequential request (Tandem's wasm) is nearly free; over a real network it costs a round trip.
- *Wasm*: the page's first script wraps \`WebAssembly.compileStreaming\` / \`compile\` / \`instantiate\` and times
  each promise (the loader is unchanged). The snippet's second line starts the compilation (\`tandem.compiled\`),
  so compile runs from that call, before the loader has arrived, and includes receiving the body, since
  compilation streams; "wasm received → compiled" is what is left of it after the body's last byte.
  "Instance live → first PageView request" is the rest: the loader replaying its queue, the first calls into
  the wasm, and any wait before the tag sends.
- Requests to any host but 127.0.0.1 are aborted (\`page.route\`) and listed below; none is expected.

Checks from this run:
${notes.map((n) => `- ${n}`).join('\n')}
`;
  const mdPath = path.join(ROOT, 'BENCHMARKS.md');
  let md = fs.existsSync(mdPath) ? fs.readFileSync(mdPath, 'utf8') : '# Benchmarks\n';
  const start = md.search(/^## Tag\s*$/m);
  if (start >= 0) {
    const rest = md.slice(start + 1);
    const next = rest.search(/^## /m);
    const end = next >= 0 ? start + 1 + next : md.length;
    md = md.slice(0, start) + section + (next >= 0 ? '\n' + md.slice(end) : '');
  } else {
    md = md.replace(/\s*$/, '\n\n') + section;
  }
  fs.writeFileSync(mdPath, md);
}

main().then(() => process.exit(0), (error) => {
  console.error('bench: the harness failed:', error && error.stack || error);
  process.exit(1);
});
