//! Searching and splitting strings on short ASCII delimiters, one byte at a time, and checking and
//! counting their bytes (`all`, `occurrences`), and stripping a pair of them (`unwrap`).
//!
//! Why not `str::find`, `split`, `split_once`, `contains` and `rsplit`: each kind of pattern (a
//! char, a `&str`, an array of chars, searching from either end) links its own std searcher
//! (two-way string search, memchr, reverse searchers and their split iterators), over 5 KB of
//! wasm between them, to look for a `?` or a `://` in strings of a few hundred bytes. These loops
//! are all the tag needs; they are the only string search the core and the shell use.
//!
//! Offsets are byte offsets. A match of a pattern that is valid UTF-8 (every `&str` is) starts
//! and ends on char boundaries, so slicing at them never fails.

/// `s` without its first and last byte when they are `open` and `close` (ASCII), else `s`: what
/// `strip_prefix(open).and_then(|s| s.strip_suffix(close))` does, without std's char patterns,
/// which encode the char as UTF-8 for each call.
pub fn unwrap(s: &str, open: u8, close: u8) -> &str {
    match s.as_bytes() {
        [first, .., last] if *first == open && *last == close => s.get(1..s.len() - 1).unwrap_or(s),
        _ => s,
    }
}

/// Offset of the first `pat` in `s` (`pat` non-empty).
pub fn find(s: &str, pat: &str) -> Option<usize> {
    let (s, p) = (s.as_bytes(), pat.as_bytes());
    let last = s.len().checked_sub(p.len())?;
    // Plain loops here and in `rfind`: a range's `find` and `rev().find` each linked their own
    // iterator helpers. A match is tested with starts_with, which compiles smaller than comparing
    // an Option of a subslice.
    let mut i = 0;
    while i <= last {
        if s.get(i..).is_some_and(|rest| rest.starts_with(p)) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Offset of the last `pat` in `s` (`pat` non-empty).
pub fn rfind(s: &str, pat: &str) -> Option<usize> {
    let (s, p) = (s.as_bytes(), pat.as_bytes());
    let mut i = s.len().checked_sub(p.len())?;
    loop {
        if s.get(i..).is_some_and(|rest| rest.starts_with(p)) {
            return Some(i);
        }
        i = i.checked_sub(1)?;
    }
}

pub fn contains(s: &str, pat: &str) -> bool {
    find(s, pat).is_some()
}

/// Offset of the first byte of `s` that is one of `set`'s (ASCII) bytes.
pub fn find_any(s: &str, set: &str) -> Option<usize> {
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if has(set, char::from(b)) {
            return Some(i);
        }
    }
    None
}

/// `c` is one of the chars of the ASCII string `set`.
pub fn has(set: &str, c: char) -> bool {
    for &b in set.as_bytes() {
        if char::from(b) == c {
            return true;
        }
    }
    false
}

fn cut(s: &str, at: usize, len: usize) -> Option<(&str, &str)> {
    Some((s.get(..at)?, s.get(at + len..)?))
}

/// `s` around its first `pat`: before and after.
pub fn split_once<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    cut(s, find(s, pat)?, pat.len())
}

/// `s` around its last `pat`: before and after.
pub fn rsplit_once<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    cut(s, rfind(s, pat)?, pat.len())
}

/// Every byte of `s` passes `ok`. One loop taking a fn pointer, where `s.bytes().all(…)` linked a
/// loop for each predicate.
#[inline(never)]
pub fn all(s: &str, ok: fn(u8) -> bool) -> bool {
    for &b in s.as_bytes() {
        if !ok(b) {
            return false;
        }
    }
    true
}

/// How many times the byte `b` occurs in `s` (`s.split(b).count() - 1` for an ASCII `b`).
pub fn occurrences(s: &str, b: u8) -> usize {
    let mut n = 0;
    for &c in s.as_bytes() {
        if c == b {
            n += 1;
        }
    }
    n
}

/// `s` up to its first `pat`, or all of it (`s.split(pat).next()`).
pub fn before<'a>(s: &'a str, pat: &str) -> &'a str {
    split_once(s, pat).map_or(s, |(head, _)| head)
}

/// JavaScript's `\s` and `String.prototype.trim` set: what pages and the platforms' SDKs trim.
pub fn is_js_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}')
}

