// Runs a command (the wasm-bindgen-test browser tests) with headless Chromium sending its requests
// through a local HTTP proxy that opens one connection to the test server per request.
//
// Why: wasm-bindgen-test-runner 0.2.130 serves the test page with tiny_http 0.12, which gives each
// TCP connection a pool thread for as long as the connection stays open, and whose pool can lose a
// wake-up when several connections arrive at once (TaskPool::spawn queues the connection but the
// thread it notifies was already woken for the one before). Chromium fetches the page's five
// snippet modules in parallel over keep-alive connections, so now and then one connection sits
// unserved until another closes, which Chromium does not do for minutes: the page never finishes
// loading ("Loading scripts...", then ChromeDriver's "Timed out receiving message from renderer").
// With `Connection: close` on every upstream request each connection ends after one response, and
// the thread it frees takes the queued one.
//
// Usage: node scripts/web-test-proxy.mjs <command> [args...]
// The command gets WASM_BINDGEN_TEST_WEBDRIVER_JSON pointing at a copy of ./webdriver.json whose
// Chromium arguments route loopback traffic through the proxy.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const command = process.argv.slice(2);
if (command.length === 0) {
  console.error('usage: node scripts/web-test-proxy.mjs <command> [args...]');
  process.exit(2);
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const without = (headers, names) => Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k.toLowerCase())));

const proxy = http.createServer((req, res) => {
  let target;
  try {
    target = new URL(req.url);
  } catch {
    res.writeHead(400).end('absolute URL expected');
    return;
  }
  // The test server is on loopback; anything else would be the browser reaching out, which the
  // tests never need.
  if (target.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    res.writeHead(502).end('the test proxy only reaches the local test server');
    return;
  }
  const upstream = http.request(
    {
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port || 80,
      method: req.method,
      path: target.pathname + target.search,
      headers: { ...without(req.headers, HOP_BY_HOP), connection: 'close' },
      agent: false,
    },
    (answer) => {
      res.writeHead(answer.statusCode, answer.statusMessage, without(answer.headers, HOP_BY_HOP));
      answer.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502);
    res.end(String(err));
  });
  req.pipe(upstream);
});
// Chromium may try to tunnel; nothing in the tests uses https.
proxy.on('connect', (_req, socket) => socket.end('HTTP/1.1 405 Method Not Allowed\r\n\r\n'));

proxy.listen(0, '127.0.0.1', () => {
  const { port } = proxy.address();
  const capabilities = JSON.parse(readFileSync('webdriver.json', 'utf8'));
  const chrome = (capabilities['goog:chromeOptions'] ??= {});
  // `<-loopback>` undoes Chromium's built-in proxy bypass for 127.0.0.1 and localhost.
  chrome.args = [...(chrome.args ?? []), `--proxy-server=http://127.0.0.1:${port}`, '--proxy-bypass-list=<-loopback>'];
  const dir = mkdtempSync(join(tmpdir(), 'tandem-webdriver-'));
  const file = join(dir, 'webdriver.json');
  writeFileSync(file, JSON.stringify(capabilities, null, 2));

  const child = spawn(command[0], command.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, WASM_BINDGEN_TEST_WEBDRIVER_JSON: file },
  });
  const finish = (code) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  child.on('error', (err) => {
    console.error(`web-test-proxy: cannot run ${command[0]}: ${err.message}`);
    finish(127);
  });
  child.on('exit', (code, signal) => finish(code ?? 128 + (signal ? ({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }[signal] ?? 1) : 1)));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
});
