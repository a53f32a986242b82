//! Test helpers: sample events, a collector served in-process on 127.0.0.1:0, a mock platform
//! that records what it receives, temporary directories, and bounded waiting.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Value};
use tandem_collector::config::{Config, Ga4Config, MetaConfig, TikTokConfig};
use tokio::sync::oneshot;

/// A valid event as the tag builds it.
pub fn sample_event(event_id: &str) -> Value {
    json!({
        "event_id": event_id,
        "event_name": "Purchase",
        "event_time": 1_700_000_000,
        "event_time_ms": 1_700_000_000_123_i64,
        "event_source_url": "https://shop.example/thanks?order=42",
        "referrer": "https://shop.example/checkout",
        "action_source": "website",
        "user_data": {"fbp": "fb.1.1699990000000.1234567890", "ttp": "ttp-cookie-1"},
        "custom_data": {"value": 42.5, "currency": "EUR", "order_id": format!("order-{event_id}"),
                        "contents": [{"id": "sku-1", "quantity": 2, "item_price": 21.25, "title": "Mug"}], "content_type": "product"},
        "click_ids": {"fbclid": {"value": "IwAR-fbclid", "ts": 1_699_990_000_000_i64}, "ttclid": {"value": "E.C.P.ttclid", "ts": 1_699_990_000_000_i64}},
        "utm": {"last": {"source": "facebook", "medium": "cpc", "ts": 1_699_990_000_000_i64}},
        "client_id": "cid-123",
        "tag_version": "0.1.0"
    })
}

pub fn batch(ids: &[&str]) -> Value {
    json!({ "events": ids.iter().map(|id| sample_event(id)).collect::<Vec<_>>() })
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tandem-collector-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A collector running in this process.
pub struct TestCollector {
    pub url: String,
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tandem_collector::ServeError>>>,
    pub dir: TempDir,
}

impl TestCollector {
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new("server");
        let mut config = Config { db: dir.path().join("tandem.db"), body_timeout_ms: 1_000, ..Config::default() };
        config.outbox.retry_base_ms = 50;
        config.outbox.retry_max_ms = 200;
        config.outbox.poll_interval_ms = 50;
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tandem_collector::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Self { url: format!("http://{address}"), address, stop: Some(stop), task: Some(task), dir }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), task).await.expect("collector stops in time");
            result.expect("task joins").expect("serve returns Ok");
        }
    }
}

/// How the mock platform answers.
pub const ANSWER_OK: u16 = 200;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The status the mock answered with.
    pub status: u16,
}

#[derive(Clone, Default)]
pub struct MockState {
    pub recorded: Arc<Mutex<Vec<Recorded>>>,
    /// Status to answer with (200 unless changed).
    pub status: Arc<AtomicU16>,
    /// The `code` in the answer's body (0 unless changed: TikTok's "OK").
    pub code: Arc<std::sync::atomic::AtomicI64>,
}

/// A local stand-in for Meta, TikTok and GA4 that records every request.
pub struct MockPlatform {
    pub url: String,
    pub state: MockState,
    _task: tokio::task::JoinHandle<()>,
}

impl MockPlatform {
    pub async fn start() -> Self {
        let state = MockState { recorded: Arc::default(), status: Arc::new(AtomicU16::new(ANSWER_OK)), code: Arc::default() };
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("mock address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state, _task: task }
    }

    pub fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// The `code` the answers carry (TikTok reports its errors in a 200 this way).
    pub fn answer_code(&self, code: i64) {
        self.state.code.store(code, Ordering::SeqCst);
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().expect("mock lock").clone()
    }

    /// Requests answered 2xx under a path prefix.
    pub fn accepted(&self, path_prefix: &str) -> Vec<Recorded> {
        self.recorded().into_iter().filter(|request| request.path.starts_with(path_prefix) && request.status < 300).collect()
    }

    /// Points every platform of `config` at this mock.
    pub fn configure(&self, config: &mut Config) {
        config.meta = Some(MetaConfig {
            pixel_id: "1234567890".to_owned(),
            access_token: "meta-token".to_owned(),
            base_url: self.url.clone(),
            api_version: "v21.0".to_owned(),
            test_event_code: None,
        });
        config.tiktok = Some(TikTokConfig {
            pixel_id: "CTIKTOKPIXEL".to_owned(),
            access_token: "tiktok-token".to_owned(),
            base_url: self.url.clone(),
            test_event_code: None,
        });
        config.ga4 = Some(Ga4Config { measurement_id: "G-TEST123".to_owned(), api_secret: "ga4-secret".to_owned(), base_url: self.url.clone(), all_events: false });
    }
}

async fn record(State(state): State<MockState>, uri: Uri, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let status = state.status.load(Ordering::SeqCst);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.recorded.lock().expect("mock lock").push(Recorded {
        path: uri.path().to_owned(),
        query: query.unwrap_or_default(),
        headers,
        body,
        status,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let body_code = state.code.load(Ordering::SeqCst);
    (code, axum::Json(json!({ "events_received": 1, "code": body_code, "message": if body_code == 0 { "OK" } else { "Refused by the mock" } })))
}

/// Polls `condition` until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// GET /events?… as JSON.
pub async fn events(collector_url: &str, query: &str) -> Value {
    client()
        .get(format!("{collector_url}/events?{query}"))
        .send()
        .await
        .expect("GET /events")
        .json()
        .await
        .expect("events JSON")
}
