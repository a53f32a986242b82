// www/server.mjs on its own (no browser): endpoint, MIME types, CDN listener, collector proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../../www/server.mjs';

let server;
let dist;
before(async () => {
  dist = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-dist-'));
  fs.writeFileSync(path.join(dist, 'tandem.js'), '/* loader */');
  fs.writeFileSync(path.join(dist, 'tandem_bg.wasm'), Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
  server = await startServer({ port: 0, cdnPort: 0, distDir: dist, collectorUrl: '' });
});
after(async () => {
  await server?.close();
  fs.rmSync(dist, { recursive: true, force: true });
});

const post = (url, body, type = 'text/plain') => fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body, signal: AbortSignal.timeout(5000) });

test('POST /collect stores events in order and flags duplicates', async () => {
  server.reset();
  const r = await post(server.url + '/collect', JSON.stringify({ events: [{ event_id: 'a', event_name: 'Lead' }, { event_id: 'b' }, { event_id: 'a' }] }));
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { results: [{ event_id: 'a', status: 'stored' }, { event_id: 'b', status: 'stored' }, { event_id: 'a', status: 'duplicate' }] });
  const r2 = await post(server.url + '/collect', JSON.stringify({ events: [{ event_id: 'b' }] }), 'application/json');
  assert.equal((await r2.json()).results[0].status, 'duplicate');
  assert.deepEqual(server.events.map((e) => e.event_id), ['a', 'b', 'a', 'b']);
  const got = await (await fetch(server.url + '/events')).json();
  assert.equal(got.count, 4);
  assert.deepEqual(got.events.map((e) => e.event_id), ['a', 'b', 'a', 'b']);
});

test('garbage is 400, oversize is 413, GET /collect is 405', async () => {
  assert.equal((await post(server.url + '/collect', 'not json')).status, 400);
  assert.equal((await post(server.url + '/collect', '{"events":[]}')).status, 400);
  assert.equal((await post(server.url + '/collect', '{"nope":1}')).status, 400);
  assert.equal((await post(server.url + '/collect', 'x'.repeat(64 * 1024 + 1))).status, 413);
  assert.equal((await post(server.url + '/collect', JSON.stringify({ events: [{ event_id: 'k', pad: 'x'.repeat(60000) }] }))).status, 200);
  assert.equal((await fetch(server.url + '/collect')).status, 405);
});

test('MIME types: wasm is application/wasm, /badmime/ serves it as octet-stream', async () => {
  const ok = await fetch(server.url + '/dist/tandem_bg.wasm');
  assert.equal(ok.headers.get('content-type'), 'application/wasm');
  const bad = await fetch(server.url + '/badmime/dist/tandem_bg.wasm');
  assert.equal(bad.headers.get('content-type'), 'application/octet-stream');
  assert.match((await fetch(server.url + '/dist/tandem.js')).headers.get('content-type'), /^text\/javascript/);
  assert.match((await fetch(server.url + '/')).headers.get('content-type'), /^text\/html/);
  assert.match((await fetch(server.url + '/fixtures/basic.html')).headers.get('content-type'), /^text\/html/);
  assert.equal((await fetch(server.url + '/dist/%2e%2e/package.json')).status, 404);
  assert.equal((await fetch(server.url + '/nope.html')).status, 404);
});

test('?delay holds a response back', async () => {
  const t = Date.now();
  await (await fetch(server.url + '/dist/tandem.js?delay=300')).text();
  assert.ok(Date.now() - t >= 280);
});

test('the CDN listener serves /dist/* with Access-Control-Allow-Origin: *', async () => {
  assert.ok(server.cdnUrl && server.cdnUrl !== server.url);
  const r = await fetch(server.cdnUrl + '/dist/tandem_bg.wasm');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  assert.equal(r.headers.get('content-type'), 'application/wasm');
  assert.equal((await fetch(server.cdnUrl + '/collect')).status, 404);
});

test('TANDEM_COLLECTOR_URL: /collect and /events are proxied with forwarding headers', async () => {
  const seen = [];
  const upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url === '/events') { res.writeHead(200, { 'Content-Type': 'application/json' }); return res.end('{"from":"upstream"}'); }
      res.writeHead(202, { 'Content-Type': 'application/json', 'Set-Cookie': ['_tandem_cid=srv1; Path=/; HttpOnly', 'x=1; Path=/'] });
      res.end('{"results":[{"event_id":"p1","status":"stored"}]}');
    });
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const proxied = await startServer({ port: 0, collectorUrl: `http://127.0.0.1:${upstream.address().port}` });
  try {
    const r = await fetch(proxied.url + '/collect', { method: 'POST', headers: { 'Content-Type': 'text/plain', 'User-Agent': 'e2e-agent' }, body: '{"events":[{"event_id":"p1"}]}' });
    assert.equal(r.status, 202);
    assert.equal((await r.json()).results[0].event_id, 'p1');
    assert.deepEqual(r.headers.getSetCookie(), ['_tandem_cid=srv1; Path=/; HttpOnly', 'x=1; Path=/']);
    assert.equal(seen[0].body, '{"events":[{"event_id":"p1"}]}');
    assert.equal(seen[0].headers['user-agent'], 'e2e-agent');
    assert.ok(seen[0].headers['x-forwarded-for']);
    assert.equal(seen[0].headers['x-forwarded-proto'], 'http');
    assert.equal(proxied.events[0].event_id, 'p1', 'the proxy still records locally for tests');
    assert.deepEqual(await (await fetch(proxied.url + '/events')).json(), { from: 'upstream' });
  } finally {
    await proxied.close();
    await new Promise((r) => upstream.close(r));
  }
});
