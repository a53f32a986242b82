#!/usr/bin/env node
// `npm run startup -- DIR [DIR ...]`: where a page's time goes from the loader's arrival to the
// first PageView request, and what the first track() costs, for one or more builds of the tag.
//
//   node scripts/startup.mjs dist [tmp/other-build] [--loads 16] [--js-flags "--no-wasm-lazy-compilation"] [--slow]
//
// Each load is a fresh browser context on a local page with the README snippet (meta, google and
// tiktok configured, load: false, no-op fbq / gtag / ttq), whose second line fetches and compiles
// the wasm. The page's first script stamps the stages from the outside (the loader is not
// modified): the loader's first and last statement (wrapped around it by this server), the fetch
// of the wasm (the snippet's; a build older than tandem.compiled fetches it again) and when it resolves,
// WebAssembly.compileStreaming and instantiate, the first platform call of init, the endpoint
// fetch; Resource Timing gives the network side. After load and 300 ms, one Purchase is timed,
// then a second one and an identify(), each in a later task. Builds alternate load by load, in
// an order that rotates. Prints medians (the first load of each build is a warm-up, not counted).
// Timings are printed, never asserted; bounded by a watchdog. --js-flags passes V8 flags to
// Chromium, for experiments such as the one in BENCHMARKS.md (eager wasm compilation). --slow
// loads every page over `npm run bench`'s emulated slow network (`SLOW` in scripts/snippet.mjs:
// 50 ms added to each request, 10 Mbit/s down, 5 up), where the first PageView waits on the
// bytes rather than the CPU.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { snippetInit, SLOW, emulateSlowNetwork } from './snippet.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WATCHDOG_MS = 300_000;
setTimeout(() => { console.error('startup: watchdog: giving up after ' + WATCHDOG_MS / 1000 + ' s'); process.exit(2); }, WATCHDOG_MS).unref();

const argv = process.argv.slice(2);
function option(name) {
  const i = argv.indexOf('--' + name);
  if (i < 0) return undefined;
  const value = argv[i + 1];
  argv.splice(i, 2);
  return value;
}
const loads = Math.max(2, Number(option('loads')) || 16);
const jsFlags = option('js-flags');
const slowAt = argv.indexOf('--slow');
const slow = slowAt >= 0;
if (slow) argv.splice(slowAt, 1);
const dirs = argv.map((d) => path.resolve(d));
if (!dirs.length || dirs.some((d) => !fs.existsSync(path.join(d, 'tandem.js')) || !fs.existsSync(path.join(d, 'tandem_bg.wasm')))) {
  console.error('usage: node scripts/startup.mjs DIR [DIR ...] [--loads N] [--js-flags FLAGS] [--slow]  (each DIR a build: tandem.js + tandem_bg.wasm)');
  process.exit(2);
}

const PAGE = String.raw`<!doctype html><html><head><meta charset="utf-8"><script>
var T = window.__startup = {};
function stamp(k) { if (!(k in T)) T[k] = performance.now(); }
['compileStreaming', 'instantiate'].forEach(function (fn) {
  var orig = WebAssembly[fn];
  WebAssembly[fn] = function () { var t0 = performance.now(); return orig.apply(this, arguments).then(function (r) { T[fn] = [t0, performance.now()]; return r; }); };
});
var fbq = window.fbq = window._fbq = function () { stamp('platform'); };
fbq.loaded = true; fbq.version = '2.0'; fbq.queue = []; fbq.push = fbq; fbq.callMethod = fbq;
window.dataLayer = []; window.gtag = function () { stamp('platform'); };
var ttq = []; ['track', 'page', 'identify', 'load', 'instance', 'ready', 'on', 'off', 'once', 'setUserProperties', 'enableCookie', 'disableCookie', 'holdConsent', 'grantConsent', 'revokeConsent'].forEach(function (m) { ttq[m] = function () { stamp('platform'); return ttq; }; });
ttq.loaded = true; window.TiktokAnalyticsObject = 'ttq'; window.ttq = ttq;
document.cookie = '_ttp=2kXstartupTtpCookieValue1; path=/; max-age=3600';
var realFetch = window.fetch;
window.fetch = function (input, init) {
  var wasm = String(input).indexOf('/collect') < 0;
  stamp(wasm ? 'wasmFetch' : 'endpointFetch');
  var p = realFetch.call(window, input, init);
  if (wasm) p.then(function () { stamp('wasmResponse'); }, function () {});
  return p;
};
window.__purchase = function (i) {
  return { value: 49.89, currency: 'EUR', order_id: 'o-' + i, contents: [
    { id: 'sku-1', quantity: 2, price: 19.95, name: 'Blue mug', category: 'Kitchen' },
    { id: 'sku-2', quantity: 1, price: 9.99, name: 'Tea towel', category: 'Kitchen' }] };
};
</script><script>
${snippetInit('/tag/BUILD/tandem_bg.wasm')}
</script>
<script async fetchpriority="high" src="/tag/BUILD/tandem.js"></script></head><body>startup</body></html>`;

