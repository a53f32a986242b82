//! The tag's state machine: `Tag::init`, `Tag::track`, `Tag::page`.
//!
//! Sans-IO: each call takes the page facts the shell read (`PageFacts`) and a source of randomness
//! (`Entropy`), and returns an `Outcome` listing effects for the shell to carry out in order, plus
//! errors and warnings for the loader to report. Nothing here can fail the host page: bad input is
//! data, returned with its errors.
//!
//! Pipeline stages and their failure rules (after Segment's):
//! 1. before: config and event validation. A failure drops the event and reports why.
//! 2. enrichment: event_id, click IDs, UTMs, fbp/fbc, client id. A failure logs and continues.
//! 3. destinations: each platform maps the event independently; one that fails never stops another,
//!    and the endpoint copy is built whatever the platforms did.

use crate::core::error::{TagError, EVENT_ID_PREFIX};
use crate::core::json::Value;

/// What the shell read from the page for one call.
#[derive(Clone, Debug, Default)]
pub struct PageFacts {
    /// `location.href`.
    pub url: String,
    /// `document.referrer` (may be empty).
    pub referrer: String,
    /// `document.cookie`. The ad cookies in it (`_fbp`, `_fbc`, `_ttp`) are used only while
    /// ad_storage is granted, the client id only while analytics_storage is.
    pub cookie_header: String,
    /// `localStorage["tandem:attribution"]`, when readable; used only while ad_storage is granted.
    pub stored_attribution: Option<String>,
    /// `localStorage["tandem:sent"]`, conversions already sent (see `sent`), when readable.
    pub stored_sent: Option<String>,
    /// Finds a host's registrable domain (`None` on localhost and IP hosts): remembered from an
    /// earlier page, else by setting a test cookie on each of its `cookies::domain_candidates`.
    /// The test cookie is a cookie too: the core calls this only once a cookie of its own may be
    /// written (see `Tag::settle_domain`). `None`: cookies are host-only.
    pub registrable_domain: Option<fn(&str) -> Option<String>>,
    /// `location.protocol == "https:"`.
    pub https: bool,
    /// `Date.now()`.
    pub now_ms: u64,
    /// The `nonce` of the loader's own script tag, passed to scripts Tandem injects.
    pub nonce: String,
}

/// Randomness for event ids, `_fbp` and the client id. The shell draws from
/// crypto.getRandomValues (pooled, see shell/browser.rs); tests use a deterministic twin.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Something for the shell to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Assign this string to `document.cookie` (already fully rendered: name=value; attributes).
    SetCookie(String),
    /// `localStorage.setItem(key, value)`; failures (quota, disabled storage) are ignored by design.
    /// The keys are the tag's own constants, so not copied into a String for each write.
    Store { key: &'static str, value: String },
    /// Inject a platform's own base code, the way its snippet does (`load: true`).
    /// `platform` is the registry key; `args_json` a JSON array handed to its loader.
    LoadBaseCode { platform: &'static str, args_json: String },
    /// Call a page global, e.g. `fbq(...)`, `gtag(...)`, `ttq.track(...)`: `function` is a dotted
    /// path from `window`; `args_json` is a JSON array of arguments. If the function is absent the
    /// shell skips it with a debug warning naming `platform`.
    Call { platform: &'static str, function: &'static str, args_json: String },
    /// One event (JSON object text, `payload::event`) for the endpoint at `url`: the outbox queues
    /// it as it is and sends it, batched, by fetch keepalive or sendBeacon. `event_id` and
    /// `time_ms` are the event's, so the outbox need not parse the text.
    Send { url: String, event: String, event_id: String, time_ms: u64 },
    /// Debug-mode console line (never contains raw personal data), without the `[tandem] ` the
    /// shell puts before it.
    Log(String),
}

/// The result of one API call.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The event_id of a tracked event; `None` when it was rejected.
    pub event_id: Option<String>,
    pub effects: Vec<Effect>,
    /// Reported to `onError` and `console.error`.
    pub errors: Vec<TagError>,
    /// Reported to the console in debug mode only (e.g. a platform skipped).
    pub warnings: Vec<String>,
}

use crate::core::attribution::{Attribution, STORAGE_KEY};
use crate::core::config::{self, Config};
use crate::core::consent::State;
use crate::core::cookies::{self, FbcDecision};
use crate::core::event::{self, EventName, Standard, ValidEvent};
use crate::core::ids;
use crate::core::json::{u64_text, W};
use crate::core::payload::Envelope;
use crate::core::sent::{self, SentLog};
use crate::core::text;
use crate::core::url;
use crate::platforms::SetupCtx;

crate::messages! {
    INIT_TAKES_OBJECT = "t0" "tandem.init expects a config object, got ";
    PAGE_VIEW_ALREADY_SENT = "t1" "PageView for this URL was already sent (event_id ";
    PAGE_VIEW_SAME_VIEW = "t2" "); a second one within a second is the same view and is not sent";
    KNOWN_OPTIONS = "t3" " (known: eventId)";
    OPTIONS_NOT_OBJECT = "t4" "track options must be an object like {eventId: \"…\"}, got ";
    IGNORED = "t5" "; ignored";
    SENT_FROM_THIS_PAGE = "t7" " was already sent from this page; not sent again";
    OPTIONS_EVENT_ID = "t8" "options.eventId ";
    ID_OF_ANOTHER_NAME = "t9" " was already used by an event of another name on this page; the event was not sent (give each event its own id)";
    SENT_FROM_THIS_BROWSER = "tA" " was already sent from this browser; not sent again";
    PURCHASE_ORDER_ID = "tB" "Purchase with order_id ";
    NO_ENDPOINT = "tC" "No endpoint could be resolved for this page; the event went to the pixels only";
}

impl Default for Outcome {
    /// Out of line: the derived one, inlined, wrote the four fields at each of about twenty
    /// places that start an outcome.
    #[inline(never)]
    fn default() -> Outcome {
        Outcome { event_id: None, effects: Vec::new(), errors: Vec::new(), warnings: Vec::new() }
    }
}

impl Outcome {
    /// Adds `later`'s effects, errors and warnings after this one's (its event_id is the
    /// caller's to choose).
    pub fn append(&mut self, later: &mut Outcome) {
        self.effects.append(&mut later.effects);
        self.errors.append(&mut later.errors);
        self.warnings.append(&mut later.warnings);
    }

    /// `append`, taking `event`'s event_id too: the outcome of a call whose event `event` is.
    fn append_event(&mut self, mut event: Outcome) {
        self.append(&mut event);
        self.event_id = event.event_id;
    }

    /// `{"event_id":…|null,"errors":[{code,message,input}],"warnings":[…]}` for the loader.
    /// Effects are not included: the shell carries them out.
    pub fn to_json(&self) -> String {
        // One writer for the whole reply: W places the commas, as in every other document.
        let mut w = W::new('{');
        match &self.event_id {
            Some(id) => w.s("event_id", id),
            None => w.key("event_id").raw("null"),
        };
        w.key("errors").open('[');
        for e in &self.errors {
            w.open('{').s("code", e.code).s("message", &e.message).s("input", &e.input).close('}');
        }
        w.close(']').key("warnings").open('[');
        for warning in &self.warnings {
            w.str(warning);
        }
        w.close(']');
        w.end('}')
    }
}

/// The tag for one page load (one instance per document).
pub struct Tag {
    config: Config,
    attribution: Attribution,
    /// What storage holds (or will hold once the shell runs our `Store`), to store only changes.
    stored_attribution: String,
    /// What this tab last read from storage: a stored value unlike both this and the above was
    /// written by another tab.
    read_attribution: String,
    /// Cookie domain (`Domain=`), `None` for host-only cookies.
    cookie_domain: Option<String>,
    subdomain_index: u64,
    /// The ad storage of earlier visits (`_fbp`, `_fbc`, `_ttp`, stored attribution) has been
    /// read: only once ad_storage is granted, as reading storage is access too (see
    /// `take_in_ad_storage`).
    ad_storage_read: bool,
    /// Until then, the URLs that changed a click ID or the last touch, and when, to observe again
    /// on what is stored (the first and the latest, `MAX_UNREAD_LANDINGS` in all).
    unread_landings: Vec<(String, u64)>,
    /// `cookie_domain` is final. Until then it is host-only and provisional: no cookie of ours
    /// has been written, so the probe has not run (see `settle_domain`).
    domain_settled: bool,
    fbp: String,
    fbc: Option<String>,
    client_id: String,
    /// Event ids sent by this instance: the same id twice is sent once.
    sent_event_ids: ids::SentIds,
    /// Purchase order ids and site-supplied event ids sent from this browser, across page loads.
    sent_log: SentLog,
    /// The last PageView (URL, ms, event_id): the same URL again within `PAGE_VIEW_DOUBLE_MS` is
    /// the same view reported twice (a router and a history hook both firing).
    last_page_view: Option<(String, u64, String)>,
    /// Consent and identity (`tag_consent.rs`).
    privacy: tag_consent::Privacy,
    /// Events `track_deferred` accepted whose effects are built later by `emit_deferred`.
    deferred: Vec<ValidEvent>,
    /// The sent log changed since its last `Store`.
    sent_log_dirty: bool,
    defer: bool,
    /// The platforms' setup waits for a consent state that allows sending (basic mode).
    setup_waiting: bool,
    /// TikTok's `_ttp` cookie, once an event found it: its pixel sets it once and keeps it, and
    /// reading `document.cookie` for it on every event was a large part of each event's work
    /// after `track()` (see `needs_cookies_to_emit`). Read again after any consent command.
    ttp: Option<String>,
}

