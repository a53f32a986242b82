#!/usr/bin/env node
// `npm run ab -- DIR_A DIR_B`: which of two builds of the tag has the faster track(), measured so a
// few percent show. Build them first, e.g. `node scripts/build.mjs --out dist-a`.
//
//   node scripts/ab.mjs DIR_A DIR_B [--pages 3] [--tracks 1500] [--js-flags 'V8 FLAGS'] [--call page|identify] [--profile]
//
// Why not `npm run bench`: its track() median moves by 10-25 % between page loads on this machine
// (CPU frequency, the other core's load, where V8 happens to tier up), more than most single
// changes are worth. Here both builds run in one page, each in its own same-origin iframe with
// the bench's configuration (Meta, Google and TikTok, no-op fbq / gtag / ttq, the network
// stubbed), and their Purchase track() calls alternate, each in its own task, so both see the
// same machine at the same moment. Per page it prints each build's trimmed mean (the fastest
// 90 %: a GC pause or a preemption is not the tag's) and the ratio B / A; an A / A run gives
// 1.00 ± 0.01. In A / A runs the first iframe came out 2-3 % faster than the second, whatever it held,
// so the two builds swap iframes from one page to the next (hence an even default page count)
// and the summary is the geometric mean of the ratios, in which that placement bias cancels.
// Prints figures only; nothing is asserted or written.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { snippetInit } from './snippet.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : fallback;
}
// The options that take a value; --profile takes none.
const VALUED = ['--pages', '--tracks', '--js-flags', '--call'];
const dirs = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && VALUED.includes(args[i - 1])));
const PAGES = option('pages', 4);
// V8 flags for both builds alike, to ask what a change of engine would do: `--no-liftoff` runs
// the wasm in TurboFan from the first call instead of tiering it up from Liftoff.
const JS_FLAGS = args.includes('--js-flags') ? args[args.indexOf('--js-flags') + 1] : '';
const TRACKS = option('tracks', 1500);
// The call timed: a Purchase track() (the default), `page` for tandem('page') after a route
// change (history.replaceState), as a single-page app makes it, or `identify` for a new email.
const CALL = args.includes('--call') ? args[args.indexOf('--call') + 1] : 'track';
// --profile: the first page's timed calls under V8's sampling profiler (50 µs), written to
// target/ab/<call>.cpuprofile for DevTools (build with --names to see the wasm's function names).
// Its timings are the profiler's, not comparable with a run without it.
const PROFILE = args.includes('--profile');
if (!['track', 'page', 'identify'].includes(CALL)) {
  console.error(`ab: --call takes track, page or identify; got ${CALL}`);
  process.exit(2);
}
if (dirs.length !== 2 || dirs.some((d) => !fs.existsSync(path.join(ROOT, d, 'tandem.js')))) {
  console.error('usage: node scripts/ab.mjs DIR_A DIR_B [--pages N] [--tracks N] (directories under the repo holding a build)');
  process.exit(2);
}
const watchdog = setTimeout(() => { console.error('ab: gave up after 10 minutes'); process.exit(1); }, 600_000);

// Cross-origin isolation gives performance.now() 5 µs resolution instead of 100 µs.
const ISOLATED = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const frame = (dir) => `<!doctype html><script>
window.fbq = function () {}; window.gtag = function () {};
window.ttq = { track: function () {}, page: function () {}, identify: function () {}, load: function () {}, instance: function () { return window.ttq; } };
${snippetInit(`/${dir}/tandem_bg.wasm`)}
</script><script async src="/${dir}/tandem.js"></script>`;
const top = (order) => `<!doctype html>${order.map((d, k) => `<iframe id="${'ab'[k]}" src="/frame?d=${encodeURIComponent(d)}"></iframe>`).join('')}`;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  const html = (body) => { res.writeHead(200, { 'Content-Type': 'text/html', ...ISOLATED }); res.end(body); };
  if (url.pathname === '/') return html(top(url.searchParams.get('swap') ? [dirs[1], dirs[0]] : dirs));
  if (url.pathname === '/frame') return html(frame(url.searchParams.get('d')));
  const dir = dirs.find((d) => url.pathname.startsWith(`/${d}/`));
  const file = dir && path.join(ROOT, dir, path.basename(url.pathname));
  if (!file || !fs.existsSync(file)) { res.writeHead(404, ISOLATED); res.end(); return; }
  res.writeHead(200, { 'Content-Type': file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript', ...ISOLATED });
  res.end(fs.readFileSync(file));
});

