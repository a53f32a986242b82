//! A small JSON value, parser and writer.
//!
//! Why not serde_json: every byte of wasm is downloaded by every visitor, and the tag only needs a
//! tree it can validate and a writer for payloads. Numbers keep their source text (`Number(String)`)
//! so the tag never needs Rust's float formatting machinery, and so `12.50` reaches the pixels as
//! the page wrote it.
//!
//! The loader's sanitizer encodes values it could not read (a circular reference, a getter that
//! threw, a Symbol, a BigInt, NaN) as an object with the single key `INVALID_MARKER`, whose string
//! value says why; the parser turns that into `Value::Invalid(reason)` so the core can name the
//! field in its error.

crate::messages! {
    KIND_BOOLEAN = "u0" "a boolean";
    KIND_NUMBER = "u1" "a number";
    KIND_STRING = "u2" "a string";
    KIND_ARRAY = "u3" "an array";
    KIND_OBJECT = "u4" "an object";
    KIND_UNREADABLE = "u5" "an unreadable value";
}

/// Key the loader uses to mark an unreadable JS value; see the module docs.
pub const INVALID_MARKER: &str = "\u{0}tandem_invalid";

// Clone only in tests: the tag never copies a tree (custom parameters are kept as their JSON
// text), so the wasm carries no copy routine for it.
#[cfg_attr(test, derive(Clone))]
#[derive(Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A JSON number literal exactly as written (validated syntax).
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Keys in input order; later duplicates replace earlier ones on lookup via `get`.
    Object(Vec<(String, Value)>),
    /// A value the loader could not read, with the reason.
    Invalid(String),
}

/// Nesting deeper than this is refused: page data is never that deep, and a bound keeps the
/// recursive parser's stack use small whatever a page passes in.
pub const MAX_DEPTH: usize = 32;

impl Value {
    /// Member `key` of an object; the last duplicate wins, as in `JSON.parse`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            // A loop from the end, where rev().find(..).map(..) linked adaptor code for this lookup.
            Value::Object(members) => {
                for (k, v) in members.iter().rev() {
                    if k == key {
                        return Some(v);
                    }
                }
                None
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages ("expected a string, got a number").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => KIND_BOOLEAN,
            Value::Number(_) => KIND_NUMBER,
            Value::String(_) => KIND_STRING,
            Value::Array(_) => KIND_ARRAY,
            Value::Object(_) => KIND_OBJECT,
            Value::Invalid(_) => KIND_UNREADABLE,
        }
    }

    /// True when an `Invalid` hides anywhere inside (custom params are checked with this).
    pub fn contains_invalid(&self) -> bool {
        match self {
            Value::Invalid(_) => true,
            Value::Array(items) => items.iter().any(Value::contains_invalid),
            Value::Object(members) => members.iter().any(|(_, v)| v.contains_invalid()),
            _ => false,
        }
    }

    /// Compact JSON text. `Invalid` is written as `null` (callers drop it before writing).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self);
        out
    }
}

/// Text that is not JSON. No caller shows why: the loader only ever writes valid JSON, and
/// unreadable storage is ignored by design. So the reason and its position exist only in the
/// crate's own tests, and the wasm carries none of the parser's messages.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    #[cfg(test)]
    reason: &'static str,
    #[cfg(test)]
    at: usize,
}

