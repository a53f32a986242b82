//! TikTok Events API (web events, v1.3).
//!
//! `POST {base}/open_api/v1.3/event/track/`, header `Access-Token`, body
//! `{"event_source": "web", "event_source_id": <pixel code>, "data": [{event, event_time,
//! event_id, user {ttclid, ttp, external_id, ip, user_agent}, page {url, referrer}, properties
//! {contents, value, currency, content_type, order_id, query}}]}` (TikTok for Business Events API
//! 2.0 reference; the field layout is confirmed by third-party copies of TikTok's sample, see
//! shared/PLATFORMS.md). TikTok dedups the pixel's `ttq.track(…, {event_id})` against the same
//! event name and `event_id` within 48 h.
//!
//! Identity: `user.email`, `user.phone` and `user.external_id` are the tag's `tiktok_user_data`
//! hashes (TikTok's rules: email trimmed and lowercased, phone E.164 with `+`), external_id
//! falling back to the SHA-256 of the client id. Consent: with ad_user_data denied no identifier
//! is forwarded (ttclid, ttp, email, phone, external_id, IP); with ad_personalization denied the
//! event carries `limited_data_use: true` (TikTok's Limited Data Use flag; the field name is from
//! third-party copies of TikTok's Events API 2.0 reference, unconfirmed).

use serde_json::{json, Map, Value};

use super::{copy_keys, insert_str, non_empty, Platform, PlatformRequest, Refusal};
use crate::config::TikTokConfig;
use crate::event::{is_sha256_hex, sha256_hex, EventView, RequestContext};

pub struct TikTokEventsApi {
    config: TikTokConfig,
}

impl TikTokEventsApi {
    pub fn new(config: TikTokConfig) -> Self {
        Self { config }
    }
}

/// TikTok's name for a Meta-named (canonical) event. Most standard names are shared; since
/// May 2025 CompletePayment → Purchase and SubmitForm → Lead. `Pageview` is the name TikTok's
/// pixel reports for page views (third-party templates use it). Others pass through as custom.
pub fn tiktok_event_name(canonical: &str) -> &str {
    match canonical {
        "PageView" => "Pageview",
        "CompletePayment" => "Purchase",
        "SubmitForm" => "Lead",
        other => other,
    }
}

