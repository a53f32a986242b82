//! Forwarding: one file per platform, each turning a stored event into the HTTP request that
//! platform's documentation specifies. The outbox worker ([`crate::outbox`]) owns sending,
//! retries and bookkeeping; a platform only builds requests (pure, unit-testable).
//!
//! Adding a platform: a new file with a type implementing [`Platform`], its config in
//! [`crate::config`], and one line in [`configured_platforms`].
//!
//! Failure rule (per destination, as in Segment's pipeline): platforms are independent outbox
//! rows; one failing or dead never holds back another.

pub mod ga4;
pub mod meta;
pub mod tiktok;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::event::{EventView, RequestContext};

/// An HTTP POST with a JSON body, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

/// A refusal a platform reports in the body of a 2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Worth trying again later (a rate limit, the platform's own error), else permanent.
    pub retry: bool,
    pub error: String,
}

/// A forwarding destination.
pub trait Platform: Send + Sync {
    /// Stable name, stored in `outbox.platform`; never rename one that has rows.
    fn name(&self) -> &'static str;

    /// Builds the request for one event. An `Err` is permanent (the row goes dead with it).
    fn build_request(&self, event: &EventView, context: &RequestContext) -> Result<PlatformRequest, String>;

    /// Whether events of this name are forwarded at all (an outbox row is made only for them):
    /// a platform that cannot deduplicate a server copy against the browser's must not get one.
    fn forwards(&self, _event_name: &str) -> bool {
        true
    }

    /// A refusal in the body of a 2xx answer (the HTTP status alone decides otherwise).
    fn refusal(&self, _body: &str) -> Option<Refusal> {
        None
    }
}

/// The registry: every platform the configuration enables.
pub fn configured_platforms(config: &Config) -> Vec<Arc<dyn Platform>> {
    let mut platforms: Vec<Arc<dyn Platform>> = Vec::new();
    if let Some(meta) = &config.meta {
        platforms.push(Arc::new(meta::MetaCapi::new(meta.clone())));
    }
    if let Some(tiktok) = &config.tiktok {
        platforms.push(Arc::new(tiktok::TikTokEventsApi::new(tiktok.clone())));
    }
    if let Some(ga4) = &config.ga4 {
        platforms.push(Arc::new(ga4::Ga4MeasurementProtocol::new(ga4.clone())));
    }
    platforms
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay as they are).
pub fn query_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// The `_fbc` value: the tag's, else the cookie's, else built from the stored fbclid click
/// (`fb.1.{first seen ms}.{fbclid}`, subdomain index 1 as for a registrable domain; Meta's
/// fbp-and-fbc parameter page). fbclid is case-sensitive and never modified.
pub fn facebook_click_id(event: &EventView, context: &RequestContext) -> Option<String> {
    non_empty(event.user_data.fbc.as_deref())
        .or_else(|| non_empty(context.cookie_fbc.as_deref()))
        .map(str::to_owned)
        .or_else(|| {
            event.click_id("fbclid").filter(|click| click.value.len() <= 500).map(|click| {
                let seen_ms = if click.ts > 0 { click.ts } else { event.event_time.saturating_mul(1000) };
                format!("fb.1.{seen_ms}.{}", click.value)
            })
        })
}

pub fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|text| !text.is_empty())
}

/// Copies `key` from the tag's custom_data into `target` when present.
pub fn copy_keys(source: &Map<String, Value>, target: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(value) = source.get(*key) {
            target.insert((*key).to_owned(), value.clone());
        }
    }
}

/// Inserts a string member only when there is a non-empty value.
pub fn insert_str(target: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(text) = non_empty(value) {
        target.insert(key.to_owned(), json!(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_queries() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn a_click_id_only_in_the_page_url_is_read_from_it() {
        // What the tag's plain-JS path sends from a landing page: the URL, no click_ids record.
        let landing = EventView::from_json(r#"{"event_time":1700000000,"event_time_ms":1700000000123,"event_source_url":"https://shop.example/p?utm_source=x&fbclid=Ab%2DC&ttclid=T1#top"}"#).expect("json");
        assert_eq!(facebook_click_id(&landing, &RequestContext::default()).as_deref(), Some("fb.1.1700000000123.Ab-C"));
        assert_eq!(landing.click_id("ttclid").map(|click| click.value.clone()).as_deref(), Some("T1"));
        assert!(landing.click_id("gclid").is_none());
        // The tag's record wins: it keeps when the click was first seen, on an earlier page.
        let recorded = EventView::from_json(r#"{"event_time":1700000000,"event_source_url":"https://shop.example/?fbclid=New","click_ids":{"fbclid":{"value":"Old","ts":1600000000000}}}"#).expect("json");
        assert_eq!(facebook_click_id(&recorded, &RequestContext::default()).as_deref(), Some("fb.1.1600000000000.Old"));
        // Parsed as the tag parses it: case-sensitive names, an empty value is none.
        let odd = EventView::from_json(r#"{"event_time":1700000000,"event_source_url":"https://shop.example/?FBCLID=X&fbclid="}"#).expect("json");
        assert!(odd.click_id("fbclid").is_none());
    }

    #[test]
    fn fbc_falls_back_to_the_fbclid_click() {
        let event = EventView::from_json(r#"{"event_time":1700000000,"click_ids":{"fbclid":{"value":"AbC","ts":1699999999000}}}"#).expect("json");
        assert_eq!(facebook_click_id(&event, &RequestContext::default()).as_deref(), Some("fb.1.1699999999000.AbC"));
        let with_cookie = RequestContext { cookie_fbc: Some("fb.1.5.Z".to_owned()), ..RequestContext::default() };
        assert_eq!(facebook_click_id(&event, &with_cookie).as_deref(), Some("fb.1.5.Z"));
    }
}
