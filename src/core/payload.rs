//! The endpoint body, `{"events":[…]}`, as described by `schema/collect.schema.json`. Field
//! names follow Meta's Conversions API where one exists, so the endpoint forwards with little
//! mapping. Takes a list of events so the shell can batch.

use crate::core::attribution::{Attribution, CLICK_IDS};
use crate::core::consent::State;
use crate::core::event::{write_details, write_items, Item, ValidEvent};
use crate::core::identity::{write_hashes, Identity};
use crate::core::json::{self, truncate_utf8, Value, W};
use crate::core::text;

pub const TAG_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The schema's limit for URLs.
const URL_CAP: usize = 2048;

/// One event with the identifiers the tag holds when it is tracked.
pub struct Envelope<'a> {
    pub event: &'a ValidEvent,
    pub fbp: Option<&'a str>,
    pub fbc: Option<&'a str>,
    /// TikTok's `_ttp` cookie, when the site runs the TikTok pixel.
    pub ttp: Option<&'a str>,
    pub attribution: &'a Attribution,
    pub client_id: &'a str,
}

/// What consent lets into the event (decided in `tag_consent`).
pub struct Allowed<'a> {
    /// ad_user_data granted: identifiers (fbp, fbc, ttp, click IDs, also in the URLs) go.
    pub user_data: bool,
    /// The hashed identity, when there is one and ad_user_data allows it.
    pub identity: Option<&'a Identity>,
    /// The consent state in force, for the payload's `consent`.
    pub state: Option<&'a State>,
}

