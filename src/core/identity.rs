//! `tandem('identify', {…})`: personal data normalised to each platform's rules and SHA-256 hashed
//! here, in the wasm. Only hashes are kept (in memory, for the page), sent and logged; a raw value
//! never leaves this module, and errors name the field, never its value.
//!
//! Meta: exactly what Meta's Business SDK for Node does (`ServerSideUtils.normalizeAndHash`,
//! facebook-nodejs-business-sdk), checked against the SDK itself by tests/oracle. Two documented
//! conveniences on top: phone numbers may use `.` and `/` as separators (the SDK would hash them,
//! which Meta's rule "digits only" forbids), and a date of birth may be written `YYYY-MM-DD`
//! (Meta's form is `YYYYMMDD`).
//! Google (enhanced conversions, gtag `user_data` / GA4 MP `user_data`): trim, lowercase, dots
//! removed from the local part of gmail.com / googlemail.com addresses, phone in E.164 with `+`.
//! City, region, postal code and country are sent to Google unhashed, so Tandem does not send them.
//! TikTok (`ttq.identify`, Events API `user`): email trimmed and lowercased, phone in E.164 with
//! `+`, external_id hashed as given (trimmed).
//! A value that already is 64 hex digits is taken as a hash and passed through (lowercased).

use crate::core::error::TagError;
use crate::core::json::{Value, W};
use crate::core::sha256;
use crate::core::text::{self, Names};
use crate::core::unicode;

crate::messages! {
    IDENTIFY_TAKES_OBJECT = "i0" "tandem('identify', …) takes an object like {email, phone}, got ";
    KNOWN_FIELDS = "i1" " (known: email, phone, firstName, lastName, city, state, zip, country, gender, dateOfBirth, externalId)";
    IDENTIFY_FIELD = "i2" "identify field";
    IDENTIFY_PREFIX = "i3" "identify: ";
    LEFT_OUT = "i4" "; it was left out";
    PHONE_WITHOUT_COUNTRY = "i5" "identify: phone has no country code (E.164), so Google and TikTok do not get it";
    NOT_A_STRING = "i6" "must be a string (of at most 512 bytes)";
    PHONE_CHARACTERS = "i7" "may contain only digits, spaces and + - ( ) . / separators";
    PHONE_DIGITS = "i8" "must have 7 to 16 digits, with the country code";
    DATE_OF_BIRTH_FORM = "i9" "must be a date written YYYY-MM-DD or YYYYMMDD";
    IS_EMPTY = "iA" "is empty";
    INVALID_EMAIL = "iB" "is not a valid email address";
    ZIP_TOO_SHORT = "iC" "must have at least 2 characters";
    COUNTRY_CODE = "iD" "must be an ISO 3166-1 two-letter code such as \"us\"";
    GENDER_VALUES = "iE" "must be \"f\", \"m\", \"female\" or \"male\"";
    NOTHING_LEFT = "iF" "has nothing left after normalisation";
}

/// identify's fields. A field's index in this list is its index in each platform's keys below (one
/// text each rather than a table of (name, Meta key, Google key, TikTok key) string pointers, which
/// compressed worse than the names). The warning for an unknown field lists them in KNOWN_FIELDS,
/// message text of its own (a literal: joining it at run time linked slice-joining code), which
/// must name the same fields: `invalid_fields_are_left_out_with_an_error_that_never_echoes_the_value`
/// checks that warning whole.
const FIELD_NAMES: &str = "email, phone, firstName, lastName, city, state, zip, country, gender, dateOfBirth, externalId";
const FIELD_COUNT: usize = 11;
/// The fields' indices in FIELD_NAMES, which the normalisers match on: a match on the index is a
/// jump table, where one on the name compared strings arm by arm. Found by `field_position` when
/// compiling, so the list stays the one source of the order.
const EMAIL: usize = field_position("email");
const PHONE: usize = field_position("phone");
const FIRST_NAME: usize = field_position("firstName");
const LAST_NAME: usize = field_position("lastName");
const CITY: usize = field_position("city");
const STATE: usize = field_position("state");
const ZIP: usize = field_position("zip");
const COUNTRY: usize = field_position("country");
const GENDER: usize = field_position("gender");
const DATE_OF_BIRTH: usize = field_position("dateOfBirth");
const EXTERNAL_ID: usize = field_position("externalId");

/// `name`'s index in FIELD_NAMES (names one ", " apart); a name not in it fails the build.
const fn field_position(name: &str) -> usize {
    let (list, name) = (FIELD_NAMES.as_bytes(), name.as_bytes());
    let (mut at, mut index) = (0, 0);
    while at < list.len() {
        let mut end = at;
        while end < list.len() && list[end] != b',' {
            end += 1;
        }
        if end - at == name.len() {
            let mut i = 0;
            while i < name.len() && list[at + i] == name[i] {
                i += 1;
            }
            if i == name.len() {
                return index;
            }
        }
        at = end + 2;
        index += 1;
    }
    panic!("not an identify field name")
}

