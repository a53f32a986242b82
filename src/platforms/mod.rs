//! Destinations: one file per ad platform, and the registry that lists them.
//!
//! A destination turns a `ValidEvent` into calls on the platform's own browser API (`fbq`,
//! `gtag`, `ttq`) as `Effect::Call`s; it never touches the page itself. Each is configured from
//! its own key of the init config and is independent: a bad config disables only that platform,
//! and one destination's mapping never affects another's.
//!
//! Adding a platform (say Pinterest) = `pinterest.rs` with a `configure` function and a
//! `Destination` impl, `pub mod pinterest;` below, and one line in `REGISTRY` (plus a cargo
//! feature of the same name in Cargo.toml).
//!
//! Each platform is a cargo feature (all on by default): a site that sends to Meta only can build
//! a tag without the other platforms' code (`node scripts/build.mjs --platforms meta`). A config
//! naming a platform the build left out gets a `not_built` error, not silence.

#[cfg(feature = "google")]
pub mod google;
#[cfg(feature = "meta")]
pub mod meta;
#[cfg(feature = "tiktok")]
pub mod tiktok;

use crate::core::consent::State;
use crate::core::error::TagError;
use crate::core::event::ValidEvent;
use crate::core::identity::Identity;
use crate::core::json::{self, Value};
use crate::core::text;
use crate::core::tag::Effect;

crate::messages! {
    NOT_IN_BUILD = "p0" " is not in this build of Tandem (built without the cargo feature \"";
    GETS_NOTHING = "p1" " gets nothing. Use a build with it, or remove this key.";
    IS_DISABLED = "p2" " is disabled.";
    MUST_BE_OBJECT = "p3" "must be an object";
    UNKNOWN_CONFIG_KEY = "p4" "Unknown config key ";
    IGNORED_KNOWN = "p5" " ignored (known: ";
    MUST_BE_BOOL = "p6" "must be true or false";
}

/// What `setup` may need from the page.
pub struct SetupCtx<'a> {
    /// The loader script's nonce, handed to injected base code (CSP).
    pub nonce: &'a str,
    /// The consent state at init: each platform mirrors it in its own terms before its first
    /// measurement call (`Destination::consent`).
    pub consent: &'a State,
    /// The hashed identity, when there is one and ad_user_data allows it.
    pub identity: Option<&'a Identity>,
}

pub trait Destination {
    /// The registry key (also the config key), e.g. `"meta"`.
    fn key(&self) -> &'static str;
    /// Effects run once, after cookies and storage, at init (in basic mode, once consent first
    /// allows sending): base-code injection
    /// (`Effect::LoadBaseCode` when the config says `load: true`) and `init`/`config` calls.
    /// Each method pushes its effects onto `out`, the caller's list: a Vec returned by each call
    /// was an allocation and an append at every caller.
    fn setup(&self, ctx: &SetupCtx, out: &mut Vec<Effect>);
    /// The calls that send `ev` to this platform, carrying `ev.event_id` for deduplication. None
    /// when this platform does not take the event (e.g. a PageView the site's own snippet sends).
    fn event(&self, ev: &ValidEvent, out: &mut Vec<Effect>);
    /// The consent state in this platform's terms (`initial`: at setup, before its first
    /// measurement call). Nothing when the site does not manage consent and GPC denied nothing.
    fn consent(&self, _state: &State, _initial: bool, _out: &mut Vec<Effect>) {}
    /// The hashed identity in this platform's terms (only called while ad_user_data is granted).
    fn identify(&self, _identity: &Identity, _out: &mut Vec<Effect>) {}
}

/// Reads a platform's sub-config; warnings (unknown keys) are pushed, a fatal problem returned.
pub type Configure = fn(&Value, &mut Vec<String>) -> Result<Box<dyn Destination>, TagError>;

pub struct PlatformEntry {
    /// The init-config key and `Effect` platform name (and the platform's cargo feature).
    pub key: &'static str,
    /// Whether this build has the platform (its cargo feature was on).
    pub built: bool,
    /// For a platform left out of the build: always the `not_built` error.
    pub configure: Configure,
    /// Injects the platform's own base code for `Effect::LoadBaseCode` (browser build only).
    #[cfg(target_arch = "wasm32")]
    pub load_base_code: fn(&str),
}

