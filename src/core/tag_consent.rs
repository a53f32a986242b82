//! Consent and identity inside the tag (a child module of `tag`, so it sees the tag's state):
//! `Tag::consent`, `Tag::identify`, `Tag::wake`, the gate every event passes, the gate every
//! cookie and storage write passes, and the endpoint body with hashed identity and the real
//! consent state.
//!
//! Rules (README "Consent"): writes an unconsented purpose forbids are kept back (in memory) and
//! carried out when it is granted; while a default's `wait_for_update` runs, events are held with
//! their original page facts and timestamps and released on the update or the deadline; in basic
//! mode an event without ad consent is dropped, and so is everything held when the wait ends that
//! way; identifiers (hashes, click IDs, fbp/fbc/ttp) reach no payload while ad_user_data is denied.

use super::{Effect, Outcome, PageFacts, Tag};
use crate::core::consent::{Consent, Settings, State};
use crate::core::error::TagError;
use crate::core::event::{EventName, Params, Standard};
use crate::core::identity::Identity;
use crate::core::json::Value;
use crate::core::payload::{self, Allowed, Envelope};
#[cfg(test)]
use crate::core::payload::without_click_ids;
use crate::core::attribution;
use crate::core::{cookies, sent, text, url};

crate::messages! {
    CONSENT_PREFIX = "k0" "consent: ";
    WAITS_FOR_UPDATE = "k1" " waits for a consent update (wait_for_update) event_id=";
    BASIC_NOT_SENT = "k2" " not sent (consentMode 'basic' needs ad_storage and ad_user_data granted)";
    CONSENT_HELD = "k3" "consent: held ";
    HELD_DROPPED = "k4" " dropped (consent not granted) event_id=";
    IDENTITY_KEPT = "k5" "identify: kept in memory; nothing is sent until consent allows it (ad_user_data; in basic mode ad_storage too)";
}

/// What the shell collected before `init` (consent defaults, identify), applied before init's
/// first effect.
#[derive(Clone, Debug)]
pub struct Pre {
    pub consent: Consent,
    pub identity: Identity,
    /// `navigator.globalPrivacyControl === true`.
    pub gpc: bool,
}

impl Default for Pre {
    /// Out of line, as `Outcome`'s: the derived one, inlined, wrote every field of the consent and
    /// the identity at each place that starts one (init, the shell's init and its rehearsal).
    #[inline(never)]
    fn default() -> Pre {
        Pre { consent: Consent::default(), identity: Identity::default(), gpc: false }
    }
}

impl Pre {
    /// `consent` / `identify` called before `init`.
    pub fn command(&mut self, name: &str, args: &[Value], now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        let null = Value::Null;
        let arg = |i: usize| args.get(i).unwrap_or(&null);
        match name {
            "consent" => {
                self.consent.apply(arg(0), arg(1), now_ms, &mut out.errors, &mut out.warnings);
            }
            _ => self.identity.merge(arg(0), &mut out.errors, &mut out.warnings),
        }
        out
    }
}

struct Held {
    name: EventName,
    params: Params,
    event_id: String,
    site_event_id: bool,
    page: PageFacts,
}

/// The tag's consent and identity state.
pub struct Privacy {
    consent: Consent,
    settings: Settings,
    gpc: bool,
    identity: Identity,
    /// Events waiting for a consent update (original page facts and timestamps).
    held: Vec<Held>,
    /// Cookie and storage writes waiting for their purpose to be granted (latest per key).
    unsaved: Vec<Effect>,
    /// The state platforms and the payload were last told, to send only changes.
    told: Option<State>,
}

impl Privacy {
    pub fn new(pre: Pre, config: &Value, errors: &mut Vec<TagError>) -> Privacy {
        let settings = crate::core::consent::settings(config, errors);
        Privacy { consent: pre.consent, settings, gpc: pre.gpc, identity: pre.identity, held: Vec::new(), unsaved: Vec::new(), told: None }
    }

    pub fn state(&self, now_ms: u64) -> State {
        State::of(&self.consent, self.settings, self.gpc, now_ms)
    }

    /// The identity platforms may receive now (ad_user_data granted, something identified).
    pub fn identity(&self, state: &State) -> Option<&Identity> {
        (state.user_data() && !self.identity.is_empty()).then_some(&self.identity)
    }
}

/// Which purpose a write needs: `None` for writes no purpose governs.
fn purpose_allows(effect: &Effect, state: &State) -> bool {
    match effect {
        Effect::SetCookie(c) if c.starts_with(cookies::CLIENT_ID) => state.analytics_storage(),
        Effect::SetCookie(c) if c.starts_with(cookies::FBP) || c.starts_with(cookies::FBC) => state.ad_storage(),
        Effect::Store { key, .. } if *key == attribution::STORAGE_KEY || *key == sent::STORAGE_KEY => state.ad_storage(),
        _ => true,
    }
}

/// The cookie name or storage key a write replaces.
fn write_key(effect: &Effect) -> &str {
    match effect {
        Effect::SetCookie(c) => text::before(c, "="),
        Effect::Store { key, .. } => key,
        _ => "",
    }
}

impl Tag {
    /// The consent state in force at `now_ms`.
    pub fn consent_state(&self, now_ms: u64) -> State {
        self.privacy.state(now_ms)
    }

    /// How many events a consent wait holds (the loader keeps their calls for a fresh instance).
    pub fn held_count(&self) -> usize {
        self.privacy.held.len()
    }

    /// When a running wait ends (Unix ms), for the shell's timer: held events are released and
    /// the platforms told (TikTok's holdConsent needs its grant or revoke) even with no update.
    pub fn wake_at(&self) -> Option<u64> {
        if self.privacy.told.is_some_and(|t| t.pending()) {
            self.privacy.consent.wait_until()
        } else {
            None
        }
    }

    /// A cookie or storage write, added to `now` if its purpose allows, else kept back for when it
    /// is granted. One write at a time and not generic: each kind of list of writes was a copy.
    pub(super) fn gate_write(&mut self, effect: Option<Effect>, now_ms: u64, now: &mut Vec<Effect>) {
        let Some(e) = effect else { return };
        if purpose_allows(&e, &self.privacy.state(now_ms)) {
            now.push(e);
        } else {
            let key = String::from(write_key(&e));
            self.forget_kept(&key);
            self.privacy.unsaved.push(e);
        }
    }

    /// Drops the kept-back write of `key` (a cookie name or storage key), if any.
    fn forget_kept(&mut self, key: &str) {
        // Moved over one by one (a few writes at most): Vec::retain linked a larger loop for
        // Effect alone, and Vec::remove a function of its own (and its checked twin).
        for kept in &mut std::mem::take(&mut self.privacy.unsaved) {
            if write_key(kept) != key {
                self.privacy.unsaved.push(std::mem::replace(kept, Effect::Log(String::new())));
            }
        }
    }

