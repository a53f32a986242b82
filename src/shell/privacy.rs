//! Consent and identity in the browser: what the page said before `init` (kept here until the
//! core exists, so a consent default set before init applies before init's first effect), Global
//! Privacy Control, and the timer that ends a consent default's `wait_for_update`.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use super::Single;
use crate::core::json::Value;
use crate::core::tag::{Outcome, Pre, Tag};

/// `None` until the first call before init: a value made at compile time links no lazy set-up code.
static PRE: Single<RefCell<Option<Pre>>> = Single(RefCell::new(None));
static WAKE_AT: Single<RefCell<Option<u64>>> = Single(RefCell::new(None));

#[wasm_bindgen(inline_js = r#"
export function consent_wake(ms) {
  try {
    setTimeout(function () {
      try { window.tandem('__consent_wait'); } catch (e) { /* no tandem function: never into the page */ }
    }, ms);
  } catch (e) { /* no timers: the next call releases what waits */ }
}
export function privacy_gpc() {
  try { return navigator.globalPrivacyControl === true; } catch (e) { return false; }
}
export function privacy_lowercase(s) {
  return s.toLowerCase();
}
var nameFirst, nameRest;
export function privacy_name_fault(s) {
  try {
    // Built here, not written as literals: a browser without Unicode property escapes would
    // refuse the whole script over a literal, and takes the ASCII rule below instead.
    nameFirst = nameFirst || new RegExp('^\\p{Alphabetic}', 'u');
    nameRest = nameRest || new RegExp('^[\\p{Alphabetic}\\p{N}_]*$', 'u');
  } catch (e) {
    nameFirst = /^[A-Za-z]/;
    nameRest = /^\w*$/;
  }
  return !nameFirst.test(s) ? 1 : nameRest.test(s) ? 0 : 2;
}
"#)]
extern "C" {
    fn consent_wake(ms: u32);
    /// `navigator.globalPrivacyControl === true`.
    fn privacy_gpc() -> bool;
    /// `String.prototype.toLowerCase`, for identify's normalisation (see `core::unicode`).
    fn privacy_lowercase(s: &str) -> String;
    /// GA4's event-name rule with the browser's Unicode classes, as `unicode::rust_name_fault_code`.
    fn privacy_name_fault(s: &str) -> u32;
}

/// `consent` / `identify` before `init`.
pub fn before_init(name: &str, args: &[Value], now_ms: u64) -> Outcome {
    install();
    PRE.with(|pre| pre.borrow_mut().get_or_insert_with(Pre::default).command(name, args, now_ms))
}

/// What init applies first (and forgets here: the tag holds it from now on).
pub fn take() -> Pre {
    install();
    let mut pre = PRE.with(|pre| pre.borrow_mut().take()).unwrap_or_default();
    pre.gpc = privacy_gpc();
    pre
}

/// The timer ran (`__consent_wait`). It may run before the deadline by the page's clock (coarsened
/// timers): the deadline is forgotten, so a wait still running is armed again by `schedule`.
pub fn woke() {
    WAKE_AT.with(|w| *w.borrow_mut() = None);
}

/// Arms the timer for a wait that holds events (once per deadline).
pub fn schedule(tag: &Tag, now_ms: u64) {
    let Some(at) = tag.wake_at() else { return };
    let fresh = WAKE_AT.with(|w| w.borrow_mut().replace(at) != Some(at));
    if fresh {
        consent_wake(at.saturating_sub(now_ms).min(60_000) as u32 + 1);
    }
}

fn install() {
    crate::core::unicode::install(privacy_lowercase, privacy_name_fault);
}
