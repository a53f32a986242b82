//! Consent: Google Consent Mode v2 purposes as a state machine, and what each one allows.
//!
//! Four purposes (`ad_storage`, `analytics_storage`, `ad_user_data`, `ad_personalization`), each
//! granted or denied, set by `tandem('consent', 'default' | 'update', {…})` with gtag's semantics:
//! a default may come before init and carry `wait_for_update` (ms), ignored after an update; an
//! update applies at once and ends the wait. A default with `region` that denies a purpose holds
//! against a default without one (see `Consent::regional`). While a default's wait runs, every
//! purpose is *pending*: events wait in memory (with their original timestamps) until an update or
//! the deadline, then go out under the state in force.
//!
//! A site that never calls consent is *not managed*: every purpose is granted, except that Global
//! Privacy Control (`navigator.globalPrivacyControl`) denies `ad_user_data` and `ad_personalization`
//! unless the config says `gpc: 'ignore'`. GPC also overrides a site's grant of those two: it is
//! the visitor's own signal.
//!
//! What each purpose controls is enforced in `tag.rs` through the predicates below and
//! documented in README.md ("Consent").

use crate::core::error::TagError;
use crate::core::config::bad;
use crate::core::json::{whole, Value, W};

crate::messages! {
    CONSENT_KIND = "n0" "tandem('consent', …) takes 'default' or 'update' first, then {ad_storage: 'granted' | 'denied', …}";
    CONSENT_VALUES = "n1" "tandem('consent', kind, values): values must be an object like {ad_storage: 'denied'}";
    CONSENT_REGION = "n2" "consent region must be an array of region codes like ['AT', 'DE']";
    DEFAULT_ONLY = "n3" " only applies to a consent default; ignored in an update";
    CONSENT_WAIT = "n4" "wait_for_update must be a whole number of milliseconds";
    KNOWN_PURPOSES = "n5" " (known: ad_storage, analytics_storage, ad_user_data, ad_personalization)";
    GRANTED_OR_DENIED = "n6" " must be 'granted' or 'denied'; left unchanged";
    CONSENT_PURPOSE = "n7" "consent purpose";
    ADVANCED_OR_BASIC = "n8" "must be \"advanced\" or \"basic\"; using \"advanced\"";
    HONOR_OR_IGNORE = "n9" "must be \"honor\" or \"ignore\"; using \"honor\"";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Pending,
    Granted,
    Denied,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Pending => "pending",
            Signal::Granted => "granted",
            Signal::Denied => "denied",
        }
    }
}

/// The purposes, in Consent Mode's order; indexes into `[Signal; 4]`.
pub const PURPOSES: [&str; 4] = ["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"];
pub const AD_STORAGE: usize = 0;
pub const ANALYTICS_STORAGE: usize = 1;
pub const AD_USER_DATA: usize = 2;
pub const AD_PERSONALIZATION: usize = 3;

/// Longest `wait_for_update` honoured; a longer one is capped (events should not wait for ever).
pub const MAX_WAIT_MS: u64 = 30_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Events are counted while consent is denied, without identifiers, cookies or storage.
    Advanced,
    /// Nothing is sent at all (no pixels, no endpoint) unless ad_storage and ad_user_data are granted.
    Basic,
}

/// The init config's consent switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub honor_gpc: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { mode: Mode::Advanced, honor_gpc: true }
    }
}

/// Reads `consentMode` and `gpc` from the init config (bad values fall back with an error, made
/// by the config's own `bad`, as its other options' are).
pub fn settings(config: &Value, errors: &mut Vec<TagError>) -> Settings {
    let mut s = Settings::default();
    match config.get("consentMode") {
        None | Some(Value::Null) => {}
        Some(Value::String(m)) if m == "advanced" => {}
        Some(Value::String(m)) if m == "basic" => s.mode = Mode::Basic,
        Some(other) => bad(errors, "consentMode", ADVANCED_OR_BASIC, other),
    }
    match config.get("gpc") {
        None | Some(Value::Null) => {}
        Some(Value::String(g)) if g == "honor" => {}
        Some(Value::String(g)) if g == "ignore" => s.honor_gpc = false,
        Some(other) => bad(errors, "gpc", HONOR_OR_IGNORE, other),
    }
    s
}

/// An invalid_consent error about `v`: one function for `Consent::apply`'s five, which each
/// inlined the value's JSON, the error and its push.
fn invalid(errors: &mut Vec<TagError>, message: &str, v: &Value) {
    errors.push(TagError::new("invalid_consent", message, v.to_json()));
}

