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

// JSON.stringify of data built here (queues, batches, the sent log). A page's own
// Array.prototype.toJSON (Prototype.js 1.6 defines one) would write every array in it as a
// string: it is set aside for the call, and put back as it was.
function stringify(value) {
  var proto = Array.prototype, own = Object.getOwnPropertyDescriptor(proto, 'toJSON');
  var aside = own && own.configurable;
  if (aside) delete proto.toJSON;
  try {
    return JSON.stringify(value);
  } finally {
    if (aside) Object.defineProperty(proto, 'toJSON', own);
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
  if (type === 'string') {
    if (value.length > MAX_STRING) {
      return invalidMarker(words('LH', 'a string of ') + value.length + words('LI', ' characters (the limit is ') + MAX_STRING + ')');
    }
    state.chars += value.length;
    return JSON.stringify(value);
  }
  if (type === 'number') {
    return isFinite(value) ? '' + value : invalidMarker(words('LJ', 'a number that is not finite (') + String(value) + ')');
  }
  if (value === null || value === undefined) return 'null';
  if (type === 'boolean') return value ? 'true' : 'false';
  if (type === 'bigint') return invalidMarker(words('LK', 'a BigInt; pass a number or a string'));
  if (type === 'symbol') return invalidMarker('a Symbol');
  if (type === 'function') return invalidMarker('a function');
  if (type !== 'object') return invalidMarker(words('LL', 'a value of type ') + type);
  if (depth >= MAX_DEPTH) return invalidMarker(words('LM', 'an object nested deeper than ') + MAX_DEPTH + words('LN', ' levels'));
  var seen = state.seen; // the objects on the path here: at most MAX_DEPTH
  for (var s = 0; s < seen.length; s++) {
    if (seen[s] === value) return invalidMarker(words('LO', 'a circular reference'));
  }
  if (state.chars > MAX_TOTAL_CHARS) return invalidMarker(words('LP', 'more than ') + MAX_TOTAL_CHARS + words('LQ', ' characters of data in one call'));
  seen.push(value);
  var text;
  try {
    text = writeObject(value, depth, state);
  } catch (error) {
    text = invalidMarker(words('LR', 'an object that could not be read: ') + describeError(error));
  }
  seen.pop();
  return text;
}
// A page passes the same few parameter names on every call: their JSON text is kept rather than
// made again (a JSON.stringify call costs several times a Map lookup). Bounded, as the names are
// the page's; values are never kept.
var quotedKeys = new Map();
function quotedKey(key) {
  var quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (quotedKeys.size < 256) quotedKeys.set(key, quoted);
  }
  return quoted;
}
// Appends to one string rather than joining an array of parts: track() serialises its arguments on
// every call, and the arrays were most of this function's cost.
function writeObject(value, depth, state) {
  var text, item, i, separator = '';
  if (Array.isArray(value)) {
    var length = Math.min(value.length, MAX_ITEMS);
    text = '[';
    for (i = 0; i < length; i++) {
      if (i) text += ',';
      try {
        item = value[i];
      } catch (error) {
        text += invalidMarker(words('LS', 'an element whose getter threw: ') + describeError(error));
        continue;
      }
      text += writeJson(item, depth + 1, state);
    }
    if (value.length > MAX_ITEMS) {
      text += (length ? ',' : '') + invalidMarker((value.length - MAX_ITEMS) + words('LT', ' more elements (the limit is ') + MAX_ITEMS + ')');
    }
    return text + ']';
  }
  if (value instanceof Date) {
    return isNaN(value.getTime()) ? invalidMarker(words('LU', 'an invalid Date')) : JSON.stringify(value.toISOString());
  }
  var keys = Object.keys(value);
  var count = Math.min(keys.length, MAX_ITEMS);
  text = '{';
  for (i = 0; i < count; i++) {
    var key = keys[i];
    try {
      item = value[key];
    } catch (error) {
      text += separator + quotedKey(key) + ':' + invalidMarker(words('LV', 'a property whose getter threw: ') + describeError(error));
      separator = ',';
      continue;
    }
    if (item === undefined) continue;
    text += separator + quotedKey(key) + ':' + writeJson(item, depth + 1, state);
    separator = ',';
  }
  return text + '}';
}

// The wasm's reply (src/shell/mod.rs, `reply`): the bare event_id, or '' for none, when there is
// nothing to report; JSON with errors and warnings otherwise.
function readReply(reply) {
  if (reply[0] === '{') return JSON.parse(reply);
  return { event_id: reply || null };
}

// Anything a page pushed onto `tandem.q` by hand (null, a number) becomes an empty call, which is
// reported, rather than a TypeError in the middle of a replay.
function argumentsToArray(args) {
  var list = [];
  for (var i = 0; args && i < args.length; i++) list.push(args[i]);
  return list;
}

// Fetches and compiles the wasm off the main thread where the browser can (compileStreaming), and
// falls back to an ArrayBuffer when the server sends a wrong MIME type, which compileStreaming rejects.
// `onResponse` is called as the response arrives, before compiling starts.
function compileWasm(url, onResponse) {
  return fetch(url, { credentials: 'same-origin' }).then(function (response) {
    onResponse();
    if (!response.ok) throw new Error('the wasm file answered HTTP ' + response.status + ' at ' + url);
    var mime = (response.headers.get('Content-Type') || '').split(';')[0].trim();
    if (mime === 'application/wasm' && typeof WebAssembly.compileStreaming === 'function') {
      var copy = response.clone();
      return WebAssembly.compileStreaming(response).catch(function () {
        return copy.arrayBuffer().then(WebAssembly.compile);
      });
    }
    return response.arrayBuffer().then(WebAssembly.compile);
  });
}

