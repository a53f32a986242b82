// Tandem loader: the code behind `window.tandem`.
//
// scripts/build.mjs wraps this file twice: into dist/tandem.js (a classic script, the file the
// snippet points at) and into dist/tandem.mjs (an ES module). In both, `createGlue` (wasm-bindgen's
// generated glue, wrapped in a factory so a crashed instance can be replaced by a fresh one) and
// `TANDEM_VERSION` are defined before this code.
//
// What lives here and why it is JS, not Rust:
// - the stub protocol (queue, replay, doubled snippet or loader), which must work before any wasm;
// - turning whatever the page passes (cycles, throwing getters, Symbols, BigInt, megabyte strings,
//   polluted prototypes) into JSON text, because only JS can look at those values safely;
// - loading and re-instantiating the wasm, and reporting errors to onError and the console.
// Everything about events (validation, mapping, ids, cookies, payloads) is decided in the wasm.

var INVALID_KEY = '\u0000tandem_invalid';
var MAX_DEPTH = 10;
var MAX_STRING = 4096;
var MAX_ITEMS = 500;
var MAX_TOTAL_CHARS = 65536;
var MAX_HELD = 100;

function describeError(error) {
  try {
    return String((error && error.message) || error);
  } catch (e) {
    return 'an unprintable error';
  }
}

function invalidMarker(reason) {
  return '{' + JSON.stringify(INVALID_KEY) + ':' + JSON.stringify(reason) + '}';
}

// Writes `value` as JSON text without ever throwing, and without JSON.stringify on objects: that
// would call a page's (or a polluted prototype's) toJSON, follow cycles and throw on BigInt.
// Values that cannot be represented become an invalid marker the core reports by field name.
function toJson(value) {
  var state = { seen: [], chars: 0 };
  return writeJson(value, 0, state);
}

function writeJson(value, depth, state) {
  var type = typeof value;
  if (value === null || value === undefined) return 'null';
  if (type === 'boolean') return value ? 'true' : 'false';
  if (type === 'number') {
    return isFinite(value) ? String(value) : invalidMarker('a number that is not finite (' + String(value) + ')');
  }
  if (type === 'string') {
    if (value.length > MAX_STRING) {
      return invalidMarker('a string of ' + value.length + ' characters (the limit is ' + MAX_STRING + ')');
    }
    state.chars += value.length;
    return JSON.stringify(value);
  }
  if (type === 'bigint') return invalidMarker('a BigInt; pass a number or a string');
  if (type === 'symbol') return invalidMarker('a Symbol');
  if (type === 'function') return invalidMarker('a function');
  if (type !== 'object') return invalidMarker('a value of type ' + type);
  if (depth >= MAX_DEPTH) return invalidMarker('an object nested deeper than ' + MAX_DEPTH + ' levels');
  if (state.seen.indexOf(value) !== -1) return invalidMarker('a circular reference');
  if (state.chars > MAX_TOTAL_CHARS) return invalidMarker('more than ' + MAX_TOTAL_CHARS + ' characters of data in one call');
  state.seen.push(value);
  var text;
  try {
    text = writeObject(value, depth, state);
  } catch (error) {
    text = invalidMarker('an object that could not be read: ' + describeError(error));
  }
  state.seen.pop();
  return text;
}

function writeObject(value, depth, state) {
  var parts = [];
  var item;
  if (value instanceof Date) {
    return isNaN(value.getTime()) ? invalidMarker('an invalid Date') : JSON.stringify(value.toISOString());
  }
  if (Array.isArray(value)) {
    var length = Math.min(value.length, MAX_ITEMS);
    for (var i = 0; i < length; i++) {
      try {
        item = value[i];
      } catch (error) {
        parts.push(invalidMarker('an element whose getter threw: ' + describeError(error)));
        continue;
      }
      parts.push(writeJson(item, depth + 1, state));
    }
    if (value.length > MAX_ITEMS) {
      parts.push(invalidMarker((value.length - MAX_ITEMS) + ' more elements (the limit is ' + MAX_ITEMS + ')'));
    }
    return '[' + parts.join(',') + ']';
  }
  var keys = Object.keys(value);
  for (var k = 0; k < keys.length && k < MAX_ITEMS; k++) {
    var key = keys[k];
    try {
      item = value[key];
    } catch (error) {
      parts.push(JSON.stringify(key) + ':' + invalidMarker('a property whose getter threw: ' + describeError(error)));
      continue;
    }
    if (item === undefined) continue;
    parts.push(JSON.stringify(key) + ':' + writeJson(item, depth + 1, state));
  }
  return '{' + parts.join(',') + '}';
}

