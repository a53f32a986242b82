//! Domain types shared by the store and the forwarders: a stored event read back as a typed view,
//! and the HTTP request context captured when it arrived (IP, user agent, first-party cookies).
//!
//! Every field the tag may omit is optional and unknown keys are kept or ignored, never
//! refused: the payload schema is enforced on the way in, so reading is lenient. This is what
//! makes later payload additions (consent, hashed `user_data` identifiers) additive.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::payload::integer_value;

/// A stored event as the forwarders see it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EventView {
    pub event_id: String,
    pub event_name: String,
    #[serde(deserialize_with = "lenient_integer")]
    pub event_time: i64,
    #[serde(deserialize_with = "lenient_optional_integer")]
    pub event_time_ms: Option<i64>,
    pub event_source_url: String,
    pub referrer: Option<String>,
    pub user_data: UserData,
    /// Canonical Meta-named parameters plus any custom ones, as the tag sent them.
    pub custom_data: Map<String, Value>,
    /// Keyed by URL parameter name (`fbclid`, `ttclid`, `gclid`, …).
    pub click_ids: BTreeMap<String, ClickId>,
    pub utm: Value,
    pub client_id: String,
    pub tag_version: String,
    /// `tandem('identify')` hashed to Google's rules (gtag `user_data` names).
    pub google_user_data: Map<String, Value>,
    /// `tandem('identify')` hashed to TikTok's rules (`email`, `phone_number`, `external_id`).
    pub tiktok_user_data: Map<String, Value>,
    /// The consent state the tag sent the event under (absent from older tags: all granted).
    pub consent: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct UserData {
    pub fbp: Option<String>,
    pub fbc: Option<String>,
    pub ttp: Option<String>,
    /// Keys a later payload version adds (hashed `em`, `ph`, …); forwarders pick what they know.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ClickId {
    pub value: String,
    /// Unix ms when the click ID was first seen.
    #[serde(deserialize_with = "lenient_integer")]
    pub ts: i64,
}

impl EventView {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// A click ID by its URL parameter name: the tag's record of it, else the parameter in the
    /// page URL itself, first seen at the event's time. The tag's plain-JS path (WebAssembly
    /// refused, or a page hidden before it started) sends the landing URL as it is but only the
    /// click IDs an earlier page stored, so a landing event's own click ID is in its URL alone.
    /// Either is there only when the visitor allowed identifiers (the tag strips both otherwise).
    pub fn click_id(&self, name: &str) -> Option<Cow<'_, ClickId>> {
        if let Some(click) = self.click_ids.get(name).filter(|click| !click.value.is_empty()) {
            return Some(Cow::Borrowed(click));
        }
        let params = tandem::core::url::query_params(&self.event_source_url);
        let value = tandem::core::url::param(&params, name).filter(|value| !value.is_empty())?;
        let ts = self.event_time_ms.unwrap_or_else(|| self.event_time.saturating_mul(1000));
        Some(Cow::Owned(ClickId { value: value.to_owned(), ts }))
    }

    /// False when the event was sent with ad_user_data denied: then no identifier (hashes, click
    /// IDs, fbp/fbc/ttp, external ids derived from the client id, the IP) is forwarded.
    pub fn user_data_allowed(&self) -> bool {
        !self.denied("ad_user_data")
    }

    /// ad_personalization denied: forwarded with each platform's limited-use flag.
    pub fn personalization_denied(&self) -> bool {
        self.denied("ad_personalization")
    }

    /// ad_storage not denied: the ad cookies (`_fbp`, `_fbc`, `_ttp`) may be read and set.
    pub fn ad_storage_allowed(&self) -> bool {
        !self.denied("ad_storage")
    }

    /// analytics_storage not denied: `_tandem_cid` and `_ga` may be read and set.
    pub fn analytics_storage_allowed(&self) -> bool {
        !self.denied("analytics_storage")
    }

    fn denied(&self, purpose: &str) -> bool {
        denied(&self.consent, purpose)
    }

    pub fn custom_str(&self, key: &str) -> Option<&str> {
        self.custom_data.get(key).and_then(Value::as_str).filter(|text| !text.is_empty())
    }
}

