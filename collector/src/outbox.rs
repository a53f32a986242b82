//! The outbox worker: sends due outbox rows to their platform and records the result.
//!
//! Rules:
//! - A row is marked `sent` only after a 2xx, in one UPDATE issued right after the response.
//! - Timeouts, connection errors, 408, 429 and 5xx are retried with exponential backoff plus
//!   jitter (`retry_base_ms · 2^attempt`, capped at `retry_max_ms`, ±25 %), up to
//!   `max_attempts`; other 4xx (and requests that cannot be built) go `dead` with the error kept.
//! - Delivery toward a platform is at-least-once, not exactly-once: if the process dies after a
//!   platform answered 2xx but before the UPDATE commits (a window of one SQLite write), that row
//!   is sent again after restart. The platforms deduplicate on event_name + event_id (Meta,
//!   TikTok; 48 h) and GA4 on transaction_id, and the resend carries the same ids. Everything
//!   marked `sent` is never sent again, and nothing pending is lost: rows live in SQLite.
//! - Independent rows are sent concurrently (`max_in_flight`); an in-flight set keeps a slow
//!   request's row from being claimed twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::OutboxConfig;
use crate::event::{EventView, RequestContext};
use crate::forward::Platform;
use crate::store::{OutboxJob, Store};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent(u16),
    Retry { status: Option<u16>, error: String },
    Dead { status: Option<u16>, error: String },
}

/// Classifies an HTTP status the platform answered with.
pub fn classify_status(status: u16, body: &str) -> Attempt {
    let excerpt: String = body.chars().take(500).collect();
    match status {
        200..=299 => Attempt::Sent(status),
        408 | 429 | 500..=599 => Attempt::Retry { status: Some(status), error: format!("HTTP {status}: {excerpt}") },
        _ => Attempt::Dead { status: Some(status), error: format!("HTTP {status}: {excerpt}") },
    }
}

/// Delay before attempt number `attempts + 1`, with ±25 % jitter from `random` in [0, 1).
pub fn backoff_ms(config: &OutboxConfig, attempts: i64, random: f64) -> u64 {
    let exponent = attempts.clamp(0, 30) as u32;
    let base = config.retry_base_ms.saturating_mul(1_u64 << exponent).min(config.retry_max_ms);
    let jitter = 0.75 + random.clamp(0.0, 1.0) * 0.5;
    ((base as f64) * jitter) as u64
}

pub struct OutboxWorker {
    store: Store,
    platforms: Vec<Arc<dyn Platform>>,
    config: OutboxConfig,
    client: reqwest::Client,
    wake: Arc<Notify>,
}