// Returns [A, B] whichever iframe each build sat in.
async function measurePage(browser, port, swap, profile) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(`http://127.0.0.1:${port}/${swap ? '?swap=1' : ''}`);
    await page.waitForFunction(() => ['a', 'b'].every((id) => {
      const w = document.getElementById(id).contentWindow;
      return w.tandem && w.tandem.loaded === true;
    }), null, { timeout: 20_000 });
    await page.waitForTimeout(300);
    const cdp = profile ? await context.newCDPSession(page) : null;
    if (cdp) {
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 50 });
      await cdp.send('Profiler.start');
    }
    const measured = await page.evaluate(async ([n, call]) => {
      const frames = ['a', 'b'].map((id) => document.getElementById(id).contentWindow);
      for (const w of frames) {
        w.fetch = function () { return Promise.resolve(new w.Response(null, { status: 204 })); };
        w.navigator.sendBeacon = function () { return true; };
      }
      const channel = new MessageChannel();
      let wake;
      channel.port1.onmessage = () => wake();
      const hop = () => new Promise((resolve) => { wake = resolve; channel.port2.postMessage(0); });
      const samples = [[], []];
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < 2; k++) {
          const j = i & 1 ? 1 - k : k; // alternate which build goes first
          const params = { value: 49.89, currency: 'EUR', order_id: 'o-' + i, contents: [
            { id: 'sku-1', quantity: 2, price: 19.95, name: 'Blue mug', category: 'Kitchen' },
            { id: 'sku-2', quantity: 1, price: 9.99, name: 'Tea towel', category: 'Kitchen' }] };
          await hop(); // the previous call's deferred work runs at the end of its own task
          // A route change before each page(), as a router makes it: the same URL again within a
          // second is a repeat, which the tag answers without sending anything.
          if (call === 'page') frames[j].history.replaceState(null, '', '?route=' + i);
          await hop();
          const t0 = performance.now();
          if (call === 'page') frames[j].tandem('page');
          else if (call === 'identify') frames[j].tandem('identify', { email: 'visitor' + i + '@example.com' });
          else frames[j].tandem('track', 'Purchase', params);
          samples[j].push(performance.now() - t0);
        }
      }
      return samples.map((s) => {
        const sorted = [...s].sort((x, y) => x - y);
        const kept = sorted.slice(0, Math.floor(s.length * 0.9));
        return { median: sorted[s.length >> 1] * 1000, trimmedMean: (kept.reduce((a, x) => a + x, 0) / kept.length) * 1000 };
      });
    }, [TRACKS, CALL]);
    if (cdp) {
      const { profile: samples } = await cdp.send('Profiler.stop');
      const file = path.join(ROOT, 'target', 'ab', `${CALL}.cpuprofile`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(samples));
      console.log(`profile of page 1 written: ${path.relative(ROOT, file)}`);
    }
    return swap ? measured.reverse() : measured;
  } finally {
    await context.close();
  }
}

server.listen(0, '127.0.0.1', async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(JS_FLAGS ? [`--js-flags=${JS_FLAGS}`] : [])],
  });
  const ratios = [];
  try {
    for (let p = 0; p < PAGES; p++) {
      const swap = p % 2 === 1;
      const [a, b] = await measurePage(browser, server.address().port, swap, PROFILE && p === 0);
      ratios.push(b.trimmedMean / a.trimmedMean);
      console.log(`page ${p + 1}${swap ? ' (B first)' : ' (A first)'}: ${dirs[0]} median ${a.median.toFixed(1)} µs, trimmed mean ${a.trimmedMean.toFixed(2)} µs | ${dirs[1]} median ${b.median.toFixed(1)} µs, trimmed mean ${b.trimmedMean.toFixed(2)} µs | B/A ${ratios[p].toFixed(3)}`);
    }
    const geometricMean = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
    ratios.sort((x, y) => x - y);
    console.log(`B/A over ${PAGES} pages of ${TRACKS} ${CALL === 'track' ? 'track()' : `tandem('${CALL}')`} calls each: ${ratios.map((r) => r.toFixed(3)).join(' ')}; geometric mean ${geometricMean.toFixed(3)}`);
  } finally {
    await browser.close();
    server.close();
    clearTimeout(watchdog);
  }
});