macro_rules! entry {
    ($key:literal, $platform:ident) => {{
        #[cfg(feature = $key)]
        let entry = PlatformEntry {
            key: $key,
            built: true,
            configure: $platform::configure,
            #[cfg(target_arch = "wasm32")]
            load_base_code: $platform::load_base_code,
        };
        #[cfg(not(feature = $key))]
        let entry = PlatformEntry {
            key: $key,
            built: false,
            configure: |_, _| Err(not_built($key)),
            // Unreachable: a platform that was not built has no destination to ask for it.
            #[cfg(target_arch = "wasm32")]
            load_base_code: |_| {},
        };
        entry
    }};
}

pub const REGISTRY: &[PlatformEntry] = &[entry!("meta", meta), entry!("google", google), entry!("tiktok", tiktok)];

// ---- helpers shared by the platform files ----

/// An `Effect::Call` with its JSON args array (written with `json::W` or `json::str_array`).
pub(crate) fn call(platform: &'static str, function: &'static str, args_json: String) -> Effect {
    Effect::Call { platform, function, args_json }
}

/// Appends a call to `out`: out of line, where each push inlined a copy of its own.
#[inline(never)]
pub(crate) fn push_call(out: &mut Vec<Effect>, platform: &'static str, function: &'static str, args_json: String) {
    out.push(call(platform, function, args_json));
}

/// The error for a config that names a platform this build was made without.
#[allow(dead_code)] // Used only by builds without some platform (see `entry!`).
fn not_built(platform: &str) -> TagError {
    let mut m = String::from(platform);
    m.push_str(NOT_IN_BUILD);
    m.push_str(platform);
    m.push_str("\"); ");
    m.push_str(platform);
    m.push_str(GETS_NOTHING);
    TagError::new("not_built", m, String::new())
}

/// A config error for `platform`: `"<platform>.<field> …; <platform> is disabled"`.
pub(crate) fn config_error(platform: &str, field: &str, rule: &str, input: &Value) -> TagError {
    let mut m = String::from(platform);
    if !field.is_empty() {
        m.push('.');
        m.push_str(field);
    }
    m.push(' ');
    m.push_str(rule);
    m.push_str("; ");
    m.push_str(platform);
    m.push_str(IS_DISABLED);
    TagError::new("invalid_config", m, input.to_json())
}

/// The platform config's members, or an error if it is not an object. Keys outside `known` (a
/// list as the warning shows it: "a, b, c") are warned about (a typo like `pixelID` should be
/// visible in debug mode).
pub(crate) fn members<'a>(
    platform: &str,
    v: &'a Value,
    known: &str,
    warnings: &mut Vec<String>,
) -> Result<&'a [(String, Value)], TagError> {
    let Value::Object(m) = v else {
        return Err(config_error(platform, "", MUST_BE_OBJECT, v));
    };
    for (k, _) in m {
        if !text::listed(known, ", ", k) {
            let mut w = String::from(UNKNOWN_CONFIG_KEY);
            w.push_str(platform);
            w.push('.');
            w.push_str(k);
            w.push_str(IGNORED_KNOWN);
            w.push_str(known);
            w.push(')');
            warnings.push(w);
        }
    }
    Ok(m)
}

/// Sets `slot` from the optional boolean `key`, left as it is when absent or null; else the value
/// that is not a boolean.
fn set_bool<'a>(v: &'a Value, key: &str, slot: &mut bool) -> Result<(), &'a Value> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Bool(b)) => {
            *slot = *b;
            Ok(())
        }
        Some(other) => Err(other),
    }
}

/// The `load` (default false) and `sendPageView` options every platform has, into `load` (false
/// on entry) and `page_view`, whose default is `load` when `follows_load` (Google) and true
/// otherwise. One call and one error built, where two calls of a `Result<bool, TagError>` helper
/// each had the caller copy the error through memory field by field.
pub(crate) fn load_options(
    platform: &str,
    v: &Value,
    follows_load: bool,
    load: &mut bool,
    page_view: &mut bool,
) -> Result<(), TagError> {
    let (key, bad) = match set_bool(v, "load", load) {
        Err(bad) => ("load", bad),
        Ok(()) => {
            *page_view = !follows_load || *load;
            match set_bool(v, "sendPageView", page_view) {
                Ok(()) => return Ok(()),
                Err(bad) => ("sendPageView", bad),
            }
        }
    };
    Err(config_error(platform, key, MUST_BE_BOOL, bad))
}

