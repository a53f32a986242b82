#!/usr/bin/env node
// Tandem demo + test server. Node built-ins only.
//
//   node www/server.mjs [--port 8080] [--host 127.0.0.1] [--cdn-port 8081]
//
// Routes
//   /, /*.html, /shop.js, ...   the demo shop (www/shop/)
//   /dist/*                     the build output (dist/), wasm as application/wasm
//   /badmime/dist/*             the same files, wasm as application/octet-stream
//                               (exercises the instantiateStreaming -> ArrayBuffer fallback)
//   /fixtures/*                 tests/e2e/fixtures/
//   /stub/*                     tests/e2e/stubs/ (local stand-ins for third-party scripts)
//   POST /collect               minimal first-party endpoint (or a proxy to TANDEM_COLLECTOR_URL)
//   GET  /events                everything /collect received, in arrival order
//   DELETE /events              forget it (tests)
//   POST /__fault {status, count}  the next `count` POSTs to /collect answer `status` (e.g. 503)
//                               and are not recorded as received (an endpoint that is down)
// Any static file accepts ?delay=<ms> (max 10 s) to simulate a slow network (queue tests).
// startServer({ cdnPort }) also starts a second listener serving /dist/* with
// Access-Control-Allow-Origin: * (a "CDN" on another origin).
// Env: TANDEM_COLLECTOR_URL (proxy /collect and /events to a real collector),
//      TANDEM_DIST_DIR (serve another build as /dist, e.g. dist-test/).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');
const MAX_BODY = 64 * 1024;

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** Resolve `rel` inside `base`, refusing anything that escapes it. */
function safeJoin(base, rel) {
  let decoded;
  try { decoded = decodeURIComponent(rel); } catch { return null; }
  if (decoded.includes('\0')) return null;
  const full = path.resolve(base, '.' + path.posix.normalize('/' + decoded));
  if (full !== base && !full.startsWith(base + path.sep)) return null;
  return full;
}

function send(res, status, body, headers = {}) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.writeHead(status, {
    'Content-Length': buf.length,
    'Cache-Control': 'no-store',
    ...(typeof body === 'string' || Buffer.isBuffer(body) ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
    ...headers,
  });
  res.end(buf);
}

function sendJson(res, status, obj, headers = {}) {
  send(res, status, JSON.stringify(obj), { 'Content-Type': 'application/json; charset=utf-8', ...headers });
}

async function serveFile(req, res, file, { wasmMime = 'application/wasm', extraHeaders = {}, delay = 0 } = {}) {
  let stat;
  try { stat = await fs.promises.stat(file); } catch { stat = null; }
  if (stat && stat.isDirectory()) {
    file = path.join(file, 'index.html');
    try { stat = await fs.promises.stat(file); } catch { stat = null; }
  }
  if (!stat || !stat.isFile()) return send(res, 404, 'not found\n', { 'Content-Type': 'text/plain; charset=utf-8', ...extraHeaders });
  const ext = path.extname(file).toLowerCase();
  let type = MIME[ext] || 'application/octet-stream';
  if (ext === '.wasm') type = wasmMime;
  if (delay > 0) await new Promise((r) => setTimeout(r, Math.min(delay, 10_000)));
  const body = await fs.promises.readFile(file);
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': body.length,
    'Cache-Control': 'no-store',
    ...extraHeaders,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { tooBig = true; return; }
      chunks.push(c);
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), tooBig, size }));
    req.on('error', reject);
  });
}

/** Forward a request to the real collector, passing status, body and Set-Cookie back. */
function proxy(req, res, target, body) {
  return new Promise((resolve) => {
    const url = new URL(req.url, target);
    const headers = {
      'Content-Type': req.headers['content-type'] || 'text/plain',
      'User-Agent': req.headers['user-agent'] || '',
      'X-Forwarded-For': req.socket.remoteAddress || '127.0.0.1',
      'X-Forwarded-Proto': 'http',
      'X-Forwarded-Host': req.headers.host || '',
    };
    for (const h of ['cookie', 'origin', 'referer', 'accept']) if (req.headers[h]) headers[h] = req.headers[h];
    if (body) headers['Content-Length'] = body.length;
    const up = http.request(url, { method: req.method, headers, timeout: 10_000 }, (upRes) => {
      const chunks = [];
      upRes.on('data', (c) => chunks.push(c));
      upRes.on('end', () => {
        const out = { 'Cache-Control': 'no-store' };
        if (upRes.headers['content-type']) out['Content-Type'] = upRes.headers['content-type'];
        if (upRes.headers['set-cookie']) out['Set-Cookie'] = upRes.headers['set-cookie'];
        send(res, upRes.statusCode || 502, Buffer.concat(chunks), out);
        resolve();
      });
    });
    up.on('timeout', () => up.destroy(new Error('upstream timeout')));
    up.on('error', (e) => {
      if (!res.headersSent) sendJson(res, 502, { error: 'collector unreachable', detail: String(e.message) });
      resolve();
    });
    up.end(body && body.length ? body : undefined);
  });
}

