//! The delivery pipeline's decisions: batching, persistence, retries, unload, multi-tab safety.
//!
//! Pure and sans-IO like the rest of the core: the shell (`shell/transport.rs`) hands in what
//! happened (an event to send, a timer that fired, an HTTP status, the page going away) and
//! carries out the `Step` each call fills (requests, one timer, one localStorage write). A call
//! fills a fresh step the shell gives it: returned, each step was moved through memory once more.
//!
//! Rules:
//! - **Batching.** The first queued event opens a window (`batch.windowMs`, default 0: the end of the
//!   current task, so the first beacon is not held back); when it closes, or
//!   when `batch.maxEvents` are waiting, up to `batch.maxEvents` events and `batch.maxBytes` bytes
//!   go in one request. One request is in flight at a time; a success sends the next batch at once.
//!   `enqueue_event` never sends: a batch that is due asks for a wake of 0 ms, which the shell runs
//!   at the end of the current task, so `track()` itself stays cheap and events of one task share a
//!   request.
//! - **Results.** 2xx: done. 4xx (except 408 and 429): dropped with an error, never retried (an
//!   oversize payload answered 413 is not retried forever). 5xx, 408, 429, network error or
//!   offline: retried with exponential backoff (1 s doubling to 60 s, jitter: a random point in
//!   the upper half), and at once on the `online` event. Every retry carries the same event_ids.
//! - **Persistence.** Everything undelivered is kept in localStorage under `tandem:q:<tab id>` as
//!   `{"until":<lease ms>,"items":[[<endpoint url>,<event object>],…]}`, bounded by
//!   `queue.maxEvents` and `queue.maxBytes` (the oldest are dropped first, counted and reported)
//!   and by age (7 days, the Conversions APIs' limit).
//! - **Several tabs.** Each tab writes only its own key, with a lease it renews while it works.
//!   `pagehide` releases the lease (`until: 0`) so the next page of the same visit can adopt it.
//!   localStorage has no compare-and-swap, so two tabs starting together would both read a
//!   released queue; a tab therefore *claims* it first: it writes the same items back under
//!   `{"by":<its key>,"until":<now + CLAIM_MS>,…}` (synchronously), reads the key again
//!   `CLAIM_WAIT_MS` later, and takes the items (and deletes the key) only if its claim is still
//!   the one stored. Of tabs claiming together the last writer wins; the others see a live claim
//!   and leave it, and look again when it runs out (its tab may have closed before taking it).
//!   A tab whose own key is gone or claimed knows it was adopted: it drops its copy and writes
//!   later events under a new key, so it never overwrites a claim that is about to be taken. A
//!   fresh instance (after a crash) that finds its key claimed moves to a new key the same way.
//!   An unclaimed copy of a key this instance has written holds nothing new for it, even while
//!   the removal of a delivered queue is still coalesced (`wrote_key`). While ad_storage is
//!   denied storage is not read, so a claim is followed only once it is granted again.
//! - **Consent.** Queued events were built under the consent of their time; on a revocation of
//!   ad_user_data the shell has `rewrite` redact every one of them (`payload::redact`) and the
//!   stored copy is written again. In basic mode a state that no longer allows sending drops them
//!   all (`drop_all`).
//! - **Unload.** On `visibilitychange`→hidden and `pagehide` the waiting events go by sendBeacon
//!   (`true` counts as handed over), in requests under `batch.maxBytes` and all together under
//!   `UNLOAD_BUDGET`, well inside the browser's 64 KiB keepalive budget. When the endpoint was
//!   failing they are not beaconed: they stay persisted for the next page, which avoids sending
//!   an event twice into a failing endpoint.

use crate::core::attribution::ts_of;
use crate::core::error::{TagError, EVENT_ID_PREFIX};
use crate::core::json::{self, u64_text, write_u64, Value, W};
use crate::core::tag::Entropy;
use crate::core::text;

crate::messages! {
    WHOLE_NUMBER_FROM = "o0" " must be a whole number from ";
    USING = "o1" "; using ";
    OBJECT_USING_DEFAULTS = "o2" " must be an object; using defaults";
    A_NETWORK_ERROR = "o3" "a network error";
    ALREADY_QUEUED = "o5" " is already queued; not queued twice";
    TAKEN_OVER = "o6" "another tab took over this tab's undelivered events";
    ENDPOINT_REFUSED = "o7" "The endpoint refused ";
    EVENTS_WITH = "o8" " event(s) with ";
    DROPPED_NOT_RETRIED = "o9" "; they are dropped, not retried";
    COULD_NOT_TAKE = "oA" "the endpoint could not take ";
    EVENTS_OPEN = "oB" " event(s) (";
    RETRYING_IN = "oC" "); retrying in ";
    MS_SAME_IDS = "oD" " ms with the same event_ids";
    STORAGE_FULL = "oE" "localStorage is full or unavailable: undelivered events are kept in memory only";
    QUEUE_FULL_AT_MOST = "oF" "The delivery queue is full (at most ";
    EVENTS_AND = "oG" " events and ";
    BYTES_DROPPED = "oH" " bytes): dropped the ";
    OLDEST_UNDELIVERED = "oI" " oldest undelivered event(s)";
}

/// localStorage key prefix; the tab id follows.
pub const KEY_PREFIX: &str = "tandem:q:";
/// How long a tab's claim on its persisted queue lasts without renewal.
pub const LEASE_MS: u64 = 120_000;
/// Events older than this are not sent any more (Meta's and TikTok's server APIs refuse them).
pub const MAX_AGE_MS: u64 = 7 * 24 * 3600 * 1000;
pub const BACKOFF_BASE_MS: u64 = 1000;
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// A request without an answer after this long counts as a network failure.
pub const IN_FLIGHT_TIMEOUT_MS: u64 = 30_000;
/// How long adopted events wait before they are sent (see `adopt`).
const ADOPT_DELAY_MS: u64 = 1000;
/// How long a claim on another tab's released queue holds (see the module doc). Long enough to
/// outlast `CLAIM_WAIT_MS` in a throttled tab; short, as a tab that closes before taking what it
/// claimed holds the queue back from every other tab until then.
pub const CLAIM_MS: u64 = 5000;
/// How long a claim must stand before its items are taken: far longer than localStorage takes to
/// reach the other tabs of the origin, so a later claim by a tab that read the queue at the same
/// time has landed by then.
pub const CLAIM_WAIT_MS: u64 = 500;
/// Bytes of beacons the tag allows itself on unload (the browser allows 64 KiB for the page).
pub const UNLOAD_BUDGET: usize = 48 * 1024;
/// Requests above this go without `keepalive` (which the browser would refuse).
pub const KEEPALIVE_MAX: usize = 60 * 1024;
const URL_MAX: usize = 2048;
/// `Step::wake_ms` that cancels the timer.
pub const NEVER: u64 = u64::MAX;

/// Delivery settings from the init config (`batch`, `queue`).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub window_ms: u64,
    pub batch_events: usize,
    pub batch_bytes: usize,
    pub queue_events: usize,
    pub queue_bytes: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { window_ms: 0, batch_events: 20, batch_bytes: 16 * 1024, queue_events: 100, queue_bytes: 100_000 }
    }
}

fn setting(section: &Value, name: &str, key: &str, range: (u64, u64), default: u64, errors: &mut Vec<TagError>) -> u64 {
    let Some(v) = section.get(key).filter(|v| !matches!(v, Value::Null)) else { return default };
    if let Value::Number(n) = v {
        if let Some(x) = json::whole(n) {
            if x >= range.0 && x <= range.1 {
                return x;
            }
        }
    }
    let mut m = String::from("config.");
    m.push_str(name);
    m.push('.');
    m.push_str(key);
    m.push_str(WHOLE_NUMBER_FROM);
    write_u64(&mut m, range.0);
    m.push_str(" to ");
    write_u64(&mut m, range.1);
    m.push_str(USING);
    write_u64(&mut m, default);
    errors.push(TagError::new("invalid_config", m, v.to_json()));
    default
}

impl Settings {
    /// `batch: { windowMs, maxEvents, maxBytes }` and `queue: { maxEvents, maxBytes }`; a bad value
    /// falls back to its default with an error.
    pub fn parse(config: &Value, errors: &mut Vec<TagError>) -> Settings {
        let d = Settings::default();
        let none = Value::Null;
        let batch = config.get("batch").unwrap_or(&none);
        let queue = config.get("queue").unwrap_or(&none);
        for &(name, section) in &[("batch", batch), ("queue", queue)] {
            if !matches!(section, Value::Null | Value::Object(_)) {
                let mut m = String::from("config.");
                m.push_str(name);
                m.push_str(OBJECT_USING_DEFAULTS);
                errors.push(TagError::new("invalid_config", m, section.to_json()));
            }
        }
        Settings {
            window_ms: setting(batch, "batch", "windowMs", (0, 60_000), d.window_ms, errors),
            batch_events: setting(batch, "batch", "maxEvents", (1, 100), d.batch_events as u64, errors) as usize,
            batch_bytes: setting(batch, "batch", "maxBytes", (1024, 60_000), d.batch_bytes as u64, errors) as usize,
            queue_events: setting(queue, "queue", "maxEvents", (1, 1000), d.queue_events as u64, errors) as usize,
            queue_bytes: setting(queue, "queue", "maxBytes", (1000, 1_000_000), d.queue_bytes as u64, errors) as usize,
        }
    }
}

/// One undelivered event.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub url: String,
    pub id: String,
    /// `event_time_ms`, for the age limit.
    pub time_ms: u64,
    /// The event object as JSON text, exactly as it will be sent.
    pub json: String,
    in_flight: bool,
}

impl Item {
    fn bytes(&self) -> usize {
        self.url.len() + self.json.len() + 8
    }
}

/// A request for the shell to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub url: String,
    pub body: String,
    /// The event_ids in the body, comma-separated: handed back with the result.
    pub ids: String,
    /// Unload: sendBeacon first (no status can be observed), fetch as fallback.
    pub beacon: bool,
    pub keepalive: bool,
}

/// What the shell does next, in this order: write (a claim) or remove (an empty value) the
/// `others` keys at once, write (`Some(Some(v))`) or remove (`Some(None)`) the tab's own key, make
/// the requests, set the timer.
#[derive(Debug, PartialEq)]
pub struct Step {
    pub others: Vec<(String, String)>,
    pub persist: Option<Option<String>>,
    pub requests: Vec<Request>,
    /// Call `tick` after this many ms (replaces the previous timer; `NEVER` cancels it).
    pub wake_ms: Option<u64>,
    pub errors: Vec<TagError>,
    pub warnings: Vec<String>,
}

