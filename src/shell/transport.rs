//! The delivery shell: carries out the outbox's decisions (`core::outbox`) in the browser.
//!
//! - Requests: `fetch` with `keepalive` (text/plain, so no CORS preflight), its status reported
//!   back; on unload `sendBeacon` first (a `true` counts as handed over), fetch as fallback.
//! - One timer (`setTimeout`) for the batching window, backoff and request timeouts.
//! - Results and timers come back through the *relay*, a function the loader gives each instance
//!   once (`set_relay(relay, tabId, shared)`): `relay('__tick', [])`, `relay('__delivered', [status, ids])`. The loader
//!   routes them like any call, so they survive a crash and restart of the wasm instance (queued
//!   while it restarts, then handled by the fresh instance, which reloaded the persisted queue).
//! - The loader also relays `pagehide`, `visibilitychange`→hidden (`__flush`) and `online`
//!   (`__online`); it registers those listeners once per page, never `unload`.
//! - localStorage: this tab's queue key, other tabs' keys to claim and adopt (a claim is written at
//!   once, not coalesced), and the core's `Store` effects.
//!   Writes are coalesced (`transport_store`): a key changed several times is written once, in the
//!   next task, so `track()` never pays for a synchronous localStorage write, and a queue entry
//!   delivered before then is never written at all (nor removed: the tab's own key, new with the
//!   page, is removed only once this page has written it). They are made at once when the page
//!   is hidden or closing (`__flush`) and before a fresh instance reads storage. Pending writes live in a JS
//!   object the loader keeps for the page, not in wasm memory, so a crash right after `track()`
//!   loses none of them. Every call is guarded; a write that fails (QuotaExceededError) removes
//!   the key so no stale copy is left behind, and the outbox hears of it (`__stored`).
//! - A queue that is not in storage (ad_storage denied, or its write failed) is kept in that
//!   object too, and the loader hands it to a fresh instance (`__kept`), which takes it up as its
//!   own: in the crashed instance's memory alone it would be lost.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use super::browser::{self, BrowserEntropy};
use super::Single;
use crate::core::consent::State;
use crate::core::error::TagError;
use crate::core::{ids, payload};
use crate::core::json::{self, Value};
use crate::core::outbox::{Outbox, Settings, Step, KEY_PREFIX};
use crate::core::tag::{Entropy, Outcome};

