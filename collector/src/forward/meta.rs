//! Meta Conversions API.
//!
//! `POST {base}/{api_version}/{pixel_id}/events?access_token=…` with `{"data": [server event]}`
//! (developers.facebook.com/docs/marketing-api/conversions-api/parameters, "Server Event",
//! "Customer Information" and "Custom Data" parameters). Deduplication with the browser pixel
//! needs the same `event_name` and `event_id` as fbq's `eventID` (48 h window), so both are sent
//! exactly as the tag produced them. `fbp`, `fbc`, the IP and the user agent are never hashed;
//! `external_id` is the SHA-256 of the tag's client id. Hashed identifiers a later payload
//! version adds to `user_data` (em, ph, …) are passed through when they already are SHA-256 hex.

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
        insert_str(&mut user_data, "fbp", non_empty(event.user_data.fbp.as_deref()).or(context.cookie_fbp.as_deref()));
        insert_str(&mut user_data, "fbc", facebook_click_id(event, context).as_deref());
        insert_str(&mut user_data, "client_ip_address", context.ip.as_deref());
        insert_str(&mut user_data, "client_user_agent", context.user_agent.as_deref());
        for key in HASHED_USER_KEYS {
            if let Some(value) = event.user_data.other.get(*key).filter(|value| is_hashed(value)) {
                user_data.insert((*key).to_owned(), value.clone());
            }
        }
        if !user_data.contains_key("external_id") && !event.client_id.is_empty() {
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
}