/// `url` without the click-ID query parameters (`fbclid`, `gclid`, …).
pub fn without_click_ids(url: &str) -> String {
    let (head, fragment) = text::split_once(url, "#").map_or((url, None), |(h, f)| (h, Some(f)));
    let Some((path, query)) = text::split_once(head, "?") else { return url.to_string() };
    let mut out = String::from(path);
    for p in text::split(query, "&") {
        if !text::listed(CLICK_IDS, " ", text::before(p, "=")) {
            out.push(if out.len() == path.len() { '?' } else { '&' });
            out.push_str(p);
        }
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

fn url(w: &mut W, k: &str, url: &str, p: &Allowed) {
    let mut s = url.to_string();
    truncate_utf8(&mut s, URL_CAP);
    if !p.user_data {
        s = without_click_ids(&s);
    }
    w.s(k, &s);
}

/// Conversions API `contents` item names: a constant, where an array built on the stack at each
/// call cost a store per pointer, length and field.
const CONTENTS_FIELDS: &[(Item, &str)] = &[(Item::Id, "id"), (Item::Quantity, "quantity"), (Item::Price, "item_price"), (Item::Name, "title"), (Item::Category, "category")];

fn custom_data(w: &mut W, ev: &ValidEvent) {
    let p = &ev.params;
    w.key("custom_data")
        .open('{')
        .opt_number("value", &p.value)
        .opt_string("currency", &p.currency)
        .opt_string("order_id", &p.order_id);
    write_items(w, "contents", p, CONTENTS_FIELDS, false);
    if !p.content_ids.is_empty() {
        w.key("content_ids").open('[');
        for id in &p.content_ids {
            w.str(id);
        }
        w.close(']');
    }
    write_details(w, p);
    for (k, v) in &p.custom {
        w.key(k).raw(v);
    }
    w.close('}');
}

/// One event object of the payload, as the next value of `w`. Written straight to text: it is
/// built once per event only to be sent.
pub fn write_event(w: &mut W, e: &Envelope, p: &Allowed) {
    let ev = e.event;
    w.open('{').s("event_id", &ev.event_id).s("event_name", ev.name.as_str()).u("event_time", ev.time_ms / 1000).u("event_time_ms", ev.time_ms);
    url(w, "event_source_url", &ev.url, p);
    if !ev.referrer.is_empty() {
        url(w, "referrer", &ev.referrer, p);
    }
    w.s("action_source", "website").key("user_data").open('{');
    if p.user_data {
        w.opt_s("fbp", e.fbp).opt_s("fbc", e.fbc).opt_s("ttp", e.ttp);
    }
    if let Some(id) = p.identity {
        id.write_meta_arrays(w);
    }
    w.close('}');
    custom_data(w, ev);
    e.attribution.write(w, p.user_data);
    w.s("client_id", e.client_id).s("tag_version", TAG_VERSION);
    if let Some(id) = p.identity {
        // Written in place, not made into a String of their own (google_json) and copied in.
        if !id.google.is_empty() {
            write_hashes(w.key("google_user_data"), &id.google);
        }
        if !id.tiktok.is_empty() {
            write_hashes(w.key("tiktok_user_data"), &id.tiktok);
        }
    }
    if let Some(state) = p.state {
        w.key("consent").raw(&state.to_json());
    }
    w.close('}');
}

/// A queued event object (JSON text) as `write_event` would have written it with ad_user_data
/// denied, for a revocation: the event is still sent (advanced mode counts it) but carries none of
/// the identifiers it was built with, and its `consent` becomes `state`, the state in force, so the
/// collector forwards none either. Key order is unchanged, so the result is byte for byte what the
/// same event tracked under `state` would have queued. Text that is not an event object (never
/// queued: the outbox only holds what it parsed) is returned as it is.
pub fn redact(event: &str, state: &State) -> String {
    let Ok(Value::Object(members)) = json::parse(event) else { return event.to_string() };
    let mut w = W::new('{');
    for (k, v) in &members {
        match (k.as_str(), v) {
            ("google_user_data" | "tiktok_user_data", _) => {}
            ("user_data" | "click_ids", _) => {
                w.key(k).open('{').close('}');
            }
            ("event_source_url" | "referrer", Value::String(u)) => {
                w.s(k, &without_click_ids(u));
            }
            ("consent", _) => {
                w.key(k).raw(&state.to_json());
            }
            _ => {
                w.key(k).value(v);
            }
        }
    }
    w.end('}')
}

/// One event object, as the outbox queues it: its requests carry events as `{"events":[…]}`.
pub fn event(e: &Envelope, p: &Allowed) -> String {
    let mut w = W(String::with_capacity(128));
    write_event(&mut w, e, p);
    w.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::json::parse;
    use crate::core::json::Value;
    use crate::platforms::test_support::event;

    const OPEN: Allowed = Allowed { user_data: true, identity: None, state: None };

    /// The request body the outbox makes of one event.
    pub fn wrap(event: &str) -> String {
        String::from("{\"events\":[") + event + "]}"
    }

    /// `event` as the body of a request of its own.
    pub fn body(e: &Envelope, p: &Allowed) -> String {
        wrap(&super::event(e, p))
    }

    /// A validator for the subset of JSON Schema that collect.schema.json uses (type, required,
    /// properties, additionalProperties, propertyNames, items, enum, const, min/max length,
    /// items and values, $ref, and its few patterns checked by hand). Returns the first problem.
    pub fn validate(schema: &Value, root: &Value, v: &Value, path: &str) -> Result<(), String> {
        let fail = |what: &str| Err(String::from(path) + ": " + what);
        if let Some(Value::String(r)) = schema.get("$ref") {
            let name = r.trim_start_matches("#/$defs/");
            let def = root.get("$defs").and_then(|d| d.get(name)).ok_or_else(|| String::from("missing $ref ") + r)?;
            return validate(def, root, v, path);
        }
        let num = |v: &Value| match v {
            Value::Number(n) => n.parse::<f64>().ok(),
            _ => None,
        };
        let type_ok = |t: &str| match (t, v) {
            ("object", Value::Object(_)) | ("array", Value::Array(_)) | ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
            ("number", Value::Number(_)) => num(v).is_some_and(f64::is_finite),
            ("integer", Value::Number(_)) => num(v).is_some_and(|n| n.fract() == 0.0),
            _ => false,
        };
        match schema.get("type") {
            Some(Value::String(t)) if !type_ok(t) => return fail("wrong type"),
            Some(Value::Array(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(type_ok)) => return fail("wrong type"),
            _ => {}
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                return fail("const");
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.contains(v) {
                return fail("enum");
            }
        }
        let limit = |k: &str| schema.get(k).and_then(num);
        if let Value::String(s) = v {
            let n = s.chars().count() as f64;
            if limit("minLength").is_some_and(|m| n < m) || limit("maxLength").is_some_and(|m| n > m) {
                return fail("length");
            }
        }
        if let Some(n) = num(v) {
            if limit("minimum").is_some_and(|m| n < m) {
                return fail("minimum");
            }
        }
        if let Value::Array(items) = v {
            let n = items.len() as f64;
            if limit("minItems").is_some_and(|m| n < m) || limit("maxItems").is_some_and(|m| n > m) {
                return fail("item count");
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, root, item, &(String::from(path) + "[" + &i.to_string() + "]"))?;
                }
            }
        }
        if let Value::Object(members) = v {
            if let Some(Value::Array(req)) = schema.get("required") {
                for r in req {
                    if !members.iter().any(|(k, _)| Some(k.as_str()) == r.as_str()) {
                        return fail(&(String::from("missing required ") + r.as_str().unwrap_or("?")));
                    }
                }
            }
            for (k, item) in members {
                let sub = String::from(path) + "." + k;
                if let Some(names) = schema.get("propertyNames") {
                    validate(names, root, &Value::String(k.clone()), &sub)?;
                }
                match schema.get("properties").and_then(|p| p.get(k)) {
                    Some(ps) => validate(ps, root, item, &sub)?,
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => return fail(&(String::from("unexpected key ") + k)),
                        Some(ap @ Value::Object(_)) => validate(ap, root, item, &sub)?,
                        _ => {}
                    },
                }
            }
        }
        Ok(())
    }

    /// The schema's patterns, by hand (no regex crate).
    fn patterns_ok(ev: &Value) -> Result<(), String> {
        let id = ev.get("event_id").and_then(Value::as_str).unwrap_or("");
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c)) {
            return Err(String::from("event_id pattern"));
        }
        let user = ev.get("user_data").ok_or("user_data")?;
        if let Some(fbp) = user.get("fbp").and_then(Value::as_str) {
            let p = crate::core::cookies::parse_fb(fbp).ok_or("fbp pattern")?;
            if p.payload.contains('.') {
                return Err(String::from("fbp pattern"));
            }
        }
        if let Some(fbc) = user.get("fbc").and_then(Value::as_str) {
            crate::core::cookies::parse_fb(fbc).ok_or("fbc pattern")?;
        }
        if let Some(c) = ev.get("custom_data").and_then(|c| c.get("currency")).and_then(Value::as_str) {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(String::from("currency pattern"));
            }
        }
        Ok(())
    }

    pub fn check_against_schema(body: &str) {
        let schema_text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/collect.schema.json")).expect("schema");
        let schema = parse(&schema_text).expect("schema parses");
        let v = parse(body).expect("body parses");
        validate(&schema, &schema, &v, "$").unwrap_or_else(|e| panic!("{e}\n{body}"));
        if let Some(Value::Array(events)) = v.get("events") {
            for ev in events {
                patterns_ok(ev).unwrap_or_else(|e| panic!("{e}\n{body}"));
            }
        }
    }

    fn attribution() -> Attribution {
        let mut a = Attribution::default();
        a.observe(&crate::core::url::query_params("https://shop.example/?gclid=G1&fbclid=F1&utm_source=google&utm_medium=cpc"), 1_699_000_000_000);
        a.observe(&crate::core::url::query_params("https://shop.example/?utm_source=news"), 1_699_500_000_000);
        a
    }

    /// Builds the body for one event and checks it; also writes it for the JS schema validator.
    fn check(fixture: &str, name: &str, params: &str, expected_custom_data: &str) {
        let mut ev = event(name, params);
        ev.referrer = "https://www.google.com/".into();
        let a = attribution();
        let env = Envelope {
            event: &ev,
            fbp: Some("fb.1.1699000000000.123456789"),
            fbc: Some("fb.1.1699000000000.F1"),
            ttp: None,
            attribution: &a,
            client_id: "AAAAAAAAAAAAAAAAAAAAAA",
        };
        let text = body(&env, &OPEN);
        check_against_schema(&text);
        let v = parse(&text).unwrap();
        let cd = v.get("events").and_then(|e| match e {
            Value::Array(a) => a.first(),
            _ => None,
        });
        assert_eq!(cd.and_then(|e| e.get("custom_data")).map(Value::to_json).as_deref(), Some(expected_custom_data));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/payloads");
        if std::fs::create_dir_all(dir).is_ok() {
            let _ = std::fs::write(String::from(dir) + "/" + fixture + ".json", text + "\n");
        }
    }

    #[test]
    fn payloads_follow_the_schema() {
        check(
            "purchase",
            "Purchase",
            r#"{"value":"59.90","currency":"eur","order_id":"A-1001","contents":[{"id":"sku-1","quantity":2,"price":"19.95","name":"Sock","category":"Socks"},{"id":42,"quantity":1,"price":20}],"content_type":"product","num_items":3,"coupon":"WELCOME"}"#,
            r#"{"value":59.90,"currency":"EUR","order_id":"A-1001","contents":[{"id":"sku-1","quantity":2,"item_price":19.95,"title":"Sock","category":"Socks"},{"id":"42","quantity":1,"item_price":20}],"content_type":"product","num_items":3,"coupon":"WELCOME"}"#,
        );
        check("page_view", "PageView", "null", "{}");
        check(
            "search",
            "Search",
            r#"{"search_string":"red socks","content_ids":["sku-1",7],"content_category":"Socks"}"#,
            r#"{"content_ids":["sku-1","7"],"content_category":"Socks","search_string":"red socks"}"#,
        );
        check(
            "lead",
            "Lead",
            r#"{"value":0,"currency":"USD","content_name":"Demo form","status":true,"predicted_ltv":-3.5}"#,
            r#"{"value":0,"currency":"USD","content_name":"Demo form","predicted_ltv":-3.5,"status":true}"#,
        );
        check("custom", "BookDemo", r#"{"plan":"pro","seats":5,"nested":{"a":[1,null]}}"#, r#"{"plan":"pro","seats":5,"nested":{"a":[1,null]}}"#);
    }

    #[test]
    fn envelope_fields() {
        let mut ev = event("Lead", "{}");
        ev.url = String::from("https://shop.example/?q=") + &"é".repeat(2000);
        let a = Attribution::default();
        let env = Envelope { event: &ev, fbp: None, fbc: None, ttp: Some("ttp1"), attribution: &a, client_id: "c" };
        let text = body(&env, &OPEN);
        check_against_schema(&text);
        let v = parse(&text).unwrap();
        let Some(Value::Array(events)) = v.get("events") else { panic!() };
        let e = &events[0];
        assert_eq!(e.get("event_time").map(Value::to_json).as_deref(), Some("1700000000"));
        assert_eq!(e.get("event_time_ms").map(Value::to_json).as_deref(), Some("1700000000000"));
        assert_eq!(e.get("referrer"), None);
        assert_eq!(e.get("user_data").map(Value::to_json).as_deref(), Some(r#"{"ttp":"ttp1"}"#));
        assert!(e.get("event_source_url").and_then(Value::as_str).is_some_and(|u| u.len() <= 2048));
        assert_eq!(e.get("tag_version").and_then(Value::as_str), Some(TAG_VERSION));
        // The validator itself rejects what the schema forbids.
        let schema = parse(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/collect.schema.json")).unwrap()).unwrap();
        for bad in [
            r#"{"events":[]}"#,
            &text.replace("\"website\"", "\"app\""),
            &text.replace("\"client_id\":\"c\"", "\"client_id\":\"\""),
            &text.replace("\"ttp\":", "\"em\":"),
        ] {
            assert!(validate(&schema, &schema, &parse(bad).unwrap(), "$").is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod redact_tests {
    use super::*;
    use crate::core::consent::{Mode, Signal};
    use crate::core::json::parse;
    use crate::platforms::test_support::event;
    use crate::core::payload::tests::body;

    /// The event object as the outbox holds it (parsed from the body, written back).
    fn queued(body: &str) -> String {
        match parse(body).ok().and_then(|v| v.get("events").cloned()) {
            Some(Value::Array(e)) => e[0].to_json(),
            _ => panic!("{body}"),
        }
    }

    fn state(user_data: Signal, gpc: bool) -> State {
        State { signals: [Signal::Granted, Signal::Granted, user_data, if gpc { Signal::Denied } else { Signal::Granted }], gpc, mode: Mode::Advanced, managed: !gpc, wait: None }
    }

    #[test]
    fn a_redacted_event_is_the_event_tracked_under_denial() {
        let mut ev = event("Purchase", r#"{"value":10,"currency":"EUR","order_id":"o-1"}"#);
        ev.url = "https://shop.example/thanks?gclid=G1&a=1&fbclid=F1#top".into();
        ev.referrer = "https://shop.example/cart?ttclid=T1".into();
        let mut a = Attribution::default();
        a.observe(&crate::core::url::query_params(&ev.url), 1_699_000_000_000);
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let mut id = Identity::default();
        id.merge(&parse(r#"{"email":"Ann@Example.com","phone":"+33 6 12 34 56 78","externalId":"u1"}"#).unwrap(), &mut e, &mut w);
        let env = Envelope { event: &ev, fbp: Some("fb.1.1699000000000.1"), fbc: Some("fb.1.1699000000000.F1"), ttp: Some("ttp1"), attribution: &a, client_id: "c" };
        let granted = state(Signal::Granted, false);
        let before = queued(&body(&env, &Allowed { user_data: true, identity: Some(&id), state: Some(&granted) }));
        assert!(["G1", "F1", "T1", "ttp1", "google_user_data", "tiktok_user_data", "\"em\""].iter().all(|s| before.contains(s)), "{before}");
        for now in [state(Signal::Denied, false), state(Signal::Denied, true)] {
            let denied_body = body(&env, &Allowed { user_data: false, identity: None, state: Some(&now) });
            let redacted = redact(&before, &now);
            assert_eq!(redacted, queued(&denied_body));
            // Byte for byte what write_event itself writes, not only what the outbox re-serialises.
            assert_eq!(String::from(r#"{"events":["#) + &redacted + "]}", denied_body);
            check_against_schema_of(&redacted);
            assert!(["G1", "F1", "T1", "ttp1", "google_user_data", "tiktok_user_data", "\"em\""].iter().all(|s| !redacted.contains(s)), "{redacted}");
            assert!(redacted.contains(r#""ad_user_data":"denied""#) && redacted.contains("?a=1#top"), "{redacted}");
            // A second revocation (or a replayed one) changes nothing.
            assert_eq!(redact(&redacted, &now), redacted);
        }
        assert_eq!(redact("not json", &state(Signal::Denied, false)), "not json");
    }

    fn check_against_schema_of(event: &str) {
        tests::check_against_schema(&(String::from(r#"{"events":["#) + event + "]}"));
    }
}
