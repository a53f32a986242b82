//! Page access for the shell: reading page facts, randomness, and carrying out the core's effects
//! (cookies, storage, platform base code, platform calls; endpoint events go to `transport`). Every browser call
//! that can fail is caught here and turned into a skipped effect or a debug warning.

use std::cell::RefCell;

use wasm_bindgen::prelude::wasm_bindgen;

use super::Single;
use crate::core::consent::State;
use crate::core::json::{self, Value};
use crate::core::{cookies, sent, text};
use crate::core::tag::{Effect, Entropy, PageFacts};
use crate::platforms::REGISTRY;

const ATTRIBUTION_KEY: &str = "tandem:attribution";
const PROBE_COOKIE: &str = "_tandem_probe";

// The page, reached through these few functions rather than web-sys and js-sys: each of their
// bindings costs glue JS and externref plumbing in the wasm, and plain strings cross the boundary
// for less. Each function catches what the page can throw (blocked storage or cookies in a
// sandboxed iframe, a throwing getter, a replaced pixel function) and answers with a value.
#[wasm_bindgen(inline_js = r#"
let shellHref = null, shellEntry = null, shellNavigation;
export function shell_page() {
  try {
    // The Navigation API gives every same-document navigation (pushState, replaceState, a
    // fragment, back/forward) a new currentEntry, set before any listener runs: while it is the
    // one last seen, the location is the one last read, without reading location.href, which
    // serialises the URL on each read. (A currententrychange listener of our own would run after
    // a router's earlier one calling page(), and keep every instance alive.) Without the API,
    // href is compared on every call.
    // The page's Navigation object is its own for the document's life: looked up once, not on
    // every call (each lookup is a call into the browser).
    if (shellNavigation === undefined) shellNavigation = window.navigation || null;
    var entry = shellNavigation && shellNavigation.currentEntry;
    if (entry && entry === shellEntry) return null;
    shellEntry = entry || null;
    var l = location, href = l.href;
    if (href === shellHref) return null;
    var page = document.referrer + '\n' + href;
    shellHref = href;
    return page;
  } catch (e) { shellHref = null; shellEntry = null; return ''; }
}
export function shell_cookie() {
  try { return document.cookie; } catch (e) { return ''; }
}
export function shell_set_cookie(c) {
  try { document.cookie = c; } catch (e) { /* cookies disabled: the page goes on without them */ }
}
export function shell_get(key) {
  // No storage (a null localStorage, or a getter that throws) reads as nothing stored.
  try { return window.localStorage.getItem(key); } catch (e) { return null; }
}
export function shell_entries(prefix) {
  var out = '[';
  try {
    var s = window.localStorage;
    for (var i = 0, n = s.length; i < n; i++) {
      var k = s.key(i);
      if (k !== null && k.lastIndexOf(prefix, 0) === 0) {
        var v = s.getItem(k);
        // Each string on its own: a page's Array.prototype.toJSON (Prototype.js) would turn
        // JSON.stringify of the array into one string; a string primitive has no toJSON call.
        if (v !== null) out += (out.length > 1 ? ',' : '') + JSON.stringify(k) + ',' + JSON.stringify(v);
      }
    }
  } catch (e) { /* what was read so far */ }
  return out + ']';
}
export function shell_now() {
  return Date.now();
}
export function shell_fill_random(bytes) {
  try { crypto.getRandomValues(bytes); return; } catch (e) { /* no crypto (old or locked-down browsers) */ }
  for (var i = 0; i < bytes.length; i++) bytes[i] = Math.random() * 256;
}
export function shell_call(path, argsJson) {
  var self = window, f = self, parts = path.split('.'), args;
  for (var i = 0; i < parts.length; i++) {
    self = f;
    try { f = Object(self) === self ? self[parts[i]] : undefined; } catch (e) { f = undefined; }
  }
  if (typeof f !== 'function') return '';
  try { args = JSON.parse(argsJson); } catch (e) { return null; }
  try { f.apply(self, args); } catch (e) { return '!' + (typeof e === 'string' ? e : 'an exception'); }
  return null;
}
export function shell_log(warn, line) {
  try { warn ? console.warn(line) : console.log(line); } catch (e) { /* no console */ }
}
"#)]
extern "C" {
    /// `document.referrer` and `href`, one a line (neither holds a newline: the URL parser
    /// strips them), href last; empty when the page cannot be read; `None` when
    /// `href` is the one of its last answer (see `location`).
    fn shell_page() -> Option<String>;
    fn shell_cookie() -> String;
    fn shell_set_cookie(cookie: &str);
    fn shell_get(key: &str) -> Option<String>;
    /// A flat JSON array `[key, value, key, value, ...]` of the stored keys starting with `prefix`.
    fn shell_entries(prefix: &str) -> String;
    fn shell_now() -> f64;
    /// Fills `bytes` from crypto.getRandomValues, else Math.random (ids must still differ).
    fn shell_fill_random(bytes: &mut [u8]);
    /// Calls `window.<path>(...args)` with `this` bound to the object holding the function, as
    /// `ttq.track(...)` needs. `None`: called (or the args did not parse); `Some("")`: no such
    /// function; `Some("!" + what)`: it threw.
    fn shell_call(path: &str, args_json: &str) -> Option<String>;
    fn shell_log(warn: bool, line: &str);
}