/// What the site said, before GPC and settings are applied. Lives in the shell before init (so a
/// default set before `init` applies before init's first effect) and in the `Tag` after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consent {
    /// `None`: the site never set this purpose.
    site: [Option<bool>; 4],
    /// Purposes set by an update (a later default does not override them, as in gtag).
    updated: [bool; 4],
    /// Purposes a default with `region` denied. gtag applies it to visitors in those regions only,
    /// whatever the order of the defaults; Tandem cannot tell where the visitor is, so between
    /// defaults the denial holds.
    regional: [bool; 4],
    /// A default's `wait_for_update` deadline (Unix ms), until an update or the deadline passes.
    wait_until: Option<u64>,
    /// The site called consent at all.
    managed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Default,
    Update,
}

impl Consent {
    pub fn managed(&self) -> bool {
        self.managed
    }

    /// True while a default's wait runs at `now_ms`.
    pub fn waiting(&self, now_ms: u64) -> bool {
        self.wait_until.is_some_and(|t| now_ms < t)
    }

    /// Ends a running wait now, as its deadline would (the page is going away).
    pub fn end_wait(&mut self) {
        self.wait_until = None;
    }

    pub fn wait_until(&self) -> Option<u64> {
        self.wait_until
    }

    /// Ends a wait whose deadline passed; true when it did (the caller releases held events).
    pub fn expire(&mut self, now_ms: u64) -> bool {
        if self.wait_until.is_some_and(|t| now_ms >= t) {
            self.wait_until = None;
            return true;
        }
        false
    }

    /// `tandem('consent', kind, values)`: applies what is valid, reports the rest. Nothing is
    /// returned: the tag compares the state in force with the one it last told (a copy of the
    /// whole Consent to compare with here was code no caller used).
    pub fn apply(&mut self, kind: &Value, values: &Value, now_ms: u64, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) {
        let kind = match kind.as_str() {
            Some("default") => Kind::Default,
            Some("update") => Kind::Update,
            _ => {
                invalid(errors, CONSENT_KIND, kind);
                return;
            }
        };
        let Value::Object(members) = values else {
            invalid(errors, CONSENT_VALUES, values);
            return;
        };
        self.managed = true;
        // A malformed region still counts: the site meant the default for some region.
        let regional = values.get("region").is_some_and(|r| {
            if !matches!(r, Value::Array(codes) if codes.iter().all(|c| c.as_str().is_some())) {
                invalid(errors, CONSENT_REGION, r);
            }
            true
        });
        for (k, v) in members {
            let wait = k == "wait_for_update" || k == "waitForUpdate";
            if wait || k == "region" {
                match kind {
                    Kind::Update => {
                        let mut w = k.clone();
                        w.push_str(DEFAULT_ONLY);
                        warnings.push(w);
                    }
                    _ if wait => match if let Value::Number(n) = v { whole(n) } else { None } {
                        Some(ms) => self.wait_until = if ms == 0 { None } else { Some(now_ms.saturating_add(ms.min(MAX_WAIT_MS))) },
                        None => invalid(errors, CONSENT_WAIT, v),
                    },
                    _ => {}
                }
                continue;
            }
            let Some(i) = PURPOSES.iter().position(|p| *k == **p) else {
                warnings.push(crate::core::error::unknown_key(CONSENT_PURPOSE, k, KNOWN_PURPOSES));
                continue;
            };
            let granted = match v.as_str() {
                Some("granted") => true,
                Some("denied") => false,
                _ => {
                    let mut m = String::from("consent.");
                    m.push_str(k);
                    m.push_str(GRANTED_OR_DENIED);
                    invalid(errors, &m, v);
                    continue;
                }
            };
            match kind {
                Kind::Default if self.updated[i] => {}
                Kind::Default => {
                    if self.site[i] != Some(false) || !(regional || self.regional[i]) {
                        self.site[i] = Some(granted);
                    }
                    self.regional[i] |= regional && !granted;
                }
                Kind::Update => {
                    self.site[i] = Some(granted);
                    self.updated[i] = true;
                }
            }
        }
        // A wait is for the visitor's first choice: once one came, a default cannot make it pending.
        if kind == Kind::Update || self.updated != [false; 4] {
            self.wait_until = None;
        }
    }
}

/// The state in force: what the site said, with GPC and the wait applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub signals: [Signal; 4],
    /// GPC was on and honoured (it denied ad_user_data and ad_personalization).
    pub gpc: bool,
    pub mode: Mode,
    pub managed: bool,
    /// Set at init while a wait runs (`Tag::setup_privacy`): the ms left, and the signals at its
    /// deadline. gtag's default carries both, so Google tags Tandem does not hold wait as well.
    pub wait: Option<(u64, [Signal; 4])>,
}

