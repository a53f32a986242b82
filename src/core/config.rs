//! The init config: endpoint, cookie and attribution options, and one sub-config per platform
//! (parsed by that platform's module through `platforms::REGISTRY`).
//!
//! Nothing in a config stops the tag: a bad option falls back to its default with an error, a
//! bad platform config disables that platform only, and unknown keys are warnings (typos show
//! up in debug mode without breaking anything).

use crate::core::attribution::DEFAULT_WINDOW_DAYS;
use crate::core::error::{TagError, MUST_BE_STRING};
use crate::core::json::{whole, Value};
use crate::core::{text, url};
use crate::platforms::{Destination, REGISTRY};

crate::messages! {
    NOT_BOOL_USING_TRUE = "c0" "must be true or false; using true";
    NOT_BOOL_USING_FALSE = "c1" "must be true or false; using false";
    NOT_A_DOMAIN_NAME = "c3" "must be a domain name like \"example.com\"";
    DOMAIN_NOT_PARENT = "c4" "must be the page's host or a parent domain of it; the browser would refuse it";
    CONFIG_NOT_OBJECT = "c5" "must be an object; using defaults";
    CONFIG_KEY = "c6" "config key";
    ENDPOINT_HTTPS = "c7" "must be https on an https page (the browser blocks http requests from it); using \"/collect\"";
    ENDPOINT_URL = "c8" "must be an http(s) URL or a path like \"/t/e\"; using \"/collect\"";
    WINDOW_DAYS_RANGE = "c9" "must be a whole number of days from 1 to 730; using 90";
}

pub const DEFAULT_ENDPOINT: &str = "/collect";
/// The config's own keys, one space apart (a text, not a table of string pointers): the delivery
/// settings `batch` and `queue` are parsed by `outbox::Settings`, the consent switches
/// `consentMode` and `gpc` by `consent::settings`.
const KEYS: &str = "endpoint cookieDomain autoPageView debug attributionWindowDays batch queue consentMode gpc";

pub struct Config {
    /// Absolute endpoint URL; `None` when it could not be resolved (nothing is sent then).
    pub endpoint: Option<String>,
    /// A `cookieDomain` the site set explicitly (overrides the probed registrable domain).
    pub cookie_domain: Option<String>,
    pub auto_page_view: bool,
    pub debug: bool,
    pub attribution_window_days: u64,
    pub destinations: Vec<Box<dyn Destination>>,
}

/// Adds `config.<field> <rule>`, an invalid_config error with the value given, to `errors`:
/// pushed here, where each caller's push of a returned error copied it field by field.
pub(crate) fn bad(errors: &mut Vec<TagError>, field: &str, rule: &str, v: &Value) {
    let mut m = String::from("config.");
    m.push_str(field);
    m.push(' ');
    m.push_str(rule);
    errors.push(TagError::new("invalid_config", m, v.to_json()));
}

fn opt_bool(v: &Value, key: &str, default: bool, errors: &mut Vec<TagError>) -> bool {
    match v.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            bad(errors, key, if default { NOT_BOOL_USING_TRUE } else { NOT_BOOL_USING_FALSE }, other);
            default
        }
    }
}

/// A domain the browser could accept for `Domain=` on this page (the host or a parent of it),
/// into `slot`; else the rule it breaks. Written in place: a returned Result moved the String.
fn cookie_domain(v: &Value, page_url: &str, slot: &mut Option<String>) -> Result<(), &'static str> {
    // A let-else, where ok_or(..)? linked the combinator and the ? conversion for this line.
    let Some(raw) = v.as_str() else { return Err(MUST_BE_STRING) };
    let d = text::trim_start(text::trim(raw), b'.').to_ascii_lowercase();
    if d.is_empty() || !text::contains(&d, ".") || !text::all(&d, |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(NOT_A_DOMAIN_NAME);
    }
    let host = url::host(page_url).unwrap_or_default();
    let fits = d == *host || (host.len() > d.len() && host.ends_with(&d) && matches!(host.as_bytes().get(host.len() - d.len() - 1), Some(b'.')));
    if fits {
        *slot = Some(d);
        Ok(())
    } else {
        Err(DOMAIN_NOT_PARENT)
    }
}