#[wasm_bindgen(inline_js = r#"
// A no-op until the loader hands over its relay, so a caller need not test for one.
let tandemRelay = function () {};
let tandemTimer = 0;
let tandemSoon = false;
let tandemEmitSoon = false;
// The loader's per-page object (one per page, shared by every instance): it holds the storage
// writes not yet made, so a crashed instance's last writes still land and the fresh one reads them.
let tandemShared = {};
// Not imported by the wasm: the glue factory's set_relay (scripts/build.mjs) runs its body, with
// its parameters' names, so neither the relay nor the shared object crosses into the wasm, which
// then needs no externref table. Its callers (set_relay, and set_relay's test hook) pass the
// loader's relay and page object.
export function transport_relay(f, shared) {
  tandemRelay = f;
  tandemShared = shared;
  tandemShared.flush = transport_flush;
  transport_flush();
}
export function transport_wake(ms) {
  try {
    if (tandemTimer) clearTimeout(tandemTimer);
    tandemTimer = 0;
    if (ms === 0) {
      // Due now: at the end of this task, so the calls of one task share a request.
      if (!tandemSoon) {
        tandemSoon = true;
        Promise.resolve().then(function () {
          tandemSoon = false;
          tandemRelay('__tick', []);
        });
      }
      return;
    }
    if (ms > 2147483647) return; // outbox::NEVER: cancelled (setTimeout would run it at once)
    tandemTimer = setTimeout(function () {
      tandemTimer = 0;
      tandemRelay('__tick', []);
    }, ms);
  } catch (e) { /* no timers: the next call or the next page sends */ }
}
// How many events a consent wait holds, kept in the page's object: a crash loses the instance, and
// the loader gives those calls to the fresh one (www/loader.js, waitHeld).
export function transport_held(count) {
  tandemShared.held = count;
}
// The effects of this task's tracks (platform calls, the endpoint event), at its end.
export function transport_emit_soon() {
  if (tandemEmitSoon) return;
  tandemEmitSoon = true;
  Promise.resolve().then(function () {
    tandemEmitSoon = false;
    tandemRelay('__emit', []);
  });
}
function tandemStorage() {
  try { return window.localStorage; } catch (e) { return null; }
}
// localStorage writes, coalesced: the last value of each key is written once, in the next task,
// or at once by transport_flush (page hidden or closing, a fresh instance starting).
// Our own queue, while it is not in storage (`write` false: ad_storage denied; or its write
// failed), is kept in the page's shared object instead: in the crashed instance's memory it would
// be lost, and the loader hands it to the fresh instance (`__kept`).
export function transport_store(key, value, own, write) {
  var s = tandemShared;
  if (own) {
    s.own = key;
    s.memory = write ? undefined : value;
  }
  if (!write) return;
  if (!s.pending) s.pending = new Map();
  s.pending.set(key, value);
  if (!s.timer) {
    try {
      s.timer = setTimeout(function () { s.timer = 0; if (s.flush) s.flush(); }, 0);
    } catch (e) {
      transport_flush();
    }
  }
}
// A key another tab has claimed (`{"by":…`, core::outbox) counts as gone: that tab takes it.
export function transport_has(key) {
  var p = tandemShared.pending;
  if (p && p.has(key)) return p.get(key) !== undefined;
  var ls = tandemStorage();
  try {
    var v = ls && ls.getItem(key);
    return v != null && v.indexOf('{"by":') !== 0;
  } catch (e) {
    return false;
  }
}
export function transport_flush() {
  var s = tandemShared, p = s.pending;
  if (!p || !p.size) return;
  s.pending = null;
  var ls = tandemStorage();
  var known = s.ok || (s.ok = new Map());
  // This page's keys in storage. The tab's own queue key is new with the page (a random tab id),
  // so until this page writes it there is nothing to remove: a queue delivered within the task it
  // was queued in (the usual case) costs no storage call at all, where a removeItem cost about
  // as much as a write.
  var stored = s.stored || (s.stored = new Set());
  p.forEach(function (value, key) {
    var ok = false;
    try {
      if (ls) {
        if (value !== undefined) {
          ls.setItem(key, value);
          stored.add(key);
        } else if (key !== s.own || stored.has(key)) {
          stored.delete(key);
          ls.removeItem(key);
        }
        ok = true;
      }
    } catch (e) {
      // QuotaExceededError: no stale copy left behind for another page to resend. Another tab's
      // queue whose claim failed is left as it was, for whichever tab claims it next.
      if (key === s.own || key.indexOf('tandem:q:') !== 0) {
        if (key === s.own) s.memory = value;
        stored.delete(key);
        try { ls.removeItem(key); } catch (e2) { /* nothing more to do */ }
      }
    }
    // The outbox hears of a change of outcome of a write only, after this call (never re-entering
    // the wasm): a removal that works (ad_storage denied) says nothing of whether the queue can
    // be stored, and taken for a working write it would have the outbox count on a stored copy.
    if (value !== undefined && ok !== (known.get(key) !== false)) {
      known.set(key, ok);
      try {
        Promise.resolve().then(function () { tandemRelay('__stored', [key, ok]); });
      } catch (e) { /* no microtasks: the outbox keeps its last view */ }
    }
  });
}
export function transport_send(url, body, ids, beacon, keepalive) {
  if (beacon) {
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return 1;
    } catch (e) { /* fetch below */ }
  }
  try {
    fetch(url, { method: 'POST', body: body, keepalive: keepalive, credentials: 'include', headers: { 'Content-Type': 'text/plain' } })
      .then(function (r) { return r.status; }, function () { return 0; })
      .then(function (status) { tandemRelay('__delivered', [status, ids]); })
      .catch(function () {});
    return 0;
  } catch (e) {
    return -1;
  }
}
"#)]
extern "C" {
    #[cfg(feature = "test-hooks")]
    fn transport_relay(relay: &wasm_bindgen::JsValue, shared: &wasm_bindgen::JsValue);
    fn transport_wake(ms: u32);
    fn transport_emit_soon();
    fn transport_held(count: u32);
    /// Sets (`Some`) or removes (`None`) a localStorage key, in the next task (see `transport_flush`).
    /// `own`: the key is this tab's queue key, whose value is also kept in the page's shared
    /// object while it is not in storage; `write` false: only kept there (ad_storage denied).
    fn transport_store(key: &str, value: Option<&str>, own: bool, write: bool);
    /// Whether a key will be in storage, unclaimed by another tab, once pending writes are made.
    fn transport_has(key: &str) -> bool;
    /// Makes the pending localStorage writes now.
    fn transport_flush();
    /// 1: handed over (sendBeacon true); 0: a fetch is on its way, its status will be relayed;
    /// -1: nothing could be sent.
    fn transport_send(url: &str, body: &str, ids: &str, beacon: bool, keepalive: bool) -> i32;
}