impl State {
    pub fn of(consent: &Consent, settings: Settings, gpc_on: bool, now_ms: u64) -> State {
        let gpc = gpc_on && settings.honor_gpc;
        let waiting = consent.waiting(now_ms);
        let mut signals = [Signal::Granted; 4];
        for (i, s) in signals.iter_mut().enumerate() {
            *s = if waiting {
                Signal::Pending
            } else if consent.site[i] == Some(false) || (gpc && (i == AD_USER_DATA || i == AD_PERSONALIZATION)) {
                Signal::Denied
            } else {
                Signal::Granted
            };
        }
        State { signals, gpc, mode: settings.mode, managed: consent.managed, wait: None }
    }

    /// Everything granted, nothing managed (tests, and the state of a site that never calls consent).
    pub fn unmanaged() -> State {
        State { signals: [Signal::Granted; 4], gpc: false, mode: Mode::Advanced, managed: false, wait: None }
    }

    pub fn granted(&self, purpose: usize) -> bool {
        self.signals.get(purpose) == Some(&Signal::Granted)
    }

    pub fn pending(&self) -> bool {
        // any(..), not contains: a slice search for Signal was linked for this line alone.
        self.signals.iter().any(|s| *s == Signal::Pending)
    }

    /// `_fbp`, `_fbc`, stored click IDs and UTMs, the sent-conversions log may be written.
    pub fn ad_storage(&self) -> bool {
        self.granted(AD_STORAGE)
    }

    /// The `_tandem_cid` client id cookie may be written (and read).
    pub fn analytics_storage(&self) -> bool {
        self.granted(ANALYTICS_STORAGE)
    }

    /// Some Tandem cookie may be written, so where cookies go may be remembered (the shell's
    /// `cookies::DOMAIN_KEY`).
    pub fn any_cookie(&self) -> bool {
        self.ad_storage() || self.analytics_storage()
    }

    /// Hashed identity, click IDs, fbp/fbc/ttp may be sent.
    pub fn user_data(&self) -> bool {
        self.granted(AD_USER_DATA)
    }

    /// Meta's and TikTok's pixels run only with both ad purposes granted: they set their own
    /// cookies (ad_storage) and send their own identifiers (ad_user_data).
    pub fn ad_pixels(&self) -> bool {
        self.granted(AD_STORAGE) && self.granted(AD_USER_DATA)
    }

    /// Whether an event is sent at all: always in advanced mode; in basic mode only with both ad
    /// purposes granted.
    pub fn may_send(&self) -> bool {
        self.mode == Mode::Advanced || self.ad_pixels()
    }

    /// Whether platforms need to be told anything: the site manages consent, or GPC denied something.
    pub fn mirrored(&self) -> bool {
        self.managed || self.gpc
    }

    /// The payload's `consent` object: the real state of every purpose, never a constant.
    pub fn to_json(&self) -> String {
        let mut w = W::new('{');
        for (i, p) in PURPOSES.iter().enumerate() {
            w.s(p, self.signals[i].as_str());
        }
        if self.gpc {
            w.b("gpc", true);
        }
        if !self.managed {
            w.b("managed", false);
        }
        w.end('}')
    }

