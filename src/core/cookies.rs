//! First-party cookies: reading `document.cookie`, finding the registrable domain, rendering
//! `Set-Cookie` strings, and Meta's `_fbp` / `_fbc` formats.
//!
//! `_fbp` = `fb.{subdomainIndex}.{creationTime ms}.{random}`, `_fbc` =
//! `fb.{subdomainIndex}.{creationTime ms}.{fbclid}` (Meta, "fbp and fbc parameters"). Cookies
//! fbevents.js or Meta's parameter builder wrote (4 segments, or 5 with a trailing appendix) are
//! reused as they are: rewriting them would change the identifier Meta already knows.

use crate::core::json::{whole, write_u64};
use crate::core::text;

pub const FBP: &str = "_fbp";
pub const FBC: &str = "_fbc";
pub const CLIENT_ID: &str = "_tandem_cid";
/// Meta's 90 days for `_fbp` / `_fbc`.
pub const FB_MAX_AGE_S: u64 = 90 * 24 * 3600;
/// Chrome caps cookie lifetimes at 400 days, so asking for more only differs between browsers.
pub const CLIENT_ID_MAX_AGE_S: u64 = 400 * 24 * 3600;
/// Meta's parameter builder ignores longer click IDs.
pub const FBCLID_CAP: usize = 500;

/// `name=value` pairs of a `document.cookie` string, in order. Junk without `=` is skipped;
/// values are kept raw (no decoding): the tag only reads cookies whose values need none.
fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    text::split(header, ";").filter_map(|part| {
        let (name, value) = text::split_once(part, "=")?;
        let name = text::trim(name);
        let value = text::trim(value);
        let value = text::unwrap(value, b'"', b'"');
        if name.is_empty() {
            None
        } else {
            Some((name, value))
        }
    })
}

/// All cookies of a `document.cookie` string, in order (see `pairs`).
pub fn parse_cookie_header(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (n, v) in pairs(header) {
        out.push((n.to_string(), v.to_string()));
    }
    out
}

/// The first cookie called `name`; browsers list the most specific path first.
/// A loop of its own, not `pairs(..).find(..)`, which linked the filter_map closure out of line
/// for this alone; it reads a pair's value only once its name matches.
pub fn get<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    for part in text::split(header, ";") {
        let Some((n, value)) = text::split_once(part, "=") else { continue };
        let n = text::trim(n);
        if !n.is_empty() && n == name {
            return Some(text::unwrap(text::trim(value), b'"', b'"'));
        }
    }
    None
}

/// Hosts that cannot take a `Domain=` attribute: IP addresses and single-label names.
pub fn is_ip_or_local(host: &str) -> bool {
    let is_ipv4 = text::occurrences(host, b'.') == 3 && text::split(host, ".").all(|p| !p.is_empty() && text::all(p, |b| b.is_ascii_digit()));
    matches!(host.as_bytes(), [b'[', ..]) || text::contains(host, ":") || is_ipv4 || !text::contains(host, ".")
}

/// Candidate cookie domains, shortest first ("co.uk", "example.co.uk", …, the full host). The shell
/// sets a test cookie on each in turn; browsers refuse public suffixes, so the first that sticks
/// is the registrable domain, without shipping the public suffix list.
pub fn domain_candidates(host: &str) -> Vec<String> {
    let b = host.as_bytes();
    // An empty label (a dot at either end, or two together) makes no domain.
    if is_ip_or_local(host) || matches!(b, [b'.', ..] | [.., b'.']) || text::contains(host, "..") {
        return Vec::new();
    }
    // What follows each dot from the second-last one leftwards (the last two labels first), then
    // the host: built in order, where building it longest first and reversing linked a reverse.
    let mut out = Vec::new();
    let (mut i, mut dots) = (b.len(), 0);
    while i > 0 {
        i -= 1;
        if b[i] == b'.' {
            dots += 1;
            if dots > 1 {
                out.push(host.get(i + 1..).unwrap_or_default().to_string());
            }
        }
    }
    out.push(host.to_string());
    out
}

