//! The HTTP surface: `POST` on the collect path (+ its CORS preflight), `GET /events`,
//! `GET /healthz`.
//!
//! The collect path is `config.collect_path`: `/collect` by default, which ad blockers' lists
//! block (as they do `/beacon`, `/analytics`, …), so a production site configures a neutral one
//! and points the tag's `endpoint` at it. `/collect` is then not served at all (404), nor its
//! preflight; `/events` and `/healthz` never move.
//!
//! Collect pipeline and its failure rules:
//! 1. origin: a request with an `Origin` outside `allowed_origins` gets 403 (no Origin — a server
//!    or a proxy — is accepted);
//! 2. body: over `max_body_bytes` → 413 (checked on Content-Length and while reading), slower than
//!    `body_timeout_ms` → 408; any content type is read as JSON (sendBeacon sends text/plain);
//! 3. parse + schema: not JSON or a bad envelope → 400 `{error, field}`; bad events are reported
//!    per event and do not stop the others; all events bad → 400;
//! 4. store: one commit for the batch; only then 200 with per-event `stored` | `duplicate` |
//!    `invalid`. A store failure answers 503 and acknowledges nothing (the tag retries).
//! 5. cookies: the response re-sets `_tandem_cid`, `_fbp`, `_fbc` (see [`crate::cookies`]), with
//!    `Domain=<cookie_domain>` when configured and the request's host is under it: the host is
//!    `Host`, or the first `X-Forwarded-Host` entry from a trusted proxy (`trust_forwarded`, the
//!    same rule as for `X-Forwarded-For` / `-Proto`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::config::{Config, TrustForwarded};
use crate::cookies::{cookie_domain_for, read_request_cookies, set_cookie_headers, FirstPartyIds};
use crate::event::{EventView, RequestContext};
use crate::forward::facebook_click_id;
use crate::outbox::now_ms;
use crate::payload::{parse_collect_body, JudgedEvent};
use crate::schema::Schema;
use crate::store::{EventFilter, InsertOutcome, NewEvent, Store};

/// Shared by every handler.
pub struct AppState {
    pub store: Store,
    pub schema: Schema,
    pub config: Config,
    /// Wakes the outbox worker when new events were stored.
    pub outbox_wake: Arc<Notify>,
}

pub fn router(state: Arc<AppState>) -> Router {
    let collect_path = state.config.collect_path.clone();
    Router::new()
        .route(&collect_path, post(collect).options(preflight))
        .route("/events", get(list_events))
        .route("/healthz", get(healthz))
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(state)
}

fn json_error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, Json(body)).into_response()
}

// ---- CORS ----------------------------------------------------------------------------------------

enum OriginCheck {
    /// No Origin header: not a browser cross-origin request.
    Absent,
    Allowed(HeaderValue),
    Refused,
}

fn check_origin(config: &Config, headers: &HeaderMap) -> OriginCheck {
    match headers.get(header::ORIGIN) {
        None => OriginCheck::Absent,
        Some(origin) => match origin.to_str() {
            Ok(text) if config.allowed_origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(text)) => OriginCheck::Allowed(origin.clone()),
            _ => OriginCheck::Refused,
        },
    }
}

