//! Turns the bytes of a `POST /collect` body into accepted and rejected events.
//!
//! This is pure: no I/O, no clock, no panics on any input. The envelope (`{"events": [...]}`)
//! must be valid as a whole or the request is refused; each event is then judged on its own
//! against `$defs/event`, so one bad event does not cost the others in the same beacon.

use serde_json::{Map, Value};

use crate::schema::{Schema, Violation};

/// Name of the array member that holds the events, and of the schema definition for one event.
const EVENTS_MEMBER: &str = "events";
const EVENT_DEFINITION: &str = "event";

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Not UTF-8 JSON at all.
    NotJson(String),
    /// JSON, but the envelope breaks the schema.
    Envelope(Violation),
}

impl PayloadError {
    pub fn field(&self) -> &str {
        match self {
            Self::NotJson(_) => "(body)",
            Self::Envelope(violation) => &violation.field,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::NotJson(detail) => format!("body is not valid JSON: {detail}"),
            Self::Envelope(violation) => format!("{}: {}", violation.field, violation.message),
        }
    }
}

/// An event that passed the schema, with the fields the store indexes pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub event_id: String,
    pub event_name: String,
    /// Unix seconds.
    pub event_time: i64,
    pub client_id: String,
    /// The event object exactly as validated; stored verbatim and read back for forwarding.
    pub body: Map<String, Value>,
}

/// One element of the `events` array, judged.
#[derive(Debug, Clone, PartialEq)]
pub enum JudgedEvent {
    Valid(ValidEvent),
    Invalid {
        /// The event's id when it had a usable string one, to let the tag match results.
        event_id: Option<String>,
        violation: Violation,
    },
}

/// Parses and validates a body. Never panics: serde_json bounds nesting depth (128) and the
/// validator only walks as deep as the schema.
pub fn parse_collect_body(bytes: &[u8], schema: &Schema) -> Result<Vec<JudgedEvent>, PayloadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let document: Value = serde_json::from_slice(bytes).map_err(|error| PayloadError::NotJson(error.to_string()))?;
    schema.validate_envelope(&document, EVENTS_MEMBER).map_err(PayloadError::Envelope)?;
    let Some(Value::Array(events)) = document.get(EVENTS_MEMBER) else {
        // The schema requires an `events` array, so this only happens if the schema changes.
        return Err(PayloadError::Envelope(Violation { field: EVENTS_MEMBER.to_owned(), message: "must be an array".to_owned() }));
    };
    Ok(events
        .iter()
        .enumerate()
        .map(|(position, event)| judge_event(schema, position, event))
        .collect())
}

fn judge_event(schema: &Schema, position: usize, event: &Value) -> JudgedEvent {
    let path = format!("{EVENTS_MEMBER}[{position}]");
    let event_id = event.get("event_id").and_then(Value::as_str).map(str::to_owned);
    if let Err(violation) = schema.validate_definition(EVENT_DEFINITION, event, &path) {
        return JudgedEvent::Invalid { event_id, violation };
    }
    let invalid = |field: &str, message: &str| JudgedEvent::Invalid {
        event_id: event_id.clone(),
        violation: Violation { field: format!("{path}.{field}"), message: message.to_owned() },
    };
    // The schema guarantees these shapes; checking again keeps this function total.
    let Value::Object(body) = event else { return invalid("", "must be an object") };
    let Some(id) = body.get("event_id").and_then(Value::as_str) else { return invalid("event_id", "must be a string") };
    let Some(name) = body.get("event_name").and_then(Value::as_str) else { return invalid("event_name", "must be a string") };
    let Some(client_id) = body.get("client_id").and_then(Value::as_str) else { return invalid("client_id", "must be a string") };
    let Some(event_time) = body.get("event_time").and_then(integer_value) else {
        return invalid("event_time", "must be an integer that fits in 64 bits");
    };
    JudgedEvent::Valid(ValidEvent {
        event_id: id.to_owned(),
        event_name: name.to_owned(),
        event_time,
        client_id: client_id.to_owned(),
        body: body.clone(),
    })
}

/// A JSON integer as i64, accepting integral floats (`1.7e9`) as JSON Schema does.
pub fn integer_value(value: &Value) -> Option<i64> {
    let number = value.as_number()?;
    if let Some(integer) = number.as_i64() {
        return Some(integer);
    }
    let float = number.as_f64()?;
    (float.fract() == 0.0 && float >= i64::MIN as f64 && float < i64::MAX as f64).then_some(float as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::collect().expect("schema compiles")
    }

    pub(crate) fn event(id: &str) -> Value {
        json!({
            "event_id": id, "event_name": "Purchase", "event_time": 1_700_000_000, "event_time_ms": 1_700_000_000_123_i64,
            "event_source_url": "https://shop.example/thanks", "referrer": "", "action_source": "website",
            "user_data": {"fbp": "fb.1.1700000000000.123456"}, "custom_data": {"value": 12.5, "currency": "EUR", "order_id": "o-1"},
            "click_ids": {"fbclid": {"value": "AbC", "ts": 1_700_000_000_000_i64}}, "utm": {}, "client_id": "c-1", "tag_version": "0.1.0"
        })
    }

    fn check(body: &str, expected: Result<Vec<&str>, &str>) {
        let actual = parse_collect_body(body.as_bytes(), &schema())
            .map(|judged| {
                judged
                    .into_iter()
                    .map(|item| match item {
                        JudgedEvent::Valid(valid) => format!("ok {}", valid.event_id),
                        JudgedEvent::Invalid { violation, .. } => format!("bad {}", violation.field),
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|error| error.field().to_owned());
        let expected = expected.map(|items| items.into_iter().map(str::to_owned).collect::<Vec<_>>()).map_err(str::to_owned);
        assert_eq!(actual, expected, "body {body}");
    }

    #[test]
    fn judges_each_event_on_its_own() {
        let mut second = event("b");
        second["event_time"] = json!("yesterday");
        let mut third = event("c");
        third["user_data"]["fbp"] = json!("not-an-fbp");
        check(&json!({"events": [event("a"), second, third]}).to_string(), Ok(vec!["ok a", "bad events[1].event_time", "bad events[2].user_data.fbp"]));
    }

    #[test]
    fn refuses_bad_envelopes() {
        check("", Err("(body)"));
        check("{\"events\": [", Err("(body)"));
        check("[]", Err("(body)"));
        check("{}", Err("events"));
        check("{\"events\": []}", Err("events"));
        check(&json!({"events": [event("a")], "extra": 1}).to_string(), Err("extra"));
        let many: Vec<Value> = (0..101).map(|index| event(&format!("e{index}"))).collect();
        check(&json!({ "events": many }).to_string(), Err("events"));
    }

    #[test]
    fn accepts_integral_floats_and_a_byte_order_mark() {
        let mut float_time = event("a");
        float_time["event_time"] = json!(1.7e9);
        check(&format!("\u{feff}{}", json!({"events": [float_time]})), Ok(vec!["ok a"]));
    }

    #[test]
    fn keeps_custom_data_keys_and_rejects_unknown_event_keys() {
        let mut custom = event("a");
        custom["custom_data"]["coupon"] = json!("SPRING");
        let mut unknown = event("b");
        unknown["surprise"] = json!(true);
        check(&json!({"events": [custom, unknown]}).to_string(), Ok(vec!["ok a", "bad events[1].surprise"]));
    }
}
