//! Identifiers: UUID v4 event ids, the anonymous client id, and validation of a site's own
//! `options.eventId`.
//!
//! The event_id is the one id every destination shares (fbq eventID, gtag event_id / Ads
//! transaction_id fallback, ttq event_id, the endpoint), so it must be acceptable to all of them.

use crate::core::error::TagError;
use crate::core::json::{is_number_literal, Value};
use crate::core::text;

crate::messages! {
    EVENT_ID_KIND = "d0" "options.eventId must be a string or an integer, got ";
    EVENT_ID_CHARS = "d1" "options.eventId must be 1 to 64 characters of A-Z a-z 0-9 _ . : - (it is also used as Google's transaction_id, which is limited to 64)";
}

/// The track option keys that name the event's id: ours, fbq's and ttq's spelling, one space
/// apart (for `text::listed`, the membership test the other key lists use).
pub const EVENT_ID_OPTIONS: &str = "eventId eventID event_id";

/// Google's transaction_id limit, which the event id may be used as.
pub const EVENT_ID_MAX: usize = 64;

/// A lowercase, dashed UUID v4 from 16 random bytes (version and variant bits set).
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 15)]));
    }
    s
}

/// A Purchase's event_id when the site gave none: `o-` and its order id (hashed when it does not
/// fit an event id), the same on every call. A reloaded thank-you page whose sent log was not kept
/// (ad_storage denied, storage cleared, another browser profile) then sends the same id again,
/// which every platform and the endpoint deduplicate; and a backend can compute it from the order.
pub fn order_event_id(order: &str) -> String {
    let mut id = String::from("o-");
    if order.len() <= EVENT_ID_MAX - 2 && text::all(order, is_id_byte) {
        id.push_str(order);
    } else {
        id.push_str(&base64url(&fnv64(order).to_be_bytes()));
    }
    id
}

/// Unpadded base64url of `bytes`: 16 bytes give the 22-char client id.
pub fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(bytes.len() * 4 / 3 + 3);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            s.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    s
}

/// Event ids already sent by this instance, to send the same id once: sorted 64-bit FNV-1a
/// hashes (`fnv64`), so a page that tracks thousands of events neither allocates nor compares
/// strings for each. Two ids of one page share a hash with a chance of about n²/2⁶⁵ (10⁻¹³ for
/// 1,000 events).
#[derive(Debug, Default)]
pub struct SentIds(Vec<u64>);

impl SentIds {
    pub fn contains(&self, hash: u64) -> bool {
        self.search(hash).is_ok()
    }

    /// Records `hash`; false when it was already there.
    pub fn insert(&mut self, hash: u64) -> bool {
        match self.search(hash) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, hash);
                true
            }
        }
    }

    /// `binary_search(&hash)` on the sorted hashes (which hold no duplicate, so the answer is the
    /// one std gives), as a loop of its own: std's was linked for this list alone.
    fn search(&self, hash: u64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.0.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(&h) = self.0.get(mid) else { break };
            if h == hash {
                return Ok(mid);
            }
            if h < hash {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Err(lo)
    }
}

/// FNV-1a, 64 bits: a few instructions a byte, and ids differing in one digit differ here.
pub(crate) fn fnv64(id: &str) -> u64 {
    fnv64_more(0xcbf2_9ce4_8422_2325, id)
}

