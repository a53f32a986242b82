// `npm start`: installs what the build needs (scripts/setup.sh), builds the tag, builds and starts the collector (SQLite at ./tandem.db), and serves
// the demo shop on http://127.0.0.1:8080 with /collect and /events proxied to the collector.
// Ctrl-C stops both.
import { execFileSync, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../www/server.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const port = Number(process.env.PORT || 8080);
const collectorPort = Number(process.env.COLLECTOR_PORT || 8081);
const collectorUrl = `http://127.0.0.1:${collectorPort}`;

// The toolchain pieces the build needs (wasm32 target, rust-src, wasm-bindgen-cli, npm packages),
// each skipped when present; the browser is only for the tests.
execFileSync('bash', [join(root, 'scripts', 'setup.sh')], { cwd: root, stdio: 'inherit', env: { ...process.env, TANDEM_SETUP_NO_BROWSER: '1' } });
execFileSync('node', [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
execFileSync('cargo', ['build', '--profile', 'server', '-p', 'tandem-collector'], { cwd: root, stdio: 'inherit' });

const collector = spawn(join(root, 'target', 'server', 'tandem-collector'), [
  '--listen', `127.0.0.1:${collectorPort}`,
  '--db', join(root, 'tandem.db'),
  // www/server.mjs proxies /collect as is: pinned so a TANDEM_COLLECT_PATH in the environment cannot move it.
  '--collect-path', '/collect',
  '--allowed-origin', `http://127.0.0.1:${port}`,
  '--allowed-origin', `http://localhost:${port}`,
], { cwd: root, stdio: 'inherit' });
let stopping = false;
collector.on('exit', (code) => {
  if (!stopping) {
    console.error(`collector exited with code ${code}`);
    process.exit(1);
  }
});

async function waitForHealth(deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${collectorUrl}/healthz`);
      if (response.ok) return;
    } catch (error) { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the collector did not answer on ${collectorUrl}/healthz`);
}

await waitForHealth(15000);
const server = await startServer({ port, host: '127.0.0.1', collectorUrl });
console.log(`demo shop:  ${server.url}/`);
console.log(`collector:  ${collectorUrl} (events stored in ${join(root, 'tandem.db')})`);

function stop() {
  stopping = true;
  collector.kill('SIGTERM');
  server.close();
  setTimeout(() => process.exit(0), 500);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
