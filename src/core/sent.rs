//! Conversions already sent from this browser, kept across page loads, so a reloaded thank-you
//! page (or a back/forward visit) does not send the same Purchase again.
//!
//! Keys are Purchase order ids (`o:<id>`) and site-supplied event ids (`e:<id>`): each names one
//! logical conversion.
//! Generated UUIDs are not kept: they are new on every call by definition. Stored as JSON
//! `[["o:A-1", <ms>], …]` in localStorage, the newest `MAX_ENTRIES` for `MAX_AGE_MS`, which covers
//! the platforms' 48-hour dedup windows with room to spare. When full, event ids go before order
//! ids: a site that gives every event its own id must not push its Purchases out. Other tabs
//! write the same key: the log is merged with what storage holds before it is written back.

use crate::core::attribution::ts_of;
use crate::core::ids::fnv64;
use crate::core::json::{self, Value, W};

/// localStorage key.
pub const STORAGE_KEY: &str = "tandem:sent";
const MAX_ENTRIES: usize = 100;
const MAX_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// `o:` + an order id of 64 chars of up to 4 bytes.
const MAX_KEY_BYTES: usize = 2 + 64 * 4;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SentLog {
    /// (hash of the key, key, `["<key>",<ms first sent>]`), oldest first: each entry's JSON is
    /// written once, as the log is rewritten on every Purchase; the hash spares `contains`, run
    /// on every Purchase, a string comparison with each of up to 100 keys of mostly equal length.
    entries: Vec<(u64, String, String)>,
    /// The text last loaded or written: while storage still holds it, no other tab wrote since,
    /// and `merge` need not parse it (a Purchase page rewrites a log of up to 100 entries).
    synced: String,
}

fn entry(key: String, ts: u64) -> (u64, String, String) {
    // Sized once: `["<key>",<13-digit ms>]`, a key seldom needing escapes.
    let mut text = String::with_capacity(key.len() + 20);
    text.push('[');
    json::write_str(&mut text, &key);
    text.push(',');
    json::write_u64(&mut text, ts);
    text.push(']');
    (fnv64(&key), key, text)
}

impl SentLog {
    /// The stored log without expired entries; anything unreadable is left out, never an error.
    pub fn load(stored: Option<&str>, now_ms: u64) -> SentLog {
        let mut log = SentLog::default();
        // Nothing stored reads as "", which does not parse: no `Option::map` linked for it.
        if let Ok(Value::Array(items)) = json::parse(stored.unwrap_or_default()) {
            for item in &items {
                let Value::Array(pair) = item else { continue };
                // One by one, not matched as a pair, which moved both through memory first.
                let Some(Value::String(key)) = pair.first() else { continue };
                let Some(ts) = ts_of(pair.get(1)) else { continue };
                if key.len() <= MAX_KEY_BYTES && now_ms.saturating_sub(ts) < MAX_AGE_MS {
                    log.entries.push(entry(key.clone(), ts));
                }
            }
        }
        log.trim();
        log.synced = stored.unwrap_or_default().to_string();
        log
    }

    /// Takes in what another tab stored (`stored`, read just now) before this log is written
    /// over it: its entries first, then this tab's that it lacks.
    pub fn merge(&mut self, stored: &str, now_ms: u64) {
        if self.synced == *stored {
            return;
        }
        let own = std::mem::replace(self, SentLog::load(Some(stored), now_ms));
        for (hash, key, text) in &own.entries {
            if !self.contains(key) {
                self.entries.push((*hash, key.clone(), text.clone()));
            }
        }
        self.trim();
    }

    pub fn contains(&self, key: &str) -> bool {
        self.has(fnv64(key), key)
    }

    /// `hash`: `fnv64(key)`.
    fn has(&self, hash: u64, key: &str) -> bool {
        self.entries.iter().any(|(kh, k, _)| *kh == hash && k == key)
    }

    /// Records `key`; returns false (and changes nothing) when it was already there.
    pub fn insert(&mut self, key: String, now_ms: u64) -> bool {
        // The entry is made first, so the key is hashed once; a double (a reloaded page) is rare.
        let new = entry(key, now_ms);
        if self.has(new.0, &new.1) {
            return false;
        }
        self.entries.push(new);
        self.trim();
        true
    }

    /// Drops the oldest event id, else the oldest order id, until `MAX_ENTRIES` are left.
    fn trim(&mut self) {
        while self.entries.len() > MAX_ENTRIES {
            // A pattern, not `starts_with("e:")`, which called a comparison per entry: a full log
            // is trimmed on every Purchase, looking through up to 100 order ids.
            let oldest = self.entries.iter().position(|(_, key, _)| matches!(key.as_bytes(), [b'e', b':', ..])).unwrap_or(0);
            self.entries.remove(oldest);
        }
    }