static NONCE: Single<RefCell<String>> = Single(RefCell::new(String::new()));
/// `shell_page`'s last full answer.
static PAGE: Single<RefCell<String>> = Single(RefCell::new(String::new()));
/// The registrable domain, found once per page (`Some(None)`: host-only), and the record of a
/// fresh probe's answer until `remember_domain` stores it.
static REGISTRABLE_DOMAIN: Single<RefCell<Option<(Option<String>, Option<String>)>>> = Single(RefCell::new(None));

pub fn set_nonce(nonce: &str) {
    NONCE.with(|slot| *slot.borrow_mut() = nonce.to_string());
}

pub struct BrowserEntropy;

/// Random bytes drawn from the browser in blocks: one crypto.getRandomValues call per 32
/// event ids instead of one each (a call out of the wasm costs more than the bytes).
/// (bytes, how many are left to hand out, from the end): all zero at first, so it costs no
/// data segment.
static POOL: Single<RefCell<([u8; 512], usize)>> = Single(RefCell::new(([0; 512], 0)));

impl Entropy for BrowserEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        POOL.with(|pool| {
            let (bytes, left) = &mut *pool.borrow_mut();
            for out in buf.iter_mut() {
                if *left == 0 {
                    shell_fill_random(bytes);
                    *left = bytes.len();
                }
                *left -= 1;
                // Each byte is handed out once.
                *out = std::mem::take(&mut bytes[*left]);
            }
        });
    }
}

pub fn now() -> u64 {
    shell_now() as u64
}

pub fn stored(key: &str) -> Option<String> {
    shell_get(key)
}

/// Every stored key starting with `prefix`, with its value.
pub fn stored_with_prefix(prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(Value::Array(mut items)) = json::parse(&shell_entries(prefix)) {
        // Pair by pair with a slice pattern, not `chunks_exact`'s iterator (an odd last one is
        // left); the parsed strings are taken, not copied.
        let mut rest = &mut items[..];
        while let [key, value, tail @ ..] = rest {
            if let (Value::String(key), Value::String(value)) = (key, value) {
                out.push((std::mem::take(key), std::mem::take(value)));
            }
            rest = tail;
        }
    }
    out
}

/// For every call but `track`. The stored attribution: the core takes it in once ad_storage is
/// granted, by any of them. The sent log: init loads it, and any call that sends a Purchase (an
/// event released by consent) merges it before writing it back.
pub fn page_facts() -> PageFacts {
    // Read as `track` reads it, then the rest.
    // Filled in place, field by field: a struct update moved the whole of `track_facts`'s.
    let mut facts = track_facts(true, 0);
    facts.stored_attribution = stored(ATTRIBUTION_KEY);
    facts.stored_sent = stored(sent::STORAGE_KEY);
    facts.registrable_domain = Some(registrable_domain);
    facts.now_ms = now();
    facts.nonce = NONCE.with(|slot| slot.borrow().clone());
    facts
}

/// What `track` reads: the URL, referrer and time it is tracked at (cookies are read when its
/// effects are built, see `Tag::track_deferred`), and the cookies too when `with_cookies` (an event
/// held for consent keeps the facts of its track call). `https` from the URL, which starts with
/// the protocol, so a cookie made in any call is `Secure` on an https page.
pub fn track_facts(with_cookies: bool, now_ms: u64) -> PageFacts {
    let mut facts = clock_facts(now_ms);
    read_location(&mut facts);
    facts.https = facts.url.starts_with("https:");
    if with_cookies {
        facts.cookie_header = shell_cookie();
    }
    facts
}

/// The URL and the referrer into `facts`, from `shell_page()`'s lines (referrer, then href,
/// whole), which are read again only when `href` changed (pushState, a hash change): reading
/// `referrer` and passing the string in was a large part of `track()`'s own time. The referrer
/// cannot change without `href` changing: a document's referrer is fixed. Written in place: a
/// returned pair was moved through memory into the facts.
fn read_location(facts: &mut PageFacts) {
    PAGE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(fresh) = shell_page() {
            *cache = fresh;
        }
        let (referrer, url) = text::split_once(&cache, "\n").unwrap_or((&cache, ""));
        facts.url = url.to_string();
        facts.referrer = referrer.to_string();
    })
}