/// `s.trim()` as JavaScript trims: the one trim in the wasm (std's `str::trim` would link Unicode's
/// White_Space table and a second copy of the trimming loop). It differs from std's only in
/// U+FEFF (trimmed here) and U+0085 (kept).
pub fn trim(s: &str) -> &str {
    // One forward walk noting where the first non-space char starts and the last one ends: a
    // second, backward walk (trim_matches' reverse char decoding, or stepping back to a char
    // boundary by hand) was more code for values of a few hundred bytes. All spaces: start past
    // end, so the empty slice.
    let (mut start, mut end) = (s.len(), 0);
    for (at, c) in s.char_indices() {
        if !is_js_space(c) {
            start = start.min(at);
            end = at + c.len_utf8();
        }
    }
    s.get(start..end).unwrap_or_default()
}

/// `s` with every leading `c` removed.
pub fn trim_start(s: &str, c: u8) -> &str {
    let mut start = 0;
    while s.as_bytes().get(start).is_some_and(|&b| b == c) {
        start += 1;
    }
    s.get(start..).unwrap_or_default()
}

/// `s` with every trailing `c` removed.
pub fn trim_end(s: &str, c: u8) -> &str {
    let mut end = s.len();
    while end > 0 && s.as_bytes().get(end - 1).is_some_and(|&b| b == c) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A fixed list of names kept as one space-separated text and where each name ends, for an enum's
/// names: a `match` from the enum to its `&str`s compiled to two tables of 4-byte pointers and
/// lengths, which compressed worse than the names themselves. The ends are found at compile time.
pub struct Names<const N: usize> {
    text: &'static str,
    ends: [u8; N],
}

impl<const N: usize> Names<N> {
    /// `text`: exactly N names, one space between each (the build fails otherwise).
    pub const fn new(text: &'static str) -> Self {
        let (bytes, mut ends, mut found, mut at) = (text.as_bytes(), [0; N], 0, 0);
        assert!(bytes.len() < 256, "Names: the text must be under 256 bytes");
        while at <= bytes.len() {
            if at == bytes.len() || bytes[at] == b' ' {
                assert!(found < N, "Names: more names than N");
                ends[found] = at as u8;
                found += 1;
            }
            at += 1;
        }
        assert!(found == N, "Names: fewer names than N");
        Names { text, ends }
    }

    /// The `index`-th name (`index` < N: an enum's discriminant).
    pub fn get(&self, index: usize) -> &'static str {
        let start = if index == 0 { 0 } else { self.ends[index - 1] as usize + 1 };
        self.text.get(start..self.ends[index] as usize).unwrap_or_default()
    }
}

/// The pieces of `s` between its `sep`s (`str::split` with a non-empty `&str` pattern).
pub fn split<'a>(s: &'a str, sep: &'a str) -> Split<'a> {
    Split { rest: Some(s), sep }
}

/// Whether `name` is one of the items of `list`, items `sep` apart (a list kept as one text: see
/// `Names`). An empty name never is, so an empty list holds nothing.
pub fn listed(list: &str, sep: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    for item in split(list, sep) {
        if item == name {
            return true;
        }
    }
    false
}