/// See `Tag::unread_landings`.
const MAX_UNREAD_LANDINGS: usize = 32;

/// See `Tag::last_page_view`.
pub const PAGE_VIEW_DOUBLE_MS: u64 = 1000;

#[path = "tag_consent.rs"]
mod tag_consent;
pub use tag_consent::Pre;

fn random_u32(rng: &mut (impl Entropy + ?Sized)) -> u32 {
    let mut b = [0u8; 4];
    rng.fill(&mut b);
    u32::from_le_bytes(b)
}

/// The cookie domain (`None`: host-only) and the subdomainIndex for `page`'s host: the configured
/// domain, else the registrable one when `probe` (see `PageFacts::registrable_domain`). One
/// function for init and `Tag::settle_domain`, which each read the host and probed.
fn find_cookie_domain(page: &PageFacts, configured: Option<&String>, probe: bool) -> (Option<String>, u64) {
    let host = url::host(&page.url).unwrap_or_default();
    // The configured domain copied in its arm, not by cloning the Option first (a clone linked for this).
    let domain = match configured {
        Some(d) => Some(d.clone()),
        None => page.registrable_domain.filter(|_| probe).and_then(|find| find(&host)),
    }
    .filter(|d| !d.is_empty());
    let index = cookies::subdomain_index(domain.as_deref(), &host);
    (domain, index)
}

/// Puts `value` in `slot`, in the String already there: a fresh copy assigned over the old one
/// linked an allocation and the old one's drop at each field.
fn set_text(slot: &mut String, value: &str) {
    slot.clear();
    slot.push_str(value);
}

/// Params with nothing in them, for init's and `page`'s PageView and in place of the params a
/// consent wait takes and gives back: out of line, where `Params::default()` (or the
/// `mem::take` of one) wrote every field in line at each of the three.
#[inline(never)]
fn no_params() -> event::Params {
    event::Params::default()
}

/// A debug line; the shell prefixes it with `[tandem] ` on the console.
fn log(out: &mut Vec<Effect>, parts: &[&str]) {
    let mut line = String::new();
    for p in parts {
        line.push_str(p);
    }
    out.push(Effect::Log(line));
}

impl Tag {
    /// Reads the config and the page, sets identifier cookies, stores attribution, sets up the
    /// platforms and (unless `autoPageView: false`) tracks the first PageView. `None` only when
    /// the config is not an object at all.
    pub fn init(config: &Value, page: &PageFacts, rng: &mut (impl Entropy + ?Sized)) -> (Option<Tag>, Outcome) {
        Tag::init_with(config, page, rng, Pre::default())
    }

    /// Whether `init` takes `config` at all (an object, or nothing for the defaults). The shell asks
    /// first: what the page said before init is handed over only to an init that takes it.
    pub fn accepts(config: &Value) -> bool {
        matches!(config, Value::Object(_) | Value::Null)
    }

    /// `init` with what the page said before it: consent defaults, identity, GPC (`Pre`), all in
    /// force before init's first effect.
    pub fn init_with(config: &Value, page: &PageFacts, rng: &mut (impl Entropy + ?Sized), pre: Pre) -> (Option<Tag>, Outcome) {
        let mut out = Outcome::default();
        if !Tag::accepts(config) {
            let mut m = String::from(INIT_TAKES_OBJECT);
            m.push_str(config.kind());
            out.errors.push(TagError::new("invalid_config", m, config.to_json()));
            return (None, out);
        }
        let privacy = tag_consent::Privacy::new(pre, config, &mut out.errors);
        let config = config::parse(config, &page.url, &mut out.errors, &mut out.warnings);
        let state = privacy.state(page.now_ms);
        let ad_storage_read = state.ad_storage();
        // A cookie may be written now: find where cookies go before any identifier is made.
        let domain_settled = config.cookie_domain.is_some() || state.any_cookie();
        let (cookie_domain, subdomain_index) = find_cookie_domain(page, config.cookie_domain.as_ref(), domain_settled);
        let mut tag = Tag {
            config,
            attribution: Attribution::default(),
            stored_attribution: String::new(),
            read_attribution: String::new(),
            cookie_domain,
            subdomain_index,
            domain_settled,
            ad_storage_read,
            unread_landings: Vec::new(),
            fbp: String::new(),
            fbc: None,
            client_id: String::new(),
            sent_event_ids: ids::SentIds::default(),
            sent_log: SentLog::load(page.stored_sent.as_deref(), page.now_ms),
            last_page_view: None,
            privacy,
            deferred: Vec::new(),
            sent_log_dirty: false,
            defer: false,
            setup_waiting: false,
            ttp: None,
        };
        if ad_storage_read {
            tag.load_attribution(page.stored_attribution.as_deref());
        }

        // Identifiers: reuse what is there (ours or fbevents.js's), create only what is missing.
        match cookies::valid_fbp(cookies::get(tag.ad_cookies(page), cookies::FBP)) {
            Some(v) => set_text(&mut tag.fbp, v),
            None => {
                tag.fbp = cookies::new_fbp(subdomain_index, page.now_ms, random_u32(rng));
                let c = tag.cookie(cookies::FBP, &tag.fbp, cookies::FB_MAX_AGE_S, page.https);
                tag.gate_write(Some(c), page.now_ms, &mut out.effects);
            }
        }
        let (fbc_cookie, store) = tag.observe_landing(page);
        tag.gate_write(fbc_cookie, page.now_ms, &mut out.effects);
        // The cookie's client id only with analytics_storage granted (reading the cookie is storage
        // access too), otherwise a fresh one for this page; `state` is still the one in force.
        // Not read without it: an if, where Option::filter linked a copy for it.
        let cid_cookie = if state.analytics_storage() { cookies::get(&page.cookie_header, cookies::CLIENT_ID) } else { None };
        match cookies::valid_client_id(cid_cookie) {
            Some(v) => set_text(&mut tag.client_id, v),
            None => {
                let mut b = [0u8; 16];
                rng.fill(&mut b);
                tag.client_id = ids::base64url(&b);
                let c = tag.cookie(cookies::CLIENT_ID, &tag.client_id, cookies::CLIENT_ID_MAX_AGE_S, page.https);
                tag.gate_write(Some(c), page.now_ms, &mut out.effects);
            }
        }
        tag.gate_write(store, page.now_ms, &mut out.effects);

        let consent = tag.setup_privacy(page.now_ms);
        // Basic mode loads and sets up no pixel without ad consent (`consent_changed` does once it
        // allows), but a site's own gtag or ttq already on the page still hears the denial.
        tag.setup_waiting = !consent.may_send();
        if tag.setup_waiting {
            for d in &tag.config.destinations {
                d.consent(&consent, true, &mut out.effects);
            }
        } else {
            tag.set_up(&consent, &page.nonce, &mut out.effects);
        }
        if tag.config.auto_page_view {
            // Its errors are none (a fresh random id cannot be a double): all of it goes into init's outcome.
            tag.page_view(page, rng, &mut out);
        }
        (Some(tag), out)
    }

    /// Each destination's setup (base code, consent, init or config, identity), once.
    fn set_up(&self, consent: &State, nonce: &str, out: &mut Vec<Effect>) {
        let ctx = SetupCtx { nonce, consent, identity: self.privacy.identity(consent) };
        for d in &self.config.destinations {
            let mut setup = Vec::new();
            d.setup(&ctx, &mut setup);
            if self.config.debug {
                log(out, &[d.key(), ": set up with ", u64_text(setup.len() as u64).as_str(), " call(s)"]);
            }
            out.append(&mut setup);
        }
    }

    pub fn debug(&self) -> bool {
        self.config.debug
    }

