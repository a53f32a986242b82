//! The delivery shell: carries out the outbox's decisions (`core::outbox`) in the browser.
//!
//! - Requests: `fetch` with `keepalive` (text/plain, so no CORS preflight), its status reported
//!   back; on unload `sendBeacon` first (a `true` counts as handed over), fetch as fallback.
//! - One timer (`setTimeout`) for the batching window, backoff and request timeouts.
//! - Results and timers come back through the *relay*, a function the loader gives each instance
//!   once (`set_relay(relay, tabId)`): `relay('__tick', [])`, `relay('__delivered', [status, ids])`. The loader
//!   routes them like any call, so they survive a crash and restart of the wasm instance (queued
//!   while it restarts, then handled by the fresh instance, which reloaded the persisted queue).
//! - The loader also relays `pagehide`, `visibilitychange`→hidden (`__flush`) and `online`
//!   (`__online`); it registers those listeners once per page, never `unload`.
//! - localStorage: this tab's queue key, and other tabs' keys to adopt. Every call is guarded; a
//!   write that fails (QuotaExceededError) removes the key so no stale copy is left behind.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use super::browser::{self, BrowserEntropy};
use crate::core::error::TagError;
use crate::core::ids;
use crate::core::json::Value;
use crate::core::outbox::{Outbox, Settings, Step, KEY_PREFIX};
use crate::core::tag::{Entropy, Outcome};

#[wasm_bindgen(inline_js = r#"
let tandemRelay = null;
let tandemTimer = 0;
// Not imported by the wasm: the glue factory's set_relay (scripts/build.mjs) calls it, so the relay
// never crosses into the wasm, which then needs no externref table.
export function transport_relay(f) {
  tandemRelay = typeof f === 'function' ? f : null;
}
export function transport_wake(ms) {
  try {
    if (tandemTimer) clearTimeout(tandemTimer);
    tandemTimer = setTimeout(function () {
      tandemTimer = 0;
      if (tandemRelay) tandemRelay('__tick', []);
    }, ms);
  } catch (e) { /* no timers: the next call or the next page sends */ }
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
      .then(function (status) { if (tandemRelay) tandemRelay('__delivered', [status, ids]); })
      .catch(function () {});
    return 0;
  } catch (e) {
    return -1;
  }
}
"#)]
extern "C" {
    #[cfg(feature = "test-hooks")]
    fn transport_relay(relay: &wasm_bindgen::JsValue);
    fn transport_wake(ms: u32);
    /// 1: handed over (sendBeacon true); 0: a fetch is on its way, its status will be relayed;
    /// -1: nothing could be sent.
    fn transport_send(url: &str, body: &str, ids: &str, beacon: bool, keepalive: bool) -> i32;
}

#[derive(Default)]
struct Report {
    errors: Vec<TagError>,
    warnings: Vec<String>,
}

