//! Property tests over the payload parser, with a seeded PRNG (no extra dependency, and every
//! failure prints the seed that reproduces it):
//! - any byte sequence and any JSON tree: no panic, and an `Ok` only for a valid envelope;
//! - generated valid events: all accepted, in order, bodies kept verbatim;
//! - one targeted mutation of one event: exactly that event is rejected, naming a field inside it.

use serde_json::{json, Map, Value};
use tandem_collector::payload::{parse_collect_body, JudgedEvent};
use tandem_collector::schema::Schema;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn text(&mut self, alphabet: &str, min: usize, max: usize) -> String {
        let characters: Vec<char> = alphabet.chars().collect();
        let length = min + self.below((max - min + 1) as u64) as usize;
        (0..length).map(|_| characters[self.below(characters.len() as u64) as usize]).collect()
    }
}

const ID_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-";
const ANY_TEXT: &str = "abc XYZ 123 éü漢字🙂\"\\/\n\t<>&;,=";

fn valid_event(rng: &mut Rng, index: usize) -> Value {
    let mut event = Map::new();
    event.insert("event_id".into(), json!(format!("{}-{index}", rng.text(ID_ALPHABET, 1, 40))));
    event.insert("event_name".into(), json!(rng.pick(&["Purchase", "PageView", "AddToCart", "Lead", "my_custom", "Ünïcode event"])));
    event.insert("event_time".into(), json!(1_000_000_000 + rng.below(2_000_000_000) as i64));
    if rng.chance(70) {
        event.insert("event_time_ms".into(), json!(1_000_000_000_000_i64 + rng.below(1 << 40) as i64));
    }
    event.insert("event_source_url".into(), json!(rng.text(ANY_TEXT, 0, 200)));
    if rng.chance(50) {
        event.insert("referrer".into(), json!(rng.text(ANY_TEXT, 0, 100)));
    }
    event.insert("action_source".into(), json!("website"));
    let mut user_data = Map::new();
    if rng.chance(60) {
        user_data.insert("fbp".into(), json!(format!("fb.{}.{}.{}", rng.below(3), rng.below(1 << 42), rng.text("0123456789", 1, 12))));
    }
    if rng.chance(40) {
        user_data.insert("fbc".into(), json!(format!("fb.1.{}.{}", rng.below(1 << 42), rng.text(ID_ALPHABET, 1, 60))));
    }
    if rng.chance(40) {
        user_data.insert("ttp".into(), json!(rng.text(ID_ALPHABET, 0, 128)));
    }
    event.insert("user_data".into(), Value::Object(user_data));
    let mut custom = Map::new();
    if rng.chance(60) {
        custom.insert("value".into(), json!(rng.below(100_000) as f64 / 100.0));
        custom.insert("currency".into(), json!(rng.pick(&["EUR", "USD", "JPY"])));
    }
    if rng.chance(50) {
        let contents: Vec<Value> = (0..rng.below(5))
            .map(|_| json!({"id": rng.text(ID_ALPHABET, 1, 20), "quantity": rng.below(10), "item_price": rng.below(1000)}))
            .collect();
        custom.insert("contents".into(), Value::Array(contents));
    }
    if rng.chance(30) {
        custom.insert("status".into(), if rng.chance(50) { json!(true) } else { json!("done") });
    }
    if rng.chance(30) {
        custom.insert(rng.text("abcdef_", 1, 10), json!(rng.text(ANY_TEXT, 0, 20)));
    }
    event.insert("custom_data".into(), Value::Object(custom));
    let mut clicks = Map::new();
    for name in ["gclid", "fbclid", "ttclid", "msclkid", "ScCid"] {
        if rng.chance(25) {
            clicks.insert(name.into(), json!({"value": rng.text(ID_ALPHABET, 1, 100), "ts": rng.below(1 << 42)}));
        }
    }
    event.insert("click_ids".into(), Value::Object(clicks));
    let mut utm = Map::new();
    if rng.chance(40) {
        utm.insert("first".into(), json!({"source": rng.text(ANY_TEXT, 0, 20), "ts": rng.below(1 << 42)}));
    }
    event.insert("utm".into(), Value::Object(utm));
    event.insert("client_id".into(), json!(rng.text(ID_ALPHABET, 1, 64)));
    event.insert("tag_version".into(), json!("0.1.0"));
    Value::Object(event)
}