    /// The client id Tandem uses (the `_tandem_cid` cookie's value).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The page's cookies as the ad cookies may be read: none while ad_storage is not granted.
    fn ad_cookies<'a>(&self, page: &'a PageFacts) -> &'a str {
        if self.ad_storage_read {
            &page.cookie_header
        } else {
            ""
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age_s: u64, https: bool) -> Effect {
        Effect::SetCookie(cookies::render_set_cookie(name, value, max_age_s, self.cookie_domain.as_deref(), https))
    }

    /// Click IDs, UTMs and `_fbc` from the current URL: the `SetCookie(_fbc)` and `Store`
    /// effects, each when something changed.
    fn observe_landing(&mut self, page: &PageFacts) -> (Option<Effect>, Option<Effect>) {
        let mut cookie = None;
        let params = url::query_params(&page.url);
        // A match, not Option::or, linked for this line.
        // Borrowed, not copied: decide_fbc copies what it keeps.
        let existing = match cookies::get(self.ad_cookies(page), cookies::FBC) {
            Some(v) => Some(v),
            None => self.fbc.as_deref(),
        };
        match cookies::decide_fbc(existing, url::param(&params, "fbclid"), self.subdomain_index, page.now_ms) {
            FbcDecision::Set(v) => {
                cookie = Some(self.cookie(cookies::FBC, &v, cookies::FB_MAX_AGE_S, page.https));
                self.fbc = Some(v);
            }
            FbcDecision::Keep(v) => self.fbc = v,
        }
        if let Some(stored) = page.stored_attribution.as_deref().filter(|_| self.ad_storage_read) {
            // Another tab stored attribution since this tab last read or wrote it (a click the
            // visitor made there): this URL is observed on top of it, not over it.
            // Compared as String == str, the form the rest of the tag links: `&str != String` linked one of its own.
            if !(self.read_attribution == *stored || self.stored_attribution == *stored) {
                self.load_attribution(Some(stored));
            } else {
                set_text(&mut self.read_attribution, stored);
            }
        }
        self.attribution.expire(page.now_ms, self.config.attribution_window_days);
        if self.attribution.observe(&params, page.now_ms) && !self.ad_storage_read {
            // Full: the first (the first touch) and the latest are kept.
            if self.unread_landings.len() == MAX_UNREAD_LANDINGS {
                // The second left out of a copy made by reference: Vec::remove linked code of its
                // own for this list alone.
                let old = std::mem::take(&mut self.unread_landings);
                for (i, (landing, at)) in old.iter().enumerate() {
                    if i != 1 {
                        self.unread_landings.push((landing.clone(), *at));
                    }
                }
            }
            self.unread_landings.push((page.url.clone(), page.now_ms));
        }
        (cookie, self.attribution_store())
    }

    /// Starts from the attribution `stored` (what storage holds now): at init, when ad_storage is
    /// granted, and when another tab stored its own.
    fn load_attribution(&mut self, stored: Option<&str>) {
        self.attribution = Attribution::load(stored);
        set_text(&mut self.stored_attribution, stored.unwrap_or_default());
        set_text(&mut self.read_attribution, stored.unwrap_or_default());
    }

    /// The attribution's `Store`, when it differs from what storage holds (or will hold).
    fn attribution_store(&mut self) -> Option<Effect> {
        let json = self.attribution.to_json();
        if json == self.stored_attribution {
            return None;
        }
        set_text(&mut self.stored_attribution, &json);
        Some(Effect::Store { key: STORAGE_KEY, value: json })
    }

    /// A page view (SPA navigations call this): re-reads the URL's click IDs and UTMs, then
    /// tracks PageView.
    pub fn page(&mut self, page: &PageFacts, rng: &mut (impl Entropy + ?Sized)) -> Outcome {
        // The PageView's own outcome, the repeated one's too.
        let mut out = Outcome::default();
        if self.repeated_page_view(page, &mut out) {
            return out;
        }
        // A consent wait may have ended without its timer having run yet: its change comes first.
        let mut caught_up = self.consent_changed(page);
        let (cookie, store) = self.observe_landing(page);
        // In its own outcome: the writes below are gated after it (as the sent log's it may keep
        // back) but go before its effects.
        self.page_view(page, rng, &mut out);
        self.gate_write(cookie, page.now_ms, &mut caught_up.effects);
        self.gate_write(store, page.now_ms, &mut caught_up.effects);
        caught_up.append_event(out);
        caught_up
    }

    /// The answer to a PageView for the URL of the last one, within `PAGE_VIEW_DOUBLE_MS`: its
    /// event_id, and nothing sent. A router, the automatic PageView and a ported
    /// `track('PageView')` all report the same view. True when it is one, with the warning and
    /// the event_id in `out` (`None` there before), as `track_valid` fills it.
    fn repeated_page_view(&self, page: &PageFacts, out: &mut Outcome) -> bool {
        let Some((url, at, id)) = &self.last_page_view else { return false };
        if *url != page.url || page.now_ms.saturating_sub(*at) >= PAGE_VIEW_DOUBLE_MS {
            return false;
        }
        let mut w = String::from(PAGE_VIEW_ALREADY_SENT);
        w.push_str(id);
        w.push_str(PAGE_VIEW_SAME_VIEW);
        out.event_id = Some(id.clone());
        out.warnings.push(w);
        true
    }

    /// The PageView of init and `page`, remembered for `repeated_page_view`: one function for
    /// both, where each built the empty params and the call in line.
    fn page_view(&mut self, page: &PageFacts, rng: &mut (impl Entropy + ?Sized), out: &mut Outcome) {
        self.track_valid(EventName::Standard(Standard::PageView), no_params(), None, page, rng, out);
        self.remember_page_view(true, page, &out.event_id);
    }

    /// What `repeated_page_view` compares the next PageView with, when the event is a PageView
    /// (`page_view`): told, not tested by `track`, whose test after `track_valid` had the compiler
    /// write the call to `track_valid` twice, once for each answer.
    fn remember_page_view(&mut self, page_view: bool, page: &PageFacts, event_id: &Option<String>) {
        if !page_view {
            return;
        }
        // The id copied inside the map, not the Option cloned first, a clone linked for this line.
        self.last_page_view = event_id.as_ref().map(|id| (page.url.clone(), page.now_ms, id.clone()));
    }

    /// `tandem.track(name, params, options)`.
    pub fn track(&mut self, name: &Value, params: &Value, options: &Value, page: &PageFacts, rng: &mut (impl Entropy + ?Sized)) -> Outcome {
        // As in `page`: a wait that ended before its timer ran releases what it held first (when
        // deferred, into `deferred` ahead of this event), and the platforms hear of it first.
        let mut out = self.consent_changed(page);
        // `eventID` (fbq's spelling) and `event_id` (ttq's) are taken too, and a bare string or
        // number as the id itself: a site's id sent as a random one instead would never match its
        // server copy.
        let mut id_option = None;
        match options {
            Value::Null => {}
            Value::String(_) | Value::Number(_) => id_option = Some(options),
            Value::Object(members) => {
                for (k, v) in members {
                    if !text::listed(ids::EVENT_ID_OPTIONS, " ", k) {
                        out.warnings.push(crate::core::error::unknown_key("option", k, KNOWN_OPTIONS));
                    } else if !matches!(v, Value::Null) {
                        id_option = Some(v);
                    }
                }
            }
            other => {
                let mut m = String::from(OPTIONS_NOT_OBJECT);
                m.push_str(other.kind());
                m.push_str(IGNORED);
                out.errors.push(TagError::new("invalid_options", m, other.to_json()));
            }
        }
        let mut event_id = None;
        if let Some(v) = id_option {
            match ids::validate_event_id(v) {
                Ok(id) => event_id = Some(id),
                // A random id instead would break deduplication with the site's server, which
                // already uses its own id: the event is refused.
                Err(e) => {
                    out.errors.push(e);
                    return out;
                }
            }
        }
        let Some(name) = event::validate_name(name, &mut out.errors, &mut out.warnings) else { return out };
        let mut valid = no_params();
        if !event::fill_params(&name, params, &mut valid, &mut out.errors, &mut out.warnings) {
            return out;
        }
        // A PageView with a site's id is always sent (its id is not the earlier view's), and is
        // then the view a router's page() right after repeats.
        let page_view = matches!(name, EventName::Standard(Standard::PageView));
        if page_view && event_id.is_none() && self.repeated_page_view(page, &mut out) {
            return out;
        }
        self.track_valid(name, valid, event_id, page, rng, &mut out);
        self.remember_page_view(page_view, page, &out.event_id);
        out
    }

    /// `track`, with the destinations' effects left for `emit_deferred`: the decision (event_id,
    /// doubles, consent, errors) is made now, so the call returns what `track` returns, while the
    /// mapping, the platform calls and the endpoint body can wait for the end of the task. The
    /// shell emits before any other call, so effects keep the order of the calls.
    pub fn track_deferred(&mut self, name: &Value, params: &Value, options: &Value, page: &PageFacts, rng: &mut (impl Entropy + ?Sized)) -> Outcome {
        self.defer = true;
        let out = self.track(name, params, options, page, rng);
        self.defer = false;
        out
    }

    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// The effects of the events `track_deferred` accepted, in order; `page` gives the cookies and
    /// consent of now (the same task), each event keeps its own URL, referrer and time.
    pub fn emit_deferred(&mut self, page: &PageFacts) -> Outcome {
        let mut out = Outcome::default();
        self.find_ttp(page);
        for ev in &std::mem::take(&mut self.deferred) {
            self.emit(ev, page, &mut out);
        }
        self.store_sent_log(page, &mut out);
        out
    }

    /// Stages 2 and 3 for a validated event: id, deduplication, destinations, endpoint. Its
    /// effects, errors and warnings go after `out`'s, and its event_id into `out` (`None` there
    /// before): filled in place, where a returned Outcome was moved and appended at each caller.
    fn track_valid(&mut self, name: EventName, mut params: event::Params, event_id: Option<String>, page: &PageFacts, rng: &mut (impl Entropy + ?Sized), out: &mut Outcome) {
        let site_event_id = event_id.is_some();
        // The site's id, else a Purchase's from its order, else a random one: one match, where
        // or_else, filter, map and unwrap_or_else each linked Option plumbing of their own.
        let event_id = match (event_id, params.order_id.as_deref()) {
            (Some(id), _) => id,
            (None, Some(order)) if matches!(name, EventName::Standard(Standard::Purchase)) => ids::order_event_id(order),
            (None, _) => {
                let mut b = [0u8; 16];
                rng.fill(&mut b);
                ids::uuid_v4(b)
            }
        };
        // Consent: held while a wait runs, dropped in basic mode without ad consent.
        if self.consent_gate(&name, &mut params, &event_id, site_event_id, page, out) {
            return;
        }
        self.send_valid(name, params, event_id, site_event_id, page, out)
    }

    /// Deduplication, destinations, endpoint, for an event with its id (also a held event
    /// released by a consent update, with the page facts of when it was tracked), into `out` as
    /// `track_valid`'s.
    fn send_valid(&mut self, name: EventName, params: event::Params, event_id: String, site_event_id: bool, page: &PageFacts, out: &mut Outcome) {
        // One event per event_id: the endpoint and the collector keep one event per id. The same
        // id under another event name is a site's mistake that would lose that event silently,
        // so it is an error (the id and its name are both recorded, as `"<id> <name>"`: an id has
        // no space in it; hashed as that text is, without writing it).
        let id_hash = ids::fnv64(&event_id);
        let named = ids::fnv64_more(ids::fnv64_more(id_hash, " "), name.as_str());
        if self.sent_event_ids.contains(id_hash) {
            if self.sent_event_ids.contains(named) {
                let mut w = String::from(EVENT_ID_PREFIX);
                w.push_str(&event_id);
                w.push_str(SENT_FROM_THIS_PAGE);
                out.warnings.push(w);
            } else {
                let mut m = String::from(OPTIONS_EVENT_ID);
                m.push_str(&event_id);
                m.push_str(ID_OF_ANOTHER_NAME);
                out.errors.push(TagError::new("duplicate_event_id", m, name.as_str()));
            }
            out.event_id = Some(event_id);
            return;
        }
        // A site-supplied id names one logical conversion: remembered across page loads, so a
        // reloaded thank-you page answers with the same id and sends nothing.
        let site_key = site_event_id.then(|| sent::key("e:", &event_id));
        if site_key.as_deref().is_some_and(|k| self.sent_log.contains(k)) {
            let mut w = String::from(EVENT_ID_PREFIX);
            w.push_str(&event_id);
            w.push_str(SENT_FROM_THIS_BROWSER);
            out.warnings.push(w);
            out.event_id = Some(event_id);
            return;
        }
        // The last check: the order id is recorded by the same lookup that finds a double.
        if let (EventName::Standard(Standard::Purchase), Some(order)) = (&name, &params.order_id) {
            if !self.sent_log.insert(sent::key("o:", order), page.now_ms) {
                let mut w = String::from(PURCHASE_ORDER_ID);
                w.push_str(order);
                w.push_str(SENT_FROM_THIS_BROWSER);
                out.warnings.push(w);
                return;
            }
            self.sent_log_dirty = true;
        }
        let ev = ValidEvent { name, params, event_id: event_id.clone(), time_ms: page.now_ms, url: page.url.clone(), referrer: page.referrer.clone() };
        // Recorded before the effects are built, so a double in the same task is already one.
        self.sent_event_ids.insert(id_hash);
        self.sent_event_ids.insert(named);
        if let Some(key) = site_key {
            self.sent_log_dirty |= self.sent_log.insert(key, page.now_ms);
        }
        if self.defer {
            self.deferred.push(ev);
        } else {
            self.find_ttp(page);
            self.emit(&ev, page, out);
            self.store_sent_log(page, out);
        }
        out.event_id = Some(event_id);
    }

    /// Whether `emit_deferred` needs `PageFacts::stored_sent`: only to write the sent log back.
    pub fn needs_sent_log(&self) -> bool {
        self.sent_log_dirty
    }

    /// Whether `emit_deferred` needs `PageFacts::cookie_header`: only to look for `_ttp`, which
    /// is not read while ad_storage is denied.
    pub fn needs_cookies_to_emit(&self) -> bool {
        self.ttp.is_none() && self.ad_storage_read
    }

    /// Looks for `_ttp` in `page`'s cookies until it is found.
    fn find_ttp(&mut self, page: &PageFacts) {
        if self.ttp.is_none() {
            if let Some(v) = cookies::get(self.ad_cookies(page), "_ttp") {
                if v.len() <= 128 && cookies::is_cookie_value(v) {
                    self.ttp = Some(v.to_string());
                }
            }
        }
    }

    /// Stage 3 for an accepted event: each destination's effects, then the endpoint's.
    fn emit(&self, ev: &ValidEvent, page: &PageFacts, out: &mut Outcome) {
        let debug = self.config.debug;
        for d in &self.config.destinations {
            let mut effects = Vec::new();
            d.event(ev, &mut effects);
            if debug {
                if effects.is_empty() {
                    log(&mut out.effects, &[d.key(), ": ", ev.name.as_str(), " not sent to this platform (see its sendPageView option) event_id=", &ev.event_id]);
                }
                for e in &effects {
                    if let Effect::Call { function, args_json, .. } = e {
                        log(&mut out.effects, &[d.key(), " ← ", function, "(", text::unwrap(args_json, b'[', b']'), ") event_id=", &ev.event_id]);
                    }
                }
            }
            out.effects.append(&mut effects);
        }
        match &self.config.endpoint {
            Some(endpoint) => {
                // Identifiers, hashed identity and the consent state: see `tag_consent::endpoint_event`.
                let event = self.endpoint_event(
                    &Envelope { event: ev, fbp: Some(&self.fbp), fbc: self.fbc.as_deref(), ttp: self.ttp.as_deref(), attribution: &self.attribution, client_id: &self.client_id },
                    page.now_ms,
                );
                if debug {
                    log(&mut out.effects, &["endpoint ← ", endpoint, " {\"events\":[", &event, "]}"]);
                }
                out.effects.push(Effect::Send { url: endpoint.clone(), event, event_id: ev.event_id.clone(), time_ms: ev.time_ms });
            }
            None => out.warnings.push(String::from(NO_ENDPOINT)),
        }
    }

    /// Writes the sent log back, merged with what `page` read of it (another tab may have
    /// written since this one read it: see `needs_sent_log`).
    fn store_sent_log(&mut self, page: &PageFacts, out: &mut Outcome) {
        if std::mem::take(&mut self.sent_log_dirty) {
            if let Some(stored) = &page.stored_sent {
                self.sent_log.merge(stored, page.now_ms);
            }
            let now_ms = page.now_ms;
            let store = Effect::Store { key: sent::STORAGE_KEY, value: self.sent_log.to_stored() };
            self.gate_write(Some(store), now_ms, &mut out.effects);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::parse;

    /// Deterministic entropy: 0, 1, 2, … byte by byte.
    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    const NOW: u64 = 1_700_000_000_000;
    const ALL: &str = r#"{"meta":{"pixelId":"123456789012345","load":true},"google":{"tagId":"G-ABC123","ads":{"id":"AW-9","labels":{"Purchase":"buy"}},"load":true},"tiktok":{"pixelId":"CABCDEFGHIJ1234567890","load":true}}"#;

    fn page(url: &str, cookies: &str) -> PageFacts {
        PageFacts {
            url: url.into(),
            referrer: "https://www.google.com/".into(),
            cookie_header: cookies.into(),
            stored_attribution: None,
            stored_sent: None,
            registrable_domain: Some(|_| Some("shop.example".into())),
            https: true,
            now_ms: NOW,
            nonce: "n0".into(),
        }
    }

    /// One line per effect, compact, so expectations read like the shell's log.
    pub(super) fn lines(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                Effect::SetCookie(c) => String::from("cookie ") + c,
                Effect::Store { key, value } => String::from("store ") + key + " " + value,
                Effect::LoadBaseCode { platform, args_json } => String::from("load ") + platform + args_json,
                Effect::Call { function, args_json, .. } => String::from(*function) + args_json,
                Effect::Send { url, .. } => String::from("send ") + url,
                Effect::Log(l) => String::from("log ") + l,
            })
            .collect()
    }

    fn init(config: &str, p: &PageFacts) -> (Tag, Outcome) {
        let (tag, out) = Tag::init(&parse(config).unwrap(), p, &mut Counter(0));
        (tag.expect("tag"), out)
    }

    fn sent_body(out: &Outcome) -> Value {
        let bodies: Vec<String> = out.effects.iter().filter_map(|e| if let Effect::Send { event, .. } = e { Some(crate::core::payload::tests::wrap(event)) } else { None }).collect();
        assert_eq!(bodies.len(), 1, "exactly one Send");
        crate::core::payload::tests::check_against_schema(&bodies[0]);
        parse(&bodies[0]).unwrap()
    }

    /// How many endpoint events an outcome sends.
    pub(super) fn sends(o: &Outcome) -> usize {
        o.effects.iter().filter(|e| matches!(e, Effect::Send { .. })).count()
    }

    fn stored_sent_log(o: &Outcome) -> Option<String> {
        o.effects.iter().rev().find_map(|e| match e {
            Effect::Store { key, value } if *key == sent::STORAGE_KEY => Some(value.clone()),
            _ => None,
        })
    }

    fn purchase(tag: &mut Tag, p: &PageFacts, order_json: &str, seed: u8) -> Outcome {
        let params = parse(&format!(r#"{{"value":5,"currency":"EUR","order_id":{order_json}}}"#)).unwrap();
        tag.track(&parse("\"Purchase\"").unwrap(), &params, &Value::Null, p, &mut Counter(seed))
    }

    #[test]
    fn two_tabs_do_not_erase_each_others_orders() {
        let p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tab_a, _) = init(ALL, &p);
        let (mut tab_b, _) = init(ALL, &p);
        let a = purchase(&mut tab_a, &p, "\"A-1\"", 1);
        assert_eq!(sends(&a), 1);
        let mut later = p.clone();
        later.stored_sent = stored_sent_log(&a);
        let b = purchase(&mut tab_b, &later, "\"B-2\"", 2);
        assert_eq!(sends(&b), 1);
        let mut reload = p.clone();
        reload.stored_sent = stored_sent_log(&b);
        reload.now_ms += 60_000;
        let (mut again, _) = init(ALL, &reload);
        assert_eq!(sends(&purchase(&mut again, &reload, "\"A-1\"", 3)), 0, "order A-1 sent a second time; storage held {:?}", reload.stored_sent);
        assert_eq!(sends(&purchase(&mut again, &reload, "\"B-2\"", 4)), 0);
    }

    #[test]
    fn a_site_event_id_reused_for_another_event_name_is_an_error_not_a_silent_drop() {
        // The endpoint keeps one event per event_id, so the second event cannot be sent under it;
        // before, it was dropped with a debug-only warning.
        let p = page("https://www.shop.example/checkout", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, _) = init(ALL, &p);
        let opts = parse(r#"{"eventId":"ord-1001"}"#).unwrap();
        assert_eq!(sends(&tag.track(&parse("\"InitiateCheckout\"").unwrap(), &Value::Null, &opts, &p, &mut Counter(1))), 1);
        let buy = tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":5,"currency":"EUR","order_id":"1001"}"#).unwrap(), &opts, &p, &mut Counter(2));
        assert_eq!(sends(&buy), 0);
        assert_eq!(buy.errors.iter().map(|e| e.code).collect::<Vec<_>>(), ["duplicate_event_id"]);
        assert!(buy.errors[0].message.contains("ord-1001") && buy.errors[0].input == "Purchase", "{:?}", buy.errors);
        let twice = tag.track(&parse("\"InitiateCheckout\"").unwrap(), &Value::Null, &opts, &p, &mut Counter(3));
        assert_eq!((sends(&twice), twice.errors.len(), twice.event_id.as_deref()), (0, 0, Some("ord-1001")), "the same event again is a double, not an error");
    }

    #[test]
    fn an_order_id_with_surrounding_whitespace_is_the_same_order() {
        let mut p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, _) = init(ALL, &p);
        let first = purchase(&mut tag, &p, r#""\n      1001\n    ""#, 1);
        assert_eq!(sends(&first), 1, "{:?}", first.errors);
        assert!(first.errors.is_empty());
        assert!(sent_body(&first).to_json().contains(r#""order_id":"1001""#));
        p.stored_sent = stored_sent_log(&first);
        p.now_ms += 60_000;
        let (mut reload, _) = init(ALL, &p);
        assert_eq!(sends(&purchase(&mut reload, &p, "\"1001\"", 2)), 0, "the reloaded thank-you page sent its Purchase again");
        let inner = purchase(&mut reload, &p, "\"10\\n01\"", 3);
        assert_eq!(inner.errors.len(), 1);
        assert!(inner.errors[0].message.contains("control characters"), "{:?}", inner.errors);
    }

    #[test]
    fn a_purchase_without_an_event_id_takes_one_from_its_order() {
        let p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, _) = init(ALL, &p);
        let first = purchase(&mut tag, &p, "\"A-1\"", 1);
        assert_eq!(first.event_id.as_deref(), Some("o-A-1"));
        assert!(lines(&first.effects).iter().any(|l| l.contains(r#""eventID":"o-A-1""#)), "{:?}", lines(&first.effects));
        // The sent log was not kept (storage denied or cleared): the same id again, which every
        // destination deduplicates.
        let (mut reload, _) = init(ALL, &p);
        assert_eq!(purchase(&mut reload, &p, "\"A-1\"", 9).event_id.as_deref(), Some("o-A-1"));
        assert_eq!(purchase(&mut reload, &p, "\"a b\"", 10).event_id, purchase(&mut tag, &p, "\"a b\"", 11).event_id);
        let lead = tag.track(&parse("\"Lead\"").unwrap(), &parse(r#"{"order_id":"A-2"}"#).unwrap(), &Value::Null, &p, &mut Counter(12));
        assert_ne!(lead.event_id.as_deref(), Some("o-A-2"), "only a Purchase is named by its order");
    }

    #[test]
    fn an_event_id_option_in_fbq_or_ttq_spelling_or_bare_is_the_events_id() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, _) = init(ALL, &p);
        for (n, options) in [r#""ord-X-1""#, r#"{"eventID":"ord-X-2"}"#, r#"{"event_id":"ord-X-3"}"#, "1004"].iter().enumerate() {
            let out = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(options).unwrap(), &p, &mut Counter(n as u8 * 40));
            let want = ["ord-X-1", "ord-X-2", "ord-X-3", "1004"][n];
            assert_eq!((out.event_id.as_deref(), sends(&out)), (Some(want), 1), "{options}: {:?} {:?}", out.errors, out.warnings);
            assert!(out.errors.is_empty() && out.warnings.is_empty(), "{options}: {:?} {:?}", out.errors, out.warnings);
        }
        let bad = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(r#""no spaces allowed""#).unwrap(), &p, &mut Counter(200));
        assert_eq!((bad.event_id, bad.errors.len()), (None, 1), "a bad id is refused, not replaced by a random one");
    }

    #[test]
    fn track_page_view_after_the_automatic_one_is_the_same_view() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, first) = init(ALL, &p);
        assert_eq!(sends(&first), 1);
        let again = tag.track(&parse("\"PageView\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(1));
        assert_eq!((sends(&again), again.event_id), (0, first.event_id.clone()));
        let mut next = page("https://www.shop.example/cart", "_fbp=fb.1.1.2; _tandem_cid=abc");
        next.now_ms += 5;
        let tracked = tag.track(&parse("\"PageView\"").unwrap(), &Value::Null, &Value::Null, &next, &mut Counter(2));
        assert_eq!(sends(&tracked), 1);
        let routed = tag.page(&next, &mut Counter(3));
        assert_eq!((sends(&routed), routed.event_id), (0, tracked.event_id), "the router's page() after a tracked PageView");
    }

    /// The loader's way of sending the automatic PageView under the id a stash gave it: init
    /// without one, then a tracked PageView with that id, which a router's page() then repeats.
    #[test]
    fn a_page_view_with_a_site_id_is_sent_even_right_after_another_and_is_the_view_page_repeats() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, first) = init(r#"{"autoPageView":false}"#, &p);
        assert_eq!(sends(&first), 0);
        let stashed = tag.track(&parse("\"PageView\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"pv-stash-1"}"#).unwrap(), &p, &mut Counter(1));
        assert_eq!((sends(&stashed), stashed.event_id.as_deref()), (1, Some("pv-stash-1")));
        let routed = tag.page(&p, &mut Counter(2));
        assert_eq!((sends(&routed), routed.event_id.as_deref()), (0, Some("pv-stash-1")), "the router's page() right after");
        let (mut tag, first) = init(ALL, &p);
        let own = tag.track(&parse("\"PageView\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"pv-2"}"#).unwrap(), &p, &mut Counter(3));
        assert_eq!(sends(&own), 1, "a site's id is its own view, not the automatic one's double");
        assert_ne!(own.event_id, first.event_id);
    }

    #[test]
    fn an_http_endpoint_on_an_https_page_is_refused() {
        let p = page("https://www.shop.example/", "");
        let (tag, out) = init(r#"{"endpoint":"http://collect.shop.example/c","autoPageView":false}"#, &p);
        assert!(out.errors.iter().any(|e| e.code == "invalid_config" && e.message.contains("config.endpoint must be https")), "{:?}", out.errors);
        assert_eq!(tag.config.endpoint.as_deref(), Some("https://www.shop.example/collect"));
        let plain = page("http://www.shop.example/", "");
        let (tag, out) = init(r#"{"endpoint":"http://collect.shop.example/c","autoPageView":false}"#, &plain);
        assert!(out.errors.is_empty());
        assert_eq!(tag.config.endpoint.as_deref(), Some("http://collect.shop.example/c"));
    }

    #[test]
    fn init_on_a_fresh_landing() {
        let p = page("https://www.shop.example/?fbclid=IwAR1&gclid=G1&utm_source=fb", "");
        let (tag, out) = init(ALL, &p);
        assert!(out.errors.is_empty() && out.warnings.is_empty(), "{out:?}");
        let l = lines(&out.effects);
        let pv = out.event_id.clone().unwrap();
        let store = r#"store tandem:attribution {"click_ids":{"gclid":{"value":"G1","ts":1700000000000},"fbclid":{"value":"IwAR1","ts":1700000000000}},"utm":{"first":{"source":"fb","ts":1700000000000},"last":{"source":"fb","ts":1700000000000}}}"#;
        let expected = vec![
            String::from("cookie _fbp=fb.1.1700000000000.50462976; Max-Age=7776000; Path=/; Domain=shop.example; SameSite=Lax; Secure"),
            String::from("cookie _fbc=fb.1.1700000000000.IwAR1; Max-Age=7776000; Path=/; Domain=shop.example; SameSite=Lax; Secure"),
            String::from("cookie _tandem_cid=BAUGBwgJCgsMDQ4PEBESEw; Max-Age=34560000; Path=/; Domain=shop.example; SameSite=Lax; Secure"),
            String::from(store),
            String::from(r#"load meta["n0"]"#),
            String::from(r#"fbq["init","123456789012345"]"#),
            String::from(r#"load google["G-ABC123","n0"]"#),
            String::from(r#"gtag["config","G-ABC123",{"send_page_view":false}]"#),
            String::from(r#"gtag["config","AW-9"]"#),
            String::from(r#"load tiktok["CABCDEFGHIJ1234567890","n0"]"#),
            String::from(r#"fbq["track","PageView",{},{"eventID":""#) + &pv + "\"}]",
            String::from(r#"gtag["event","page_view",{"event_id":""#) + &pv + r#"","send_to":"G-ABC123"}]"#,
            String::from("ttq.page[]"),
            String::from("send https://www.shop.example/collect"),
        ];
        assert_eq!(l, expected);
        assert_eq!(pv, "14151617-1819-4a1b-9c1d-1e1f20212223");
        let body = sent_body(&out);
        let ev = match body.get("events") {
            Some(Value::Array(e)) => e[0].clone(),
            _ => panic!(),
        };
        assert_eq!(ev.get("user_data").unwrap().to_json(), r#"{"fbp":"fb.1.1700000000000.50462976","fbc":"fb.1.1700000000000.IwAR1"}"#);
        assert_eq!(ev.get("client_id").and_then(Value::as_str), Some(tag.client_id()));
        assert_eq!(ev.get("event_name").and_then(Value::as_str), Some("PageView"));
        assert!(!tag.debug());
    }

    #[test]
    fn a_click_id_over_500_bytes_is_ignored_not_cut() {
        // Meta's own code ignores an fbclid over 500 characters; cut short it names no click.
        let long = "A".repeat(600);
        let p = page(&(String::from("https://www.shop.example/?gclid=G1&fbclid=") + &long + "&gbraid=" + &long), "");
        let (tag, out) = init(ALL, &p);
        assert!(!lines(&out.effects).iter().any(|c| c.starts_with("cookie _fbc=")));
        assert_eq!(tag.fbc, None);
        let stored = tag.attribution.to_json();
        assert!(stored.contains(r#""gclid":{"value":"G1""#) && !stored.contains("fbclid") && !stored.contains("gbraid"), "{stored}");
    }

    #[test]
    fn existing_identifiers_are_reused() {
        let stored = r#"{"click_ids":{"fbclid":{"value":"IwAR1","ts":1699000000000}},"utm":{}}"#;
        let mut p = page(
            "https://www.shop.example/?fbclid=IwAR1",
            "_fbp=fb.2.1600000000000.999.AQ; _fbc=fb.2.1690000000000.IwAR1; _tandem_cid=abc",
        );
        p.stored_attribution = Some(stored.into());
        let (tag, out) = init(r#"{"meta":{"pixelId":"123456789012345"},"autoPageView":false}"#, &p);
        assert_eq!(lines(&out.effects), [r#"fbq["init","123456789012345"]"#]);
        assert_eq!((tag.fbp.as_str(), tag.fbc.as_deref(), tag.client_id()), ("fb.2.1600000000000.999.AQ", Some("fb.2.1690000000000.IwAR1"), "abc"));
        assert_eq!(out.event_id, None);
    }

    #[test]
    fn a_new_fbclid_gives_a_new_fbc() {
        let mut p = page("https://www.shop.example/?fbclid=NEW", "_fbp=fb.1.1600000000000.999; _fbc=fb.1.1690000000000.OLD; _tandem_cid=abc");
        p.registrable_domain = None;
        let (tag, out) = init(r#"{"autoPageView":false}"#, &p);
        // Host-only cookie on www.shop.example: subdomainIndex 2, no Domain attribute.
        assert_eq!(lines(&out.effects)[0], "cookie _fbc=fb.2.1700000000000.NEW; Max-Age=7776000; Path=/; SameSite=Lax; Secure");
        assert_eq!(tag.fbc.as_deref(), Some("fb.2.1700000000000.NEW"));
        // A configured cookieDomain wins over the probed one.
        let mut p = page("http://www.shop.example/", "");
        p.https = false;
        p.registrable_domain = Some(|_| Some("other.example".into()));
        let (_, out) = init(r#"{"cookieDomain":"www.shop.example","autoPageView":false}"#, &p);
        assert_eq!(lines(&out.effects)[0], "cookie _fbp=fb.2.1700000000000.50462976; Max-Age=7776000; Path=/; Domain=www.shop.example; SameSite=Lax");
        // localhost: index 0, host-only.
        let mut p = page("http://localhost:3000/", "");
        p.registrable_domain = None;
        let (_, out) = init(r#"{"autoPageView":false}"#, &p);
        assert!(lines(&out.effects)[0].starts_with("cookie _fbp=fb.0.1700000000000."), "{:?}", out.effects);
    }

    #[test]
    fn track_sends_one_event_id_everywhere() {
        let p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc; _ttp=tt-1");
        let (mut tag, _) = init(ALL, &p);
        let out = tag.track(
            &parse("\"Purchase\"").unwrap(),
            &parse(r#"{"value":"59.90","currency":"EUR","order_id":"A-1"}"#).unwrap(),
            &parse(r#"{"eventId":"ord-A-1"}"#).unwrap(),
            &p,
            &mut Counter(0),
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.event_id.as_deref(), Some("ord-A-1"));
        assert_eq!(lines(&out.effects), [
            r#"fbq["track","Purchase",{"value":59.90,"currency":"EUR"},{"eventID":"ord-A-1"}]"#,
            r#"gtag["event","purchase",{"value":59.90,"currency":"EUR","transaction_id":"A-1","event_id":"ord-A-1","send_to":"G-ABC123"}]"#,
            r#"gtag["event","conversion",{"send_to":"AW-9/buy","value":59.90,"currency":"EUR","transaction_id":"A-1"}]"#,
            r#"ttq.track["Purchase",{"value":59.90,"currency":"EUR","order_id":"A-1"},{"event_id":"ord-A-1"}]"#,
            "send https://www.shop.example/collect",
            r#"store tandem:sent [["o:A-1",1700000000000],["e:ord-A-1",1700000000000]]"#,
        ]);
        let body = sent_body(&out);
        let body_text = body.to_json();
        assert!(body_text.contains(r#""event_id":"ord-A-1""#) && body_text.contains(r#""ttp":"tt-1""#), "{body_text}");
        // The outbox queues the event object as written: the text a parse and rewrite of it gives.
        let Some(Effect::Send { event, event_id, time_ms, .. }) = out.effects.iter().find(|e| matches!(e, Effect::Send { .. })) else { panic!() };
        assert_eq!(&parse(event).unwrap().to_json(), event);
        assert_eq!((event_id.as_str(), *time_ms), ("ord-A-1", NOW));

        // Same event name and id again: the id comes back, nothing is sent.
        let again = tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":2,"currency":"EUR"}"#).unwrap(), &parse(r#"{"eventId":"ord-A-1"}"#).unwrap(), &p, &mut Counter(0));
        assert_eq!((again.event_id.as_deref(), again.effects.len()), (Some("ord-A-1"), 0));
        assert!(again.warnings[0].contains("already sent"));
        // Same order id with a new event id: not sent again.
        let reorder = tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":1,"currency":"EUR","order_id":"A-1"}"#).unwrap(), &Value::Null, &p, &mut Counter(9));
        assert_eq!((reorder.event_id, reorder.effects.len()), (None, 0));
        assert!(reorder.warnings[0].contains("order_id A-1"));
    }

    #[test]
    fn a_deferred_track_decides_now_and_emits_the_same_effects_later() {
        let p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc; _ttp=tt-1");
        let purchase = parse(r#"{"value":"59.90","currency":"EUR","order_id":"A-1"}"#).unwrap();
        let name = parse("\"Purchase\"").unwrap();
        let (mut now, _) = init(ALL, &p);
        let direct = now.track(&name, &purchase, &Value::Null, &p, &mut Counter(5));
        let (mut later, _) = init(ALL, &p);
        let accepted = later.track_deferred(&name, &purchase, &Value::Null, &p, &mut Counter(5));
        assert_eq!((accepted.event_id.clone(), accepted.effects.len()), (direct.event_id.clone(), 0));
        assert!(later.has_deferred());
        // A double in the same task is recognised before anything was emitted.
        let again = later.track_deferred(&name, &purchase, &Value::Null, &p, &mut Counter(6));
        assert_eq!((again.event_id.as_deref(), again.effects.len()), (Some("o-A-1"), 0));
        let emitted = later.emit_deferred(&p);
        assert_eq!(lines(&emitted.effects), lines(&direct.effects));
        assert_eq!(sent_body(&emitted), sent_body(&direct));
        assert!(!later.has_deferred() && later.emit_deferred(&p).effects.is_empty(), "emitted once");
    }

    #[test]
    fn ttp_is_looked_for_until_found_and_again_after_a_consent_command() {
        let without = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let with = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc; _ttp=tt-1");
        let no_cookies = PageFacts { cookie_header: String::new(), ..without.clone() };
        let (mut tag, _) = init(ALL, &without);
        let lead = parse("\"Lead\"").unwrap();
        let emit = |tag: &mut Tag, track_page: &PageFacts, emit_page: &PageFacts, seed: u8| {
            tag.track_deferred(&lead, &Value::Null, &Value::Null, track_page, &mut Counter(seed));
            sent_body(&tag.emit_deferred(emit_page)).to_json().contains(r#""ttp":"tt-1""#)
        };
        // Not set yet: looked for at each emit.
        assert!(tag.needs_cookies_to_emit() && !emit(&mut tag, &without, &without, 1));
        assert!(tag.needs_cookies_to_emit());
        // TikTok's pixel set it: found once, then kept, so the shell stops reading cookies to emit.
        assert!(emit(&mut tag, &with, &with, 2));
        assert!(!tag.needs_cookies_to_emit() && emit(&mut tag, &without, &no_cookies, 3));
        // A consent command: looked for again (a consent platform may have deleted it).
        tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted"}"#).unwrap(), &without);
        assert!(tag.needs_cookies_to_emit() && !emit(&mut tag, &without, &without, 5));
    }

    #[test]
    fn a_reloaded_thank_you_page_sends_its_purchase_once() {
        let mut p = page("https://www.shop.example/thanks", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let purchase = |tag: &mut Tag, p: &PageFacts, event_id: &str| {
            let options = if event_id.is_empty() { Value::Null } else { parse(&format!(r#"{{"eventId":"{event_id}"}}"#)).unwrap() };
            tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":5,"currency":"EUR","order_id":"B-7"}"#).unwrap(), &options, p, &mut Counter(3))
        };
        let (mut first_load, _) = init(ALL, &p);
        let first = purchase(&mut first_load, &p, "");
        let stored = first.effects.iter().find_map(|e| match e {
            Effect::Store { key, value } if *key == sent::STORAGE_KEY => Some(value.clone()),
            _ => None,
        });
        assert!(stored.is_some(), "{:?}", first.effects);
        // The reload is a new Tag that reads what the first one stored.
        p.stored_sent = stored;
        p.now_ms += 60_000;
        let (mut reload, _) = init(ALL, &p);
        let again = purchase(&mut reload, &p, "");
        assert_eq!((again.event_id, again.effects.len()), (None, 0));
        // A site-supplied event id is remembered too, and answered with the same id.
        let with_id = purchase(&mut reload, &p, "ord-9");
        assert_eq!(with_id.event_id, None, "order B-7 was already sent");
        let lead = |tag: &mut Tag, p: &PageFacts| tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"lead-1"}"#).unwrap(), p, &mut Counter(4));
        let sent_lead = lead(&mut reload, &p);
        p.stored_sent = sent_lead.effects.iter().find_map(|e| match e {
            Effect::Store { key, value } if *key == sent::STORAGE_KEY => Some(value.clone()),
            _ => None,
        });
        let (mut third_load, _) = init(ALL, &p);
        let repeat = lead(&mut third_load, &p);
        assert_eq!((repeat.event_id.as_deref(), repeat.effects.len()), (Some("lead-1"), 0));
    }

    #[test]
    fn an_event_id_already_sent_from_this_page_is_not_sent_again() {
        let p = page("https://www.shop.example/", "");
        let (mut tag, _) = init(ALL, &p);
        let lead = |tag: &mut Tag, options: &str, seed: u8| tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(options).unwrap(), &p, &mut Counter(seed));
        // The id the tag made, handed back as the site's own (a retry, a double-bound button).
        let first = lead(&mut tag, "null", 10);
        let generated = first.event_id.clone().expect("an event_id");
        assert_eq!(sends(&first), 1);
        let again = lead(&mut tag, &format!(r#"{{"eventId":"{generated}"}}"#), 20);
        assert_eq!((again.event_id.as_deref(), sends(&again)), (Some(generated.as_str()), 0));
        assert!(again.warnings.iter().any(|w| w.contains("already sent from this page")), "{:?}", again.warnings);
        // Ids are case-sensitive at every platform: the uppercase form is another event.
        let upper = lead(&mut tag, &format!(r#"{{"eventId":"{}"}}"#, generated.to_uppercase()), 30);
        assert_eq!(sends(&upper), 1);
        // A site id that is not a UUID, twice.
        assert_eq!(sends(&lead(&mut tag, r#"{"eventId":"lead-7"}"#, 40)), 1);
        assert_eq!(sends(&lead(&mut tag, r#"{"eventId":"lead-7"}"#, 50)), 0);
        // Other generated ids still go out.
        assert_eq!(sends(&lead(&mut tag, "null", 60)), 1);
    }

    #[test]
    fn rejected_events_send_nothing() {
        let p = page("https://www.shop.example/", "");
        let (mut tag, _) = init(ALL, &p);
        for (name, params, options, code) in [
            ("\"Purchase\"", r#"{"value":5}"#, "null", "missing_field"),
            ("42", "{}", "null", "invalid_event_name"),
            ("\"Lead\"", "{}", r#"{"eventId":"bad id"}"#, "invalid_event_id"),
            ("\"Lead\"", "{}", r#"{"eventId":1.5}"#, "invalid_event_id"),
        ] {
            let out = tag.track(&parse(name).unwrap(), &parse(params).unwrap(), &parse(options).unwrap(), &p, &mut Counter(0));
            assert_eq!((out.event_id.as_deref(), out.effects.len()), (None, 0), "{name} {params} {options}");
            assert_eq!(out.errors.first().map(|e| e.code), Some(code));
        }
        // Bad options or params do not stop the event.
        let out = tag.track(&parse("\"Lead\"").unwrap(), &parse("\"x\"").unwrap(), &parse("true").unwrap(), &p, &mut Counter(50));
        assert!(out.event_id.is_some());
        let codes: Vec<&str> = out.errors.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["invalid_options", "invalid_params"]);
        let out = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(r#"{"eventid":"x"}"#).unwrap(), &p, &mut Counter(90));
        assert!(out.event_id.is_some() && out.warnings[0].contains("Unknown option \"eventid\""));
    }

    #[test]
    fn spa_page_views_update_attribution() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, out) = init(r#"{"tiktok":{"pixelId":"CABCDEFGHIJ1234567890","load":true}}"#, &p);
        assert!(lines(&out.effects).iter().any(|l| l.starts_with("store ")), "first store of empty state");
        let mut p2 = page("https://www.shop.example/next?ttclid=E.C.P.x", "_fbp=fb.1.1.2; _tandem_cid=abc");
        p2.now_ms = NOW + 1000;
        let out = tag.page(&p2, &mut Counter(7));
        let l = lines(&out.effects);
        assert_eq!(l[0], r#"store tandem:attribution {"click_ids":{"ttclid":{"value":"E.C.P.x","ts":1700000001000}},"utm":{}}"#);
        assert_eq!(&l[1..], ["ttq.page[]", "send https://www.shop.example/collect"]);
        let body = sent_body(&out).to_json();
        assert!(body.contains(r#""event_source_url":"https://www.shop.example/next?ttclid=E.C.P.x""#) && body.contains(r#""event_time":1700000001"#));
        // Nothing new: no store.
        p2.now_ms += PAGE_VIEW_DOUBLE_MS;
        let out = tag.page(&p2, &mut Counter(70));
        assert!(!lines(&out.effects).iter().any(|l| l.starts_with("store ")));
    }

    #[test]
    fn an_spa_page_keeps_a_click_another_tab_stored() {
        // Tab A landed on a Facebook click and stays open.
        let a_stored = r#"{"click_ids":{"fbclid":{"value":"F1","ts":1700000000000}},"utm":{}}"#;
        let mut p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        p.stored_attribution = Some(a_stored.into());
        let (mut tag, _) = init(r#"{"autoPageView":false}"#, &p);
        // Tab B then landed on a Google click and stored it; A's SPA navigates with a UTM.
        let b_stored = r#"{"click_ids":{"gclid":{"value":"G2","ts":1700000500000},"fbclid":{"value":"F1","ts":1700000000000}},"utm":{}}"#;
        let mut p2 = page("https://www.shop.example/promo?utm_source=newsletter", "_fbp=fb.1.1.2; _tandem_cid=abc");
        p2.stored_attribution = Some(b_stored.into());
        p2.now_ms = NOW + 600_000;
        let out = tag.page(&p2, &mut Counter(7));
        let store = lines(&out.effects).into_iter().find(|l| l.starts_with("store tandem:attribution")).unwrap();
        assert!(store.contains(r#""gclid":{"value":"G2""#) && store.contains("newsletter"), "{store}");
        // A's own write not yet made when the next page() reads storage (the shell writes at the
        // end of the task): the stale value is not taken for another tab's.
        let mut p3 = page("https://www.shop.example/next?utm_source=mail", "_fbp=fb.1.1.2; _tandem_cid=abc");
        p3.stored_attribution = Some(b_stored.into());
        p3.now_ms = NOW + 600_500;
        let out = tag.page(&p3, &mut Counter(8));
        let store = lines(&out.effects).into_iter().find(|l| l.starts_with("store tandem:attribution")).unwrap();
        assert!(store.contains("newsletter") && store.contains(r#""source":"mail""#), "{store}");
    }

    #[test]
    fn a_page_view_fired_twice_for_one_url_is_sent_once() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, first) = init(ALL, &p);
        // The router fires again for the landing URL: one view.
        let again = tag.page(&p, &mut Counter(1));
        assert_eq!((again.event_id.clone(), sends(&again)), (first.event_id.clone(), 0));
        assert!(again.warnings[0].contains("already sent"));
        // pushState to /b, then back to /: each is a new view, and /b's double is one.
        let mut b = page("https://www.shop.example/b", "_fbp=fb.1.1.2; _tandem_cid=abc");
        b.now_ms = NOW + 10;
        let to_b = tag.page(&b, &mut Counter(2));
        assert_eq!(sends(&to_b), 1);
        assert_eq!(sends(&tag.page(&b, &mut Counter(3))), 0);
        let mut back = p.clone();
        back.now_ms = NOW + 20;
        let view = tag.page(&back, &mut Counter(4));
        assert_eq!(sends(&view), 1);
        assert_ne!(view.event_id, first.event_id);
        // The same URL after the window is a new view (a reload of the route).
        back.now_ms = NOW + 20 + PAGE_VIEW_DOUBLE_MS;
        assert_eq!(sends(&tag.page(&back, &mut Counter(5))), 1);
    }

    #[test]
    fn debug_logs_name_destinations_and_event_ids() {
        let p = page("https://www.shop.example/", "_fbp=fb.1.1.2; _tandem_cid=abc");
        let (mut tag, _) = init(r#"{"debug":true,"autoPageView":false,"meta":{"pixelId":"123456789012345","sendPageView":false},"google":{"tagId":"G-ABC123"}}"#, &p);
        assert!(tag.debug());
        let out = tag.track(&parse("\"PageView\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"pv1"}"#).unwrap(), &p, &mut Counter(0));
        let logs: Vec<String> = lines(&out.effects).into_iter().filter(|l| l.starts_with("log ")).collect();
        assert_eq!(logs.len(), 3, "{logs:?}");
        assert!(logs[0].contains("meta: PageView not sent") && logs[0].ends_with("event_id=pv1"));
        assert!(logs[1].contains("google: PageView not sent"));
        assert!(logs[2].contains("endpoint ← https://www.shop.example/collect"));
        let out = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"l1"}"#).unwrap(), &p, &mut Counter(0));
        let logs: Vec<String> = lines(&out.effects).into_iter().filter(|l| l.starts_with("log ")).collect();
        assert!(logs[0].contains(r#"meta ← fbq("track","Lead",{},{"eventID":"l1"}) event_id=l1"#), "{logs:?}");
    }

    #[test]
    fn init_rejects_a_non_object_config() {
        for refused in ["\"G-1\"", "7", "true", "[]", r#"{"\u0000tandem_invalid":"a function"}"#] {
            let config = parse(refused).unwrap();
            assert!(!Tag::accepts(&config), "{refused}");
            let (tag, out) = Tag::init(&config, &page("https://a.example/", ""), &mut Counter(0));
            assert!(tag.is_none());
            assert_eq!(out.errors.len(), 1, "{refused}: reported once");
            assert_eq!(out.errors[0].code, "invalid_config");
        }
        assert!(Tag::accepts(&Value::Null) && Tag::accepts(&parse("{}").unwrap()));
        // A broken platform still leaves a working tag.
        let (tag, out) = Tag::init(&parse(r#"{"meta":{"pixelId":"x"}}"#).unwrap(), &page("https://a.example/", ""), &mut Counter(0));
        assert!(tag.is_some() && out.event_id.is_some());
        assert!(out.errors.iter().any(|e| e.message.contains("meta is disabled")));
    }

    #[test]
    fn outcome_json() {
        let o = Outcome {
            event_id: Some("e\"1".into()),
            effects: vec![Effect::Log("x".into())],
            errors: vec![TagError::new("missing_field", "Purchase needs\nvalue", "{}")],
            warnings: vec!["w\u{2028}".into()],
        };
        assert_eq!(o.to_json(), r#"{"event_id":"e\"1","errors":[{"code":"missing_field","message":"Purchase needs\nvalue","input":"{}"}],"warnings":["w\u2028"]}"#);
        assert_eq!(Outcome::default().to_json(), r#"{"event_id":null,"errors":[],"warnings":[]}"#);
        assert!(parse(&o.to_json()).is_ok());
        let two = Outcome {
            errors: vec![TagError::new("a", "m1", ""), TagError::new("b", "m2", "[1]")],
            warnings: vec!["w1".into(), "w2".into()],
            ..Outcome::default()
        };
        assert_eq!(two.to_json(), r#"{"event_id":null,"errors":[{"code":"a","message":"m1","input":""},{"code":"b","message":"m2","input":"[1]"}],"warnings":["w1","w2"]}"#);
    }
}
