//! Just enough URL handling for a tag: the query parameters of the landing URL (click IDs, UTMs),
//! the host (cookie domains) and resolving a relative endpoint against the page.
//!
//! Landing URLs are written by ad platforms, link shorteners and people, so nothing here fails:
//! a parameter that cannot be decoded is dropped, the rest are kept.

use crate::core::json::truncate_utf8;
use crate::core::text;

/// Decoded values are capped: click IDs are far shorter, and a megabyte query string must not
/// be copied into storage and every payload. A value is decoded to at most one byte more, so a
/// caller can tell a value over the cap (a click ID, which is ignored then, never cut).
pub const VALUE_CAP: usize = 500;
/// Only the first parameters are looked at, so a hostile query string costs bounded work.
pub const MAX_PARAMS: usize = 100;
/// Keys longer than this cannot be any parameter the tag reads.
const KEY_CAP: usize = 64;

/// Query parameters of `url`, decoded (`+` is a space). A key repeated keeps its first non-empty
/// value. Keys are case-sensitive (`ScCid` is Snapchat's spelling).
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let query = match text::split_once(text::before(url, "#"), "?") {
        Some((_, q)) => q,
        None => return Vec::new(),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for piece in text::split(query, "&").take(MAX_PARAMS) {
        let (raw_key, raw_value) = text::split_once(piece, "=").unwrap_or((piece, ""));
        if raw_key.is_empty() || raw_key.len() > KEY_CAP * 3 {
            continue;
        }
        // One at a time, the value only for a usable key: a match on both decoded at once moved
        // them as a pair and dropped whichever one came alone.
        let Some(key) = decode(raw_key, KEY_CAP).filter(|k| !k.is_empty()) else { continue };
        let Some(value) = decode(raw_value, VALUE_CAP + 1) else { continue };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) if existing.is_empty() => *existing = value,
            Some(_) => {}
            None => out.push((key, value)),
        }
    }
    out
}

/// The value of `key` among `params`, if present.
pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Percent-decodes `raw` (with `+` as space) up to about `cap` bytes of output. `None` when the
/// encoding is broken or the bytes are not UTF-8; a value cut by the cap is cut at a char boundary.
///
/// The UTF-8 check is done here, char by char as the bytes come, rather than by `String::from_utf8`
/// on the whole: std's validator is the only user of its kind in the wasm, and ten times the size.
fn decode(raw: &str, cap: usize) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len().min(cap + 4));
    // The char being decoded, its continuation bytes still due, and the range the next one must
    // be in (narrower after E0, ED, F0 and F4: no overlong forms, surrogates or values past U+10FFFF).
    let (mut ch, mut due, mut next) = (0u32, 0, 0x80..=0xBF);
    let (mut i, mut len) = (0, 0);
    // Decode a few bytes past the cap so a multi-byte char straddling it is seen whole.
    while i < b.len() && len < cap + 4 {
        let byte = match b.get(i) {
            Some(b'%') => {
                let hi = b.get(i + 1).and_then(|c| hex(*c))?;
                let lo = b.get(i + 2).and_then(|c| hex(*c))?;
                i += 3;
                hi * 16 + lo
            }
            Some(b'+') => {
                i += 1;
                b' '
            }
            Some(c) => {
                i += 1;
                *c
            }
            None => break,
        };
        len += 1;
        if due == 0 {
            (ch, due, next) = match byte {
                0..=0x7F => (u32::from(byte), 0, 0x80..=0xBF),
                0xC2..=0xDF => (u32::from(byte & 0x1F), 1, 0x80..=0xBF),
                0xE0 => (0, 2, 0xA0..=0xBF),
                0xED => (0xD, 2, 0x80..=0x9F),
                0xE1..=0xEF => (u32::from(byte & 0x0F), 2, 0x80..=0xBF),
                0xF0 => (0, 3, 0x90..=0xBF),
                0xF1..=0xF3 => (u32::from(byte & 0x07), 3, 0x80..=0xBF),
                0xF4 => (4, 3, 0x80..=0x8F),
                _ => return None,
            };
        } else if next.contains(&byte) {
            (ch, due, next) = (ch << 6 | u32::from(byte & 0x3F), due - 1, 0x80..=0xBF);
        } else {
            return None;
        }
        if due == 0 {
            out.push(char::from_u32(ch)?);
        }
    }
    // A char cut by the cap is dropped; one cut by the end of the value is broken.
    if due > 0 && i == b.len() {
        return None;
    }
    truncate_utf8(&mut out, cap);
    Some(out)
}

