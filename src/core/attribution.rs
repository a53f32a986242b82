//! Attribution state: click IDs and UTM first/last touch, read from landing URLs and kept in
//! `localStorage["tandem:attribution"]` for the attribution window, so a conversion pages later
//! still carries the click that brought the visitor.
//!
//! Storage is shared with the site and other scripts, so whatever is stored there is treated as
//! untrusted: unreadable or foreign data is ignored field by field, never an error.

use crate::core::json::{self, truncate_utf8, Value, W};
use crate::core::text;

pub const STORAGE_KEY: &str = "tandem:attribution";
pub const DEFAULT_WINDOW_DAYS: u64 = 90;
/// Same cap as URL values; also the schema's limit.
pub const VALUE_CAP: usize = 500;

/// Click-ID URL parameters, spelled as the platforms spell them (keys are case-sensitive), one
/// space apart: a `&[&str]` kept a pointer and a length for each, which compressed worse.
pub const CLICK_IDS: &str = "gclid gbraid wbraid dclid fbclid ttclid msclkid li_fat_id ScCid epik rdt_cid twclid";

/// UTM URL parameters, one space apart; each is stored under its name without `utm_`.
const UTMS: &str = "utm_source utm_medium utm_campaign utm_term utm_content utm_id";

/// The stored field of UTM parameter `param` (`utm_source` -> `source`).
fn utm_field(param: &'static str) -> &'static str {
    param.get("utm_".len()..).unwrap_or_default()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickId {
    pub name: &'static str,
    pub value: String,
    /// Unix ms when this value was first seen.
    pub ts: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touch {
    /// `(field, value)` in `UTMS` order, non-empty values only.
    pub fields: Vec<(&'static str, String)>,
    pub ts: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    pub click_ids: Vec<ClickId>,
    pub first: Option<Touch>,
    pub last: Option<Touch>,
}

/// Drops control characters and caps the length; `None` when nothing is left.
pub fn clean(raw: &str) -> Option<String> {
    let mut s = String::new();
    for c in raw.chars() {
        if !c.is_control() {
            s.push(c);
        }
    }
    truncate_utf8(&mut s, VALUE_CAP);
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

pub(crate) fn ts_of(v: Option<&Value>) -> Option<u64> {
    match v {
        Some(Value::Number(n)) => crate::core::cookies::digits(n),
        _ => None,
    }
}

fn touch_from(v: Option<&Value>) -> Option<Touch> {
    let v = v?;
    let ts = ts_of(v.get("ts"))?;
    // Loops rather than filter_map and collect, which linked its own extend for each closure.
    let mut fields = Vec::new();
    for field in text::split(UTMS, " ").map(utm_field) {
        if let Some(value) = v.get(field).and_then(Value::as_str).and_then(clean) {
            fields.push((field, value));
        }
    }
    if fields.is_empty() {
        None
    } else {
        Some(Touch { fields, ts })
    }
}

impl Attribution {
    /// The stored state; anything unreadable is left out.
    pub fn load(stored: Option<&str>) -> Attribution {
        // Nothing stored reads as "", which does not parse: no `Option::map` linked for it.
        // One empty state, returned as it is when nothing parses: two were written out in line.
        let mut a = Attribution::default();
        let Ok(v) = json::parse(stored.unwrap_or_default()) else { return a };
        if let Some(ids) = v.get("click_ids") {
            for name in text::split(CLICK_IDS, " ") {
                let Some(entry) = ids.get(name) else { continue };
                // One at a time, the value only with a time: a pair matched at once was moved as a
                // pair, and its value dropped when the time was missing.
                let Some(ts) = ts_of(entry.get("ts")) else { continue };
                if let Some(value) = entry.get("value").and_then(Value::as_str).and_then(clean) {
                    a.click_ids.push(ClickId { name, value, ts });
                }
            }
        }
        if let Some(utm) = v.get("utm") {
            a.first = touch_from(utm.get("first"));
            a.last = touch_from(utm.get("last"));
        }
        a
    }

    /// Takes click IDs and UTMs from a landing URL's parameters. A new click-ID value replaces
    /// the old one with a new time; the same value keeps its first time. First touch is set
    /// once; last touch is replaced by any landing that carries UTMs. Whether a click ID changed
    /// or the URL carried UTMs.
    pub fn observe(&mut self, params: &[(String, String)], now_ms: u64) -> bool {
        let mut changed = false;
        for name in text::split(CLICK_IDS, " ") {
            // A click ID over the cap is ignored, as Meta's own code does with an fbclid: cut
            // short it would name no click.
            let Some(value) = crate::core::url::param(params, name).filter(|v| v.len() <= VALUE_CAP).and_then(clean) else { continue };
            match self.click_ids.iter_mut().find(|c| c.name == name) {
                Some(c) if c.value == value => continue,
                Some(c) => {
                    c.value = value;
                    c.ts = now_ms;
                }
                None => self.click_ids.push(ClickId { name, value, ts: now_ms }),
            }
            changed = true;
        }
        // Read twice for a first touch rather than cloned: the reads are code the tag has anyway,
        // where a clone linked a copy routine for the field list.
        let touch = || {
            let mut fields = Vec::new();
            for p in text::split(UTMS, " ") {
                if let Some(value) = crate::core::url::param(params, p).and_then(clean) {
                    fields.push((utm_field(p), value));
                }
            }
            (!fields.is_empty()).then_some(Touch { fields, ts: now_ms })
        };
        if let Some(last) = touch() {
            if self.first.is_none() {
                self.first = touch();
            }
            self.last = Some(last);
            changed = true;
        }
        changed
    }

    /// Forgets entries older than the window.
    pub fn expire(&mut self, now_ms: u64, window_days: u64) {
        // saturating_mul, written out: on a u64 it links a 128-bit multiply (__multi3) into the wasm.
        const DAY_MS: u64 = 86_400_000;
        let window_ms = if window_days > u64::MAX / DAY_MS { u64::MAX } else { window_days * DAY_MS };
        let fresh = |ts: u64| now_ms.saturating_sub(ts) <= window_ms;
        // Removed one by one (a dozen at most): Vec::retain linked a larger loop for ClickId alone.
        let mut i = 0;
        while let Some(c) = self.click_ids.get(i) {
            if fresh(c.ts) {
                i += 1;
            } else {
                self.click_ids.remove(i);
            }
        }
        if self.first.as_ref().is_some_and(|t| !fresh(t.ts)) {
            self.first = None;
        }
        if self.last.as_ref().is_some_and(|t| !fresh(t.ts)) {
            self.last = None;
        }
    }

    pub fn click_id(&self, name: &str) -> Option<&ClickId> {
        self.click_ids.iter().find(|c| c.name == name)
    }

    /// `"click_ids":{name: {value, ts}},"utm":{first?, last?}` as in the payload schema.
    pub fn write(&self, w: &mut W, click_ids: bool) {
        w.key("click_ids").open('{');
        if click_ids {
            for c in &self.click_ids {
                w.key(c.name).open('{').s("value", &c.value).u("ts", c.ts).close('}');
            }
        }
        w.close('}').key("utm").open('{');
        for &(k, t) in &[("first", &self.first), ("last", &self.last)] {
            if let Some(t) = t {
                w.key(k).open('{');
                for (k, v) in &t.fields {
                    w.s(k, v);
                }
                w.u("ts", t.ts).close('}');
            }
        }
        w.close('}');
    }

    /// The stored form, which is also the payload's shape: `{"click_ids":{…},"utm":{…}}`.
    pub fn to_json(&self) -> String {
        let mut w = W::new('{');
        self.write(&mut w, true);
        w.end('}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::url::query_params;

    const DAY: u64 = 86_400_000;
    const T0: u64 = 1_700_000_000_000;

    /// Loads `stored`, then for each `(url, now)` landing expires and observes (as `Tag` does),
    /// and compares the stored JSON.
    fn check(stored: Option<&str>, landings: &[(&str, u64)], expected: &str) {
        let mut a = Attribution::load(stored);
        let mut last_now = T0;
        for (url, now) in landings {
            a.expire(*now, DEFAULT_WINDOW_DAYS);
            a.observe(&query_params(url), *now);
            last_now = *now;
        }
        a.expire(last_now, DEFAULT_WINDOW_DAYS);
        assert_eq!(a.to_json(), expected);
        // What is stored loads back identically.
        assert_eq!(Attribution::load(Some(&a.to_json())), a);
    }

    #[test]
    fn every_click_id_is_read() {
        for name in text::split(CLICK_IDS, " ") {
            let url = String::from("https://s.example/?") + name + "=v_" + name;
            let mut want = String::from(r#"{"click_ids":{""#);
            want.push_str(name);
            want.push_str(r#"":{"value":"v_"#);
            want.push_str(name);
            want.push_str(r#"","ts":1700000000000}},"utm":{}}"#);
            check(None, &[(&url, T0)], &want);
        }
        // Case matters: "sccid" is not Snapchat's "ScCid".
        check(None, &[("https://s.example/?sccid=1&GCLID=2", T0)], r#"{"click_ids":{},"utm":{}}"#);
    }

    #[test]
    fn click_id_updates() {
        let first = ("https://s.example/?gclid=A", T0);
        // Same value later keeps the first ts.
        check(None, &[first, ("https://s.example/?gclid=A", T0 + DAY)], r#"{"click_ids":{"gclid":{"value":"A","ts":1700000000000}},"utm":{}}"#);
        // A new value replaces it with a new ts.
        check(None, &[first, ("https://s.example/?gclid=B", T0 + DAY)], r#"{"click_ids":{"gclid":{"value":"B","ts":1700086400000}},"utm":{}}"#);
        // A landing without it keeps it.
        check(None, &[first, ("https://s.example/", T0 + DAY)], r#"{"click_ids":{"gclid":{"value":"A","ts":1700000000000}},"utm":{}}"#);
        // Empty and control-only values are dropped.
        check(None, &[("https://s.example/?gclid=&fbclid=%00%01", T0)], r#"{"click_ids":{},"utm":{}}"#);
        check(None, &[("https://s.example/?gclid=a%0Ab", T0)], r#"{"click_ids":{"gclid":{"value":"ab","ts":1700000000000}},"utm":{}}"#);
    }

    #[test]
    fn utm_first_and_last_touch() {
        check(
            None,
            &[("https://s.example/?utm_source=google&utm_medium=cpc&utm_campaign=x&utm_term=t&utm_content=c&utm_id=9", T0)],
            r#"{"click_ids":{},"utm":{"first":{"source":"google","medium":"cpc","campaign":"x","term":"t","content":"c","id":"9","ts":1700000000000},"last":{"source":"google","medium":"cpc","campaign":"x","term":"t","content":"c","id":"9","ts":1700000000000}}}"#,
        );
        check(
            None,
            &[
                ("https://s.example/?utm_source=google&utm_medium=cpc", T0),
                ("https://s.example/?x=1", T0 + DAY),
                ("https://s.example/?utm_source=news", T0 + 2 * DAY),
            ],
            r#"{"click_ids":{},"utm":{"first":{"source":"google","medium":"cpc","ts":1700000000000},"last":{"source":"news","ts":1700172800000}}}"#,
        );
        // Empty UTMs are not a touch.
        check(None, &[("https://s.example/?utm_source=", T0)], r#"{"click_ids":{},"utm":{}}"#);
    }

    #[test]
    fn window_expiry() {
        let stored = r#"{"click_ids":{"gclid":{"value":"old","ts":1600000000000},"fbclid":{"value":"new","ts":1699999999999}},"utm":{"first":{"source":"a","ts":1600000000000},"last":{"source":"b","ts":1699000000000}}}"#;
        check(
            Some(stored),
            &[("https://s.example/", T0)],
            r#"{"click_ids":{"fbclid":{"value":"new","ts":1699999999999}},"utm":{"last":{"source":"b","ts":1699000000000}}}"#,
        );
        // Exactly at the window edge is kept, one ms later is not.
        let edge = T0 - DEFAULT_WINDOW_DAYS * DAY;
        let mut a = Attribution { click_ids: vec![ClickId { name: "gclid", value: "x".into(), ts: edge }], ..Default::default() };
        a.expire(T0, DEFAULT_WINDOW_DAYS);
        assert_eq!(a.click_ids.len(), 1);
        a.expire(T0 + 1, DEFAULT_WINDOW_DAYS);
        assert!(a.click_ids.is_empty());
        // A window too long to count in milliseconds keeps everything, as saturating_mul did.
        for days in [u64::MAX / DAY, u64::MAX / DAY + 1, u64::MAX] {
            let mut a = Attribution { click_ids: vec![ClickId { name: "gclid", value: "x".into(), ts: 0 }], ..Default::default() };
            a.expire(u64::MAX, days);
            assert_eq!(a.click_ids.len(), usize::from(days > u64::MAX / DAY), "{days}");
        }
        // After expiry a new first touch can be recorded.
        check(
            Some(r#"{"click_ids":{},"utm":{"first":{"source":"a","ts":1}}}"#),
            &[("https://s.example/?utm_source=z", T0)],
            r#"{"click_ids":{},"utm":{"first":{"source":"z","ts":1700000000000},"last":{"source":"z","ts":1700000000000}}}"#,
        );
    }

    #[test]
    fn corrupt_or_foreign_storage_is_ignored() {
        let empty = r#"{"click_ids":{},"utm":{}}"#;
        for stored in [
            "", "garbage", "null", "[]", "42", r#"{"click_ids":[]}"#, r#"{"click_ids":{"gclid":"x"}}"#,
            r#"{"click_ids":{"gclid":{"value":"x","ts":"1"}}}"#, r#"{"click_ids":{"gclid":{"value":"x","ts":-1}}}"#,
            r#"{"click_ids":{"gclid":{"value":"","ts":1700000000000}}}"#, r#"{"click_ids":{"evil":{"value":"x","ts":1700000000000}}}"#,
            r#"{"utm":{"first":{"source":"a"}}}"#, r#"{"utm":{"first":{"ts":1700000000000}}}"#,
        ] {
            check(Some(stored), &[], empty);
        }
        // Good parts survive next to bad ones.
        check(
            Some(r#"{"click_ids":{"gclid":{"value":"g","ts":1699999999999},"ttclid":7},"utm":{"last":{"source":5,"medium":"m","ts":1699999999999}},"other":1}"#),
            &[],
            r#"{"click_ids":{"gclid":{"value":"g","ts":1699999999999}},"utm":{"last":{"medium":"m","ts":1699999999999}}}"#,
        );
    }
}
