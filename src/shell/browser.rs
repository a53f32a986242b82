//! Page access for the shell: reading page facts, randomness, and carrying out the core's effects
//! (cookies, storage, platform base code, platform calls; endpoint events go to `transport`). Every browser call
//! that can fail is caught here and turned into a skipped effect or a debug warning.

use std::cell::RefCell;

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{cookies, sent};
use crate::core::tag::{Effect, Entropy, PageFacts};
use crate::platforms::REGISTRY;

const ATTRIBUTION_KEY: &str = "tandem:attribution";
const PROBE_COOKIE: &str = "_tandem_probe";

thread_local! {
    static NONCE: RefCell<String> = const { RefCell::new(String::new()) };
    /// The registrable domain found by probing, computed once per page (`Some(None)`: host-only).
    static REGISTRABLE_DOMAIN: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

pub fn set_nonce(nonce: &str) {
    NONCE.with(|slot| *slot.borrow_mut() = nonce.to_string());
}

pub struct BrowserEntropy;

thread_local! {
    /// Random bytes drawn from the browser in blocks: one crypto.getRandomValues call per eight
    /// event ids instead of one each (a call out of the wasm costs more than the bytes).
    static POOL: RefCell<([u8; 128], usize)> = const { RefCell::new(([0; 128], 128)) };
}

fn fill_from_browser(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No crypto.getRandomValues (very old or locked-down browsers): ids must still differ.
        for byte in buf.iter_mut() {
            *byte = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

impl Entropy for BrowserEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        POOL.with(|pool| {
            let (bytes, used) = &mut *pool.borrow_mut();
            for out in buf.iter_mut() {
                if *used >= bytes.len() {
                    fill_from_browser(bytes);
                    *used = 0;
                }
                // Each byte is handed out once.
                *out = std::mem::take(&mut bytes[*used]);
                *used += 1;
            }
        });
    }
}

fn html_document() -> Option<web_sys::HtmlDocument> {
    web_sys::window()?.document()?.dyn_into::<web_sys::HtmlDocument>().ok()
}

fn read_cookies() -> String {
    html_document().and_then(|doc| doc.cookie().ok()).unwrap_or_default()
}

fn write_cookie(cookie: &str) {
    if let Some(doc) = html_document() {
        let _ = doc.set_cookie(cookie);
    }
}

pub(crate) fn local_storage() -> Option<web_sys::Storage> {
    // Storage access throws in some sandboxed iframes and with cookies blocked.
    web_sys::window()?.local_storage().ok()?
}

fn stored(key: &str) -> Option<String> {
    local_storage().and_then(|storage| storage.get_item(key).ok().flatten())
}

/// `with_storage`: also read what only `init` uses (stored attribution and sent log), so the
/// other calls do not pay for two localStorage reads.
pub fn page_facts(with_storage: bool) -> PageFacts {
    let window = web_sys::window();
    let location = window.as_ref().map(|w| w.location());
    let document = window.as_ref().and_then(|w| w.document());
    let url = location.as_ref().and_then(|l| l.href().ok()).unwrap_or_default();
    let https = location.as_ref().and_then(|l| l.protocol().ok()).is_some_and(|p| p == "https:");
    let host = location.as_ref().and_then(|l| l.hostname().ok()).unwrap_or_default();
    PageFacts {
        url,
        referrer: document.map(|d| d.referrer()).unwrap_or_default(),
        cookie_header: read_cookies(),
        stored_attribution: if with_storage { stored(ATTRIBUTION_KEY) } else { None },
        stored_sent: if with_storage { stored(sent::STORAGE_KEY) } else { None },
        registrable_domain: registrable_domain(&host),
        https,
        now_ms: js_sys::Date::now() as u64,
        nonce: NONCE.with(|slot| slot.borrow().clone()),
    }
}

/// What `track` reads: the URL, referrer and time it is tracked at (cookies are read when its
/// effects are built, see `Tag::track_deferred`), and the cookies too when `with_cookies` (an event
/// held for consent keeps the facts of its track call).
pub fn track_facts(with_cookies: bool) -> PageFacts {
    let window = web_sys::window();
    PageFacts {
        url: window.as_ref().and_then(|w| w.location().href().ok()).unwrap_or_default(),
        referrer: window.and_then(|w| w.document()).map(|d| d.referrer()).unwrap_or_default(),
        cookie_header: if with_cookies { read_cookies() } else { String::new() },
        now_ms: js_sys::Date::now() as u64,
        ..PageFacts::default()
    }
}

/// The shortest parent domain the browser lets us set a cookie on is the registrable domain
/// (the browser knows the public suffix list; the tag does not ship it).
fn registrable_domain(host: &str) -> Option<String> {
    REGISTRABLE_DOMAIN.with(|cache| {
        if let Some(found) = cache.borrow().as_ref() {
            return found.clone();
        }
        let found = cookies::domain_candidates(host).into_iter().find(|domain| {
            let probe = [PROBE_COOKIE, "=1; Path=/; SameSite=Lax; Domain=", domain].concat();
            write_cookie(&probe);
            let stuck = cookies::parse_cookie_header(&read_cookies())
                .iter()
                .any(|(name, _)| name == PROBE_COOKIE);
            if stuck {
                write_cookie(&[PROBE_COOKIE, "=; Path=/; Max-Age=0; Domain=", domain].concat());
            }
            stuck
        });
        *cache.borrow_mut() = Some(found.clone());
        found
    })
}

pub fn apply(effects: &[Effect], debug: bool) {
    for effect in effects {
        match effect {
            Effect::SetCookie(cookie) => write_cookie(cookie),
            // Coalesced with the outbox's writes, out of the call (see transport.rs). QuotaExceededError
            // or disabled storage: attribution and the sent log stay in memory this page.
            Effect::Store { key, value } => super::transport::store(key, value),
            Effect::LoadBaseCode { platform, args_json } => {
                match REGISTRY.iter().find(|entry| entry.key == *platform) {
                    Some(entry) => (entry.load_base_code)(args_json),
                    None => warn(debug, &["no base code loader for ", platform]),
                }
            }
            Effect::Call { platform, function, args_json } => call_global(platform, function, args_json, debug),
            // The outbox batches, persists and retries it (see transport.rs).
            Effect::Send { url, body } => super::transport::enqueue(url, body),
            Effect::Log(line) => {
                if debug {
                    web_sys::console::log_1(&JsValue::from_str(&["[tandem] ", line].concat()));
                }
            }
        }
    }
}

/// Calls `window.<path>(...args)` with `this` bound to the object holding the function, as
/// `ttq.track(...)` needs. An absent function skips the platform with a debug warning.
fn call_global(platform: &str, path: &str, args_json: &str, debug: bool) {
    let Some(window) = web_sys::window() else { return };
    let mut this: JsValue = window.into();
    let mut target = this.clone();
    for part in path.split('.') {
        this = target;
        target = Reflect::get(&this, &JsValue::from_str(part)).unwrap_or(JsValue::UNDEFINED);
    }
    let Some(function) = target.dyn_ref::<Function>() else {
        warn(debug, &[path, " is not on the page; ", platform, " skipped (load it, or set load: true)"]);
        return;
    };
    let Ok(args) = js_sys::JSON::parse(args_json) else { return };
    if let Err(error) = function.apply(&this, args.unchecked_ref()) {
        warn(debug, &[path, " threw: ", &error.as_string().unwrap_or_else(|| String::from("an exception"))]);
    }
}

fn warn(debug: bool, parts: &[&str]) {
    if debug {
        let mut line = String::from("[tandem] ");
        for part in parts {
            line.push_str(part);
        }
        web_sys::console::warn_1(&JsValue::from_str(&line));
    }
}
