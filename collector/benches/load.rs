//! Load benchmark for the collector (`npm run bench:collector`, or `bash collector/bench.sh`).
//!
//! Starts the real release binary on 127.0.0.1 with a fresh database (WAL, synchronous=NORMAL),
//! then measures over real HTTP, client and server sharing this machine's cores:
//! 1. latency: open loop at a fixed 1,000 requests/s (one event each) for 10 s on a fresh store;
//!    latency is measured from each request's *scheduled* send time (no coordinated omission)
//!    → p50/p99/max;
//! 2. throughput: closed loop, 32 connections posting batches of 20 events, 10 % of the events
//!    re-sent (so dedup is exercised) → events/s acknowledged (stored + duplicate);
//! 3. the same with one event per request → requests/s;
//! 4. throughput again with forwarding on (Meta, TikTok, GA4 pointed at a local mock), which
//!    adds three outbox rows per event and the worker's sends competing for the same cores.
//!
//! Environment: BENCH_SECONDS (default 5) for the throughput phases; BENCH_ONLY=latency runs
//! phase 1 alone. The load average is printed before and after: other work on the machine
//! shows up directly in p99.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn event(id: &str) -> Value {
    json!({
        "event_id": id, "event_name": "AddToCart", "event_time": 1_700_000_000, "event_time_ms": 1_700_000_000_000_i64,
        "event_source_url": "https://shop.example/p/42", "referrer": "https://shop.example/", "action_source": "website",
        "user_data": {"fbp": "fb.1.1699990000000.1234567890"},
        "custom_data": {"value": 19.9, "currency": "EUR", "contents": [{"id": "sku-42", "quantity": 1, "item_price": 19.9}]},
        "click_ids": {"fbclid": {"value": "IwAR0abc", "ts": 1_699_990_000_000_i64}},
        "utm": {"last": {"source": "facebook", "medium": "cpc", "ts": 1_699_990_000_000_i64}},
        "client_id": "3f1c2e4a-1b2c-4d5e-8f90-123456789abc", "tag_version": "0.1.0"
    })
}