impl Default for Step {
    /// Out of line: the derived one, inlined, wrote every field at each of the shell's three
    /// places that start a step.
    #[inline(never)]
    fn default() -> Step {
        Step { others: Vec::new(), persist: None, requests: Vec::new(), wake_ms: None, errors: Vec::new(), warnings: Vec::new() }
    }
}

pub struct Outbox {
    settings: Settings,
    key: String,
    items: Vec<Item>,
    /// When the next batch may go (window or backoff); `None`: nothing scheduled.
    next_send: Option<u64>,
    failures: u32,
    in_flight_since: u64,
    /// The body size of the request in flight when it went with `keepalive`: it outlives the page
    /// and takes its share of the page's keepalive budget. `None` for a plain fetch (a body over
    /// `KEEPALIVE_MAX`), which the browser cancels with the page.
    in_flight_keepalive: Option<usize>,
    /// Our key holds items we wrote: if it disappears, another tab adopted them.
    persisted: bool,
    storage_ok: bool,
    /// We asked for our key to be written with items (so an empty queue must remove it).
    written: bool,
    /// This instance has written its key (under its current name) at least once: what an
    /// unclaimed copy of it holds is ours already, even once `written` is back to false (a removal
    /// still coalesced when storage is read again would otherwise hand delivered events back).
    wrote_key: bool,
    /// After `pagehide`: persist with `until: 0` so the next page adopts at once.
    released: bool,
    /// Set by `hide` until the page is seen alive again (a tick, a new event, `online`): the
    /// beacons' results must not start a normal request past the unload budget.
    unloading: bool,
    /// When the lease of our last write runs out (0 once released).
    lease_until: u64,
    /// When the stored queues must be read again (`adopt`): a claim of ours has stood long enough,
    /// or another tab's claim runs out. `NEVER`: no claim to follow.
    recheck_at: u64,
}