/// The value of a hex digit (either case).
pub(crate) fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `(scheme, authority)` of an absolute http(s) URL; the scheme is lowercased.
fn split_origin(url: &str) -> Option<(&'static str, &str)> {
    let (written, rest) = text::split_once(url, "://")?;
    // The scheme its length names, compared without case: no lowercased copy to allocate.
    let scheme = match written.len() {
        4 => "http",
        5 => "https",
        _ => return None,
    };
    if !written.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let end = text::find_any(rest, "/?#").unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if authority.is_empty() {
        return None;
    }
    Some((scheme, authority))
}

/// The host of an http(s) URL, lowercased, without user info, port or trailing dot. IPv6 hosts
/// keep their brackets (`[::1]`), which is what `cookies::domain_candidates` expects.
pub fn host(url: &str) -> Option<String> {
    let (_, authority) = split_origin(text::trim(url))?;
    let hostport = text::rsplit_once(authority, "@").map_or(authority, |(_, h)| h);
    // A first byte is tested with a slice pattern here and in `resolve`: starts_with of a
    // one-char &str called std's slice comparison for it.
    let host = if matches!(hostport.as_bytes(), [b'[', ..]) {
        let end = text::find(hostport, "]")?;
        hostport.get(..end + 1)?
    } else {
        text::before(hostport, ":")
    };
    let host = text::trim_end(host, b'.').to_ascii_lowercase();
    if host.is_empty() {
        None
    } else {
        Some(host)
    }
}

/// Resolves the configured endpoint against the page URL: absolute `http(s)://…`, protocol-relative
/// `//host/path`, root-relative `/path` and path-relative `path`. `None` for other schemes
/// (`javascript:`, `data:`) or when a relative endpoint meets a page URL that is not http(s).
pub fn resolve(base: &str, reference: &str) -> Option<String> {
    let reference = text::trim(reference);
    if reference.is_empty() || reference.chars().any(|c| c.is_control() || c == ' ' || c == '\\') {
        return None;
    }
    if split_origin(reference).is_some() {
        return Some(reference.to_string());
    }
    if text::contains(reference, "://") || has_scheme(reference) {
        return None;
    }
    let base = text::trim(base);
    let (scheme, authority) = split_origin(base)?;
    let mut out = String::from(scheme);
    if let Some(rest) = reference.strip_prefix("//") {
        if matches!(rest.as_bytes(), [] | [b'/', ..]) {
            return None;
        }
        out.push_str("://");
        out.push_str(rest);
        return Some(out);
    }
    out.push_str("://");
    out.push_str(authority);
    if matches!(reference.as_bytes(), [b'/', ..]) {
        out.push_str(reference);
        return Some(out);
    }
    // Path-relative: replace the last segment of the base path.
    let after_origin = text::split_once(base, "://").map_or("", |(_, r)| r);
    let path_and_more = after_origin.get(authority.len()..).unwrap_or("");
    let path = path_and_more.get(..text::find_any(path_and_more, "?#").unwrap_or(path_and_more.len())).unwrap_or("");
    let dir = match text::rfind(path, "/") {
        Some(i) => path.get(..i + 1).unwrap_or("/"),
        None => "/",
    };
    out.push_str(dir);
    out.push_str(reference);
    Some(out)
}

