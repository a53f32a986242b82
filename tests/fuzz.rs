//! Property tests over the core's parsers and the outbox, with a seeded PRNG (no extra crate):
//! thousands of generated and mutated inputs; none may panic, and each parser keeps its invariants.
//! A failure prints the seed and case number; set TANDEM_FUZZ_SEED / TANDEM_FUZZ_CASES to replay
//! or to run longer.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;

use tandem::core::json::{self, Value};
use tandem::core::outbox::{self, Outbox, Settings};
use tandem::core::tag::Entropy;
use tandem::core::{cookies, event, url};

/// Calls an outbox method with a fresh step for it to fill, and gives the step back.
macro_rules! step {
    ($outbox:ident . $method:ident ( $($arg:expr),* $(,)? )) => {{
        let mut step = outbox::Step::default();
        $outbox.$method(&mut step, $($arg),*);
        step
    }};
}

/// xorshift64*: small, deterministic, good enough to explore inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

impl Entropy for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

const PIECES: &[&str] = &[
    "a", "Z", "0", "9", "-", "_", ".", ":", "%", "%2", "%25", "%zz", "%C3%A9", "%FF", "&", "=", "?", "#", "/", "//", ";", " ", "\"",
    "\\", "+", "é", "日本", "\u{0}", "\n", "\u{2028}", "🙂", "http://", "https://", "fb.", "fb.1.", "1700000000000", "gclid=",
    "fbclid=", "utm_source=", "_fbp=", "_fbc=", "; ", "[", "]", "{", "}", ",", "null", "true", "1e999", "-0", "0.5",
];

fn text(rng: &mut Rng, max_pieces: usize) -> String {
    let n = rng.below(max_pieces + 1);
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(PIECES[rng.below(PIECES.len())]);
    }
    if rng.chance(50) {
        s.push_str(&"x".repeat(rng.below(5000)));
    }
    s
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 4 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => Value::Number(["0", "1", "-5", "12.50", "1e3", "99999999999999999999", "0.000001"][rng.below(7)].into()),
        3 | 4 => Value::String(text(rng, 6)),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        6 => {
            let keys = ["value", "currency", "order_id", "contents", "content_ids", "num_items", "status", "x", "__proto__", ""];
            Value::Object((0..rng.below(6)).map(|_| (keys[rng.below(keys.len())].to_string(), value(rng, depth + 1))).collect())
        }
        _ => Value::Invalid(text(rng, 2)),
    }
}

