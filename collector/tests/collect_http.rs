//! `POST /collect`, `GET /events`, `GET /healthz` over real HTTP on 127.0.0.1: valid, invalid,
//! oversize, garbage and stalled bodies; exactly-once under concurrent duplicates; CORS; cookies
//! (and their Domain); a configured collect path.

mod common;

use std::time::Duration;

use common::{batch, client, events, sample_event, TestCollector};
use serde_json::{json, Value};
use tandem_collector::config::TrustForwarded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client()
        .post(format!("{url}/collect"))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /collect");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

#[tokio::test]
async fn stores_valid_events_sent_as_json_and_as_text_plain() {
    let collector = TestCollector::start(|_| {}).await;
    let (status, body, _) = post(&collector.url, "application/json", batch(&["ev-1", "ev-2"]).to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"results": [{"event_id": "ev-1", "status": "stored"}, {"event_id": "ev-2", "status": "stored"}]}));

    let (status, body, _) = post(&collector.url, "text/plain;charset=UTF-8", batch(&["ev-3"]).to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "stored");

    let stored = events(&collector.url, "").await;
    let ids: Vec<&str> = stored["events"].as_array().expect("array").iter().filter_map(|event| event["event_id"].as_str()).collect();
    assert_eq!(ids, vec!["ev-1", "ev-2", "ev-3"]);
    assert_eq!(stored["events"][0]["event"]["custom_data"]["order_id"], "order-ev-1");
    assert_eq!(stored["events"][0]["context"]["ip"], "127.0.0.1");
    collector.stop().await;
}

#[tokio::test]
async fn a_retried_beacon_is_acknowledged_as_duplicate() {
    let collector = TestCollector::start(|_| {}).await;
    let body = batch(&["dup-1", "dup-1", "dup-2"]).to_string();
    let (_, first, _) = post(&collector.url, "text/plain", body.clone()).await;
    assert_eq!(first["results"][0]["status"], "stored");
    assert_eq!(first["results"][1]["status"], "duplicate", "double fire inside one batch");
    let (status, second, _) = post(&collector.url, "text/plain", body).await;
    assert_eq!(status, 200);
    let statuses: Vec<&str> = second["results"].as_array().expect("array").iter().filter_map(|result| result["status"].as_str()).collect();
    assert_eq!(statuses, vec!["duplicate", "duplicate", "duplicate"]);
    assert_eq!(events(&collector.url, "").await["events"].as_array().expect("array").len(), 2);
    collector.stop().await;
}

#[tokio::test]
async fn concurrent_posts_of_the_same_batch_store_one_row_per_event() {
    let collector = TestCollector::start(|_| {}).await;
    let ids: Vec<String> = (0..20).map(|index| format!("race-{index}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = batch(&id_refs).to_string();
    let mut posts = Vec::new();
    for _ in 0..16 {
        let url = collector.url.clone();
        let body = body.clone();
        posts.push(tokio::spawn(async move { post(&url, "application/json", body).await }));
    }
    let mut stored_acks = 0;
    for handle in posts {
        let (status, response, _) = handle.await.expect("join");
        assert_eq!(status, 200, "{response}");
        stored_acks += response["results"].as_array().expect("array").iter().filter(|result| result["status"] == "stored").count();
    }
    assert_eq!(stored_acks, ids.len(), "each event acknowledged as stored exactly once");
    for id in &ids {
        let found = events(&collector.url, &format!("event_id={id}")).await;
        assert_eq!(found["events"].as_array().expect("array").len(), 1, "{id}");
    }
    let health: Value = client().get(format!("{}/healthz", collector.url)).send().await.expect("healthz").json().await.expect("json");
    assert_eq!(health["store"]["events_stored"], 20);
    collector.stop().await;
}

#[tokio::test]
async fn invalid_events_are_named_and_do_not_block_valid_ones() {
    let collector = TestCollector::start(|_| {}).await;
    let mut bad = sample_event("bad-1");
    bad["custom_data"]["currency"] = json!("euro");
    let (status, body, _) = post(&collector.url, "application/json", json!({"events": [sample_event("good-1"), bad.clone()]}).to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["status"], "stored");
    assert_eq!(body["results"][1]["status"], "invalid");
    assert_eq!(body["results"][1]["field"], "events[1].custom_data.currency");

    let (status, body, _) = post(&collector.url, "application/json", json!({"events": [bad]}).to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "events[0].custom_data.currency");
    assert!(body["error"].as_str().expect("error").contains("pattern"), "{body}");

    let mut missing = sample_event("m-1");
    missing.as_object_mut().expect("object").remove("event_id");
    let (status, body, _) = post(&collector.url, "application/json", json!({"events": [missing]}).to_string()).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("events[0].event_id")));

    for (payload, field) in [
        (json!({}), "events"),
        (json!({"events": []}), "events"),
        (json!({"events": [sample_event("x")], "extra": true}), "extra"),
        (json!([1, 2]), "(body)"),
    ] {
        let (status, body, _) = post(&collector.url, "application/json", payload.to_string()).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{payload}");
    }
    assert_eq!(events(&collector.url, "").await["events"].as_array().expect("array").len(), 1);
    collector.stop().await;
}

