// The Google Tag Manager template (gtm/template.tpl), without GTM and without a browser.
//
// GTM runs a template's sandboxed JavaScript with `require` giving its APIs; here that code runs in
// node:vm against an emulation of the APIs it uses, written from Google's API reference
// (developers.google.com/tag-platform/tag-manager/templates/api) and permissions reference
// (…/templates/permissions):
// - every API checks the template's own ___WEB_PERMISSIONS___ as GTM does, and throws when they do
//   not allow the call (so a key or URL missing from the permissions fails a test);
// - values cross between the sandbox and the page as copies (callInWindow, copyFromWindow);
// - createArgumentsQueue makes window[fnKey] a function that pushes its `arguments` object onto
//   the array at arrayKey, only if fnKey does not exist yet;
// - injectScript calls back asynchronously, creates one script element per cacheToken, and queues
//   the callbacks of later calls with the same token until that script has loaded.
// Assumptions of the emulation where Google's reference is silent: a later call with the token of
// a script that failed gets onFailure; makeNumber is JavaScript's Number().
//
// It also runs the template's own ___TESTS___ scenarios with an emulation of GTM's test APIs
// (runCode, mock, assertApi, assertThat), and feeds the stub the template builds to the real
// loader (www/loader.js) on its plain-JS path, which needs neither dist/ nor WebAssembly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEMPLATE = fs.readFileSync(path.join(REPO, 'gtm', 'template.tpl'), 'utf8');
const README = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const TYPES = fs.readFileSync(path.join(REPO, 'www', 'tandem.d.ts'), 'utf8');
const LOADER = fs.readFileSync(path.join(REPO, 'www', 'loader.js'), 'utf8');

const SCRIPT_URL = 'https://www.example.com/tandem/tandem.js';

// ---------------------------------------------------------------- the .tpl file

/** The template's sections by name, in file order. */
function sections(text) {
  const out = new Map();
  const marker = /^___([A-Z_]+)___$/gm;
  const found = [...text.matchAll(marker)];
  found.forEach((m, i) => {
    const end = i + 1 < found.length ? found[i + 1].index : text.length;
    out.set(m[1], text.slice(m.index + m[0].length, end).trim());
  });
  return out;
}

const SECTIONS = sections(TEMPLATE);
const CODE = SECTIONS.get('SANDBOXED_JS_FOR_WEB_TEMPLATE');
const PARAMETERS = JSON.parse(SECTIONS.get('TEMPLATE_PARAMETERS'));
const PERMISSIONS = JSON.parse(SECTIONS.get('WEB_PERMISSIONS'));

/** Every parameter, groups flattened. */
function allParameters(list = PARAMETERS) {
  return list.flatMap((p) => [p, ...allParameters(p.subParams || [])]);
}
const parameter = (name) => allParameters().find((p) => p.name === name);

/** The permissions as { globals: Map(key → {read, write, execute}), scriptUrls, logging, templateStorage }. */
function readPermissions(list) {
  const out = { globals: new Map(), scriptUrls: [], logging: null, templateStorage: false, ids: [] };
  for (const entry of list) {
    const id = entry.instance.key.publicId;
    out.ids.push(id);
    const param = (key) => entry.instance.param.find((p) => p.key === key)?.value;
    if (id === 'access_globals') {
      for (const item of param('keys').listItem) {
        const row = Object.fromEntries(item.mapKey.map((k, i) => {
          const v = item.mapValue[i];
          return [k.string, v.type === 8 ? v.boolean : v.string];
        }));
        out.globals.set(row.key, { read: row.read, write: row.write, execute: row.execute });
      }
    } else if (id === 'inject_script') {
      out.scriptUrls = param('urls').listItem.map((i) => i.string);
    } else if (id === 'logging') {
      out.logging = param('environments').string;
    } else if (id === 'access_template_storage') {
      out.templateStorage = true;
    }
  }
  return out;
}

// A GTM URL match pattern: https only; a host given exactly or as *.domain (that domain and its
// subdomains); '*' in the path matches anything.
function urlMatches(pattern, url) {
  const m = /^https:\/\/([^/]+)(\/.*)$/.exec(pattern);
  let u;
  try { u = new URL(url); } catch { return false; }
  if (!m || u.protocol !== 'https:') return false;
  const host = m[1].toLowerCase();
  const hostOk = host.startsWith('*.')
    ? u.host === host.slice(2) || u.host.endsWith(host.slice(1))
    : u.host === host;
  const pathRe = new RegExp('^' + m[2].split('*').map((s) => s.replace(/[.?+^$()[\]{}|\\]/g, '\\$&')).join('.*') + '$');
  return hostOk && pathRe.test(u.pathname + u.search);
}

// ---------------------------------------------------------------- the sandboxed APIs

class PermissionError extends Error {}

/**
 * A page (`win`) and the GTM runtime around the template. `scriptOutcome(url)` says whether an
 * injected script loads ('load', the default) or fails ('error'); `onScriptLoad(url)` runs the
 * script (before its onload, as a browser does).
 */