    /// gtag's `{ad_storage: 'granted' | 'denied', …}`; with a wait, what the site's default says
    /// and the time left as `wait_for_update` (pending alone would be denied at once).
    pub fn gtag_json(&self, only_user_purposes: bool) -> String {
        let signals = self.wait.map_or(self.signals, |(_, at_deadline)| at_deadline);
        let mut w = W::new('{');
        for (i, p) in PURPOSES.iter().enumerate() {
            if only_user_purposes && i < AD_USER_DATA {
                continue;
            }
            w.s(p, if signals[i] == Signal::Granted { "granted" } else { "denied" });
        }
        if let Some((left_ms, _)) = self.wait {
            w.u("wait_for_update", left_ms);
        }
        w.end('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::parse;

    const T0: u64 = 1_700_000_000_000;

    fn state(c: &Consent, s: Settings, gpc: bool, now: u64) -> String {
        let st = State::of(c, s, gpc, now);
        st.signals.iter().map(|s| &s.as_str()[..1]).collect::<String>()
    }

    fn call(c: &mut Consent, kind: &str, values: &str, now: u64) -> (bool, Vec<TagError>, Vec<String>) {
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let before = c.clone();
        c.apply(&parse(kind).unwrap(), &parse(values).unwrap(), now, &mut e, &mut w);
        (*c != before, e, w)
    }

    /// The state machine as a table: a sequence of calls (kind, values, at ms after T0), then the
    /// state (g/d/p for ad_storage, analytics_storage, ad_user_data, ad_personalization) at a time,
    /// with and without GPC, with GPC honoured (default) or ignored.
    #[test]
    fn state_machine_table() {
        let honor = Settings::default();
        let ignore = Settings { honor_gpc: false, ..honor };
        #[rustfmt::skip]
        let table: &[(&[(&str, &str, u64)], u64, Settings, bool, &str)] = &[
            // Not managed: everything granted; GPC denies the two user purposes unless ignored.
            (&[], 0, honor, false, "gggg"),
            (&[], 0, honor, true, "ggdd"),
            (&[], 0, ignore, true, "gggg"),
            // A default applies at once; unset purposes stay granted.
            (&[("\"default\"", r#"{"ad_storage":"denied","ad_user_data":"denied"}"#, 0)], 0, honor, false, "dgdg"),
            // An update wins over the default.
            (&[("\"default\"", r#"{"ad_storage":"denied"}"#, 0), ("\"update\"", r#"{"ad_storage":"granted"}"#, 5)], 10, honor, false, "gggg"),
            // A default after an update does not undo the update (gtag semantics).
            (&[("\"update\"", r#"{"ad_storage":"granted"}"#, 0), ("\"default\"", r#"{"ad_storage":"denied","analytics_storage":"denied"}"#, 1)], 2, honor, false, "gdgg"),
            // Nor does its wait: the update stays in force, nothing is pending.
            (&[("\"update\"", r#"{"ad_storage":"granted"}"#, 0), ("\"default\"", r#"{"ad_storage":"denied","wait_for_update":500}"#, 1)], 2, honor, false, "gggg"),
            // A regional denial holds against a default without region, in either order; an update wins.
            (&[("\"default\"", r#"{"ad_storage":"denied","ad_user_data":"denied","region":["AT","DE"]}"#, 0), ("\"default\"", r#"{"ad_storage":"granted","ad_user_data":"granted"}"#, 1)], 2, honor, false, "dgdg"),
            (&[("\"default\"", r#"{"ad_storage":"granted"}"#, 0), ("\"default\"", r#"{"ad_storage":"denied","region":["AT"]}"#, 1), ("\"default\"", r#"{"ad_storage":"granted"}"#, 2)], 3, honor, false, "dggg"),
            (&[("\"default\"", r#"{"ad_storage":"denied","region":["AT"]}"#, 0), ("\"update\"", r#"{"ad_storage":"granted"}"#, 1)], 2, honor, false, "gggg"),
            // A regional grant does not lift a denial either.
            (&[("\"default\"", r#"{"ad_storage":"denied"}"#, 0), ("\"default\"", r#"{"ad_storage":"granted","region":["US"]}"#, 1)], 2, honor, false, "dggg"),
            // wait_for_update: pending until the deadline, then the default's values.
            (&[("\"default\"", r#"{"ad_storage":"denied","wait_for_update":500}"#, 0)], 499, honor, false, "pppp"),
            (&[("\"default\"", r#"{"ad_storage":"denied","wait_for_update":500}"#, 0)], 500, honor, false, "dggg"),
            (&[("\"default\"", r#"{"ad_storage":"denied","waitForUpdate":500}"#, 0)], 100, honor, false, "pppp"),
            // An update ends the wait at once.
            (&[("\"default\"", r#"{"ad_storage":"denied","wait_for_update":500}"#, 0), ("\"update\"", r#"{"ad_storage":"granted"}"#, 100)], 101, honor, false, "gggg"),
            // GPC overrides a site's grant of the user purposes, not of storage.
            (&[("\"update\"", r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}"#, 0)], 0, honor, true, "ggdd"),
            (&[("\"update\"", r#"{"ad_user_data":"granted"}"#, 0)], 0, ignore, true, "gggg"),
            // Revocation after a grant.
            (&[("\"update\"", r#"{"ad_storage":"granted"}"#, 0), ("\"update\"", r#"{"ad_storage":"denied","ad_personalization":"denied"}"#, 9)], 10, honor, false, "dggd"),
            // Invalid values leave the purpose unchanged.
            (&[("\"default\"", r#"{"ad_storage":"no","analytics_storage":false}"#, 0)], 0, honor, false, "gggg"),
            // The wait is capped.
            (&[("\"default\"", r#"{"wait_for_update":999999999}"#, 0)], MAX_WAIT_MS, honor, false, "gggg"),
            (&[("\"default\"", r#"{"wait_for_update":999999999}"#, 0)], MAX_WAIT_MS - 1, honor, false, "pppp"),
        ];
        for (i, (calls, at, settings, gpc, want)) in table.iter().enumerate() {
            let mut c = Consent::default();
            for (kind, values, t) in calls.iter() {
                call(&mut c, kind, values, T0 + t);
            }
            c.expire(T0 + at);
            assert_eq!(state(&c, *settings, *gpc, T0 + at), *want, "row {i}: {calls:?} at +{at} gpc={gpc}");
            assert_eq!(c.managed(), !calls.is_empty(), "row {i}");
        }
    }

    #[test]
    fn reports_bad_calls() {
        let mut c = Consent::default();
        let (changed, e, _) = call(&mut c, "\"set\"", "{}", T0);
        assert!(!changed && e[0].code == "invalid_consent" && !c.managed());
        let (_, e, _) = call(&mut c, "\"default\"", "\"denied\"", T0);
        assert_eq!(e[0].code, "invalid_consent");
        let (_, e, w) = call(&mut c, "\"update\"", r#"{"ad_storage":"yes","adStorage":"denied","wait_for_update":5}"#, T0);
        assert!(e[0].message.contains("consent.ad_storage"), "{e:?}");
        assert!(w.iter().any(|w| w.contains("adStorage")) && w.iter().any(|w| w.contains("only applies")), "{w:?}");
        let (_, e, w) = call(&mut c, "\"default\"", r#"{"region":"AT"}"#, T0);
        assert!(e[0].message.contains("region") && w.is_empty(), "{e:?} {w:?}");
        let (changed, _, _) = call(&mut c, "\"update\"", r#"{"ad_storage":"granted"}"#, T0);
        assert!(changed);
        let (changed, _, _) = call(&mut c, "\"update\"", r#"{"ad_storage":"granted"}"#, T0);
        assert!(!changed, "the same state again is no change");
    }

    #[test]
    fn predicates_and_payload() {
        let mut c = Consent::default();
        call(&mut c, "\"default\"", r#"{"ad_storage":"denied","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"denied"}"#, T0);
        let s = State::of(&c, Settings::default(), false, T0);
        assert!(!s.ad_storage() && s.analytics_storage() && s.user_data() && !s.ad_pixels() && s.may_send() && s.mirrored());
        assert!(s.any_cookie(), "the client id cookie may be set");
        for (values, any_cookie) in [
            (r#"{"ad_storage":"granted","analytics_storage":"denied"}"#, true),
            (r#"{"ad_storage":"denied","analytics_storage":"denied"}"#, false),
        ] {
            let mut c = Consent::default();
            call(&mut c, "\"default\"", values, T0);
            assert_eq!(State::of(&c, Settings::default(), false, T0).any_cookie(), any_cookie, "{values}");
        }
        assert_eq!(s.to_json(), r#"{"ad_storage":"denied","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"denied"}"#);
        assert_eq!(s.gtag_json(true), r#"{"ad_user_data":"granted","ad_personalization":"denied"}"#);
        let basic = State::of(&c, Settings { mode: Mode::Basic, honor_gpc: true }, false, T0);
        assert!(!basic.may_send());
        let gpc = State::of(&Consent::default(), Settings::default(), true, T0);
        assert_eq!(gpc.to_json(), r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"denied","ad_personalization":"denied","gpc":true,"managed":false}"#);
        assert!(gpc.mirrored() && !State::unmanaged().mirrored());
        let mut e = Vec::new();
        let st = settings(&parse(r#"{"consentMode":"basic","gpc":"ignore"}"#).unwrap(), &mut e);
        assert_eq!((st.mode, st.honor_gpc, e.len()), (Mode::Basic, false, 0));
        let st = settings(&parse(r#"{"consentMode":"strict","gpc":false}"#).unwrap(), &mut e);
        assert_eq!((st, e.len()), (Settings::default(), 2));
    }

    /// The settings' errors, made by config::bad, are the texts they were written as here.
    #[test]
    fn settings_errors_are_unchanged() {
        let mut e = Vec::new();
        settings(&parse(r#"{"consentMode":"strict","gpc":[1]}"#).unwrap(), &mut e);
        let got: Vec<(&str, &str, &str)> = e.iter().map(|e| (e.code, e.message.as_str(), e.input.as_str())).collect();
        assert_eq!(
            got,
            [
                ("invalid_config", "config.consentMode must be \"advanced\" or \"basic\"; using \"advanced\"", "\"strict\""),
                ("invalid_config", "config.gpc must be \"honor\" or \"ignore\"; using \"honor\"", "[1]"),
            ]
        );
    }
}
