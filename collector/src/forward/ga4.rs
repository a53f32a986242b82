//! GA4 Measurement Protocol.
//!
//! `POST {base}/mp/collect?measurement_id=G-…&api_secret=…` with
//! `{"client_id", "timestamp_micros", "events": [{"name", "params": {…}}]}`
//! (developers.google.com/analytics/devguides/collection/protocol/ga4/reference). Event names
//! are the tag's: GA4's recommended ones (purchase, add_to_cart, …), snake_case names for the other
//! standard events, custom names as they are when they obey GA4's rules (the tag only accepts such
//! names), snake_case otherwise. Only purchases are forwarded unless `events = "all"` (see
//! `forwards`): GA4 deduplicates nothing else against gtag's copy. `transaction_id` is the order
//! id (or, for a purchase without one, the event_id — never empty: GA4 merges every empty-id
//! purchase into one). `event_id` is sent as a parameter.
//!
//! client_id: GA4 expects its own `<random>.<seconds>` form. When the beacon carries a `_ga`
//! cookie (`GA1.1.<random>.<seconds>`) its id is used, which joins the events to gtag's sessions;
//! otherwise the tag's own client_id is sent as is (a separate, consistent GA4 user).
//! Note: the Measurement Protocol answers 2xx even for malformed payloads.
//!
//! Identity: `user_data` {sha256_email_address[], sha256_phone_number[], address[{sha256_first_name,
//! sha256_last_name}]} from the tag's `google_user_data` (normalised to Google's rules in the
//! browser; developers.google.com/analytics/devguides/collection/ga4/uid-data). Consent: the
//! request carries `consent: {ad_user_data, ad_personalization}` ("GRANTED" / "DENIED", GA4's own
//! flags); with ad_user_data denied no user_data is sent either.

use serde_json::{json, Map, Value};

use super::{copy_keys, query_escape, Platform, PlatformRequest};
use crate::config::Ga4Config;
use crate::event::{is_sha256_hex, EventView, RequestContext};

pub struct Ga4MeasurementProtocol {
    config: Ga4Config,
}

impl Ga4MeasurementProtocol {
    pub fn new(config: Ga4Config) -> Self {
        Self { config }
    }
}

/// GA4's name for a Meta-named event.
pub fn ga4_event_name(canonical: &str) -> String {
    let known = match canonical {
        "Purchase" => "purchase",
        "AddToCart" => "add_to_cart",
        "InitiateCheckout" => "begin_checkout",
        "AddPaymentInfo" => "add_payment_info",
        "ViewContent" => "view_item",
        "Search" => "search",
        "Lead" => "generate_lead",
        "CompleteRegistration" => "sign_up",
        "PageView" => "page_view",
        "AddToWishlist" => "add_to_wishlist",
        // Standard events without a GA4 recommended name: the tag's snake_case names.
        "Contact" => "contact",
        "CustomizeProduct" => "customize_product",
        "Donate" => "donate",
        "FindLocation" => "find_location",
        "Schedule" => "schedule",
        "StartTrial" => "start_trial",
        "SubmitApplication" => "submit_application",
        "Subscribe" => "subscribe",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    // A custom name the tag accepted already obeys GA4's rules and goes to gtag as it is: the same
    // name here, so one event does not show under two names.
    let mut characters = canonical.chars();
    let valid = characters.next().is_some_and(char::is_alphabetic)
        && characters.all(|character| character.is_alphanumeric() || character == '_')
        && canonical.chars().count() <= 40;
    if valid {
        return canonical.to_owned();
    }
    snake_case(canonical)
}

/// `MyCustom Event-2` → `my_custom_event_2`; GA4 names are letters, digits and `_`, start with a
/// letter, at most 40 characters.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for character in name.chars() {
        if character.is_ascii_alphanumeric() {
            if character.is_ascii_uppercase() && previous_lower && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = character.is_ascii_lowercase() || character.is_ascii_digit();
            out.push(character.to_ascii_lowercase());
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.starts_with(|character: char| character.is_ascii_alphabetic()) {
        trimmed.to_owned()
    } else {
        format!("event_{trimmed}")
    };
    name.truncate(40);
    name
}

/// The id from a `_ga` cookie value (`GA1.1.1234.5678` → `1234.5678`).
pub fn client_id_from_ga_cookie(cookie: &str) -> Option<String> {
    let parts: Vec<&str> = cookie.split('.').collect();
    if parts.len() >= 4 && parts[0].starts_with("GA") {
        let id = format!("{}.{}", parts[parts.len() - 2], parts[parts.len() - 1]);
        if id.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
            return Some(id);
        }
    }
    None
}