function createGtm({ win = {}, permissions = readPermissions(PERMISSIONS), scriptOutcome = () => 'load', onScriptLoad = () => {} } = {}) {
  const calls = []; // { api, args }, in call order, mocked or not
  const logs = [];
  const injected = []; // the URL of every script element created
  const scripts = new Map(); // cacheToken → { state: 'loading' | 'loaded' | 'failed', waiting: [] }
  const storage = new Map();
  const mocks = new Map();

  const globalAllowed = (key, mode) => {
    const p = permissions.globals.get(key);
    if (!p) return false;
    if (mode === 'readwrite') return p.read && p.write;
    return Boolean(p[mode]);
  };
  const needGlobal = (key, mode) => {
    if (!globalAllowed(key, mode)) throw new PermissionError(`access_globals does not allow ${mode} of ${key}`);
  };
  const scriptAllowed = (url) => permissions.scriptUrls.some((p) => urlMatches(p, url));

  const resolve = (key) => key.split('.').reduce((obj, k) => (obj == null ? undefined : obj[k]), win);
  const assign = (key, value) => {
    const parts = key.split('.');
    const parent = parts.length === 1 ? win : resolve(parts.slice(0, -1).join('.'));
    if (parent == null) throw new Error(`${key}: ${parts.slice(0, -1).join('.')} does not exist in window`);
    parent[parts.at(-1)] = value;
  };

  // Values cross the sandbox boundary as copies (GTM: copyFromWindow "creates a deep copy").
  const copy = (value, seen = new Map()) => {
    if (value === null || ['undefined', 'boolean', 'number', 'string'].includes(typeof value)) return value;
    if (typeof value === 'function') {
      return (...args) => copy(value.apply(undefined, args.map((a) => copy(a))));
    }
    if (typeof value !== 'object') return undefined;
    if (seen.has(value)) return seen.get(value);
    const out = Array.isArray(value) ? [] : {};
    seen.set(value, out);
    for (const k of Object.keys(value)) out[k] = copy(value[k], seen);
    return out;
  };

  const settleScript = (entry, url) => {
    setImmediate(() => {
      const loads = scriptOutcome(url) !== 'error';
      if (loads) onScriptLoad(url);
      entry.state = loads ? 'loaded' : 'failed';
      for (const w of entry.waiting.splice(0)) (loads ? w.onSuccess : w.onFailure)();
    });
  };

  const apis = {
    callInWindow(pathToFunction, ...args) {
      needGlobal(pathToFunction, 'execute');
      const fn = resolve(pathToFunction);
      if (typeof fn !== 'function') return undefined;
      return copy(fn.apply(undefined, args.map((a) => copy(a))));
    },
    copyFromWindow(key) {
      needGlobal(key, 'read');
      return copy(resolve(key));
    },
    setInWindow(key, value, overrideExisting) {
      needGlobal(key, overrideExisting ? 'readwrite' : 'write');
      if (resolve(key) !== undefined && !overrideExisting) return false;
      assign(key, copy(value));
      return true;
    },
    createArgumentsQueue(fnKey, arrayKey) {
      needGlobal(fnKey, 'readwrite');
      needGlobal(arrayKey, 'readwrite');
      let queue;
      if (resolve(fnKey) === undefined) {
        assign(fnKey, function () { queue.push(arguments); }); // eslint-disable-line prefer-rest-params
      }
      if (resolve(arrayKey) === undefined) assign(arrayKey, []);
      queue = resolve(arrayKey);
      return (...args) => apis.callInWindow(fnKey, ...args);
    },
    injectScript(url, onSuccess, onFailure, cacheToken) {
      if (!scriptAllowed(url)) throw new PermissionError(`inject_script does not allow ${url}`);
      const waiter = { onSuccess: () => onSuccess(), onFailure: () => onFailure() };
      const cached = cacheToken ? scripts.get(cacheToken) : undefined;
      if (cached) {
        if (cached.state === 'loading') cached.waiting.push(waiter);
        else setImmediate(cached.state === 'loaded' ? waiter.onSuccess : waiter.onFailure);
        return;
      }
      const entry = { state: 'loading', waiting: [waiter] };
      if (cacheToken) scripts.set(cacheToken, entry);
      injected.push(url);
      settleScript(entry, url);
    },
    logToConsole(...args) {
      if (!permissions.logging) throw new PermissionError('no logging permission');
      logs.push(args.map((a) => copy(a)));
    },
    getType(value) {
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'array';
      return typeof value;
    },
    makeNumber: (value) => Number(value),
    makeString: (value) => String(value),
    makeTableMap(tableObj, keyColumnName, valueColumnName) {
      const out = {};
      let any = false;
      for (const row of tableObj || []) {
        out[row[keyColumnName]] = row[valueColumnName];
        any = true;
      }
      return any ? out : null;
    },
    Object: { keys: Object.keys, values: Object.values, entries: Object.entries, freeze: Object.freeze },
    queryPermission(permission, ...args) {
      if (permission === 'inject_script') return scriptAllowed(args[0]);
      if (permission === 'access_globals') return globalAllowed(args[1], args[0]);
      if (permission === 'logging') return Boolean(permissions.logging);
      if (permission === 'access_template_storage') return permissions.templateStorage;
      return false;
    },
    templateStorage: {
      getItem(key) { needStorage(); return storage.has(key) ? storage.get(key) : null; },
      setItem(key, value) { needStorage(); storage.set(key, value); },
      removeItem(key) { needStorage(); storage.delete(key); },
      clear() { needStorage(); storage.clear(); },
    },
  };
  function needStorage() {
    if (!permissions.templateStorage) throw new PermissionError('no access_template_storage permission');
  }

  const record = (api, fn) => (...args) => {
    calls.push({ api, args });
    return fn(...args);
  };
  function requireApi(name) {
    if (mocks.has(name)) {
      const mocked = mocks.get(name);
      return record(name, typeof mocked === 'function' ? mocked : () => mocked);
    }
    const api = apis[name];
    if (api === undefined) throw new Error(`the emulation has no API ${name}`);
    if (typeof api !== 'function') {
      return Object.fromEntries(Object.entries(api).map(([k, f]) => [k, record(`${name}.${k}`, f)]));
    }
    return record(name, api);
  }

  /** One tag firing: the template's code with `data` (gtmOnSuccess / gtmOnFailure added). */
  function fire(fields) {
    const data = {
      ...fields,
      gtmOnSuccess: record('gtmOnSuccess', () => {}),
      gtmOnFailure: record('gtmOnFailure', () => {}),
    };
    const context = vm.createContext({ require: requireApi });
    const body = vm.runInContext(`(function (data) {\n${CODE}\n})`, context, { filename: 'template.tpl' });
    return body(data);
  }

  const callsOf = (api) => calls.filter((c) => c.api === api);
  /** The arguments of every call the page's window.tandem received, as arrays. */
  const tandemCalls = () => (win.tandem?.q || []).map((args) => Array.from(args));
  const signals = () => calls.filter((c) => c.api === 'gtmOnSuccess' || c.api === 'gtmOnFailure').map((c) => c.api);

  return { win, calls, logs, injected, storage, mocks, fire, callsOf, tandemCalls, signals, require: requireApi };
}