/// Parses strict JSON (RFC 8259). Never panics; nesting is limited to `MAX_DEPTH`.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser { s: text, b: text.as_bytes(), i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    /// The text, for slicing out runs as `&str` (cut at ASCII bytes, so on char boundaries) without
    /// validating them as UTF-8 again; `b` is the same text as bytes.
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        #[cfg(not(test))]
        let _ = what;
        ParseError {
            #[cfg(test)]
            reason: what,
            #[cfg(test)]
            at: self.i,
        }
    }

    // Inlined: called out of line, its Option<u8> went back through memory at every byte.
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.b.get(self.i..self.i + lit.len()) == Some(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.err("unexpected end of JSON")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) if self.eat("true") => Ok(Value::Bool(true)),
            Some(_) if self.eat("false") => Ok(Value::Bool(false)),
            Some(_) if self.eat("null") => Ok(Value::Null),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(Vec::new()));
        }
        // Sized for a typical event object: growing from empty reallocated (and copied) it twice.
        let mut members = Vec::with_capacity(8);
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(":") {
                return Err(self.err("expected ':'"));
            }
            self.ws();
            let v = self.value(depth)?;
            members.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        // The loader's marker for a JS value it could not read (see module docs).
        if let [(k, Value::String(reason))] = members.as_slice() {
            if k == INVALID_MARKER {
                return Ok(Value::Invalid(reason.clone()));
            }
        }
        Ok(Value::Object(members))
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(Vec::new()));
        }
        let mut items = Vec::with_capacity(4);
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let text = self.s.get(start..self.i).unwrap_or("");
        if is_number_literal(text) {
            Ok(Value::Number(text.to_string()))
        } else {
            self.i = start;
            Err(self.err("invalid number"))
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut n = 0u32;
        for _ in 0..4 {
            // The digit rule percent-decoding uses, not a second copy of it.
            let Some(d) = self.peek().and_then(crate::core::url::hex) else { return Err(self.err("invalid \\u escape")) };
            n = n * 16 + u32::from(d);
            self.i += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            // Copy the run of plain bytes at once: it stops at an ASCII byte or the end, so on a
            // char boundary.
            let start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            if let Some(run) = self.s.get(start..self.i) {
                out.push_str(run);
            }
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.i += 1;
                    // The escaped char, pushed by one call: a push in each arm was a call each.
                    let escaped = match c {
                        b'"' | b'\\' | b'/' => char::from(c),
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let mut code = hi;
                            if (0xD800..0xDC00).contains(&hi) {
                                let save = self.i;
                                if self.eat("\\u") {
                                    let lo = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&lo) {
                                        code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    } else {
                                        self.i = save;
                                    }
                                }
                            }
                            // A lone surrogate (valid JSON) becomes U+FFFD, as TextEncoder would.
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    out.push(escaped);
                }
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }
}

/// JSON number syntax: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub fn is_number_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if let Some(b'-') = b.first() {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if let Some(b'.') = b.get(i) {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Cuts `s` to at most `max_bytes`, backing off to a char boundary.
pub fn truncate_utf8(s: &mut String, max_bytes: usize) {
    if s.len() <= max_bytes {
        return;
    }
    let mut end = max_bytes;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// Decimal digits of `n`, without `format!` (which would link the formatting machinery).
pub fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

/// The value of a whole number written in decimal digits only (what `str::parse::<u64>` accepts,
/// less a `+` sign, which no JSON number has), `None` past `u64::MAX`. One loop for every caller,
/// where std's parser is generic over signs and radixes.
pub fn whole(s: &str) -> Option<u64> {
    if s.is_empty() || !crate::core::text::all(s, |b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let digit = u64::from(b - b'0');
        // n * 10 + digit <= u64::MAX, tested by a division: checked_mul on a u64 links a 128-bit
        // multiply (__multi3) into the wasm.
        (n <= (u64::MAX - digit) / 10).then(|| n * 10 + digit)
    })
}

/// `n` as decimal text (see `write_u64`).
pub fn u64_text(n: u64) -> String {
    let mut s = String::new();
    write_u64(&mut s, n);
    s
}

