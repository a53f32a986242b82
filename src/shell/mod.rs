//! The browser shell: the one place JS calls into Rust and errors leave it.
//!
//! `command(name, args_json)` is the single entry point the loader uses. It reads the page
//! (`browser::page_facts`), runs the pure core, carries out the effects the core returns, and
//! replies with the core's outcome for the loader to report (see `reply`). It never throws into
//! the page: platform functions that throw are caught where they are called, and storage or
//! cookie failures are ignored by design (the event still goes out).

mod browser;
mod privacy;
pub mod transport;

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use crate::core::error::TagError;
use crate::core::json::{self, Value};
use crate::core::tag::{Outcome, Pre, Tag};

crate::messages! {
    INIT_AGAIN = "s0" "tandem('init') was called again; the first configuration stays in force";
    NOT_INITIALIZED = "s1" "Call tandem('init', config) before tracking events";
    UNKNOWN_COMMAND = "s2" "Unknown command; use 'init', 'track', 'page', 'consent' or 'identify'";
}

use crate::Single;

/// The core, once init made it (see `Single` for why a plain static).
static TAG: Single<RefCell<Option<Tag>>> = Single(RefCell::new(None));

/// The nonce of the loader's script tag, given once after instantiation, passed to injected scripts.
#[wasm_bindgen]
pub fn set_script_nonce(nonce: &str) {
    browser::set_nonce(nonce);
}

