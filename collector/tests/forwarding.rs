//! Forwarding through the outbox to a mock platform on 127.0.0.1: request formats per
//! platform documentation, the browser's event_id everywhere, retries on 5xx, dead on 4xx.

mod common;

use std::time::Duration;

use common::{batch, client, events, wait_until, MockPlatform, TestCollector};
use serde_json::{json, Value};
use tandem_collector::event::sha256_hex;

async fn post_batch(url: &str, body: Value, headers: &[(&str, &str)]) -> Value {
    let mut request = client().post(format!("{url}/collect")).header("Content-Type", "text/plain").body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("POST /collect");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn each_platform_receives_its_documented_format_with_the_browsers_event_id() {
    let mock = MockPlatform::start().await;
    let collector = TestCollector::start(|config| mock.configure(config)).await;
    post_batch(&collector.url, batch(&["fwd-1"]), &[("User-Agent", "Mozilla/5.0 Test"), ("X-Forwarded-For", "198.51.100.4")]).await;
    assert!(wait_until(Duration::from_secs(10), || mock.recorded().len() >= 3).await, "three requests: {:?}", mock.recorded());

    let meta = mock.accepted("/v21.0/").pop().expect("meta request");
    assert_eq!(meta.path, "/v21.0/1234567890/events");
    assert_eq!(meta.query, "access_token=meta-token");
    assert_eq!(meta.headers["content-type"], "application/json");
    assert_eq!(
        meta.body,
        json!({"data": [{
            "event_name": "Purchase",
            "event_time": 1_700_000_000,
            "event_id": "fwd-1",
            "action_source": "website",
            "event_source_url": "https://shop.example/thanks?order=42",
            "user_data": {
                "fbp": "fb.1.1699990000000.1234567890",
                "fbc": "fb.1.1699990000000.IwAR-fbclid",
                "client_ip_address": "198.51.100.4",
                "client_user_agent": "Mozilla/5.0 Test",
                "external_id": [sha256_hex("cid-123")]
            },
            "custom_data": {"value": 42.5, "currency": "EUR", "order_id": "order-fwd-1", "content_type": "product",
                            "contents": [{"id": "sku-1", "quantity": 2, "item_price": 21.25}]}
        }]})
    );

    let tiktok = mock.accepted("/open_api/").pop().expect("tiktok request");
    assert_eq!(tiktok.path, "/open_api/v1.3/event/track/");
    assert_eq!(tiktok.headers["access-token"], "tiktok-token");
    assert_eq!(
        tiktok.body,
        json!({"event_source": "web", "event_source_id": "CTIKTOKPIXEL", "data": [{
            "event": "Purchase", "event_time": 1_700_000_000, "event_id": "fwd-1",
            "user": {"ttclid": "E.C.P.ttclid", "ttp": "ttp-cookie-1", "external_id": sha256_hex("cid-123"),
                     "ip": "198.51.100.4", "user_agent": "Mozilla/5.0 Test"},
            "page": {"url": "https://shop.example/thanks?order=42", "referrer": "https://shop.example/checkout"},
            "properties": {"contents": [{"content_id": "sku-1", "quantity": 2, "price": 21.25, "content_name": "Mug"}],
                           "value": 42.5, "currency": "EUR", "content_type": "product", "order_id": "order-fwd-1"}
        }]})
    );

    let ga4 = mock.accepted("/mp/collect").pop().expect("ga4 request");
    assert_eq!(ga4.query, "measurement_id=G-TEST123&api_secret=ga4-secret");
    assert_eq!(
        ga4.body,
        json!({"client_id": "cid-123", "timestamp_micros": 1_700_000_000_123_000_i64, "events": [{"name": "purchase", "params": {
            "event_id": "fwd-1", "value": 42.5, "currency": "EUR", "transaction_id": "order-fwd-1",
            "items": [{"item_id": "sku-1", "item_name": "Mug", "quantity": 2, "price": 21.25}],
            "page_location": "https://shop.example/thanks?order=42", "page_referrer": "https://shop.example/checkout",
            "engagement_time_msec": 1
        }}]})
    );

    // The outbox records every platform as sent.
    assert!(wait_for_states(&collector.url, "fwd-1", &["sent", "sent", "sent"]).await, "outbox states");
    collector.stop().await;
}

#[tokio::test]
async fn cookies_the_events_consent_does_not_allow_are_not_forwarded() {
    let mock = MockPlatform::start().await;
    let collector = TestCollector::start(|config| mock.configure(config)).await;
    let mut event = common::sample_event("fwd-consent");
    // As the tag sends it with both storages denied: no cookie value of its own, no stored click.
    event["user_data"] = json!({});
    event["click_ids"] = json!({});
    event["consent"] = json!({"ad_storage": "denied", "analytics_storage": "denied", "ad_user_data": "granted", "ad_personalization": "denied"});
    let cookies = "_fbp=fb.1.1600000000000.77; _fbc=fb.1.1600000000000.OLD; _ttp=ttp-old; _ga=GA1.1.111.1700000000";
    post_batch(&collector.url, json!({"events": [event]}), &[("Cookie", cookies)]).await;
    assert!(wait_until(Duration::from_secs(10), || mock.recorded().len() >= 3).await, "three requests: {:?}", mock.recorded());
    let meta = mock.accepted("/v21.0/").pop().expect("meta request");
    let user = &meta.body["data"][0]["user_data"];
    assert!(user["fbp"].is_null() && user["fbc"].is_null(), "{user}");
    let tiktok = mock.accepted("/open_api/").pop().expect("tiktok request");
    assert!(tiktok.body["data"][0]["user"]["ttp"].is_null(), "{}", tiktok.body);
    let ga4 = mock.accepted("/mp/collect").pop().expect("ga4 request");
    assert_eq!(ga4.body["client_id"], "cid-123", "the tag's id, not the _ga cookie's");
    collector.stop().await;
}

async fn forwarding_states(url: &str, event_id: &str) -> Vec<String> {
    let found = events(url, &format!("event_id={event_id}")).await;
    found["events"][0]["forwarding"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|row| row["state"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn wait_for_states(url: &str, event_id: &str, expected: &[&str]) -> bool {
    for _ in 0..250 {
        if forwarding_states(url, event_id).await == expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_accepted() {
    let mock = MockPlatform::start().await;
    mock.answer_with(503);
    let collector = TestCollector::start(|config| {
        mock.configure(config);
        config.tiktok = None;
        config.ga4 = None;
    })
    .await;
    post_batch(&collector.url, batch(&["retry-1"]), &[]).await;
    assert!(wait_until(Duration::from_secs(10), || mock.recorded().len() >= 3).await, "at least three 503 attempts");
    mock.answer_with(200);
    assert!(wait_until(Duration::from_secs(10), || mock.accepted("/v21.0/").len() == 1).await);
    assert!(wait_for_states(&collector.url, "retry-1", &["sent"]).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(mock.accepted("/v21.0/").len(), 1, "nothing sent again once accepted");
    let every_attempt_has_the_id = mock.recorded().iter().all(|request| request.body["data"][0]["event_id"] == "retry-1");
    assert!(every_attempt_has_the_id, "retries keep the event_id");
    let row = &events(&collector.url, "event_id=retry-1").await["events"][0]["forwarding"][0];
    assert!(row["attempts"].as_i64().expect("attempts") >= 4, "{row}");
    collector.stop().await;
}

#[tokio::test]
async fn client_errors_are_not_retried_and_the_error_is_kept() {
    let mock = MockPlatform::start().await;
    mock.answer_with(400);
    let collector = TestCollector::start(|config| {
        mock.configure(config);
        config.meta = None;
        config.ga4 = None;
    })
    .await;
    post_batch(&collector.url, batch(&["dead-1"]), &[]).await;
    assert!(wait_for_states(&collector.url, "dead-1", &["dead"]).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(mock.recorded().len(), 1, "a 4xx is not retried");
    let row = &events(&collector.url, "event_id=dead-1").await["events"][0]["forwarding"][0];
    assert_eq!(row["platform"], "tiktok");
    assert_eq!(row["last_status"], 400);
    assert!(row["last_error"].as_str().expect("error kept").contains("HTTP 400"), "{row}");
    let health: Value = client().get(format!("{}/healthz", collector.url)).send().await.expect("get").json().await.expect("json");
    assert_eq!(health["store"]["outbox_dead"], 1);
    collector.stop().await;
}

#[tokio::test]
async fn duplicates_are_forwarded_once() {
    let mock = MockPlatform::start().await;
    let collector = TestCollector::start(|config| {
        mock.configure(config);
        config.meta = None;
        config.tiktok = None;
    })
    .await;
    for _ in 0..3 {
        post_batch(&collector.url, batch(&["once-1", "once-2"]), &[]).await;
    }
    assert!(wait_until(Duration::from_secs(10), || mock.accepted("/mp/collect").len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut ids: Vec<String> = mock
        .accepted("/mp/collect")
        .iter()
        .filter_map(|request| request.body["events"][0]["params"]["event_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["once-1", "once-2"]);
    collector.stop().await;
}

/// GA4 deduplicates only purchases (by transaction_id), and gtag already sent every event from the
/// page: a server copy of any other event would be counted twice. With `events = "all"` (a site
/// without gtag) every event goes, custom names as the tag sends them to gtag.
#[tokio::test]
async fn ga4_gets_only_purchases_unless_told_to_take_every_event() {
    let with_events = |name: &str, id: &str| {
        let mut event = common::sample_event(id);
        event["event_name"] = json!(name);
        if name != "Purchase" {
            event["custom_data"] = json!({});
        }
        event
    };
    for all_events in [false, true] {
        let mock = MockPlatform::start().await;
        let collector = TestCollector::start(|config| {
            mock.configure(config);
            config.tiktok = None;
            if let Some(ga4) = config.ga4.as_mut() {
                ga4.all_events = all_events;
            }
        })
        .await;
        let batch = json!({"events": [with_events("PageView", "pv-1"), with_events("AddToCart", "atc-1"), with_events("BookDemo", "bd-1"), with_events("Purchase", "buy-1")]});
        post_batch(&collector.url, batch, &[]).await;
        assert!(wait_until(Duration::from_secs(10), || mock.accepted("/v21.0/").len() >= 4).await, "Meta gets all four");
        let expected: &[&str] = if all_events { &["page_view", "add_to_cart", "BookDemo", "purchase"] } else { &["purchase"] };
        assert!(wait_until(Duration::from_secs(10), || mock.accepted("/mp/collect").len() >= expected.len()).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut ga4: Vec<String> = mock.accepted("/mp/collect").iter().filter_map(|r| r.body["events"][0]["name"].as_str().map(str::to_owned)).collect();
        ga4.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(ga4, want, "all_events {all_events}");
        assert_eq!(forwarding_states(&collector.url, "pv-1").await.len(), if all_events { 2 } else { 1 }, "no GA4 outbox row for a page view by default");
        collector.stop().await;
    }
}

/// The rows of a platform switched off (a token rotation, say) wait for it, uncounted: they are
/// not claimed, so they neither use up their attempts nor go dead.
#[tokio::test]
async fn rows_for_a_platform_switched_off_wait_for_it() {
    let mock = MockPlatform::start().await;
    mock.answer_with(503);
    let dir = common::TempDir::new("switched-off");
    let db = dir.path().join("tandem.db");
    let first = TestCollector::start(|config| {
        mock.configure(config);
        config.meta = None;
        config.ga4 = None;
        config.db = db.clone();
    })
    .await;
    post_batch(&first.url, batch(&["gone-1"]), &[]).await;
    first.stop().await;

    mock.answer_with(200);
    let second = TestCollector::start(|config| {
        mock.configure(config);
        config.tiktok = None;
        config.ga4 = None;
        config.db = db.clone();
        config.outbox.max_attempts = 3;
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(forwarding_states(&second.url, "gone-1").await, vec!["pending"], "TikTok's row waits");
    second.stop().await;

    let third = TestCollector::start(|config| {
        mock.configure(config);
        config.meta = None;
        config.ga4 = None;
        config.db = db.clone();
    })
    .await;
    assert!(wait_for_states(&third.url, "gone-1", &["sent"]).await, "sent once TikTok is back: {:?}", forwarding_states(&third.url, "gone-1").await);
    third.stop().await;
}

/// TikTok answers its errors with HTTP 200 and a non-zero `code`: a refused event is not `sent`.
#[tokio::test]
async fn a_tiktok_refusal_in_a_200_answer_is_not_taken_for_delivery() {
    let mock = MockPlatform::start().await;
    mock.answer_code(40002);
    let collector = TestCollector::start(|config| {
        mock.configure(config);
        config.meta = None;
        config.ga4 = None;
    })
    .await;
    post_batch(&collector.url, batch(&["tt-refused"]), &[]).await;
    assert!(wait_for_states(&collector.url, "tt-refused", &["dead"]).await, "{:?}", forwarding_states(&collector.url, "tt-refused").await);
    let found = events(&collector.url, "event_id=tt-refused").await;
    let error = found["events"][0]["forwarding"][0]["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("40002"), "{error}");
    // Its rate limit (40100) is retried.
    mock.answer_code(40100);
    post_batch(&collector.url, batch(&["tt-limited"]), &[]).await;
    assert!(wait_until(Duration::from_secs(10), || mock.recorded().iter().filter(|r| r.body.to_string().contains("tt-limited")).count() >= 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(forwarding_states(&collector.url, "tt-limited").await, vec!["pending"]);
    mock.answer_code(0);
    assert!(wait_for_states(&collector.url, "tt-limited", &["sent"]).await, "{:?}", forwarding_states(&collector.url, "tt-limited").await);
    collector.stop().await;
}