impl Platform for TikTokEventsApi {
    fn name(&self) -> &'static str {
        "tiktok"
    }

    /// Not PageView: the pixel's `ttq.page()` takes no event_id, so TikTok could not match a
    /// server copy with it and would count every page view twice.
    fn forwards(&self, event_name: &str) -> bool {
        event_name != "PageView"
    }

    /// TikTok's Business API answers HTTP 200 with `{"code": 0, "message": "OK", …}`, and its
    /// errors too, with another `code`: 40100 is its rate limit and 5xxxx its own failures (worth
    /// a retry); any other code (a bad token, a bad parameter) will not change on a retry.
    fn refusal(&self, body: &str) -> Option<Refusal> {
        let answer: Value = serde_json::from_str(body).ok()?;
        let code = answer.get("code")?.as_i64()?;
        if code == 0 {
            return None;
        }
        let message = answer.get("message").and_then(Value::as_str).unwrap_or("");
        Some(Refusal { retry: code == 40100 || code >= 50000, error: format!("TikTok code {code}: {message}") })
    }

    fn build_request(&self, event: &EventView, context: &RequestContext) -> Result<PlatformRequest, String> {
        if event.event_id.is_empty() || event.event_name.is_empty() {
            return Err("event has no event_id or event_name".to_owned());
        }
        let mut user = Map::new();
        if event.user_data_allowed() {
            insert_str(&mut user, "ttclid", event.click_id("ttclid").as_deref().map(|click| click.value.as_str()));
            insert_str(&mut user, "ttp", non_empty(event.user_data.ttp.as_deref()).or(context.cookie_ttp.as_deref()));
            let hashed = |key: &str| event.tiktok_user_data.get(key).and_then(Value::as_str).filter(|h| is_sha256_hex(h));
            insert_str(&mut user, "email", hashed("email"));
            insert_str(&mut user, "phone", hashed("phone_number"));
            match hashed("external_id") {
                Some(id) => insert_str(&mut user, "external_id", Some(id)),
                None if !event.client_id.is_empty() => {
                    user.insert("external_id".to_owned(), json!(sha256_hex(&event.client_id)));
                }
                None => {}
            }
            insert_str(&mut user, "ip", context.ip.as_deref());
        }
        insert_str(&mut user, "user_agent", context.user_agent.as_deref());

        let mut page = Map::new();
        insert_str(&mut page, "url", Some(&event.event_source_url));
        insert_str(&mut page, "referrer", event.referrer.as_deref());

        let custom = &event.custom_data;
        let mut properties = Map::new();
        if let Some(Value::Array(contents)) = custom.get("contents") {
            let mapped: Vec<Value> = contents
                .iter()
                .filter_map(|item| {
                    let mut content = Map::new();
                    content.insert("content_id".to_owned(), item.get("id")?.clone());
                    copy_keys(item.as_object()?, &mut content, &["quantity"]);
                    if let Some(price) = item.get("item_price") {
                        content.insert("price".to_owned(), price.clone());
                    }
                    if let Some(title) = item.get("title") {
                        content.insert("content_name".to_owned(), title.clone());
                    }
                    if let Some(category) = item.get("category") {
                        content.insert("content_category".to_owned(), category.clone());
                    }
                    Some(Value::Object(content))
                })
                .collect();
            properties.insert("contents".to_owned(), Value::Array(mapped));
        } else if let Some(Value::Array(ids)) = custom.get("content_ids") {
            let mapped: Vec<Value> = ids.iter().map(|id| json!({ "content_id": id })).collect();
            properties.insert("contents".to_owned(), Value::Array(mapped));
        }
        copy_keys(custom, &mut properties, &["value", "currency", "content_type", "order_id"]);
        if let Some(query) = custom.get("search_string") {
            properties.insert("query".to_owned(), query.clone());
        }
        if let Some(name) = custom.get("content_name") {
            properties.insert("description".to_owned(), name.clone());
        }

        let mut data = Map::new();
        data.insert("event".to_owned(), json!(tiktok_event_name(&event.event_name)));
        data.insert("event_time".to_owned(), json!(event.event_time));
        data.insert("event_id".to_owned(), json!(event.event_id));
        data.insert("user".to_owned(), Value::Object(user));
        data.insert("page".to_owned(), Value::Object(page));
        data.insert("properties".to_owned(), Value::Object(properties));
        if event.personalization_denied() {
            data.insert("limited_data_use".to_owned(), json!(true));
        }

        let mut body = Map::new();
        body.insert("event_source".to_owned(), json!("web"));
        body.insert("event_source_id".to_owned(), json!(self.config.pixel_id));
        body.insert("data".to_owned(), json!([data]));
        if let Some(code) = &self.config.test_event_code {
            body.insert("test_event_code".to_owned(), json!(code));
        }
        Ok(PlatformRequest {
            url: format!("{}/open_api/v1.3/event/track/", self.config.base_url),
            headers: vec![("Access-Token", self.config.access_token.clone())],
            body: Value::Object(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_in_a_200_answer_is_read() {
        let platform = TikTokEventsApi::new(TikTokConfig { pixel_id: "C".to_owned(), access_token: "t".to_owned(), base_url: "http://x".to_owned(), test_event_code: None });
        assert_eq!(platform.refusal(r#"{"code":0,"message":"OK","request_id":"r"}"#), None);
        assert_eq!(platform.refusal("not json"), None);
        let bad = platform.refusal(r#"{"code":40002,"message":"Invalid parameters"}"#).expect("refused");
        assert!(!bad.retry && bad.error.contains("40002") && bad.error.contains("Invalid parameters"), "{bad:?}");
        assert!(platform.refusal(r#"{"code":40100,"message":"Too many requests"}"#).expect("refused").retry);
        assert!(platform.refusal(r#"{"code":50002,"message":"Internal"}"#).expect("refused").retry);
    }

    #[test]
    fn page_views_are_not_forwarded() {
        let platform = TikTokEventsApi::new(TikTokConfig { pixel_id: "C".to_owned(), access_token: "t".to_owned(), base_url: "http://x".to_owned(), test_event_code: None });
        assert!(!platform.forwards("PageView"));
        assert!(platform.forwards("Purchase") && platform.forwards("Pageview_custom"));
    }

    #[test]
    fn builds_an_events_api_request() {
        let platform = TikTokEventsApi::new(TikTokConfig {
            pixel_id: "CPIXEL".to_owned(),
            access_token: "tok".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
            test_event_code: None,
        });
        let event = EventView::from_json(
            r#"{"event_id":"e-2","event_name":"CompletePayment","event_time":1700000000,"event_source_url":"https://s.example/t","referrer":"https://r.example/",
                "user_data":{"ttp":"ttp-1"},"client_id":"c","custom_data":{"value":3,"currency":"USD","contents":[{"id":"p","quantity":1,"item_price":3}]},
                "click_ids":{"ttclid":{"value":"E.C.P.x","ts":1}}}"#,
        )
        .expect("json");
        let context = RequestContext { ip: Some("::1".to_owned()), user_agent: Some("UA".to_owned()), ..RequestContext::default() };
        let request = platform.build_request(&event, &context).expect("builds");
        assert_eq!(request.url, "http://127.0.0.1:1/open_api/v1.3/event/track/");
        assert_eq!(request.headers, vec![("Access-Token", "tok".to_owned())]);
        assert_eq!(
            request.body,
            json!({"event_source": "web", "event_source_id": "CPIXEL", "data": [{
                "event": "Purchase", "event_time": 1700000000, "event_id": "e-2",
                "user": {"ttclid": "E.C.P.x", "ttp": "ttp-1", "external_id": sha256_hex("c"), "ip": "::1", "user_agent": "UA"},
                "page": {"url": "https://s.example/t", "referrer": "https://r.example/"},
                "properties": {"contents": [{"content_id": "p", "quantity": 1, "price": 3}], "value": 3, "currency": "USD"}
            }]})
        );
    }
    #[test]
    fn hashed_identity_and_consent() {
        let platform = TikTokEventsApi::new(TikTokConfig {
            pixel_id: "CPIXEL".to_owned(),
            access_token: "tok".to_owned(),
            base_url: "http://127.0.0.1:1".to_owned(),
            test_event_code: None,
        });
        let (em, ph, ext) = (sha256_hex("a@example.com"), sha256_hex("+16505551212"), sha256_hex("U-1"));
        let event = |consent: &str| {
            EventView::from_json(&format!(
                r#"{{"event_id":"e","event_name":"Lead","event_time":1,"event_source_url":"https://s.example/","client_id":"c",
                    "user_data":{{"ttp":"t1"}},"tiktok_user_data":{{"email":"{em}","phone_number":"{ph}","external_id":"{ext}"}},
                    "click_ids":{{"ttclid":{{"value":"E.C.P.x","ts":1}}}},"consent":{consent}}}"#
            ))
            .expect("json")
        };
        let context = RequestContext { ip: Some("::1".to_owned()), user_agent: Some("UA".to_owned()), ..RequestContext::default() };
        let body = platform.build_request(&event(r#"{"ad_user_data":"granted","ad_personalization":"granted"}"#), &context).expect("builds").body;
        assert_eq!(body["data"][0]["user"], json!({"ttclid": "E.C.P.x", "ttp": "t1", "email": em, "phone": ph, "external_id": ext, "ip": "::1", "user_agent": "UA"}));
        assert!(body["data"][0].get("limited_data_use").is_none());
        let body = platform.build_request(&event(r#"{"ad_user_data":"denied","ad_personalization":"denied"}"#), &context).expect("builds").body;
        assert_eq!(body["data"][0]["user"], json!({"user_agent": "UA"}));
        assert_eq!(body["data"][0]["limited_data_use"], json!(true));
    }
}