#[tokio::test]
async fn garbage_bodies_get_400_and_never_break_the_server() {
    let collector = TestCollector::start(|_| {}).await;
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"not json".to_vec(),
        b"{\"events\": [".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        "[".repeat(10_000).into_bytes(),
        format!("{{\"events\":{}}}", "[".repeat(5_000)).into_bytes(),
        b"{\"events\":[{\"event_id\":\"\\ud800\"}]}".to_vec(),
    ];
    for _ in 0..40 {
        let length = (next() % 2_000) as usize;
        bodies.push((0..length).map(|_| next() as u8).collect());
    }
    for body in bodies {
        let (status, response, _) = post(&collector.url, "text/plain", body.clone()).await;
        assert_eq!(status, 400, "body {:?} → {response}", String::from_utf8_lossy(&body[..body.len().min(40)]));
        assert!(response["error"].is_string());
    }
    let health = client().get(format!("{}/healthz", collector.url)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    collector.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let collector = TestCollector::start(|config| config.max_body_bytes = 4096).await;
    let big = json!({"events": [sample_event("big")], "padding": "x".repeat(5000)}).to_string();
    let (status, body, _) = post(&collector.url, "application/json", big.clone()).await;
    assert_eq!(status, 413, "{body}");

    // Without Content-Length (chunked), the limit still holds while reading.
    let mut request = b"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in big.as_bytes().chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_request(collector.address, &request).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    collector.stop().await;
}