/// Flips, cuts, duplicates and splices bytes of `s`, keeping it UTF-8.
fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(4) {
            0 => b[i] = b"{}[]\",:0a\\"[rng.below(10)],
            1 => b.truncate(i),
            2 => {
                let piece = PIECES[rng.below(PIECES.len())].as_bytes().to_vec();
                b.splice(i..i, piece);
            }
            _ => {
                let j = (i + rng.below(40)).min(b.len());
                let copy = b[i..j].to_vec();
                b.splice(i..i, copy);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn seed() -> u64 {
    std::env::var("TANDEM_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7A4D_E111_5EED_0004)
}

fn cases(default: usize) -> usize {
    std::env::var("TANDEM_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn urls_never_panic_and_stay_bounded() {
    let mut rng = Rng(seed());
    for case in 0..cases(5000) {
        let mut u = String::from(["https://shop.example/", "http://a.b/c?", "", "https://x.test/?"][rng.below(4)]);
        u.push_str(&text(&mut rng, 20));
        let params = url::query_params(&u);
        assert!(params.len() <= url::MAX_PARAMS, "seed {} case {case}: {u:?}", seed());
        for (k, v) in &params {
            // One byte over the cap marks a value that was over it (a click ID is then ignored).
            assert!(v.len() <= url::VALUE_CAP + 1, "case {case}");
            assert!(url::param(&params, k).is_some());
        }
        let _ = url::host(&u);
        if let Some(abs) = url::resolve("https://shop.example/dir/page?q=1", &text(&mut rng, 8)) {
            assert!(abs.starts_with("https://") || abs.starts_with("http://"), "case {case}: {abs}");
        }
        if let Some(abs) = url::resolve(&u, "/collect") {
            assert!(abs.starts_with("http"), "case {case}: {abs}");
        }
    }
}

#[test]
fn cookie_headers_never_panic() {
    let mut rng = Rng(seed() ^ 1);
    for case in 0..cases(5000) {
        let header = text(&mut rng, 24);
        let parsed = cookies::parse_cookie_header(&header);
        for (name, _) in &parsed {
            assert!(cookies::get(&header, name).is_some(), "case {case}: {header:?}");
        }
        for v in [cookies::get(&header, "_fbp"), cookies::get(&header, "_fbc"), Some(header.as_str())].into_iter().flatten() {
            if let Some(fb) = cookies::parse_fb(v) {
                assert!(v.contains(fb.payload), "case {case}");
            }
            let _ = cookies::valid_fbp(Some(v));
            if let Some(id) = cookies::valid_client_id(Some(v)) {
                assert!(cookies::is_cookie_value(id), "case {case}");
            }
        }
    }
}

#[test]
fn params_and_json_never_panic() {
    let mut rng = Rng(seed() ^ 2);
    let names = ["Purchase", "Lead", "PageView", "my_event", "", "google_x", "Search"];
    for case in 0..cases(5000) {
        let v = value(&mut rng, 0);
        let text_form = v.to_json();
        let reparsed = json::parse(&text_form);
        assert!(reparsed.is_ok() || text_form.len() > 100_000, "case {case}: writer output must parse: {text_form}");
        let _ = json::parse(&mutate(&mut rng, &text_form));
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let name = event::validate_name(&Value::String(names[rng.below(names.len())].into()), &mut e, &mut w);
        let _ = event::validate_name(&v, &mut e, &mut w);
        if let Some(name) = name {
            let _ = event::validate_params(&name, &v, &mut e, &mut w);
        }
        for err in &e {
            assert!(err.input.len() <= tandem::core::error::INPUT_CAP, "case {case}");
        }
    }
}

const URL: &str = "https://shop.example/collect";
const TIME_MS: u64 = 1_800_000_000_000;

/// Queues one event per id as the shell does (`enqueue_event` with the event object the core
/// wrote, its id and time), each padded by `pad` bytes; the steps merged into one.
fn enqueue_all(o: &mut Outbox, ids: &[String], pad: usize, now: u64) -> outbox::Step {
    let mut step = outbox::Step::default();
    for id in ids {
        let event = String::from(r#"{"event_id":""#) + id + r#"","event_name":"Lead","event_time_ms":1800000000000,"p":""# + &"x".repeat(pad) + "\"}";
        let s = step!(o.enqueue_event(URL, id, TIME_MS, &event, now));
        step.requests.extend(s.requests);
        step.errors.extend(s.errors);
        step.warnings.extend(s.warnings);
    }
    step
}

#[test]
fn stored_queues_load_within_bounds_and_round_trip() {
    let mut rng = Rng(seed() ^ 3);
    let now = 1_800_000_000_000u64;
    for case in 0..cases(3000) {
        let settings = Settings { queue_events: 1 + rng.below(30), queue_bytes: 1000 + rng.below(20_000), ..Settings::default() };
        // A real queue, then mutated.
        let mut source = Outbox::new(Settings { queue_events: 1000, queue_bytes: 1_000_000, ..Settings::default() }, "src");
        let ids: Vec<String> = (0..rng.below(40)).map(|i| String::from("id-") + &i.to_string()).collect();
        enqueue_all(&mut source, &ids, rng.below(400), now);
        let stored = source.stored_value(now).unwrap_or_default();
        let candidate = if rng.chance(3) { stored } else { mutate(&mut rng, &stored) };
        let mut o = Outbox::new(settings.clone(), "tab");
        // Another tab's queue is claimed first, then taken once the claim, read back, has stood.
        let at = now + outbox::LEASE_MS + 1;
        let mut stored = vec![(String::from("tandem:q:old"), candidate)];
        let claimed = step!(o.adopt(&stored, at));
        assert!(o.is_empty(), "seed {} case {case}: nothing taken before the claim stood", seed());
        if let Some((key, claim)) = claimed.others.iter().find(|(_, v)| !v.is_empty()) {
            stored = vec![(key.clone(), claim.clone())];
        }
        let step = step!(o.adopt(&stored, at + outbox::CLAIM_WAIT_MS));
        assert!(o.len() <= settings.queue_events, "seed {} case {case}", seed());
        if let Some(Some(written)) = &step.persist {
            let items = outbox::parse_stored(written, "", now).expect("what we write, we read").items;
            assert_eq!(items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), o.ids(), "case {case}");
            let bytes: usize = items.iter().map(|i| i.url.len() + i.json.len() + 8).sum();
            assert!(bytes <= settings.queue_bytes, "case {case}: {bytes} > {}", settings.queue_bytes);
            // Loading what was written changes nothing.
            let mut again = Outbox::new(settings.clone(), "tab"); // its own key: a restart
            step!(again.adopt(&[(String::from("tandem:q:tab"), written.clone())], now + 1));
            assert_eq!(again.ids(), o.ids(), "case {case}");
            assert_eq!(again.stored_value(now + 1), o.stored_value(now + 1), "case {case}");
        }
        let _ = outbox::parse_stored(&text(&mut rng, 30), "tandem:q:tab", now);
    }
}

/// Random sequences of events, timers, answers and unloads: nothing leaves the queue silently
/// (only a 2xx, a handed-over beacon or keepalive fetch at pagehide, a reported 4xx or a reported
/// drop removes an event) and an event that was delivered or handed over is never sent again.
#[test]
fn the_outbox_never_loses_silently_nor_resends_what_was_delivered() {
    let mut rng = Rng(seed() ^ 4);
    for case in 0..cases(400) {
        let settings = Settings {
            window_ms: [0, 10, 1000][rng.below(3)],
            batch_events: 1 + rng.below(10),
            batch_bytes: 1024 + rng.below(8000),
            queue_events: 1 + rng.below(20),
            queue_bytes: 2000 + rng.below(30_000),
        };
        let mut o = Outbox::new(settings, "t");
        let mut now = 1_800_000_000_000u64;
        let mut next_id = 0;
        let mut delivered: HashSet<String> = HashSet::new();
        let mut requests: Vec<(String, bool)> = Vec::new();
        for step_no in 0..200 {
            now += rng.below(3000) as u64;
            let before: Vec<String> = o.ids().iter().map(|s| s.to_string()).collect();
            let op = rng.below(7);
            let mut status = 0;
            let pagehide = rng.chance(2);
            let step = match op {
                0 | 1 => {
                    let ids: Vec<String> = (0..1 + rng.below(3)).map(|_| { next_id += 1; String::from("e") + &next_id.to_string() }).collect();
                    enqueue_all(&mut o, &ids, rng.below(1500), now)
                }
                2 => step!(o.tick(now, true, &mut rng)),
                3 | 4 if !requests.is_empty() => {
                    let (ids, beacon) = requests.remove(rng.below(requests.len()));
                    status = [200, 204, 500, 503, 0, 400, 413, 429][rng.below(8)];
                    if beacon && rng.chance(2) {
                        status = 204;
                        step!(o.sent(&ids, true, now, &mut rng))
                    } else {
                        step!(o.delivered(&ids, status, now, &mut rng))
                    }
                }
                5 => step!(o.hide(now, pagehide)),
                _ => step!(o.online(now)),
            };
            for r in &step.requests {
                for id in r.ids.split(',') {
                    assert!(!delivered.contains(id), "case {case} step {step_no}: {id} sent again after delivery");
                }
                requests.push((r.ids.clone(), r.beacon));
            }
            let after: Vec<String> = o.ids().iter().map(|s| s.to_string()).collect();
            let removed: Vec<&String> = before.iter().filter(|id| !after.contains(id)).collect();
            let reported_drops: usize = step.errors.iter().filter(|e| e.code == "queue_full").map(|e| e.input.parse::<usize>().unwrap_or(0)).sum();
            let refused = step.errors.iter().any(|e| e.code == "delivery_refused");
            match op {
                0 | 1 => assert!(removed.len() <= reported_drops, "case {case} step {step_no}: {} dropped, {reported_drops} reported", removed.len()),
                3 | 4 if (200..300).contains(&status) => delivered.extend(removed.iter().map(|s| s.to_string())),
                3 | 4 if removed.is_empty() => {}
                3 | 4 => assert!(refused, "case {case} step {step_no}: removed {removed:?} on status {status} without an error"),
                5 if pagehide => {
                    // Only requests already in flight are handed over at pagehide; they must never go again.
                    for id in &removed {
                        let in_flight = requests.iter().any(|(ids, _)| ids.split(',').any(|i| i == id.as_str()));
                        assert!(in_flight, "case {case} step {step_no}: pagehide removed {id}, which was not in flight");
                    }
                    delivered.extend(removed.iter().map(|s| s.to_string()));
                }
                _ => assert!(removed.is_empty(), "case {case} step {step_no}: op {op} removed {removed:?}"),
            }
            assert!(o.len() <= 20, "case {case}");
        }
    }
}