/// Custom params, minus keys the platform sets itself (so a site cannot override `send_to`).
/// `reserved` (keys one space apart) must name every non-canonical key the platform wrote before:
/// custom keys are never canonical ones (`event::validate_params`), so those are the only ones a
/// custom key could repeat.
pub(crate) fn push_custom(w: &mut json::W, ev: &ValidEvent, reserved: &str) {
    for (k, v) in &ev.params.custom {
        if !text::listed(reserved, " ", k) {
            w.key(k).raw(v);
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::core::event::{validate_name, validate_params};
    use crate::core::json::parse;

    /// A validated event from JSON, for the mapping tests.
    pub fn event(name: &str, params: &str) -> ValidEvent {
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let n = validate_name(&Value::String(name.to_string()), &mut e, &mut w).expect("valid name");
        let p = validate_params(&n, &parse(params).expect("json"), &mut e, &mut w).expect("valid params");
        assert!(e.is_empty(), "{e:?}");
        ValidEvent {
            name: n,
            params: p,
            event_id: "ev-1".into(),
            time_ms: 1_700_000_000_000,
            url: "https://shop.example/p".into(),
            referrer: String::new(),
        }
    }

    pub fn configure(key: &str, config: &str) -> Result<Box<dyn Destination>, TagError> {
        let entry = REGISTRY.iter().find(|e| e.key == key).expect("registered");
        let mut w = Vec::new();
        (entry.configure)(&parse(config).expect("json"), &mut w)
    }

    /// A destination's effects as a list, for assertions.
    pub trait Effects {
        fn setup_effects(&self, ctx: &SetupCtx) -> Vec<Effect>;
        fn event_effects(&self, ev: &ValidEvent) -> Vec<Effect>;
    }

    impl<D: Destination + ?Sized> Effects for D {
        fn setup_effects(&self, ctx: &SetupCtx) -> Vec<Effect> {
            let mut out = Vec::new();
            self.setup(ctx, &mut out);
            out
        }
        fn event_effects(&self, ev: &ValidEvent) -> Vec<Effect> {
            let mut out = Vec::new();
            self.event(ev, &mut out);
            out
        }
    }

    /// `function(args)` lines, for compact assertions.
    pub fn lines(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Call { function, args_json, .. } => String::from(*function) + args_json,
                Effect::LoadBaseCode { platform, args_json } => String::from("load:") + platform + args_json,
                other => format!("{other:?}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_params_skip_only_the_reserved_keys() {
        let ev = test_support::event("Lead", r#"{"":1,"send_to":2,"items":3,"item":4,"query":5,"x":6}"#);
        let written = |reserved: &str| {
            let mut w = json::W::new('{');
            push_custom(&mut w, &ev, reserved);
            w.close('}');
            w.0
        };
        assert_eq!(written(""), r#"{"":1,"send_to":2,"items":3,"item":4,"query":5,"x":6}"#);
        assert_eq!(written("query"), r#"{"":1,"send_to":2,"items":3,"item":4,"x":6}"#);
        assert_eq!(written("send_to event_id items"), r#"{"":1,"item":4,"query":5,"x":6}"#);
    }

    #[test]
    fn unknown_config_keys_are_warned_with_the_known_ones() {
        let config = json::parse(r#"{"pixelId":"1","pixelID":"2","load":true,"":0,"sendPageView":false,"Load":1}"#).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(members("meta", &config, "pixelId, load, sendPageView", &mut warnings).map(<[_]>::len), Ok(6));
        assert_eq!(warnings, [
            "Unknown config key meta.pixelID ignored (known: pixelId, load, sendPageView)",
            "Unknown config key meta. ignored (known: pixelId, load, sendPageView)",
            "Unknown config key meta.Load ignored (known: pixelId, load, sendPageView)",
        ]);
    }

    #[test]
    fn registry_keys_are_unique_and_match_destinations() {
        for (i, e) in REGISTRY.iter().enumerate() {
            assert!(REGISTRY.iter().skip(i + 1).all(|o| o.key != e.key));
        }
        let configs = [("meta", r#"{"pixelId":"123456789012345"}"#), ("google", r#"{"tagId":"G-ABC123"}"#), ("tiktok", r#"{"pixelId":"CABCDEFGHIJ1234567890"}"#)];
        assert_eq!(configs.len(), REGISTRY.len(), "a config for every registered platform");
        for (key, cfg) in configs {
            let built = REGISTRY.iter().any(|e| e.key == key && e.built);
            match test_support::configure(key, cfg) {
                Ok(d) => {
                    assert!(built, "{key} configured in a build without it");
                    assert_eq!(d.key(), key);
                }
                // A build without the platform (scripts/test.sh checks one) names the feature.
                Err(e) => {
                    assert!(!built, "{key}: {e:?}");
                    assert_eq!(e.code, "not_built");
                    assert!(e.message.contains(&["cargo feature \"", key, "\""].concat()), "{}", e.message);
                }
            }
        }
    }
}