function argumentsToArray(args) {
  var list = [];
  for (var i = 0; i < args.length; i++) list.push(args[i]);
  return list;
}

// Fetches and compiles the wasm off the main thread where the browser can (compileStreaming), and
// falls back to an ArrayBuffer when the server sends a wrong MIME type, which compileStreaming rejects.
function compileWasm(url) {
  return fetch(url, { credentials: 'same-origin' }).then(function (response) {
    if (!response.ok) throw new Error('the wasm file answered HTTP ' + response.status + ' at ' + url);
    var mime = (response.headers.get('Content-Type') || '').split(';')[0].trim();
    if (mime === 'application/wasm' && typeof WebAssembly.compileStreaming === 'function') {
      var copy = response.clone();
      return WebAssembly.compileStreaming(response).catch(function () {
        return copy.arrayBuffer().then(function (bytes) { return WebAssembly.compile(bytes); });
      });
    }
    return response.arrayBuffer().then(function (bytes) { return WebAssembly.compile(bytes); });
  });
}

function wasmUrlFor(win, script) {
  var stub = win.tandem;
  var explicit = (stub && typeof stub.wasmUrl === 'string' && stub.wasmUrl) || script.wasm;
  try {
    return String(new URL(explicit || 'tandem_bg.wasm', script.src || win.location.href));
  } catch (error) {
    return 'tandem_bg.wasm';
  }
}

var EVENT_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
var CLICK_ID_NAMES = ['gclid', 'gbraid', 'wbraid', 'dclid', 'fbclid', 'ttclid', 'msclkid', 'li_fat_id', 'ScCid', 'epik', 'rdt_cid', 'twclid'];

function readCookie(doc, name) {
  var parts = String(doc.cookie || '').split('; ');
  for (var i = 0; i < parts.length; i++) {
    if (parts[i].indexOf(name + '=') === 0) return parts[i].slice(name.length + 1);
  }
  return '';
}

function randomId() {
  try {
    if (crypto.randomUUID) return crypto.randomUUID();
  } catch (e) { /* fall through */ }
  return 'js-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12);
}

// The plain-JS path used when WebAssembly cannot run: a minimal, schema-valid endpoint event with
// the canonical money fields, the stored click IDs and the Meta cookies, under the same event_id
// rules as the wasm path. Anything it cannot vouch for is left out rather than guessed.
function createJsPath(win, version, report) {
  var doc = win.document;
  var endpoint = '/collect';
  function send(body) {
    try {
      if (win.navigator.sendBeacon && win.navigator.sendBeacon(endpoint, body)) return;
    } catch (e) { /* fall through to fetch */ }
    try {
      win.fetch(endpoint, { method: 'POST', body: body, keepalive: true, credentials: 'include', headers: { 'Content-Type': 'text/plain' } }).catch(function () {});
    } catch (e) { /* nothing left to try */ }
  }
  function storedClickIds() {
    var out = {};
    try {
      var stored = JSON.parse(win.localStorage.getItem('tandem:attribution') || '{}').click_ids || {};
      for (var i = 0; i < CLICK_ID_NAMES.length; i++) {
        var entry = stored[CLICK_ID_NAMES[i]];
        if (entry && typeof entry.value === 'string' && entry.value.length <= 500 && Number.isInteger(entry.ts)) {
          out[CLICK_ID_NAMES[i]] = { value: entry.value, ts: entry.ts };
        }
      }
    } catch (e) { /* unreadable storage: no click IDs */ }
    return out;
  }
  function track(name, params, options) {
    if (typeof name !== 'string' || !name || name.length > 40) {
      report({ code: 'invalid_event_name', message: 'The event name must be a string of 1 to 40 characters', input: String(name) });
      return null;
    }
    params = params && typeof params === 'object' ? params : {};
    var custom = {};
    if (typeof params.value === 'number' && isFinite(params.value) && params.value >= 0) custom.value = params.value;
    if (typeof params.currency === 'string' && /^[A-Za-z]{3}$/.test(params.currency)) custom.currency = params.currency.toUpperCase();
    var order = params.order_id;
    if ((typeof order === 'string' || typeof order === 'number') && EVENT_ID_PATTERN.test(String(order))) custom.order_id = String(order);
    if (name === 'Purchase' && (custom.value === undefined || custom.currency === undefined)) {
      report({ code: 'missing_field', message: 'A Purchase needs a numeric value and an ISO 4217 currency', input: '' });
      return null;
    }
    var eventId = options && options.eventId !== undefined ? String(options.eventId) : randomId();
    if (!EVENT_ID_PATTERN.test(eventId)) {
      report({ code: 'invalid_event_id', message: 'options.eventId must be 1 to 64 characters of A-Z a-z 0-9 _ . : -', input: eventId });
      return null;
    }
    var now = Date.now();
    var userData = {};
    var fbp = readCookie(doc, '_fbp');
    var fbc = readCookie(doc, '_fbc');
    if (/^fb\.[0-9]+\.[0-9]+\.[^.]+(\.[^.]+)?$/.test(fbp)) userData.fbp = fbp;
    if (/^fb\.[0-9]+\.[0-9]+\..+$/.test(fbc)) userData.fbc = fbc;
    var clientId = readCookie(doc, '_tandem_cid');
    send(JSON.stringify({ events: [{
      event_id: eventId,
      event_name: name,
      event_time: Math.floor(now / 1000),
      event_time_ms: now,
      event_source_url: String(win.location.href).slice(0, 2048),
      referrer: String(doc.referrer || '').slice(0, 2048),
      action_source: 'website',
      user_data: userData,
      custom_data: custom,
      click_ids: storedClickIds(),
      utm: {},
      client_id: /^[A-Za-z0-9_-]{1,64}$/.test(clientId) ? clientId : randomId(),
      tag_version: version,
    }] }));
    return eventId;
  }
  return function (command, a, b, c) {
    if (command === 'init') {
      if (a && typeof a.endpoint === 'string' && a.endpoint) endpoint = a.endpoint;
      var quiet = b === true; // the wasm path already ran init on this page
      if (!quiet && (!a || a.autoPageView !== false)) track('PageView', {}, undefined);
      return null;
    }
    if (command === 'track') return track(a, b, c);
    if (command === 'page') return track('PageView', {}, undefined);
    return null;
  };
}