/// `s` as a JSON string literal. U+2028/2029 are escaped too, so the text is also safe inside
/// a JS string or an inline script.
pub fn write_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(char::from(HEX[(c as usize) >> 4]));
                out.push(char::from(HEX[(c as usize) & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null | Value::Invalid(_) => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Numbers are validated literals; anything else would break the document, so guard.
        Value::Number(n) if is_number_literal(n) => out.push_str(n),
        Value::Number(_) => out.push_str("null"),
        Value::String(s) => write_str(out, s),
        // Commas placed as `W` places them (see `comma`).
        Value::Array(items) => {
            out.push('[');
            for item in items {
                comma(out);
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (k, item) in members {
                comma(out);
                write_str(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// A comma unless `out` ends where a value starts (after `{`, `[` or a key's `:`, or at the start):
/// a complete value never ends in those.
fn comma(out: &mut String) {
    if !matches!(out.as_bytes().last(), None | Some(b'{' | b'[' | b':')) {
        out.push(',');
    }
}

/// JSON text written as it is built: `W::new('{').s("a", "x").n("b", "1").end('}')`.
///
/// Payloads and platform arguments are only ever built to be written out; building them as a
/// `Value` tree first cost a `String` per key and value, the tree's drop glue and its writer, on
/// every event. Commas are placed by looking at the last byte written: after `{`, `[` or a key's
/// `:` none is needed, after any complete value one is (a complete value never ends in those).
pub struct W(pub String);

impl W {
    /// Starts a document with `open` (`'{'` or `'['`).
    pub fn new(open: char) -> W {
        let mut s = String::with_capacity(128);
        s.push(open);
        W(s)
    }
    fn sep(&mut self) {
        comma(&mut self.0);
    }
    /// An object key; the value follows.
    pub fn key(&mut self, k: &str) -> &mut W {
        self.sep();
        write_str(&mut self.0, k);
        self.0.push(':');
        self
    }
    /// Opens a nested object or array (`'{'` or `'['`) as the next value.
    pub fn open(&mut self, c: char) -> &mut W {
        self.sep();
        self.0.push(c);
        self
    }
    /// Closes what `open` or `new` opened (`'}'` or `']'`).
    pub fn close(&mut self, c: char) -> &mut W {
        self.0.push(c);
        self
    }
    pub fn str(&mut self, s: &str) -> &mut W {
        self.sep();
        write_str(&mut self.0, s);
        self
    }
    /// A number literal; anything else would break the document, so it is written as null.
    pub fn num(&mut self, n: &str) -> &mut W {
        self.sep();
        self.0.push_str(if is_number_literal(n) { n } else { "null" });
        self
    }
    pub fn value(&mut self, v: &Value) -> &mut W {
        self.sep();
        write_value(&mut self.0, v);
        self
    }
    /// JSON text already written (a nested document).
    pub fn raw(&mut self, json: &str) -> &mut W {
        self.sep();
        self.0.push_str(json);
        self
    }
    pub fn s(&mut self, k: &str, s: &str) -> &mut W {
        self.key(k).str(s)
    }
    pub fn opt_s(&mut self, k: &str, s: Option<&str>) -> &mut W {
        match s {
            Some(s) => self.s(k, s),
            None => self,
        }
    }
    pub fn opt_n(&mut self, k: &str, n: Option<&str>) -> &mut W {
        match n {
            Some(n) => self.key(k).num(n),
            None => self,
        }
    }
    /// `opt_s` of an owned field: the caller passes the field's address, where `as_deref()` at
    /// each call site picked the pointer and length out of the Option inline.
    #[inline(never)]
    pub fn opt_string(&mut self, k: &str, s: &Option<String>) -> &mut W {
        self.opt_s(k, s.as_deref())
    }
    /// `opt_n` of an owned field (see `opt_string`).
    #[inline(never)]
    pub fn opt_number(&mut self, k: &str, n: &Option<String>) -> &mut W {
        self.opt_n(k, n.as_deref())
    }
    pub fn u(&mut self, k: &str, n: u64) -> &mut W {
        self.key(k);
        write_u64(&mut self.0, n);
        self
    }
    pub fn b(&mut self, k: &str, b: bool) -> &mut W {
        self.key(k).raw(if b { "true" } else { "false" })
    }
    /// Closes the document with `close` and returns its text.
    pub fn end(mut self, close: char) -> String {
        self.0.push(close);
        self.0
    }
}

/// JSON array text of string arguments, for `Effect` args.
pub fn str_array(items: &[&str]) -> String {
    let mut w = W::new('[');
    for s in items {
        w.str(s);
    }
    w.end(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `get` finds what `rev().find(..).map(..)` found: the last member of a key, for objects of
    /// up to 4 members over keys a, b and the empty key, and none on other kinds.
    #[test]
    fn get_is_the_last_duplicate() {
        let keys = ["a", "b", ""];
        for n in 0..=4u32 {
            for pick in 0..3u32.pow(n) {
                let members: Vec<(String, Value)> =
                    (0..n).map(|i| (keys[(pick / 3u32.pow(i) % 3) as usize].to_string(), Value::Number(i.to_string()))).collect();
                let former = |key: &str| members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                let object = Value::Object(members.clone());
                for key in ["a", "b", "", "c"] {
                    assert_eq!(object.get(key).cloned(), former(key), "{members:?} {key:?}");
                }
            }
        }
        assert_eq!(Value::Array(vec![Value::Null]).get("0"), None);
        assert_eq!(Value::String("a".into()).get("a"), None);
    }

    /// A \\u escape's digits are read by url::hex as by the parser's former own rule: every byte
    /// in every position of the four, and every value of the digit.
    #[test]
    fn unicode_escape_digits_are_the_former_rule() {
        let former = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        for c in 0..=255u8 {
            assert_eq!(crate::core::url::hex(c), former(c), "{c}");
            for at in 0..4 {
                let mut digits = *b"0041";
                digits[at] = c;
                let mut text = b"\"\\u".to_vec();
                text.extend_from_slice(&digits);
                text.push(b'"');
                let Ok(text) = String::from_utf8(text) else { continue };
                let want = (0..4).try_fold(0u32, |n, i| former(digits[i]).map(|d| n * 16 + u32::from(d)));
                let got = parse(&text).ok().and_then(|v| v.as_str().map(String::from));
                assert_eq!(got, want.map(|n| char::from_u32(n).unwrap_or('\u{fffd}').to_string()), "{text:?}");
            }
        }
    }

    /// Parses `input` and writes it back; `expected` is the re-written text or `Err` prefix.
    fn check(input: &str, expected: Result<&str, &str>) {
        match (parse(input), expected) {
            (Ok(v), Ok(want)) => assert_eq!(v.to_json(), want, "input {input:?}"),
            (Err(e), Err(want)) => assert!(e.reason.starts_with(want) && e.at <= input.len(), "input {input:?}: error {e:?}"),
            (got, want) => panic!("input {input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parses_and_writes() {
        check("null", Ok("null"));
        check(" true ", Ok("true"));
        check("[1, -0, 12.50, 1e5, -2.5E-3]", Ok("[1,-0,12.50,1e5,-2.5E-3]"));
        check(r#"{"a":{"b":[]},"c":"d"}"#, Ok(r#"{"a":{"b":[]},"c":"d"}"#));
        check(r#""\u00e9\ud83d\ude00\n\/""#, Ok("\"é😀\\n/\""));
        check("\"\u{2028}\\u0001\"", Ok(r#""\u2028\u0001""#));
        check("{}", Ok("{}"));
        check("[]", Ok("[]"));
    }

    #[test]
    fn writes_every_escape_between_runs_of_plain_text() {
        let cases = [
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}", r#""a\"b\\c\nd\re\tf\bg\fh\u0001i\u001f""#),
            // U+2028/2029 share their lead byte with other characters (€ is E2 82 AC, ‧ E2 80 A7).
            ("€\u{2028}‧\u{2029}é😀\u{2028}", r#""€\u2028‧\u2029é😀\u2028""#),
            ("\u{2029}", r#""\u2029""#),
            ("\"", r#""\"""#),
        ];
        for (text, want) in cases {
            let mut out = String::from("x");
            write_str(&mut out, text);
            assert_eq!(&out[1..], want, "{text:?}");
            assert_eq!(parse(&out[1..]), Ok(Value::String(text.to_string())), "{text:?} reads back");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", " ", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "1e", "-", "NaN", "Infinity",
            "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "{a:1}",
            "[1 2]", "1 2", "\"tab\there\"", "{\"a\" 1}", "'a'",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    /// JSON.stringify writes a string cut mid-emoji (`'Sock 😀'.slice(0, 6)`) as `"Sock \ud83d"`:
    /// RFC 8259 §7/§8.2 allows the escape. The loader serialises every call's arguments this way,
    /// so refusing it loses the whole call (shell::command then sees no arguments at all).
    #[test]
    fn lone_surrogate_escapes_from_json_stringify_do_not_fail_the_call() {
        let args = r#"["Purchase",{"value":1,"currency":"EUR","content_name":"Sock \ud83d"},{"eventId":"o-1"}]"#;
        let v = parse(args).expect("a lone surrogate escape is valid JSON (RFC 8259)");
        let Value::Array(items) = v else { panic!() };
        assert_eq!(items[1].get("content_name").and_then(Value::as_str), Some("Sock \u{fffd}"));
        assert_eq!(parse(r#""\udc00x""#), Ok(Value::String("\u{fffd}x".into())));
    }

    #[test]
    fn depth_is_limited() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        check(&deep, Err("JSON nested too deeply"));
        let very_deep = "{\"a\":".repeat(100_000);
        assert!(parse(&very_deep).is_err());
    }

    #[test]
    fn get_last_duplicate_wins() {
        let v = parse(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Number("3".into())));
        assert_eq!(v.get("z"), None);
        assert_eq!(Value::Null.get("a"), None);
    }

    #[test]
    fn invalid_marker_becomes_invalid() {
        let text = r#"{"\u0000tandem_invalid":"circular reference"}"#;
        assert_eq!(parse(text).unwrap(), Value::Invalid("circular reference".into()));
        // Only a lone marker key with a string value counts.
        let two = r#"{"\u0000tandem_invalid":"x","b":1}"#;
        assert!(matches!(parse(two).unwrap(), Value::Object(_)));
        assert!(parse(r#"[{"\u0000tandem_invalid":"bigint"}]"#).unwrap().contains_invalid());
    }

    #[test]
    fn number_literals() {
        for ok in ["0", "-0", "12.50", "1e5", "1E+5", "1e-5", "123456789012345678901234567890"] {
            assert!(is_number_literal(ok), "{ok}");
        }
        for bad in ["", "-", "00", "1.", ".1", "1e", "1e+", "abc", "NaN", " 1", "1 ", "0x10", "+1"] {
            assert!(!is_number_literal(bad), "{bad}");
        }
    }

    #[test]
    fn truncates_at_char_boundary() {
        let mut s = String::from("aé😀");
        truncate_utf8(&mut s, 5);
        assert_eq!(s, "aé");
        let mut s = String::from("abc");
        truncate_utf8(&mut s, 10);
        assert_eq!(s, "abc");
        truncate_utf8(&mut s, 0);
        assert_eq!(s, "");
    }

    #[test]
    fn whole_numbers_agree_with_std() {
        for s in ["", "0", "7", "007", "-0", "-1", "1.5", "1e3", "18446744073709551615", "18446744073709551616", "18446744073709551610", "18446744073709551619", "1844674407370955161", "184467440737095516150", "1844674407370955162", "99999999999999999999", "00000000000000000000018446744073709551615", "1 ", "٣"] {
            assert_eq!(whole(s), s.parse::<u64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn writes_u64() {
        for (n, want) in [(0u64, "0"), (7, "7"), (1700000000123, "1700000000123"), (u64::MAX, "18446744073709551615")] {
            let mut s = String::new();
            write_u64(&mut s, n);
            assert_eq!(s, want);
        }
    }

    /// Cheap property test: pseudo-random byte strings (biased towards JSON punctuation) never
    /// panic the parser, and whatever parses re-parses to the same value after writing.
    #[test]
    fn never_panics_on_noise() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet = b"{}[]\",:\\u0123456789abcdefnrtl-+.eE \x00\x1f\xc3\xa9\xed\xa0\x80";
        for round in 0..20_000 {
            let len = (round % 40) + 1;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let pick = (x % (alphabet.len() as u64 + 16)) as usize;
                bytes.push(alphabet.get(pick).copied().unwrap_or((x >> 32) as u8));
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(v) = parse(&text) {
                assert_eq!(parse(&v.to_json()).as_ref(), Ok(&v), "round trip of {text:?}");
            }
        }
    }
}