    /// Joined from the entries' own text: it is rewritten on every Purchase, and a value tree of
    /// up to 100 entries to build and drop each time cost more than the Purchase's own mapping,
    /// writing each key again about as much as the rest of the Purchase's work after track().
    /// `to_json`, as the text storage will hold (see `synced`).
    pub fn to_stored(&mut self) -> String {
        self.synced = self.to_json();
        self.synced.clone()
    }

    pub fn to_json(&self) -> String {
        let mut w = W::new('[');
        for (_, _, text) in &self.entries {
            w.raw(text);
        }
        w.end(']')
    }
}

/// The key for a logical conversion: `o:` + order id, `e:` + site-supplied event id.
pub fn key(prefix: &str, id: &str) -> String {
    let mut key = String::from(prefix);
    key.push_str(id);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn round_trips_and_refuses_doubles() {
        let mut log = SentLog::load(None, NOW);
        assert!(log.insert(key("o:", "A-1"), NOW));
        assert!(!log.insert(key("o:", "A-1"), NOW + 1));
        let again = SentLog::load(Some(&log.to_json()), NOW + 1000);
        assert!(again.contains("o:A-1"));
        assert!(!again.contains("e:A-1"));
    }

    #[test]
    fn expires_and_bounds_entries() {
        let old = format!(r#"[["o:old",{}],["o:new",{}]]"#, NOW - MAX_AGE_MS - 1, NOW - 5);
        let log = SentLog::load(Some(&old), NOW);
        assert!(!log.contains("o:old") && log.contains("o:new"));
        let mut log = SentLog::default();
        for i in 0..(MAX_ENTRIES + 7) {
            log.insert(format!("o:{i}"), NOW);
        }
        assert_eq!(log.entries.len(), MAX_ENTRIES);
        assert!(!log.contains("o:0") && log.contains(&format!("o:{}", MAX_ENTRIES + 6)));
    }

    #[test]
    fn event_ids_go_before_order_ids_and_long_keys_round_trip() {
        let mut log = SentLog::default();
        let order = key("o:", &"注文".repeat(32));
        assert!(log.insert(order.clone(), NOW));
        for i in 0..MAX_ENTRIES {
            log.insert(format!("e:pv-{i}"), NOW + 1);
        }
        assert!(log.contains(&order), "an order id pushed out by event ids");
        assert!(!log.contains("e:pv-0") && log.contains(&format!("e:pv-{}", MAX_ENTRIES - 1)));
        let again = SentLog::load(Some(&log.to_json()), NOW + 2);
        assert!(again.contains(&order), "a 64-char non-ASCII order id is forgotten on reload");
        assert_eq!(again.entries.len(), MAX_ENTRIES);
    }

    #[test]
    fn merging_keeps_what_another_tab_stored() {
        let mut tab_a = SentLog::default();
        tab_a.insert(key("o:", "A-1"), NOW);
        let stored_by_a = tab_a.to_json();
        let mut tab_b = SentLog::default();
        tab_b.insert(key("o:", "B-2"), NOW + 1);
        tab_b.merge(&stored_by_a, NOW + 2);
        assert!(tab_b.contains("o:A-1") && tab_b.contains("o:B-2"));
        assert_eq!(tab_b.to_json(), format!(r#"[["o:A-1",{NOW}],["o:B-2",{}]]"#, NOW + 1));
        let written = tab_b.to_stored();
        tab_b.insert(key("o:", "B-3"), NOW + 3);
        tab_b.merge(&written, NOW + 3);
        assert!(tab_b.contains("o:B-3"), "storage holds what this tab wrote: nothing to take in");
        tab_b.merge("not json", NOW + 3);
        assert!(tab_b.contains("o:B-2"), "an unreadable stored log loses this tab's entries");
    }

    #[test]
    fn written_as_the_json_writer_would() {
        let mut log = SentLog::default();
        assert_eq!(log.to_json(), "[]");
        let entries = [(key("o:", "A\"1\u{2028}"), NOW), (key("e:", "b"), NOW + 1)];
        for (k, ts) in &entries {
            log.insert(k.clone(), *ts);
        }
        let tree = Value::Array(entries.iter().map(|(k, ts)| Value::Array(vec![Value::String(k.clone()), Value::Number(json::u64_text(*ts))])).collect());
        assert_eq!(log.to_json(), tree.to_json());
    }

    #[test]
    fn foreign_or_corrupt_storage_is_ignored() {
        for stored in ["", "{", "null", r#"{"a":1}"#, r#"[1,"x",[2,3],["o:x"],["o:y","12a"]]"#] {
            assert_eq!(SentLog::load(Some(stored), NOW).entries, SentLog::default().entries, "{stored}");
        }
    }
}