    /// Once ad_storage is granted, what earlier visits left is read, as Google's tags do: not
    /// before, as reading a cookie or storage is access too. The URLs this page observed meanwhile
    /// are observed again on the stored attribution, in order, as if it had been read at init, and
    /// the kept-back write of it is made again; an `_fbc` already set is kept unless this page
    /// brought another click. `state` is the one in force (the caller's, not computed again).
    fn take_in_ad_storage(&mut self, page: &PageFacts, state: &State) {
        if self.ad_storage_read || !state.ad_storage() {
            return;
        }
        self.ad_storage_read = true;
        self.load_attribution(page.stored_attribution.as_deref());
        // Walked by reference: a consuming loop linked an owning iterator for this list alone.
        let landings = std::mem::take(&mut self.unread_landings);
        for (landing, at) in &landings {
            self.attribution.expire(*at, self.config.attribution_window_days);
            self.attribution.observe(&url::query_params(landing), *at);
        }
        self.attribution.expire(page.now_ms, self.config.attribution_window_days);
        self.forget_kept(attribution::STORAGE_KEY);
        if let Some(store) = self.attribution_store() {
            self.privacy.unsaved.push(store);
        }
        let existing = cookies::get(&page.cookie_header, cookies::FBC);
        // Parsed once, where a filter parsed it before the comparison parsed it again.
        if let Some((existing, theirs)) = existing.zip(existing.and_then(cookies::parse_fb)) {
            // Compared in place: the payloads are slices of the two cookie values, nothing is copied.
            if self.fbc.as_deref().and_then(cookies::parse_fb).is_none_or(|ours| theirs.payload == ours.payload) {
                self.forget_kept(cookies::FBC);
                self.fbc = Some(existing.to_string());
            }
        }
    }

    /// Once a cookie of ours may be written, the registrable domain is probed: not before, as the
    /// probe's test cookie is a cookie too (see `PageFacts::registrable_domain`). The cookies kept back
    /// until then were made host-only; they are made again for the domain found, and the `_fbp`
    /// and `_fbc` values Tandem made take its subdomainIndex. `state` as in `take_in_ad_storage`.
    fn settle_domain(&mut self, page: &PageFacts, state: &State) {
        if self.domain_settled || !state.any_cookie() {
            return;
        }
        self.domain_settled = true;
        let (Some(domain), index) = super::find_cookie_domain(page, None, true) else { return };
        self.subdomain_index = index;
        self.cookie_domain = Some(domain);
        let Tag { privacy, fbp, fbc, client_id, cookie_domain, .. } = self;
        for kept in &mut privacy.unsaved {
            let Effect::SetCookie(c) = kept else { continue };
            // `indexed`: a Meta cookie, whose value carries the subdomainIndex (a flag, where
            // comparing the name with the client id's compared strings).
            let (name, value, max_age_s, indexed) = if c.starts_with(cookies::CLIENT_ID) {
                (cookies::CLIENT_ID, &mut *client_id, cookies::CLIENT_ID_MAX_AGE_S, false)
            } else if c.starts_with(cookies::FBP) {
                (cookies::FBP, &mut *fbp, cookies::FB_MAX_AGE_S, true)
            } else if let (true, Some(made)) = (c.starts_with(cookies::FBC), fbc.as_mut()) {
                (cookies::FBC, made, cookies::FB_MAX_AGE_S, true)
            } else {
                continue;
            };
            if indexed {
                *value = cookies::with_subdomain_index(value, index);
            }
            *c = cookies::render_set_cookie(name, value, max_age_s, cookie_domain.as_deref(), page.https);
        }
    }

    /// Consent and identity for the platforms' setup.
    pub(super) fn setup_privacy(&mut self, now_ms: u64) -> State {
        let mut state = self.privacy.state(now_ms);
        // Told without the wait: the states `consent_changed` compares it with never carry one.
        self.privacy.told = Some(state);
        if let Some(until) = self.privacy.consent.wait_until().filter(|&until| now_ms < until) {
            state.wait = Some((until - now_ms, self.privacy.state(until).signals));
        }
        state
    }

    /// The gate every validated event passes: true when it is held (waiting for consent) or
    /// dropped (basic mode without ad consent), with its warning (and a held one's event_id) in
    /// `out`; false when it goes out now. A held event takes `params` (the caller is done with
    /// them), which spares a copy.
    pub(super) fn consent_gate(&mut self, name: &EventName, params: &mut Params, event_id: &str, site_event_id: bool, page: &PageFacts, out: &mut Outcome) -> bool {
        let state = self.privacy.state(page.now_ms);
        let held = state.pending();
        if !held && state.may_send() {
            return false;
        }
        // Held or dropped, the warning names the event the same way: one prefix for both.
        let mut w = String::from(CONSENT_PREFIX);
        w.push_str(name.as_str());
        if held {
            self.privacy.held.push(Held { name: name.clone(), params: std::mem::replace(params, super::no_params()), event_id: event_id.to_string(), site_event_id, page: page.clone() });
            w.push_str(WAITS_FOR_UPDATE);
            w.push_str(event_id);
            out.event_id = Some(event_id.to_string());
        } else {
            w.push_str(BASIC_NOT_SENT);
        }
        out.warnings.push(w);
        true
    }

    /// The endpoint's copy of one event: identifiers only with ad_user_data granted, hashed
    /// identity per platform, and the consent state in force.
    pub(super) fn endpoint_event(&self, env: &Envelope, now_ms: u64) -> String {
        let state = self.privacy.state(now_ms);
        let allowed = Allowed { user_data: state.user_data(), identity: self.privacy.identity(&state), state: Some(&state) };
        payload::event(env, &allowed)
    }

    /// `tandem('consent', 'default' | 'update', values)` after init.
    pub fn consent(&mut self, kind: &Value, values: &Value, page: &PageFacts) -> Outcome {
        let mut out = Outcome::default();
        // A consent platform may have deleted the cookie with the visitor's choice.
        self.ttp = None;
        self.privacy.consent.apply(kind, values, page.now_ms, &mut out.errors, &mut out.warnings);
        let mut changes = self.consent_changed(page);
        changes.append(&mut out);
        changes
    }

    /// The wait's deadline passed (the shell's timer): release what was held.
    /// At pagehide, a consent wait still running ends as its deadline would: the visitor left
    /// without choosing, and what it held goes under the default's values while the page can
    /// still beacon it, instead of being lost with the page.
    pub fn end_wait_at_unload(&mut self, page: &PageFacts) -> Outcome {
        self.privacy.consent.end_wait();
        self.consent_changed(page)
    }

    pub fn wake(&mut self, page: &PageFacts) -> Outcome {
        self.privacy.consent.expire(page.now_ms);
        self.consent_changed(page)
    }