// Whether `module` is this build's wasm (scripts/build.mjs writes the same id into both); anything
// else, including no module at all, is not.
function ours(module) {
  try {
    // Not a TextDecoder: its first use costs a quarter of a millisecond, on the way to init.
    return String.fromCharCode.apply(null, new Uint8Array(WebAssembly.Module.customSections(module, 't')[0])) === TANDEM_WASM;
  } catch (error) {
    return false; // not a WebAssembly.Module
  }
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

// The loader's own message text, as the wasm's (src/core/error.rs, `messages!`): scripts/build.mjs
// replaces each `words(key, text)` with its token and puts the text in the message file. A text
// the core's messages have already is named by their key; the loader's others have keys `L0`-`Lz`,
// one text each. Unbuilt (the loader run in Node by the tests) a call is its text.
function words(key, text) {
  return text;
}

// How long reports wait for the message text before they are told with keys in its place.
var MESSAGES_TIMEOUT_MS = 10000;
// Whether this copy of the plain-JS path (createJsPath) delivers as a page that stays does: sends
// at once, retries, takes over what earlier pages left. The loader's own copy does not
// (scripts/build.mjs drops this line from tandem.js and writes each test of it as a bare
// `return;`, so terser drops what follows): WebAssembly runs on nearly every page, and that
// code is in TANDEM_JS_PATH, a file next to the loader, fetched only when it does not (see
// fail). The loader's copy turns calls into events, stores them, and beacons them at unload: what
// a page closing before the wasm or that file arrived needs.
var JS_PATH_DELIVERY = true;
// How long the loader waits for TANDEM_JS_PATH before its own copy takes the calls.
var JS_PATH_TIMEOUT_MS = 10000;
var EVENT_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
var CLICK_ID_NAMES = ['gclid', 'gbraid', 'wbraid', 'dclid', 'fbclid', 'ttclid', 'msclkid', 'li_fat_id', 'ScCid', 'epik', 'rdt_cid', 'twclid'];

function readCookie(doc, name) {
  var parts = String(doc.cookie || '').split('; ');
  for (var i = 0; i < parts.length; i++) {
    if (parts[i].indexOf(name + '=') === 0) return parts[i].slice(name.length + 1);
  }
  return '';
}

// Also takes an event's optional referrer: none stays none.
function withoutClickIds(url) {
  return url && String(url).replace(new RegExp('([?&])(' + CLICK_ID_NAMES.join('|') + ')=[^&#]*&?', 'g'), '$1').replace(/[?&]+(#|$)/, '$1');
}

function randomId() {
  try {
    return crypto.randomUUID();
  } catch (e) { /* no crypto.randomUUID (an insecure context, an old browser): fall through */ }
  return 'js-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 12);
}

// The plain-JS path used when WebAssembly cannot run: a minimal, schema-valid endpoint event with
// the canonical money fields, the stored click IDs and the Meta cookies, under the same event_id
// rules as the wasm path. Anything it cannot vouch for is left out rather than guessed.
// Delivery keeps the wasm path's guarantees in small: fetch keepalive with its status checked,
// retries with backoff and jitter (5xx, network, offline; 4xx dropped), the queue persisted in
// the wasm path's format (`tandem:q:<tab id>`, so either path on a later page adopts it), and
// sendBeacon on unload unless the endpoint was failing.
var QUEUE_PREFIX = 'tandem:q:';
// As the core's outbox: how long a claim on another tab's queue holds, and how long it must stand.
var CLAIM_MS = 5000;
var CLAIM_WAIT_MS = 500;
var WEEK_MS = 7 * 24 * 3600 * 1000;
// As the core's outbox (src/core/outbox.rs): a batch's bytes (one event alone may be more), the
// largest body sent with keepalive (the browser refuses more), the tag's share of the page's
// 64 KiB keepalive budget at unload.
var BATCH_BYTES = 16 * 1024;
var KEEPALIVE_MAX = 60 * 1024;
var UNLOAD_BUDGET = 48 * 1024;

// `section[key]` when it is a whole number from `low` to `high` (the core's outbox settings), else
// `fallback`; the core reports a bad one, which this path leaves as the core would use it.
function whole(section, key, low, high, fallback) {
  try {
    var value = section[key];
    if (value === Math.floor(value) && value >= low && value <= high) return value;
  } catch (e) { /* no section, or a throwing getter: the default */ }
  return fallback;
}

// With `stashOnly` the path sends nothing, adopts nothing and writes nothing but its own queue:
// it turns what a hidden page's stub queued into events for a later page to adopt (see stash).
function createJsPath(win, version, report, tabId, stashOnly) {
  var doc = win.document;
  var endpoint = '/collect';
  var key = QUEUE_PREFIX + tabId;
  var queue = []; // [endpoint URL, event], oldest first
  var sending = null; // the entries of the request on its way
  var sendingKeepalive = 0; // its body's bytes when it went with keepalive
  var failures = 0;
  var timer = 0;
  var claimTimer = 0;
  var released = false;
  var leaseUntil = Infinity; // of the queue under our key (0 once released; Infinity: none stored)
  var holdUntil = 0; // nothing is sent before (see adopt)
  var started = false; // init ran: a consent change may then adopt or store the queue
  var queueEvents = 100; // config.queue's maxEvents and maxBytes (the core's Settings), from init
  var queueBytes = 100000;
  var sentIds = [];
  var sentKeys = [];
  // Consent on this path mirrors the core's rules (src/core/consent.rs) without the wait: the
  // site's consent calls, GPC (unless gpc: 'ignore'), and basic mode dropping what ad consent
  // does not allow. No identifier leaves while ad_user_data is not granted. Defaults and updates
  // are kept apart: a default never overrides what an update set (as in gtag).
  var consentSet = { default: {}, update: {}, regional: {} };
  var consentManaged = false;
  var consentBasic = false;
  var honorGpc = true;
  function consentState() {
    var gpc = false;
    try { gpc = honorGpc && win.navigator.globalPrivacyControl === true; } catch (e) { /* no navigator */ }
    var out = {};
    ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization'].forEach(function (p, i) {
      out[p] = (consentSet.update[p] || consentSet.regional[p] || consentSet.default[p]) === 'denied' || (gpc && i > 1) ? 'denied' : 'granted';
    });
    if (gpc) out.gpc = true;
    if (!consentManaged) out.managed = false;
    return out;
  }
  function setConsent(kind, values) {
    if ((kind !== 'default' && kind !== 'update') || !values || typeof values !== 'object') return;
    consentManaged = true;
    // A default for some regions: Tandem cannot tell where the visitor is, so between defaults a
    // denial wins when one of them is regional (the core's Consent::regional).
    var regional = kind === 'default' && values.region != null;
    for (var k in values) {
      if (!Object.prototype.hasOwnProperty.call(values, k) || (values[k] !== 'granted' && values[k] !== 'denied')) continue;
      if (regional && values[k] === 'denied') consentSet.regional[k] = 'denied';
      else if (!regional || consentSet.default[k] !== 'denied') consentSet[kind][k] = values[k];
    }
  }
  function storage() {
    try { return win.localStorage; } catch (e) { return null; }
  }
  // The queue holds identifiers: with ad_storage denied it stays in memory, and a copy stored
  // before is removed.
  function store() {
    var ls = storage();
    if (!ls) return;
    leaseUntil = Infinity;
    try {
      if (queue.length && consentState().ad_storage === 'granted') {
        var until = released ? 0 : Date.now() + 120000;
        ls.setItem(key, stringify({ until: until, items: queue }));
        leaseUntil = until;
      } else {
        ls.removeItem(key);
      }
    } catch (e) {
      try { ls.removeItem(key); } catch (e2) { /* nothing to do */ }
    }
  }
  // Once our lease has run out (a pagehide released the queue, and the page came back from the
  // back/forward cache; or the tab slept), another tab may have adopted our queue and be sending
  // it. If our key is gone or claimed, our copy is dropped and what comes later is stored under a
  // new key, never over a standing claim (the core's Outbox::key_checked). Storage that cannot be
  // read counts as gone, as in the wasm path: a double is worse than a retry another tab makes.
  function checkKey() {
    if (Date.now() < leaseUntil) return;
    var own = null;
    try { own = storage().getItem(key); } catch (e) { /* as gone */ }
    if (own != null && own.indexOf('{"by":') !== 0) return;
    queue = [];
    sending = null;
    sendingKeepalive = 0;
    failures = 0; // no retry is left to run: the next event goes at once
    leaseUntil = Infinity;
    key += '~';
  }
  function queued(id) {
    return queue.some(function (p) { return p[1].event_id === id; });
  }
  // An event as it would have been tracked now with ad_user_data denied (the core's
  // payload::redact): no identifiers, and the consent in force.
  function redact(ev, state) {
    return Object.assign({}, ev, {
      event_source_url: withoutClickIds(ev.event_source_url),
      referrer: withoutClickIds(ev.referrer),
      user_data: {},
      click_ids: {},
      google_user_data: undefined,
      tiktok_user_data: undefined,
      consent: state,
    });
  }
  // What waits follows the consent in force, as in the core (transport::follow_consent): with
  // ad_user_data denied it is redacted, and in basic mode without both ad purposes it is dropped,
  // retries included. In place: the batch on its way holds the same entries. An event already
  // made under that denial keeps its consent: a later grant must not loosen it.
  function follow() {
    var state = consentState();
    if (consentBasic && (state.ad_storage !== 'granted' || state.ad_user_data !== 'granted')) queue = [];
    if (state.ad_user_data !== 'granted') {
      queue.forEach(function (p) { if ((p[1].consent || {}).ad_user_data !== 'denied') p[1] = redact(p[1], state); });
    }
  }
  // Reading what earlier pages stored needs ad_storage, as writing does. Another tab's released
  // queue is claimed first and taken only once the claim has stood, as the core does
  // (src/core/outbox.rs, "Several tabs"), so two tabs starting together never both send it.
  function adopt() {
    if (!JS_PATH_DELIVERY) return;
    var ls = storage();
    var now = Date.now();
    var state = consentState();
    var recheck = Infinity;
    if (stashOnly || !ls || state.ad_storage !== 'granted') return;
    checkKey();
    for (var i = ls.length - 1; i >= 0; i--) {
      try {
        var k = ls.key(i);
        if (!k || k.indexOf(QUEUE_PREFIX) !== 0) continue;
        var stored = JSON.parse(ls.getItem(k));
        // Our key claimed by another tab (this path took over from a crashed instance): ours is a
        // new one, never written over the claim, as in the core's adopt.
        if (k === key && stored.by && leaseUntil === Infinity) key += '~';
        if (k !== key || stored.by) {
          var standing = stored.until - CLAIM_MS + CLAIM_WAIT_MS, ours = stored.by === key;
          if (stored.until <= now) {
            ls.setItem(k, stringify({ by: key, until: now + CLAIM_MS, items: stored.items }));
            recheck = Math.min(recheck, now + CLAIM_WAIT_MS);
          } else if (stored.by && (!ours || now < standing)) {
            recheck = Math.min(recheck, ours ? standing : stored.until);
          }
          if (!ours || now < standing || stored.until <= now) continue; // a live tab's queue, or a claim
        }
        take(stored.items, k === key);
        if (k !== key) ls.removeItem(k);
      } catch (e) { /* an unreadable entry: skip it */ }
    }
    follow(); // adopted events are redacted, or dropped in basic mode, like those of this page
    bound();
    store();
    try {
      clearTimeout(claimTimer);
      if (recheck < Infinity) claimTimer = setTimeout(adopt, recheck - now);
    } catch (e) { /* no timers: a later call adopts */ }
    if (queue.length && !failures) schedule(0);
  }
  // A stored queue's items, checked. `own`: taken over from a crashed instance, our key's or held
  // outside storage (`__kept`): nothing goes for a second, so an answer to its last request
  // (relayed as __delivered) lands before we send it again (the core's ADOPT_DELAY_MS).
  function take(items, own) {
    var now = Date.now();
    (Array.isArray(items) ? items : []).forEach(function (p) {
      var ev = Array.isArray(p) && p[1];
      if (typeof p[0] === 'string' && /^https?:\/\//.test(p[0]) && ev && typeof ev.event_id === 'string' &&
          EVENT_ID_PATTERN.test(ev.event_id) && !queued(ev.event_id) && !(now - ev.event_time_ms > WEEK_MS)) {
        holdAdopted(own, now);
        queue.push([p[0], ev]);
      }
    });
  }
  function body(entries) {
    return stringify({ events: entries.map(function (p) { return p[1]; }) });
  }
  // Up to 20 waiting events for one endpoint, within BATCH_BYTES of body and within `budget` for a
  // beacon. One event alone may be over the batch size; in a beacon not over the budget (the
  // core's Outbox::batch): it stays persisted for the next page, and smaller ones behind it go.
  function nextBatch(budget, beacon) {
    var out = [], url = null, chars = 13; // {"events":[]} and a comma per event
    var busy = onItsWay();
    for (var i = 0; i < queue.length && out.length < 20; i++) {
      var entry = queue[i];
      if ((busy && busy.indexOf(entry) >= 0) || (url !== null && entry[0] !== url)) continue;
      var size = JSON.stringify(entry[1]).length + 1;
      if (out.length && chars + size > Math.min(BATCH_BYTES, budget)) break;
      if (beacon && chars + size > budget) continue;
      url = entry[0];
      chars += size;
      out.push(entry);
    }
    return out;
  }
  // The request state, read through these: only the path's own file sends requests (the loader's
  // copy beacons, nothing more), so in the loader's copy they answer that none is on its way and
  // none failed, as is so there, and terser drops what they guard.
  function onItsWay() {
    if (!JS_PATH_DELIVERY) return;
    return sending;
  }
  function failing() {
    if (!JS_PATH_DELIVERY) return;
    return failures;
  }
  // The bytes of a keepalive fetch on its way, which count against the unload budget; at pagehide
  // its events are dropped (see flush).
  function keptAlive(pagehide) {
    if (!JS_PATH_DELIVERY) return;
    if (pagehide && !failures && sendingKeepalive) without(sending);
    return sendingKeepalive;
  }
  // An event queued goes at once, unless a retry waits for its time (a stash sends nothing).
  function sendSoon() {
    if (!JS_PATH_DELIVERY) return;
    if (!failures && !stashOnly) pump();
  }
  // See take.
  function holdAdopted(own, now) {
    if (!JS_PATH_DELIVERY) return;
    if (own) holdUntil = now + 1000;
  }
  function without(entries) {
    queue = queue.filter(function (p) { return entries.indexOf(p) < 0; });
  }
  function schedule(ms) {
    if (!JS_PATH_DELIVERY) return;
    try {
      clearTimeout(timer);
      timer = setTimeout(pump, ms);
    } catch (e) { /* no timers */ }
  }
  function settle(batch, status) {
    // The answer may come after our lease ran out and another tab took the queue: then our copy
    // is dropped here, not written back for a second sending.
    checkKey();
    if (batch !== sending) {
      // Dropped with a queue another tab took (checkKey), or answered after the timeout counted
      // it a network error: what a late 2xx delivered must not go again with the retry.
      if (status >= 200 && status < 300) {
        without(batch);
        store();
      }
      return;
    }
    sending = null;
    sendingKeepalive = 0;
    var refused = status >= 400 && status < 500 && status !== 408 && status !== 429;
    if ((status >= 200 && status < 300) || refused) {
      without(batch);
      failures = 0;
      if (refused) report('delivery_refused', words('o7', 'The endpoint refused ') + batch.length + words('L1', ' event(s) with HTTP ') + status + words('o9', '; they are dropped, not retried'));
      schedule(0);
    } else {
      failures++;
      schedule(Math.min(60000, 1000 * Math.pow(2, failures - 1)) * (0.5 + Math.random() / 2));
    }
    store();
  }
  function pump() {
    if (!JS_PATH_DELIVERY) return;
    checkKey();
    if (Date.now() < holdUntil) return schedule(holdUntil - Date.now());
    if (sending || !queue.length) return;
    var batch = nextBatch(BATCH_BYTES);
    if (!batch.length) return;
    var text = body(batch);
    // Over KEEPALIVE_MAX the browser would refuse a keepalive fetch, every time.
    var keepalive = text.length <= KEEPALIVE_MAX;
    sending = batch;
    sendingKeepalive = keepalive ? text.length : 0;
    // Back from the back/forward cache, the stored copy still says released: another tab would
    // claim it and send it too. Sending again, this page holds its queue again.
    if (released) {
      released = false;
      store();
    }
    try {
      win.fetch(batch[0][0], { method: 'POST', body: text, keepalive: keepalive, credentials: 'include', headers: { 'Content-Type': 'text/plain' } })
        .then(function (r) { return r.status; }, function () { return 0; })
        .then(function (status) { settle(batch, status); })
        .catch(function () {});
      // Unanswered after 30 s counts as a network error, as in the core: a request that hangs
      // must not hold back every later event. A late answer only drops what it delivered (settle).
      setTimeout(function () { settle(batch, 0); }, 30000);
    } catch (e) {
      settle(batch, 0);
    }
  }
  // visibilitychange→hidden or pagehide: beacon what waits (within a 48 KB budget, less a
  // keepalive fetch still in flight) unless the endpoint was failing; either way what is not
  // handed over stays persisted for the next page. A keepalive fetch in flight at pagehide
  // outlives the page as a beacon does (the core's Outbox::hide): kept, the next page would
  // send its events again.
  function flush(pagehide) {
    checkKey();
    if (pagehide) released = true;
    var budget = UNLOAD_BUDGET - (keptAlive(pagehide) || 0);
    // With a failing endpoint what waits is kept for the next page, unless it is in memory only
    // (ad_storage denied, storage full or blocked: no lease stored): then the beacon is its last
    // chance, as in the core's Outbox::hide.
    var beacon = !failing() || leaseUntil === Infinity;
    while (beacon && queue.length) {
      var batch = nextBatch(budget, true);
      if (!batch.length) break;
      var text = body(batch);
      budget -= text.length;
      var handed = false;
      try { handed = win.navigator.sendBeacon(batch[0][0], text); } catch (e) { /* keep it */ }
      if (!handed) break;
      without(batch);
    }
    store();
  }
  // Past the queue's bounds (config.queue, as the core's Outbox::bound: events, and bytes, here
  // of the JSON text stored) the oldest waiting events go (never the batch on its way), and never
  // silently: onError hears how many.
  function bound() {
    var dropped = 0, i = 0, bytes = stringify(queue).length, busy = onItsWay();
    while (i < queue.length && (queue.length > queueEvents || bytes > queueBytes)) {
      if (busy && busy.indexOf(queue[i]) >= 0) i++;
      else {
        bytes -= stringify(queue.splice(i, 1)[0]).length + 1;
        dropped++;
      }
    }
    if (dropped) report('queue_full', words('oF', 'The delivery queue is full (at most ') + queueEvents + words('oG', ' events and ') + queueBytes + words('oH', ' bytes): dropped the ') + dropped + words('oI', ' oldest undelivered event(s)'), String(dropped));
  }
  function enqueue(ev) {
    checkKey();
    var url = endpoint;
    try { url = String(new URL(endpoint, win.location.href)); } catch (e) { /* keep it relative */ }
    queue.push([url, ev]);
    bound();
    released = false;
    store();
    sendSoon();
  }
  function storedClickIds() {
    var out = {};
    try {
      var stored = JSON.parse(storage().getItem('tandem:attribution') || '{}').click_ids || {};
      CLICK_ID_NAMES.forEach(function (name) {
        var entry = stored[name];
        if (entry && typeof entry.value === 'string' && entry.value.length <= 500 && Number.isInteger(entry.ts)) {
          out[name] = { value: entry.value, ts: entry.ts };
        }
      });
    } catch (e) { /* unreadable storage: no click IDs */ }
    return out;
  }
  // A Purchase's order id (`o:<id>`) or a site's event id (`e:<id>`), in the core's
  // sent-conversions log (`tandem:sent`, src/core/sent.rs: [[key, ms], ...], the newest 100), so
  // a reloaded thank-you page does not count it twice on this path either. False when it was
  // already sent; written only as ad_storage allows.
  function firstSend(key, write) {
    var log;
    try { log = JSON.parse(storage().getItem('tandem:sent')); } catch (e) { /* unreadable: an empty log */ }
    if (!Array.isArray(log)) log = [];
    if (sentKeys.indexOf(key) >= 0 || log.some(function (entry) { return entry && entry[0] === key; })) return false;
    sentKeys.push(key); // this page's own record, whatever storage allows
    log.push([key, Date.now()]);
    // Past 100, event ids go before order ids, as in the core (SentLog::trim): a site naming
    // every event must not push its Purchases out.
    while (log.length > 100) {
      var oldest = log.findIndex(function (entry) { return /^e:/.test(entry && entry[0]); });
      log.splice(Math.max(oldest, 0), 1);
    }
    try {
      if (write) storage().setItem('tandem:sent', stringify(log));
    } catch (e) { /* full or blocked: the page's own record stays */ }
    return true;
  }
  function track(name, params, options) {
    if (typeof name !== 'string' || !name || name.length > 40) {
      report('invalid_event_name', words('L6', 'The event name must be a string of 1 to 40 characters'), String(name));
      return null;
    }
    params = params && typeof params === 'object' ? params : {};
    var custom = {};
    if (typeof params.value === 'number' && isFinite(params.value) && params.value >= 0) custom.value = params.value;
    if (typeof params.currency === 'string' && /^[A-Za-z]{3}$/.test(params.currency)) custom.currency = params.currency.toUpperCase();
    var order = params.order_id;
    if (typeof order === 'string') order = order.trim(); // read from the page's text, as the core trims it
    if ((typeof order === 'string' || typeof order === 'number') && EVENT_ID_PATTERN.test(String(order))) custom.order_id = String(order);
    if (name === 'Purchase' && (custom.value === undefined || custom.currency === undefined)) {
      report('missing_field', words('L7', 'A Purchase needs a numeric value and an ISO 4217 currency'));
      return null;
    }
    // The core's rules (Tag::track): eventId, eventID or event_id, or the id itself; else a
    // Purchase is named by its order id, and anything else gets a random one.
    var given = options && typeof options === 'object' ? [options.eventId, options.eventID, options.event_id].filter(function (v) { return v != null; })[0]
      : typeof options === 'string' || typeof options === 'number' ? options : null;
    var eventId = given != null ? String(given) : name === 'Purchase' && custom.order_id && custom.order_id.length < 63 ? 'o-' + custom.order_id : randomId();
    if (!EVENT_ID_PATTERN.test(eventId)) {
      report('invalid_event_id', words('L8', 'options.eventId must be 1 to 64 characters of A-Z a-z 0-9 _ . : -'), eventId);
      return null;
    }
    var now = Date.now();
    var consent = consentState();
    var identifiers = consent.ad_user_data === 'granted';
    // What an earlier visit left (ad cookies, stored click IDs) is read only with ad_storage, as
    // the core does (take_in_ad_storage), and sent only with ad_user_data too.
    var stored = identifiers && consent.ad_storage === 'granted';
    if (consentBasic && !stored) return null;
    var userData = {};
    var fbp = stored ? readCookie(doc, '_fbp') : '';
    var fbc = stored ? readCookie(doc, '_fbc') : '';
    if (/^fb\.[0-9]+\.[0-9]+\.[^.]+(\.[^.]+)?$/.test(fbp)) userData.fbp = fbp;
    if (/^fb\.[0-9]+\.[0-9]+\..+$/.test(fbc)) userData.fbc = fbc;
    var clientId = consent.analytics_storage === 'granted' ? readCookie(doc, '_tandem_cid') : '';
    var pageUrl = String(win.location.href), referrer = String(doc.referrer || '');
    // The referrer too (a landing page's URL, when the visitor came from it): as the core does.
    if (!identifiers) {
      pageUrl = withoutClickIds(pageUrl);
      referrer = withoutClickIds(referrer);
    }
    if (sentIds.indexOf(eventId) >= 0 || queued(eventId)) return eventId; // the same event_id goes out once
    var write = !stashOnly && consent.ad_storage === 'granted';
    // An id the site gave names one conversion: sent from this browser already (a reloaded
    // thank-you page), it is not sent again, as in the core (`e:<id>` in the same log).
    if (given != null && !firstSend('e:' + eventId, write)) return eventId;
    if (name === 'Purchase' && custom.order_id !== undefined && !firstSend('o:' + custom.order_id, write)) return null;
    sentIds.push(eventId);
    enqueue({
      event_id: eventId,
      event_name: name,
      event_time: Math.floor(now / 1000),
      event_time_ms: now,
      event_source_url: pageUrl.slice(0, 2048),
      referrer: referrer.slice(0, 2048),
      action_source: 'website',
      user_data: userData,
      custom_data: custom,
      click_ids: stored ? storedClickIds() : {},
      utm: {},
      client_id: /^[A-Za-z0-9_-]{1,64}$/.test(clientId) ? clientId : randomId(),
      tag_version: version,
      consent: consent,
    });
    return eventId;
  }
  return function (command, a, b, c) {
    if (command === '__flush') return flush(a === 'pagehide');
    if (command === '__online') return pump();
    if (command === '__delivered') { // `a` the status, `b` the event_ids of a crashed instance's request
      if (a >= 200 && a < 300) {
        queue = queue.filter(function (p) { return (',' + b + ',').indexOf(',' + p[1].event_id + ',') < 0; });
        store();
      }
      return null;
    }
    if (command === 'consent') {
      setConsent(a, b);
      if (started) {
        follow();
        adopt();
        store();
      }
      return null;
    }
    if (command === 'init') { // `a`: an object, never null (every caller makes it one)
      if (typeof a.endpoint === 'string' && a.endpoint) endpoint = a.endpoint;
      consentBasic = a.consentMode === 'basic';
      queueEvents = whole(a.queue, 'maxEvents', 1, 1000, queueEvents);
      queueBytes = whole(a.queue, 'maxBytes', 1000, 1000000, queueBytes);
      honorGpc = a.gpc !== 'ignore';
      started = true;
      adopt();
      var quiet = b === true; // the wasm path already ran init on this page
      // `c`: the automatic PageView's event_id when a stash already gave it one. Its id is the reply.
      return !quiet && a.autoPageView !== false ? track('PageView', {}, c) : null;
    }
    if (command === '__kept') { // `a`: the queue the last wasm instance held outside storage
      take(JSON.parse(a).items, true);
      follow();
      bound();
      store();
      return schedule(0);
    }
    if (command === 'track') return track(a, b, c);
    if (command === 'page') return track('PageView', {});
    return null;
  };
}

// Installs Tandem on `win` (idempotent) and returns the current `win.tandem`.
// `script` = { src: the loader's own URL, nonce: its CSP nonce, wasm: an optional wasm URL,
// messages: an optional URL of the message text (else TANDEM_MESSAGES next to `src`), jsPath: the
// same for the plain-JS path's delivery code (else TANDEM_JS_PATH) }.
function bootTandem(win, script) {
  var stub = win.tandem;
  if (typeof stub !== 'function') {
    stub = function () {
      (stub.q = stub.q || []).push(arguments);
    };
  } else if (stub.__tandem) return stub;

  stub.q = stub.q || [];
  stub.__tandem = TANDEM_VERSION;
  win.tandem = stub;

  var console_ = win.console || {}; // every use is in a try: without a console, nothing is printed
  var glue = null; // the live wasm instance's exports, or null while (re)loading
  var compiled = null; // the WebAssembly.Module, kept to re-instantiate after a crash
  var initConfig = null; // the first init call's config, replayed on a fresh instance
  var onError = null;
  var debug = false;
  var messageTable = null; // the message text once fetched ({} if it could not be)
  var pendingReports = null; // reports made while it is fetched, in order
  var held = []; // calls made after load but before init
  // Every consent call, replayed on a fresh instance after a crash: [command, kind, values, when
  // (see replayedConsent), made after init]. Past MAX_HELD the oldest call that has a later one of
  // its kind on the same side of init is folded into it (a purpose's later value wins; an update is
  // never undone by a later default, as in gtag and src/core/consent.rs), so the replay still
  // rebuilds the visitor's latest choices, never an earlier state.
  var consentCalls = [];
  function rememberConsent(args) {
    for (var i = 0; consentCalls.length >= MAX_HELD && i < consentCalls.length; i++) {
      for (var j = i + 1; j < consentCalls.length; j++) {
        if (consentCalls[j][1] !== consentCalls[i][1] || consentCalls[j][4] !== consentCalls[i][4]) continue;
        var merged = {};
        copyOwn(merged, consentCalls[i][2], true);
        copyOwn(merged, consentCalls[j][2]);
        consentCalls[j][2] = merged;
        consentCalls.splice(i, 1);
        break;
      }
    }
    consentCalls.push([args[0], args[1], args[2], Date.now(), initConfig !== null]);
  }
  // A consent call as a fresh instance gets it after a crash: a default's wait_for_update counts
  // from the original call, so a wait that already ended does not start again (holding events and
  // re-telling the pixels) and one still running keeps only what is left of it.
  function replayedConsent(call) {
    var values = call[2], wait = 0;
    try { wait = Number(values.wait_for_update || values.waitForUpdate) || 0; } catch (error) { /* unreadable */ }
    if (!wait) return [call[1], values];
    var left = wait - (Date.now() - call[3]);
    var copy = {};
    copyOwn(copy, values, true);
    if (left > 0) copy.wait_for_update = left;
    return [call[1], copy, left > 0];
  }
  function copyOwn(target, values, withoutWait) {
    try {
      for (var key in values) {
        if (withoutWait && (key === 'wait_for_update' || key === 'waitForUpdate')) continue;
        if (Object.prototype.hasOwnProperty.call(values, key)) target[key] = values[key];
      }
    } catch (error) { /* a hostile value: what could be read is kept */ }
  }
  // The identify calls the core took (as it read them: parsed back from the JSON it was given),
  // replayed on a fresh instance after a crash so later events keep the visitor's hashes. Kept as
  // made, not merged, because a refused value leaves its field as it was; identify(null) forgets
  // everything, and so does this list. Past MAX_HELD the two oldest fold into one (a field's
  // later value wins, even one the core refused).
  var identified = [];
  function rememberIdentity(values) {
    if (values === null) identified = [];
    if (!values || typeof values !== 'object' || Array.isArray(values)) return; // refused: changed nothing
    identified.push(values);
    if (identified.length > MAX_HELD) {
      var merged = {};
      copyOwn(merged, identified[0]);
      copyOwn(merged, identified[1]);
      identified.splice(0, 2, merged);
    }
  }
  var restarts = 0;
  var MAX_RESTARTS = 3;
  // Tracks whose effects the instance builds at the end of the task (src/core/tag.rs,
  // track_deferred): [arguments JSON, event_id, replayed]. A crash before then would lose them, so
  // a fresh instance gets them again under the same event_id (once: one that crashes twice goes).
  var unemitted = [];
  // The track and page calls whose events a consent wait holds in the instance ([arguments JSON,
  // event_id]), while it holds any (`shared.held`, set by src/shell/transport.rs): a fresh instance
  // after a crash tracks them again under the same ids, and holds or sends them as its consent says.
  var waitHeld = [];
  // What a lost instance took but had not sent, as track arguments under their event_ids: what a
  // wait held first (older), then what was not emitted yet; each id once. One already given to a
  // fresh instance that came back unemitted is left out: it may be the call that crashes.
  function takeLost() {
    var lost = waitHeld.concat(unemitted), seen = {}, calls = [];
    unemitted = [];
    waitHeld = [];
    shared.held = 0;
    lost.forEach(function (entry) {
      if (entry[2] || seen[entry[1]]) return;
      seen[entry[1]] = 1;
      try {
        var again = JSON.parse(entry[0]);
        var options = again[2] && typeof again[2] === 'object' && !Array.isArray(again[2]) ? again[2] : {};
        options.eventId = entry[1];
        again[2] = options;
        calls.push(again);
      } catch (e) { /* unreadable: nothing to replay */ }
    });
    return calls;
  }
  var tabId = randomId(); // names this page's persisted delivery queue, across wasm restarts
  // Storage writes an instance has not made yet (src/shell/transport.rs coalesces them): kept out of
  // any one instance, so a crash loses none and the fresh instance, or the JS path, writes them first.
  var shared = {};
  function flushStorage() {
    try {
      shared.flush();
    } catch (e) { /* none set yet (no instance ran), or storage failed: storage is best effort */ }
  }
  var jsPath = null; // the plain-JS path, once WebAssembly has failed

  // The page went hidden before the wasm was live. A mobile browser may discard a hidden page
  // without a pagehide, and what the stub queued would go with it: the plain-JS path turns the
  // queued calls into endpoint events and stores them as this tab's delivery queue
  // (`tandem:q:<tab id>`, leased as a live tab's for 2 minutes), where a later page adopts them if
  // this one never runs again. Nothing is sent from here. Each queued track is given the event_id
  // of its stored copy (as `{eventId}`: the only track option), and a second stash reuses the
  // PageView's, so whatever path sends them later sends the same ids. The copy is withdrawn when
  // this page takes its queue after all (unless a later page adopted it first: only this tab
  // writes its key, so a removal finds the stash or nothing).
  var stashed = false;
  var stashedPageView = null; // the automatic PageView's event_id in the stash
  function stash() {
    var scratch = createJsPath(win, TANDEM_VERSION, function () {}, tabId, true);
    var calls = stub.q, config, call, i;
    for (i = 0; i < calls.length; i++) {
      call = argumentsToArray(calls[i]);
      if (call[0] === 'consent' && call[1] === 'default') scratch.apply(null, call);
      if (call[0] === 'init' && config === undefined) config = call[1] == null ? {} : call[1];
    }
    if (typeof config !== 'object') return; // no configuration: nothing would be sent
    stashed = true; // from here on something may be stored
    stashedPageView = scratch('init', config, false, stashedPageView);
    for (i = 0; i < calls.length; i++) {
      call = argumentsToArray(calls[i]);
      try {
        if ((call[0] === 'consent' && call[1] !== 'default') || call[0] === 'page') scratch.apply(null, call);
        var id = call[0] === 'track' && scratch.apply(null, call);
        if (id) calls[i] = [call[0], call[1], call[2], { eventId: id }];
      } catch (e) { /* a call whose arguments throw: the wasm or the JS path reports it later */ }
    }
  }
  function unstash() {
    if (!stashed) return;
    stashed = false;
    try { win.localStorage.removeItem(QUEUE_PREFIX + tabId); } catch (e) { /* storage went away: so did the copy */ }
  }

  // An error for the console and onError: the wasm's reply carries an input with each, the loader's
  // own errors only when there is one to show (none is '').
  function report(code, message, input) {
    say([code, message, input === undefined ? '' : input]);
  }

  function warn(message) {
    if (debug) say([null, message]);
  }

  // The wasm's messages hold a token, \u0001 and a two-character key, for each piece of their text
  // (src/core/error.rs, `messages!`): the text is in TANDEM_MESSAGES, a file next to this one,
  // fetched the first time there is something to report, so a page whose calls are all valid
  // never downloads it. Reports wait for it in the order they were made.
  function say(said) {
    if (!pendingReports && !messageTable && /\u0001/.test(said[1])) {
      pendingReports = [];
      var loaded = function (table) { // called again by the timeout or a late answer: no-op
        if (messageTable) return;
        messageTable = table || {};
        // A report made by an onError handler while these are told waits its turn behind them.
        while (pendingReports.length) tell(pendingReports.shift());
        pendingReports = null;
      };
      try {
        setTimeout(loaded, MESSAGES_TIMEOUT_MS);
        fetch(new URL(script.messages || TANDEM_MESSAGES, script.src || win.location.href), { credentials: 'same-origin' })
          .then(function (response) { return response.json(); })
          .then(loaded, loaded); // a failed fetch leaves an Error as the table: it has no keys
      } catch (e) {
        loaded();
      }
    }
    if (pendingReports) pendingReports.push(said);
    else tell(said);
  }

  function tell(said) {
    var message = String(said[1]).replace(/\u0001(..)/g, function (token, key) {
      var text = Object.prototype.hasOwnProperty.call(messageTable, key) && messageTable[key];
      // Without the text (the file could not be fetched), the key still tells the pieces apart.
      return typeof text === 'string' ? text : '[' + key + ']';
    });
    try {
      if (said[0] === null) console_.warn('[tandem] ' + message);
      else console_.error('[tandem] ' + message, said[2]);
    } catch (e) { /* a console that throws must not matter */ }
    if (onError && said[0] !== null) {
      try {
        onError({ code: said[0], message: message, input: said[2] });
      } catch (e) { /* the site's handler threw; nothing more to do */ }
    }
  }

  function live() {
    try {
      return dispatch(argumentsToArray(arguments));
    } catch (error) {
      report('internal_error', words('L9', 'Tandem failed to handle a call: ') + describeError(error));
      return null;
    }
  }
  // Timers, request results and page lifecycle for delivery (src/shell/transport.rs): routed like
  // calls, so while an instance restarts they wait in the queue for the fresh one.
  // `args` is an array from every caller (the listeners below, the transport snippet).
  function relay(name, args) {
    try {
      if (!jsPath && !glue && name === '__flush') {
        // Hidden before the wasm started: see stash.
        if (restarts === 0 && args[0] === 'hidden' && stub.q.length) return stash();
        // The page is going away before the wasm started, or while the plain-JS path's delivery
        // code is on its way: the loader's own copy of the path beacons what the stub queued, so a
        // click tracked right before a navigation is not lost (degrade sets jsPath).
        if (args[0] === 'pagehide' && (failed || (restarts === 0 && (stub.q.length || held.length)))) {
          fail(new Error('the page is closing before WebAssembly started'));
          degrade(createJsPath);
        }
      }
      if (jsPath) return jsPath(name, args[0], args[1]);
      if (initConfig === null) return null;
      if (!glue) {
        if (name === '__flush') flushStorage(); // the page may close before the fresh instance is live
        stub.q.push([name].concat(args));
        return null;
      }
      return invoke(name, args);
    } catch (error) {
      return null;
    }
  }
  try {
    // Registered once per page. Never `unload`: it would keep the page out of the back/forward cache.
    win.addEventListener('pagehide', function () { relay('__flush', ['pagehide']); });
    win.addEventListener('online', function () { relay('__online', []); });
    win.document.addEventListener('visibilitychange', function () {
      if (win.document.visibilityState === 'hidden') relay('__flush', ['hidden']);
    });
  } catch (error) { /* no events: delivery still runs on timers */ }

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
    if (command === 'consent') rememberConsent(args);
    // Before init, consent and identify go straight to the core: init starts under them
    // (src/shell/privacy.rs).
    if (initConfig === null && command !== 'consent' && command !== 'identify') {
      if (held.length < MAX_HELD) {
        held.push(args);
        return undefined; // still queued, as the README says of a call before the loader
      }
      report('not_initialized', words('LW', 'More than ') + MAX_HELD + words('LA', " calls before tandem('init', config); this one was dropped"), String(command));
      return null;
    }
    return invoke(command, args.slice(1));
  }

  function captureReporting(config) { // an object, never null (init's null is {} by now)
    try {
      onError = typeof config.onError === 'function' ? config.onError : null;
      debug = config.debug === true;
    } catch (error) { /* a throwing getter on the config; the core reports the bad keys */ }
  }

  function init(config) {
    if (initConfig !== null) {
      warn(words('s0', "tandem('init') was called again; the first configuration stays in force"));
      return null;
    }
    if (config == null) config = {}; // the defaults, as the core takes none; null here means no init yet
    var forCore = {};
    if (typeof config === 'object') {
      var keys;
      try {
        keys = Object.keys(config);
      } catch (error) {
        // A revoked Proxy (a finished Immer draft, say): not a config; a later init may be one.
        report('invalid_config', words('LG', 'tandem.init expects a config object') + words('LC', '; this one could not be read (') + describeError(error) + ')');
        return null;
      }
      keys.forEach(function (key) {
        if (key === 'onError') return;
        try { forCore[key] = config[key]; } catch (error) { forCore[key] = undefined; }
      });
      captureReporting(config);
    } else {
      // Refused by the core (Tag::accepts), which reports it: no configuration is in force, so the
      // calls made so far keep waiting for one.
      return invoke('init', [config]);
    }
    initConfig = forCore;
    // A stash gave the automatic PageView an id, and a later page may have sent that copy already:
    // this one goes out under the same id (which the collector keeps once), not a second one.
    // initConfig keeps the site's own setting, for a restore after a crash.
    var first = forCore;
    if (stashedPageView) {
      first = {};
      copyOwn(first, forCore);
      first.autoPageView = false;
    }
    invoke('init', [first]);
    if (first !== forCore) dispatch(['track', 'PageView', {}, { eventId: stashedPageView }]);
    held.splice(0).forEach(dispatch);
    return null;
  }

  function invoke(command, args, replayed) {
    var reply;
    if (unemitted.length && command !== 'track' && command !== '__emit') {
      // What earlier tracks left for the end of the task is emitted in a call of its own (its
      // errors reported as any call's): a trap in this command must not leave those events both
      // sent and kept for the fresh instance.
      var before = glue;
      invoke('__emit', []);
      // If that trapped, this call was not the one at fault: it goes to what replaced the
      // instance (the stub's queue, or the plain-JS path after too many restarts).
      if (glue !== before) return win.tandem.apply(null, [command].concat(args));
    }
    var json = toJson(args);
    var heldBefore = shared.held || 0;
    try {
      reply = glue.command(typeof command === 'string' ? command : toJson(command), json);
    } catch (error) {
      // A trap leaves wasm-bindgen's state borrowed: every later call on this instance would fail.
      // Throw the instance away and carry on with a fresh one (calls meanwhile are queued).
      restart(error);
      return null;
    }
    if (command === 'identify') rememberIdentity(JSON.parse(json)[0]); // after the call: one that traps is not taken
    var outcome;
    try {
      outcome = readReply(reply);
    } catch (error) {
      report('internal_error', words('LD', 'Tandem returned an unreadable reply'), String(reply).slice(0, 200));
      return null;
    }
    if (command !== 'track') unemitted = []; // every other call emits what was deferred first
    else if (outcome.event_id) unemitted.push([json, outcome.event_id, replayed]);
    if (!shared.held) waitHeld = [];
    else if (shared.held > heldBefore && (command === 'track' || command === 'page')) waitHeld.push([command === 'page' ? '["PageView",{}]' : json, outcome.event_id]);
    (outcome.errors || []).forEach(function (e) { report(e.code, e.message, e.input); });
    (outcome.warnings || []).forEach(warn);
    return outcome.event_id === undefined ? null : outcome.event_id;
  }

  function instantiate() {
    var fresh = createGlue();
    return fresh.init(compiled).then(function () {
      fresh.set_relay(relay, tabId, shared, script.nonce || '');
      return fresh;
    });
  }

  // Calls into the instance stop as soon as one of them crashed it (`glue` is then null, and a
  // fresh instance is on its way to take the queue): looping on would requeue the same call forever.
  function goLive(fresh) {
    if (failed) return; // the page already handed its calls to the plain-JS path
    unstash();
    glue = fresh;
    if (initConfig !== null) {
      // Re-create the core's state on a fresh instance after a crash, without repeating what init
      // already did on the page (platform setup, the automatic PageView). The consent calls made
      // before init come first, so the fresh core starts under them, as the first one did; those
      // made after it follow the restore with their effects discarded, so the fresh core also
      // knows what they did on the page (basic mode's setup at a grant, which must not run twice),
      // and so do the identify calls (the visitor's hashes for the events still to come).
      var lost = takeLost();
      // The automatic PageView again only while a wait the crash cut short still runs (the held
      // one was lost with the instance); otherwise it was sent, and a second would double it.
      var waiting = false;
      var before = [], after = []; // [command, args, replayed] for invoke, in order
      consentCalls.forEach(function (call) {
        var replayed = replayedConsent(call);
        waiting = replayed[0] === 'update' ? false : waiting || (replayed[2] && !call[4]);
        if (call[4]) after.push(['__consent_restored', replayed.slice(0, 2)]);
        else before.push(['consent', replayed.slice(0, 2)]);
      });
      var restoreConfig = {};
      copyOwn(restoreConfig, initConfig);
      if (!waiting) restoreConfig.autoPageView = false;
      identified.forEach(function (values) { after.push(['__identity_restored', [values]]); });
      // The queue the crashed instance held outside storage (ad_storage denied, storage full:
      // src/shell/transport.rs), once the fresh one knows the consent it goes under.
      if (shared.memory) after.push(['__kept', [shared.memory]]);
      lost.forEach(function (call) { after.push(['track', call, true]); });
      before.concat([['restore', [restoreConfig]]], after).forEach(function (step) {
        if (glue === fresh) invoke(step[0], step[1], step[2]);
      });
    } else {
      // Consent defaults queued after init in the snippet still apply before it (as gtag's
      // defaults do); every other call keeps its order.
      var queuedCalls = stub.q.splice(0);
      queuedCalls.forEach(function (queuedCall) {
        var call = argumentsToArray(queuedCall);
        if (call[0] === 'consent' && call[1] === 'default') replay(call);
        else stub.q.push(queuedCall);
      });
    }
    // Replay in order; calls queued during the replay land at the end of the same queue.
    while (stub.q.length && glue === fresh) replay(argumentsToArray(stub.q.shift()));
    if (glue !== fresh) return; // one of them crashed the instance: the next one goes live
    win.tandem = live;
    stub.loaded = true;
    // Once the page is idle, an identify and a Purchase rehearsed on a throwaway core
    // (src/shell/mod.rs) compile the wasm functions a site's first identify() and track() run.
    // Only in idle time: a browser without requestIdleCallback (Safari) skips it rather than take
    // a task the page may need.
    if (!restarts) {
      try {
        win.requestIdleCallback(function () {
          try {
            if (glue === fresh && initConfig !== null) invoke('__rehearse', [initConfig, { value: 1, currency: 'EUR', order_id: 'rehearsal', contents: [{ id: 'a', quantity: 1, price: 1, name: 'a', category: 'a' }] }, { email: 'a@b.co' }]);
          } catch (error) { /* the first calls compile their own paths */ }
        });
      } catch (error) { /* no requestIdleCallback: as above */ }
    }
  }

  // One queued call, as `live` runs it: a call that throws (a hostile argument) is reported and
  // the rest of the queue goes on.
  function replay(args) {
    try {
      dispatch(args);
    } catch (error) {
      report('internal_error', words('LE', 'Tandem failed to handle a queued call: ') + describeError(error));
    }
  }

  function restart(error) {
    glue = null;
    win.tandem = stub;
    // The key the shell last stored this tab's queue under: a new one once another tab took the
    // first (core::outbox, key_checked). A fresh instance, or the JS path, reads and writes that
    // one, where what waits is, rather than leave it to a later page.
    if (shared.own) tabId = shared.own.slice(QUEUE_PREFIX.length);
    report('internal_error', words('LF', 'Tandem hit an internal error and restarted; queued calls are kept (') + describeError(error) + ')');
    // A crash loop: rather than spin, the plain-JS path takes the queue, so conversions still
    // reach the endpoint. (Past the limit the count goes on by one more, which only relay's test
    // against 0 reads.)
    if (restarts++ < MAX_RESTARTS) instantiate().then(goLive).catch(fail);
    else fail(error);
  }

  // WebAssembly refused (CSP without 'wasm-unsafe-eval', Lockdown Mode, a blocked or missing
  // file): say so once, and send every conversion to the first-party endpoint on plain JS, so its
  // server-side copy survives. The pixels get nothing on this path: their mapping lives in the wasm.
  // The path's delivery code comes in a file of its own (TANDEM_JS_PATH, see createJsPath): until
  // it is here, calls wait in the queue as they waited for the wasm (a page hidden meanwhile
  // stores them, see stash; one closing hands them to the loader's own copy, see relay); if it
  // cannot be had, the loader's copy takes them, stores them for a later page and beacons them
  // when the page is hidden or closes.
  var failed = false;
  function fail(error) {
    if (failed) return;
    failed = true;
    try {
      console_.warn('[tandem] WebAssembly could not start (' + describeError(error) + '); events go to the first-party endpoint only');
    } catch (e) { /* ignore */ }
    loadJsPath(degrade);
  }

  // Calls `done` once with the plain-JS path of TANDEM_JS_PATH (a script next to the loader that
  // sets window.__tandemJsPath), or with the loader's own copy when that cannot be had.
  function loadJsPath(done) {
    var settled = false;
    function loaded() {
      if (settled) return;
      settled = true;
      try {
        var full = win.__tandemJsPath;
        done(typeof full === 'function' ? full : createJsPath);
      } catch (e) { /* called from the script's load event: never into the page */ }
    }
    try {
      var tag = win.document.createElement('script');
      tag.src = String(new URL(script.jsPath || TANDEM_JS_PATH, script.src || win.location.href));
      if (script.nonce) tag.nonce = script.nonce; // CSP: as the platforms' scripts get it
      tag.onload = tag.onerror = loaded;
      (win.document.head || win.document.documentElement).appendChild(tag);
      setTimeout(loaded, JS_PATH_TIMEOUT_MS);
    } catch (e) {
      loaded(); // no DOM, or Trusted Types refusing a plain URL: the loader's copy
    }
  }

  function degrade(create) {
    if (jsPath) return; // already on the plain-JS path (the page closed while its code was on its way)
    flushStorage(); // a crashed instance's last queue, for the JS path to adopt
    unstash(); // the queued calls it stored go to the JS path now, under the same event_ids
    var fallback = create(win, TANDEM_VERSION, report, tabId);
    jsPath = fallback;
    function degraded() {
      var args = argumentsToArray(arguments);
      try {
        if (args[0] === 'init') {
          if (initConfig !== null) return null;
          var config = args[1] == null ? {} : args[1]; // the defaults; null here means no init yet
          if (typeof config !== 'object') {
            // Refused, as the core does (Tag::accepts): a later init may be a configuration.
            report('invalid_config', words('LG', 'tandem.init expects a config object'), String(config));
            return null;
          }
          initConfig = config;
          captureReporting(initConfig);
          fallback('init', initConfig, false, stashedPageView);
          held.splice(0).forEach(function (call) { degraded.apply(null, call); });
          return null;
        }
        if (args[0] === 'consent') rememberConsent(args);
        if (initConfig === null && args[0] !== 'consent') {
          if (held.length >= MAX_HELD) return null;
          held.push(args);
          return undefined;
        }
        return fallback.apply(null, args);
      } catch (e) {
        return null;
      }
    }
    degraded.__tandem = TANDEM_VERSION;
    degraded.loaded = true;
    degraded.degraded = true;
    degraded.version = TANDEM_VERSION;
    degraded.q = [];
    consentCalls.forEach(function (call) {
      // Each entry begins with 'consent'; the path ignores its time and side of init.
      try { fallback.apply(null, call); } catch (e) { /* a hostile consent value */ }
    });
    try {
      if (initConfig !== null) fallback('init', initConfig, true);
    } catch (e) { /* a hostile config: the path runs on its defaults */ }
    // After a crash loop, what the last instance held outside storage (ad_storage denied, storage
    // full), and what it took but had not sent, goes to the endpoint.
    try {
      if (shared.memory) fallback('__kept', shared.memory);
    } catch (e) { /* unreadable: nothing to take */ }
    takeLost().forEach(function (call) {
      try { fallback('track', call[0], call[1], call[2]); } catch (e) { /* a hostile value */ }
    });
    var calls = stub.q.splice(0).concat(held.splice(0));
    win.tandem = degraded;
    calls.forEach(function (call) { degraded.apply(null, argumentsToArray(call)); });
  }

  if (typeof WebAssembly !== 'object' || typeof fetch !== 'function') {
    fail(new Error('this browser has no WebAssembly or fetch'));
    return win.tandem;
  }
  // With the wasm already in memory (preloaded), its response, the whole compilation and init
  // with its PageView can run as one task: 52 to 67 ms long in the bench on a loaded machine. A
  // message posted as the response arrives is delivered once that task is over: a module compiled
  // before then waits for a task of its own before init. Otherwise init starts at once: yielding
  // every time delayed the first PageView by about 18 ms in the bench's page.
  var responseTaskOver = false;
  function taskOverSoon() {
    nextTask(win).then(function () { responseTaskOver = true; });
  }
  // The snippet may have started the compilation itself (`tandem.compiled`, README), while this
  // script was on its way: a promise of the module, or of nothing when it failed (a wrong MIME
  // type, a blocked request), and then, as for another release's module, the loader fetches the
  // file as without it. A module ready before this script ran is taken in this task, so it too
  // waits for a task of its own.
  var early = stub.compiled;
  if (early) taskOverSoon();
  Promise.resolve(early)
    .then(null, function () { /* not a promise of ours: compiled here */ })
    .then(function (module) {
      return ours(module) ? module : compileWasm(wasmUrlFor(win, script), taskOverSoon);
    })
    .then(function (module) {
      compiled = module;
      return responseTaskOver ? null : nextTask(win);
    })
    .then(instantiate)
    .then(goLive)
    .catch(fail);
  warmUp(win);
  return stub;
}

// Resolves in a new task: a message on one channel, not clamped like a nested setTimeout.
var yieldChannel = null;
var yieldWaiting = [];
function nextTask(win) {
  return new Promise(function (resolve) {
    try {
      if (!yieldChannel) {
        yieldChannel = new win.MessageChannel();
        yieldChannel.port1.onmessage = function () {
          var next = yieldWaiting.shift();
          if (next) next();
        };
      }
      yieldChannel.port2.postMessage(0);
      yieldWaiting.push(resolve); // after the post: a post that throws leaves no waiter behind
    } catch (error) {
      setTimeout(resolve, 0);
    }
  });
}

// A page's first cookie read and first localStorage read each wait on a round trip to the browser
// process (1 to 5 ms each, measured in Chromium). Made here, while the wasm downloads and compiles,
// they are already paid when the instance starts, instead of lengthening the task that sends the
// first PageView. Reads only: nothing is written before the core has applied consent.
function warmUp(win) {
  try {
    void win.document.cookie;
  } catch (error) { /* cookies disabled or sandboxed: the core copes */ }
  try {
    void win.localStorage.length; // any read loads the origin's storage area
  } catch (error) { /* storage blocked or missing: the core copes */ }
}