/// What `Tag::emit_deferred` reads: the time, and the cookies while the tag still looks for
/// `_ttp` (each event keeps the URL and referrer of its track call), without the location read
/// and copy of `page_facts`.
pub fn emit_facts(with_cookies: bool, with_sent_log: bool) -> PageFacts {
    let cookie_header = if with_cookies { shell_cookie() } else { String::new() };
    let stored_sent = if with_sent_log { stored(sent::STORAGE_KEY) } else { None };
    let mut facts = clock_facts(now());
    facts.cookie_header = cookie_header;
    facts.stored_sent = stored_sent;
    facts
}

/// Facts that hold the time only (the calls that read nothing else, and the start of the others'),
/// made out of line: the derived default, inlined, wrote every field at each of its three places.
#[inline(never)]
pub fn clock_facts(now_ms: u64) -> PageFacts {
    PageFacts { now_ms, ..PageFacts::default() }
}

/// The shortest parent domain the browser lets us set a cookie on is the registrable domain
/// (the browser knows the public suffix list; the tag does not ship it). Remembered from an
/// earlier page when `cookies::remembered_domain` allows, else probed, at most once a page and
/// only when the core asks: once a cookie of its own may be set (see
/// `PageFacts::registrable_domain`). A probe's record is kept for `remember_domain`.
fn registrable_domain(host: &str) -> Option<String> {
    REGISTRABLE_DOMAIN.with(|cache| {
        let mut cache = cache.borrow_mut();
        let (found, _) = cache.get_or_insert_with(|| {
            let now_ms = now();
            let remembered = stored(cookies::DOMAIN_KEY);
            if let Some(domain) = remembered.as_deref().and_then(|r| cookies::remembered_domain(r, host, now_ms)) {
                return (Some(domain.to_string()), None);
            }
            for domain in &cookies::domain_candidates(host) {
                set_probe("=1; Path=/; SameSite=Lax; Domain=", domain);
                if cookies::get(&shell_cookie(), PROBE_COOKIE).is_some() {
                    set_probe("=; Path=/; Max-Age=0; Domain=", domain);
                    let record = cookies::domain_record(domain, now_ms);
                    return (Some(domain.clone()), Some(record));
                }
            }
            (None, None)
        });
        // Copied from the borrowed domain, not by cloning the Option (a clone linked for this).
        found.as_deref().map(str::to_string)
    })
}

/// Sets (or removes) the probe cookie on `domain`: one builder for both, where each inlined its
/// own `+` of three texts.
fn set_probe(attributes: &str, domain: &str) {
    let mut cookie = String::from(PROBE_COOKIE);
    cookie.push_str(attributes);
    cookie.push_str(domain);
    shell_set_cookie(&cookie);
}

/// Stores the record of a domain probed on this page once `state` lets a Tandem cookie be set
/// (until then nothing would be set on it), so the site's next pages need no probe.
pub fn remember_domain(state: &State) {
    if state.any_cookie() {
        if let Some(record) = REGISTRABLE_DOMAIN.with(|cache| cache.borrow_mut().as_mut().and_then(|(_, record)| record.take())) {
            super::transport::store(cookies::DOMAIN_KEY, &record);
        }
    }
}

pub fn apply(effects: &[Effect], debug: bool) {
    for effect in effects {
        match effect {
            Effect::SetCookie(cookie) => shell_set_cookie(cookie),
            // Coalesced with the outbox's writes, out of the call (see transport.rs). QuotaExceededError
            // or disabled storage: attribution and the sent log stay in memory this page.
            Effect::Store { key, value } => super::transport::store(key, value),
            Effect::LoadBaseCode { platform, args_json } => {
                match REGISTRY.iter().find(|entry| entry.key == *platform) {
                    Some(entry) => (entry.load_base_code)(args_json),
                    None => log(debug, true, &["no base code loader for ", platform]),
                }
            }
            Effect::Call { platform, function, args_json } => call_global(platform, function, args_json, debug),
            // The outbox batches, persists and retries it (see transport.rs).
            Effect::Send { url, event, event_id, time_ms } => super::transport::enqueue(url, event, event_id, *time_ms),
            Effect::Log(line) => log(debug, false, &[line]),
        }
    }
}

/// A platform call; an absent function skips the platform with a debug warning.
fn call_global(platform: &str, path: &str, args_json: &str, debug: bool) {
    match shell_call(path, args_json).as_deref() {
        None => {}
        Some("") => log(debug, true, &[path, " is not on the page; ", platform, " skipped (load it, or set load: true)"]),
        Some(thrown) => log(debug, true, &[path, " threw: ", thrown.strip_prefix("!").unwrap_or(thrown)]),
    }
}

/// A debug line, `[tandem] ` and `parts`, to the console (a warning when `warn`): the core's log
/// lines and the shell's warnings share this one builder.
fn log(debug: bool, warn: bool, parts: &[&str]) {
    if debug {
        let mut line = String::from("[tandem] ");
        for part in parts {
            line.push_str(part);
        }
        shell_log(warn, &line);
    }
}