/// Runs one API call: `init`, `track`, `page`, or `restore` (re-creating the core's state on a
/// fresh instance after a crash, without repeating init's effects; the consent calls made after
/// init and every identify call follow it as `__consent_restored` / `__identity_restored`, without
/// theirs, see `restored`). `args_json` is the JSON array of the call's arguments as the loader
/// serialised them.
#[wasm_bindgen]
pub fn command(name: &str, args_json: &str) -> String {
    let args = match json::parse(args_json) {
        Ok(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let null = Value::Null;
    let arg = |index: usize| args.get(index).unwrap_or(&null);
    let mut entropy = browser::BrowserEntropy;
    // Delivery's own commands (timers, results) read nothing from the page, nor does identify,
    // which takes only the time (cookies, storage and the location are each a call into the
    // browser), nor does the rehearsal, which reads its own. Track reads what it needs below;
    // every other call reads all of `page_facts`.
    let page = match name {
        clock_only if transport::is_internal(clock_only) || matches!(clock_only, "__emit" | "identify" | "__identity_restored" | "__rehearse") => {
            browser::clock_facts(browser::now())
        }
        // An event held for consent keeps its call's cookies; any other is built with later ones.
        // A wait past its deadline is caught up first (`Tag::track`), which reads what `__consent_wait` would.
        "track" => {
            let now_ms = browser::now();
            let (pending, due) = TAG.with(|slot| slot.borrow().as_ref().map_or((false, false), |tag| (tag.consent_state(now_ms).pending(), tag.wake_at().is_some_and(|t| now_ms >= t))));
            if due {
                browser::page_facts()
            } else {
                browser::track_facts(pending, now_ms)
            }
        }
        _ => browser::page_facts(),
    };

    // The effects of tracks made earlier in this task are carried out before anything else (see
    // `Tag::track_deferred`): a pagehide flush must find their events in the outbox.
    let mut earlier = TAG.with(|slot| match slot.borrow_mut().as_mut() {
        Some(tag) if name != "track" && tag.has_deferred() => Some((tag.emit_deferred(&browser::emit_facts(tag.needs_cookies_to_emit(), tag.needs_sent_log())), tag.debug())),
        _ => None,
    });
    if let Some((earlier, debug)) = &earlier {
        if name == "__emit" {
            transport::send_after(|| browser::apply(&earlier.effects, *debug));
        } else {
            browser::apply(&earlier.effects, *debug);
        }
    }

    // Before the pagehide flush, so what a consent wait held is among the events it beacons.
    if name == "__flush" && matches!(arg(0).as_str(), Some("pagehide")) {
        let released = TAG.with(|slot| {
            let mut slot = slot.borrow_mut();
            let tag = slot.as_mut().filter(|tag| tag.wake_at().is_some())?;
            Some((tag.end_wait_at_unload(&browser::page_facts()), tag.debug()))
        });
        if let Some((released, debug)) = released {
            browser::apply(&released.effects, debug);
        }
    }

    let mut outcome = TAG.with(|slot| {
        let mut slot = slot.borrow_mut();
        // The name first, then whether there is a core: matched as a pair, a name that comes with
        // and without one was compared twice.
        match name {
            "init" | "restore" => {
                if slot.is_some() {
                    let mut again = Outcome::default();
                    if name == "init" {
                        again.warnings.push(INIT_AGAIN.into());
                    }
                    return again;
                }
                // privacy::take forgets what the page said before init: a refused config leaves it
                // for the init that follows, which would otherwise start without its consent.
                let pre = if Tag::accepts(arg(0)) { privacy::take() } else { Pre::default() };
                let (tag, mut outcome) = Tag::init_with(arg(0), &page, &mut entropy, pre);
                if tag.is_some() {
                    transport::start(arg(0), &mut outcome.errors);
                }
                *slot = tag;
                if name == "restore" {
                    Outcome::default()
                } else {
                    outcome
                }
            }
            internal if transport::is_internal(internal) => transport::handle(internal, &args),
            #[cfg(feature = "test-hooks")]
            "__test_panic" => panic!("deliberate test panic"),
            // Allocates until the memory's declared maximum refuses to grow: the failed allocation
            // traps, as a panic does. Without a maximum this would take the tab's memory.
            #[cfg(feature = "test-hooks")]
            "__test_exhaust_memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            #[cfg(feature = "test-hooks")]
            "__test_reset" => {
                *slot = None;
                transport::reset();
                Outcome::default()
            }
            "__emit" => Outcome::default(),
            // V8 compiles each wasm function on its first call, so a site's first identify() and
            // track() would pay for compiling their paths (about 0.5 and 0.7 ms in Chromium, see
            // BENCHMARKS.md). Once the page is idle, the loader has an email identified and a
            // Purchase tracked here, on a throwaway core made from the same config: their effects
            // are dropped and the page's core never sees them.
            "__rehearse" => {
                let facts = browser::track_facts(false, page.now_ms);
                if let (Some(mut rehearsal), _) = Tag::init_with(arg(0), &facts, &mut entropy, Pre::default()) {
                    let _ = rehearsal.identify(arg(2), page.now_ms);
                    let _ = rehearsal.track(&Value::String(String::from("Purchase")), arg(1), &null, &facts, &mut entropy);
                }
                Outcome::default()
            }
            "track" | "page" => {
                let Some(tag) = slot.as_mut() else {
                    return rejected(TagError::new("not_initialized", NOT_INITIALIZED, name));
                };
                if name == "page" {
                    return tag.page(&page, &mut entropy);
                }
                let out = tag.track_deferred(arg(0), arg(1), arg(2), &page, &mut entropy);
                if tag.has_deferred() {
                    transport::emit_soon();
                }
                out
            }
            "consent" | "__consent_restored" => match slot.as_mut() {
                Some(tag) => restored(name, tag.consent(arg(0), arg(1), &page)),
                None => before_init(name, &args, page.now_ms),
            },
            "identify" | "__identity_restored" => match slot.as_mut() {
                Some(tag) => restored(name, tag.identify(arg(0), page.now_ms)),
                None => before_init(name, &args, page.now_ms),
            },
            "__consent_wait" => match slot.as_mut() {
                Some(tag) => {
                    privacy::woke();
                    tag.wake(&page)
                }
                None => Outcome::default(),
            },
            _ => unknown(name),
        }
    });
    // Swapped in where the outcome lies, not the earlier outcome moved out of its Option.
    if let Some((earlier, _)) = &mut earlier {
        earlier.errors.append(&mut outcome.errors);
        earlier.warnings.append(&mut outcome.warnings);
        std::mem::swap(&mut outcome.errors, &mut earlier.errors);
        std::mem::swap(&mut outcome.warnings, &mut earlier.warnings);
    }

    let debug = TAG.with(|slot| {
        let slot = slot.borrow();
        if let Some(tag) = slot.as_ref() {
            privacy::schedule(tag, page.now_ms);
            transport::held(tag.held_count());
            let state = tag.consent_state(page.now_ms);
            transport::follow_consent(&state);
            browser::remember_domain(&state);
        }
        slot.as_ref().is_some_and(Tag::debug)
    });
    browser::apply(&outcome.effects, debug);
    transport::drain(&mut outcome);
    reply(&outcome)
}

/// The outcome for the loader: with nothing to report, the bare event_id (empty for none), which
/// the loader takes without a JSON.parse; otherwise the JSON of `Outcome::to_json`. An event_id
/// never starts with `{` (see `ids`), so the two cannot be confused.
fn reply(outcome: &Outcome) -> String {
    if outcome.errors.is_empty() && outcome.warnings.is_empty() {
        return outcome.event_id.clone().unwrap_or_default();
    }
    outcome.to_json()
}

/// After a restore, a consent call made after the first init, or any identify call, comes again as
/// `__consent_restored` / `__identity_restored`: its effects are on the page already (pixel setup,
/// advanced matching) and its errors were reported; the fresh core only needs the state it leaves
/// (basic mode's setup at a grant, which a later grant must not repeat; the visitor's hashes).
fn restored(name: &str, outcome: Outcome) -> Outcome {
    if name.starts_with("__") {
        Outcome::default()
    } else {
        outcome
    }
}

/// A consent or identify call before init is held for it (see `privacy`); a restored one comes
/// only after a restore, so none is known before it.
fn before_init(name: &str, args: &[Value], now_ms: u64) -> Outcome {
    if name.starts_with("__") {
        unknown(name)
    } else {
        privacy::before_init(name, args, now_ms)
    }
}

fn unknown(name: &str) -> Outcome {
    rejected(TagError::new("unknown_command", UNKNOWN_COMMAND, name))
}

fn rejected(error: TagError) -> Outcome {
    // Pushed, with the push every error list links, where vec![error] inlined an allocation and a
    // copy of its own.
    let mut out = Outcome::default();
    out.errors.push(error);
    out
}