/** Lets injectScript's asynchronous callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

const INIT = { action: 'init', scriptUrl: SCRIPT_URL, autoPageView: true, consentMode: 'advanced', gpc: 'honor' };

// ---------------------------------------------------------------- the file itself

test('the template has its sections in GTM export order, and the JSON ones parse', () => {
  assert.deepEqual([...SECTIONS.keys()],
    ['INFO', 'TEMPLATE_PARAMETERS', 'SANDBOXED_JS_FOR_WEB_TEMPLATE', 'WEB_PERMISSIONS', 'TESTS', 'NOTES']);
  const info = JSON.parse(SECTIONS.get('INFO'));
  assert.equal(info.type, 'TAG');
  assert.deepEqual(info.containerContexts, ['WEB']);
  assert.ok(Array.isArray(PARAMETERS) && PARAMETERS.length > 0);
  assert.ok(Array.isArray(PERMISSIONS) && PERMISSIONS.length > 0);
  assert.ok(SECTIONS.get('NOTES').length > 0);
});

test('parameters: unique names; every data.<field> the code reads and every enabling condition names one', () => {
  const names = allParameters().map((p) => p.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'duplicate parameter names');
  const read = new Set([...CODE.matchAll(/\bdata\.([A-Za-z_]\w*)/g)].map((m) => m[1]));
  read.delete('gtmOnSuccess');
  read.delete('gtmOnFailure');
  // Fields read as data[name] from the code's own lists.
  for (const listName of ['CONSENT_PURPOSES', 'IDENTITY_FIELDS']) {
    const list = new RegExp(`const ${listName} = \\[([^\\]]*)\\]`).exec(CODE);
    assert.ok(list, `${listName} not found in the code`);
    for (const m of list[1].matchAll(/'([^']+)'/g)) read.add(m[1]);
  }
  assert.deepEqual([...read].filter((n) => !names.includes(n)), [], 'fields the code reads that the template does not define');
  for (const p of allParameters()) {
    for (const c of p.enablingConditions || []) assert.ok(names.includes(c.paramName), `${p.name}: enabling condition on unknown ${c.paramName}`);
    if (p.type === 'SELECT' && p.defaultValue !== undefined) {
      assert.ok(p.selectItems.some((i) => i.value === p.defaultValue), `${p.name}: default ${p.defaultValue} is not one of its items`);
    }
  }
  // The action selector offers exactly the actions the code handles.
  const handled = /const ACTIONS = \{([^}]*)\}/.exec(CODE)[1].match(/(\w+):/g).map((s) => s.slice(0, -1));
  assert.deepEqual(parameter('action').selectItems.map((i) => i.value), handled);
});

test('the code keeps to sandboxed JavaScript (ES5.1 with const/let and arrow functions, no globals)', () => {
  const code = CODE.replace(/'(?:[^'\\]|\\.)*'/g, "''").replace(/\/\/.*$/gm, '');
  const forbidden = {
    'new ': /\bnew\s/, this: /\bthis\b/, 'typeof (use getType)': /\btypeof\b/, 'template literal': /`/,
    'spread or rest': /\.\.\./, 'for...of': /\bfor\s*\([^)]*\bof\b/, class: /\bclass\s/, 'try/catch': /\btry\s*\{/,
    'delete operator': /\bdelete\s/, instanceof: /\binstanceof\b/, 'regular expression literal': /[=(,:]\s*\/[^/*]/,
    'window or document': /\b(window|document|globalThis)\b/, timers: /\bset(Timeout|Interval)\b/,
    'async code': /\b(async|await|Promise)\b/,
  };
  for (const [what, pattern] of Object.entries(forbidden)) assert.doesNotMatch(code, pattern, `the sandbox has no ${what}`);
  for (const m of CODE.matchAll(/\brequire\(([^)]*)\)/g)) assert.match(m[1], /^'[A-Za-z]+'$/, 'require takes a literal API name');
  // The standard library: only the String and Array methods Google lists (…/templates/standard-library).
  const allowedMethods = new Set(['charAt', 'concat', 'indexOf', 'lastIndexOf', 'match', 'replace', 'search', 'slice',
    'split', 'substring', 'toLowerCase', 'toUpperCase', 'toString', 'trim', 'every', 'filter', 'forEach', 'join', 'map',
    'pop', 'push', 'reduce', 'reverse', 'shift', 'some', 'sort', 'splice', 'unshift', 'keys', 'getItem', 'setItem',
    'gtmOnSuccess', 'gtmOnFailure']);
  const used = new Set([...code.matchAll(/\.([A-Za-z]+)\(/g)].map((m) => m[1]));
  assert.deepEqual([...used].filter((m) => !allowedMethods.has(m)), [], 'methods the sandbox does not provide');
});

// ---------------------------------------------------------------- permissions

// What each API needs (Google's permissions reference); APIs absent here need none.
const API_PERMISSION = {
  callInWindow: 'access_globals', copyFromWindow: 'access_globals', setInWindow: 'access_globals',
  createArgumentsQueue: 'access_globals', injectScript: 'inject_script', logToConsole: 'logging',
  templateStorage: 'access_template_storage',
};
const NO_PERMISSION = ['getType', 'makeNumber', 'makeString', 'makeTableMap', 'Object', 'queryPermission'];

test('permissions: one for each API that needs one, and none more', () => {
  const required = [...CODE.matchAll(/\brequire\('([A-Za-z]+)'\)/g)].map((m) => m[1]);
  for (const api of required) assert.ok(api in API_PERMISSION || NO_PERMISSION.includes(api), `unknown API ${api}: add it to this test`);
  const needed = new Set(required.map((api) => API_PERMISSION[api]).filter(Boolean));
  const granted = readPermissions(PERMISSIONS);
  assert.deepEqual([...granted.ids].sort(), [...needed].sort());
  assert.equal(granted.logging, 'debug', 'the template logs in preview and debug mode only');
});

test('permissions: every window key the code names is allowed with the access it uses, and no other key', () => {
  const granted = readPermissions(PERMISSIONS).globals;
  const uses = [];
  for (const m of CODE.matchAll(/\b(callInWindow|copyFromWindow|setInWindow|createArgumentsQueue)\('([^']+)'(?:,\s*'([^']+)')?(.*)$/gm)) {
    const [, api, key, second, rest] = m;
    if (api === 'callInWindow') uses.push([key, 'execute']);
    if (api === 'copyFromWindow') uses.push([key, 'read']);
    if (api === 'setInWindow') uses.push([key, 'write'], ...(/,\s*true\);?\s*$/.test(rest) ? [[key, 'read']] : []));
    if (api === 'createArgumentsQueue') uses.push([key, 'read'], [key, 'write'], [second, 'read'], [second, 'write']);
  }
  assert.ok(uses.length >= 6, `found the code's window accesses: ${JSON.stringify(uses)}`);
  for (const [key, mode] of uses) assert.ok(granted.get(key)?.[mode], `access_globals must allow ${mode} of ${key}`);
  for (const [key, access] of granted) {
    for (const mode of ['read', 'write', 'execute']) {
      if (access[mode]) assert.ok(uses.some(([k, m]) => k === key && m === mode), `access_globals allows ${mode} of ${key}, which the code never does`);
    }
  }
});

test('permissions: the shipped Script URL is one the "Injects scripts" permission allows; http and other hosts are not', () => {
  const { scriptUrls } = readPermissions(PERMISSIONS);
  assert.equal(parameter('scriptUrl').defaultValue, SCRIPT_URL);
  assert.ok(scriptUrls.some((p) => urlMatches(p, SCRIPT_URL)));
  assert.ok(!scriptUrls.some((p) => urlMatches(p, 'http://www.example.com/tandem/tandem.js')));
  assert.ok(!scriptUrls.some((p) => urlMatches(p, 'https://cdn.elsewhere.example/tandem/tandem.js')));
});

test('a permission missing from ___WEB_PERMISSIONS___ makes the emulated API throw, as GTM does', () => {
  const permissions = readPermissions(PERMISSIONS);
  permissions.globals.delete('tandem.q');
  const gtm = createGtm({ permissions });
  assert.throws(() => gtm.fire({ action: 'track', eventName: 'Lead', params: [] }), PermissionError);
});

// ---------------------------------------------------------------- the README's API

// The README's documented shapes, read from the README itself so that the two cannot drift apart.
function readmeSignatureKeys(heading) {
  const line = README.split('\n').find((l) => l.startsWith(heading));
  assert.ok(line, `README heading ${heading} not found`);
  return line.slice(line.lastIndexOf('{') + 1, line.indexOf('}')).split(',').map((k) => k.trim().replace(/\?$/, ''));
}
function readmeInitRows() {
  const rows = new Map();
  for (const m of README.matchAll(/^\| `([A-Za-z]+)` \| ([^|]*(?:\\\|[^|]*)*) \| (.*) \|$/gm)) rows.set(m[1], m[3]);
  return rows;
}
const cellKeys = (cell) => new Set([...cell.matchAll(/\b([A-Za-z]+)\??:/g)].map((m) => m[1]));

const IDENTITY_KEYS = readmeSignatureKeys("### `tandem('identify', {");
const CONSENT_KEYS = readmeSignatureKeys("### `tandem('consent', 'default' | 'update', {");

test("the event dropdown is the README's canonical event list, which is www/tandem.d.ts's StandardEvent", () => {
  const table = README.slice(README.indexOf('| Tandem / Meta | GA4 (gtag) | TikTok (ttq) |'));
  const readme = [...table.slice(0, table.indexOf('\n\n')).matchAll(/^\| ([A-Za-z]+) \|/gm)].map((m) => m[1]);
  const types = [.../export type StandardEvent =([^;]*);/.exec(TYPES)[1].matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1]);
  const dropdown = parameter('eventName').selectItems.map((i) => i.value).filter((v) => v !== '__custom__');
  assert.equal(readme.length, 18);
  assert.deepEqual(dropdown, readme);
  assert.deepEqual(types, readme);
});

test("Initialise queues tandem('init', config) with only keys the README documents, before injecting the script", async () => {
  const gtm = createGtm();
  gtm.fire({
    ...INIT,
    wasmUrl: 'https://static.example.com/tandem_bg.wasm',
    endpoint: ' https://collect.example.com/collect ',
    metaPixelId: '111111111111111, 222222222222222',
    metaLoad: true,
    googleTagId: 'G-XXXXXXX',
    googleAdsId: 'AW-123456789',
    googleAdsLabels: [{ event: 'Purchase', label: 'AbC-dEfGh' }, { event: 'Lead', label: 'XyZ' }, { event: '', label: 'orphan' }],
    googleLoad: false,
    googleSendPageView: true,
    tiktokPixelId: 'CXXXXXXXXXXXXXXXXXXX',
    tiktokLoad: true,
    cookieDomain: 'example.com',
    attributionWindowDays: '30',
    debug: true,
    consentMode: 'basic',
    gpc: 'ignore',
  });
  const expected = {
    endpoint: 'https://collect.example.com/collect',
    meta: { pixelId: ['111111111111111', '222222222222222'], load: true },
    google: { tagId: 'G-XXXXXXX', ads: { id: 'AW-123456789', labels: { Purchase: 'AbC-dEfGh', Lead: 'XyZ' } }, sendPageView: true },
    tiktok: { pixelId: 'CXXXXXXXXXXXXXXXXXXX', load: true },
    cookieDomain: 'example.com',
    attributionWindowDays: 30,
    autoPageView: true,
    debug: true,
    consentMode: 'basic',
    gpc: 'ignore',
  };
  assert.deepEqual(gtm.tandemCalls(), [['init', expected]]);
  assert.equal(gtm.win.tandem.wasmUrl, 'https://static.example.com/tandem_bg.wasm');
  assert.deepEqual(gtm.injected, [SCRIPT_URL], 'the queue is filled before the script is injected');

  const rows = readmeInitRows();
  for (const key of Object.keys(expected)) assert.ok(rows.has(key), `init key ${key} is not in the README's table`);
  for (const platform of ['meta', 'google', 'tiktok']) {
    const documented = cellKeys(rows.get(platform));
    const sent = Object.keys(expected[platform]).concat(platform === 'google' ? Object.keys(expected.google.ads) : []);
    for (const key of sent) assert.ok(documented.has(key), `${platform}.${key} is not in the README's ${platform} row`);
  }
  assert.deepEqual(gtm.signals(), [], 'no signal before the script has loaded');
  await settle();
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess']);
});

test('Initialise with only the defaults sends the smallest config', () => {
  const gtm = createGtm();
  gtm.fire({ ...INIT, endpoint: '/collect', metaPixelId: '', googleTagId: '', googleAdsId: '', googleAdsLabels: [], tiktokPixelId: '' });
  assert.deepEqual(gtm.tandemCalls(), [['init', { endpoint: '/collect', autoPageView: true, consentMode: 'advanced', gpc: 'honor' }]]);
  assert.equal(gtm.win.tandem.wasmUrl, undefined);
});

test('the stub is the README snippet\'s: window.tandem pushes its arguments object onto tandem.q', () => {
  const gtm = createGtm();
  gtm.fire({ action: 'page' });
  assert.equal(typeof gtm.win.tandem, 'function');
  assert.equal(gtm.win.tandem.q.length, 1);
  assert.equal(Object.prototype.toString.call(gtm.win.tandem.q[0]), '[object Arguments]');
  // The snippet's own stub, already on the page, is used as it is, not replaced.
  const page = createGtm();
  const snippetStub = function () { (page.win.tandem.q = page.win.tandem.q || []).push(arguments); }; // eslint-disable-line prefer-rest-params
  page.win.tandem = snippetStub;
  page.fire({ action: 'page' });
  assert.equal(page.win.tandem, snippetStub);
  assert.deepEqual(page.tandemCalls(), [['page']]);
});

test('Track: the README argument shapes, numbers from text fields, and the event id option', () => {
  const cases = [
    // [fields, expected arguments of tandem()]
    [{ eventName: 'Purchase', params: [{ name: 'value', value: '49.90' }, { name: 'currency', value: 'EUR' }, { name: 'order_id', value: '1001' }], eventId: 'order-1001' },
      ['track', 'Purchase', { value: 49.9, currency: 'EUR', order_id: '1001' }, { eventId: 'order-1001' }]],
    [{ eventName: 'AddToCart', params: [{ name: 'value', value: ' 12 ' }, { name: 'num_items', value: '3' }, { name: 'predicted_ltv', value: '120.5' }] },
      ['track', 'AddToCart', { value: 12, num_items: 3, predicted_ltv: 120.5 }]],
    [{ eventName: 'ViewContent', params: [{ name: 'value', value: 7 }, { name: 'content_ids', value: 'sku-1, sku-2' }] },
      ['track', 'ViewContent', { value: 7, content_ids: ['sku-1', 'sku-2'] }]],
    [{ eventName: 'Lead', params: [{ name: 'value', value: '' }, { name: 'currency', value: undefined }, { name: '', value: 'x' }] },
      ['track', 'Lead', {}]],
    [{ eventName: '__custom__', customEventName: ' newsletter_signup ', params: [{ name: 'plan', value: 'pro' }] },
      ['track', 'newsletter_signup', { plan: 'pro' }]],
    [{ eventName: 'Purchase', paramsObject: { contents: [{ id: 'sku-1', quantity: 2, price: 10 }], currency: 'USD' },
      params: [{ name: 'currency', value: 'EUR' }, { name: 'value', value: '20' }] },
      ['track', 'Purchase', { contents: [{ id: 'sku-1', quantity: 2, price: 10 }], currency: 'EUR', value: 20 }]],
    [{ eventName: 'Search', params: [{ name: 'search_string', value: 'red shoes' }], eventId: 42 },
      ['track', 'Search', { search_string: 'red shoes' }, { eventId: 42 }]],
  ];
  for (const [fields, expected] of cases) {
    const gtm = createGtm();
    gtm.fire({ action: 'track', ...fields });
    assert.deepEqual(gtm.tandemCalls(), [expected], JSON.stringify(fields));
    assert.deepEqual(gtm.signals(), ['gtmOnSuccess'], 'a queued track succeeds at once');
    assert.deepEqual(gtm.injected, [], 'only Initialise injects the script');
  }
});

test('Track: a value that is not a number is logged and passed on as given, for Tandem to report', () => {
  for (const bad of ['abc', '1,5', 'NaN', 'Infinity', true]) {
    const gtm = createGtm();
    gtm.fire({ action: 'track', eventName: 'Purchase', params: [{ name: 'value', value: bad }, { name: 'currency', value: 'EUR' }] });
    assert.deepEqual(gtm.tandemCalls(), [['track', 'Purchase', { value: bad, currency: 'EUR' }]]);
    assert.ok(gtm.logs.some((l) => String(l[0]).includes('value is not a number')), `logged ${bad}`);
    assert.deepEqual(gtm.signals(), ['gtmOnSuccess']);
  }
  const fine = createGtm();
  fine.fire({ action: 'track', eventName: 'Purchase', params: [{ name: 'value', value: '49.90' }, { name: 'currency', value: 'EUR' }] });
  assert.ok(!fine.logs.some((l) => String(l[0]).includes('not a number')), 'a good number is not reported');
});

test("Page view is tandem('page')", () => {
  const gtm = createGtm();
  gtm.fire({ action: 'page' });
  assert.deepEqual(gtm.tandemCalls(), [['page']]);
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess']);
});

test('Consent: the four purposes of the README, wait_for_update as a number and regions on a default only', () => {
  const cases = [
    [{ consentKind: 'default', ad_storage: 'denied', analytics_storage: 'granted', ad_user_data: 'denied', ad_personalization: 'denied', waitForUpdate: '500', consentRegion: 'AT, DE' },
      ['consent', 'default', { ad_storage: 'denied', analytics_storage: 'granted', ad_user_data: 'denied', ad_personalization: 'denied', wait_for_update: 500, region: ['AT', 'DE'] }]],
    [{ consentKind: 'update', ad_storage: 'granted', analytics_storage: '', ad_user_data: 'granted', waitForUpdate: '500', consentRegion: 'AT' },
      ['consent', 'update', { ad_storage: 'granted', ad_user_data: 'granted' }]],
    [{ consentKind: 'update', ad_storage: 'yes' }, ['consent', 'update', { ad_storage: 'yes' }]],
  ];
  for (const [fields, expected] of cases) {
    const gtm = createGtm();
    gtm.fire({ action: 'consent', ...fields });
    assert.deepEqual(gtm.tandemCalls(), [expected]);
    for (const key of Object.keys(expected[2])) {
      assert.ok(CONSENT_KEYS.includes(key) || (key === 'region' && README.includes("`region: ['AT', …]`")), `consent key ${key} is not in the README`);
    }
    assert.deepEqual(gtm.signals(), ['gtmOnSuccess']);
  }
  const none = createGtm();
  none.fire({ action: 'consent', consentKind: 'default' });
  assert.deepEqual(none.tandemCalls(), [], 'no purpose set: nothing sent');
  assert.deepEqual(none.signals(), ['gtmOnSuccess']);
});

test("Identify: the README's fields, empty ones left out, null passed on, and forgetting", () => {
  assert.deepEqual(IDENTITY_KEYS, ['email', 'phone', 'firstName', 'lastName', 'city', 'state', 'zip', 'country', 'gender', 'dateOfBirth', 'externalId']);
  const all = Object.fromEntries(IDENTITY_KEYS.map((k, i) => [k, `v${i}`]));
  const gtm = createGtm();
  gtm.fire({ action: 'identify', forgetIdentity: false, ...all });
  assert.deepEqual(gtm.tandemCalls(), [['identify', all]]);

  const some = createGtm();
  some.fire({ action: 'identify', forgetIdentity: false, email: 'ann@example.com', phone: 16505551212, city: ' ', zip: undefined, lastName: null });
  assert.deepEqual(some.tandemCalls(), [['identify', { email: 'ann@example.com', phone: 16505551212, lastName: null }]]);

  const forget = createGtm();
  forget.fire({ action: 'identify', forgetIdentity: true, email: 'ann@example.com' });
  assert.deepEqual(forget.tandemCalls(), [['identify', null]]);

  const nothing = createGtm();
  nothing.fire({ action: 'identify', forgetIdentity: false, email: '' });
  assert.deepEqual(nothing.tandemCalls(), []);
  for (const g of [gtm, some, forget, nothing]) assert.deepEqual(g.signals(), ['gtmOnSuccess']);
});

// ---------------------------------------------------------------- success and failure

test('calls fired before Initialise are queued in firing order, and Initialise still injects once', async () => {
  const gtm = createGtm();
  gtm.fire({ action: 'consent', consentKind: 'default', ad_storage: 'denied' });
  gtm.fire({ action: 'track', eventName: 'Lead', params: [] });
  gtm.fire(INIT);
  gtm.fire({ action: 'page' });
  assert.deepEqual(gtm.tandemCalls().map((c) => c[0]), ['consent', 'track', 'init', 'page']);
  await settle();
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess', 'gtmOnSuccess', 'gtmOnSuccess', 'gtmOnSuccess']);
});

test('several Initialise firings inject one script, and each firing succeeds exactly once', async () => {
  const gtm = createGtm();
  gtm.fire(INIT);
  gtm.fire(INIT);
  await settle();
  gtm.fire(INIT); // after the script has loaded
  await settle();
  assert.deepEqual(gtm.injected, [SCRIPT_URL]);
  assert.equal(gtm.callsOf('injectScript').length, 3);
  assert.ok(gtm.callsOf('injectScript').every((c) => c.args[3] === 'tandem-loader'), 'one cacheToken for every Initialise tag');
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess', 'gtmOnSuccess', 'gtmOnSuccess']);
});

test('a script that fails to load: every Initialise firing fails once, never succeeds; later tracks fail too', async () => {
  const gtm = createGtm({ scriptOutcome: () => 'error' });
  gtm.fire(INIT);
  gtm.fire(INIT);
  await settle();
  assert.deepEqual(gtm.signals(), ['gtmOnFailure', 'gtmOnFailure']);
  gtm.fire({ action: 'track', eventName: 'Lead', params: [] });
  gtm.fire({ action: 'consent', consentKind: 'update', ad_storage: 'granted' });
  assert.deepEqual(gtm.signals(), ['gtmOnFailure', 'gtmOnFailure', 'gtmOnFailure', 'gtmOnFailure']);
  assert.ok(gtm.logs.some((l) => String(l[0]).includes('could not be loaded')));
});

test('a track before the script failed succeeded when queued: success means handed to Tandem', async () => {
  const gtm = createGtm({ scriptOutcome: () => 'error' });
  gtm.fire(INIT);
  gtm.fire({ action: 'track', eventName: 'Lead', params: [] });
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess']);
  await settle();
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess', 'gtmOnFailure']);
});

test('Initialise fails, touching nothing, when the permission refuses the URL or there is none', () => {
  for (const scriptUrl of ['https://cdn.elsewhere.example/tandem.js', 'http://www.example.com/tandem/tandem.js', '', undefined]) {
    const gtm = createGtm();
    gtm.fire({ ...INIT, scriptUrl });
    assert.deepEqual(gtm.signals(), ['gtmOnFailure'], String(scriptUrl));
    assert.deepEqual(gtm.injected, []);
    assert.equal(gtm.win.tandem, undefined);
  }
});

test('GTM calling back twice, or both ways, still gives each firing one signal', () => {
  for (const misbehave of [(ok, ko) => { ok(); ok(); }, (ok, ko) => { ok(); ko(); }, (ok, ko) => { ko(); ok(); ko(); }]) {
    const gtm = createGtm();
    gtm.mocks.set('injectScript', (url, onSuccess, onFailure) => misbehave(onSuccess, onFailure));
    gtm.fire(INIT);
    assert.equal(gtm.signals().length, 1, misbehave.toString());
  }
});

test('window.tandem taken by something else: every action fails and nothing is injected', () => {
  for (const fields of [INIT, { action: 'track', eventName: 'Lead', params: [] }, { action: 'page' }]) {
    const gtm = createGtm({ win: { tandem: { not: 'Tandem' } } });
    gtm.fire(fields);
    assert.deepEqual(gtm.signals(), ['gtmOnFailure'], fields.action);
    assert.deepEqual(gtm.injected, []);
  }
});

test('with the live tag on the page, calls go straight to it, and a refused event is logged', () => {
  const received = [];
  const live = function (...args) { received.push(args); return args[0] === 'track' && args[1] === 'Bad name' ? null : 'ev-1'; };
  live.loaded = true;
  live.q = [];
  const gtm = createGtm({ win: { tandem: live } });
  gtm.fire({ action: 'track', eventName: 'Lead', params: [] });
  gtm.fire({ action: 'track', eventName: '__custom__', customEventName: 'Bad name', params: [] });
  assert.deepEqual(received, [['track', 'Lead', {}], ['track', 'Bad name', {}]]);
  assert.deepEqual(live.q, []);
  assert.ok(gtm.logs.some((l) => String(l[0]).includes('Tandem refused this event')));
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess', 'gtmOnSuccess']);
});

test('an unknown action fails', () => {
  const gtm = createGtm();
  gtm.fire({ action: 'nope' });
  assert.deepEqual(gtm.signals(), ['gtmOnFailure']);
});

// ---------------------------------------------------------------- the real loader

test('the real loader (www/loader.js) takes the stub the template built and replays its queue', async () => {
  const requests = [];
  const warnings = [];
  const win = {
    location: { href: 'https://www.example.com/thank-you' },
    document: { cookie: '', referrer: '', visibilityState: 'visible', addEventListener() {} },
    navigator: { sendBeacon: () => false },
    console: { error: (...a) => warnings.push(a), warn: (...a) => warnings.push(a), log() {} },
    addEventListener() {},
    fetch(url, init) {
      requests.push({ url, body: JSON.parse(init.body) });
      return Promise.resolve({ status: 200 });
    },
  };
  // The page realm has no fetch of its own, so the loader takes its plain-JS path at once: the
  // same stub protocol as the wasm path, and events that can be read off win.fetch.
  const page = vm.createContext({ TANDEM_VERSION: '0.0.0-gtm-test', setTimeout, clearTimeout, URL });
  vm.runInContext(LOADER, page, { filename: 'www/loader.js' });
  const gtm = createGtm({ win, onScriptLoad: (src) => page.bootTandem(win, { src, nonce: '', wasm: null }) });

  gtm.fire({ action: 'consent', consentKind: 'default', ad_storage: 'denied', ad_user_data: 'denied' });
  gtm.fire(INIT);
  gtm.fire({ action: 'track', eventName: 'Purchase', eventId: 'order-1001',
    params: [{ name: 'value', value: '49.90' }, { name: 'currency', value: 'EUR' }, { name: 'order_id', value: '1001' }] });
  const stub = win.tandem;
  assert.equal(stub.q.length, 3);
  await settle();
  assert.notEqual(win.tandem, stub, 'the loader replaced the stub');
  assert.equal(win.tandem.loaded, true);
  assert.equal(stub.q.length, 0, 'the queue was replayed');
  gtm.fire({ action: 'track', eventName: 'Lead', params: [], eventId: 'lead-7' }); // straight to the live tag

  let events = [];
  for (let i = 0; i < 50 && events.length < 3; i++) {
    await new Promise((r) => setTimeout(r, 5));
    events = requests.flatMap((r) => r.body.events);
  }
  assert.deepEqual(events.map((e) => e.event_name), ['PageView', 'Purchase', 'Lead']);
  const purchase = events[1];
  assert.equal(purchase.event_id, 'order-1001');
  assert.deepEqual(purchase.custom_data, { value: 49.9, currency: 'EUR', order_id: '1001' });
  assert.equal(purchase.consent.ad_storage, 'denied', 'the consent default queued before init applied');
  assert.equal(events[2].event_id, 'lead-7');
  assert.ok(requests.every((r) => r.url === 'https://www.example.com/collect'));
  assert.deepEqual(warnings.filter((w) => String(w[0]).startsWith('[tandem]') && !String(w[0]).includes('WebAssembly could not start')), [], 'no error reported');
  assert.deepEqual(gtm.signals(), ['gtmOnSuccess', 'gtmOnSuccess', 'gtmOnSuccess', 'gtmOnSuccess']);
});

// ---------------------------------------------------------------- the template's own ___TESTS___

// The YAML GTM writes for tests: a `scenarios` list of `name` and `code: |-` blocks, and `setup: |-`.
function parseTests(yaml) {
  const lines = yaml.split('\n');
  const scenarios = [];
  let setup = '';
  let block = null; // { indent, lines, done(text) }
  for (const line of lines) {
    if (block) {
      if (line.trim() === '' || line.startsWith(' '.repeat(block.indent))) {
        block.lines.push(line.slice(block.indent));
        continue;
      }
      block.done(block.lines.join('\n').trimEnd());
      block = null;
    }
    let m;
    if (line === 'scenarios:' || line.trim() === '') continue;
    if ((m = /^- name: (.+)$/.exec(line))) scenarios.push({ name: m[1].replace(/^'(.*)'$/, '$1') });
    else if (line === '  code: |-') block = { indent: 4, lines: [], done: (t) => { scenarios.at(-1).code = t; } };
    else if (line === 'setup: |-') block = { indent: 2, lines: [], done: (t) => { setup = t; } };
    else throw new Error(`unexpected line in ___TESTS___: ${line}`);
  }
  if (block) block.done(block.lines.join('\n').trimEnd());
  return { scenarios, setup };
}

// Structural equality, as GTM's assertions compare sandbox values (no prototypes, no realms).
function same(a, b) {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
}

/** Runs one scenario with GTM's test APIs; throws on a failed assertion. */
function runScenario(setup, code) {
  const gtm = createGtm();
  const failure = (message) => { throw new assert.AssertionError({ message }); };
  const assertApi = (api) => {
    const made = () => gtm.callsOf(api);
    return {
      wasCalled: () => made().length || failure(`${api} was not called`),
      wasNotCalled: () => !made().length || failure(`${api} was called`),
      wasCalledWith: (...args) => made().some((c) => same(c.args, args))
        || failure(`${api} was not called with ${JSON.stringify(args)}; calls: ${JSON.stringify(made().map((c) => c.args))}`),
      wasNotCalledWith: (...args) => !made().some((c) => same(c.args, args)) || failure(`${api} was called with ${JSON.stringify(args)}`),
    };
  };
  const assertThat = (actual) => ({
    isEqualTo: (expected) => same(actual, expected) || failure(`${JSON.stringify(actual)} is not ${JSON.stringify(expected)}`),
    isNotEqualTo: (expected) => !same(actual, expected) || failure(`${JSON.stringify(actual)} is ${JSON.stringify(expected)}`),
    isTrue: () => actual === true || failure(`${actual} is not true`),
    isFalse: () => actual === false || failure(`${actual} is not false`),
    isUndefined: () => actual === undefined || failure(`${actual} is not undefined`),
    isDefined: () => actual !== undefined || failure('undefined'),
  });
  const context = vm.createContext({
    require: gtm.require,
    mock: (api, value) => gtm.mocks.set(api, value),
    runCode: (data) => gtm.fire(data),
    assertApi,
    assertThat,
    fail: failure,
  });
  vm.runInContext(`(function () {\n${setup}\n${code}\n})()`, context, { filename: 'template.tpl ___TESTS___' });
}

const TESTS = parseTests(SECTIONS.get('TESTS'));

test("the template's ___TESTS___ section is GTM's test YAML, with uniquely named scenarios", () => {
  assert.ok(TESTS.scenarios.length >= 10);
  const names = TESTS.scenarios.map((s) => s.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), []);
  for (const s of TESTS.scenarios) assert.ok(s.code && /\brunCode\(/.test(s.code), `${s.name} runs the template`);
  assert.match(TESTS.setup, /templateStorage\.clear\(\)/, 'each scenario starts without a loader state from another');
});

for (const scenario of TESTS.scenarios) {
  test(`___TESTS___: ${scenario.name}`, () => runScenario(TESTS.setup, scenario.code));
}

test('the ___TESTS___ runner fails a scenario whose assertion is false', () => {
  assert.throws(() => runScenario(TESTS.setup, "runCode({action: 'page'});\nassertApi('gtmOnFailure').wasCalled();"), assert.AssertionError);
  assert.throws(() => runScenario(TESTS.setup, "runCode({action: 'page'});\nassertApi('callInWindow').wasCalledWith('tandem', 'page', undefined);"), assert.AssertionError);
});