struct Collector {
    child: Child,
    url: String,
    _dir: TempDir,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_collector(label: &str, mock: Option<&str>) -> Collector {
    let dir = std::env::temp_dir().join(format!("tandem-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem-collector"));
    // The path is pinned so a TANDEM_COLLECT_PATH in the environment cannot move it.
    command.args(["--listen", "127.0.0.1:0", "--collect-path", "/collect", "--db"]).arg(dir.join("tandem.db"));
    if let Some(mock) = mock {
        for (key, value) in [
            ("TANDEM_META_PIXEL_ID", "1"), ("TANDEM_META_TOKEN", "t"), ("TANDEM_META_BASE_URL", mock),
            ("TANDEM_TIKTOK_PIXEL_ID", "C1"), ("TANDEM_TIKTOK_TOKEN", "t"), ("TANDEM_TIKTOK_BASE_URL", mock),
            ("TANDEM_GA4_MEASUREMENT_ID", "G-1"), ("TANDEM_GA4_API_SECRET", "s"), ("TANDEM_GA4_BASE_URL", mock),
        ] {
            command.env(key, value);
        }
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn tandem-collector");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("read address line");
    let url = line.split_whitespace().find(|word| word.starts_with("http://")).expect("address").to_owned();
    Collector { child, url, _dir: TempDir(dir) }
}

/// Closed loop: `connections` tasks each posting `batch` events per request for `seconds`.
async fn throughput(url: &str, connections: usize, batch: usize, seconds: u64, label: &str) -> (f64, f64) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().expect("client");
    let acknowledged = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..connections {
        let (client, url) = (client.clone(), format!("{url}/collect"));
        let (acknowledged, requests, duplicates) = (acknowledged.clone(), requests.clone(), duplicates.clone());
        let label = label.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut sequence: u64 = 0;
            while Instant::now() < deadline {
                let events: Vec<Value> = (0..batch)
                    .map(|_| {
                        sequence += 1;
                        // Every tenth event repeats one already sent by this connection.
                        let id = if sequence.is_multiple_of(10) && sequence > 10 { sequence - 7 } else { sequence };
                        event(&format!("{label}-{connection}-{id}"))
                    })
                    .collect();
                let body = json!({ "events": events }).to_string();
                let Ok(response) = client.post(&url).header("Content-Type", "text/plain").body(body).send().await else { continue };
                let Ok(answer) = response.json::<Value>().await else { continue };
                requests.fetch_add(1, Ordering::Relaxed);
                for result in answer["results"].as_array().into_iter().flatten() {
                    match result["status"].as_str() {
                        Some("stored") => {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Some("duplicate") => {
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                            duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events_per_second = acknowledged.load(Ordering::Relaxed) as f64 / elapsed;
    let requests_per_second = requests.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "  {label}: {connections} connections x {batch} events/request for {elapsed:.1} s: {:.0} events/s acknowledged ({:.0} requests/s, {} duplicates answered)",
        events_per_second,
        requests_per_second,
        duplicates.load(Ordering::Relaxed)
    );
    (events_per_second, requests_per_second)
}

/// Open loop at `rate` requests/s for `seconds`; latencies from the scheduled send time.
async fn latency(url: &str, rate: u64, seconds: u64) -> (f64, f64, f64, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
    // Warm the connection pool.
    for index in 0..50 {
        let _ = client.post(format!("{url}/collect")).body(json!({"events": [event(&format!("warm-{index}"))]}).to_string()).send().await;
    }
    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for index in 0..total {
        let scheduled = start + interval * index as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url) = (client.clone(), format!("{url}/collect"));
        tasks.push(tokio::spawn(async move {
            let body = json!({"events": [event(&format!("lat-{index}"))]}).to_string();
            let ok = match client.post(&url).header("Content-Type", "text/plain").body(body).send().await {
                Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (scheduled.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0;
    for task in tasks {
        if let Ok((elapsed, ok)) = task.await {
            if ok {
                latencies.push(elapsed.as_secs_f64() * 1000.0);
            } else {
                failures += 1;
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at = |quantile: f64| latencies.get(((latencies.len() as f64 - 1.0) * quantile).round() as usize).copied().unwrap_or(f64::NAN);
    (at(0.50), at(0.99), latencies.last().copied().unwrap_or(f64::NAN), failures)
}

async fn start_sink() -> SocketAddr {
    let app = axum::Router::new().fallback(|| async { axum::Json(json!({"events_received": 1})) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let address = listener.local_addr().expect("sink address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    address
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|text| text.parse().ok()).unwrap_or(5);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("latency") {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            println!("load average before: {}", load_average());
            let collector = start_collector("latency", None);
            let (p50, p99, max, failures) = latency(&collector.url, 1_000, 10).await;
            println!("latency at 1000 requests/s (1 event each, 10 s): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, {failures} failed");
            println!("load average after: {}", load_average());
        });
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        println!("tandem-collector load benchmark ({} CPUs, client and server on the same machine)", std::thread::available_parallelism().map(usize::from).unwrap_or(0));
        println!("load average before: {}", load_average());
        // Latency first, on a fresh store: measured after a saturating burst it would mostly
        // measure the page cache flushing the burst's WAL (see BENCHMARKS.md).
        let fresh = start_collector("latency", None);
        let (p50, p99, max, failures) = latency(&fresh.url, 1_000, 10).await;
        println!("latency at 1000 requests/s (1 event each, 10 s, fresh store): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms, {failures} failed");
        drop(fresh);

        let collector = start_collector("ingest", None);
        println!("ingest, dedup on, forwarding off:");
        let (batched, _) = throughput(&collector.url, 32, 20, seconds, "batched").await;
        let (_, single_rps) = throughput(&collector.url, 32, 1, seconds, "single").await;
        drop(collector);

        let sink = start_sink().await;
        let forwarding = start_collector("forwarding", Some(&format!("http://{sink}")));
        println!("ingest with forwarding on (3 platforms → local mock):");
        let (forwarded, _) = throughput(&forwarding.url, 32, 20, seconds, "forwarding").await;
        drop(forwarding);
        println!("load average after: {}", load_average());

        println!();
        println!("| measure | result |");
        println!("| --- | --- |");
        println!("| events/s ingested, batches of 20, 10 % duplicates | {batched:.0} |");
        println!("| requests/s ingested, 1 event per request | {single_rps:.0} |");
        println!("| latency at 1,000 requests/s: p50 / p99 / max | {p50:.2} ms / {p99:.2} ms / {max:.2} ms ({failures} failed) |");
        println!("| events/s ingested with forwarding to 3 platforms on | {forwarded:.0} |");
    });
}