    /// After any change: tell the platforms, carry out writes now allowed, hand over identity
    /// newly allowed, release or drop held events.
    pub(super) fn consent_changed(&mut self, page: &PageFacts) -> Outcome {
        let mut out = Outcome::default();
        self.privacy.consent.expire(page.now_ms);
        let state = self.privacy.state(page.now_ms);
        let before = self.privacy.told.replace(state);
        // The same state when the signals and `managed` are: GPC and the mode are the tag's for
        // good, and a told state never carries a wait. Compared so, where comparing the whole
        // Options inlined a comparison of every field.
        if before.is_some_and(|b| b.signals == state.signals && b.managed == state.managed) {
            return out;
        }
        if self.config.debug {
            super::log(&mut out.effects, &["consent: ", &state.to_json()]);
        }
        let was_set_up = !self.setup_waiting;
        for d in &self.config.destinations {
            d.consent(&state, false, &mut out.effects);
        }
        self.take_in_ad_storage(page, &state);
        self.settle_domain(page, &state);
        // Writes kept back, now allowed: a cookie someone else set meanwhile is adopted instead.
        // Walked in place, each write moved out of the list (a few writes at most): a consuming
        // loop linked an owning iterator for Effect alone.
        for e in &mut std::mem::take(&mut self.privacy.unsaved) {
            let e = std::mem::replace(e, Effect::Log(String::new()));
            if !purpose_allows(&e, &state) {
                self.privacy.unsaved.push(e);
                continue;
            }
            // The sent log kept back is written from now's log, merged with what other tabs
            // stored meanwhile, not as the snapshot kept.
            if matches!(&e, Effect::Store { key, .. } if *key == sent::STORAGE_KEY) {
                self.sent_log_dirty = true;
                continue;
            }
            if let Effect::SetCookie(c) = &e {
                if c.starts_with(cookies::CLIENT_ID) {
                    if let Some(v) = cookies::valid_client_id(cookies::get(&page.cookie_header, cookies::CLIENT_ID)) {
                        super::set_text(&mut self.client_id, v);
                        continue;
                    }
                }
                if c.starts_with(cookies::FBP) {
                    if let Some(v) = cookies::valid_fbp(cookies::get(&page.cookie_header, cookies::FBP)) {
                        super::set_text(&mut self.fbp, v);
                        continue;
                    }
                }
            }
            out.effects.push(e);
        }
        self.store_sent_log(page, &mut out);
        // After the writes, as at init; with the identity of now, so none is handed over below.
        if !was_set_up && state.may_send() {
            self.setup_waiting = false;
            self.set_up(&state, &page.nonce, &mut out.effects);
        }
        let was_allowed = before.is_some_and(|b| b.user_data());
        if was_set_up && state.user_data() && !was_allowed && !self.privacy.identity.is_empty() {
            for d in &self.config.destinations {
                d.identify(&self.privacy.identity, &mut out.effects);
            }
        }
        if !state.pending() {
            // A released Purchase writes the sent log back with the facts of its own call, which
            // hold no stored log: what another tab logged meanwhile is merged in first, from now's.
            if let Some(stored) = &page.stored_sent {
                self.sent_log.merge(stored, page.now_ms);
            }
            let mut held = std::mem::take(&mut self.privacy.held);
            let dropping = !state.may_send();
            // Walked in place, each event's parts taken out of it: a consuming loop linked an
            // owning iterator and its drop guard for Held alone, Vec::remove a function of its own.
            for h in &mut held {
                if dropping {
                    let mut w = String::from(CONSENT_HELD);
                    w.push_str(h.name.as_str());
                    w.push_str(HELD_DROPPED);
                    w.push_str(&h.event_id);
                    out.warnings.push(w);
                    continue;
                }
                let name = std::mem::replace(&mut h.name, EventName::Standard(Standard::PageView));
                self.send_valid(name, std::mem::replace(&mut h.params, super::no_params()), std::mem::take(&mut h.event_id), h.site_event_id, &h.page, &mut out);
            }
            // Sent into this outcome, each set its event_id: a change is no event's call.
            out.event_id = None;
        }
        out
    }