#[derive(Default)]
struct Report {
    errors: Vec<TagError>,
    warnings: Vec<String>,
}

static OUTBOX: Single<RefCell<Option<Outbox>>> = Single(RefCell::new(None));
static TAB_ID: Single<RefCell<String>> = Single(RefCell::new(String::new()));
// Made at compile time: a value initialised on first use links its lazy-initialisation code into
// the wasm (about 120 B of gzip) for what is two empty vectors.
static REPORT: Single<RefCell<Report>> = Single(RefCell::new(Report { errors: Vec::new(), warnings: Vec::new() }));
/// Whether the visitor's consent allows storage (ad_storage): the queue holds click IDs and
/// Meta cookies, so with ad_storage denied it stays in memory for the page only.
static STORAGE_ALLOWED: Single<std::cell::Cell<bool>> = Single(std::cell::Cell::new(true));
/// Whether the queues earlier pages left were read (see `follow_consent`).
static ADOPTED: Single<std::cell::Cell<bool>> = Single(std::cell::Cell::new(false));
/// Whether the queue was last redacted for a denied ad_user_data (see `follow_consent`).
static USER_DATA_DENIED: Single<std::cell::Cell<bool>> = Single(std::cell::Cell::new(false));
/// The number of held events the loader was last told of (see `held`).
static HELD: Single<std::cell::Cell<usize>> = Single(std::cell::Cell::new(0));
/// Whether basic mode last stopped sending, so the queue was dropped (see `follow_consent`).
static SENDING_STOPPED: Single<std::cell::Cell<bool>> = Single(std::cell::Cell::new(false));
/// (holding, due): while the end-of-task effects are applied, a wake of 0 ms is noted rather
/// than scheduled (see `send_after`).
static DUE_NOW: Single<std::cell::Cell<(bool, bool)>> = Single(std::cell::Cell::new((false, false)));