/// `javascript:`, `mailto:` … (an RFC 3986 scheme followed by ':' before any '/').
fn has_scheme(s: &str) -> bool {
    match text::find(s, ":") {
        Some(i) => {
            let scheme = s.get(..i).unwrap_or("");
            // ASCII only, so a byte test: no byte of a multi-byte char passes, nor a '/'.
            !scheme.is_empty() && text::all(scheme, |b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: &[(&str, &str)]) {
        let got = query_params(url);
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, expected, "url {url:?}");
    }

    #[test]
    fn query_parsing() {
        check("https://shop.example/p?gclid=abc&utm_source=news+letter#frag", &[("gclid", "abc"), ("utm_source", "news letter")]);
        check("https://shop.example/p", &[]);
        check("https://shop.example/p#a=b", &[]);
        check("https://shop.example/p?#a=b", &[]);
        check("https://shop.example/p?a=1#x?b=2", &[("a", "1")]);
        check("https://shop.example/?&&=&a", &[("a", "")]);
        check("https://shop.example/?a=%C3%A9%20x", &[("a", "é x")]);
        // Broken encodings drop only that value.
        check("https://shop.example/?a=%ZZ&b=1", &[("b", "1")]);
        check("https://shop.example/?a=%E0%A4%A&b=1", &[("b", "1")]);
        check("https://shop.example/?a=%E0%A4&b=2", &[("b", "2")]);
        check("https://shop.example/?a=%&b=3", &[("b", "3")]);
        check("https://shop.example/?a=%FF&b=4", &[("b", "4")]);
        check("https://shop.example/?%ZZ=1&b=5", &[("b", "5")]);
        // Repeated keys: first non-empty wins.
        check("https://shop.example/?a=1&a=2", &[("a", "1")]);
        check("https://shop.example/?a=&a=2&a=3", &[("a", "2")]);
        // Keys are case-sensitive.
        check("https://shop.example/?ScCid=1&sccid=2", &[("ScCid", "1"), ("sccid", "2")]);
        check("https://shop.example/?a=b=c", &[("a", "b=c")]);
    }

    #[test]
    fn huge_values_are_capped() {
        let url = String::from("https://shop.example/?fbclid=") + &"x".repeat(1 << 20) + "&b=1";
        let params = query_params(&url);
        assert_eq!(param(&params, "fbclid").map(str::len), Some(VALUE_CAP + 1));
        assert_eq!(param(&params, "b"), Some("1"));
        // A multi-byte character straddling the cap is cut whole.
        let url = String::from("https://shop.example/?a=") + &"x".repeat(VALUE_CAP) + &"%C3%A9".repeat(10);
        let params = query_params(&url);
        assert_eq!(param(&params, "a").map(str::len), Some(VALUE_CAP));
    }

    /// `decode` as it was written with `String::from_utf8`: the reference for the inline check.
    fn decode_with_std(raw: &str, cap: usize) -> Option<String> {
        let b = raw.as_bytes();
        let mut out: Vec<u8> = Vec::new();
        let mut i = 0;
        while i < b.len() && out.len() < cap + 4 {
            match b[i] {
                b'%' => {
                    out.push(hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?);
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                c => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        let mut s = match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) if i < b.len() && e.utf8_error().error_len().is_none() => {
                let valid = e.utf8_error().valid_up_to();
                String::from_utf8(e.into_bytes()[..valid].to_vec()).ok()?
            }
            Err(_) => return None,
        };
        truncate_utf8(&mut s, cap);
        Some(s)
    }

    #[test]
    fn decoding_agrees_with_std_utf8_validation() {
        // Every byte value as a lone escape and in two-byte pairs with a few leads, plus noise
        // around the cap.
        let mut cases: Vec<String> = (0..=255u32).map(|b| format!("%{b:02X}")).collect();
        for lead in [0xC2u32, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xC0] {
            for b in 0..=255u32 {
                cases.push(format!("%{lead:02X}%{b:02X}"));
                cases.push(format!("%{lead:02X}%{b:02X}%80"));
                cases.push(format!("%{lead:02X}%{b:02X}%BF%80"));
            }
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let pieces = ["%C3", "%A9", "%E2%82", "%AC", "%F0%9F", "%98%80", "%ED%A0%80", "%FF", "é", "a", "+", "%2", "%"];
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            cases.push(s);
        }
        for raw in &cases {
            for cap in [0, 1, 2, 3, 5, 8, 64] {
                assert_eq!(decode(raw, cap), decode_with_std(raw, cap), "{raw:?} cap {cap}");
            }
        }
    }

    #[test]
    fn param_count_is_bounded() {
        let mut url = String::from("https://shop.example/?");
        for _ in 0..MAX_PARAMS {
            url.push_str("x=1&");
        }
        url.push_str("late=1");
        assert_eq!(param(&query_params(&url), "late"), None);
    }

    #[test]
    fn hosts() {
        for (url, want) in [
            ("https://WWW.Shop.Example:8443/p?q", Some("www.shop.example")),
            ("http://user:pw@shop.example./", Some("shop.example")),
            ("https://[::1]:8080/", Some("[::1]")),
            ("https://127.0.0.1/", Some("127.0.0.1")),
            ("http://localhost:3000", Some("localhost")),
            ("https://shop.example?x=1", Some("shop.example")),
            ("file:///etc/passwd", None),
            ("not a url", None),
            ("https:///path", None),
        ] {
            assert_eq!(host(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn resolves_endpoints() {
        let base = "https://shop.example/a/b/page.html?x=1#y";
        for (reference, want) in [
            ("/collect", Some("https://shop.example/collect")),
            ("collect", Some("https://shop.example/a/b/collect")),
            ("//t.shop.example/c", Some("https://t.shop.example/c")),
            ("https://t.example/c", Some("https://t.example/c")),
            ("HTTP://t.example/c", Some("HTTP://t.example/c")),
            ("javascript:alert(1)", None),
            ("data:text/plain,x", None),
            ("ftp://t.example/c", None),
            ("", None),
            ("//", None),
            ("/a b", None),
        ] {
            assert_eq!(resolve(base, reference).as_deref(), want, "{reference}");
        }
        assert_eq!(resolve("https://shop.example", "c").as_deref(), Some("https://shop.example/c"));
        assert_eq!(resolve("about:blank", "/collect"), None);
        assert_eq!(resolve("about:blank", "https://t.example/c").as_deref(), Some("https://t.example/c"));
    }
}