/// localStorage key under which the shell remembers the probe's answer for this host, so a page
/// of a site seen before sets no test cookie: setting one and reading it back costs two trips to
/// the browser's cookie store (1 to 8 ms measured) on every page load.
pub const DOMAIN_KEY: &str = "tandem:domain";
/// How long a remembered answer is used: browsers ship the public suffix list with their
/// releases, so an answer can turn stale, and cookies set on a stale one would be refused.
const DOMAIN_MEMORY_MS: u64 = 7 * 24 * 3600 * 1000;

/// What `DOMAIN_KEY` holds: `<ms> <registrable domain>`. localStorage is the origin's own, so
/// the host is the one the record was written on.
pub fn domain_record(domain: &str, now_ms: u64) -> String {
    let mut record = String::new();
    write_u64(&mut record, now_ms);
    record.push(' ');
    record.push_str(domain);
    record
}

/// The registrable domain `record` remembers: at most `DOMAIN_MEMORY_MS` old and one of
/// `host`'s `domain_candidates` (what the probe can find); anything else, `None`, and the shell
/// probes again.
pub fn remembered_domain<'a>(record: &'a str, host: &str, now_ms: u64) -> Option<&'a str> {
    let (saved, domain) = text::split_once(record, " ")?;
    let age = now_ms.checked_sub(whole(saved)?)?;
    (age <= DOMAIN_MEMORY_MS && domain_candidates(host).iter().any(|c| c == domain)).then_some(domain)
}

/// Meta's subdomainIndex: the number of labels of the cookie's domain minus one (com=0,
/// example.com=1, www.example.com=2). For a host-only cookie the host is that domain; IPs and
/// localhost get 0 because they are not domain names (an IPv4 address is not "4 labels") and
/// Meta only uses the index to tell cookies apart, not to locate them.
pub fn subdomain_index(cookie_domain: Option<&str>, host: &str) -> u64 {
    match cookie_domain {
        Some(d) if !d.is_empty() => text::occurrences(text::trim_start(d, b'.'), b'.') as u64,
        _ if is_ip_or_local(host) => 0,
        _ => text::occurrences(host, b'.') as u64,
    }
}

/// RFC 6265 cookie-octet: what may appear in a value without quoting or encoding.
pub fn is_cookie_value(v: &str) -> bool {
    !v.is_empty() && text::all(v, cookie_byte)
}

/// RFC 6265's cookie-octet: printable ASCII but '"', ',', ';' and '\\'.
fn cookie_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A `document.cookie` assignment. Bytes a cookie value may not hold are left out, as a last
/// defence: callers only pass values that already passed `is_cookie_value`.
pub fn render_set_cookie(name: &str, value: &str, max_age_s: u64, domain: Option<&str>, secure: bool) -> String {
    let mut s = String::with_capacity(name.len() + value.len() + 64);
    s.push_str(name);
    s.push('=');
    // Bytes, not chars: every cookie-octet is ASCII, so no byte of a multi-byte char passes.
    for &b in value.as_bytes() {
        if cookie_byte(b) {
            s.push(char::from(b));
        }
    }
    s.push_str("; Max-Age=");
    write_u64(&mut s, max_age_s);
    s.push_str("; Path=/");
    if let Some(d) = domain.filter(|d| !d.is_empty() && text::all(d, |b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')) {
        s.push_str("; Domain=");
        s.push_str(d);
    }
    s.push_str("; SameSite=Lax");
    if secure {
        s.push_str("; Secure");
    }
    s
}

/// A parsed `_fbp` / `_fbc` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FbCookie<'a> {
    pub subdomain_index: u64,
    pub creation_ms: u64,
    /// The random number (`_fbp`) or the fbclid (`_fbc`).
    pub payload: &'a str,
    /// The optional 5th segment Meta's parameter builder appends.
    pub appendix: Option<&'a str>,
}

/// Parses `fb.{index}.{ms}.{payload}[.{appendix}]`; `None` for anything else.
pub fn parse_fb(value: &str) -> Option<FbCookie<'_>> {
    if !is_cookie_value(value) {
        return None;
    }
    let mut parts = text::split(value, ".");
    // Evaluated left to right: "fb", the index, the time, the payload, an optional appendix, no more.
    let (Some("fb"), Some(index), Some(ms), Some(payload), appendix, None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if payload.is_empty() || appendix.is_some_and(str::is_empty) {
        return None;
    }
    Some(FbCookie { subdomain_index: digits(index)?, creation_ms: digits(ms)?, payload, appendix })
}