/// The Measurement Protocol's `user_data` from the tag's gtag-shaped `google_user_data`.
fn google_user_data(event: &EventView) -> Option<Value> {
    if !event.user_data_allowed() {
        return None;
    }
    let g = &event.google_user_data;
    let hash = |v: Option<&Value>| v.and_then(Value::as_str).filter(|h| is_sha256_hex(h)).map(str::to_owned);
    let mut out = Map::new();
    for key in ["sha256_email_address", "sha256_phone_number"] {
        if let Some(h) = hash(g.get(key)) {
            out.insert(key.to_owned(), json!([h]));
        }
    }
    let mut address = Map::new();
    for key in ["sha256_first_name", "sha256_last_name"] {
        if let Some(h) = hash(g.get("address").and_then(|a| a.get(key))) {
            address.insert(key.to_owned(), json!(h));
        }
    }
    if !address.is_empty() {
        out.insert("address".to_owned(), json!([address]));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

impl Platform for Ga4MeasurementProtocol {
    fn name(&self) -> &'static str {
        "ga4"
    }

    /// Purchases only, unless `events = "all"`: GA4 deduplicates a purchase against gtag's copy by
    /// transaction_id (support.google.com/analytics/answer/12313109) and nothing else by any id.
    fn forwards(&self, event_name: &str) -> bool {
        self.config.all_events || ga4_event_name(event_name) == "purchase"
    }

    fn build_request(&self, event: &EventView, context: &RequestContext) -> Result<PlatformRequest, String> {
        let client_id = context.ga_client_id.clone().filter(|id| !id.is_empty()).unwrap_or_else(|| event.client_id.clone());
        if client_id.is_empty() || event.event_id.is_empty() {
            return Err("event has no client_id or event_id".to_owned());
        }
        let name = ga4_event_name(&event.event_name);
        let custom = &event.custom_data;
        let mut params = Map::new();
        params.insert("event_id".to_owned(), json!(event.event_id));
        copy_keys(custom, &mut params, &["value", "currency"]);
        let transaction_id = event.custom_str("order_id").map(str::to_owned).or_else(|| (name == "purchase").then(|| event.event_id.clone()));
        if let Some(transaction_id) = transaction_id {
            params.insert("transaction_id".to_owned(), json!(transaction_id));
        }
        if let Some(term) = custom.get("search_string") {
            params.insert("search_term".to_owned(), term.clone());
        }
        let items: Vec<Value> = match (custom.get("contents"), custom.get("content_ids")) {
            (Some(Value::Array(contents)), _) => contents
                .iter()
                .filter_map(|item| {
                    let mut mapped = Map::new();
                    mapped.insert("item_id".to_owned(), item.get("id")?.clone());
                    for (from, to) in [("title", "item_name"), ("quantity", "quantity"), ("item_price", "price"), ("category", "item_category")] {
                        if let Some(value) = item.get(from) {
                            mapped.insert(to.to_owned(), value.clone());
                        }
                    }
                    Some(Value::Object(mapped))
                })
                .collect(),
            (_, Some(Value::Array(ids))) => ids.iter().map(|id| json!({ "item_id": id })).collect(),
            _ => Vec::new(),
        };
        if !items.is_empty() {
            params.insert("items".to_owned(), Value::Array(items));
        }
        if !event.event_source_url.is_empty() {
            params.insert("page_location".to_owned(), json!(event.event_source_url));
        }
        if let Some(referrer) = event.referrer.as_deref().filter(|referrer| !referrer.is_empty()) {
            params.insert("page_referrer".to_owned(), json!(referrer));
        }
        // Reports such as Realtime only show events with an engagement time.
        params.insert("engagement_time_msec".to_owned(), json!(1));

        let timestamp_micros = event.event_time_ms.unwrap_or(event.event_time.saturating_mul(1000)).saturating_mul(1000);
        let mut body = json!({
            "client_id": client_id,
            "timestamp_micros": timestamp_micros,
            "events": [{"name": name, "params": Value::Object(params)}],
        });
        if let Some(user_data) = google_user_data(event) {
            body["user_data"] = user_data;
        }
        if !event.consent.is_empty() {
            let flag = |denied: bool| if denied { "DENIED" } else { "GRANTED" };
            body["consent"] = json!({"ad_user_data": flag(!event.user_data_allowed()), "ad_personalization": flag(event.personalization_denied())});
        }
        Ok(PlatformRequest {
            url: format!(
                "{}/mp/collect?measurement_id={}&api_secret={}",
                self.config.base_url,
                query_escape(&self.config.measurement_id),
                query_escape(&self.config.api_secret)
            ),
            headers: Vec::new(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (canonical, expected) in [("Purchase", "purchase"), ("InitiateCheckout", "begin_checkout"), ("Lead", "generate_lead"),
            ("CompleteRegistration", "sign_up"), ("MyCustomEvent", "MyCustomEvent"), ("BookDemo", "BookDemo"), ("Anmeldung_Ü", "Anmeldung_Ü"),
            ("StartTrial", "start_trial"), ("SubmitApplication", "submit_application"), ("video-Play 2", "video_play_2"), ("9lives", "event_9lives")] {
            assert_eq!(ga4_event_name(canonical), expected, "{canonical}");
        }
    }

    #[test]
    fn ga_cookie() {
        assert_eq!(client_id_from_ga_cookie("GA1.1.1234567.1700000000").as_deref(), Some("1234567.1700000000"));
        assert_eq!(client_id_from_ga_cookie("junk"), None);
    }

    #[test]
    fn builds_a_measurement_protocol_request() {
        let platform = Ga4MeasurementProtocol::new(Ga4Config {
            measurement_id: "G-TEST".to_owned(),
            api_secret: "sec".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
            all_events: false,
        });
        let event = EventView::from_json(
            r#"{"event_id":"e-3","event_name":"Purchase","event_time":1700000000,"event_time_ms":1700000000123,"event_source_url":"https://s.example/t",
                "client_id":"tag-cid","custom_data":{"value":3,"currency":"USD","order_id":"o-9","contents":[{"id":"p","quantity":1,"item_price":3,"title":"Mug"}]}}"#,
        )
        .expect("json");
        let request = platform.build_request(&event, &RequestContext::default()).expect("builds");
        assert_eq!(request.url, "http://127.0.0.1:1/mp/collect?measurement_id=G-TEST&api_secret=sec");
        assert_eq!(
            request.body,
            json!({"client_id": "tag-cid", "timestamp_micros": 1700000000123000_i64, "events": [{"name": "purchase", "params": {
                "event_id": "e-3", "value": 3, "currency": "USD", "transaction_id": "o-9",
                "items": [{"item_id": "p", "item_name": "Mug", "quantity": 1, "price": 3}],
                "page_location": "https://s.example/t", "engagement_time_msec": 1
            }}]})
        );
        let with_ga = RequestContext { ga_client_id: Some("1.2".to_owned()), ..RequestContext::default() };
        assert_eq!(platform.build_request(&event, &with_ga).expect("builds").body["client_id"], "1.2");
    }

    #[test]
    fn user_data_and_consent() {
        use crate::event::sha256_hex;
        let platform = Ga4MeasurementProtocol::new(Ga4Config { measurement_id: "G-T".to_owned(), api_secret: "s".to_owned(), base_url: "http://x".to_owned(), all_events: false });
        let (em, fname) = (sha256_hex("ab@gmail.com"), sha256_hex("john"));
        let event = |consent: &str| {
            EventView::from_json(&format!(
                r#"{{"event_id":"e","event_name":"Lead","event_time":1,"event_source_url":"https://s.example/","client_id":"c",
                    "google_user_data":{{"sha256_email_address":"{em}","address":{{"sha256_first_name":"{fname}"}}}},"consent":{consent}}}"#
            ))
            .expect("json")
        };
        let body = platform.build_request(&event(r#"{"ad_user_data":"granted","ad_personalization":"denied"}"#), &RequestContext::default()).expect("builds").body;
        assert_eq!(body["user_data"], json!({"sha256_email_address": [em], "address": [{"sha256_first_name": fname}]}));
        assert_eq!(body["consent"], json!({"ad_user_data": "GRANTED", "ad_personalization": "DENIED"}));
        let body = platform.build_request(&event(r#"{"ad_user_data":"denied","ad_personalization":"granted"}"#), &RequestContext::default()).expect("builds").body;
        assert!(body.get("user_data").is_none());
        assert_eq!(body["consent"], json!({"ad_user_data": "DENIED", "ad_personalization": "GRANTED"}));
    }
}