impl OutboxWorker {
    pub fn new(store: Store, platforms: Vec<Arc<dyn Platform>>, config: OutboxConfig, wake: Arc<Notify>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms.min(5_000)))
            .user_agent(concat!("tandem-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        Ok(Self { store, platforms, config, client, wake })
    }

    /// Runs until `shutdown` turns true, then waits for requests already in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if self.platforms.is_empty() {
            return;
        }
        let worker = Arc::new(self);
        let mut in_flight: HashSet<i64> = HashSet::new();
        let mut tasks: JoinSet<i64> = JoinSet::new();
        let poll = Duration::from_millis(worker.config.poll_interval_ms);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let capacity = worker.config.max_in_flight.saturating_sub(in_flight.len());
            let mut claimed = 0;
            if capacity > 0 {
                match worker.store.claim_due(now_ms(), capacity, in_flight.clone()).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            in_flight.insert(job.id);
                            let worker = worker.clone();
                            tasks.spawn(async move {
                                let id = job.id;
                                worker.deliver(job).await;
                                id
                            });
                        }
                    }
                    Err(error) => eprintln!("tandem-collector: outbox claim failed: {error}"),
                }
            }
            // With free capacity and nothing claimed, nothing is due: wait for new events or
            // for the next poll (retries come due with time).
            let idle = claimed == 0;
            tokio::select! {
                finished = tasks.join_next(), if !tasks.is_empty() => {
                    if let Some(Ok(id)) = finished {
                        in_flight.remove(&id);
                    }
                    // A panicked task loses its id; drop the set entry lazily by rebuilding.
                    if tasks.is_empty() {
                        in_flight.clear();
                    }
                }
                _ = worker.wake.notified(), if idle => {}
                _ = tokio::time::sleep(poll), if idle || capacity == 0 => {}
                _ = shutdown.changed() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn deliver(&self, job: OutboxJob) {
        let attempt = self.attempt(&job).await;
        let result = match attempt {
            Attempt::Sent(status) => self.store.mark_sent(job.id, status, now_ms()).await,
            Attempt::Retry { status, error } if (job.attempts + 1) < i64::from(self.config.max_attempts) => {
                let delay = backoff_ms(&self.config, job.attempts, jitter_fraction(job.id));
                self.store.mark_retry(job.id, status, error, now_ms().saturating_add(delay as i64)).await
            }
            Attempt::Retry { status, error } => {
                self.store.mark_dead(job.id, status, format!("gave up after {} attempts; last: {error}", job.attempts + 1)).await
            }
            Attempt::Dead { status, error } => {
                eprintln!("tandem-collector: {} rejected event {}: {error}", job.platform, job.event_id);
                self.store.mark_dead(job.id, status, error).await
            }
        };
        if let Err(error) = result {
            eprintln!("tandem-collector: cannot record outbox result for row {}: {error}", job.id);
        }
    }

    async fn attempt(&self, job: &OutboxJob) -> Attempt {
        let Some(platform) = self.platforms.iter().find(|platform| platform.name() == job.platform) else {
            // Not claimed in the first place (`Store::claim_due` takes configured platforms' rows
            // only, so the others wait, uncounted, until configured again).
            return Attempt::Retry { status: None, error: format!("platform {:?} is not configured", job.platform) };
        };
        let event = match EventView::from_json(&job.payload) {
            Ok(event) => event,
            Err(error) => return Attempt::Dead { status: None, error: format!("stored event unreadable: {error}") },
        };
        // Rows stored by an older collector may hold cookies the event's consent does not allow.
        let context = RequestContext::from_json(&job.context).consented(Some(&event.consent));
        let request = match platform.build_request(&event, &context) {
            Ok(request) => request,
            Err(error) => return Attempt::Dead { status: None, error: format!("cannot build request: {error}") },
        };
        let body = match serde_json::to_vec(&request.body) {
            Ok(body) => body,
            Err(error) => return Attempt::Dead { status: None, error: format!("cannot serialise request: {error}") },
        };
        let mut builder = self.client.post(&request.url).header("Content-Type", "application/json").body(body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                match (classify_status(status, &text), platform.refusal(&text)) {
                    (Attempt::Sent(_), Some(refusal)) if refusal.retry => Attempt::Retry { status: Some(status), error: refusal.error },
                    (Attempt::Sent(_), Some(refusal)) => Attempt::Dead { status: Some(status), error: refusal.error },
                    (attempt, _) => attempt,
                }
            }
            Err(error) => Attempt::Retry { status: None, error: format!("request failed: {}", describe(error)) },
        }
    }
}

fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection error"
    } else {
        "transport error"
    };
    // The URL may hold an access token: never log it.
    format!("{kind}: {}", error.without_url())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

/// A cheap, well-spread number in [0, 1) for jitter (splitmix64 of the row id and the clock).
fn jitter_fraction(seed: i64) -> f64 {
    let mut value = (seed as u64) ^ (now_ms() as u64).rotate_left(17);
    value = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^= value >> 31;
    (value >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(200, ""), Attempt::Sent(200));
        assert!(matches!(classify_status(503, "busy"), Attempt::Retry { status: Some(503), .. }));
        assert!(matches!(classify_status(429, ""), Attempt::Retry { .. }));
        assert!(matches!(classify_status(400, "{\"error\":\"bad\"}"), Attempt::Dead { status: Some(400), .. }));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let config = OutboxConfig { retry_base_ms: 100, retry_max_ms: 1_000, ..OutboxConfig::default() };
        assert_eq!(backoff_ms(&config, 0, 0.5), 100);
        assert_eq!(backoff_ms(&config, 2, 0.5), 400);
        assert_eq!(backoff_ms(&config, 20, 0.5), 1_000);
        assert_eq!(backoff_ms(&config, 1, 0.0), 150);
        assert_eq!(backoff_ms(&config, 1, 1.0), 250);
        assert!((0.0..1.0).contains(&jitter_fraction(7)));
    }
}