/// A whole number of at most 19 digits (a time in ms, an index): the rule for the numbers in
/// cookies and in stored state (`attribution::ts_of`), written once.
pub(crate) fn digits(s: &str) -> Option<u64> {
    if s.len() <= 19 {
        whole(s)
    } else {
        None
    }
}

fn render_fb(index: u64, creation_ms: u64, payload: &str) -> String {
    let mut s = String::from("fb.");
    write_u64(&mut s, index);
    s.push('.');
    write_u64(&mut s, creation_ms);
    s.push('.');
    s.push_str(payload);
    s
}

/// A new `_fbp` value; `random` is a 31-bit number as fbevents.js uses.
pub fn new_fbp(index: u64, now_ms: u64, random: u32) -> String {
    let mut r = String::new();
    write_u64(&mut r, u64::from(random & 0x7FFF_FFFF));
    render_fb(index, now_ms, &r)
}

/// A `_fbp` / `_fbc` value Tandem made, moved to another subdomainIndex (see
/// `Tag::settle_domain`); anything else as it is.
pub fn with_subdomain_index(value: &str, index: u64) -> String {
    parse_fb(value).map_or_else(|| value.to_string(), |c| render_fb(index, c.creation_ms, c.payload))
}

/// What to do about `_fbc` given the cookie and the landing URL's fbclid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FbcDecision {
    /// Keep the current cookie (or the absence of one).
    Keep(Option<String>),
    /// Write this new value.
    Set(String),
}

/// Meta's rules: the same fbclid keeps the cookie (and its creation time); a different one makes
/// a new cookie with a new creation time; an fbclid over 500 chars, or one that cannot be stored
/// in a cookie unchanged, is ignored. The fbclid is never modified (it is case-sensitive).
pub fn decide_fbc(existing: Option<&str>, fbclid: Option<&str>, index: u64, now_ms: u64) -> FbcDecision {
    // The cookie parsed once: whether it is kept, and its fbclid, where the kept copy was parsed again.
    let current = existing.and_then(parse_fb);
    let usable = fbclid.filter(|c| c.len() <= FBCLID_CAP && is_cookie_value(c) && !text::contains(c, "."));
    match usable {
        Some(id) if !current.as_ref().is_some_and(|c| c.payload == id) => FbcDecision::Set(render_fb(index, now_ms, id)),
        _ => FbcDecision::Keep(existing.filter(|_| current.is_some()).map(str::to_string)),
    }
}

/// An existing `_fbp` worth keeping.
pub fn valid_fbp(existing: Option<&str>) -> Option<&str> {
    existing.filter(|v| parse_fb(v).is_some())
}