/// Each field's Meta key.
const META_KEYS: Names<FIELD_COUNT> = Names::new("em ph fn ln ct st zp country ge db external_id");
/// Each field's Google gtag key; empty for a field Google does not take hashed.
const GOOGLE_KEYS: Names<FIELD_COUNT> = Names::new(concat!("sha256_email_address sha256_phone_number sha256_first_name sha256_last_name", "       "));
/// Each field's TikTok key; empty for a field TikTok does not take.
const TIKTOK_KEYS: Names<FIELD_COUNT> = Names::new(concat!("email phone_number", "         ", "external_id"));

/// ISO 3166-1 alpha-2, as the SDK's `iso-3166-1` package lists them (249 codes, sorted).
const COUNTRIES: &str = concat!(
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ",
    "DEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJM",
    "JOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONP",
    "NRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTO",
    "TRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW",
);

/// COUNTRIES as one bit per code (a row per first letter, a bit per second letter), built at
/// compile time: the wasm holds these 104 bytes, not the 498-character list (about 200 B of gzip).
const COUNTRY_ROWS: [u32; 26] = country_rows();

const fn country_rows() -> [u32; 26] {
    let codes = COUNTRIES.as_bytes();
    let mut rows = [0u32; 26];
    let mut i = 0;
    while i + 1 < codes.len() {
        rows[(codes[i] - b'A') as usize] |= 1 << (codes[i + 1] - b'A');
        i += 2;
    }
    rows
}

/// Whether `code`, already lowercased, is one of COUNTRIES.
fn is_country(code: &str) -> bool {
    match *code.as_bytes() {
        [first @ b'a'..=b'z', second @ b'a'..=b'z'] => COUNTRY_ROWS[(first - b'a') as usize] >> (second - b'a') & 1 != 0,
        _ => false,
    }
}

/// `input.trim().toLowerCase()`, the SDK's first step for every field.
fn trim_lower(raw: &str) -> String {
    let t = text::trim(raw);
    // text::all: str::is_ascii's word-at-a-time version is more code than short values need.
    if text::all(t, |b| b.is_ascii()) {
        return t.to_ascii_lowercase();
    }
    unicode::lowercase(t)
}

/// `s` with only the chars `keep` accepts. One function taking a fn pointer, where a
/// `chars().filter(…).collect()` at each call site was a copy of the UTF-8 loop each.
#[inline(never)]
fn kept(s: &str, keep: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if keep(c) {
            out.push(c);
        }
    }
    out
}

fn email_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || text::has("-!#$%&'*+/=?^_`{|}~", char::from(c))
}

/// The `email-validator` package's rule (what the SDK validates with), on a lowercased address.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = text::split_once(e, "@") else { return false };
    let l = local.as_bytes();
    let local_ok = !l.is_empty()
        && l.len() <= 64
        && l[0] != b'`'
        && l[0] != b'.'
        && l[l.len() - 1] != b'.'
        && !text::contains(local, "..")
        && l.iter().all(|&c| c == b'.' || email_local_char(c));
    // Domain: [alnum](-*\.?[alnum])* \. [letter](-?[alnum])+ ; the last label has no dot.
    let Some((middle, tld)) = text::rsplit_once(domain, ".") else { return false };
    let t = tld.as_bytes();
    let tld_ok = t.len() >= 2
        && t[0].is_ascii_alphabetic()
        && t[t.len() - 1] != b'-'
        && !text::contains(tld, "--")
        && t.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-');
    let m = middle.as_bytes();
    let mut middle_ok = !m.is_empty() && m[0].is_ascii_alphanumeric() && m[m.len() - 1].is_ascii_alphanumeric();
    // Every run of separators is hyphens followed by at most one dot.
    let mut seen_dot = false;
    for &c in m {
        match c {
            b'-' if !seen_dot => {}
            b'.' if !seen_dot => seen_dot = true,
            c if c.is_ascii_alphanumeric() => seen_dot = false,
            _ => middle_ok = false,
        }
    }
    // No label over 63 bytes: the run since the last dot, counted in the loop over the bytes.
    let mut label = 0;
    let mut labels_ok = true;
    for &c in domain.as_bytes() {
        label = if c == b'.' { 0 } else { label + 1 };
        labels_ok &= label <= 63;
    }
    local_ok && tld_ok && middle_ok && e.len() <= 254 && labels_ok
}

/// Meta's phone rule, as the SDK applies it: drop `-@#<>'",; ()+` and letters; an international
/// number (by the SDK's patterns) loses up to two leading zeros; 7 to 16 characters remain.
fn meta_phone(t: &str) -> Result<String, &'static str> {
    let p = kept(t, |c| !(text::has("-@#<>'\",; ()+./", c) || c.is_ascii_lowercase()));
    if !text::all(&p, |b| b.is_ascii_digit()) {
        return Err(PHONE_CHARACTERS);
    }
    // Up to two leading zeros dropped.
    let q = p.strip_prefix("0").map_or(p.as_str(), |rest| rest.strip_prefix("0").unwrap_or(rest));
    let international = if q.starts_with("0") {
        false
    } else if q.starts_with("1") {
        q.len() == 11
    } else {
        q.len() >= 7
    };
    let p = if international { q.to_string() } else { p };
    if !matches!(p.len(), 7..=16) {
        return Err(PHONE_DIGITS);
    }
    Ok(p)
}