    /// `tandem('identify', values)` after init: hashes kept in memory; handed to the platforms
    /// (and the endpoint, with every later event) while ad_user_data is granted.
    pub fn identify(&mut self, values: &Value, now_ms: u64) -> Outcome {
        let mut out = Outcome::default();
        self.privacy.identity.merge(values, &mut out.errors, &mut out.warnings);
        let state = self.privacy.state(now_ms);
        if self.config.debug {
            out.effects.push(Effect::Log(self.privacy.identity.debug_line()));
        }
        match self.privacy.identity(&state) {
            Some(id) if !self.setup_waiting => {
                for d in &self.config.destinations {
                    d.identify(id, &mut out.effects);
                }
            }
            _ if !self.privacy.identity.is_empty() => {
                out.warnings.push(String::from(IDENTITY_KEPT));
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tag::tests::{lines, sends};
    use crate::core::tag::Entropy;
    use crate::core::json::parse;

    const NOW: u64 = 1_700_000_000_000;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    fn page(url: &str, cookies: &str) -> PageFacts {
        PageFacts {
            url: url.into(),
            cookie_header: cookies.into(),
            registrable_domain: Some(|_| Some("shop.example".into())),
            https: true,
            now_ms: NOW,
            ..PageFacts::default()
        }
    }

    fn init_with(config: &str, p: &PageFacts, pre: Pre) -> (Tag, Outcome) {
        let (tag, out) = Tag::init_with(&parse(config).unwrap(), p, &mut Counter(0), pre);
        (tag.expect("tag"), out)
    }

    /// The one event of the one Send, checked against the schema.
    fn body_of(out: &Outcome) -> Value {
        let bodies: Vec<String> = out.effects.iter().filter_map(|e| if let Effect::Send { event, .. } = e { Some(crate::core::payload::tests::wrap(event)) } else { None }).collect();
        assert_eq!(bodies.len(), 1, "exactly one Send: {:?}", out.effects);
        crate::core::payload::tests::check_against_schema(&bodies[0]);
        match parse(&bodies[0]).unwrap().get("events") {
            Some(Value::Array(e)) => e[0].clone(),
            _ => panic!("events"),
        }
    }

    const CFG: &str = r#"{"meta":{"pixelId":"123456789012345"},"google":{"tagId":"G-ABC123"},"tiktok":{"pixelId":"CABCDEFGHIJ1234567890"}}"#;

    fn pre(calls: &[(&str, &str)], gpc: bool) -> Pre {
        let mut p = Pre { gpc, ..Pre::default() };
        for (name, args) in calls {
            let Value::Array(a) = parse(args).unwrap() else { panic!() };
            let out = p.command(name, &a, NOW);
            assert!(out.errors.is_empty(), "{out:?}");
        }
        p
    }

    #[test]
    fn denied_storage_writes_nothing_until_granted() {
        let p = page("https://www.shop.example/?fbclid=F1&gclid=G1", "");
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#;
        let (mut tag, out) = init_with(CFG, &p, pre(&[("consent", denied)], false));
        let l = lines(&out.effects);
        assert!(!l.iter().any(|l| l.starts_with("cookie ") || l.starts_with("store ")), "{l:#?}");
        // Platforms hear the state first: fbq consent before init, gtag default, ttq revoke.
        assert_eq!(&l[..6], [
            r#"fbq["dataProcessingOptions",["LDU"],0,0]"#,
            r#"fbq["consent","revoke"]"#,
            r#"fbq["init","123456789012345"]"#,
            r#"gtag["consent","default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#,
            "ttq.revokeConsent[]",
            r#"fbq["track","PageView",{},{"eventID":"14151617-1819-4a1b-9c1d-1e1f20212223"}]"#,
        ]);
        // The PageView is still counted, without identifiers, with the real consent state.
        let ev = body_of(&out);
        assert_eq!(ev.get("user_data").map(Value::to_json).as_deref(), Some("{}"));
        assert_eq!(ev.get("click_ids").map(Value::to_json).as_deref(), Some("{}"));
        assert_eq!(ev.get("consent").and_then(|c| c.get("ad_storage")).and_then(Value::as_str), Some("denied"));
        // Identify while denied: nothing leaves.
        let id = tag.identify(&parse(r#"{"email":"a@example.com"}"#).unwrap(), NOW);
        assert!(id.effects.is_empty() && id.warnings[0].contains("kept in memory"));
        // Grant: the kept-back writes happen, platforms are told, identity is handed over.
        let granted = parse(r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}"#).unwrap();
        let out = tag.consent(&parse("\"update\"").unwrap(), &granted, &p);
        let l = lines(&out.effects);
        assert_eq!(l.iter().filter(|l| l.starts_with("cookie _fbp=") || l.starts_with("cookie _fbc=") || l.starts_with("cookie _tandem_cid=")).count(), 3, "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with("store tandem:attribution")), "{l:#?}");
        assert!(l.contains(&String::from(r#"fbq["consent","grant"]"#)) && l.contains(&String::from("ttq.grantConsent[]")), "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with(r#"gtag["consent","update",{"ad_storage":"granted""#)), "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with(r#"fbq["init","123456789012345",{"em":""#)), "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with(r#"ttq.identify[{"email":""#)) && l.iter().any(|l| l.starts_with(r#"gtag["set","user_data",{"sha256_email_address""#)), "{l:#?}");
        // The next event carries identifiers and hashes.
        let t = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(40));
        let ev = body_of(&t);
        let user = ev.get("user_data").unwrap();
        assert!(user.get("fbp").is_some() && user.get("fbc").is_some() && user.get("em").is_some(), "{}", user.to_json());
        assert_eq!(ev.get("click_ids").and_then(|c| c.get("gclid")).and_then(|g| g.get("value")).and_then(Value::as_str), Some("G1"));
        assert!(ev.get("google_user_data").is_some() && ev.get("tiktok_user_data").is_some());
        // The same state again changes nothing.
        assert!(tag.consent(&parse("\"update\"").unwrap(), &granted, &p).effects.is_empty());
    }

    thread_local! {
        static PROBES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// The shell's probe, counted: www.shop.example's registrable domain is shop.example.
    fn probe(host: &str) -> Option<String> {
        PROBES.with(|n| n.set(n.get() + 1));
        host.strip_prefix("www.").map(str::to_string)
    }

    fn probes() -> u32 {
        PROBES.with(std::cell::Cell::get)
    }

    fn cookie_line<'a>(l: &'a [String], name: &str) -> Option<&'a String> {
        l.iter().find(|l| l.starts_with(&(String::from("cookie ") + name + "=")))
    }

    #[test]
    fn the_domain_is_probed_only_once_a_cookie_may_be_written() {
        let p = PageFacts { registrable_domain: Some(probe), ..page("https://www.shop.example/?fbclid=F1", "") };
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#;
        let (mut tag, _) = init_with(CFG, &p, pre(&[("consent", denied)], false));
        tag.page(&PageFacts { url: "https://www.shop.example/next?fbclid=F2".into(), ..p.clone() }, &mut Counter(3));
        assert_eq!(probes(), 0, "no test cookie while both storages are denied");

        let update = parse("\"update\"").unwrap();
        let out = tag.consent(&update, &parse(r#"{"ad_storage":"granted","ad_user_data":"granted"}"#).unwrap(), &p);
        assert_eq!(probes(), 1, "probed when _fbp may be set");
        let l = lines(&out.effects);
        // Made host-only for www.shop.example (subdomainIndex 2), written on shop.example (1).
        let fbp = cookie_line(&l, "_fbp").expect("_fbp");
        assert!(fbp.starts_with("cookie _fbp=fb.1.1700000000000.") && fbp.contains("; Domain=shop.example;"), "{fbp}");
        assert_eq!(cookie_line(&l, "_fbc").map(String::as_str), Some("cookie _fbc=fb.1.1700000000000.F2; Max-Age=7776000; Path=/; Domain=shop.example; SameSite=Lax; Secure"));
        assert!(cookie_line(&l, "_tandem_cid").is_none(), "the client id waits for analytics_storage: {l:#?}");
        let ev = body_of(&tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(40)));
        let value = |name: &str| ev.get("user_data").and_then(|u| u.get(name)).and_then(Value::as_str).map(str::to_string);
        assert_eq!(value("fbp").as_deref(), fbp.strip_prefix("cookie _fbp=").and_then(|c| c.split(';').next()), "events carry the cookie's value");
        assert_eq!(value("fbc").as_deref(), Some("fb.1.1700000000000.F2"));

        let out = tag.consent(&update, &parse(r#"{"analytics_storage":"granted"}"#).unwrap(), &p);
        let cid = lines(&out.effects).into_iter().find(|l| l.starts_with("cookie _tandem_cid=")).expect("client id cookie");
        assert!(cid.contains("; Domain=shop.example;"), "{cid}");
        assert_eq!(probes(), 1, "probed once");
    }

    #[test]
    fn with_a_cookie_allowed_at_init_the_probe_runs_before_the_first_cookie_is_made() {
        let p = PageFacts { registrable_domain: Some(probe), ..page("https://www.shop.example/?fbclid=F1", "") };
        let (_, out) = init_with(CFG, &p, Pre::default());
        assert_eq!(probes(), 1);
        let l = lines(&out.effects);
        assert_eq!(cookie_line(&l, "_fbc").map(String::as_str), Some("cookie _fbc=fb.1.1700000000000.F1; Max-Age=7776000; Path=/; Domain=shop.example; SameSite=Lax; Secure"));
        // A configured cookieDomain needs none.
        let (_, out) = init_with(r#"{"cookieDomain":"shop.example","meta":{"pixelId":"123456789012345"}}"#, &p, Pre::default());
        assert_eq!(probes(), 1);
        assert!(cookie_line(&lines(&out.effects), "_fbp").is_some_and(|c| c.starts_with("cookie _fbp=fb.1.") && c.contains("Domain=shop.example")));
    }

    #[test]
    fn denied_ad_storage_reads_nothing_earlier_visits_left_until_granted() {
        let mut p = page("https://www.shop.example/?gclid=NEW&utm_source=mail", "_fbp=fb.1.1600000000000.999; _fbc=fb.1.1690000000000.OLD; _ttp=tt1; _tandem_cid=abc");
        p.stored_attribution = Some(r#"{"click_ids":{"gclid":{"value":"STORED","ts":1699990000000},"msclkid":{"value":"M1","ts":1699990000000}},"utm":{"first":{"source":"news","ts":1699990000000}}}"#.into());
        let only_user_data = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"denied"}]"#;
        let (mut tag, out) = init_with(CFG, &p, pre(&[("consent", only_user_data)], false));
        let text = body_of(&out).to_json();
        for earlier in ["fb.1.1600000000000.999", "OLD", "STORED", "M1", "news"] {
            assert!(!text.contains(earlier), "{earlier} was read while ad_storage is denied: {text}");
        }
        assert!(text.contains(r#""gclid":{"value":"NEW""#) && text.contains(r#""source":"mail""#), "this page's URL still counts: {text}");
        let t = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(100));
        assert!(!body_of(&t).to_json().contains("tt1"), "no _ttp while denied");
        assert!(!tag.needs_cookies_to_emit(), "nor are the cookies read for it");

        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted"}"#).unwrap(), &p);
        assert!(tag.needs_cookies_to_emit(), "_ttp is looked for once granted");
        let l = lines(&out.effects);
        assert!(cookie_line(&l, "_fbp").is_none() && cookie_line(&l, "_fbc").is_none(), "the cookies there are kept: {l:#?}");
        let stored = l.iter().find(|l| l.starts_with("store tandem:attribution ")).expect("attribution stored");
        assert_eq!(stored, r#"store tandem:attribution {"click_ids":{"gclid":{"value":"NEW","ts":1700000000000},"msclkid":{"value":"M1","ts":1699990000000}},"utm":{"first":{"source":"news","ts":1699990000000},"last":{"source":"mail","ts":1700000000000}}}"#);
        let ev = body_of(&tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(40)));
        let user = ev.get("user_data").unwrap();
        let field = |name: &str| user.get(name).and_then(Value::as_str);
        assert_eq!((field("fbp"), field("fbc"), field("ttp")), (Some("fb.1.1600000000000.999"), Some("fb.1.1690000000000.OLD"), Some("tt1")));
        assert!(ev.get("click_ids").and_then(|c| c.get("msclkid")).is_some(), "{}", ev.to_json());
    }

    #[test]
    fn while_ad_storage_is_denied_the_landings_with_attribution_are_kept_for_the_grant_at_most_32() {
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"denied"}]"#;
        let p = page("https://www.shop.example/?utm_source=mail", "");
        let (mut tag, _) = init_with(CFG, &p, pre(&[("consent", denied)], false));
        let at = |i: u64, url: String| PageFacts { url, now_ms: NOW + 2000 * (i + 1), ..p.clone() };
        // An SPA that keeps its UTMs on every route, an ad click, then routes that keep its gclid.
        for i in 0..40u64 {
            tag.page(&at(i, format!("https://www.shop.example/p{i}?utm_source=mail")), &mut Counter(i as u8));
        }
        assert_eq!(tag.unread_landings.len(), 32, "bounded");
        tag.page(&at(40, "https://www.shop.example/b?gclid=G2&utm_source=ads".into()), &mut Counter(40));
        for i in 41..60u64 {
            tag.page(&at(i, format!("https://www.shop.example/p{i}?gclid=G2")), &mut Counter(i as u8));
        }
        assert_eq!(tag.unread_landings.len(), 32);
        assert!(tag.unread_landings[0].0.ends_with("/?utm_source=mail") && tag.unread_landings[31].0.ends_with("/b?gclid=G2&utm_source=ads"), "the first and the latest that changed something");
        let update = PageFacts { now_ms: NOW + 300_000, ..p.clone() };
        tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted"}"#).unwrap(), &update);
        let stored = tag.attribution.to_json();
        assert!(stored.contains(r#""gclid":{"value":"G2","ts":1700000082000}"#) && stored.contains(r#""first":{"source":"mail","ts":1700000000000}"#) && stored.contains(r#""last":{"source":"ads""#), "{stored}");
    }

    /// The bound keeps what the former `Vec::remove(1)` kept: the first landing, then the latest,
    /// in order, at every step of 100 landings that each change the last touch.
    #[test]
    fn the_landings_bound_drops_the_second_as_vec_remove_did() {
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"denied"}]"#;
        let p = page("https://www.shop.example/?utm_source=s0", "");
        let (mut tag, _) = init_with(CFG, &p, pre(&[("consent", denied)], false));
        let mut model = tag.unread_landings.clone();
        for i in 1..100u64 {
            let facts = PageFacts { url: format!("https://www.shop.example/p{i}?utm_source=s{i}"), now_ms: NOW + 2000 * i, ..p.clone() };
            tag.page(&facts, &mut Counter(i as u8));
            if model.len() == 32 {
                model.remove(1);
            }
            model.push((facts.url.clone(), facts.now_ms));
            assert_eq!(tag.unread_landings, model, "landing {i}");
        }
    }

    #[test]
    fn on_grant_an_fbc_already_set_is_kept_unless_this_page_brought_another_click() {
        let cookies = "_fbc=fb.1.1690000000000.OLD";
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"denied"}]"#;
        for (url, written) in [("https://www.shop.example/?fbclid=OLD", None), ("https://www.shop.example/?fbclid=NEW", Some("fb.1.1700000000000.NEW"))] {
            let p = page(url, cookies);
            let (mut tag, _) = init_with(CFG, &p, pre(&[("consent", denied)], false));
            let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted"}"#).unwrap(), &p);
            let l = lines(&out.effects);
            let line = cookie_line(&l, "_fbc").map(|c| c.trim_start_matches("cookie _fbc=").split(';').next().unwrap_or_default());
            assert_eq!(line, written, "{url}: {l:#?}");
            assert_eq!(tag.fbc.as_deref(), Some(written.unwrap_or("fb.1.1690000000000.OLD")), "{url}");
        }
    }

    #[test]
    fn a_regional_denial_is_not_granted_again_by_a_default_without_region() {
        let p = page("https://www.shop.example/?fbclid=F1", "");
        let calls = [
            ("consent", r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied","region":["AT","DE"]}]"#),
            ("consent", r#"["default",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}]"#),
        ];
        let (_, out) = init_with(CFG, &p, pre(&calls, false));
        let l = lines(&out.effects);
        assert!(cookie_line(&l, "_fbp").is_none() && cookie_line(&l, "_fbc").is_none() && !l.iter().any(|l| l.contains("grant")), "{l:#?}");
        assert!(l.contains(&String::from(r#"gtag["consent","default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#)), "{l:#?}");
    }

    #[test]
    fn user_data_denied_strips_every_identifier() {
        let p = page("https://www.shop.example/?fbclid=F1&ttclid=E.C.P.t", "_fbp=fb.1.1.2; _ttp=tt1; _tandem_cid=abc");
        let calls = [("consent", r#"["default",{"ad_user_data":"denied"}]"#), ("identify", r#"[{"email":"a@example.com","phone":"+1 650 555 1212"}]"#)];
        let (mut tag, out) = init_with(CFG, &p, pre(&calls, false));
        let l = lines(&out.effects);
        assert!(!l.iter().any(|l| l.contains("identify") || l.contains("\"set\",\"user_data\"") || l.contains("\"em\"")), "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with("cookie _fbc=")), "ad_storage is granted: cookies are written");
        let t = tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":1,"currency":"EUR"}"#).unwrap(), &Value::Null, &p, &mut Counter(3));
        let text = body_of(&t).to_json();
        for needle in ["fb.1.", "tt1", "E.C.P", "F1", "\"em\"", "google_user_data", "tiktok_user_data"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
        assert!(text.contains(r#""ad_user_data":"denied""#) && text.contains(r#""client_id":"abc""#), "{text}");
        assert!(text.contains(r#""event_source_url":"https://www.shop.example/""#), "{text}");
        assert_eq!(without_click_ids("https://a.example/p?x=1&gclid=G&y=2#top"), "https://a.example/p?x=1&y=2#top");
        assert_eq!(without_click_ids("https://a.example/p?gclid=G"), "https://a.example/p");
    }

    #[test]
    fn wait_for_update_holds_events_with_their_timestamps() {
        let p = page("https://www.shop.example/", "");
        let calls = [("consent", r#"["default",{"ad_storage":"denied","ad_user_data":"denied","wait_for_update":500}]"#)];
        let (mut tag, out) = init_with(CFG, &p, pre(&calls, false));
        assert!(!lines(&out.effects).iter().any(|l| l.starts_with("send") || l.contains("PageView")), "{:?}", out.effects);
        assert_eq!(tag.wake_at(), Some(NOW + 500));
        let pv = out.event_id.clone().unwrap();
        let mut later = p.clone();
        later.now_ms = NOW + 200;
        let lead = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &later, &mut Counter(50));
        assert!(lead.event_id.is_some() && lead.effects.is_empty());
        // The update arrives: both go out, with their original times.
        let mut at = p.clone();
        at.now_ms = NOW + 300;
        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted","ad_user_data":"granted"}"#).unwrap(), &at);
        let bodies: Vec<Value> = out.effects.iter().filter_map(|e| if let Effect::Send { event, .. } = e { parse(&crate::core::payload::tests::wrap(event)).ok() } else { None }).collect();
        assert_eq!(bodies.len(), 2);
        let ev = |b: &Value| match b.get("events") {
            Some(Value::Array(e)) => e[0].clone(),
            _ => panic!(),
        };
        assert_eq!(ev(&bodies[0]).get("event_id").and_then(Value::as_str), Some(pv.as_str()));
        assert_eq!(ev(&bodies[0]).get("event_time_ms").map(Value::to_json).as_deref(), Some("1700000000000"));
        assert_eq!(ev(&bodies[1]).get("event_time_ms").map(Value::to_json).as_deref(), Some("1700000000200"));
        assert_eq!(tag.wake_at(), None);
    }

    #[test]
    fn gtag_waits_as_long_as_tandem_under_the_default_the_site_gave() {
        let calls = [("consent", r#"["default",{"ad_storage":"granted","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"granted","wait_for_update":500}]"#)];
        let gtag = |effects: &[Effect]| lines(effects).into_iter().filter(|l| l.starts_with(r#"gtag["consent""#)).collect::<Vec<_>>();
        // The wasm started 200 ms after the site's default: gtag waits the 300 ms left, as Tandem does.
        let p = PageFacts { now_ms: NOW + 200, ..page("https://www.shop.example/", "") };
        let (mut tag, out) = init_with(CFG, &p, pre(&calls, false));
        assert_eq!(gtag(&out.effects), [r#"gtag["consent","default",{"ad_storage":"granted","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"granted","wait_for_update":300}]"#]);
        assert!(tag.consent_state(NOW + 200).pending());
        // Another default during the wait is not sent as an update, which would end gtag's wait.
        let during = PageFacts { now_ms: NOW + 300, ..p.clone() };
        let out = tag.consent(&parse("\"default\"").unwrap(), &parse(r#"{"ad_personalization":"denied"}"#).unwrap(), &during);
        assert!(gtag(&out.effects).is_empty(), "{:?}", out.effects);
        // At the deadline the state in force, as an update, without a wait.
        let out = tag.wake(&PageFacts { now_ms: NOW + 500, ..p.clone() });
        assert_eq!(gtag(&out.effects), [r#"gtag["consent","update",{"ad_storage":"granted","analytics_storage":"denied","ad_user_data":"granted","ad_personalization":"denied"}]"#]);
    }

    #[test]
    fn a_default_with_a_wait_after_an_update_leaves_the_update_in_force() {
        let p = page("https://www.shop.example/", "");
        let all = r#"["update",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}]"#;
        let (mut tag, _) = init_with(CFG, &p, pre(&[("consent", all)], false));
        let out = tag.consent(&parse("\"default\"").unwrap(), &parse(r#"{"ad_storage":"denied","wait_for_update":500}"#).unwrap(), &p);
        let l = lines(&out.effects);
        assert!(!l.iter().any(|l| l.contains("denied") || l.contains("revoke") || l.contains("holdConsent")), "{l:#?}");
        assert!(tag.consent_state(NOW).ad_pixels() && !tag.consent_state(NOW).pending() && tag.wake_at().is_none());
        let t = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(40));
        assert!(body_of(&t).get("user_data").and_then(|u| u.get("fbp")).is_some(), "sent now, with identifiers");
    }

    #[test]
    fn a_purchase_released_by_consent_keeps_what_another_tab_logged() {
        let p = page("https://www.shop.example/", "");
        let calls = [("consent", r#"["default",{"ad_storage":"denied","ad_user_data":"denied","wait_for_update":500}]"#)];
        let (mut tag, _) = init_with(CFG, &p, pre(&calls, false));
        let held = tag.track(&parse("\"Purchase\"").unwrap(), &parse(r#"{"value":5,"currency":"EUR","order_id":"A-1"}"#).unwrap(), &Value::Null, &PageFacts { now_ms: NOW + 100, ..p.clone() }, &mut Counter(40));
        assert!(held.effects.is_empty(), "{:?}", held.effects);
        // Meanwhile another tab sent order Z-9 and wrote the log.
        let at = PageFacts { now_ms: NOW + 300, stored_sent: Some(r#"[["o:Z-9",1700000000200]]"#.into()), ..p.clone() };
        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted","ad_user_data":"granted"}"#).unwrap(), &at);
        let written: Vec<String> = lines(&out.effects).into_iter().filter(|l| l.starts_with("store tandem:sent")).collect();
        assert_eq!(written, [r#"store tandem:sent [["o:Z-9",1700000000200],["o:A-1",1700000000100]]"#], "{:#?}", lines(&out.effects));
    }

    #[test]
    fn a_page_view_after_a_wait_ran_out_applies_the_change_first() {
        let p = page("https://www.shop.example/?gclid=G1", "");
        let calls = [("consent", r#"["default",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","wait_for_update":500}]"#)];
        let (mut tag, out) = init_with(CFG, &p, pre(&calls, false));
        let held = out.event_id.clone().unwrap();
        assert!(!lines(&out.effects).iter().any(|l| l.starts_with("cookie ") || l.starts_with("send ")), "{:?}", out.effects);
        // The deadline passes and the site reports a navigation before the shell's timer runs.
        let later = PageFacts { url: "https://www.shop.example/next".into(), now_ms: NOW + 600, ..p.clone() };
        let out = tag.page(&later, &mut Counter(60));
        let ids: Vec<&str> = out.effects.iter().filter_map(|e| if let Effect::Send { event_id, .. } = e { Some(event_id.as_str()) } else { None }).collect();
        assert_eq!(ids, [held.as_str(), out.event_id.as_deref().unwrap()], "the held PageView goes first, then the new one");
        let l = lines(&out.effects);
        assert!(l.iter().any(|l| l.starts_with("cookie _fbp=")) && l.iter().any(|l| l.starts_with(r#"gtag["consent","update""#)), "{l:#?}");
        assert_eq!(tag.wake_at(), None);
    }

    #[test]
    fn a_track_after_a_wait_ran_out_applies_the_change_first() {
        let p = page("https://www.shop.example/", "");
        let calls = [("consent", r#"["default",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","wait_for_update":500}]"#)];
        let later = PageFacts { now_ms: NOW + 600, ..p.clone() };
        let lead = parse("\"Lead\"").unwrap();
        for deferred in [false, true] {
            let (mut tag, out) = init_with(CFG, &p, pre(&calls, false));
            let held = out.event_id.clone().unwrap();
            // The deadline passed before the shell's timer ran.
            let mut out = if deferred { tag.track_deferred(&lead, &Value::Null, &Value::Null, &later, &mut Counter(60)) } else { tag.track(&lead, &Value::Null, &Value::Null, &later, &mut Counter(60)) };
            let id = out.event_id.clone().unwrap();
            if deferred {
                out.append(&mut tag.emit_deferred(&later));
            }
            let ids: Vec<&str> = out.effects.iter().filter_map(|e| if let Effect::Send { event_id, .. } = e { Some(event_id.as_str()) } else { None }).collect();
            assert_eq!(ids, [held.as_str(), id.as_str()], "deferred={deferred}: the held PageView goes first");
            let l = lines(&out.effects);
            let at = |f: &dyn Fn(&String) -> bool| l.iter().position(f).unwrap_or(usize::MAX);
            let first_lead = at(&|l| l.contains("Lead"));
            assert!(at(&|l| l.starts_with(r#"gtag["consent","update""#)) < first_lead && at(&|l| l == "ttq.grantConsent[]") < first_lead, "deferred={deferred}: {l:#?}");
            assert_eq!(tag.wake_at(), None);
        }
    }

    #[test]
    fn basic_mode_drops_without_consent_and_what_waits_on_denial() {
        let p = page("https://www.shop.example/", "");
        let basic = CFG.replace("{\"meta\"", "{\"consentMode\":\"basic\",\"meta\"");
        let calls = [("consent", r#"["default",{"ad_storage":"denied","ad_user_data":"denied"}]"#)];
        let (mut tag, out) = init_with(&basic, &p, pre(&calls, false));
        assert!(out.event_id.is_none() && !lines(&out.effects).iter().any(|l| l.starts_with("send") || l.contains("PageView")));
        let t = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(5));
        assert!(t.event_id.is_none() && t.effects.is_empty() && t.warnings[0].contains("basic"));
        // With a wait: held, then dropped when the update denies.
        let calls = [("consent", r#"["default",{"ad_storage":"denied","wait_for_update":1000}]"#)];
        let (mut tag, _) = init_with(&basic, &p, pre(&calls, false));
        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"denied"}"#).unwrap(), &p);
        assert!(!lines(&out.effects).iter().any(|l| l.starts_with("send")) && out.warnings.iter().any(|w| w.contains("dropped")), "{out:?}");
        // And on the deadline with the default's (granted) values: released.
        let calls = [("consent", r#"["default",{"wait_for_update":1000}]"#)];
        let (mut tag, _) = init_with(&basic, &p, pre(&calls, false));
        let mut at = p.clone();
        at.now_ms = NOW + 1000;
        let out = tag.wake(&at);
        assert!(lines(&out.effects).iter().any(|l| l.starts_with("send")), "{out:?}");
    }

    /// In debug mode a consent change is logged with the state in force, as one line.
    #[test]
    fn debug_logs_each_consent_change() {
        let p = page("https://www.shop.example/", "");
        let (mut tag, _) = init_with(r#"{"debug":true,"autoPageView":false}"#, &p, Pre::default());
        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"denied"}"#).unwrap(), &p);
        let logs: Vec<String> = lines(&out.effects).into_iter().filter(|l| l.starts_with("log consent: ")).collect();
        assert_eq!(logs, [String::from("log consent: ") + &tag.consent_state(NOW).to_json()]);
        assert!(logs[0].contains(r#""ad_storage":"denied""#), "{logs:?}");
    }

    /// The warnings of an event held by a wait and of one dropped in basic mode, word for word.
    #[test]
    fn held_and_dropped_events_are_warned_of_by_name() {
        let p = page("https://www.shop.example/", "");
        let lead = |tag: &mut Tag| tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &parse(r#"{"eventId":"l-1"}"#).unwrap(), &p, &mut Counter(5));
        let waiting = [("consent", r#"["default",{"ad_storage":"denied","wait_for_update":1000}]"#)];
        let (mut tag, _) = init_with(r#"{"autoPageView":false}"#, &p, pre(&waiting, false));
        let held = lead(&mut tag);
        assert_eq!(held.event_id.as_deref(), Some("l-1"));
        assert_eq!(held.warnings, ["consent: Lead waits for a consent update (wait_for_update) event_id=l-1"]);
        let denied = [("consent", r#"["default",{"ad_storage":"denied","ad_user_data":"denied"}]"#)];
        let (mut tag, _) = init_with(r#"{"consentMode":"basic","autoPageView":false}"#, &p, pre(&denied, false));
        let dropped = lead(&mut tag);
        assert_eq!(dropped.event_id, None);
        assert_eq!(dropped.warnings, ["consent: Lead not sent (consentMode 'basic' needs ad_storage and ad_user_data granted)"]);
    }

    #[test]
    fn basic_mode_sets_up_no_platform_until_consent_allows_sending() {
        let p = page("https://www.shop.example/", "");
        let cfg = r#"{"consentMode":"basic","meta":{"pixelId":"123456789012345","load":true},"google":{"tagId":"G-ABC123","load":true},"tiktok":{"pixelId":"CABCDEFGHIJ1234567890","load":true}}"#;
        let setup = |l: &[String]| l.iter().filter(|l| l.starts_with("load ") || l.starts_with(r#"fbq["init""#) || l.starts_with(r#"gtag["config""#)).count();
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#;
        let granted = parse(r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}"#).unwrap();
        let (mut tag, out) = init_with(cfg, &p, pre(&[("consent", denied), ("identify", r#"[{"email":"a@example.com"}]"#)], false));
        assert_eq!(setup(&lines(&out.effects)), 0, "{:#?}", lines(&out.effects));
        // The site's own gtag and ttq (if any) hear the denial; nothing is set up or identified.
        let l = lines(&out.effects);
        assert!(l.iter().any(|l| l.starts_with(r#"gtag["consent","default""#) && l.contains("denied")) && l.contains(&String::from("ttq.revokeConsent[]")), "{l:#?}");
        assert!(!l.iter().any(|l| l.starts_with("ttq.identify") || l.starts_with(r#"gtag["set","user_data""#)), "{l:#?}");
        // A change that still does not allow sending sets up nothing, but is passed on.
        let out = tag.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_user_data":"granted"}"#).unwrap(), &p);
        let l = lines(&out.effects);
        assert_eq!(setup(&l), 0, "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with(r#"gtag["consent","update""#)) && !l.iter().any(|l| l.starts_with("ttq.identify") || l.starts_with(r#"gtag["set","user_data""#)), "{l:#?}");
        assert!(tag.identify(&parse(r#"{"phone":"+16505551212"}"#).unwrap(), NOW).effects.is_empty());
        let out = tag.consent(&parse("\"update\"").unwrap(), &granted, &p);
        let l = lines(&out.effects);
        assert_eq!(setup(&l), 5, "{l:#?}");
        assert!(l.contains(&String::from(r#"gtag["consent","update",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}]"#)), "{l:#?}");
        assert!(l.iter().any(|l| l.starts_with(r#"fbq["init","123456789012345",{"em":""#)) && l.iter().filter(|l| l.starts_with("ttq.identify")).count() == 1, "identity handed over once: {l:#?}");
        let t = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &p, &mut Counter(40));
        assert_eq!(setup(&lines(&t.effects)), 0, "once");
        assert!(lines(&t.effects).iter().any(|l| l.starts_with(r#"fbq["track","Lead""#)));
        // Held by a wait, then granted: the setup comes before the held PageView's calls.
        let waiting = r#"["default",{"ad_storage":"denied","wait_for_update":500}]"#;
        let (mut tag, out) = init_with(cfg, &p, pre(&[("consent", waiting)], false));
        assert!(out.event_id.is_some() && setup(&lines(&out.effects)) == 0, "{:#?}", lines(&out.effects));
        let l = lines(&tag.consent(&parse("\"update\"").unwrap(), &granted, &p).effects);
        let last_setup = l.iter().rposition(|l| l.starts_with("load ") || l.starts_with(r#"gtag["config""#) || l.starts_with(r#"fbq["init""#));
        let first_event = l.iter().position(|l| l.contains("PageView") || l.starts_with("ttq.page") || l.starts_with("send "));
        assert!(setup(&l) == 5 && last_setup < first_event && first_event.is_some(), "{l:#?}");
    }

    #[test]
    fn a_kept_back_sent_log_is_merged_with_other_tabs_when_it_is_written() {
        let p = page("https://www.shop.example/thanks", "");
        let buy = |tag: &mut Tag, p: &PageFacts, order: &str| {
            let params = parse(&format!(r#"{{"value":5,"currency":"EUR","order_id":"{order}"}}"#)).unwrap();
            tag.track(&parse("\"Purchase\"").unwrap(), &params, &Value::Null, p, &mut Counter(7))
        };
        let stored = |o: &Outcome| o.effects.iter().rev().find_map(|e| match e {
            Effect::Store { key, value } if *key == sent::STORAGE_KEY => Some(value.clone()),
            _ => None,
        });
        let denied = r#"["default",{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}]"#;
        let (mut tab_a, _) = init_with(CFG, &p, pre(&[("consent", denied)], false));
        assert!(stored(&buy(&mut tab_a, &p, "A-1")).is_none(), "kept back while ad_storage is denied");
        let (mut tab_b, _) = init_with(CFG, &p, Pre::default());
        let by_b = stored(&buy(&mut tab_b, &p, "B-2")).expect("B stores");
        let later = PageFacts { stored_sent: Some(by_b), ..p.clone() };
        let grant = tab_a.consent(&parse("\"update\"").unwrap(), &parse(r#"{"ad_storage":"granted"}"#).unwrap(), &later);
        let written = stored(&grant).expect("written on grant");
        assert!(written.contains("o:B-2") && written.contains("o:A-1"), "{written}");
    }

    #[test]
    fn a_wait_still_running_at_pagehide_releases_what_it_held_under_the_defaults_values() {
        let p = page("https://www.shop.example/", "");
        let waiting = r#"["default",{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"denied","ad_personalization":"denied","wait_for_update":5000}]"#;
        let (mut tag, out) = init_with(CFG, &p, pre(&[("consent", waiting)], false));
        assert!(sends(&out) == 0, "the PageView is held");
        let later = PageFacts { now_ms: NOW + 100, ..p.clone() };
        let lead = tag.track(&parse("\"Lead\"").unwrap(), &Value::Null, &Value::Null, &later, &mut Counter(3));
        assert!(sends(&lead) == 0, "the Lead is held");
        let gone = PageFacts { now_ms: NOW + 200, ..p.clone() };
        let out = tag.end_wait_at_unload(&gone);
        assert_eq!(sends(&out), 2, "{:#?}", lines(&out.effects));
        assert_eq!(tag.consent_state(NOW + 200).to_json(), r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"denied","ad_personalization":"denied"}"#);
        assert!(tag.wake_at().is_none());
        assert!(out.effects.iter().all(|e| !matches!(e, Effect::Send { event, .. } if event.contains("\"fbp\""))), "released under ad_user_data denied");
    }

    #[test]
    fn gpc_without_managed_consent_denies_user_data_only() {
        let p = page("https://www.shop.example/?fbclid=F1", "");
        let (_, out) = init_with(CFG, &p, pre(&[("identify", r#"[{"email":"a@example.com"}]"#)], true));
        let l = lines(&out.effects);
        assert!(l.iter().any(|l| l.starts_with("cookie _fbp=")), "storage is still granted");
        assert!(l.contains(&String::from(r#"fbq["dataProcessingOptions",["LDU"],0,0]"#)), "{l:#?}");
        assert!(l.contains(&String::from(r#"gtag["consent","update",{"ad_user_data":"denied","ad_personalization":"denied"}]"#)), "{l:#?}");
        let ev = body_of(&out);
        assert_eq!(ev.get("user_data").map(Value::to_json).as_deref(), Some("{}"));
        assert_eq!(ev.get("consent").and_then(|c| c.get("gpc")), Some(&Value::Bool(true)));
        // gpc: 'ignore'
        let (_, out) = init_with(&CFG.replace("{\"meta\"", "{\"gpc\":\"ignore\",\"meta\""), &p, pre(&[], true));
        assert!(body_of(&out).get("user_data").and_then(|u| u.get("fbp")).is_some());
        assert!(!lines(&out.effects).iter().any(|l| l.contains("consent")));
    }

    #[test]
    fn unmanaged_pages_look_as_before_but_report_the_state() {
        let p = page("https://www.shop.example/", "");
        let (_, out) = init_with(CFG, &p, pre(&[], false));
        assert!(!lines(&out.effects).iter().any(|l| l.contains("consent")));
        assert_eq!(
            body_of(&out).get("consent").map(Value::to_json).as_deref(),
            Some(r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","managed":false}"#)
        );
    }
}