/// An existing `_tandem_cid` worth keeping.
pub fn valid_client_id(existing: Option<&str>) -> Option<&str> {
    existing.filter(|v| matches!(v.len(), 1..=64) && text::all(v, |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `digits` (which `attribution::ts_of` now reads stored times with) answers as both former
    /// forms, `whole(s).filter(|_| s.len() <= 19)` and ts_of's length guard before `whole`, on
    /// numbers of 0 to 21 digits around each power of ten and u64::MAX, and on non-digits.
    #[test]
    fn digits_is_both_former_rules() {
        let mut inputs: Vec<String> = ["", "-1", "1.5", "1e3", "+1", " 1", "0x1", "١"].map(String::from).to_vec();
        for len in 1..=21 {
            for first in ["0", "1", "9"] {
                for fill in ["0", "9"] {
                    inputs.push(String::from(first) + &fill.repeat(len - 1));
                }
            }
        }
        for n in [u64::MAX, u64::MAX - 1, 9_999_999_999_999_999_999, 10_000_000_000_000_000_000] {
            inputs.push(n.to_string());
            inputs.push(n.to_string() + "0");
        }
        for s in &inputs {
            let former = whole(s).filter(|_| s.len() <= 19);
            let ts_of_former = if s.len() <= 19 { whole(s) } else { None };
            assert_eq!(digits(s), former, "{s:?}");
            assert_eq!(digits(s), ts_of_former, "{s:?}");
            assert_eq!(crate::core::attribution::ts_of(Some(&crate::core::json::Value::Number(s.clone()))), former, "{s:?}");
        }
    }

    /// The byte walk keeps what the former char walk kept: each ASCII char that alone is a cookie
    /// value. Every string of up to 2 chars over all of ASCII and some multi-byte chars.
    #[test]
    fn set_cookie_value_matches_the_char_walk() {
        let former = |value: &str| {
            let mut s = String::new();
            for c in value.chars() {
                if c.is_ascii() && is_cookie_value(c.encode_utf8(&mut [0; 4])) {
                    s.push(c);
                }
            }
            s
        };
        let mut chars: Vec<char> = (0u8..0x80).map(char::from).collect();
        chars.extend(['\u{80}', '\u{a0}', 'é', '\u{2028}', '\u{ffff}', '😀']);
        let mut n = 0;
        for a in &chars {
            for b in &chars {
                for v in [String::new(), a.to_string(), format!("{a}{b}"), format!("{a}x{b}")] {
                    let s = render_set_cookie("n", &v, 1, None, false);
                    assert_eq!(s, format!("n={}; Max-Age=1; Path=/; SameSite=Lax", former(&v)), "{v:?}");
                    n += 1;
                }
            }
        }
        assert!(n > 70_000);
    }

    /// Every header of up to 4 pieces from names, values, separators and junk, against the pairs.
    #[test]
    fn get_matches_the_first_pair_named() {
        let pieces = ["a", "b", "=", ";", " ", "\"", "a=1", "b=\"2\"", "=x", " a = 3 ", "\u{a0}", "é"];
        let mut headers = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..4 {
            last = last.iter().flat_map(|h| pieces.map(|p| h.clone() + p)).collect();
            headers.extend(last.iter().cloned());
        }
        for h in &headers {
            for name in ["a", "b", "", "x", "é"] {
                assert_eq!(get(h, name), pairs(h).find(|(n, _)| *n == name).map(|(_, v)| v), "{h:?} {name:?}");
            }
        }
    }

    #[test]
    fn remembers_the_probed_domain_for_a_week() {
        const NOW: u64 = 1_700_000_000_000;
        const WEEK: u64 = 7 * 24 * 3600 * 1000;
        let record = domain_record("shop.co.uk", NOW);
        assert_eq!(record, "1700000000000 shop.co.uk");
        assert_eq!(remembered_domain(&record, "www.shop.co.uk", NOW), Some("shop.co.uk"));
        assert_eq!(remembered_domain(&record, "www.shop.co.uk", NOW + WEEK), Some("shop.co.uk"));
        assert_eq!(remembered_domain(&record, "shop.co.uk", NOW), Some("shop.co.uk"), "the host itself");
        for (record, host, now, why) in [
            (record.as_str(), "www.shop.co.uk", NOW + WEEK + 1, "older than a week"),
            (&record, "www.shop.co.uk", NOW - 1, "from the future (a clock set back)"),
            (&record, "www.other.co.uk", NOW, "not a parent of this host"),
            (&record, "hop.co.uk", NOW, "the host is a suffix of it"),
            ("1700000000000 uk", "www.shop.co.uk", NOW, "a single label"),
            ("1700000000000 hop.co.uk", "www.shop.co.uk", NOW, "a suffix, not a parent"),
            ("1700000000000 0.0.1", "127.0.0.1", NOW, "an IP host has no registrable domain"),
            ("1700000000000 localhost", "localhost", NOW, "nor has localhost"),
            ("x shop.co.uk", "www.shop.co.uk", NOW, "no time"),
            ("1700000000000", "www.shop.co.uk", NOW, "no domain"),
            ("1700000000000 ", "www.shop.co.uk", NOW, "an empty domain"),
            ("", "www.shop.co.uk", NOW, "empty"),
        ] {
            assert_eq!(remembered_domain(record, host, now), None, "{why}: {record:?} on {host}");
        }
        // Only the browser knows that "co.uk" is a public suffix, so a record naming it passes.
        // The probe never stores one (the browser refuses the test cookie there), and cookies set
        // on it would be refused, not misplaced.
        assert_eq!(remembered_domain("1700000000000 co.uk", "www.shop.co.uk", NOW), Some("co.uk"));
    }

    #[test]
    fn parses_headers() {
        let h = " a=1; ; junk;b = two ; _fbp=fb.1.2.3;c=\"q\";=x; a=dup";
        let all = parse_cookie_header(h);
        let all: Vec<(&str, &str)> = all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(all, vec![("a", "1"), ("b", "two"), ("_fbp", "fb.1.2.3"), ("c", "q"), ("a", "dup")]);
        // The shell's probe: comparing names with a &str works on the owned pairs.
        assert!(parse_cookie_header(h).iter().any(|(name, _)| name == "_fbp"));
        assert_eq!(get(h, "a"), Some("1"));
        assert_eq!(get(h, "zz"), None);
        assert_eq!(get("", "a"), None);
    }

    #[test]
    fn domain_candidate_lists() {
        let check = |host: &str, want: &[&str]| assert_eq!(domain_candidates(host), want, "{host}");
        check("a.b.example.co.uk", &["co.uk", "example.co.uk", "b.example.co.uk", "a.b.example.co.uk"]);
        check("www.example.com", &["example.com", "www.example.com"]);
        check("example.com", &["example.com"]);
        check("localhost", &[]);
        check("127.0.0.1", &[]);
        check("[::1]", &[]);
        check("fe80::1", &[]);
        check("a..b", &[]);
    }

    /// Against the former builder (each parent after a dot of the one before, reversed) for every
    /// host of up to 7 bytes over two letters, a digit and dots.
    #[test]
    fn domain_candidates_match_the_former_builder() {
        let former = |host: &str| -> Vec<String> {
            if is_ip_or_local(host) || host.split('.').any(str::is_empty) {
                return Vec::new();
            }
            let mut out = vec![host.to_string()];
            let mut rest = host;
            while let Some((_, parent)) = rest.split_once('.') {
                if !parent.contains('.') {
                    break;
                }
                out.push(parent.to_string());
                rest = parent;
            }
            out.reverse();
            out
        };
        let mut last = vec![String::new()];
        for _ in 0..7 {
            last = last.iter().flat_map(|h| ["a", "b", "1", "."].map(|c| h.clone() + c)).collect();
            for h in &last {
                assert_eq!(domain_candidates(h), former(h), "{h:?}");
            }
        }
    }

    #[test]
    fn moves_a_made_value_to_another_subdomain_index() {
        assert_eq!(with_subdomain_index("fb.2.1700000000000.123", 1), "fb.1.1700000000000.123");
        assert_eq!(with_subdomain_index("fb.2.1700000000000.IwAR1", 0), "fb.0.1700000000000.IwAR1");
        assert_eq!(with_subdomain_index("not-fb", 1), "not-fb");
    }

    /// Against the label counts they replaced (`split(".").count()`), for every host of up to 7
    /// bytes over digits, a letter, dots and a colon.
    #[test]
    fn label_counts_match_split_counts() {
        let mut hosts = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..7 {
            last = last.iter().flat_map(|h| ["1", "a", ".", ":"].map(|c| h.clone() + c)).collect();
            hosts.extend(last.iter().cloned());
        }
        for h in &hosts {
            let is_ipv4 = h.split('.').count() == 4 && h.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let former_ip_or_local = h.starts_with('[') || h.contains(':') || is_ipv4 || !h.contains('.');
            assert_eq!(is_ip_or_local(h), former_ip_or_local, "{h:?}");
            let former_index = if former_ip_or_local { 0 } else { h.split('.').count() as u64 - 1 };
            assert_eq!(subdomain_index(None, h), former_index, "{h:?}");
            let trimmed = h.trim_start_matches('.');
            if !h.is_empty() {
                assert_eq!(subdomain_index(Some(h), "x"), trimmed.split('.').count() as u64 - 1, "{h:?}");
            }
        }
    }

    #[test]
    fn subdomain_indexes() {
        assert_eq!(subdomain_index(Some("com"), "x"), 0);
        assert_eq!(subdomain_index(Some("example.com"), "www.example.com"), 1);
        assert_eq!(subdomain_index(Some(".example.com"), "www.example.com"), 1);
        assert_eq!(subdomain_index(Some("www.example.com"), "www.example.com"), 2);
        assert_eq!(subdomain_index(None, "shop.example.com"), 2);
        assert_eq!(subdomain_index(None, "localhost"), 0);
        assert_eq!(subdomain_index(None, "192.168.0.1"), 0);
        assert_eq!(subdomain_index(None, "[::1]"), 0);
    }

    #[test]
    fn renders_cookies() {
        assert_eq!(
            render_set_cookie("_fbp", "fb.1.2.3", 7776000, Some("example.com"), true),
            "_fbp=fb.1.2.3; Max-Age=7776000; Path=/; Domain=example.com; SameSite=Lax; Secure"
        );
        assert_eq!(render_set_cookie("a", "b", 1, None, false), "a=b; Max-Age=1; Path=/; SameSite=Lax");
        // Injection attempts lose their dangerous bytes.
        assert_eq!(
            render_set_cookie("a", "x; Domain=evil.com", 1, Some("bad;domain"), false),
            "a=xDomain=evil.com; Max-Age=1; Path=/; SameSite=Lax"
        );
    }

    #[test]
    fn fb_cookie_formats() {
        let four = parse_fb("fb.1.1596403881668.1116446470").unwrap();
        assert_eq!((four.subdomain_index, four.creation_ms, four.payload, four.appendix), (1, 1596403881668, "1116446470", None));
        let five = parse_fb("fb.2.1700000000000.IwAR2xyz.AQ").unwrap();
        assert_eq!((five.payload, five.appendix), ("IwAR2xyz", Some("AQ")));
        for bad in ["", "fb", "fb.1.2", "fb.1.2.", "fb.x.2.3", "fb.1.-2.3", "gb.1.2.3", "fb.1.2.3.4.5", "fb.1.2.3.", "fb.1.2.3 4"] {
            assert_eq!(parse_fb(bad), None, "{bad}");
        }
        assert_eq!(new_fbp(1, 1700000000000, 0xFFFF_FFFF), "fb.1.1700000000000.2147483647");
        assert!(parse_fb(&new_fbp(0, 1, 5)).is_some());
    }

    #[test]
    fn fbc_decisions() {
        let now = 1_700_000_000_000;
        let old = "fb.1.1600000000000.AbC";
        // No cookie, new fbclid: set.
        assert_eq!(decide_fbc(None, Some("AbC"), 1, now), FbcDecision::Set("fb.1.1700000000000.AbC".into()));
        // Same fbclid: keep the original creation time.
        assert_eq!(decide_fbc(Some(old), Some("AbC"), 1, now), FbcDecision::Keep(Some(old.into())));
        // Five-segment cookie with the same fbclid: kept.
        assert_eq!(decide_fbc(Some("fb.1.1600000000000.AbC.AQ"), Some("AbC"), 1, now), FbcDecision::Keep(Some("fb.1.1600000000000.AbC.AQ".into())));
        // Different fbclid (case-sensitive): new cookie, new time.
        assert_eq!(decide_fbc(Some(old), Some("abc"), 1, now), FbcDecision::Set("fb.1.1700000000000.abc".into()));
        // Too long: ignored.
        let long = "x".repeat(501);
        assert_eq!(decide_fbc(Some(old), Some(&long), 1, now), FbcDecision::Keep(Some(old.into())));
        assert!(matches!(decide_fbc(None, Some(&"x".repeat(500)), 1, now), FbcDecision::Set(_)));
        // Not storable unchanged: ignored, never rewritten.
        assert_eq!(decide_fbc(None, Some("a b"), 1, now), FbcDecision::Keep(None));
        // No fbclid: keep a valid cookie, drop a corrupt one.
        assert_eq!(decide_fbc(Some(old), None, 1, now), FbcDecision::Keep(Some(old.into())));
        assert_eq!(decide_fbc(Some("garbage"), None, 1, now), FbcDecision::Keep(None));
    }

    #[test]
    fn client_ids() {
        assert_eq!(valid_client_id(Some("abcDEF012-_")), Some("abcDEF012-_"));
        assert_eq!(valid_client_id(Some("")), None);
        assert_eq!(valid_client_id(Some("a b")), None);
        assert_eq!(valid_client_id(Some(&"a".repeat(65))), None);
        assert_eq!(valid_fbp(Some("fb.1.2.3")), Some("fb.1.2.3"));
        assert_eq!(valid_fbp(Some("fb.1.2")), None);
    }
}