/**
 * Start the server. Returns { url, port, cdnUrl?, cdnPort?, events, payloads, reset(), close() }.
 * `events` is the live array of events /collect received (duplicates included, arrival order);
 * `payloads` the raw requests ({ ts, contentType, status, body, text }).
 */
export async function startServer({
  port = 0,
  host = '127.0.0.1',
  root = REPO,
  cdnPort = null,
  collectorUrl = process.env.TANDEM_COLLECTOR_URL || '',
  distDir = process.env.TANDEM_DIST_DIR || '',
  quiet = true,
} = {}) {
  root = path.resolve(root);
  const dirs = {
    shop: path.join(root, 'www', 'shop'),
    dist: distDir ? path.resolve(distDir) : path.join(root, 'dist'),
    fixtures: path.join(root, 'tests', 'e2e', 'fixtures'),
    stub: path.join(root, 'tests', 'e2e', 'stubs'),
  };
  const events = [];
  const payloads = [];
  const seen = new Set();
  const fault = { status: 0, count: 0 };
  const log = (...a) => { if (!quiet) console.log(...a); };

  async function handleCollect(req, res) {
    const { body, tooBig, size } = await readBody(req, MAX_BODY);
    const contentType = String(req.headers['content-type'] || '');
    const record = { ts: Date.now(), contentType, size, status: 0, body: null, text: null };
    payloads.push(record);
    if (tooBig) {
      record.status = 413;
      return sendJson(res, 413, { error: 'payload too large', limit: MAX_BODY });
    }
    record.text = body.toString('utf8');
    if (fault.count > 0) {
      fault.count -= 1;
      record.status = fault.status;
      return sendJson(res, fault.status, { error: 'injected fault' });
    }
    let parsed;
    try { parsed = JSON.parse(record.text); } catch { parsed = undefined; }
    record.body = parsed ?? null;
    const list = parsed && typeof parsed === 'object' && Array.isArray(parsed.events) ? parsed.events : null;
    // Record locally even when proxying, so tests can inspect what the tag sent.
    if (list) for (const ev of list) if (ev && typeof ev === 'object') events.push(ev);
    if (collectorUrl) {
      record.status = -1; // proxied
      return proxy(req, res, collectorUrl, body);
    }
    const okType = /^(text\/plain|application\/json)\b/i.test(contentType) || contentType === '';
    if (!okType || !list || list.length === 0 || list.some((e) => !e || typeof e !== 'object' || typeof e.event_id !== 'string')) {
      record.status = 400;
      return sendJson(res, 400, { error: 'expected {"events":[{event_id,...}]} as text/plain or application/json' });
    }
    const results = list.map((e) => {
      const dup = seen.has(e.event_id);
      seen.add(e.event_id);
      return { event_id: e.event_id, status: dup ? 'duplicate' : 'stored' };
    });
    record.status = 200;
    log(`collect: ${list.map((e) => `${e.event_name}#${e.event_id}`).join(', ')}`);
    return sendJson(res, 200, { results });
  }

  function cors(req) {
    // The endpoint is first-party; allow cross-origin posts anyway so a page on the CDN origin can post.
    return req.headers.origin ? { 'Access-Control-Allow-Origin': req.headers.origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' } : {};
  }

  async function handler(req, res) {
    const u = new URL(req.url, 'http://x');
    const p = u.pathname;
    const delay = Number(u.searchParams.get('delay')) || 0;
    try {
      if (p === '/collect') {
        if (req.method === 'OPTIONS') {
          return send(res, 204, '', { ...cors(req), 'Access-Control-Allow-Methods': 'POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type', 'Access-Control-Max-Age': '600' });
        }
        if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST only' }, { Allow: 'POST, OPTIONS' });
        for (const [k, v] of Object.entries(cors(req))) res.setHeader(k, v);
        return await handleCollect(req, res);
      }
      if (p === '/__fault' && req.method === 'POST') {
        let f = {};
        try { f = JSON.parse((await readBody(req, 1024)).body.toString('utf8')); } catch { f = {}; }
        fault.status = Number(f.status) || 503;
        fault.count = Number(f.count) || 0;
        return sendJson(res, 200, { ok: true, ...fault });
      }
      if (p === '/events') {
        if (req.method === 'DELETE') { events.length = 0; payloads.length = 0; seen.clear(); return sendJson(res, 200, { ok: true }); }
        if (collectorUrl && u.searchParams.get('local') !== '1') return await proxy(req, res, collectorUrl, null);
        return sendJson(res, 200, { count: events.length, events, payloads: payloads.map(({ text, ...r }) => r) });
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
      if (p === '/healthz') return sendJson(res, 200, { ok: true });
      let m;
      if ((m = p.match(/^\/badmime\/dist\/(.*)$/))) {
        const f = safeJoin(dirs.dist, m[1]);
        return f ? serveFile(req, res, f, { wasmMime: 'application/octet-stream', delay }) : send(res, 400, 'bad path\n');
      }
      for (const key of ['dist', 'fixtures', 'stub']) {
        const prefix = `/${key}/`;
        if (p.startsWith(prefix)) {
          const f = safeJoin(dirs[key], p.slice(prefix.length));
          return f ? serveFile(req, res, f, { delay }) : send(res, 400, 'bad path\n');
        }
      }
      const rel = p.startsWith('/shop/') ? p.slice('/shop'.length) : p;
      const f = safeJoin(dirs.shop, rel === '/' ? 'index.html' : rel.slice(1));
      return f ? serveFile(req, res, f, { delay }) : send(res, 400, 'bad path\n');
    } catch (e) {
      if (!res.headersSent) sendJson(res, 500, { error: String(e && e.message) });
      else res.destroy();
    }
  }

  async function listen(srv, p) {
    await new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(p, host, () => { srv.off('error', reject); resolve(); });
    });
    return srv.address().port;
  }
  const sockets = new Set();
  const track = (srv) => srv.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  const server = http.createServer((req, res) => { handler(req, res); });
  track(server);
  const actualPort = await listen(server, port);
  const fmtHost = host.includes(':') ? `[${host}]` : host;
  const out = {
    url: `http://${fmtHost}:${actualPort}`,
    port: actualPort,
    events,
    payloads,
    collectorUrl: collectorUrl || null,
    reset() { events.length = 0; payloads.length = 0; seen.clear(); fault.count = 0; },
    /** The next `count` POSTs to /collect answer `status` and are not recorded (0 clears). */
    setFault(status, count) { fault.status = status; fault.count = count; },
    async close() {
      const closing = [new Promise((r) => server.close(() => r()))];
      if (cdn) closing.push(new Promise((r) => cdn.close(() => r())));
      for (const s of sockets) s.destroy();
      await Promise.all(closing);
    },
  };

  let cdn = null;
  if (cdnPort !== null && cdnPort !== undefined && cdnPort !== false) {
    cdn = http.createServer(async (req, res) => {
      const acao = { 'Access-Control-Allow-Origin': '*', 'Timing-Allow-Origin': '*' };
      try {
        if (req.method === 'OPTIONS') return send(res, 204, '', { ...acao, 'Access-Control-Allow-Methods': 'GET, HEAD', 'Access-Control-Max-Age': '600' });
        const u = new URL(req.url, 'http://x');
        if (!u.pathname.startsWith('/dist/')) return send(res, 404, 'cdn serves /dist/* only\n', { 'Content-Type': 'text/plain', ...acao });
        const f = safeJoin(dirs.dist, u.pathname.slice('/dist/'.length));
        if (!f) return send(res, 400, 'bad path\n', acao);
        return await serveFile(req, res, f, { extraHeaders: acao, delay: Number(u.searchParams.get('delay')) || 0 });
      } catch (e) {
        if (!res.headersSent) sendJson(res, 500, { error: String(e && e.message) });
      }
    });
    track(cdn);
    const cp = await listen(cdn, cdnPort);
    out.cdnPort = cp;
    out.cdnUrl = `http://${fmtHost}:${cp}`;
  }
  return out;
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [k, inline] = a.startsWith('--') ? a.slice(2).split('=', 2) : [null];
    if (!k) continue;
    const v = inline ?? argv[++i];
    o[k] = v;
  }
  return o;
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const args = parseArgs(process.argv.slice(2));
  const port = Number(args.port ?? process.env.PORT ?? 8080);
  const host = args.host ?? process.env.HOST ?? '127.0.0.1';
  const cdnPort = args['cdn-port'] !== undefined ? Number(args['cdn-port']) : null;
  const s = await startServer({ port, host, cdnPort, quiet: false });
  console.log(`Tandem demo shop:   ${s.url}/`);
  console.log(`Simulated ad click: ${s.url}/?gclid=TeSt-gclid&fbclid=IwAR-test&ttclid=E.C.P.test&utm_source=demo&utm_medium=cpc&utm_campaign=launch`);
  console.log(`Endpoint:           ${s.url}/collect  (received: ${s.url}/events)${s.collectorUrl ? `  -> proxied to ${s.collectorUrl}` : ''}`);
  if (s.cdnUrl) console.log(`CDN (/dist/*):      ${s.cdnUrl}/dist/tandem.js`);
  if (!fs.existsSync(path.join(REPO, 'dist', 'tandem.js'))) console.log('note: dist/tandem.js is missing; run `npm run build` first.');
  let stopping = false;
  const stop = async (sig) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${sig}: shutting down`);
    const t = setTimeout(() => process.exit(1), 3000);
    t.unref();
    await s.close();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