pub struct Split<'a> {
    rest: Option<&'a str>,
    sep: &'a str,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let (piece, tail) = split_once(rest, self.sep).map_or((rest, None), |(piece, tail)| (piece, Some(tail)));
        self.rest = tail;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAYSTACKS: &[&str] = &["", "a", "ab", "a.b", ".a.", "..", "a..b.c", "é.ü", "https://x.example/p?q#f", "://", "aaa", "a-b--c"];

    #[test]
    fn unwrap_matches_std_strips() {
        for s in ["", "\"", "\"\"", "\"a\"", "\"a", "a\"", "[]", "[", "]", "[1,\"x\"]", "[é]", "é", "\"é\"", "x[a]"] {
            for (open, close) in [('"', '"'), ('[', ']')] {
                let want = s.strip_prefix(open).and_then(|v| v.strip_suffix(close)).unwrap_or(s);
                assert_eq!(unwrap(s, open as u8, close as u8), want, "{s:?}");
            }
        }
    }
    const PATTERNS: &[&str] = &[".", "..", "://", "a", "aa", "ü", "#", "--", "x.example/p?q#f!"];

    #[test]
    fn listed_finds_whole_items_only() {
        for (list, sep, name, want) in [
            ("a bc d", " ", "bc", true),
            ("a bc d", " ", "a", true),
            ("a bc d", " ", "d", true),
            ("a bc d", " ", "b", false),
            ("a bc d", " ", "a bc", false),
            ("a bc d", " ", "", false),
            ("", " ", "", false),
            ("x, y", ", ", "y", true),
            ("x, y", ", ", " y", false),
        ] {
            assert_eq!(listed(list, sep, name), want, "{name:?} in {list:?}");
        }
    }

    /// Every string of up to 5 chars from a mix of 1- to 3-byte spaces and non-spaces.
    #[test]
    fn trim_agrees_with_trim_matches_exhaustively() {
        let alphabet = [" ", "a", "\u{a0}", "é", "\u{3000}", "\u{feff}", "\u{85}", "\u{2028}x"];
        let mut strings = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..5 {
            last = last.iter().flat_map(|s| alphabet.map(|c| s.clone() + c)).collect();
            strings.extend(last.iter().cloned());
        }
        for s in &strings {
            assert_eq!(trim(s), s.trim_matches(is_js_space), "{s:?}");
        }
    }

    #[test]
    fn trims_as_javascript() {
        assert_eq!(trim(" \t\n\u{a0}\u{3000}a b\u{2028}\u{feff}\r"), "a b");
        assert_eq!(trim("\u{85}x\u{85}"), "\u{85}x\u{85}", "NEL is not JavaScript whitespace");
        assert_eq!(trim(""), "");
        assert_eq!(trim("  "), "");
        // Everywhere else it agrees with std's (Unicode White_Space) trim.
        for c in (0..0x3001u32).filter_map(char::from_u32).filter(|&c| c != '\u{85}') {
            assert_eq!(is_js_space(c), c.is_whitespace(), "{c:?}");
        }
    }

    /// Every string of up to 6 bytes over a small alphabet: searched for every pattern of 1 to 3
    /// and for sets of bytes, and trimmed of either letter.
    #[test]
    fn searches_agree_with_std_exhaustively() {
        fn all_strings(max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut last = vec![String::new()];
            for _ in 0..max {
                last = last.iter().flat_map(|s| ["a", "b", "."].map(|c| s.clone() + c)).collect();
                out.extend(last.iter().cloned());
            }
            out
        }
        let patterns: Vec<String> = all_strings(3).into_iter().filter(|p| !p.is_empty()).collect();
        for s in all_strings(6) {
            for p in &patterns {
                assert_eq!(find(&s, p), s.find(p.as_str()), "find {s:?} {p:?}");
                assert_eq!(rfind(&s, p), s.rfind(p.as_str()), "rfind {s:?} {p:?}");
            }
            for set in ["", "a", ".b", "?#/"] {
                let chars: Vec<char> = set.chars().collect();
                assert_eq!(find_any(&s, set), s.find(chars.as_slice()), "find_any {s:?} {set:?}");
            }
            assert_eq!(all(&s, |b| b != b'.'), !s.contains('.'), "all {s:?}");
            assert_eq!(occurrences(&s, b'.'), s.split('.').count() - 1, "occurrences {s:?}");
            for c in [b'a', b'.'] {
                assert_eq!(trim_start(&s, c), s.trim_start_matches(char::from(c)), "trim_start {s:?} {c}");
                assert_eq!(trim_end(&s, c), s.trim_end_matches(char::from(c)), "trim_end {s:?} {c}");
            }
        }
    }

    #[test]
    fn agrees_with_std() {
        for s in HAYSTACKS {
            for p in PATTERNS {
                assert_eq!(find(s, p), s.find(p), "find {s:?} {p:?}");
                assert_eq!(rfind(s, p), s.rfind(p), "rfind {s:?} {p:?}");
                assert_eq!(contains(s, p), s.contains(p));
                assert_eq!(split_once(s, p), s.split_once(p), "split_once {s:?} {p:?}");
                assert_eq!(rsplit_once(s, p), s.rsplit_once(p), "rsplit_once {s:?} {p:?}");
                assert_eq!(before(s, p), s.split(p).next().unwrap(), "before {s:?} {p:?}");
                assert_eq!(split(s, p).collect::<Vec<_>>(), s.split(p).collect::<Vec<_>>(), "split {s:?} {p:?}");
            }
            assert_eq!(find_any(s, "?#/"), s.find(['?', '#', '/']), "find_any {s:?}");
            assert_eq!(trim_start(s, b'.'), s.trim_start_matches('.'));
            assert_eq!(trim_end(s, b'.'), s.trim_end_matches('.'));
            assert_eq!(trim_end(s, b'a'), s.trim_end_matches('a'));
        }
        assert!(has("()-.", '-') && !has("()-.", 'a') && !has("", 'a'));
        for c in (0..0x300u32).filter_map(char::from_u32) {
            for set in ["", "()-.", "-@#<>'\",; ()+./"] {
                assert_eq!(has(set, c), set.contains(c), "{c:?} in {set:?}");
            }
        }
        for s in HAYSTACKS {
            assert_eq!(find(s, ""), s.find(""));
            assert_eq!(rfind(s, ""), s.rfind(""));
        }
    }
}