thread_local! {
    static OUTBOX: RefCell<Option<Outbox>> = const { RefCell::new(None) };
    static TAB_ID: RefCell<String> = const { RefCell::new(String::new()) };
    static REPORT: RefCell<Report> = RefCell::new(Report::default());
    /// Whether the visitor's consent allows storage (ad_storage): the queue holds click IDs and
    /// Meta cookies, so with ad_storage denied it stays in memory for the page only.
    static STORAGE_ALLOWED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Follows the consent state after every command. Denial (or revocation) removes this tab's
/// stored queue at once; what waits is still delivered from memory during the page.
pub fn set_storage_allowed(allowed: bool) {
    let was = STORAGE_ALLOWED.with(|a| a.replace(allowed));
    if was && !allowed {
        let key = OUTBOX.with(|o| o.borrow().as_ref().map(|o| o.key().to_string()));
        if let Some(key) = key {
            browser::unstore(&key);
        }
    }
}

/// The tab id, given once per instance by the loader with the relay (`set_relay(relay, tabId)`
/// in the glue factory): the loader's, so a restarted instance finds this tab's persisted queue.
#[wasm_bindgen]
pub fn set_tab_id(tab_id: &str) {
    if !tab_id.is_empty() && tab_id.len() <= 64 {
        TAB_ID.with(|t| *t.borrow_mut() = tab_id.to_string());
    }
}

/// Test hook: what the glue factory's `set_relay` does, for tests that run without the factory.
#[cfg(feature = "test-hooks")]
pub fn set_relay(relay: &wasm_bindgen::JsValue, tab_id: &str) {
    transport_relay(relay);
    set_tab_id(tab_id);
}

fn now() -> u64 {
    browser::now()
}

fn tab_id() -> String {
    TAB_ID.with(|t| {
        let mut t = t.borrow_mut();
        if t.is_empty() {
            let mut b = [0u8; 9];
            BrowserEntropy.fill(&mut b);
            *t = ids::base64url(&b);
        }
        t.clone()
    })
}

/// Every `tandem:q:*` key in localStorage with its value.
fn stored_queues() -> Vec<(String, String)> {
    browser::stored_with_prefix(KEY_PREFIX)
}

/// Carries out one step of the outbox (and the steps that immediate send results cause).
fn run(outbox: &mut Outbox, step: Step, now_ms: u64) {
    for key in &step.forget {
        browser::unstore(key);
    }
    if let Some(value) = step.persist.filter(|_| STORAGE_ALLOWED.with(|a| a.get())) {
        let key = outbox.key().to_string();
        let ok = match &value {
            Some(v) => browser::store(&key, v),
            None => browser::unstore(&key),
        };
        if !ok {
            browser::unstore(&key);
        }
        if let Some(w) = outbox.persisted(ok) {
            REPORT.with(|r| r.borrow_mut().warnings.push(w));
        }
    }
    REPORT.with(|r| {
        let mut r = r.borrow_mut();
        r.errors.extend(step.errors);
        r.warnings.extend(step.warnings);
    });
    for req in step.requests {
        let result = transport_send(&req.url, &req.body, &req.ids, req.beacon, req.keepalive);
        if result != 0 {
            let next = outbox.sent(&req.ids, result == 1, now_ms, &mut BrowserEntropy);
            run(outbox, next, now_ms);
        }
    }
    if let Some(ms) = step.wake_ms {
        transport_wake(ms.min(u64::from(u32::MAX)) as u32);
    }
}

fn with_outbox(f: impl FnOnce(&mut Outbox, u64) -> Step) {
    OUTBOX.with(|slot| {
        if let Some(outbox) = slot.borrow_mut().as_mut() {
            let now_ms = now();
            let step = f(outbox, now_ms);
            run(outbox, step, now_ms);
        }
    });
}

/// After `init` (or `restore`): reads the delivery settings and adopts persisted queues.
pub fn start(config: &Value, errors: &mut Vec<TagError>) {
    let settings = Settings::parse(config, errors);
    let mut outbox = Outbox::new(settings, &tab_id());
    let now_ms = now();
    let step = outbox.adopt(&stored_queues(), now_ms);
    run(&mut outbox, step, now_ms);
    OUTBOX.with(|slot| *slot.borrow_mut() = Some(outbox));
}

/// The core's `Effect::Send`: the events join the outbox.
pub fn enqueue(url: &str, body: &str) {
    with_outbox(|outbox, now_ms| outbox.enqueue(url, body, now_ms));
}

/// Whether `name` is one of the relayed commands handled here.
pub fn is_internal(name: &str) -> bool {
    matches!(name, "__tick" | "__delivered" | "__flush" | "__online")
}

/// A relayed command: a timer, a request's status, the page hiding, the browser online again.
pub fn handle(name: &str, args: &[Value]) -> Outcome {
    let arg = |i: usize| args.get(i);
    with_outbox(|outbox, now_ms| match name {
        "__tick" => {
            let own = browser::stored(outbox.key());
            outbox.tick(now_ms, own.as_deref(), &mut BrowserEntropy)
        }
        "__delivered" => {
            let status = match arg(0) {
                Some(Value::Number(n)) => n.parse::<u32>().unwrap_or(0),
                _ => 0,
            };
            let ids = arg(1).and_then(Value::as_str).unwrap_or("");
            outbox.delivered(ids, status, now_ms, &mut BrowserEntropy)
        }
        "__flush" => outbox.hide(now_ms, arg(0).and_then(Value::as_str) == Some("pagehide")),
        _ => outbox.online(now_ms),
    });
    Outcome::default()
}

/// Errors and warnings from delivery since the last call, added to the reply the loader reports.
pub fn drain(outcome: &mut Outcome) {
    REPORT.with(|r| {
        let mut r = r.borrow_mut();
        outcome.errors.append(&mut r.errors);
        outcome.warnings.append(&mut r.warnings);
    });
}

/// Test hook: forget the outbox (the page's storage is left as it is).
#[cfg(feature = "test-hooks")]
pub fn reset() {
    OUTBOX.with(|slot| *slot.borrow_mut() = None);
    STORAGE_ALLOWED.with(|a| a.set(true));
}