/// Follows the consent state after every command. Denial (or revocation) of ad_storage removes
/// this tab's stored queue at once; what waits is still delivered from memory during the page
/// (the outbox is told, so it neither takes the missing key for an adoption nor counts on a
/// stored copy at unload), and is stored again once ad_storage is granted.
/// The queues earlier pages left are read (adopted) only once ad_storage is granted: reading
/// storage is access too; and read again while a claim on one is to be followed (a `__tick` at
/// the time the outbox asked for). Denial of ad_user_data (an update, or GPC) redacts what waits,
/// in memory and stored, to what it would carry had it been tracked now. The first call after
/// start counts as a change, and so does an adoption, so events adopted from an earlier page are
/// redacted too (an adoption sends nothing itself: they go at the next tick, redacted);
/// pending (a wait) is not a denial. In basic mode, a state that does not allow sending drops the
/// queue instead, in memory and stored, and cancels its timer (`Outbox::drop_all`).
pub fn follow_consent(state: &State) {
    let allowed = state.ad_storage();
    let was = STORAGE_ALLOWED.with(|a| a.replace(allowed));
    // The outbox first (its key checked while the key is still there), then our key removed:
    // removed first, a due check (a page back from the back/forward cache) would find it gone,
    // take that for another tab's adoption and drop the queue.
    if was != allowed {
        with_outbox(Call::Storage(allowed));
    }
    if was && !allowed {
        // The key is borrowed where it lies: neither call re-enters the wasm.
        OUTBOX.with(|o| {
            if let Some(outbox) = o.borrow().as_ref() {
                // Not as our queue's value: that is kept outside storage from now on (see run).
                transport_store(outbox.key(), None, false, true);
                transport_flush();
            }
        });
    }
    // Read again while a claim is to be followed (see core::outbox), so what it takes is
    // treated like anything adopted below.
    let recheck = OUTBOX.with(|o| o.borrow().as_ref().is_some_and(|o| o.recheck_due(browser::now())));
    let adopting = allowed && (!ADOPTED.with(|a| a.replace(true)) || recheck);
    if adopting {
        // Our own writes still coalesced land first, so storage reads as this tab left it.
        transport_flush();
        let stored = stored_queues();
        with_outbox(Call::Adopt(&stored));
    }
    // Basic mode sends nothing without ad consent: what waits goes too, retries included.
    let stopped = !state.may_send() && !state.pending();
    let was_stopped = SENDING_STOPPED.with(|s| s.replace(stopped));
    if stopped && (!was_stopped || adopting) {
        with_outbox(Call::DropAll);
    }
    let denied = !state.user_data() && !state.pending();
    let was_denied = USER_DATA_DENIED.with(|d| d.replace(denied));
    if denied && (!was_denied || adopting) {
        with_outbox(Call::Redact(state));
    }
}

/// Tells the loader how many events a consent wait holds, when that changed.
pub fn held(count: usize) {
    if HELD.with(|h| h.replace(count)) != count {
        transport_held(count as u32);
    }
}

/// `__emit` at the end of the current task, through the relay (see `Tag::track_deferred`).
pub fn emit_soon() {
    transport_emit_soon();
}

/// The core's `Effect::Store`, written with the outbox's writes (see the module doc).
pub fn store(key: &str, value: &str) {
    transport_store(key, Some(value), false, true);
}

/// The tab id, given once per instance by the loader with the relay (`set_relay(relay, tabId,
/// shared)` in the glue factory): the loader's, so a restarted instance finds this tab's persisted
/// queue. The relay and the page's shared object (storage writes not yet made) stay in JS.
#[wasm_bindgen]
pub fn set_tab_id(tab_id: &str) {
    if !tab_id.is_empty() && tab_id.len() <= 64 {
        TAB_ID.with(|t| *t.borrow_mut() = tab_id.to_string());
    }
}

/// Test hook: what the glue factory's `set_relay` does, for tests that run without the factory.
#[cfg(feature = "test-hooks")]
pub fn set_relay(relay: &wasm_bindgen::JsValue, tab_id: &str, shared: &wasm_bindgen::JsValue) {
    transport_relay(relay, shared);
    set_tab_id(tab_id);
}

/// An outbox for this tab (a random tab id when the loader gave none), made under the borrow
/// of the tab id, which is then not copied out.
fn new_outbox(settings: Settings) -> Outbox {
    TAB_ID.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_empty() {
            let mut b = [0u8; 9];
            BrowserEntropy.fill(&mut b);
            *t = ids::base64url(&b);
        }
        Outbox::new(settings, &t)
    })
}

/// Every `tandem:q:*` key in localStorage with its value.
fn stored_queues() -> Vec<(String, String)> {
    browser::stored_with_prefix(KEY_PREFIX)
}