fn is_event_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && text::all(s, |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn is_endpoint(s: &str) -> bool {
    s.len() <= URL_MAX && (s.starts_with("https://") || s.starts_with("http://"))
}

/// One stored queue, as `parse_stored` reads it.
pub struct Stored {
    /// When its lease or claim runs out.
    pub until: u64,
    /// A claim (`by`): by the tab whose key was given (`true`) or another (`false`). `None`: the
    /// queue of the tab whose key it is.
    pub claim: Option<bool>,
    pub items: Vec<Item>,
}

/// Reads one stored queue (`our_key`: whose claim counts as ours); `None` when it is not one of
/// ours. Items that are malformed or too old are left out, never an error.
pub fn parse_stored(text: &str, our_key: &str, now_ms: u64) -> Option<Stored> {
    let v = json::parse(text).ok()?;
    let until = ts_of(v.get("until"))?;
    let claim = v.get("by").map(|by| matches!(by, Value::String(by) if by == our_key));
    let Some(Value::Array(list)) = v.get("items") else { return None };
    let mut items = Vec::new();
    for entry in list {
        let Value::Array(pair) = entry else { continue };
        let (Some(Value::String(url)), Some(ev @ Value::Object(_))) = (pair.first(), pair.get(1)) else { continue };
        let Some(id) = ev.get("event_id").and_then(Value::as_str).filter(|id| is_event_id(id)) else { continue };
        let time_ms = ts_of(ev.get("event_time_ms")).unwrap_or(now_ms);
        if !is_endpoint(url) || now_ms.saturating_sub(time_ms) > MAX_AGE_MS {
            continue;
        }
        items.push(Item { url: url.clone(), id: id.to_string(), time_ms, json: ev.to_json(), in_flight: false });
    }
    Some(Stored { until, claim, items })
}

/// A stored queue's text: `{"by":…,"until":…,"items":[[url,event],…]}`, `by` only in a claim (and
/// first, so the tab whose key it is can tell at a glance: `transport_has`).
fn queue_text(by: &str, until: u64, items: &[Item]) -> String {
    let mut w = W::new('{');
    if !by.is_empty() {
        w.s("by", by);
    }
    w.u("until", until).key("items").open('[');
    for item in items {
        w.open('[').str(&item.url).raw(&item.json).close(']');
    }
    w.close(']');
    w.end('}')
}

/// `<start><count><mid><status>`, the start of both messages about an answer (a refusal, a
/// failure), built once rather than by each.
fn answer_text(start: &str, count: usize, mid: &str, status: u32) -> String {
    let mut out = String::from(start);
    write_u64(&mut out, count as u64);
    out.push_str(mid);
    if status == 0 {
        out.push_str(A_NETWORK_ERROR);
    } else {
        out.push_str("HTTP ");
        write_u64(&mut out, u64::from(status));
    }
    out
}

impl Outbox {
    pub fn new(settings: Settings, tab_id: &str) -> Outbox {
        Outbox {
            settings,
            key: String::from(KEY_PREFIX) + tab_id,
            items: Vec::new(),
            next_send: None,
            failures: 0,
            in_flight_since: 0,
            in_flight_keepalive: None,
            persisted: false,
            storage_ok: true,
            written: false,
            wrote_key: false,
            released: false,
            unloading: false,
            lease_until: 0,
            recheck_at: NEVER,
        }
    }

    /// This tab's localStorage key.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The event_ids waiting, oldest first (tests and debug).
    pub fn ids(&self) -> Vec<&str> {
        self.items.iter().map(|i| i.id.as_str()).collect()
    }

    /// On start, and again when `recheck_due`: takes over our own key (after a crash and restart),
    /// claims the keys of tabs whose lease ran out, and takes those whose claim by us has stood
    /// for `CLAIM_WAIT_MS` (`stored` = every `tandem:q:*` key and value; see the module doc).
    pub fn adopt(&mut self, step: &mut Step, stored: &[(String, String)], now_ms: u64) {
        let mut own_found = false;
        self.recheck_at = NEVER;
        for (key, text) in stored {
            if !key.starts_with(KEY_PREFIX) {
                continue;
            }
            let Some(found) = parse_stored(text, &self.key, now_ms) else {
                // Not a queue: removed, unless it is our own key, which is written again anyway.
                if *key != self.key {
                    step.others.push((key.clone(), String::new()));
                }
                continue;
            };
            if *key == self.key && found.claim.is_some() && !self.written {
                // Our key, claimed by another tab: a fresh instance after a crash, whose key that
                // tab is taking. Ours is a new one from here on, never written over the claim
                // (which would lose the claimed events: the claimer would find its claim gone).
                self.rotate_key();
            }
            let own = *key == self.key && found.claim.is_none();
            // Read again after this instance wrote it, our own key holds nothing new.
            if own && self.wrote_key {
                continue;
            }
            own_found |= own;
            if !own {
                let stood = found.until.saturating_sub(CLAIM_MS - CLAIM_WAIT_MS);
                if found.until > now_ms && found.claim == Some(true) && now_ms >= stood {
                    // Our claim stood: no tab wrote over it, the items are ours.
                    step.others.push((key.clone(), String::new()));
                } else {
                    // Released or run out: claimed. A claim is looked at again when it stands
                    // (ours) or runs out (another tab's, which may close before taking it); a live
                    // tab's queue is left alone.
                    let recheck = if found.until <= now_ms {
                        step.others.push((key.clone(), queue_text(&self.key, now_ms + CLAIM_MS, &found.items)));
                        now_ms + CLAIM_WAIT_MS
                    } else {
                        match found.claim {
                            Some(true) => stood,
                            Some(false) => found.until,
                            None => NEVER,
                        }
                    };
                    self.recheck_at = self.recheck_at.min(recheck);
                    continue;
                }
            }
            // Taken from the front with the remove that `bound` links anyway (at most a queue's
            // worth, once per page): a consuming loop linked an owning iterator for items alone.
            let mut items = found.items;
            while !items.is_empty() {
                let item = items.remove(0);
                if !self.items.iter().any(|i| i.id == item.id) {
                    // Oldest first (an insertion, not a sort: the sort code costs wasm bytes).
                    let at = self.items.iter().position(|i| i.time_ms > item.time_ms).unwrap_or(self.items.len());
                    self.items.insert(at, item);
                }
            }
        }
        self.bound(step);
        if !self.items.is_empty() {
            // Our own key after a crash: a delay, so an answer still on its way to the crashed
            // instance (its request went out just before the trap) can land first and spare the
            // endpoint a second copy. Another page's queue has no request in flight.
            let delay = if own_found { self.settings.window_ms.max(ADOPT_DELAY_MS) } else { self.settings.window_ms };
            self.next_send = Some(now_ms + delay);
        }
        // Nothing is sent here: what is due goes at the next tick, once the shell has applied
        // the consent in force to what was adopted (redacted it, or dropped it in basic mode).
        self.persist(step, now_ms);
        self.set_wake(step, now_ms);
    }

    /// Whether the stored queues must be read again and handed to `adopt` (see `recheck_at`).
    pub fn recheck_due(&self, now_ms: u64) -> bool {
        now_ms >= self.recheck_at
    }

    /// Queues one event object the core wrote (`payload::event`), whose id and time the caller
    /// already has: the text is kept as written, not parsed and written again (which was most of
    /// the work after a track).
    pub fn enqueue_event(&mut self, step: &mut Step, url: &str, id: &str, time_ms: u64, event: &str, now_ms: u64) {
        self.released = false;
        self.unloading = false;
        if self.add(url, id, time_ms, event, step) {
            self.queued(step, now_ms);
        }
    }

    /// Queues one event unless its id is malformed or already queued (with a warning).
    fn add(&mut self, url: &str, id: &str, time_ms: u64, json: &str, step: &mut Step) -> bool {
        if !is_event_id(id) {
            return false;
        }
        if self.items.iter().any(|i| i.id == *id) {
            let mut w = String::from(EVENT_ID_PREFIX);
            w.push_str(id);
            w.push_str(ALREADY_QUEUED);
            step.warnings.push(w);
            return false;
        }
        // Copied only once it is queued, as are its url and id.
        self.items.push(Item { url: url.to_string(), id: id.to_string(), time_ms, json: json.to_string(), in_flight: false });
        true
    }

    /// After events joined the queue: bounds, the batching window, persistence, the timer.
    fn queued(&mut self, step: &mut Step, now_ms: u64) {
        self.bound(step);
        if self.next_send.is_none() {
            self.next_send = Some(now_ms + self.settings.window_ms);
        }
        if self.failures == 0 && self.waiting() >= self.settings.batch_events {
            self.next_send = Some(now_ms);
        }
        self.persist(step, now_ms);
        self.set_wake(step, now_ms);
    }

    /// Rewrites every queued event with `f` (a consent revocation: `payload::redact`) and persists
    /// the result over the stored copy. Events in flight are rewritten too: their request already
    /// left with its own body and cannot be recalled, but `item.json` is what a retry would send.
    /// Nothing is sent or rescheduled; ids, times and order stay, so no event is lost or doubled.
    pub fn rewrite(&mut self, step: &mut Step, now_ms: u64, f: impl Fn(&str) -> String) {
        let mut changed = false;
        for item in &mut self.items {
            let json = f(&item.json);
            changed |= json != item.json;
            item.json = json;
        }
        if changed {
            self.persist(step, now_ms);
        }
    }

    /// Consent no longer allows sending (basic mode): every event waiting goes, from memory and
    /// storage, and nothing is retried. A request in flight cannot be recalled; its answer finds
    /// nothing to keep or retry.
    pub fn drop_all(&mut self, step: &mut Step, now_ms: u64) {
        step.wake_ms = Some(NEVER);
        // A new Vec, with the drop every Vec<Item> links, where `clear` linked a loop of its own.
        self.items = Vec::new();
        self.next_send = None;
        self.persist(step, now_ms);
    }

    /// The timer fired. `own_stored`: whether our key is still in storage (its value does not
    /// matter, so the shell need not carry it into the wasm).
    pub fn tick(&mut self, step: &mut Step, now_ms: u64, own_stored: bool, rng: &mut (impl Entropy + ?Sized)) {
        self.key_checked(step, own_stored);
        self.released = false;
        self.unloading = false;
        if !step.warnings.is_empty() {
            // Its one warning: the queue was adopted and dropped, nothing is left to send.
            return;
        }
        if self.in_flight() && now_ms.saturating_sub(self.in_flight_since) >= IN_FLIGHT_TIMEOUT_MS {
            return self.answered(step, None, 0, now_ms, rng);
        }
        self.finish(step, now_ms, !self.items.is_empty());
    }

    /// Whether another tab may have adopted our stored queue since our last write: its lease ran
    /// out, as in a tab frozen for minutes or a page back from the back/forward cache after
    /// releasing its queue at pagehide. The shell then looks for our key (`key_checked`) before
    /// anything else, as the timer does, so a track there does not write the adopted events back
    /// and send them a second time.
    pub fn key_check_due(&self, now_ms: u64) -> bool {
        self.persisted && now_ms >= self.lease_until
    }

    /// `own_stored`: whether our key is still in storage, unclaimed. When it is gone or claimed,
    /// another tab adopted our queue (our lease had run out) and sends those events: our copy is
    /// dropped, and what comes later is stored under a new key, never over a standing claim.
    pub fn key_checked(&mut self, step: &mut Step, own_stored: bool) {
        if self.persisted && !own_stored {
            self.items = Vec::new();
            self.persisted = false;
            self.written = false;
            self.next_send = None;
            self.rotate_key();
            step.warnings.push(String::from(TAKEN_OVER));
        }
    }

    /// From here on our queue goes under a new key, which this instance has not written yet.
    fn rotate_key(&mut self) {
        self.key.push('~');
        self.wrote_key = false;
    }

    /// Drops the items `gone` picks, one by one, with the remove `bound` links anyway: a
    /// `Vec::retain` linked a larger loop (`answered` drops in its own counting pass).
    fn drop_items(&mut self, gone: impl Fn(&Item) -> bool) {
        let mut i = 0;
        while let Some(item) = self.items.get(i) {
            if gone(item) {
                self.items.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// The answer to a request: `status` 0 for a network error or offline.
    pub fn delivered(&mut self, step: &mut Step, id_list: &str, status: u32, now_ms: u64, rng: &mut (impl Entropy + ?Sized)) {
        self.answered(step, Some(id_list), status, now_ms, rng)
    }

    /// `delivered` for the request of `id_list`, or (`None`) for the request in flight, which
    /// the timeout answers without writing out its ids (an event_id is queued once, so the two
    /// pick the same events).
    fn answered(&mut self, step: &mut Step, id_list: Option<&str>, status: u32, now_ms: u64, rng: &mut (impl Entropy + ?Sized)) {
        let done = (200..300).contains(&status);
        let refused = (400..500).contains(&status) && status != 408 && status != 429;
        // An event of the answered request: one of `id_list`'s comma-separated ids (never an empty
        // one). Counted, and dropped (a success or refusal) or taken out of flight, in one pass:
        // a second pass to drop them linked `drop_items` once more for this test.
        let mut matched = 0;
        let mut i = 0;
        while let Some(item) = self.items.get_mut(i) {
            let answered = match id_list {
                Some(list) => text::listed(list, ",", &item.id),
                None => item.in_flight,
            };
            if answered {
                matched += 1;
                if done || refused {
                    self.items.remove(i);
                    continue;
                }
                item.in_flight = false;
            }
            i += 1;
        }
        if matched == 0 {
            return;
        }
        if done || refused {
            self.failures = 0;
            if refused {
                // The events just dropped are the ones counted above.
                let mut m = answer_text(ENDPOINT_REFUSED, matched, EVENTS_WITH, status);
                m.push_str(DROPPED_NOT_RETRIED);
                step.errors.push(TagError::new("delivery_refused", m, id_list.unwrap_or_default()));
            }
            if !self.items.is_empty() && self.next_send.is_none_or(|t| t > now_ms) && !self.in_flight() {
                self.next_send = Some(now_ms);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            let delay = self.backoff(rng);
            self.next_send = Some(now_ms + delay);
            let mut w = answer_text(COULD_NOT_TAKE, matched, EVENTS_OPEN, status);
            w.push_str(RETRYING_IN);
            write_u64(&mut w, delay);
            w.push_str(MS_SAME_IDS);
            step.warnings.push(w);
        }
        self.finish(step, now_ms, true);
    }

    /// The shell's immediate result for a request: handed over (a sendBeacon that returned true)
    /// or not started at all (counts as a network error).
    pub fn sent(&mut self, step: &mut Step, ids: &str, handed_over: bool, now_ms: u64, rng: &mut (impl Entropy + ?Sized)) {
        self.delivered(step, ids, if handed_over { 204 } else { 0 }, now_ms, rng)
    }

    /// The browser is back online: retry now.
    pub fn online(&mut self, step: &mut Step, now_ms: u64) {
        self.unloading = false;
        // Sending again (a page back from the back/forward cache, say), this page holds its
        // queue again, as `tick` does: a copy still stored as released would be claimed and sent
        // by another tab too.
        self.released = false;
        if !self.items.is_empty() && !self.in_flight() {
            self.next_send = Some(now_ms);
        }
        self.finish(step, now_ms, true);
    }

    /// `visibilitychange`→hidden (`pagehide` false) or `pagehide` (true).
    pub fn hide(&mut self, step: &mut Step, now_ms: u64, pagehide: bool) {
        // A keepalive fetch in flight shares the page's keepalive budget with the beacons.
        let keepalive_in_flight = if self.in_flight() { self.in_flight_keepalive } else { None };
        if pagehide && self.failures == 0 && keepalive_in_flight.is_some() {
            // A keepalive fetch already in flight outlives the page like a beacon does: with a
            // healthy endpoint it counts as handed over. Keeping it stored would make the next
            // page (a checkout's thank-you page) send the same events a second time. A plain
            // fetch is cancelled with the page: its events stay stored for the next one.
            self.drop_items(|item| item.in_flight);
        }
        if self.failures == 0 || !self.storage_ok {
            let mut budget = UNLOAD_BUDGET.saturating_sub(keepalive_in_flight.unwrap_or(0));
            loop {
                let sent = self.batch(true, budget, now_ms, &mut step.requests);
                if sent == 0 {
                    break;
                }
                budget = budget.saturating_sub(sent);
            }
        }
        if pagehide {
            self.released = true;
        }
        self.unloading = true;
        self.persist(step, now_ms);
    }

    /// Whether the shell's write of our key worked (a failed write is removed by the shell, so
    /// no stale copy is left for another page to resend).
    /// The first failure warns, in `step` (pushed there, not returned as an `Option<String>`).
    pub fn persisted(&mut self, step: &mut Step, ok: bool) {
        let first_failure = ok != self.storage_ok && !ok;
        self.storage_ok = ok;
        self.persisted = ok && !self.items.is_empty();
        if first_failure {
            step.warnings.push(String::from(STORAGE_FULL));
        }
    }

    /// Whether consent lets the shell keep the queue in localStorage (ad_storage). While it does
    /// not, nothing is stored, so a missing key does not mean another tab adopted the queue, and
    /// the unload beacon is the events' last chance even with a failing endpoint. When it does
    /// again, the queue is stored at once.
    pub fn storage_allowed(&mut self, step: &mut Step, allowed: bool, now_ms: u64) {
        self.storage_ok = allowed;
        self.persisted = false;
        self.written = false;
        // A claim is followed by reading storage, which is not allowed now: its recheck would be
        // due at every wake (a timer of 0 ms, again and again). Once allowed, storage is read at once.
        self.recheck_at = if allowed { now_ms } else { NEVER };
        // Denied, the shell keeps the value outside storage (in the loader's page object, where
        // a crash of the wasm does not lose it); allowed, it stores it at once.
        self.persist(step, now_ms);
    }

    /// Whether the last write of our key that the shell reported worked (see `persisted`).
    pub fn storage_ok(&self) -> bool {
        self.storage_ok
    }

    /// `{"until":…,"items":[[url,event],…]}`, or `None` when nothing is waiting.
    pub fn stored_value(&self, now_ms: u64) -> Option<String> {
        if self.items.is_empty() {
            return None;
        }
        Some(queue_text("", if self.released { 0 } else { now_ms + LEASE_MS }, &self.items))
    }

    fn persist(&mut self, step: &mut Step, now_ms: u64) {
        if !self.items.is_empty() || self.written {
            step.persist = Some(self.stored_value(now_ms));
            self.written = !self.items.is_empty();
            self.wrote_key |= self.written;
            self.lease_until = if self.released { 0 } else { now_ms + LEASE_MS };
        }
    }

    fn in_flight(&self) -> bool {
        self.items.iter().any(|i| i.in_flight)
    }

    fn waiting(&self) -> usize {
        let mut n = 0;
        for item in &self.items {
            if !item.in_flight {
                n += 1;
            }
        }
        n
    }

    fn bytes(&self) -> usize {
        let mut n = 0;
        for item in &self.items {
            n += item.bytes();
        }
        n
    }

    fn backoff(&self, rng: &mut (impl Entropy + ?Sized)) -> u64 {
        let exp = self.failures.saturating_sub(1).min(16);
        let full = BACKOFF_BASE_MS.saturating_mul(1u64 << exp).min(BACKOFF_MAX_MS);
        let mut b = [0u8; 4];
        rng.fill(&mut b);
        let half = full / 2;
        half + ((u64::from(u32::from_le_bytes(b)) * (full - half + 1)) >> 32)
    }

    /// Drops the oldest events not in flight until the queue is within its bounds.
    fn bound(&mut self, step: &mut Step) {
        let mut dropped = 0u64;
        while self.items.len() > self.settings.queue_events || self.bytes() > self.settings.queue_bytes {
            let Some(pos) = self.items.iter().position(|i| !i.in_flight) else { break };
            self.items.remove(pos);
            dropped += 1;
        }
        if dropped > 0 {
            let mut m = String::from(QUEUE_FULL_AT_MOST);
            write_u64(&mut m, self.settings.queue_events as u64);
            m.push_str(EVENTS_AND);
            write_u64(&mut m, self.settings.queue_bytes as u64);
            m.push_str(BYTES_DROPPED);
            write_u64(&mut m, dropped);
            m.push_str(OLDEST_UNDELIVERED);
            step.errors.push(TagError::new("queue_full", m, u64_text(dropped)));
        }
    }

    /// Pushes the next batch of waiting events onto `requests`, marked in flight from `now_ms`,
    /// and returns its body's length (0: no batch; a body is never empty). Made where it is kept:
    /// a returned `Option<Request>` was moved through memory into the step.
    fn batch(&mut self, beacon: bool, budget: usize, now_ms: u64, requests: &mut Vec<Request>) -> usize {
        let Some(first) = self.items.iter().position(|i| !i.in_flight) else { return 0 };
        let url = self.items[first].url.clone();
        let limit = self.settings.batch_bytes.min(budget.max(1));
        let mut body = String::from("{\"events\":[");
        let mut ids = String::new();
        let mut count = 0;
        for item in &mut self.items[first..] {
            if item.in_flight || item.url != url {
                continue;
            }
            let with_item = body.len() + item.json.len() + 2;
            if count >= self.settings.batch_events || (count > 0 && with_item > limit) {
                break;
            }
            // One event alone may be over the batch size; in a beacon not over the unload budget:
            // it stays persisted for the next page, and smaller ones behind it still go.
            if count == 0 && beacon && with_item > budget {
                continue;
            }
            if count > 0 {
                body.push(',');
                ids.push(',');
            }
            body.push_str(&item.json);
            ids.push_str(&item.id);
            item.in_flight = true;
            count += 1;
        }
        if count == 0 {
            return 0;
        }
        body.push_str("]}");
        let len = body.len();
        // In flight from now, a beacon too: one the browser refuses goes by fetch (`set_wake`).
        self.in_flight_since = now_ms;
        requests.push(Request { url, body, ids, beacon, keepalive: len <= KEEPALIVE_MAX });
        len
    }

    /// Sends a batch when one is due, then persists (when `persist`) and sets the timer.
    fn finish(&mut self, step: &mut Step, now_ms: u64, persist: bool) {
        if !self.unloading && !self.in_flight() && self.next_send.is_some_and(|due| due <= now_ms) {
            self.next_send = None;
            let sent = self.batch(false, usize::MAX, now_ms, &mut step.requests);
            if sent > 0 {
                self.in_flight_keepalive = (sent <= KEEPALIVE_MAX).then_some(sent);
            }
        }
        if persist {
            self.persist(step, now_ms);
        }
        self.set_wake(step, now_ms);
    }

    /// The timer: the in-flight timeout, or when the next batch is due (0: already due).
    /// The stored queues' next read (`recheck_at`) comes first when it is sooner.
    /// Nothing due at all cancels the timer (`NEVER` and beyond).
    fn set_wake(&self, step: &mut Step, now_ms: u64) {
        let wake = match self.next_send {
            // Counted from the request, not from this step: each step replaces the timer, so a
            // page tracking more often than the timeout would otherwise never see it fire.
            _ if self.in_flight() => (self.in_flight_since + IN_FLIGHT_TIMEOUT_MS).saturating_sub(now_ms),
            Some(due) => due.saturating_sub(now_ms),
            None => NEVER,
        };
        step.wake_ms = Some(wake.min(self.recheck_at.saturating_sub(now_ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::parse;

    /// Calls an outbox method with a fresh step for it to fill, and gives the step back.
    macro_rules! step {
        ($outbox:ident . $method:ident ( $($arg:expr),* $(,)? )) => {{
            let mut step = Step::default();
            $outbox.$method(&mut step, $($arg),*);
            step
        }};
    }

    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
            }
        }
    }

    const NOW: u64 = 1_800_000_000_000;
    const URL: &str = "https://shop.example/collect";

    #[test]
    fn rewrite_covers_every_queued_event_and_persists_it() {
        let mut o = Outbox::new(Settings::default(), "t");
        let _ = queue(&mut o, "a", 1, NOW);
        let sent = step!(o.tick(NOW, true, &mut Fixed(0)));
        assert_eq!(sent.requests.len(), 1);
        let _ = queue(&mut o, "b", 1, NOW);
        let step = step!(o.rewrite(NOW, |json| json.replace(r#""x""#, r#""""#)));
        // Nothing goes or is rescheduled; the stored copy is the rewritten one.
        assert!(step.requests.is_empty() && step.wake_ms.is_none(), "{step:?}");
        let stored = step.persist.flatten().expect("persisted");
        assert!(!stored.contains(r#""x""#) && stored.contains(r#""pad":"""#), "{stored}");
        assert_eq!(o.ids(), ["a", "b"]);
        // The request in flight left with its body; a retry of it carries the rewritten one.
        assert!(sent.requests[0].body.contains(r#""x""#));
        let _ = step!(o.delivered("a", 503, NOW, &mut Fixed(0)));
        let retry = step!(o.tick(NOW + BACKOFF_MAX_MS, true, &mut Fixed(0)));
        assert_eq!(retry.requests.len(), 1, "{retry:?}");
        assert!(retry.requests[0].ids == "a,b" && !retry.requests[0].body.contains(r#""x""#), "{retry:?}");
        // A rewrite that changes nothing writes nothing.
        assert_eq!(step!(o.rewrite(NOW, |json| json.to_string())).persist, None);
    }

    /// One event object as the core's payload writes it (`payload::event`): `event_time_ms` is
    /// `NOW`, and `pad` holds `extra` bytes of `x`.
    fn event(id: &str, extra: usize) -> String {
        let mut s = String::from(r#"{"event_id":""#);
        s.push_str(id);
        s.push_str(r#"","event_name":"Lead","event_time_ms":"#);
        s.push_str(&u64_text(NOW));
        s.push_str(r#","pad":""#);
        s.push_str(&"x".repeat(extra));
        s.push_str("\"}");
        s
    }

    /// Queues `event(id, extra)` the way the shell does (`transport::enqueue`): with the id and
    /// time the core wrote into it, the text as written.
    fn queue(o: &mut Outbox, id: &str, extra: usize, now: u64) -> Step {
        step!(o.enqueue_event(URL, id, NOW, &event(id, extra), now))
    }

    /// Several events of one task, queued one by one as the shell does: each one's step.
    fn queue_all(o: &mut Outbox, ids: &[&str], extra: usize, now: u64) -> Vec<Step> {
        ids.iter().map(|id| queue(o, id, extra, now)).collect()
    }

    fn sent_ids(step: &Step) -> Vec<String> {
        step.requests.iter().map(|r| r.ids.clone()).collect()
    }

    fn outbox(settings: Settings) -> Outbox {
        Outbox::new(settings, "tab1")
    }

    /// `queue_all`, which never sends, then the end-of-task wake it asks for when a batch is due.
    fn enqueue_and_end_task(o: &mut Outbox, ids: &[&str], extra: usize, now: u64) -> Step {
        for queued in queue_all(o, ids, extra, now) {
            assert!(queued.requests.is_empty(), "enqueue_event never sends");
            assert_eq!(queued.wake_ms, Some(0), "a due batch goes at the end of the task");
            assert!(queued.persist.is_some(), "persisted before it is sent");
        }
        step!(o.tick(now, true, &mut Fixed(0)))
    }

    #[test]
    fn an_event_is_queued_and_stored_as_written() {
        let mut o = outbox(Settings::default());
        let text = event("a", 3);
        let s = step!(o.enqueue_event(URL, "a", NOW, &text, NOW));
        assert!(s.requests.is_empty() && s.errors.is_empty() && s.warnings.is_empty(), "{s:?}");
        let item = Item { url: URL.to_string(), id: "a".to_string(), time_ms: NOW, json: text.clone(), in_flight: false };
        assert_eq!(o.items, [item]);
        // The stored copy reads back (as a restart or another tab adopts it) as the very same item:
        // the text as written is what a parse and rewrite of it gives.
        let stored = s.persist.flatten().expect("persisted");
        assert_eq!(parse_stored(&stored, "", NOW).unwrap().items, o.items);
        // A second copy is refused with a warning, a malformed id silently.
        assert_eq!(step!(o.enqueue_event(URL, "a", NOW, &text, NOW)).warnings.len(), 1);
        assert_eq!(step!(o.enqueue_event(URL, "bad id", NOW, &text, NOW)), Step::default());
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn events_close_in_time_share_one_request() {
        let mut o = outbox(Settings { window_ms: 1000, ..Settings::default() });
        let s = queue(&mut o, "a", 0, NOW);
        assert!(s.requests.is_empty());
        assert_eq!(s.wake_ms, Some(1000));
        assert!(s.persist.as_ref().unwrap().as_ref().unwrap().contains(r#""event_id":"a""#));
        for s in queue_all(&mut o, &["b", "c"], 0, NOW + 400) {
            assert!(s.requests.is_empty());
            assert_eq!(s.wake_ms, Some(600), "the window opened by the first event");
        }
        assert!(step!(o.tick(NOW + 500, true, &mut Fixed(0))).requests.is_empty());
        let s = step!(o.tick(NOW + 1000, true, &mut Fixed(0)));
        assert_eq!(sent_ids(&s), ["a,b,c"]);
        let req = &s.requests[0];
        assert!(!req.beacon && req.keepalive && req.url == URL);
        let parsed = parse(&req.body).unwrap();
        assert!(matches!(parsed.get("events"), Some(Value::Array(e)) if e.len() == 3));
        let s = step!(o.delivered("a,b,c", 200, NOW + 1100, &mut Fixed(0)));
        assert_eq!(s.persist, Some(None), "an empty queue removes the key");
        assert!(o.is_empty() && s.requests.is_empty() && s.errors.is_empty());
    }

    /// A result names whole ids: empty pieces and ids that only contain or start another match none.
    #[test]
    fn a_result_matches_whole_ids_only() {
        let mut o = outbox(Settings::default());
        let s = enqueue_and_end_task(&mut o, &["a", "ab", "b"], 0, NOW);
        assert_eq!(sent_ids(&s), ["a,ab,b"]);
        let s = step!(o.delivered(",,abc,xa,ab,", 200, NOW + 10, &mut Fixed(0)));
        assert!(s.errors.is_empty());
        assert_eq!(o.ids(), ["a", "b"]);
        let _ = step!(o.delivered("", 200, NOW + 20, &mut Fixed(0)));
        assert_eq!(o.ids(), ["a", "b"]);
        let _ = step!(o.delivered("b,a", 200, NOW + 30, &mut Fixed(0)));
        assert!(o.is_empty());
    }

    #[test]
    fn batches_split_by_count_and_bytes() {
        let mut o = outbox(Settings { batch_events: 2, ..Settings::default() });
        let s = enqueue_and_end_task(&mut o, &["a", "b", "c", "d", "e"], 0, NOW);
        assert_eq!(sent_ids(&s), ["a,b"], "a full batch goes at the end of the task");
        assert_eq!(sent_ids(&step!(o.delivered("a,b", 200, NOW + 10, &mut Fixed(0)))), ["c,d"]);
        assert_eq!(sent_ids(&step!(o.delivered("c,d", 200, NOW + 20, &mut Fixed(0)))), ["e"]);

        let mut o = outbox(Settings { batch_bytes: 2000, window_ms: 0, ..Settings::default() });
        let s = enqueue_and_end_task(&mut o, &["a", "b", "c"], 900, NOW);
        assert_eq!(sent_ids(&s), ["a,b"]);
        assert!(s.requests[0].body.len() <= 2000);
        assert_eq!(sent_ids(&step!(o.delivered("a,b", 200, NOW, &mut Fixed(0)))), ["c"]);
    }

    #[test]
    fn failures_retry_with_backoff_and_the_same_ids() {
        let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
        let first = enqueue_and_end_task(&mut o, &["a", "b"], 0, NOW);
        let body0 = first.requests[0].body.clone();
        let mut now = NOW;
        let mut delays = Vec::new();
        for status in [503, 0, 500, 429, 408] {
            let s = step!(o.delivered("a,b", status, now, &mut Fixed(255)));
            assert!(s.requests.is_empty() && s.errors.is_empty(), "{status}");
            assert!(s.warnings[0].contains("retrying"), "{:?}", s.warnings);
            let wait = s.wake_ms.unwrap();
            delays.push(wait);
            now += wait;
            let again = step!(o.tick(now, true, &mut Fixed(0)));
            assert_eq!(again.requests[0].body, body0, "the same events, the same ids");
        }
        assert_eq!(delays, [1000, 2000, 4000, 8000, 16000], "rng at its maximum: the full delay");
        for _ in 0..10 {
            step!(o.delivered("a,b", 503, now, &mut Fixed(0)));
            now += 60_000;
            step!(o.tick(now, true, &mut Fixed(0)));
        }
        let s = step!(o.delivered("a,b", 503, now, &mut Fixed(0)));
        assert_eq!(s.wake_ms, Some(30_000), "capped at 60 s, jittered into its upper half");
        let s = step!(o.delivered("a,b", 204, now, &mut Fixed(0)));
        assert!(o.is_empty() && s.persist == Some(None));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for byte in 0..=255u8 {
            let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
            queue(&mut o, "a", 0, NOW);
            step!(o.delivered("a", 0, NOW, &mut Fixed(0)));
            step!(o.tick(NOW + 1000, true, &mut Fixed(0)));
            let d = step!(o.delivered("a", 0, NOW, &mut Fixed(byte))).wake_ms.unwrap();
            assert!((1000..=2000).contains(&d), "{d}");
        }
    }

    #[test]
    fn a_4xx_is_dropped_with_an_error_not_retried() {
        let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        queue(&mut o, "b", 0, NOW);
        let s = step!(o.delivered("a", 413, NOW, &mut Fixed(0)));
        assert_eq!(s.errors[0].code, "delivery_refused");
        assert!(s.errors[0].message.contains("HTTP 413"));
        assert_eq!(sent_ids(&s), ["b"], "the next batch goes");
        assert_eq!(o.ids(), ["b"]);
    }

    #[test]
    fn a_refusal_counts_the_events_it_drops() {
        let mut o = outbox(Settings::default());
        for id in ["a", "b", "c"] {
            queue(&mut o, id, 0, NOW);
        }
        let s = step!(o.delivered("a,c,x", 400, NOW, &mut Fixed(0)));
        assert_eq!(s.errors[0].message, "The endpoint refused 2 event(s) with HTTP 400; they are dropped, not retried");
        assert_eq!(s.errors[0].input, "a,c,x");
        assert_eq!(o.ids(), ["b"]);
    }

    #[test]
    fn the_queue_is_bounded_and_drops_are_counted() {
        let mut o = outbox(Settings { queue_events: 3, ..Settings::default() });
        let steps = queue_all(&mut o, &["a", "b", "c", "d", "e"], 0, NOW);
        assert_eq!(o.ids(), ["c", "d", "e"]);
        let drops: Vec<Vec<(&str, &str)>> = steps.iter().map(|s| s.errors.iter().map(|e| (e.code, e.input.as_str())).collect()).collect();
        assert_eq!(drops, [vec![], vec![], vec![], vec![("queue_full", "1")], vec![("queue_full", "1")]]);
        let mut o = outbox(Settings { queue_bytes: 2500, ..Settings::default() });
        let steps = queue_all(&mut o, &["a", "b", "c"], 900, NOW);
        assert_eq!(o.ids(), ["b", "c"]);
        assert_eq!(steps.iter().map(|s| s.errors.len()).collect::<Vec<_>>(), [0, 0, 1]);
        assert!(o.stored_value(NOW).unwrap().len() <= 2500);
        // One big event can push out several: one report with their count.
        let s = queue(&mut o, "d", 2000, NOW);
        assert_eq!(o.ids(), ["d"]);
        assert_eq!(s.errors.iter().map(|e| (e.code, e.input.as_str())).collect::<Vec<_>>(), [("queue_full", "2")]);
        assert!(o.stored_value(NOW).unwrap().len() <= 2500);
        // Events in flight are not dropped for room.
        let mut o = outbox(Settings { queue_events: 1, window_ms: 0, ..Settings::default() });
        enqueue_and_end_task(&mut o, &["a"], 0, NOW);
        let s = queue(&mut o, "b", 0, NOW);
        assert_eq!((o.ids(), s.errors.len()), (vec!["a"], 1));
    }

    #[test]
    fn the_same_event_id_is_queued_once() {
        let mut o = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        let s = queue(&mut o, "a", 0, NOW);
        assert_eq!(o.ids(), ["a"]);
        assert!(s.warnings[0].contains("already queued") && s.persist.is_none());
        // A malformed id is refused silently: nothing queued, stored or scheduled.
        let too_long = "x".repeat(65);
        for id in ["", "bad id", "a,b", "caf\u{e9}", too_long.as_str()] {
            assert_eq!(queue(&mut o, id, 0, NOW), Step::default(), "{id}");
        }
        assert_eq!(o.ids(), ["a"]);
        let longest = "x".repeat(64);
        assert!(queue(&mut o, &longest, 0, NOW).persist.is_some(), "64 bytes is still an event_id");
        assert_eq!(o.ids(), ["a", longest.as_str()]);
    }

    /// localStorage as the shell leaves it after `step`: other keys claimed or removed, our own
    /// key written or removed.
    fn apply(storage: &mut Vec<(String, String)>, o: &Outbox, step: &Step) {
        let mut set = |key: &str, value: Option<&String>| {
            storage.retain(|(k, _)| k != key);
            if let Some(v) = value {
                storage.push((key.to_string(), v.clone()));
            }
        };
        for (key, value) in &step.others {
            set(key, Some(value).filter(|v| !v.is_empty()));
        }
        if let Some(value) = &step.persist {
            set(o.key(), value.as_ref());
        }
    }

    /// The claims a step writes, (key, value).
    fn claims(step: &Step) -> Vec<(&str, &str)> {
        step.others.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// The other keys a step removes.
    fn forgotten(step: &Step) -> Vec<&str> {
        step.others.iter().filter(|(_, v)| v.is_empty()).map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_stored_queue_is_claimed_once_its_lease_is_over_and_taken_once_the_claim_stood() {
        let mut other = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue_all(&mut other, &["x1", "x2"], 0, NOW);
        let live = other.stored_value(NOW).unwrap();
        step!(other.hide(NOW, true));
        let released = other.stored_value(NOW).unwrap();
        assert!(released.starts_with(r#"{"until":0,"#), "{released}");
        let mut own = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue(&mut own, "o1", 0, NOW - 5);
        let own_stored = own.stored_value(NOW).unwrap();

        let mut o = Outbox::new(Settings { window_ms: 1000, ..Settings::default() }, "tab1");
        let mut storage = vec![
            (String::from("tandem:q:tab1"), own_stored),
            (String::from("tandem:q:live"), live.clone()),
            (String::from("tandem:q:gone"), released),
            (String::from("tandem:q:junk"), String::from("{not json")),
            (String::from("other"), live.clone()),
        ];
        let s = step!(o.adopt(&storage, NOW + 1));
        assert_eq!(o.ids(), ["o1"], "our own key (a crashed instance's) is taken at once");
        assert_eq!(forgotten(&s), ["tandem:q:junk"], "a live lease is left alone, our own key is rewritten");
        assert_eq!(claims(&s).len(), 1);
        let (key, claim) = claims(&s)[0];
        assert_eq!(key, "tandem:q:gone");
        assert!(claim.starts_with(&format!(r#"{{"by":"tandem:q:tab1","until":{},"items":[["#, NOW + 1 + CLAIM_MS)), "{claim}");
        assert_eq!(s.wake_ms, Some(CLAIM_WAIT_MS), "the claim is looked at before the own key's delay is over");
        apply(&mut storage, &o, &s);
        // Before the claim has stood, nothing more is taken; once it has, the items are ours.
        let s = step!(o.adopt(&storage, NOW + CLAIM_WAIT_MS));
        assert!(s.others.is_empty() && o.ids() == ["o1"], "{s:?}");
        assert_eq!(s.wake_ms, Some(1), "{s:?}");
        assert!(!o.recheck_due(NOW + CLAIM_WAIT_MS) && o.recheck_due(NOW + 1 + CLAIM_WAIT_MS));
        let s = step!(o.adopt(&storage, NOW + 1 + CLAIM_WAIT_MS));
        assert_eq!(o.ids(), ["o1", "x1", "x2"]);
        assert_eq!(forgotten(&s), ["tandem:q:gone"]);
        assert!(!o.recheck_due(u64::MAX - 1), "no claim left to follow");
        let written = s.persist.unwrap().unwrap();
        assert_eq!(parse_stored(&written, "", NOW).unwrap().items.len(), 3);
        // After the lease, the live one is claimed too.
        let mut later = Outbox::new(Settings { window_ms: 1000, ..Settings::default() }, "tab2");
        let s = step!(later.adopt(&[(String::from("tandem:q:live"), live)], NOW + LEASE_MS + 1));
        assert_eq!((later.ids().len(), claims(&s).len()), (0, 1));
    }

    #[test]
    fn two_tabs_starting_together_take_a_released_queue_once() {
        let mut old = outbox(Settings::default());
        queue_all(&mut old, &["x1", "x2"], 0, NOW);
        step!(old.hide(NOW, true));
        let released = old.stored_value(NOW).unwrap();
        for b_writes_last in [false, true] {
            let mut storage = vec![(String::from("tandem:q:old"), released.clone())];
            let mut b = Outbox::new(Settings::default(), "B");
            let mut c = Outbox::new(Settings::default(), "C");
            // Both read the released queue before either claim landed.
            let sb = step!(b.adopt(&storage, NOW + 10));
            let sc = step!(c.adopt(&storage, NOW + 11));
            let (first, last) = if b_writes_last { ((&c, &sc), (&b, &sb)) } else { ((&b, &sb), (&c, &sc)) };
            apply(&mut storage, first.0, first.1);
            apply(&mut storage, last.0, last.1);
            let at = NOW + 11 + CLAIM_WAIT_MS;
            let sb = step!(b.adopt(&storage, at));
            apply(&mut storage, &b, &sb);
            let sc = step!(c.adopt(&storage, at));
            apply(&mut storage, &c, &sc);
            let (winner, loser) = if b_writes_last { (&b, &c) } else { (&c, &b) };
            assert_eq!((winner.ids(), loser.ids()), (vec!["x1", "x2"], vec![]), "b last: {b_writes_last}");
            assert!(!storage.iter().any(|(k, _)| k == "tandem:q:old"), "{storage:?}");
        }
    }

    #[test]
    fn a_claim_whose_tab_closed_is_claimed_again_once_it_ran_out() {
        let mut old = outbox(Settings::default());
        queue(&mut old, "x1", 0, NOW);
        step!(old.hide(NOW, true));
        let mut storage = vec![(String::from("tandem:q:old"), old.stored_value(NOW).unwrap())];
        // Tab C claims it and closes before taking it.
        let mut c = Outbox::new(Settings::default(), "C");
        let sc = step!(c.adopt(&storage, NOW));
        apply(&mut storage, &c, &sc);
        // Tab B sees C's live claim: it leaves it, and looks again when the claim runs out.
        let mut b = Outbox::new(Settings::default(), "B");
        let s = step!(b.adopt(&storage, NOW + 100));
        assert!(s.others.is_empty() && b.ids().is_empty() && s.wake_ms == Some(CLAIM_MS - 100), "{s:?}");
        let s = step!(b.adopt(&storage, NOW + CLAIM_MS));
        assert_eq!(claims(&s).len(), 1);
        apply(&mut storage, &b, &s);
        // A claim re-read late (a throttled timer), after it ran out, is made again, not trusted.
        let s = step!(b.adopt(&storage, NOW + 2 * CLAIM_MS));
        assert!(b.ids().is_empty() && claims(&s).len() == 1, "{s:?}");
        apply(&mut storage, &b, &s);
        let _ = step!(b.adopt(&storage, NOW + 2 * CLAIM_MS + CLAIM_WAIT_MS));
        assert_eq!(b.ids(), ["x1"]);
    }

    #[test]
    fn old_or_malformed_stored_items_are_left_out() {
        let old = String::from(r#"{"until":0,"items":[["https://a.example/c",{"event_id":"old","event_time_ms":1}],["javascript:x",{"event_id":"js"}],["https://a.example/c",{"event_id":"bad id"}],["https://a.example/c",{"event_id":"ok"}],5,[]]}"#);
        let items = parse_stored(&old, "", NOW).unwrap().items;
        assert_eq!(items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["ok"]);
        for junk in ["", "[]", "null", r#"{"until":"0","items":[]}"#, r#"{"until":0}"#] {
            assert!(parse_stored(junk, "", NOW).is_none(), "{junk}");
        }
    }

    #[test]
    fn unload_beacons_what_waits_within_budget() {
        let mut o = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue_all(&mut o, &["a", "b"], 0, NOW);
        let s = step!(o.hide(NOW + 10, true));
        assert_eq!(sent_ids(&s), ["a,b"]);
        assert!(s.requests[0].beacon);
        let s = step!(o.sent("a,b", true, NOW + 10, &mut Fixed(0)));
        assert_eq!(s.persist, Some(None), "handed over: nothing left for the next page");

        // Many big events: several beacons, under the budget together; the rest stays stored.
        let mut o = outbox(Settings { window_ms: 1000, batch_bytes: 16 * 1024, queue_bytes: 1_000_000, ..Settings::default() });
        let ids: Vec<String> = (0..40).map(|n| String::from("e") + &u64_text(n)).collect();
        for id in &ids {
            queue(&mut o, id, 3000, NOW);
        }
        // The queue filled a batch before the page went away: that fetch is already in flight.
        let fetched_before = o.items.iter().filter(|i| i.in_flight).count();
        let s = step!(o.hide(NOW, true));
        let total: usize = s.requests.iter().map(|r| r.body.len()).sum();
        assert!(s.requests.len() >= 3 && total <= UNLOAD_BUDGET, "{} requests, {total} bytes", s.requests.len());
        assert!(s.requests.iter().all(|r| r.body.len() <= 16 * 1024 && r.beacon));
        let stored = s.persist.unwrap().unwrap();
        assert!(stored.starts_with(r#"{"until":0,"#));
        assert_eq!(
            parse_stored(&stored, "", NOW).unwrap().items.len(),
            40 - fetched_before,
            "beaconed or not, all stay stored until handed over; a keepalive fetch in flight counts as handed over"
        );
    }

    #[test]
    fn a_failing_endpoint_is_not_beaconed_on_unload() {
        let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        step!(o.delivered("a", 503, NOW, &mut Fixed(0)));
        let s = step!(o.hide(NOW + 1, true));
        assert!(s.requests.is_empty());
        assert!(s.persist.unwrap().unwrap().contains(r#""event_id":"a""#));
        // Without storage the beacon is the last chance: it goes.
        step!(o.persisted(false));
        assert_eq!(sent_ids(&step!(o.hide(NOW + 2, true))), ["a"]);
    }

    #[test]
    fn online_retries_now() {
        let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        step!(o.delivered("a", 0, NOW, &mut Fixed(0)));
        assert_eq!(sent_ids(&step!(o.online(NOW + 5))), ["a"]);
        assert!(step!(o.online(NOW + 6)).requests.is_empty(), "one request at a time");
    }

    #[test]
    fn an_adopted_queue_is_dropped_by_its_old_tab() {
        let mut o = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        assert!(step!(o.persisted(true)).warnings.is_empty());
        let s = step!(o.tick(NOW + 1000, false, &mut Fixed(0)));
        assert!(s.requests.is_empty() && o.is_empty());
        assert!(s.warnings[0].contains("another tab"));
    }

    #[test]
    fn a_request_without_answer_times_out_into_a_retry() {
        let mut o = outbox(Settings { window_ms: 0, ..Settings::default() });
        let s = enqueue_and_end_task(&mut o, &["a"], 0, NOW);
        assert_eq!(s.wake_ms, Some(IN_FLIGHT_TIMEOUT_MS));
        let s = step!(o.tick(NOW + IN_FLIGHT_TIMEOUT_MS, true, &mut Fixed(0)));
        assert!(s.warnings[0].contains("network error"));
        assert_eq!(o.len(), 1);
        let s = step!(o.sent("a", false, NOW + IN_FLIGHT_TIMEOUT_MS + 5000, &mut Fixed(0)));
        assert!(s.requests.is_empty(), "not sent: the item was not in flight, it waits for its retry");
    }

    #[test]
    fn events_tracked_while_a_request_hangs_do_not_push_its_timeout_back() {
        let mut o = outbox(Settings::default());
        assert_eq!(sent_ids(&enqueue_and_end_task(&mut o, &["a"], 0, NOW)), ["a"]);
        // Each step sets the one timer again: 30 s from the request, not from the step, or a page
        // that tracks every 20 s (scroll depth, a video's progress) never sees the hung request
        // time out, and every later event waits behind it.
        let s = queue(&mut o, "b", 0, NOW + 20_000);
        assert_eq!(s.wake_ms, Some(IN_FLIGHT_TIMEOUT_MS - 20_000), "{s:?}");
        let s = step!(o.tick(NOW + IN_FLIGHT_TIMEOUT_MS, true, &mut Fixed(0)));
        assert!(s.warnings[0].contains("network error"), "{s:?}");
        // A beacon the browser refused goes by fetch (the shell's fallback), in flight from the
        // hide: its timeout counts from there, not from an older request.
        let mut o = outbox(Settings { window_ms: 5000, ..Settings::default() });
        let _ = queue(&mut o, "a", 0, NOW);
        assert_eq!(sent_ids(&step!(o.hide(NOW + 60_000, false))), ["a"]);
        let s = queue(&mut o, "b", 0, NOW + 61_000);
        assert_eq!(s.wake_ms, Some(IN_FLIGHT_TIMEOUT_MS - 1000), "{s:?}");
    }

    #[test]
    fn a_timeout_retries_exactly_the_events_in_flight() {
        let mut o = outbox(Settings::default());
        let s = enqueue_and_end_task(&mut o, &["a", "b"], 0, NOW);
        assert_eq!(sent_ids(&s), ["a,b"]);
        let _ = queue(&mut o, "c", 0, NOW);
        let s = step!(o.tick(NOW + IN_FLIGHT_TIMEOUT_MS, true, &mut Fixed(0)));
        assert_eq!(s.warnings, ["the endpoint could not take 2 event(s) (a network error); retrying in 500 ms with the same event_ids"]);
        assert!(s.requests.is_empty() && s.wake_ms == Some(500), "{s:?}");
        let retry = step!(o.tick(NOW + IN_FLIGHT_TIMEOUT_MS + 500, true, &mut Fixed(0)));
        assert_eq!(sent_ids(&retry), ["a,b,c"]);
    }

    #[test]
    fn storage_failures_are_reported_once() {
        let mut o = outbox(Settings { window_ms: 1000, ..Settings::default() });
        queue(&mut o, "a", 0, NOW);
        assert_eq!(step!(o.persisted(false)).warnings.len(), 1);
        assert!(step!(o.persisted(false)).warnings.is_empty());
        // Nothing persisted: a missing key does not mean another tab adopted us.
        assert_eq!(step!(o.tick(NOW + 1000, false, &mut Fixed(0))).requests.len(), 1);
    }

    #[test]
    fn settings_from_config() {
        let mut e = Vec::new();
        let s = Settings::parse(&parse(r#"{"batch":{"windowMs":0,"maxEvents":5,"maxBytes":4096},"queue":{"maxEvents":10,"maxBytes":5000}}"#).unwrap(), &mut e);
        assert!(e.is_empty());
        assert_eq!(s, Settings { window_ms: 0, batch_events: 5, batch_bytes: 4096, queue_events: 10, queue_bytes: 5000 });
        let s = Settings::parse(&parse(r#"{"batch":{"windowMs":-1,"maxEvents":"5","maxBytes":70000},"queue":7}"#).unwrap(), &mut e);
        assert_eq!(s, Settings::default());
        let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages.contains(&"config.batch.windowMs must be a whole number from 0 to 60000; using 0"));
        assert!(messages.contains(&"config.queue must be an object; using defaults"));
    }

    #[test]
    fn a_keepalive_fetch_in_flight_at_pagehide_is_not_stored_for_the_next_page() {
        let mut o = outbox(Settings::default());
        let s = enqueue_and_end_task(&mut o, &["buy"], 0, NOW);
        assert_eq!(sent_ids(&s), ["buy"], "window 0: sent without waiting");
        assert!(!s.requests[0].beacon);
        let s = step!(o.hide(NOW + 5, true));
        assert!(s.requests.is_empty(), "not beaconed again");
        assert!(o.ids().is_empty(), "handed over, so the next page does not resend it");
        // With a failing endpoint the same event would stay stored (see the retry tests).
    }

    #[test]
    fn a_plain_fetch_in_flight_at_pagehide_stays_stored() {
        // One event over KEEPALIVE_MAX (a Purchase with 200 long contents) goes alone, without
        // keepalive: the browser cancels that fetch with the page, so it must stay stored.
        let mut o = outbox(Settings::default());
        let s = enqueue_and_end_task(&mut o, &["big"], 70_000, NOW);
        assert_eq!(sent_ids(&s), ["big"]);
        assert!(!s.requests[0].keepalive);
        let s = step!(o.hide(NOW + 5, true));
        assert_eq!(o.ids(), ["big"]);
        assert!(s.persist.flatten().is_some_and(|v| v.contains(r#""event_id":"big""#)));
    }

    #[test]
    fn unload_beacons_leave_room_for_the_keepalive_fetch_in_flight() {
        for settings in [Settings::default(), Settings { batch_bytes: 60_000, queue_bytes: 1_000_000, ..Settings::default() }] {
            let mut o = outbox(settings);
            let ids: Vec<String> = (0..40).map(|n| String::from("e") + &u64_text(n)).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let s = enqueue_and_end_task(&mut o, &refs, 3000, NOW);
            let in_flight: usize = s.requests.iter().filter(|r| r.keepalive).map(|r| r.body.len()).sum();
            assert!(in_flight > 12_000, "{in_flight}");
            let s = step!(o.hide(NOW + 5, true));
            let beacons: usize = s.requests.iter().map(|r| r.body.len()).sum();
            assert!(beacons <= UNLOAD_BUDGET.saturating_sub(in_flight), "in flight {in_flight} + beacons {beacons} > {UNLOAD_BUDGET}");
            assert!(!o.ids().is_empty(), "what did not fit stays stored for the next page");
        }
    }

    #[test]
    fn only_our_own_queue_waits_for_a_crashed_instances_answer() {
        let stored = |key: &str| vec![(String::from(KEY_PREFIX) + key, format!(r#"{{"until":0,"items":[["{URL}",{{"event_id":"old-1","event_time_ms":{}}}]]}}"#, NOW - 5000))];
        let mut o = outbox(Settings::default());
        let mut storage = stored("old-tab");
        let claimed = step!(o.adopt(&storage, NOW));
        apply(&mut storage, &o, &claimed);
        let adopted = step!(o.adopt(&storage, NOW + CLAIM_WAIT_MS));
        assert_eq!((o.ids(), adopted.requests.len(), adopted.wake_ms), (vec!["old-1"], 0, Some(0)), "another page's queue goes once claimed, at the next tick");
        assert_eq!(sent_ids(&step!(o.tick(NOW + CLAIM_WAIT_MS, true, &mut Fixed(0)))), ["old-1"]);
        let mut o = outbox(Settings::default());
        let adopted = step!(o.adopt(&stored("tab1"), NOW));
        assert_eq!((adopted.requests.len(), adopted.wake_ms), (0, Some(ADOPT_DELAY_MS)));
        // Read again later (a claim to follow), our own key holds what this instance wrote: it
        // does not delay the queue again: the timer is the timeout of the request sent 1 ms before.
        let _ = step!(o.tick(NOW + ADOPT_DELAY_MS, true, &mut Fixed(0)));
        let again = step!(o.adopt(&stored("tab1"), NOW + ADOPT_DELAY_MS + 1));
        assert_eq!(again.wake_ms, Some(IN_FLIGHT_TIMEOUT_MS - 1), "{again:?}");
    }

    #[test]
    fn the_beacons_results_start_no_request_past_the_unload_budget() {
        // 40 events of 3 KB with a 2 s window: hide beacons 48 KB of them; the shell then reports
        // each beacon handed over, which used to start a normal fetch of the rest in the same task.
        let mut o = outbox(Settings { window_ms: 2000, batch_bytes: 60_000, queue_bytes: 1_000_000, ..Settings::default() });
        let ids: Vec<String> = (0..40).map(|n| String::from("e") + &u64_text(n)).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        for step in queue_all(&mut o, &refs, 3000, NOW) {
            assert!(step.requests.is_empty());
        }
        let hidden = step!(o.hide(NOW + 5, true));
        let beaconed: usize = hidden.requests.iter().map(|r| r.body.len()).sum();
        assert!(beaconed <= UNLOAD_BUDGET && !hidden.requests.is_empty());
        for request in &hidden.requests {
            let after = step!(o.sent(&request.ids, true, NOW + 6, &mut Fixed(0)));
            assert!(after.requests.is_empty(), "a request after the unload beacons: {:?}", sent_ids(&after));
        }
        assert!(!o.ids().is_empty(), "the rest stays stored for the next page");
        // The page came back (a tick): the rest goes.
        assert_eq!(step!(o.tick(NOW + 3000, true, &mut Fixed(0))).requests.len(), 1);
    }

    #[test]
    fn an_event_over_the_batch_size_but_within_the_unload_budget_is_beaconed_alone() {
        let mut o = outbox(Settings { window_ms: 2000, queue_bytes: 1_000_000, ..Settings::default() });
        let _ = queue(&mut o, "big", 20 * 1024, NOW);
        let _ = queue(&mut o, "small", 10, NOW);
        let s = step!(o.hide(NOW + 5, true));
        assert_eq!(sent_ids(&s), ["big", "small"]);
        assert!(s.requests.iter().all(|r| r.beacon));
    }

    #[test]
    fn an_event_over_the_unload_budget_does_not_hold_back_the_ones_behind_it() {
        let mut o = outbox(Settings { window_ms: 2000, batch_bytes: 60_000, queue_bytes: 1_000_000, ..Settings::default() });
        let _ = queue(&mut o, "big", UNLOAD_BUDGET, NOW);
        let _ = queue(&mut o, "small", 10, NOW);
        let s = step!(o.hide(NOW + 5, true));
        assert_eq!(sent_ids(&s), ["small"]);
        assert!(s.requests[0].beacon);
        assert_eq!(o.ids(), ["big", "small"], "big stays for the next page; small until its beacon's result");
    }

    #[test]
    fn storage_switched_off_by_consent_is_not_taken_for_an_adoption() {
        // The shell removes our key when ad_storage is denied, and tells the outbox.
        let mut o = outbox(Settings::default());
        assert!(queue(&mut o, "lead", 0, NOW).persist.is_some());
        let _ = step!(o.persisted(o.storage_ok()));
        let off = step!(o.storage_allowed(false, NOW));
        assert!(off.requests.is_empty());
        let kept = off.persist.flatten().unwrap_or_default();
        assert!(kept.contains("\"lead\""), "the queue, for the shell to keep outside storage: {kept}");
        let s = step!(o.tick(NOW, false, &mut Fixed(0)));
        assert_eq!(sent_ids(&s), ["lead"], "delivered from memory during the page: {s:?}");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn drop_all_empties_the_queue_and_its_stored_copy_and_retries_nothing() {
        let mut o = outbox(Settings::default());
        let _ = enqueue_and_end_task(&mut o, &["a"], 0, NOW);
        let _ = step!(o.delivered("a", 503, NOW, &mut Fixed(0)));
        let _ = queue(&mut o, "b", 0, NOW);
        let _ = step!(o.tick(NOW + BACKOFF_MAX_MS, true, &mut Fixed(0)));
        // "a" and "b" are in flight again, and storage holds them.
        let s = step!(o.drop_all(NOW + BACKOFF_MAX_MS));
        assert!(o.is_empty() && s.requests.is_empty(), "{s:?}");
        assert_eq!((s.persist, s.wake_ms), (Some(None), Some(NEVER)), "the stored copy removed, the timer cancelled");
        // The answer to the request in flight, a timer, the browser back online: nothing goes.
        let later = NOW + 10 * BACKOFF_MAX_MS;
        assert!(step!(o.delivered("a,b", 503, later, &mut Fixed(0))).requests.is_empty());
        assert!(step!(o.tick(later, false, &mut Fixed(0))).requests.is_empty() && step!(o.online(later)).requests.is_empty() && step!(o.hide(later, true)).requests.is_empty());
        assert!(o.is_empty());
    }

    #[test]
    fn without_storage_a_failing_endpoint_still_gets_the_unload_beacon() {
        let mut o = outbox(Settings::default());
        let _ = step!(o.storage_allowed(false, NOW));
        let _ = enqueue_and_end_task(&mut o, &["lead"], 0, NOW);
        let _ = step!(o.delivered("lead", 503, NOW, &mut Fixed(0)));
        let s = step!(o.hide(NOW + 100, true));
        assert_eq!(sent_ids(&s), ["lead"], "not stored anywhere: the beacon is the last chance");
        // Stored again as soon as consent allows.
        let mut o = outbox(Settings::default());
        let _ = step!(o.storage_allowed(false, NOW));
        let _ = queue(&mut o, "later", 0, NOW);
        let on = step!(o.storage_allowed(true, NOW));
        assert!(on.persist.flatten().is_some_and(|v| v.contains(r#""event_id":"later""#)));
    }

    /// Tab A tracked "a", its request failed with `status` (0: offline), so its pagehide at
    /// NOW + 10 released "a" into storage (`until: 0`), where the next page may adopt it.
    fn released_by_a(status: u32) -> (Outbox, Vec<(String, String)>) {
        let mut a = Outbox::new(Settings::default(), "A");
        let _ = enqueue_and_end_task(&mut a, &["a"], 0, NOW);
        let _ = step!(a.delivered("a", status, NOW, &mut Fixed(0)));
        let _ = step!(a.persisted(true));
        let mut storage = Vec::new();
        let s = step!(a.hide(NOW + 10, true));
        apply(&mut storage, &a, &s);
        (a, storage)
    }

    /// Tab A's endpoint failed, so its pagehide released "a" in storage; tab B, starting at
    /// NOW + 20, has claimed A's key (its claim stands at NOW + 20 + CLAIM_WAIT_MS).
    fn released_then_claimed() -> (Outbox, Outbox, Vec<(String, String)>) {
        let (a, mut storage) = released_by_a(503);
        let mut b = Outbox::new(Settings::default(), "B");
        let sb = step!(b.adopt(&storage, NOW + 20));
        apply(&mut storage, &b, &sb);
        (a, b, storage)
    }

    #[test]
    fn a_tab_back_while_its_queue_is_claimed_leaves_the_claim_alone() {
        let (mut a, mut b, mut storage) = released_then_claimed();
        // A is back before B's claim has stood: the shell sees A's key claimed (as gone), so A
        // drops "a", and its next event goes under a new key, not over B's claim.
        assert_eq!(step!(a.key_checked(false)).warnings.len(), 1);
        let s = queue(&mut a, "b", 0, NOW + 30);
        assert_eq!(a.key(), "tandem:q:A~");
        apply(&mut storage, &a, &s);
        let sb = step!(b.adopt(&storage, NOW + 20 + CLAIM_WAIT_MS));
        apply(&mut storage, &b, &sb);
        assert_eq!((a.ids(), b.ids()), (vec!["b"], vec!["a"]));
        assert_eq!(storage.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["tandem:q:A~", "tandem:q:B"], "A's first key is gone");
    }

    #[test]
    fn a_fresh_instance_whose_key_another_tab_claimed_stores_under_a_new_key() {
        // A came back and its instance crashed before it wrote anything: the fresh instance
        // (same tab id) finds its key claimed.
        let (_, mut b, mut storage) = released_then_claimed();
        let mut fresh = Outbox::new(Settings::default(), "A");
        let sf = step!(fresh.adopt(&storage, NOW + 30));
        assert_eq!((fresh.key(), fresh.ids().len(), claims(&sf).len()), ("tandem:q:A~", 0, 0), "{sf:?}");
        let s = queue(&mut fresh, "b", 0, NOW + 40);
        apply(&mut storage, &fresh, &s);
        let sb = step!(b.adopt(&storage, NOW + 20 + CLAIM_WAIT_MS));
        apply(&mut storage, &b, &sb);
        assert_eq!((b.ids(), fresh.ids()), (vec!["a"], vec!["b"]), "B's claim stood: \"a\" goes once, from B");
        assert_eq!(storage.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["tandem:q:A~", "tandem:q:B"]);
    }

    #[test]
    fn a_claim_left_when_storage_is_denied_does_not_wake_the_tab_at_once_forever() {
        let (_, mut b, _) = released_then_claimed();
        let _ = queue(&mut b, "b", 0, NOW + 30);
        let _ = step!(b.storage_allowed(false, NOW + 40));
        // The claim would stand now, but storage may not be read: no recheck is due, and the
        // timer waits for what is queued, not 0 ms at every wake.
        let at = NOW + 20 + CLAIM_WAIT_MS + 1;
        assert!(!b.recheck_due(at));
        let s = step!(b.tick(at, true, &mut Fixed(0)));
        assert_eq!(sent_ids(&s), ["b"]);
        assert_eq!(s.wake_ms, Some(IN_FLIGHT_TIMEOUT_MS), "{s:?}");
        let _ = step!(b.delivered("b", 204, at, &mut Fixed(0)));
        let idle = step!(b.tick(at + 1, true, &mut Fixed(0)));
        assert!(idle.wake_ms.is_some_and(|ms| ms > u64::from(u32::MAX)), "no timer: {idle:?}");
        // Allowed again: storage is read at once, and the claim that stood is taken.
        let _ = step!(b.storage_allowed(true, at + 2));
        assert!(b.recheck_due(at + 2));
    }

    #[test]
    fn our_own_key_read_before_its_removal_landed_is_not_taken_again() {
        let mut o = Outbox::new(Settings::default(), "A");
        let mut storage = Vec::new();
        let s = queue(&mut o, "a", 0, NOW);
        apply(&mut storage, &o, &s);
        let _ = step!(o.persisted(true));
        let sent = step!(o.tick(NOW, true, &mut Fixed(0)));
        assert_eq!(sent_ids(&sent), ["a"]);
        let s = step!(o.delivered("a", 204, NOW + 5, &mut Fixed(0)));
        assert_eq!(s.persist, Some(None), "the delivered queue is removed");
        // Storage read again (a claim to follow) before the coalesced removal was made: our key
        // still holds "a", and it is not taken back to be sent twice.
        let s = step!(o.adopt(&storage, NOW + 6));
        assert!(o.ids().is_empty() && s.requests.is_empty(), "{s:?}");
        assert!(sent_ids(&step!(o.tick(NOW + 7, true, &mut Fixed(0)))).is_empty());
        // A fresh instance of the same tab (after a crash) still takes what its key holds.
        let mut fresh = Outbox::new(Settings::default(), "A");
        let _ = step!(fresh.adopt(&storage, NOW + 8));
        assert_eq!(fresh.ids(), ["a"]);
    }

    #[test]
    fn a_page_back_from_the_cache_that_retries_when_online_holds_its_queue_again() {
        // Page A: offline, so at pagehide "a" stays stored with until:0 (A enters bfcache).
        let (mut a, mut storage) = released_by_a(0);
        // Back from the cache, its key still its own, A is online again and sends "a" at once.
        assert!(a.key_check_due(NOW + 5000));
        let _ = step!(a.key_checked(true));
        let s = step!(a.online(NOW + 5000));
        assert_eq!(sent_ids(&s), ["a"]);
        apply(&mut storage, &a, &s);
        // Another tab starting while that request is on its way must find a live lease, not a
        // released queue to claim and send a second time (as the tick does, and the JS path).
        let mut b = Outbox::new(Settings::default(), "B");
        let sb = step!(b.adopt(&storage, NOW + 5100));
        assert!(sb.others.is_empty(), "B claims the queue A is sending: {sb:?}");
    }

    #[test]
    fn a_queue_adopted_by_the_next_page_is_not_resent_after_a_back_navigation() {
        // Page A: the endpoint fails, so at pagehide "a" stays stored with until:0 (A enters bfcache).
        let (mut a, mut storage) = released_by_a(503);
        // Page B adopts it (claims A's key, then takes it and deletes it), and will send "a".
        let mut b = Outbox::new(Settings::default(), "B");
        let sb = step!(b.adopt(&storage, NOW + 20));
        apply(&mut storage, &b, &sb);
        let sb = step!(b.adopt(&storage, NOW + 20 + CLAIM_WAIT_MS));
        assert_eq!((b.ids(), forgotten(&sb)), (vec!["a"], vec!["tandem:q:A"]));
        // Back to A (restored from the back/forward cache): its lease was released, so the shell
        // looks for A's key before the track, finds it gone, and A drops its copy of "a".
        assert!(a.key_check_due(NOW + 30_000));
        assert_eq!(step!(a.key_checked(false)).warnings.len(), 1);
        let s = queue(&mut a, "b", 0, NOW + 30_000);
        assert!(!s.persist.flatten().unwrap().contains(r#""event_id":"a""#), "A writes B's event back");
        let _ = step!(a.persisted(true));
        let s = step!(a.tick(NOW + 30_001, true, &mut Fixed(0)));
        assert_eq!(sent_ids(&s), ["b"]);
        // A live lease needs no look: a frozen tab does once it ran out.
        assert!(!a.key_check_due(NOW + 30_001 + LEASE_MS - 1000));
        assert!(a.key_check_due(NOW + 30_001 + LEASE_MS));
    }
}