/// What the HTTP request told us about the browser, stored beside the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// First-party cookies sent with the beacon (same site as the shop).
    pub cookie_fbp: Option<String>,
    pub cookie_fbc: Option<String>,
    pub cookie_ttp: Option<String>,
    /// GA4's client id taken from the `_ga` cookie (`GA1.1.<random>.<seconds>` → `<random>.<seconds>`).
    pub ga_client_id: Option<String>,
}

impl RequestContext {
    pub fn from_json(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// What of the request an event's `consent` lets the collector keep and use. The cookies, as
    /// the tag does in the browser (reading a cookie is storage access too): no `_fbp`, `_fbc` or
    /// `_ttp` with ad_storage denied, no `_ga` with analytics_storage denied. The IP only with
    /// ad_user_data: it is forwarded for nothing else, so it is not kept either. `None`: an older
    /// tag, which reports no consent (all granted).
    pub fn consented(mut self, consent: Option<&Map<String, Value>>) -> Self {
        let Some(consent) = consent else { return self };
        if denied(consent, "ad_user_data") {
            self.ip = None;
        }
        if denied(consent, "ad_storage") {
            self.cookie_fbp = None;
            self.cookie_fbc = None;
            self.cookie_ttp = None;
        }
        if denied(consent, "analytics_storage") {
            self.ga_client_id = None;
        }
        self
    }
}

/// A purpose the tag reported `denied` (an older tag reports none: all granted).
fn denied(consent: &Map<String, Value>, purpose: &str) -> bool {
    consent.get(purpose).and_then(Value::as_str) == Some("denied")
}

fn lenient_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Ok(integer_value(&Value::deserialize(deserializer)?).unwrap_or(0))
}

fn lenient_optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(integer_value(&Value::deserialize(deserializer)?))
}

/// Lower-case hex SHA-256, the form Meta and TikTok expect for hashed identifiers.
pub fn sha256_hex(input: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(input.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// True for a 64-character lower-case hex string (an identifier the tag already hashed).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookies_used_follow_the_events_consent() {
        let context = RequestContext {
            ip: Some("203.0.113.7".to_owned()),
            cookie_fbp: Some("fb.1.2.3".to_owned()),
            cookie_fbc: Some("fb.1.2.F".to_owned()),
            cookie_ttp: Some("t".to_owned()),
            ga_client_id: Some("1.2".to_owned()),
            ..RequestContext::default()
        };
        let consent = |text: &str| serde_json::from_str::<Map<String, Value>>(text).expect("json");
        assert_eq!(context.clone().consented(None), context, "an older tag reports no consent: all granted");
        assert_eq!(context.clone().consented(Some(&Map::new())), context);
        let ads_denied = context.clone().consented(Some(&consent(r#"{"ad_storage":"denied","analytics_storage":"granted"}"#)));
        assert_eq!((ads_denied.cookie_fbp, ads_denied.cookie_fbc, ads_denied.cookie_ttp, ads_denied.ga_client_id.as_deref()), (None, None, None, Some("1.2")));
        let analytics_denied = context.clone().consented(Some(&consent(r#"{"ad_storage":"granted","analytics_storage":"denied"}"#)));
        assert_eq!((analytics_denied.cookie_fbp.as_deref(), analytics_denied.ga_client_id), (Some("fb.1.2.3"), None));
        assert_eq!(analytics_denied.ip.as_deref(), Some("203.0.113.7"), "the IP is ad_user_data's to govern");
        let user_data_denied = context.clone().consented(Some(&consent(r#"{"ad_user_data":"denied"}"#)));
        assert_eq!((user_data_denied.ip, user_data_denied.cookie_fbp.as_deref()), (None, Some("fb.1.2.3")));
    }

    #[test]
    fn reads_leniently() {
        let view = EventView::from_json(r#"{"event_id":"e","event_time":1.7e9,"user_data":{"fbp":"fb.1.2.3","em":"x"},"later_field":{"a":1}}"#)
            .expect("parses");
        assert_eq!(view.event_time, 1_700_000_000);
        assert_eq!(view.user_data.fbp.as_deref(), Some("fb.1.2.3"));
        assert!(view.user_data.other.contains_key("em"));
        assert_eq!(view.event_time_ms, None);
    }

    #[test]
    fn hashes() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(is_sha256_hex(&sha256_hex("x")));
        assert!(!is_sha256_hex("abc"));
    }
}