/// Carries out one step of the outbox (and the steps that immediate send results cause).
fn run(outbox: &mut Outbox, step: &mut Step, now_ms: u64) {
    // Other tabs' keys (a claim, or a queue taken) change in the task that read them, not
    // coalesced: a claim must land before the other tabs look (see core::outbox).
    if !step.others.is_empty() {
        for (key, value) in &step.others {
            transport_store(key, Some(value.as_str()).filter(|v| !v.is_empty()), false, true);
        }
        transport_flush();
    }
    // Borrowed where it lies in the step: `Option::filter` moved it out first.
    if let Some(value) = &step.persist {
        let allowed = STORAGE_ALLOWED.with(|a| a.get());
        transport_store(outbox.key(), value.as_deref(), true, allowed);
        if allowed {
            // The write is made later; until `__stored` says otherwise, it goes as the last one did
            // (an outcome unchanged: no warning).
            let ok = outbox.storage_ok();
            outbox.persisted(step, ok);
        }
    }
    REPORT.with(|r| {
        let mut r = r.borrow_mut();
        r.errors.append(&mut step.errors);
        r.warnings.append(&mut step.warnings);
    });
    for req in &step.requests {
        let result = transport_send(&req.url, &req.body, &req.ids, req.beacon, req.keepalive);
        if result != 0 {
            let mut next = Step::default();
            outbox.sent(&mut next, &req.ids, result == 1, now_ms, &mut BrowserEntropy);
            run(outbox, &mut next, now_ms);
        }
    }
    // Nested: a match on the pair (wake, DUE_NOW) read DUE_NOW for every step, in more wasm.
    if let Some(ms) = step.wake_ms {
        if ms == 0 && DUE_NOW.with(|d| d.get().0) {
            DUE_NOW.with(|d| d.set((true, true)));
        } else {
            transport_wake(ms.min(u64::from(u32::MAX)) as u32);
        }
    }
}