/// `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD` → `YYYYMMDD`.
fn date_of_birth(t: &str) -> Result<String, &'static str> {
    // Read as bytes (each test comes after one that makes them ASCII), not as str slices, whose
    // char-boundary check was linked for this function alone.
    let tb = t.as_bytes();
    let d: String = if tb.len() == 10 && text::all(t, |b| b.is_ascii()) && matches!(tb[4], b'-' | b'/') && tb[7] == tb[4] { kept(t, |c| c.is_ascii_digit()) } else { t.to_string() };
    let num = |s: &[u8]| s.iter().fold(0u32, |n, b| n * 10 + u32::from(b.wrapping_sub(b'0')));
    let db = d.as_bytes();
    let ok = d.len() == 8
        && text::all(&d, |b| b.is_ascii_digit())
        && matches!(num(&db[4..6]), 1..=12)
        && matches!(num(&db[6..8]), 1..=31)
        && matches!(num(&db[..4]), 1900..=2100);
    if ok {
        Ok(d)
    } else {
        Err(DATE_OF_BIRTH_FORM)
    }
}

/// The normalised (not yet hashed) value Meta's SDK would hash for identify field `field` (its
/// index in FIELD_NAMES).
pub fn meta_normalize(field: usize, raw: &str) -> Result<String, &'static str> {
    let t = trim_lower(raw);
    if t.is_empty() {
        return Err(IS_EMPTY);
    }
    if sha256::is_hex64(&t) {
        return Ok(t);
    }
    let out = match field {
        EMAIL if valid_email(&t) => t,
        EMAIL => return Err(INVALID_EMAIL),
        PHONE => meta_phone(&t)?,
        CITY | STATE => kept(&t, |c| !(c.is_ascii_digit() || text::is_js_space(c) || text::has("()-.", c))),
        ZIP => {
            let z = kept(&t, |c| !text::is_js_space(c));
            let z = text::before(&z, "-").to_string();
            // Under 2 UTF-16 units (the SDK's `length`): empty, or one char of the BMP.
            let mut chars = z.chars();
            if chars.next().is_none_or(|c| c.len_utf16() == 1 && chars.next().is_none()) {
                return Err(ZIP_TOO_SHORT);
            }
            z
        }
        COUNTRY if is_country(&t) => t,
        COUNTRY => return Err(COUNTRY_CODE),
        GENDER => match kept(&t, |c| c.is_ascii_lowercase()).as_str() {
            "f" | "female" => String::from("f"),
            "m" | "male" => String::from("m"),
            _ => return Err(GENDER_VALUES),
        },
        DATE_OF_BIRTH => date_of_birth(&t)?,
        _ => t,
    };
    if out.is_empty() {
        return Err(NOTHING_LEFT);
    }
    Ok(out)
}

/// Google's form of a field Meta normalised (`None`: Google does not take it hashed).
pub fn google_normalize(field: usize, meta: &str, raw: &str) -> Option<String> {
    // The hash test only where it changes the answer (a name is kept as it is either way).
    match field {
        EMAIL | PHONE if sha256::is_hex64(meta) => Some(meta.to_string()),
        EMAIL => Some(match text::split_once(meta, "@") {
            Some((local, domain)) if domain == "gmail.com" || domain == "googlemail.com" => {
                let mut e = kept(local, |c| c != '.');
                e.push('@');
                e.push_str(domain);
                e
            }
            _ => meta.to_string(),
        }),
        PHONE => e164(raw),
        FIRST_NAME | LAST_NAME => Some(meta.to_string()),
        _ => None,
    }
}

/// TikTok's form (`raw` for external_id, which TikTok hashes as given).
pub fn tiktok_normalize(field: usize, meta: &str, raw: &str) -> Option<String> {
    // The hash test only where it changes the answer (an email is kept as it is either way).
    match field {
        EMAIL => Some(meta.to_string()),
        PHONE | EXTERNAL_ID if sha256::is_hex64(meta) => Some(meta.to_string()),
        PHONE => e164(raw),
        EXTERNAL_ID => Some(text::trim(raw).to_string()),
        _ => None,
    }
}

/// E.164 (`+`, 7 to 15 digits, no leading zero) from a phone number that passed Meta's rule:
/// separators dropped, an international `00` prefix dropped. Digits without `+` or `00` are taken
/// to start with the country code (Meta's rule for its own input); a leading `0` is a national
/// trunk prefix, and without the country the number cannot be written in E.164.
fn e164(raw: &str) -> Option<String> {
    let digits = kept(raw, |c| c.is_ascii_digit());
    let digits = digits.strip_prefix("00").unwrap_or(&digits);
    if !matches!(digits.len(), 7..=15) || digits.starts_with("0") {
        return None;
    }
    let mut e = String::from("+");
    e.push_str(digits);
    Some(e)
}