/// Writes raw bytes and returns the response head (bounded to 5 s).
async fn raw_request(address: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    let _ = socket.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0_u8; 1024];
        loop {
            let count = socket.read(&mut buffer).await.unwrap_or(0);
            if count == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..count]);
            if answer.windows(4).any(|window| window == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_stalled_body_times_out_instead_of_hanging() {
    let collector = TestCollector::start(|config| config.body_timeout_ms = 300).await;
    let started = std::time::Instant::now();
    let text = raw_request(
        collector.address,
        b"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n{\"events\":",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(4), "answered in {:?}", started.elapsed());
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    collector.stop().await;
}

#[tokio::test]
async fn cors_for_configured_origins_only() {
    let collector = TestCollector::start(|config| config.allowed_origins = vec!["https://shop.example".to_owned()]).await;
    let preflight = client()
        .request(reqwest::Method::OPTIONS, format!("{}/collect", collector.url))
        .header("Origin", "https://shop.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(preflight.headers()["access-control-allow-credentials"], "true");
    assert!(preflight.headers()["access-control-allow-headers"].to_str().expect("text").contains("Content-Type"));

    let allowed = client()
        .post(format!("{}/collect", collector.url))
        .header("Origin", "https://shop.example")
        .header("Content-Type", "application/json")
        .body(batch(&["cors-1"]).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://shop.example");

    let refused = client()
        .post(format!("{}/collect", collector.url))
        .header("Origin", "https://evil.example")
        .body(batch(&["cors-2"]).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    collector.stop().await;
}

#[tokio::test]
async fn a_configured_collect_path_replaces_collect() {
    let collector = TestCollector::start(|config| {
        config.collect_path = "/t/e".to_owned();
        config.allowed_origins = vec!["https://shop.example".to_owned()];
    })
    .await;
    let send = |method: reqwest::Method, path: &str| {
        client()
            .request(method, format!("{}{path}", collector.url))
            .header("Origin", "https://shop.example")
            .header("Content-Type", "text/plain")
            .header("Access-Control-Request-Method", "POST")
            .body(batch(&["path-1"]).to_string())
            .send()
    };
    let preflight = send(reqwest::Method::OPTIONS, "/t/e").await.expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://shop.example");
    let accepted = send(reqwest::Method::POST, "/t/e").await.expect("post");
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.json::<Value>().await.expect("json")["results"][0]["status"], "stored");

    for method in [reqwest::Method::POST, reqwest::Method::OPTIONS] {
        let old_path = send(method.clone(), "/collect").await.expect("old path");
        assert_eq!(old_path.status(), 404, "{method} /collect is no longer served");
    }
    assert_eq!(events(&collector.url, "").await["events"].as_array().expect("array").len(), 1, "/events stays where it was");
    let health = client().get(format!("{}/healthz", collector.url)).send().await.expect("healthz");
    assert_eq!(health.status(), 200, "/healthz stays where it was");
    collector.stop().await;
}

#[tokio::test]
async fn the_response_sets_first_party_cookies() {
    let collector = TestCollector::start(|_| {}).await;
    let mut event = sample_event("cookie-1");
    event["user_data"] = json!({"fbp": "fb.1.1699990000000.42"});
    let response = client()
        .post(format!("{}/collect", collector.url))
        .header("Content-Type", "text/plain")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-For", "203.0.113.7, 10.0.0.1")
        .header("Cookie", "_ga=GA1.1.111.1700000000")
        .body(json!({"events": [event]}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response.headers().get_all("set-cookie").iter().map(|value| value.to_str().expect("ascii").to_owned()).collect();
    assert_eq!(
        cookies,
        vec![
            "_tandem_cid=cid-123; Max-Age=34560000; Path=/; SameSite=Lax; Secure",
            "_fbp=fb.1.1699990000000.42; Max-Age=7776000; Path=/; SameSite=Lax; Secure",
            // No fbc in the payload: built from the stored fbclid click.
            "_fbc=fb.1.1699990000000.IwAR-fbclid; Max-Age=7776000; Path=/; SameSite=Lax; Secure",
        ]
    );
    assert!(cookies.iter().all(|cookie| !cookie.contains("HttpOnly")));
    let stored = events(&collector.url, "event_id=cookie-1").await;
    assert_eq!(stored["events"][0]["context"]["ip"], "203.0.113.7", "X-Forwarded-For from a loopback proxy");
    assert_eq!(stored["events"][0]["context"]["ga_client_id"], "111.1700000000");
    collector.stop().await;
}

#[tokio::test]
async fn the_cookie_domain_is_set_for_hosts_under_it_only() {
    /// The Domain attribute of each Set-Cookie of a POST with these extra headers.
    async fn cookie_domains(url: &str, extra_headers: &[(&str, &str)]) -> Vec<Option<String>> {
        let mut request = client().post(format!("{url}/collect")).header("Content-Type", "text/plain").body(batch(&["domain-1"]).to_string());
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("post");
        assert_eq!(response.status(), 200);
        let domains: Vec<Option<String>> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|value| value.to_str().expect("ascii").split("; ").find_map(|attribute| attribute.strip_prefix("Domain=")).map(str::to_owned))
            .collect();
        assert_eq!(domains.len(), 3, "_tandem_cid, _fbp, _fbc");
        domains
    }
    let on_shop = vec![Some("shop.example".to_owned()); 3];
    let host_only = vec![None; 3];

    // Behind the demo proxy (a loopback peer, trusted by default): X-Forwarded-Host is the site's host.
    let collector = TestCollector::start(|config| config.cookie_domain = Some("shop.example".to_owned())).await;
    assert_eq!(cookie_domains(&collector.url, &[("X-Forwarded-Host", "www.shop.example:8080")]).await, on_shop);
    assert_eq!(cookie_domains(&collector.url, &[("X-Forwarded-Host", "shop.example, proxy.internal")]).await, on_shop);
    assert_eq!(cookie_domains(&collector.url, &[("X-Forwarded-Host", "shop.other.example")]).await, host_only, "a browser would refuse it");
    assert_eq!(cookie_domains(&collector.url, &[]).await, host_only, "Host is 127.0.0.1:port");
    collector.stop().await;

    // Not trusting proxies: X-Forwarded-Host is ignored, Host decides.
    let collector = TestCollector::start(|config| {
        config.cookie_domain = Some("shop.example".to_owned());
        config.trust_forwarded = TrustForwarded::Never;
    })
    .await;
    assert_eq!(cookie_domains(&collector.url, &[("X-Forwarded-Host", "www.shop.example")]).await, host_only);
    assert_eq!(cookie_domains(&collector.url, &[("Host", "t.shop.example")]).await, on_shop);
    collector.stop().await;

    // Not configured: host-only whatever the host, as before the key existed.
    let collector = TestCollector::start(|_| {}).await;
    assert_eq!(cookie_domains(&collector.url, &[("X-Forwarded-Host", "www.shop.example"), ("Host", "www.shop.example")]).await, host_only);
    collector.stop().await;
}

#[tokio::test]
async fn cookies_are_neither_set_nor_kept_against_the_consent_the_event_carries() {
    let collector = TestCollector::start(|_| {}).await;
    let send = |event_id: &str, consent: Value| {
        let mut event = sample_event(event_id);
        event["consent"] = consent;
        let url = format!("{}/collect", collector.url);
        async move {
            client()
                .post(url)
                .header("Content-Type", "text/plain")
                .header("Cookie", "_ga=GA1.1.111.1700000000; _fbp=fb.1.1600000000000.77; _fbc=fb.1.1600000000000.OLD; _ttp=ttp-old")
                .body(json!({"events": [event]}).to_string())
                .send()
                .await
                .expect("post")
        }
    };
    let set_cookies = |response: &reqwest::Response| -> Vec<String> {
        response.headers().get_all("set-cookie").iter().map(|value| value.to_str().expect("ascii").split('=').next().unwrap_or_default().to_owned()).collect()
    };
    let denied = json!({"ad_storage": "denied", "analytics_storage": "denied", "ad_user_data": "granted", "ad_personalization": "denied"});
    let response = send("consent-1", denied).await;
    assert_eq!(response.status(), 200);
    assert_eq!(set_cookies(&response), Vec::<String>::new(), "no cookie with both storages denied");
    let stored = events(&collector.url, "event_id=consent-1").await;
    let context = &stored["events"][0]["context"];
    for field in ["cookie_fbp", "cookie_fbc", "cookie_ttp", "ga_client_id"] {
        assert!(context[field].is_null(), "{field} kept against the consent: {context}");
    }
    assert!(!context["ip"].is_null(), "ad_user_data is granted: the IP is kept for forwarding");

    let analytics_only = json!({"ad_storage": "denied", "analytics_storage": "granted", "ad_user_data": "granted", "ad_personalization": "denied"});
    let response = send("consent-2", analytics_only).await;
    assert_eq!(set_cookies(&response), vec!["_tandem_cid"]);
    let stored = events(&collector.url, "event_id=consent-2").await;
    let context = &stored["events"][0]["context"];
    assert_eq!(context["ga_client_id"], "111.1700000000");
    assert!(context["cookie_fbp"].is_null() && context["cookie_ttp"].is_null(), "{context}");

    let response = send("consent-3", json!({"ad_storage": "granted", "analytics_storage": "granted", "ad_user_data": "denied", "ad_personalization": "denied"})).await;
    assert_eq!(set_cookies(&response), vec!["_tandem_cid", "_fbp", "_fbc"], "both storages granted");
    let stored = events(&collector.url, "event_id=consent-3").await;
    assert!(stored["events"][0]["context"]["ip"].is_null(), "no IP kept with ad_user_data denied: it would be forwarded to no one");
    collector.stop().await;
}

#[tokio::test]
async fn events_can_be_filtered_and_paged() {
    let collector = TestCollector::start(|_| {}).await;
    let mut events_in = Vec::new();
    for (index, name) in ["PageView", "AddToCart", "Purchase", "PageView"].iter().enumerate() {
        let mut event = sample_event(&format!("f-{index}"));
        event["event_name"] = json!(name);
        event["event_time"] = json!(1_700_000_000 + index as i64 * 100);
        events_in.push(event);
    }
    let (status, _, _) = post(&collector.url, "application/json", json!({ "events": events_in }).to_string()).await;
    assert_eq!(status, 200);
    let ids = |value: Value| -> Vec<String> {
        value["events"].as_array().expect("array").iter().filter_map(|event| event["event_id"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(ids(events(&collector.url, "name=PageView").await), vec!["f-0", "f-3"]);
    assert_eq!(ids(events(&collector.url, "from=1700000100&to=1700000200").await), vec!["f-1", "f-2"]);
    assert_eq!(ids(events(&collector.url, "event_id=f-2").await), vec!["f-2"]);
    let first_page = events(&collector.url, "limit=2").await;
    let cursor = first_page["next_after"].as_i64().expect("cursor");
    assert_eq!(ids(first_page), vec!["f-0", "f-1"]);
    assert_eq!(ids(events(&collector.url, &format!("limit=2&after={cursor}")).await), vec!["f-2", "f-3"]);
    let bad = client().get(format!("{}/events?from=yesterday", collector.url)).send().await.expect("get");
    assert_eq!(bad.status(), 400);
    let health: Value = client().get(format!("{}/healthz", collector.url)).send().await.expect("get").json().await.expect("json");
    assert_eq!(health["status"], "ok");
    collector.stop().await;
}
