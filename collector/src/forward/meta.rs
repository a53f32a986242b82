//! Meta Conversions API.
//!
//! `POST {base}/{api_version}/{pixel_id}/events?access_token=…` with `{"data": [server event]}`
//! (developers.facebook.com/docs/marketing-api/conversions-api/parameters, "Server Event",
//! "Customer Information" and "Custom Data" parameters). Deduplication with the browser pixel
//! needs the same `event_name` and `event_id` as fbq's `eventID` (48 h window), so both are sent
//! exactly as the tag produced them. `fbp`, `fbc`, the IP and the user agent are never hashed;
//! `external_id` is the site's hashed `identify({externalId})`, else the SHA-256 of the tag's
//! client id. The hashed identity in `user_data` (em, ph, fn, ln, ct, st, zp, country, ge, db,
//! external_id, normalised to Meta's rules in the browser) is passed through when it is SHA-256 hex.
//! Consent: with ad_user_data denied no identifier is forwarded (no fbp, fbc, hashes, external_id,
//! IP; only the user agent); with ad_personalization denied the event carries Limited Data Use
//! (`data_processing_options: ["LDU"]`, country and state 0: Meta geolocates), Meta's
//! limited-use flag (developers.facebook.com/docs/marketing-apis/data-processing-options).

use serde_json::{json, Map, Value};

use super::{copy_keys, facebook_click_id, insert_str, non_empty, query_escape, Platform, PlatformRequest};
use crate::config::MetaConfig;
use crate::event::{is_sha256_hex, sha256_hex, EventView, RequestContext};

/// Customer-information keys Meta takes hashed (SHA-256 hex).
const HASHED_USER_KEYS: &[&str] = &["em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"];

/// custom_data parameters passed through unchanged (Meta's standard parameters + order_id).
const PASSTHROUGH_CUSTOM_KEYS: &[&str] = &[
    "value", "currency", "order_id", "content_ids", "content_type", "content_name", "content_category",
    "num_items", "search_string", "predicted_ltv", "status",
];

pub struct MetaCapi {
    config: MetaConfig,
}

impl MetaCapi {
    pub fn new(config: MetaConfig) -> Self {
        Self { config }
    }
}

impl Platform for MetaCapi {
    fn name(&self) -> &'static str {
        "meta"
    }

    fn build_request(&self, event: &EventView, context: &RequestContext) -> Result<PlatformRequest, String> {
        if event.event_id.is_empty() || event.event_name.is_empty() {
            return Err("event has no event_id or event_name".to_owned());
        }
        let mut user_data = Map::new();
        let identifiers = event.user_data_allowed();
        if identifiers {
            insert_str(&mut user_data, "fbp", non_empty(event.user_data.fbp.as_deref()).or(context.cookie_fbp.as_deref()));
            insert_str(&mut user_data, "fbc", facebook_click_id(event, context).as_deref());
            insert_str(&mut user_data, "client_ip_address", context.ip.as_deref());
        }
        insert_str(&mut user_data, "client_user_agent", context.user_agent.as_deref());
        for key in HASHED_USER_KEYS.iter().filter(|_| identifiers) {
            if let Some(value) = event.user_data.other.get(*key).filter(|value| is_hashed(value)) {
                user_data.insert((*key).to_owned(), value.clone());
            }
        }
        if identifiers && !user_data.contains_key("external_id") && !event.client_id.is_empty() {
            user_data.insert("external_id".to_owned(), json!([sha256_hex(&event.client_id)]));
        }

        let mut custom_data = Map::new();
        copy_keys(&event.custom_data, &mut custom_data, PASSTHROUGH_CUSTOM_KEYS);
        if let Some(Value::Array(contents)) = event.custom_data.get("contents") {
            let mapped: Vec<Value> = contents
                .iter()
                .filter_map(|item| {
                    let mut content = Map::new();
                    content.insert("id".to_owned(), item.get("id")?.clone());
                    copy_keys(item.as_object()?, &mut content, &["quantity", "item_price"]);
                    Some(Value::Object(content))
                })
                .collect();
            custom_data.insert("contents".to_owned(), Value::Array(mapped));
        }
        // Any other key is a custom parameter: passed through as given.
        for (key, value) in &event.custom_data {
            if !custom_data.contains_key(key) && key != "contents" {
                custom_data.insert(key.clone(), value.clone());
            }
        }

        let mut server_event = Map::new();
        server_event.insert("event_name".to_owned(), json!(event.event_name));
        server_event.insert("event_time".to_owned(), json!(event.event_time));
        server_event.insert("event_id".to_owned(), json!(event.event_id));
        server_event.insert("action_source".to_owned(), json!("website"));
        insert_str(&mut server_event, "event_source_url", Some(&event.event_source_url));
        server_event.insert("user_data".to_owned(), Value::Object(user_data));
        if event.personalization_denied() {
            server_event.insert("data_processing_options".to_owned(), json!(["LDU"]));
            server_event.insert("data_processing_options_country".to_owned(), json!(0));
            server_event.insert("data_processing_options_state".to_owned(), json!(0));
        }
        if !custom_data.is_empty() {
            server_event.insert("custom_data".to_owned(), Value::Object(custom_data));
        }

        let mut body = Map::new();
        body.insert("data".to_owned(), json!([server_event]));
        if let Some(code) = &self.config.test_event_code {
            body.insert("test_event_code".to_owned(), json!(code));
        }
        Ok(PlatformRequest {
            url: format!(
                "{}/{}/{}/events?access_token={}",
                self.config.base_url,
                self.config.api_version,
                query_escape(&self.config.pixel_id),
                query_escape(&self.config.access_token)
            ),
            headers: Vec::new(),
            body: Value::Object(body),
        })
    }
}