/// `fnv64` of a text that starts with the one hashed to `hash` and goes on with `more`: the hash
/// of `"<id> <name>"` without writing that text (see `Tag::send_valid`).
pub(crate) fn fnv64_more(hash: u64, more: &str) -> u64 {
    more.bytes().fold(hash, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The id alphabet is ASCII, so a byte test does what a char test did: a byte of a multi-byte
/// char is never in it. `text::all` over bytes is shared; `Chars::all` was linked for this alone.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

/// A site-supplied event id: a string or an integer, 1..=64 of `[A-Za-z0-9_.:-]`.
pub fn validate_event_id(v: &Value) -> Result<String, TagError> {
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Number(n) if is_number_literal(n) && text::find_any(n, ".eE").is_none() => n.as_str(),
        other => {
            let mut m = String::from(EVENT_ID_KIND);
            m.push_str(other.kind());
            return Err(TagError::new("invalid_event_id", m, other.to_json()));
        }
    };
    if text.is_empty() || text.len() > EVENT_ID_MAX || !text::all(text, is_id_byte) {
        return Err(TagError::new(
            "invalid_event_id",
            EVENT_ID_CHARS,
            text,
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `search` answers as std's binary_search on every sorted list of distinct even hashes of up
    /// to 40 (from 0 and from near u64::MAX), for every hash in and around them; `insert` keeps
    /// the list sorted and `contains` agrees with it.
    #[test]
    fn search_is_std_binary_search() {
        for base in [0u64, u64::MAX - 100] {
            for n in 0..=40u64 {
                let ids = SentIds((0..n).map(|i| base + 2 * i).collect());
                for q in base..=base + 2 * n + 1 {
                    assert_eq!(ids.search(q), ids.0.binary_search(&q), "{n} {q}");
                    assert_eq!(ids.contains(q), ids.0.contains(&q));
                }
            }
        }
        let mut ids = SentIds::default();
        let mut h = 7u64;
        for _ in 0..2000 {
            h = h.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let q = h >> 54;
            let was = ids.0.contains(&q);
            assert_eq!(ids.insert(q), !was);
            assert!(ids.contains(q) && ids.0.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn order_event_ids_are_stable_and_valid() {
        assert_eq!(order_event_id("A-1001"), "o-A-1001");
        let long = "9".repeat(63);
        for order in ["注文 1001", "a b", long.as_str(), "x/y"] {
            let id = order_event_id(order);
            assert_eq!(id, order_event_id(order), "{order}");
            assert!(validate_event_id(&Value::String(id.clone())).is_ok(), "{order} -> {id}");
            assert_eq!(id.len(), 13, "{order} -> {id}");
        }
        assert_ne!(order_event_id("a b"), order_event_id("a c"));
        assert!(validate_event_id(&Value::String(order_event_id(&"9".repeat(62)))).is_ok());
    }

    #[test]
    fn uuids() {
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4([0xFF; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = uuid_v4(*b"0123456789abcdef");
        assert_eq!(u.len(), 36);
        assert!(validate_event_id(&Value::String(u)).is_ok());
    }

    #[test]
    fn sent_ids_keep_each_id_once() {
        let mut sent = SentIds::default();
        let generated = uuid_v4(*b"0123456789abcdef");
        assert!(!sent.contains(fnv64(&generated)));
        assert!(sent.insert(fnv64(&generated)));
        assert!(sent.contains(fnv64(&generated)));
        assert!(!sent.insert(fnv64(&generated)), "the same UUID twice");
        // Event ids are case-sensitive at every platform: the uppercase text is another id.
        let upper = generated.to_uppercase();
        assert!(!sent.contains(fnv64(&upper)));
        assert!(sent.insert(fnv64(&upper)));
        assert!(!sent.insert(fnv64(&upper)));
        for other in ["order-1001", "12345", "0123456789abcdef0123456789abcdef0123", "01234567-89ab-cdef-0123-456789abcdeg", "01234567089ab-cdef-0123-456789abcdef"] {
            assert!(!sent.contains(fnv64(other)), "{other}");
            assert!(sent.insert(fnv64(other)), "{other}");
            assert!(sent.contains(fnv64(other)), "{other}");
            assert!(!sent.insert(fnv64(other)), "{other}");
        }
        // Ids a shop numbers in sequence differ in a digit or two: none is taken for another.
        for n in 0..5_000 {
            assert!(sent.insert(fnv64(&format!("A-{n}"))), "A-{n}");
        }
        // Many random UUIDs, out of order: each found once, none confused with another.
        let mut seed = 7u64;
        let ids: Vec<String> = (0..500)
            .map(|_| {
                let mut b = [0u8; 16];
                for x in &mut b {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    *x = (seed >> 56) as u8;
                }
                uuid_v4(b)
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(sent.insert(fnv64(id)), "{id}");
            assert!(ids[..=i].iter().all(|seen| sent.contains(fnv64(seen))));
            assert!(ids[i + 1..].iter().all(|later| !sent.contains(fnv64(later))));
        }
    }

    #[test]
    fn hashes_go_on_as_the_joined_text() {
        for (a, b) in [("", ""), ("o-A-1", " Purchase"), ("", "x"), ("x", ""), ("0123-abcd", " 注文")] {
            assert_eq!(fnv64_more(fnv64(a), b), fnv64(&(String::from(a) + b)), "{a:?} {b:?}");
        }
    }

    #[test]
    fn base64url_encoding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xFB, 0xFF]), "-_8");
        assert_eq!(base64url(&[7; 16]).len(), 22);
    }

    fn check(input: Value, expected: Result<&str, &str>) {
        match (validate_event_id(&input), expected) {
            (Ok(id), Ok(want)) => assert_eq!(id, want),
            (Err(e), Err(want)) => {
                assert_eq!(e.code, "invalid_event_id");
                assert!(e.message.contains(want), "{input:?}: {}", e.message);
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn event_ids() {
        let s = |x: &str| Value::String(x.to_string());
        let n = |x: &str| Value::Number(x.to_string());
        check(s("order-1001:a_b.c"), Ok("order-1001:a_b.c"));
        check(n("12345"), Ok("12345"));
        check(s(&"a".repeat(64)), Ok(&"a".repeat(64)));
        check(s(&"a".repeat(65)), Err("limited to 64"));
        check(s(""), Err("1 to 64"));
        check(s("has space"), Err("A-Z"));
        check(s("é"), Err("A-Z"));
        check(n("1.5"), Err("integer, got a number"));
        check(Value::Null, Err("got null"));
        check(Value::Bool(true), Err("got a boolean"));
        check(Value::Object(vec![]), Err("got an object"));
        check(Value::Invalid("symbol".into()), Err("unreadable"));
    }
}