/// Breaks one thing in an event; returns the field that must be named.
fn mutate(rng: &mut Rng, event: &mut Value) -> &'static str {
    let object = event.as_object_mut().expect("object");
    match rng.below(10) {
        0 => {
            object.remove("event_id");
            "event_id"
        }
        1 => {
            object.insert("event_id".into(), json!("has space"));
            "event_id"
        }
        2 => {
            object.insert("event_time".into(), json!("soon"));
            "event_time"
        }
        3 => {
            object.insert("event_time".into(), json!(12.5));
            "event_time"
        }
        4 => {
            object.insert("action_source".into(), json!("app"));
            "action_source"
        }
        5 => {
            object.insert("unexpected".into(), json!(1));
            "unexpected"
        }
        6 => {
            object.insert("user_data".into(), json!({"fbp": "nope"}));
            "user_data"
        }
        7 => {
            object.insert("click_ids".into(), json!({"notaclick": {"value": "x", "ts": 1}}));
            "click_ids"
        }
        8 => {
            object.insert("custom_data".into(), json!({"value": -1}));
            "custom_data"
        }
        _ => {
            object.insert("client_id".into(), json!(""));
            "client_id"
        }
    }
}

fn random_json(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 6 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 7.0),
        4 => json!(rng.text(ANY_TEXT, 0, 30)),
        5 | 6 => Value::Array((0..rng.below(4)).map(|_| random_json(rng, depth + 1)).collect()),
        _ => {
            let keys = ["events", "event_id", "event_time", "user_data", "x", "click_ids", "fbclid", "value"];
            Value::Object((0..rng.below(5)).map(|_| (rng.pick(&keys).to_owned(), random_json(rng, depth + 1))).collect())
        }
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let schema = Schema::collect().expect("schema");
    for seed in 1..3_000_u64 {
        let mut rng = Rng(seed);
        let length = rng.below(300) as usize;
        let mut bytes: Vec<u8> = (0..length).map(|_| rng.next() as u8).collect();
        if rng.chance(30) {
            // Mostly-JSON prefixes find deeper paths than pure noise.
            let mut text = json!({"events": [valid_event(&mut rng, 0)]}).to_string().into_bytes();
            let cut = rng.below(text.len() as u64) as usize;
            text.truncate(cut);
            bytes = text;
        }
        let _ = parse_collect_body(&bytes, &schema);
    }
}

#[test]
fn arbitrary_json_is_accepted_only_with_a_valid_envelope() {
    let schema = Schema::collect().expect("schema");
    for seed in 1..3_000_u64 {
        let mut rng = Rng(seed);
        let value = if rng.chance(50) { json!({"events": random_json(&mut rng, 1)}) } else { random_json(&mut rng, 0) };
        let result = parse_collect_body(value.to_string().as_bytes(), &schema);
        if let Ok(judged) = result {
            let events = value["events"].as_array().unwrap_or_else(|| panic!("seed {seed}: accepted without events array: {value}"));
            assert_eq!(judged.len(), events.len(), "seed {seed}");
            assert!((1..=100).contains(&events.len()), "seed {seed}");
        }
    }
}

#[test]
fn generated_valid_events_are_all_accepted_verbatim() {
    let schema = Schema::collect().expect("schema");
    for seed in 1..500_u64 {
        let mut rng = Rng(seed);
        let events: Vec<Value> = (0..1 + rng.below(20) as usize).map(|index| valid_event(&mut rng, index)).collect();
        let judged = parse_collect_body(json!({ "events": events }).to_string().as_bytes(), &schema)
            .unwrap_or_else(|error| panic!("seed {seed}: {error:?}"));
        assert_eq!(judged.len(), events.len());
        for (item, original) in judged.iter().zip(&events) {
            match item {
                JudgedEvent::Valid(valid) => {
                    assert_eq!(&Value::Object(valid.body.clone()), original, "seed {seed}");
                    assert_eq!(valid.event_id, original["event_id"].as_str().expect("id"));
                }
                JudgedEvent::Invalid { violation, .. } => panic!("seed {seed}: {violation:?} in {original}"),
            }
        }
    }
}

#[test]
fn one_broken_event_is_rejected_alone_and_named() {
    let schema = Schema::collect().expect("schema");
    for seed in 1..1_000_u64 {
        let mut rng = Rng(seed);
        let mut events: Vec<Value> = (0..2 + rng.below(5) as usize).map(|index| valid_event(&mut rng, index)).collect();
        let broken = rng.below(events.len() as u64) as usize;
        let field = mutate(&mut rng, &mut events[broken]);
        let judged = parse_collect_body(json!({ "events": events }).to_string().as_bytes(), &schema)
            .unwrap_or_else(|error| panic!("seed {seed}: {error:?}"));
        for (position, item) in judged.iter().enumerate() {
            match (position == broken, item) {
                (true, JudgedEvent::Invalid { violation, .. }) => {
                    let expected = format!("events[{broken}].{field}");
                    assert!(violation.field.starts_with(&expected), "seed {seed}: {} should start with {expected}", violation.field);
                }
                (false, JudgedEvent::Valid(_)) => {}
                (_, other) => panic!("seed {seed}: event {position} judged {other:?}"),
            }
        }
    }
}