fn add_cors(response: &mut Response, origin: &OriginCheck) {
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let OriginCheck::Allowed(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}

async fn preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let origin = check_origin(&state.config, &headers);
    if matches!(origin, OriginCheck::Refused) {
        return json_error(StatusCode::FORBIDDEN, "origin not allowed", None);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    add_cors(&mut response, &origin);
    let response_headers = response.headers_mut();
    response_headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    response_headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
    response_headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

// ---- POST /collect ---------------------------------------------------------------------------------

async fn collect(State(state): State<Arc<AppState>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Body) -> Response {
    let origin = check_origin(&state.config, &headers);
    let mut response = collect_inner(&state, peer, &headers, body, &origin).await;
    add_cors(&mut response, &origin);
    response
}

async fn collect_inner(state: &AppState, peer: SocketAddr, headers: &HeaderMap, body: Body, origin: &OriginCheck) -> Response {
    if matches!(origin, OriginCheck::Refused) {
        return json_error(StatusCode::FORBIDDEN, "origin not allowed", None);
    }
    let limit = state.config.max_body_bytes;
    let too_large = || json_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("body is larger than {limit} bytes"), None);
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let read = tokio::time::timeout(Duration::from_millis(state.config.body_timeout_ms), axum::body::to_bytes(body, limit)).await;
    let bytes = match read {
        Err(_) => return json_error(StatusCode::REQUEST_TIMEOUT, "body not received in time", None),
        Ok(Err(error)) if is_length_limit(&error) => return too_large(),
        Ok(Err(_)) => return json_error(StatusCode::BAD_REQUEST, "could not read the body", Some("(body)")),
        Ok(Ok(bytes)) => bytes,
    };
    let judged = match parse_collect_body(&bytes, &state.schema) {
        Ok(judged) => judged,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &error.message(), Some(error.field())),
    };

    let context = request_context(&state.config, peer, headers);
    let secure = trusted_proxy(&state.config, peer)
        && headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()).is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let cookie_domain = cookie_domain_for(state.config.cookie_domain.as_deref(), request_host(&state.config, peer, headers));

    let mut to_store = Vec::new();
    for item in &judged {
        if let JudgedEvent::Valid(event) = item {
            // Only the cookies its consent allows are kept beside an event.
            let consent = event.body.get("consent").and_then(Value::as_object);
            to_store.push(NewEvent { event: event.clone(), context: context.clone().consented(consent) });
        }
    }
    // The last valid event of the batch carries the freshest identifiers; each is set again only
    // if that event's consent allows the cookie.
    let cookie_ids = to_store
        .last()
        .and_then(|last| Some((serde_json::from_value::<EventView>(Value::Object(last.event.body.clone())).ok()?, &last.context)))
        .map(|(view, context)| FirstPartyIds {
            client_id: Some(view.client_id.clone()).filter(|_| view.analytics_storage_allowed()),
            fbp: view.user_data.fbp.clone().filter(|_| view.ad_storage_allowed()),
            fbc: facebook_click_id(&view, context).filter(|_| view.ad_storage_allowed()),
        })
        .unwrap_or_default();
    let outcomes = match state.store.ingest(to_store, now_ms()).await {
        Ok(outcomes) => outcomes,
        Err(error) => {
            eprintln!("tandem-collector: storing a batch failed: {error}");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable, retry later", None);
        }
    };
    if outcomes.contains(&InsertOutcome::Stored) {
        state.outbox_wake.notify_one();
    }

    let mut outcomes = outcomes.into_iter();
    let mut results = Vec::with_capacity(judged.len());
    let mut first_violation = None;
    for item in &judged {
        match item {
            JudgedEvent::Valid(event) => {
                let status = match outcomes.next() {
                    Some(InsertOutcome::Stored) => "stored",
                    _ => "duplicate",
                };
                results.push(json!({ "event_id": event.event_id, "status": status }));
            }
            JudgedEvent::Invalid { event_id, violation } => {
                first_violation.get_or_insert(violation);
                results.push(json!({
                    "event_id": event_id,
                    "status": "invalid",
                    "error": format!("{}: {}", violation.field, violation.message),
                    "field": violation.field,
                }));
            }
        }
    }
    let all_invalid = judged.iter().all(|item| matches!(item, JudgedEvent::Invalid { .. }));
    if let (true, Some(violation)) = (all_invalid, first_violation) {
        let body = json!({
            "error": format!("{}: {}", violation.field, violation.message),
            "field": violation.field,
            "results": results,
        });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let mut response = (StatusCode::OK, Json(json!({ "results": results }))).into_response();
    for cookie in set_cookie_headers(&cookie_ids, secure, cookie_domain) {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

fn trusted_proxy(config: &Config, peer: SocketAddr) -> bool {
    match config.trust_forwarded {
        TrustForwarded::Always => true,
        TrustForwarded::Never => false,
        TrustForwarded::Loopback => peer.ip().is_loopback(),
    }
}

/// The first entry, trimmed, of a comma-separated `X-Forwarded-*` header, when the peer is a
/// trusted proxy (the first is the one the client's own proxy added).
fn first_forwarded<'a>(config: &Config, peer: SocketAddr, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    trusted_proxy(config, peer)
        .then(|| headers.get(name))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.split(',').next())
        .map(str::trim)
}

/// The host the browser addressed: the first `X-Forwarded-Host` entry when the peer is a trusted
/// proxy (behind one, `Host` is the proxy's upstream address, like 127.0.0.1:8081), else `Host`.
fn request_host<'a>(config: &Config, peer: SocketAddr, headers: &'a HeaderMap) -> Option<&'a str> {
    first_forwarded(config, peer, headers, "x-forwarded-host")
        // The demo proxy sends an empty one when its own request had no Host.
        .filter(|host| !host.is_empty())
        .or_else(|| headers.get(header::HOST).and_then(|value| value.to_str().ok()))
}

/// IP (the first `X-Forwarded-For` hop when the peer is a trusted proxy, else the peer),
/// user agent and first-party cookies of the request.
fn request_context(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> RequestContext {
    let forwarded_ip = first_forwarded(config, peer, headers, "x-forwarded-for").and_then(|first| first.parse::<IpAddr>().ok());
    let ip = forwarded_ip.unwrap_or(peer.ip());
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    let mut context = RequestContext {
        ip: Some(ip.to_string()),
        user_agent: headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).map(|text| text.chars().take(1024).collect()),
        ..RequestContext::default()
    };
    read_request_cookies(headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()), &mut context);
    context
}

// ---- GET /events, GET /healthz ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    event_id: Option<String>,
    name: Option<String>,
    /// Inclusive lower bound on event_time (Unix seconds).
    from: Option<i64>,
    /// Inclusive upper bound on event_time (Unix seconds).
    to: Option<i64>,
    /// Paging cursor: the `id` of the last row already seen.
    after: Option<i64>,
    limit: Option<u32>,
}

const DEFAULT_EVENTS_LIMIT: u32 = 100;
const MAX_EVENTS_LIMIT: u32 = 1000;

async fn list_events(State(state): State<Arc<AppState>>, query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return json_error(StatusCode::BAD_REQUEST, &rejection.body_text(), Some("query")),
    };
    let limit = query.limit.unwrap_or(DEFAULT_EVENTS_LIMIT);
    if limit == 0 || limit > MAX_EVENTS_LIMIT {
        return json_error(StatusCode::BAD_REQUEST, &format!("limit must be between 1 and {MAX_EVENTS_LIMIT}"), Some("limit"));
    }
    let filter = EventFilter { event_id: query.event_id, event_name: query.name, from: query.from, to: query.to, after_id: query.after, limit };
    match state.store.query_events(filter).await {
        Ok(events) => {
            let next = events.last().map(|event| event.id);
            Json(json!({ "events": events, "next_after": next })).into_response()
        }
        Err(error) => json_error(StatusCode::SERVICE_UNAVAILABLE, &error.to_string(), None),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.health().await {
        Ok(health) => Json(json!({ "status": "ok", "store": health, "version": env!("CARGO_PKG_VERSION") })).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "error", "error": error.to_string() }))).into_response(),
    }
}