/// The visitor's hashed identity, per platform, in memory only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// (Meta key, hash) in `FIELD_NAMES` order.
    pub meta: Vec<(&'static str, String)>,
    pub google: Vec<(&'static str, String)>,
    pub tiktok: Vec<(&'static str, String)>,
}

/// Sets field `field`'s normalised `value`, hashed, in `list` under its key in `keys` (or removes
/// it), keeping the fields' order (no sort: less code in the wasm). A field without a key there is
/// left out, unhashed. Hashed here, not by an `Option::map` at each of the three calls.
fn set(list: &mut Vec<(&'static str, String)>, keys: &Names<FIELD_COUNT>, field: usize, value: Option<String>) {
    let key = keys.get(field);
    if key.is_empty() {
        return;
    }
    let mut value = match value {
        Some(v) => Some(hashed(v)),
        None => None,
    };
    // Rebuilt in one walk by reference (a dozen fields at most), the key's old hash left out and
    // its new one placed before the first field after it: Vec::remove and Vec::insert linked
    // code of their own for this list alone.
    let old = std::mem::take(list);
    for (k, h) in &old {
        // The held field's index, counted in a loop: (0..N).position(..) linked the range's
        // adapter and an Option comparison for this line.
        let mut held = 0;
        while held < FIELD_COUNT && keys.get(held) != *k {
            held += 1;
        }
        if held < FIELD_COUNT && held > field {
            if let Some(v) = value.take() {
                list.push((key, v));
            }
        }
        if *k != key {
            list.push((k, h.clone()));
        }
    }
    if let Some(v) = value {
        list.push((key, v));
    }
}

/// Out of line: `merge` calls it once per platform, and each inlined copy carried the digest.
#[inline(never)]
fn hashed(s: String) -> String {
    if sha256::is_hex64(&s) {
        s
    } else {
        sha256::hex(&s)
    }
}

/// A platform's hashes as a JSON object, `None` when it has none (see `write_hashes`). For the
/// tests: the tag writes them in place with `write_hashes`.
#[cfg(test)]
fn hashes_json(list: &[(&'static str, String)]) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let mut w = W(String::new());
    write_hashes(&mut w, list);
    Some(w.0)
}

/// A platform's hashes as an object, the next value of `w`: `{key: hash, …}`, with Google's name
/// fields (`*_name`) inside `address` as gtag's `user_data` has them. One writer for the three
/// platforms: no Meta or TikTok key ends in `_name`, so theirs never open `address`.
pub fn write_hashes(w: &mut W, list: &[(&'static str, String)]) {
    // The list keeps its keys' order, where Google's address fields come last: one pass writes the
    // others, then opens `address` at the first of them.
    w.open('{');
    let mut in_address = false;
    for (k, h) in list {
        if !in_address && k.ends_with("_name") {
            w.key("address").open('{');
            in_address = true;
        }
        w.s(k, h);
    }
    if in_address {
        w.close('}');
    }
    w.close('}');
}

impl Identity {
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// `tandem('identify', values)`: each given field replaces the one held (`null` removes it;
    /// `identify(null)` forgets everything). Invalid fields are reported by name and left out.
    pub fn merge(&mut self, values: &Value, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) {
        let members = match values {
            Value::Object(m) => m,
            Value::Null => {
                *self = Identity::default();
                return;
            }
            other => {
                let mut m = String::from(IDENTIFY_TAKES_OBJECT);
                m.push_str(other.kind());
                errors.push(TagError::new("invalid_identity", m, ""));
                return;
            }
        };
        for (k, v) in members {
            // The field's index counted in a loop, where enumerate(..).find(..) linked both adapters.
            let (mut found, mut field) = (None, 0);
            for name in text::split(FIELD_NAMES, ", ") {
                if *k == *name {
                    found = Some((field, name));
                    break;
                }
                field += 1;
            }
            let Some((field, name)) = found else {
                warnings.push(crate::core::error::unknown_key(IDENTIFY_FIELD, k, KNOWN_FIELDS));
                continue;
            };
            // One error path for both failures: a value of the wrong type and one that breaks a rule.
            let (raw, meta) = match v {
                Value::Null => (None, Ok(None)),
                Value::String(s) if s.len() <= 512 => (Some(s.as_str()), meta_normalize(field, s).map(Some)),
                Value::Number(n) if matches!(field, PHONE | ZIP | EXTERNAL_ID) => (Some(n.as_str()), meta_normalize(field, n).map(Some)),
                _ => (None, Err(NOT_A_STRING)),
            };
            let meta = match meta {
                Ok(n) => n,
                Err(rule) => {
                    // Never echo the value: it is personal data.
                    let mut m = String::from(IDENTIFY_PREFIX);
                    m.push_str(name);
                    m.push(' ');
                    m.push_str(rule);
                    m.push_str(LEFT_OUT);
                    errors.push(TagError::new("invalid_identity", m, ""));
                    continue;
                }
            };
            // One match for both, where an `and_then` each linked a copy of the Option plumbing.
            let (google, tiktok) = match (meta.as_deref(), raw.unwrap_or_default()) {
                (Some(n), raw) => (google_normalize(field, n, raw), tiktok_normalize(field, n, raw)),
                (None, _) => (None, None),
            };
            if meta.is_some() && field == PHONE && google.is_none() {
                warnings.push(String::from(PHONE_WITHOUT_COUNTRY));
            }
            set(&mut self.google, &GOOGLE_KEYS, field, google);
            set(&mut self.tiktok, &TIKTOK_KEYS, field, tiktok);
            set(&mut self.meta, &META_KEYS, field, meta);
        }
    }

    /// fbq advanced matching (`fbq('init', id, {em: hash, …})`), as the next value of `w`.
    pub fn write_meta(&self, w: &mut W) {
        write_hashes(w, &self.meta);
    }

    /// The endpoint's `user_data` members, Conversions API style (arrays of hashes).
    pub fn write_meta_arrays(&self, w: &mut W) {
        for (k, h) in &self.meta {
            w.key(k).open('[').str(h).close(']');
        }
    }

    /// gtag's `user_data` (`{sha256_email_address, sha256_phone_number, address: {sha256_first_name, …}}`).
    #[cfg(test)]
    pub fn google_json(&self) -> Option<String> {
        hashes_json(&self.google)
    }

    /// `ttq.identify({email, phone_number, external_id})`, hashed.
    #[cfg(test)]
    pub fn tiktok_json(&self) -> Option<String> {
        hashes_json(&self.tiktok)
    }

    /// Debug-mode line: field keys with the start of each hash, never a raw value.
    pub fn debug_line(&self) -> String {
        const PREFIX: &str = "identify (hashes): ";
        let mut s = String::from(PREFIX);
        for (k, h) in &self.meta {
            // Past the prefix once a field is written (a key is never empty), not by enumerate.
            if s.len() > PREFIX.len() {
                s.push_str(", ");
            }
            s.push_str(k);
            s.push('=');
            s.push_str(h);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field's index in FIELD_NAMES, by its name.
    fn field_index(name: &str) -> usize {
        text::split(FIELD_NAMES, ", ").position(|n| n == name).expect("a field name")
    }

    #[test]
    fn field_indices_follow_field_names() {
        let names = ["email", "phone", "firstName", "lastName", "city", "state", "zip", "country", "gender", "dateOfBirth", "externalId"];
        let indices = [EMAIL, PHONE, FIRST_NAME, LAST_NAME, CITY, STATE, ZIP, COUNTRY, GENDER, DATE_OF_BIRTH, EXTERNAL_ID];
        assert_eq!(names.len(), FIELD_COUNT);
        for (name, index) in names.iter().zip(indices) {
            assert_eq!(field_index(name), index, "{name}");
        }
    }

    /// Domain labels of up to 63 bytes, in any position, against the split it replaced.
    #[test]
    fn email_domain_labels_up_to_63() {
        for n in [2, 62, 63, 64, 70] {
            let l = "a".repeat(n);
            for domain in [format!("{l}.com"), format!("x.{l}.com"), format!("x.y.{l}")] {
                let e = format!("u@{domain}");
                let split_ok = domain.split('.').all(|p| p.len() <= 63);
                assert_eq!(valid_email(&e), split_ok && valid_email(&e.replace(&l, "aa")), "{e}");
            }
        }
    }

    /// The zip rule's length is the SDK's (UTF-16 units), for chars of one to four bytes.
    #[test]
    fn date_of_birth_matches_the_str_slicing_form() {
        fn former(t: &str) -> Result<String, &'static str> {
            let d: String = if t.len() == 10 && t.is_ascii() && matches!(&t[4..5], "-" | "/") && t[7..8] == t[4..5] { kept(t, |c| c.is_ascii_digit()) } else { t.to_string() };
            let num = |s: &str| s.bytes().fold(0u32, |n, b| n * 10 + u32::from(b.wrapping_sub(b'0')));
            let ok = d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) && matches!(num(&d[4..6]), 1..=12) && matches!(num(&d[6..8]), 1..=31) && matches!(num(&d[..4]), 1900..=2100);
            if ok {
                Ok(d)
            } else {
                Err("must be a date written YYYY-MM-DD or YYYYMMDD")
            }
        }
        let years = ["1899", "1900", "1987", "2100", "2101", "19a7", "é12"];
        let parts = ["00", "01", "09", "12", "13", "31", "32", "1", "x1", "é"];
        let seps = ["-", "/", ".", "", "é", "--"];
        let mut n = 0;
        for y in years {
            for m in parts {
                for d in parts {
                    for a in seps {
                        for b in seps {
                            let t = String::from(y) + a + m + b + d;
                            assert_eq!(date_of_birth(&t), former(&t), "{t:?}");
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 7 * 10 * 10 * 6 * 6);
        assert_eq!(date_of_birth("1987-03-31"), Ok(String::from("19870331")));
    }

    #[test]
    fn zip_length_counts_utf16_units() {
        for z in ["1", "12", "é", "é1", "€", "€€", "😀", "😀1", "a😀"] {
            let short = z.encode_utf16().count() < 2;
            assert_eq!(meta_normalize(ZIP, z).is_err(), short, "{z:?}");
        }
    }
    use crate::core::json::parse;

    fn meta_text(id: &Identity) -> String {
        let mut w = W(String::new());
        id.write_meta(&mut w);
        w.0
    }

    fn merge(values: &str) -> (Identity, Vec<TagError>, Vec<String>) {
        let (mut e, mut w) = (Vec::new(), Vec::new());
        let mut id = Identity::default();
        id.merge(&parse(values).unwrap(), &mut e, &mut w);
        (id, e, w)
    }

    /// `write_hashes` nests a platform's `*_name` keys in `address`: only Google's may end so.
    #[test]
    fn only_google_keys_open_address() {
        for i in 0..FIELD_COUNT {
            assert!(!META_KEYS.get(i).ends_with("_name") && !TIKTOK_KEYS.get(i).ends_with("_name"), "{i}");
        }
    }

    /// The keys, as the table of (name, Meta key, Google key, TikTok key) they replaced had them.
    #[test]
    fn field_keys_match_the_former_table() {
        const FORMER: &[(&str, &str, &str, &str)] = &[
            ("email", "em", "sha256_email_address", "email"),
            ("phone", "ph", "sha256_phone_number", "phone_number"),
            ("firstName", "fn", "sha256_first_name", ""),
            ("lastName", "ln", "sha256_last_name", ""),
            ("city", "ct", "", ""),
            ("state", "st", "", ""),
            ("zip", "zp", "", ""),
            ("country", "country", "", ""),
            ("gender", "ge", "", ""),
            ("dateOfBirth", "db", "", ""),
            ("externalId", "external_id", "", "external_id"),
        ];
        let names: Vec<&str> = text::split(FIELD_NAMES, ", ").collect();
        assert_eq!(names.len(), FIELD_COUNT);
        for (i, &(name, meta, google, tiktok)) in FORMER.iter().enumerate() {
            assert_eq!((names[i], META_KEYS.get(i), GOOGLE_KEYS.get(i), TIKTOK_KEYS.get(i)), (name, meta, google, tiktok));
        }
        // Every subset of fields, set in either order, keeps the table's order on each platform.
        for mask in 0..1u32 << FIELD_COUNT {
            let mut id = Identity::default();
            let given: Vec<usize> = (0..FIELD_COUNT).filter(|i| mask >> i & 1 != 0).collect();
            for &i in given.iter().rev() {
                set(&mut id.meta, &META_KEYS, i, Some(String::new()));
                set(&mut id.google, &GOOGLE_KEYS, i, Some(String::new()));
                set(&mut id.tiktok, &TIKTOK_KEYS, i, Some(String::new()));
            }
            let keys = |l: &Vec<(&'static str, String)>| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
            let want = |column: fn(&(&'static str, &'static str, &'static str, &'static str)) -> &'static str| {
                given.iter().map(|&i| column(&FORMER[i])).filter(|k| !k.is_empty()).collect::<Vec<_>>()
            };
            assert_eq!(keys(&id.meta), want(|f| f.1));
            assert_eq!(keys(&id.google), want(|f| f.2));
            assert_eq!(keys(&id.tiktok), want(|f| f.3));
            // Set again, each field replaces its own hash (of the value set), in place; removed,
            // it is gone.
            let before = id.clone();
            for &i in &given {
                set(&mut id.meta, &META_KEYS, i, Some(String::from("x")));
                set(&mut id.google, &GOOGLE_KEYS, i, Some(String::from("x")));
            }
            assert_eq!((keys(&id.meta), keys(&id.google)), (keys(&before.meta), keys(&before.google)));
            let x = hashed(String::from("x"));
            assert!(id.meta.iter().chain(&id.google).all(|(_, h)| *h == x));
            for &i in &given {
                set(&mut id.meta, &META_KEYS, i, None);
                set(&mut id.tiktok, &TIKTOK_KEYS, i, None);
            }
            assert!(id.meta.is_empty() && id.tiktok.is_empty());
        }
    }

    /// `set` against the form it had (remove the key's entry, insert the new one before the first
    /// field after it), over 20,000 pseudo-random sets and removals on each platform's keys.
    #[test]
    fn set_matches_its_remove_and_insert_form() {
        fn former(list: &mut Vec<(&'static str, String)>, keys: &Names<FIELD_COUNT>, field: usize, value: Option<String>) {
            let key = keys.get(field);
            if key.is_empty() {
                return;
            }
            if let Some(at) = list.iter().position(|(k, _)| *k == key) {
                list.remove(at);
            }
            if let Some(v) = value {
                let rank = |k: &str| (0..FIELD_COUNT).position(|i| keys.get(i) == k);
                let at = list.iter().position(|(k, _)| rank(k) > Some(field)).unwrap_or(list.len());
                list.insert(at, (key, hashed(v)));
            }
        }
        let mut seed = 0x2545_f491_u32;
        let mut next = |n: u32| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) % n
        };
        for keys in [&META_KEYS, &GOOGLE_KEYS, &TIKTOK_KEYS] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for step in 0..20_000 {
                let field = next(FIELD_COUNT as u32) as usize;
                let value = (next(4) != 0).then(|| format!("v{}", next(5)));
                set(&mut ours, keys, field, value.clone());
                former(&mut theirs, keys, field, value);
                assert_eq!(ours, theirs, "step {step}");
                if next(200) == 0 {
                    ours.clear();
                    theirs.clear();
                }
            }
        }
    }

    /// Meta's phone rule against the form it had (leading zeros counted with take_while), for every
    /// number of up to 11 digits from 0, 1 and 5, and some with separators and letters.
    #[test]
    fn meta_phone_matches_its_former_form() {
        fn former(t: &str) -> Result<String, &'static str> {
            let p = kept(t, |c| !(text::has("-@#<>'\",; ()+./", c) || c.is_ascii_lowercase()));
            if !text::all(&p, |b| b.is_ascii_digit()) {
                return Err("may contain only digits, spaces and + - ( ) . / separators");
            }
            let z = p.bytes().take(2).take_while(|b| *b == b'0').count();
            let q = p[z..].to_string();
            let international = if q.starts_with("0") { false } else if q.starts_with("1") { q.len() == 11 } else { q.len() >= 7 };
            let p = if international { q } else { p };
            if !(7..=16).contains(&p.len()) {
                return Err("must have 7 to 16 digits, with the country code");
            }
            Ok(p)
        }
        let mut numbers = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..11 {
            last = last.iter().flat_map(|n| ["0", "1", "5"].map(|d| n.clone() + d)).collect();
            numbers.extend(last.iter().cloned());
        }
        for extra in ["+00 1 555-0100", "0 0 1234567", "(0)0x1234567", "00-00-1234567", "+1 (650) 555-1212 ext"] {
            numbers.push(extra.to_string());
        }
        for n in &numbers {
            assert_eq!(meta_phone(n), former(n), "{n:?}");
        }
    }

    /// gtag's user_data for every subset of Google's fields, set in any order, against the two-pass
    /// writer it replaced (the non-address fields, then the address fields in `address`).
    #[test]
    fn google_json_matches_the_two_pass_writer() {
        let former = |id: &Identity| -> Option<String> {
            if id.google.is_empty() {
                return None;
            }
            let mut w = W::new('{');
            let is_address = |k: &str| k.ends_with("_name");
            for (k, h) in id.google.iter().filter(|(k, _)| !is_address(k)) {
                w.s(k, h);
            }
            if id.google.iter().any(|(k, _)| is_address(k)) {
                w.key("address").open('{');
                for (k, h) in id.google.iter().filter(|(k, _)| is_address(k)) {
                    w.s(k, h);
                }
                w.close('}');
            }
            Some(w.end('}'))
        };
        for mask in 0..16u32 {
            for reversed in [false, true] {
                let mut id = Identity::default();
                let mut given: Vec<usize> = (0..4).filter(|i| mask >> i & 1 != 0).collect();
                if reversed {
                    given.reverse();
                }
                for i in given {
                    set(&mut id.google, &GOOGLE_KEYS, i, Some(format!("h{i}")));
                }
                assert_eq!(id.google_json(), former(&id), "{mask:b}");
            }
        }
    }

    /// The bitmap takes exactly the listed codes: every pair of letters, in both cases as the
    /// list (upper) and as the lowercased input (lower), plus lengths and bytes around the range.
    #[test]
    fn country_bits_match_the_list() {
        let listed: Vec<&[u8]> = COUNTRIES.as_bytes().chunks(2).collect();
        assert_eq!(listed.len(), 249);
        for first in b'a'..=b'z' {
            for second in b'a'..=b'z' {
                let code = [first, second];
                let upper = code.to_ascii_uppercase();
                assert_eq!(is_country(std::str::from_utf8(&code).unwrap()), listed.contains(&upper.as_slice()), "{code:?}");
            }
        }
        for outside in ["", "u", "usa", "u`", "{s", "@a", "US", "é"] {
            assert!(!is_country(outside), "{outside}");
        }
        assert_eq!(meta_normalize(COUNTRY, " US ").as_deref(), Ok("us"));
        assert!(meta_normalize(COUNTRY, "UK").is_err());
    }

    /// Golden vectors checked against Meta's SDK: tests/oracle/vectors.json is written by
    /// tests/oracle/meta_oracle.mjs from facebook-nodejs-business-sdk itself (and
    /// tests/e2e/consent_oracle.test.mjs fails when the SDK and that file disagree). Here every row
    /// must give the SDK's hash, or be refused where the SDK refuses (throws or returns null). The
    /// rows also carry the Google and TikTok hashes, from an independent JS implementation of
    /// their documented rules hashed with node's crypto.
    #[test]
    fn golden_vectors_agree_with_the_meta_sdk() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/vectors.json")).expect("tests/oracle/vectors.json");
        let v = parse(&text).expect("vectors parse");
        let Some(Value::Array(rows)) = v.get("rows") else { panic!("rows") };
        assert!(rows.len() >= 60, "a vector for every field, several each");
        let mut fields_seen = Vec::new();
        for row in rows {
            let field = row.get("field").and_then(Value::as_str).unwrap();
            let input = row.get("input").and_then(Value::as_str).unwrap();
            let index = field_index(field);
            let norm = meta_normalize(index, input);
            let ours = norm.clone().map(hashed);
            if row.get("tandem_refuses").is_some() {
                assert!(ours.is_err(), "{field} {input:?}: Tandem refuses it ({:?}), gave {ours:?}", row.get("tandem_refuses"));
            }
            match row.get("meta").and_then(Value::as_str) {
                Some(want) => assert_eq!(ours.as_deref(), Ok(want), "meta {field} {input:?}"),
                None => assert!(ours.is_err(), "meta {field} {input:?}: the SDK refuses it, Tandem gave {ours:?}"),
            }
            let google = norm.as_deref().ok().and_then(|n| google_normalize(index, n, input)).map(hashed);
            let tiktok = norm.as_deref().ok().and_then(|n| tiktok_normalize(index, n, input)).map(hashed);
            assert_eq!(google.as_deref(), row.get("google").and_then(Value::as_str), "google {field} {input:?}");
            assert_eq!(tiktok.as_deref(), row.get("tiktok").and_then(Value::as_str), "tiktok {field} {input:?}");
            if !fields_seen.contains(&field) {
                fields_seen.push(field);
            }
        }
        for name in text::split(FIELD_NAMES, ", ") {
            assert!(fields_seen.contains(&name), "no vector for {name}");
        }
    }

    #[test]
    fn merge_hashes_per_platform() {
        let (id, e, w) = merge(r#"{"email":" John.Doe@GMail.com ","phone":"+1 (650) 555-1212","firstName":"John","externalId":"U-1","city":"x"}"#);
        assert!(e.is_empty() && w.is_empty(), "{e:?} {w:?}");
        let keys = |l: &Vec<(&'static str, String)>| l.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(&id.meta), ["em", "ph", "fn", "ct", "external_id"]);
        assert_eq!(keys(&id.google), ["sha256_email_address", "sha256_phone_number", "sha256_first_name"]);
        assert_eq!(keys(&id.tiktok), ["email", "phone_number", "external_id"]);
        assert_eq!(id.meta[0].1, sha256::hex("john.doe@gmail.com"));
        assert_eq!(id.google[0].1, sha256::hex("johndoe@gmail.com"));
        assert_eq!(id.google[1].1, sha256::hex("+16505551212"));
        assert_eq!(id.meta[1].1, sha256::hex("16505551212"));
        assert_eq!(id.tiktok[2].1, sha256::hex("U-1"));
        assert_eq!(id.meta[4].1, sha256::hex("u-1"));
        let g = id.google_json().unwrap();
        assert!(g.contains(r#""address":{"sha256_first_name":""#), "{g}");
        assert!(!id.debug_line().contains('@') && !meta_text(&id).contains("john"));
    }

    /// The debug line against the form it had (a comma before every field but the first, counted
    /// with enumerate), for no field, one and several.
    #[test]
    fn debug_line_matches_its_enumerate_form() {
        let former = |id: &Identity| {
            let mut s = String::from("identify (hashes): ");
            for (i, (k, h)) in id.meta.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(k);
                s.push('=');
                s.push_str(h);
            }
            s
        };
        for values in ["{}", r#"{"email":"a@b.co"}"#, r#"{"email":"a@b.co","phone":"+1 650 555 1212","city":"x","externalId":"u"}"#] {
            let (id, _, _) = merge(values);
            assert_eq!(id.debug_line(), former(&id), "{values}");
        }
    }

    #[test]
    fn invalid_fields_are_left_out_with_an_error_that_never_echoes_the_value() {
        let (id, e, w) = merge(r#"{"email":"no-at-sign.example","phone":"555","gender":"x","firstName":42,"nickname":"z","zip":"12345"}"#);
        let codes: Vec<&str> = e.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["invalid_identity"; 4]);
        assert!(e[0].message.contains("email is not a valid email address") && e[1].message.contains("phone must have 7 to 16 digits"), "{e:?}");
        assert!(e.iter().all(|e| e.input.is_empty() && !e.message.contains("no-at-sign") && !e.message.contains("555")));
        assert_eq!(w, ["Unknown identify field \"nickname\" ignored (known: email, phone, firstName, lastName, city, state, zip, country, gender, dateOfBirth, externalId)"]);
        assert_eq!(id.meta.len(), 1, "zip kept");
    }

    #[test]
    fn hashes_pass_through_and_null_removes() {
        let h = sha256::hex("someone@example.com");
        let (mut id, e, _) = merge(&[r#"{"email":""#, &h.to_uppercase(), r#"","phone":"+44 20 7946 0958"}"#].concat());
        assert!(e.is_empty());
        assert_eq!((id.meta[0].1.as_str(), id.google[0].1.as_str(), id.tiktok[0].1.as_str()), (h.as_str(), h.as_str(), h.as_str()));
        let (mut e, mut w) = (Vec::new(), Vec::new());
        id.merge(&parse(r#"{"email":null}"#).unwrap(), &mut e, &mut w);
        assert_eq!(id.meta.len(), 1);
        id.merge(&Value::Null, &mut e, &mut w);
        assert!(id.is_empty() && id.google_json().is_none() && id.tiktok_json().is_none());
        // A local number without a country code: Meta takes the SDK's digits; no E.164 for Google/TikTok.
        let (id, _, w) = merge(r#"{"phone":"0044 20"}"#);
        assert!(id.meta.is_empty());
        let (id, _, w2) = merge(r#"{"phone":"000 1234 5678"}"#);
        assert!(w.is_empty() && id.google.is_empty() && !id.meta.is_empty() && w2[0].contains("E.164"), "{id:?} {w2:?}");
    }
}