const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin', 'Cache-Control': 'no-store' };
const files = new Map();
function served(build, name) {
  const key = build + '/' + name;
  if (!files.has(key)) {
    let body = fs.readFileSync(path.join(dirs[build], name));
    // The loader's first and last statement, stamped from outside.
    if (name === 'tandem.js') body = Buffer.concat([Buffer.from('window.__startup.loaderStart=performance.now();'), body, Buffer.from('\n;window.__startup.loaderEnd=performance.now();')]);
    files.set(key, zlib.gzipSync(body, { level: 9 }));
  }
  return files.get(key);
}
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/collect') { req.resume(); req.on('end', () => { res.writeHead(204, headers); res.end(); }); return; }
  const tag = /^\/tag\/(\d+)\/(tandem\.js|tandem_bg\.wasm)$/.exec(url.pathname);
  if (tag && Number(tag[1]) < dirs.length) {
    res.writeHead(200, { ...headers, 'Content-Type': tag[2].endsWith('.wasm') ? 'application/wasm' : 'text/javascript', 'Content-Encoding': 'gzip' });
    res.end(served(Number(tag[1]), tag[2]));
    return;
  }
  const build = /^\/page\/(\d+)$/.exec(url.pathname);
  if (build) { res.writeHead(200, { ...headers, 'Content-Type': 'text/html' }); res.end(PAGE.replaceAll('BUILD', build[1])); return; }
  res.writeHead(404, headers); res.end();
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [...(jsFlags ? ['--js-flags=' + jsFlags] : []), '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const rows = dirs.map(() => []);
try {
  for (let i = 0; i < loads; i++) {
    for (let k = 0; k < dirs.length; k++) {
      // The order rotates from load to load: the same build always loading first was favoured.
      const b = (k + i) % dirs.length;
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        if (slow) await emulateSlowNetwork(context, page);
        await page.goto(`${origin}/page/${b}`, { waitUntil: 'load', timeout: 15_000 });
        await page.waitForFunction(() => window.tandem && window.tandem.loaded === true && window.__startup.endpointFetch, null, { timeout: 15_000 });
        await page.waitForTimeout(300);
        const row = await page.evaluate(() => new Promise((resolve) => {
          var T = window.__startup;
          var later = function (f) { setTimeout(f, 50); };
          var t0 = performance.now();
          tandem('track', 'Purchase', __purchase(1));
          T.firstTrack = performance.now() - t0;
          later(function () {
            var t1 = performance.now();
            tandem('track', 'Purchase', __purchase(2));
            T.secondTrack = performance.now() - t1;
            later(function () {
              var t2 = performance.now();
              tandem('identify', { email: 'Jane.Doe@example.com', phone: '+1 555 123 4567' });
              T.firstIdentify = performance.now() - t2;
              var entries = performance.getEntriesByType('resource');
              var find = function (suffix) { return entries.find(function (e) { return e.name.endsWith(suffix); }); };
              var loader = find('tandem.js'), wasm = find('tandem_bg.wasm'), endpoint = entries.find(function (e) { return e.name.indexOf('/collect') >= 0; });
              resolve({ T: T, loaderEnd: loader.responseEnd, wasmEnd: wasm.responseEnd, beacon: endpoint.startTime, wasmRequests: entries.filter(function (e) { return e.name.endsWith('.wasm'); }).length });
            });
          });
        }));
        if (i > 0) rows[b].push(row);
      } finally {
        await context.close();
      }
    }
  }
} finally {
  await browser.close();
  server.close();
}

const median = (xs) => { const s = xs.filter(Number.isFinite).sort((a, b) => a - b); return s.length ? s[s.length >> 1] : NaN; };
const stages = [
  ['loader received (responseEnd)', (r) => r.loaderEnd],
  ['wasm received', (r) => r.wasmEnd],
  ['loader starts running', (r) => r.T.loaderStart],
  ['the wasm fetched (by the snippet)', (r) => r.T.wasmFetch],
  ['loader script done', (r) => r.T.loaderEnd],
  ['that fetch resolves', (r) => r.T.wasmResponse],
  ['compileStreaming called', (r) => r.T.compileStreaming[0]],
  ['compiled', (r) => r.T.compileStreaming[1]],
  ['instantiate called', (r) => r.T.instantiate[0]],
  ['instantiated', (r) => r.T.instantiate[1]],
  ['first platform call (init)', (r) => r.T.platform],
  ['endpoint fetch() (first PageView)', (r) => r.T.endpointFetch],
  ['first PageView request (startTime)', (r) => r.beacon],
  ['  instantiated → endpoint fetch()', (r) => r.T.endpointFetch - r.T.instantiate[1]],
  ['first track() Purchase after load', (r) => r.T.firstTrack],
  ['second track(), in a later task', (r) => r.T.secondTrack],
  ['first identify(), in a later task', (r) => r.T.firstIdentify],
];
console.log(`Startup, ${loads - 1} loads per build (medians, ms after navigation start unless a duration)${jsFlags ? `, --js-flags=${jsFlags}` : ''}${slow ? `, slow network (${SLOW.latency} ms per request, ${SLOW.downKbit / 1000} Mbit/s down)` : ''}`);
console.log('stage'.padEnd(40) + dirs.map((d) => path.relative(process.cwd(), d).padStart(14)).join(''));
for (const [label, get] of stages) {
  console.log(label.padEnd(40) + rows.map((r) => median(r.map(get)).toFixed(2).padStart(14)).join(''));
}
const doubled = rows.map((r) => r.filter((x) => x.wasmRequests !== 1).length);
if (doubled.some(Boolean)) console.log('loads that fetched the wasm more than once (a loader that ignores tandem.compiled): ' + doubled.join(' / '));