/// Parses the init config against the page it runs on.
pub fn parse(v: &Value, page_url: &str, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) -> Config {
    let mut c = Config {
        endpoint: url::resolve(page_url, DEFAULT_ENDPOINT),
        cookie_domain: None,
        auto_page_view: true,
        debug: false,
        attribution_window_days: DEFAULT_WINDOW_DAYS,
        destinations: Vec::new(),
    };
    let members = match v {
        Value::Object(m) => m.as_slice(),
        Value::Null => &[],
        other => {
            bad(errors, "", CONFIG_NOT_OBJECT, other);
            &[]
        }
    };
    for (k, _) in members {
        if !text::listed(KEYS, " ", k) && !REGISTRY.iter().any(|e| e.key == k) {
            warnings.push(crate::core::error::unknown_key(CONFIG_KEY, k, ""));
        }
    }
    c.debug = opt_bool(v, "debug", false, errors);
    c.auto_page_view = opt_bool(v, "autoPageView", true, errors);
    match v.get("endpoint") {
        None | Some(Value::Null) => {}
        Some(e) => match e.as_str().and_then(|s| url::resolve(page_url, s)) {
            // The browser blocks an http request from an https page (mixed content): every event
            // would be retried until the queue is full, with nothing pointing at the endpoint.
            Some(abs) if abs.starts_with("http:") && page_url.starts_with("https:") => {
                bad(errors, "endpoint", ENDPOINT_HTTPS, e)
            }
            Some(abs) => c.endpoint = Some(abs),
            None => bad(errors, "endpoint", ENDPOINT_URL, e),
        },
    }
    match v.get("attributionWindowDays") {
        None | Some(Value::Null) => {}
        Some(d) => {
            let days = match d {
                Value::Number(n) => whole(n),
                _ => None,
            };
            // One error arm for a number out of range and a value of another kind.
            match days {
                Some(days) if matches!(days, 1..=730) => c.attribution_window_days = days,
                _ => bad(errors, "attributionWindowDays", WINDOW_DAYS_RANGE, d),
            }
        }
    }
    match v.get("cookieDomain") {
        None | Some(Value::Null) => {}
        Some(d) => {
            if let Err(rule) = cookie_domain(d, page_url, &mut c.cookie_domain) {
                bad(errors, "cookieDomain", rule, d);
            }
        }
    }
    for entry in REGISTRY {
        let Some(sub) = v.get(entry.key) else { continue };
        match (entry.configure)(sub, warnings) {
            Ok(d) => c.destinations.push(d),
            Err(e) => errors.push(e),
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::parse as json;

    const PAGE: &str = "https://www.shop.example/dir/p?x=1";

    /// Parses `config` and returns it with the error codes+messages and warnings joined.
    fn check(config: &str) -> (Config, String, String) {
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let c = parse(&json(config).unwrap(), PAGE, &mut e, &mut w);
        let errors: Vec<String> = e.iter().map(|e| String::from(e.code) + ": " + &e.message).collect();
        (c, errors.join("\n"), w.join("\n"))
    }

    #[test]
    fn defaults() {
        for cfg in ["{}", "null"] {
            let (c, e, w) = check(cfg);
            assert_eq!(c.endpoint.as_deref(), Some("https://www.shop.example/collect"));
            assert!(c.auto_page_view && !c.debug);
            assert_eq!((c.attribution_window_days, c.cookie_domain, c.destinations.len()), (90, None, 0));
            assert_eq!((e.as_str(), w.as_str()), ("", ""));
        }
        let (_, e, _) = check("[]");
        assert!(e.contains("must be an object"));
    }

    #[test]
    fn options() {
        let (c, e, w) = check(r#"{"endpoint":"t/e","debug":true,"autoPageView":false,"attributionWindowDays":30,"cookieDomain":".Shop.Example","colour":1}"#);
        assert_eq!(e, "");
        assert_eq!(c.endpoint.as_deref(), Some("https://www.shop.example/dir/t/e"));
        assert!(c.debug && !c.auto_page_view);
        assert_eq!((c.attribution_window_days, c.cookie_domain.as_deref()), (30, Some("shop.example")));
        assert!(w.contains("Unknown config key \"colour\""));
        let (c, _, _) = check(r#"{"endpoint":"https://t.example/c"}"#);
        assert_eq!(c.endpoint.as_deref(), Some("https://t.example/c"));
    }

    /// The keys taken without a warning: the former table's, the platforms', and nothing near them.
    #[test]
    fn known_keys_are_the_former_tables() {
        let former = ["endpoint", "cookieDomain", "autoPageView", "debug", "attributionWindowDays", "batch", "queue", "consentMode", "gpc"];
        for key in former.into_iter().chain(["meta", "google", "tiktok"]) {
            let (mut e, mut w) = (Vec::new(), Vec::new());
            parse(&Value::Object(vec![(key.to_string(), Value::Null)]), PAGE, &mut e, &mut w);
            assert!(w.is_empty(), "{key}: {w:?}");
        }
        for key in ["", " ", "gp", "Endpoint", "endpoint ", "batch queue", "gpc ", "consent", "metagoogle"] {
            let (mut e, mut w) = (Vec::new(), Vec::new());
            parse(&Value::Object(vec![(key.to_string(), Value::Null)]), PAGE, &mut e, &mut w);
            assert_eq!(w, [crate::core::error::unknown_key("config key", key, "")], "{key:?}");
        }
    }

    #[test]
    fn bad_options_fall_back() {
        for (cfg, msg) in [
            (r#"{"endpoint":"javascript:alert(1)"}"#, "config.endpoint must be"),
            (r#"{"endpoint":5}"#, "config.endpoint must be"),
            (r#"{"debug":"yes"}"#, "config.debug must be true or false"),
            (r#"{"autoPageView":0}"#, "config.autoPageView must be true or false; using true"),
            (r#"{"attributionWindowDays":0}"#, "config.attributionWindowDays"),
            (r#"{"attributionWindowDays":7.5}"#, "config.attributionWindowDays"),
            (r#"{"attributionWindowDays":"30"}"#, "config.attributionWindowDays"),
            (r#"{"cookieDomain":"other.example"}"#, "parent domain"),
            (r#"{"cookieDomain":"op.example"}"#, "parent domain"),
            (r#"{"cookieDomain":"com"}"#, "domain name"),
            (r#"{"cookieDomain":"a;b.com"}"#, "domain name"),
        ] {
            let (c, e, _) = check(cfg);
            assert!(e.contains(msg), "{cfg}: {e}");
            assert_eq!(c.endpoint.as_deref(), Some("https://www.shop.example/collect"));
            assert_eq!((c.attribution_window_days, c.cookie_domain.is_none(), c.auto_page_view), (90, true, true), "{cfg}");
        }
    }

    #[test]
    fn a_bad_platform_disables_only_itself() {
        let (c, e, w) = check(r#"{"meta":{"pixelId":"nope"},"google":{"tagId":"G-ABC","typo":1},"tiktok":{"pixelId":"CABCDEFGHIJ1234567890"}}"#);
        let keys: Vec<&str> = c.destinations.iter().map(|d| d.key()).collect();
        assert_eq!(keys, ["google", "tiktok"]);
        assert!(e.contains("meta.pixelId") && e.contains("meta is disabled"), "{e}");
        assert!(w.contains("google.typo"), "{w}");
    }
}