fn is_hashed(value: &Value) -> bool {
    match value {
        Value::String(text) => is_sha256_hex(text),
        Value::Array(items) => !items.is_empty() && items.iter().all(|item| item.as_str().is_some_and(is_sha256_hex)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_documented_server_event() {
        let platform = MetaCapi::new(MetaConfig {
            pixel_id: "123".to_owned(),
            access_token: "t o".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
            api_version: "v21.0".to_owned(),
            test_event_code: None,
        });
        let event = EventView::from_json(
            r#"{"event_id":"e-1","event_name":"Purchase","event_time":1700000000,"event_source_url":"https://s.example/t",
                "user_data":{"fbp":"fb.1.1.2","em":"not-hashed"},"client_id":"c",
                "custom_data":{"value":9.5,"currency":"EUR","order_id":"o","coupon":"X","contents":[{"id":"p","quantity":2,"item_price":4.75,"title":"T"}]},
                "click_ids":{"fbclid":{"value":"Ab","ts":1699999999000}}}"#,
        )
        .expect("json");
        let context = RequestContext { ip: Some("203.0.113.9".to_owned()), user_agent: Some("UA".to_owned()), ..RequestContext::default() };
        let request = platform.build_request(&event, &context).expect("builds");
        assert_eq!(request.url, "http://127.0.0.1:1/v21.0/123/events?access_token=t%20o");
        assert_eq!(
            request.body,
            json!({"data": [{
                "event_name": "Purchase", "event_time": 1700000000, "event_id": "e-1", "action_source": "website",
                "event_source_url": "https://s.example/t",
                "user_data": {"fbp": "fb.1.1.2", "fbc": "fb.1.1699999999000.Ab", "client_ip_address": "203.0.113.9",
                              "client_user_agent": "UA", "external_id": [sha256_hex("c")]},
                "custom_data": {"value": 9.5, "currency": "EUR", "order_id": "o", "coupon": "X",
                                "contents": [{"id": "p", "quantity": 2, "item_price": 4.75}]}
            }]})
        );
    }

    #[test]
    fn hashed_identity_and_consent() {
        let platform = MetaCapi::new(MetaConfig {
            pixel_id: "123".to_owned(),
            access_token: "t".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
            api_version: "v21.0".to_owned(),
            test_event_code: None,
        });
        let em = sha256_hex("a@example.com");
        let ext = sha256_hex("u-1");
        let event = |consent: &str| {
            EventView::from_json(&format!(
                r#"{{"event_id":"e","event_name":"Lead","event_time":1,"event_source_url":"https://s.example/","client_id":"c",
                    "user_data":{{"fbp":"fb.1.1.2","em":["{em}"],"external_id":["{ext}"]}},"click_ids":{{"fbclid":{{"value":"F","ts":1}}}},
                    "consent":{consent}}}"#
            ))
            .expect("json")
        };
        let context = RequestContext { ip: Some("203.0.113.9".to_owned()), user_agent: Some("UA".to_owned()), ..RequestContext::default() };
        let granted = r#"{"ad_storage":"granted","analytics_storage":"granted","ad_user_data":"granted","ad_personalization":"granted"}"#;
        let body = platform.build_request(&event(granted), &context).expect("builds").body;
        assert_eq!(
            body["data"][0]["user_data"],
            json!({"fbp": "fb.1.1.2", "fbc": "fb.1.1.F", "client_ip_address": "203.0.113.9", "client_user_agent": "UA", "em": [em], "external_id": [ext]})
        );
        assert!(body["data"][0].get("data_processing_options").is_none());
        let denied = r#"{"ad_storage":"denied","analytics_storage":"denied","ad_user_data":"denied","ad_personalization":"denied"}"#;
        let body = platform.build_request(&event(denied), &context).expect("builds").body;
        assert_eq!(body["data"][0]["user_data"], json!({"client_user_agent": "UA"}));
        assert_eq!(body["data"][0]["data_processing_options"], json!(["LDU"]));
        assert_eq!(body["data"][0]["data_processing_options_country"], json!(0));
    }
}