/// What `with_outbox` has the outbox do: one of these, matched there, where each caller's closure
/// (a `&mut dyn FnMut`) came with a vtable and a call_once shim of its own.
enum Call<'a> {
    /// `Outbox::storage_allowed`.
    Storage(bool),
    /// `Outbox::adopt` of these stored queues.
    Adopt(&'a [(String, String)]),
    DropAll,
    /// What waits, redacted for this state (`payload::redact`).
    Redact(&'a State),
    /// (url, event, event_id, time_ms): `Outbox::enqueue_event`.
    Enqueue(&'a str, &'a str, &'a str, u64),
    /// A relayed command and its arguments (see `handle`).
    Relayed(&'a str, &'a [Value]),
}

/// Runs `call` on the outbox with a fresh step for it to fill (see core::outbox), then carries it out.
fn with_outbox(call: Call) {
    OUTBOX.with(|slot| {
        if let Some(outbox) = slot.borrow_mut().as_mut() {
            let now_ms = browser::now();
            if outbox.key_check_due(now_ms) {
                let own = transport_has(outbox.key());
                let mut step = Step::default();
                outbox.key_checked(&mut step, own);
                run(outbox, &mut step, now_ms);
            }
            let mut step = Step::default();
            match call {
                Call::Storage(allowed) => outbox.storage_allowed(&mut step, allowed, now_ms),
                Call::Adopt(stored) => outbox.adopt(&mut step, stored, now_ms),
                Call::DropAll => outbox.drop_all(&mut step, now_ms),
                Call::Redact(state) => outbox.rewrite(&mut step, now_ms, |json| payload::redact(json, state)),
                Call::Enqueue(url, event, event_id, time_ms) => outbox.enqueue_event(&mut step, url, event_id, time_ms, event, now_ms),
                Call::Relayed(name, args) => relayed(outbox, &mut step, now_ms, name, args),
            }
            run(outbox, &mut step, now_ms);
        }
    });
}

/// After `init` (or `restore`): reads the delivery settings. The persisted queues are adopted by
/// the `follow_consent` that follows, once ad_storage allows.
pub fn start(config: &Value, errors: &mut Vec<TagError>) {
    transport_flush();
    let settings = Settings::parse(config, errors);
    OUTBOX.with(|slot| *slot.borrow_mut() = Some(new_outbox(settings)));
    ADOPTED.with(|a| a.set(false));
}

/// Runs `apply`, the effects built at the end of the task (`__emit`), and then sends a batch they
/// made due at once: a wake of 0 ms would only come back as one more call (`__tick`) in the same
/// task, after nothing else could have joined the batch.
pub fn send_after(apply: impl FnOnce()) {
    DUE_NOW.with(|d| d.set((true, false)));
    apply();
    let (_, due) = DUE_NOW.with(|d| d.replace((false, false)));
    if due {
        handle("__tick", &[]);
    }
}

/// The core's `Effect::Send`: the event joins the outbox.
pub fn enqueue(url: &str, event: &str, event_id: &str, time_ms: u64) {
    with_outbox(Call::Enqueue(url, event, event_id, time_ms));
}

/// Whether `name` is one of the relayed commands handled here.
pub fn is_internal(name: &str) -> bool {
    matches!(name, "__tick" | "__delivered" | "__flush" | "__online" | "__stored" | "__kept")
}

/// A relayed command: a timer, a request's status, the page hiding, the browser online again.
pub fn handle(name: &str, args: &[Value]) -> Outcome {
    with_outbox(Call::Relayed(name, args));
    if name == "__flush" {
        // The page may be gone before the next task: every pending write goes now.
        transport_flush();
    }
    Outcome::default()
}

/// `handle`'s work on the outbox.
fn relayed(outbox: &mut Outbox, step: &mut Step, now_ms: u64, name: &str, args: &[Value]) {
    let arg = |i: usize| args.get(i);
    match name {
        "__tick" => {
            let own = transport_has(outbox.key());
            outbox.tick(step, now_ms, own, &mut BrowserEntropy)
        }
        "__stored" => {
            // The outcome of a coalesced write of our key changed (see `transport_flush`).
            // Its warning goes out through the step, as `run` reports every step's.
            let ok = arg(1).is_some_and(|v| matches!(v, Value::Bool(true)));
            if arg(0).and_then(Value::as_str) == Some(outbox.key()) {
                outbox.persisted(step, ok);
            }
        }
        "__delivered" => {
            let status = match arg(0) {
                Some(Value::Number(n)) => json::whole(n).and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
                _ => 0,
            };
            let ids = arg(1).and_then(Value::as_str).unwrap_or("");
            outbox.delivered(step, ids, status, now_ms, &mut BrowserEntropy)
        }
        "__flush" => outbox.hide(step, now_ms, matches!(arg(0).and_then(Value::as_str), Some("pagehide"))),
        // From the loader after a crash: the queue the crashed instance kept outside storage
        // (see transport_store), ours as if read from our key.
        "__kept" => {
            let kept = [(outbox.key().to_string(), arg(0).and_then(Value::as_str).unwrap_or("").to_string())];
            outbox.adopt(step, &kept, now_ms)
        }
        _ => outbox.online(step, now_ms),
    }
}

/// Errors and warnings from delivery since the last call, added to the reply the loader reports.
pub fn drain(outcome: &mut Outcome) {
    REPORT.with(|r| {
        let mut r = r.borrow_mut();
        outcome.errors.append(&mut r.errors);
        outcome.warnings.append(&mut r.warnings);
    });
}

/// Test hook: forget the outbox (the page's storage is left as it is, with the writes pending).
#[cfg(feature = "test-hooks")]
pub fn reset() {
    transport_flush();
    OUTBOX.with(|slot| *slot.borrow_mut() = None);
    STORAGE_ALLOWED.with(|a| a.set(true));
    USER_DATA_DENIED.with(|d| d.set(false));
    SENDING_STOPPED.with(|s| s.set(false));
    held(0);
}