// Installs Tandem on `win` (idempotent) and returns the current `win.tandem`.
// `script` = { src: the loader's own URL, nonce: its CSP nonce, wasm: an optional wasm URL }.
function bootTandem(win, script) {
  var existing = win.tandem;
  if (typeof existing === 'function' && existing.__tandem) return existing;

  var stub = typeof existing === 'function' ? existing : function () {
    (stub.q = stub.q || []).push(arguments);
  };
  stub.q = stub.q || [];
  stub.__tandem = TANDEM_VERSION;
  win.tandem = stub;

  var console_ = win.console || { error: function () {}, warn: function () {}, log: function () {} };
  var glue = null; // the live wasm instance's exports, or null while (re)loading
  var compiled = null; // the WebAssembly.Module, kept to re-instantiate after a crash
  var initConfig = null; // the first init call's config, replayed on a fresh instance
  var onError = null;
  var debug = false;
  var held = []; // calls made after load but before init
  var restarts = 0;
  var MAX_RESTARTS = 3;

  function report(error) {
    try {
      console_.error('[tandem] ' + error.message, error.input === undefined ? '' : error.input);
    } catch (e) { /* a console that throws must not matter */ }
    if (onError) {
      try {
        onError({ code: error.code, message: error.message, input: error.input });
      } catch (e) { /* the site's handler threw; nothing more to do */ }
    }
  }

  function warn(message) {
    if (!debug) return;
    try { console_.warn('[tandem] ' + message); } catch (e) { /* ignore */ }
  }

  function live() {
    try {
      return dispatch(argumentsToArray(arguments));
    } catch (error) {
      report({ code: 'internal_error', message: 'Tandem failed to handle a call: ' + describeError(error), input: '' });
      return null;
    }
  }
  live.__tandem = TANDEM_VERSION;
  live.loaded = true;
  live.version = TANDEM_VERSION;
  live.q = [];

  function dispatch(args) {
    var command = args[0];
    if (!glue) {
      // The instance is being replaced after a crash: keep the call for the fresh one.
      stub.q.push(args);
      return null;
    }
    if (command === 'init') return init(args[1]);
    if (initConfig === null) {
      if (held.length < MAX_HELD) {
        held.push(args);
      } else {
        report({ code: 'not_initialized', message: "More than " + MAX_HELD + " calls before tandem('init', config); this one was dropped", input: String(command) });
      }
      return null;
    }
    return invoke(command, args.slice(1));
  }

  function captureReporting(config) {
    try {
      onError = config && typeof config.onError === 'function' ? config.onError : null;
      debug = !!config && config.debug === true;
    } catch (error) { /* a throwing getter on the config; the core reports the bad keys */ }
  }

  function init(config) {
    if (initConfig !== null) {
      warn("tandem('init') was called again; the first configuration stays in force");
      return null;
    }
    var forCore = {};
    if (config && typeof config === 'object') {
      var keys = Object.keys(config);
      for (var i = 0; i < keys.length; i++) {
        if (keys[i] === 'onError') continue;
        try { forCore[keys[i]] = config[keys[i]]; } catch (error) { forCore[keys[i]] = undefined; }
      }
      captureReporting(config);
    } else {
      forCore = config;
    }
    initConfig = forCore;
    invoke('init', [forCore]);
    var waiting = held;
    held = [];
    for (var j = 0; j < waiting.length; j++) dispatch(waiting[j]);
    return null;
  }

  function invoke(command, args) {
    var reply;
    try {
      reply = glue.command(typeof command === 'string' ? command : toJson(command), toJson(args));
    } catch (error) {
      // A trap leaves wasm-bindgen's state borrowed: every later call on this instance would fail.
      // Throw the instance away and carry on with a fresh one (calls meanwhile are queued).
      restart(error);
      return null;
    }
    var outcome;
    try {
      outcome = JSON.parse(reply);
    } catch (error) {
      report({ code: 'internal_error', message: 'Tandem returned an unreadable reply', input: String(reply).slice(0, 200) });
      return null;
    }
    var errors = outcome.errors || [];
    for (var i = 0; i < errors.length; i++) report(errors[i]);
    var warnings = outcome.warnings || [];
    for (var j = 0; j < warnings.length; j++) warn(warnings[j]);
    return outcome.event_id === undefined ? null : outcome.event_id;
  }

  function instantiate() {
    var fresh = createGlue();
    return fresh.init({ module_or_path: compiled }).then(function () {
      fresh.set_script_nonce(script.nonce || '');
      return fresh;
    });
  }

  function goLive(fresh) {
    glue = fresh;
    if (initConfig !== null) {
      // Re-create the core's state on a fresh instance after a crash, without repeating what init
      // already did on the page (platform setup, the automatic PageView).
      invoke('restore', [initConfig]);
    }
    // Replay in order; calls queued during the replay land at the end of the same queue.
    while (stub.q.length) {
      var next = stub.q.shift();
      dispatch(argumentsToArray(next));
    }
    win.tandem = live;
    stub.loaded = true;
  }

  function restart(error) {
    glue = null;
    win.tandem = stub;
    report({ code: 'internal_error', message: 'Tandem hit an internal error and restarted; queued calls are kept (' + describeError(error) + ')', input: '' });
    if (restarts >= MAX_RESTARTS) return; // a crash loop: stay queued rather than spin
    restarts += 1;
    instantiate().then(goLive, fail);
  }

  // WebAssembly refused (CSP without 'wasm-unsafe-eval', Lockdown Mode, a blocked or missing
  // file): say so once, and send every conversion to the first-party endpoint on plain JS, so its
  // server-side copy survives. The pixels get nothing on this path: their mapping lives in the wasm.
  function fail(error) {
    try {
      console_.warn('[tandem] WebAssembly could not start (' + describeError(error) + '); events go to the first-party endpoint only');
    } catch (e) { /* ignore */ }
    var fallback = createJsPath(win, TANDEM_VERSION, report);
    function degraded() {
      var args = argumentsToArray(arguments);
      try {
        if (args[0] === 'init') {
          if (initConfig !== null) return null;
          initConfig = args[1];
          captureReporting(initConfig);
          return fallback('init', initConfig);
        }
        if (initConfig === null) {
          if (held.length < MAX_HELD) held.push(args);
          return null;
        }
        return fallback(args[0], args[1], args[2], args[3]);
      } catch (e) {
        return null;
      }
    }
    degraded.__tandem = TANDEM_VERSION;
    degraded.loaded = true;
    degraded.degraded = true;
    degraded.version = TANDEM_VERSION;
    degraded.q = [];
    if (initConfig !== null) fallback('init', initConfig, true);
    var queued = stub.q.splice(0, stub.q.length);
    var waiting = held;
    held = [];
    win.tandem = degraded;
    for (var i = 0; i < queued.length; i++) degraded.apply(null, argumentsToArray(queued[i]));
    for (var j = 0; j < waiting.length; j++) degraded.apply(null, waiting[j]);
  }

  if (typeof WebAssembly !== 'object' || typeof fetch !== 'function') {
    fail(new Error('this browser has no WebAssembly or fetch'));
    return win.tandem;
  }
  compileWasm(wasmUrlFor(win, script))
    .then(function (module) {
      compiled = module;
      return instantiate();
    })
    .then(goLive)
    .catch(fail);
  return stub;
}
