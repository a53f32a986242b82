//! The event model: canonical names (Meta's standard events), canonical parameters, and the
//! validation that turns what a page passed to `tandem.track` into a `ValidEvent`.
//!
//! Failure rules: a bad name, or a Purchase without value and currency, rejects the event; a bad
//! parameter is dropped with an error naming it and the event still goes, because a conversion
//! with one wrong field is worth more than none.

use crate::core::error::{TagError, MUST_BE_STRING};
use crate::core::json::{is_number_literal, truncate_utf8, Value, W};
use crate::core::text;
use crate::core::unicode::{self, NameFault};

crate::messages! {
    FIELD_DROPPED = "e0" ". The field was dropped; the event was still sent.";
    EVENT_NAME_PREFIX = "e1" "Event name ";
    NAME_NOT_STRING = "e2" "must be a non-empty string, got ";
    NAME_EMPTY = "e3" "must be a non-empty string, got an empty string";
    NAME_TOO_LONG = "e4" "must be at most 40 characters (Google Analytics' limit)";
    NAME_FIRST_NOT_LETTER = "e5" "must start with a letter (Google Analytics naming rule)";
    NAME_CHARACTERS = "e6" "may contain only letters, digits and underscores (Google Analytics naming rule)";
    NAME_RESERVED_PREFIX = "e7" "must not start with google_, ga_, firebase_ or query_id (prefixes Google Analytics reserves)";
    NAME_RESERVED = "e8" "is reserved by Google Analytics; pick another name";
    CUSTOM_NAME_OPEN = "e9" "Event name \"";
    CUSTOM_NOT_STANDARD = "eA" "\" is sent as a custom event; did you mean the standard event \"";
    NAMES_CASE_SENSITIVE = "eB" "\"? Names are case-sensitive.";
    ITEM_NOT_OBJECT = "eC" "must be an object with an id";
    ITEM_ID_REQUIRED = "eD" "is required: a string or integer of 1 to 256 characters; the item was dropped";
    INTEGER_NOT_NEGATIVE = "eE" "must be an integer ≥ 0";
    NUMBER_NOT_NEGATIVE = "eF" "must be a number ≥ 0 or a numeric string like \"12.50\"";
    NOT_A_CONTENTS_FIELD = "eH" " is not a contents field (id, quantity, price, name, category) and was ignored";
    PARAMS_NOT_OBJECT = "eI" "Event params must be an object, got ";
    SENT_WITHOUT_PARAMS = "eJ" "; the event was sent without params.";
    CURRENCY_CODE = "eK" "must be an active ISO 4217 code such as \"EUR\" or \"USD\"";
    ORDER_ID_RULE = "eL" "must be a non-empty string or integer of at most 64 characters without control characters (Google's transaction_id limit; an empty id merges purchases)";
    CONTENTS_CAP = "eM" "may hold at most 200 items; the rest were dropped";
    CONTENTS_NOT_ARRAY = "eN" "must be an array of {id, quantity, price, name, category}";
    CONTENT_IDS_NOT_ARRAY = "eO" "must be an array of strings or integers";
    CONTENT_ID_ENTRY = "eP" "entries must be strings or integers of 1 to 256 characters";
    CONTENT_TYPE_RULE = "eQ" "must be \"product\" or \"product_group\"";
    NUMBER_RULE = "eR" "must be a number or a numeric string";
    STATUS_RULE = "eS" "must be a string or a boolean";
    UNREADABLE_INSIDE = "eT" "it contains a value that could not be read";
    COULD_NOT_BE_READ = "eU" "could not be read (";
    MISSING_VALUE_AND_CURRENCY = "eV" "value, currency";
    PURCHASE_MISSING = "eW" "Purchase requires value and currency (Meta and Google both need them); missing: ";
    EVENT_NOT_SENT = "eX" ". The event was not sent.";
    VALUE_WITHOUT_CURRENCY = "eY" "params.value needs params.currency (missing: currency); the value was dropped and the event sent without it.";
}

/// Meta's standard events, which Tandem uses as its canonical names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standard {
    PageView,
    ViewContent,
    Search,
    AddToCart,
    AddToWishlist,
    InitiateCheckout,
    AddPaymentInfo,
    Purchase,
    Lead,
    CompleteRegistration,
    Contact,
    CustomizeProduct,
    Donate,
    FindLocation,
    Schedule,
    StartTrial,
    SubmitApplication,
    Subscribe,
}

use Standard::*;

impl Standard {
    pub const ALL: &'static [Standard] = &[
        PageView, ViewContent, Search, AddToCart, AddToWishlist, InitiateCheckout, AddPaymentInfo, Purchase, Lead,
        CompleteRegistration, Contact, CustomizeProduct, Donate, FindLocation, Schedule, StartTrial, SubmitApplication,
        Subscribe,
    ];

    pub fn name(self) -> &'static str {
        // In the enum's order (a test checks it).
        const NAMES: text::Names<18> = text::Names::new(concat!(
            "PageView ViewContent Search AddToCart AddToWishlist InitiateCheckout AddPaymentInfo Purchase Lead ",
            "CompleteRegistration Contact CustomizeProduct Donate FindLocation Schedule StartTrial SubmitApplication ",
            "Subscribe",
        ));
        NAMES.get(self as usize)
    }

    pub fn from_name(name: &str) -> Option<Standard> {
        Standard::ALL.iter().find(|s| s.name() == name).copied()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventName {
    Standard(Standard),
    /// Passed the GA4 naming rules (which are the strictest of the three platforms).
    Custom(String),
}

impl EventName {
    pub fn as_str(&self) -> &str {
        match self {
            EventName::Standard(s) => s.name(),
            EventName::Custom(c) => c,
        }
    }
    pub fn standard(&self) -> Option<Standard> {
        match self {
            EventName::Standard(s) => Some(*s),
            EventName::Custom(_) => None,
        }
    }
}

pub const NAME_MAX: usize = 40;
/// GA4's reserved prefixes (support.google.com/analytics/answer/13316687: `query_id` for web
/// event names; `google_`, `ga_`, `firebase_` are reserved across GA4).
/// One space apart, as RESERVED_NAMES.
const RESERVED_PREFIXES: &str = "google_ ga_ firebase_ query_id";
/// GA4's reserved web event names (same page), space-separated: a `&[&str]` kept a pointer and a
/// length for each, which compressed worse than the names.
const RESERVED_NAMES: &str = concat!(
    "ad_impression app_remove app_store_refund app_store_subscription_cancel app_store_subscription_renew ",
    "click error file_download first_open first_visit form_start form_submit in_app_purchase ",
    "page_view scroll session_start user_engagement view_complete video_progress video_start ",
    "view_search_results",
);

/// One line item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Content {
    pub id: String,
    /// Integer literal.
    pub quantity: Option<String>,
    /// Number literal, ≥ 0.
    pub price: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
}

/// A line-item field, named and ordered by each platform in its own way (see `write_items`).
#[derive(Clone, Copy)]
pub enum Item {
    Id,
    Name,
    Price,
    Quantity,
    Category,
}

/// The fields Meta's pixel and the endpoint's `custom_data` both write after the contents, in
/// this order, with the same keys: written once here for both.
pub fn write_details(w: &mut W, p: &Params) {
    w.opt_s("content_type", p.content_type)
        .opt_string("content_name", &p.content_name)
        .opt_string("content_category", &p.content_category)
        .opt_number("num_items", &p.num_items)
        .opt_string("search_string", &p.search_string)
        .opt_number("predicted_ltv", &p.predicted_ltv);
    write_status(w, p.status.as_ref());
}

/// `params.status` as Meta's pixel and the endpoint take it: the string or boolean given.
fn write_status(w: &mut W, status: Option<&Status>) {
    match status {
        Some(Status::Text(text)) => {
            w.s("status", text);
        }
        Some(Status::Flag(flag)) => {
            w.b("status", *flag);
        }
        None => {}
    }
}

/// `"<list_key>":[{…},…]`: one object per content, with `fields` in their order; `ids_as_items`:
/// with no contents, one `{<id key>: id}` per content id instead (platforms whose item list is the
/// only place for ids). Nothing when there is nothing to list.
pub fn write_items(w: &mut W, list_key: &str, params: &Params, fields: &[(Item, &str)], ids_as_items: bool) {
    let ids = if ids_as_items && params.contents.is_empty() { params.content_ids.as_slice() } else { &[] };
    if params.contents.is_empty() && ids.is_empty() {
        return;
    }
    w.key(list_key).open('[');
    for id in ids {
        w.open('{').s(fields[0].1, id).close('}');
    }
    for c in &params.contents {
        w.open('{');
        for &(field, key) in fields {
            match field {
                Item::Id => w.s(key, &c.id),
                Item::Name => w.opt_string(key, &c.name),
                Item::Price => w.opt_number(key, &c.price),
                Item::Quantity => w.opt_number(key, &c.quantity),
                Item::Category => w.opt_string(key, &c.category),
            };
        }
        w.close('}');
    }
    w.close(']');
}

/// Canonical parameters, validated. Numbers are JSON literal text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    pub value: Option<String>,
    /// Uppercase ISO 4217.
    pub currency: Option<String>,
    pub order_id: Option<String>,
    pub contents: Vec<Content>,
    pub content_ids: Vec<String>,
    pub content_type: Option<&'static str>,
    pub content_name: Option<String>,
    pub content_category: Option<String>,
    pub num_items: Option<String>,
    pub search_string: Option<String>,
    pub predicted_ltv: Option<String>,
    pub status: Option<Status>,
    /// Any other key, with its value's JSON text: custom values are only ever written out.
    pub custom: Vec<(String, String)>,
}

/// `params.status`: a string or a boolean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Text(String),
    Flag(bool),
}

impl Params {
    /// `content_ids`, or else the ids of `contents` (the tests' view of it: Meta's mapping writes
    /// the same list where it reads it).
    #[cfg(test)]
    pub fn ids(&self) -> Vec<&str> {
        // Loops rather than map and collect, which linked its own extend for each closure.
        let mut ids = Vec::new();
        if self.content_ids.is_empty() {
            for c in &self.contents {
                ids.push(c.id.as_str());
            }
        } else {
            for id in &self.content_ids {
                ids.push(id.as_str());
            }
        }
        ids
    }
}

/// An event that passed validation; the only thing destinations and the payload accept.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidEvent {
    pub name: EventName,
    pub params: Params,
    pub event_id: String,
    pub time_ms: u64,
    pub url: String,
    pub referrer: String,
}

/// Active ISO 4217 codes, packed three letters each (funds and metals left out). Sorted: the
/// build fails otherwise (currency_gaps). Not in the wasm itself, only CURRENCY_GAPS.
const CURRENCIES: &str = concat!(
    "AEDAFNALLAMDANGAOAARSAUDAWGAZNBAMBBDBDTBGNBHDBIFBMDBNDBOBBOVBRLBSDBTNBWPBYNBZDCADCDFCHECHFCHWCLFCLPCNYCOPCOU",
    "CRCCUPCVECZKDJFDKKDOPDZDEGPERNETBEURFJDFKPGBPGELGHSGIPGMDGNFGTQGYDHKDHNLHTGHUFIDRILSINRIQDIRRISKJMDJODJPYKES",
    "KGSKHRKMFKPWKRWKWDKYDKZTLAKLBPLKRLRDLSLLYDMADMDLMGAMKDMMKMNTMOPMRUMURMVRMWKMXNMXVMYRMZNNADNGNNIONOKNPRNZDOMR",
    "PABPENPGKPHPPKRPLNPYGQARRONRSDRUBRWFSARSBDSCRSDGSEKSGDSHPSLESOSSRDSSPSTNSVCSYPSZLTHBTJSTMTTNDTOPTRYTTDTWDTZS",
    "UAHUGXUSDUSNUYIUYUUYWUZSVEDVESVNDVUVWSTXAFXCDXCGXOFXPFYERZARZMWZWG",
);

/// CURRENCIES as the gaps between their numbers (letters as base-26 digits, AAA = 0), one byte
/// each, a 0 adding 256 without a code; built at compile time. The wasm holds these 189 bytes,
/// which gzip to about half the 498-letter list (-321 B of gzip with the simpler search). A
/// currency check adds up at most that many bytes, stopping at the first code not below it.
const CURRENCY_GAPS: [u8; currency_gaps(None)] = {
    let mut gaps = [0; currency_gaps(None)];
    currency_gaps(Some(&mut gaps));
    gaps
};

/// The number of a three-letter code (uppercase ASCII); None for anything else.
const fn currency_number(code: &[u8]) -> Option<usize> {
    let mut number = 0;
    let mut i = 0;
    if code.len() != 3 {
        return None;
    }
    while i < 3 {
        if !code[i].is_ascii_uppercase() {
            return None;
        }
        number = number * 26 + (code[i] - b'A') as usize;
        i += 1;
    }
    Some(number)
}

/// Writes CURRENCY_GAPS into `out` when given; returns how many bytes they take.
const fn currency_gaps(mut out: Option<&mut [u8]>) -> usize {
    let (table, mut previous, mut len, mut at) = (CURRENCIES.as_bytes(), 0, 0, 0);
    while at < table.len() {
        let Some(number) = currency_number(table.split_at(at).1.split_at(3).0) else { panic!("CURRENCIES: not a code") };
        assert!(at == 0 || number > previous, "CURRENCIES must stay sorted and unique");
        let mut gap = number - previous;
        while gap > 255 {
            len += 1; // a 0 byte, already there
            gap -= 256;
        }
        // A gap of a multiple of 256 would end on a 0, read as no code; the table has none.
        assert!(gap > 0, "CURRENCIES: a gap that is a multiple of 256");
        if let Some(out) = &mut out {
            out[len] = gap as u8;
        }
        len += 1;
        previous = number;
        at += 3;
    }
    len
}

pub fn is_currency(code: &str) -> bool {
    let Some(wanted) = currency_number(code.as_bytes()) else { return false };
    let mut number = 0;
    for &gap in &CURRENCY_GAPS {
        number += if gap == 0 { 256 } else { gap as usize };
        if gap != 0 && number >= wanted {
            return number == wanted;
        }
    }
    false
}

const TEXT_CAP: usize = 500;
const ID_CAP: usize = 256;
const LIST_CAP: usize = 200;
pub const ORDER_ID_MAX: usize = 64;

/// Collects errors while validating, naming each field.
struct Check<'a> {
    errors: &'a mut Vec<TagError>,
    warnings: &'a mut Vec<String>,
}

impl Check<'_> {
    fn bad(&mut self, code: &'static str, field: &str, rule: &str, v: &Value) {
        let mut m = String::from("params.");
        m.push_str(field);
        m.push(' ');
        m.push_str(rule);
        m.push_str("; got ");
        m.push_str(v.kind());
        m.push_str(FIELD_DROPPED);
        self.errors.push(TagError::new(code, m, v.to_json()));
    }

    /// A field's checked value into its slot, or the field reported by `bad` and dropped: one
    /// match out of line, not one with its assignment in each arm of the caller.
    /// `item`: the field is `contents[item].<field>`, named so only when it is reported (most
    /// items have no bad field, and track() pays for every string it builds).
    #[inline(never)]
    fn keep(&mut self, slot: &mut Option<String>, checked: Option<String>, code: &'static str, item: Option<usize>, field: &str, rule: &str, v: &Value) {
        match (checked, item) {
            (Some(t), _) => *slot = Some(t),
            (None, Some(i)) => self.bad(code, &item_field(i, field), rule, v),
            (None, None) => self.bad(code, field, rule, v),
        }
    }
}

/// A number literal from a number or a numeric string ("12.50"), kept as written. Exponents are
/// limited so the value stays finite in every JSON reader.
fn number_text(v: &Value) -> Option<String> {
    let s = match v {
        // A parsed number's syntax was checked by the parser (and is again where it is written).
        Value::Number(n) => n.as_str(),
        Value::String(s) => Some(text::trim(s)).filter(|t| is_number_literal(t))?,
        _ => return None,
    };
    // At most two exponent digits: 1e99 is finite everywhere, 1e400 is Infinity in JS. Counted in
    // one loop: `find_any` and an iterator chain called a function per byte, for every value,
    // price and quantity of every event.
    let (mut exponent, mut exp_digits) = (false, 0);
    for b in s.bytes() {
        if b | 0x20 == b'e' {
            exponent = true;
        } else if exponent && b.is_ascii_digit() {
            exp_digits += 1;
        }
    }
    if s.len() <= 40 && exp_digits <= 2 {
        Some(s.to_string())
    } else {
        None
    }
}

/// A number literal from `v` (as `number_text`) unless it is below zero: a `-` with a nonzero
/// digit before any exponent (`-0.0` and `-0e5` are zero). One loop over the bytes, where
/// `take_while(..).any(..)` linked both adapters; it takes the value, not `number_text`'s Option,
/// as `Option::and_then` linked a function of its own for it.
fn non_negative(v: &Value) -> Option<String> {
    let s = number_text(v)?;
    if let [b'-', rest @ ..] = s.as_bytes() {
        for &b in rest {
            match b {
                b'e' | b'E' => break,
                b'1'..=b'9' => return None,
                _ => {}
            }
        }
    }
    Some(s)
}

/// A non-negative integer literal (quantities, counts).
fn count_text(v: &Value) -> Option<String> {
    let s = number_text(v)?;
    if !s.is_empty() && s.len() <= 15 && text::all(&s, |b| b.is_ascii_digit()) {
        Some(s)
    } else {
        None
    }
}

/// A product or order id: a string or an integer, 1..=`max` chars without control characters,
/// once trimmed: an id read from the page's text (`textContent`) comes with its line breaks and
/// indentation, and must still be the same order as the backend's.
fn id_text(v: &Value, max: usize) -> Option<String> {
    let s = match v {
        // Most ids are printable ASCII: nothing to trim, a char per byte, no control character,
        // so the trim and the checks below (which decode every char) would find what one loop does.
        Value::String(s) if !s.is_empty() && s.len() <= max && text::all(s, |b| b.is_ascii_graphic()) => return Some(s.clone()),
        Value::String(s) => text::trim(s),
        Value::Number(n) if is_number_literal(n) && text::find_any(n, ".eE").is_none() => n,
        _ => return None,
    };
    // Counted and checked in one walk over the chars, not by count() and any(..) walking twice.
    let mut len = 0;
    for c in s.chars() {
        if c.is_control() {
            return None;
        }
        len += 1;
    }
    if len == 0 || len > max {
        None
    } else {
        Some(s.to_string())
    }
}

fn text(v: &Value) -> Option<String> {
    let mut s = v.as_str()?.to_string();
    truncate_utf8(&mut s, TEXT_CAP);
    Some(s)
}

fn currency(v: &Value) -> Option<String> {
    let code = text::trim(v.as_str()?).to_ascii_uppercase();
    if is_currency(&code) {
        Some(code)
    } else {
        None
    }
}

/// How many chars `s` holds, counted by their first bytes (any byte but a 10xxxxxx one):
/// `chars().count()` linked std's general counting routine for the name check alone.
fn char_count(s: &str) -> usize {
    let mut n = 0;
    for &b in s.as_bytes() {
        if b & 0xC0 != 0x80 {
            n += 1;
        }
    }
    n
}

/// Validates an event name; `None` (with an error) when it cannot be sent.
pub fn validate_name(name: &Value, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) -> Option<EventName> {
    let reject = |errors: &mut Vec<TagError>, why: &str| {
        let mut m = String::from(EVENT_NAME_PREFIX);
        m.push_str(why);
        errors.push(TagError::new("invalid_event_name", m, name.to_json()));
        None
    };
    let s = match name {
        Value::String(s) => s.as_str(),
        other => {
            let mut why = String::from(NAME_NOT_STRING);
            why.push_str(other.kind());
            return reject(errors, &why);
        }
    };
    if s.is_empty() {
        return reject(errors, NAME_EMPTY);
    }
    if let Some(st) = Standard::from_name(s) {
        return Some(EventName::Standard(st));
    }
    if char_count(s) > NAME_MAX {
        return reject(errors, NAME_TOO_LONG);
    }
    match unicode::name_fault(s) {
        Some(NameFault::FirstNotLetter) => return reject(errors, NAME_FIRST_NOT_LETTER),
        Some(NameFault::OtherThanLetterDigitUnderscore) => {
            return reject(errors, NAME_CHARACTERS)
        }
        None => {}
    }
    let lower = s.to_ascii_lowercase();
    // A loop, not any(..), which linked the split iterator's any for this alone.
    for p in text::split(RESERVED_PREFIXES, " ") {
        if lower.starts_with(p) {
            return reject(errors, NAME_RESERVED_PREFIX);
        }
    }
    if text::listed(RESERVED_NAMES, " ", s) {
        return reject(errors, NAME_RESERVED);
    }
    if let Some(st) = Standard::ALL.iter().find(|st| st.name().eq_ignore_ascii_case(s)) {
        let mut w = String::from(CUSTOM_NAME_OPEN);
        w.push_str(s);
        w.push_str(CUSTOM_NOT_STANDARD);
        w.push_str(st.name());
        w.push_str(NAMES_CASE_SENSITIVE);
        warnings.push(w);
    }
    Some(EventName::Custom(s.to_string()))
}

/// `contents[i]` and `contents[i].name`, written only for a message: most items have none, and
/// track() pays for every string it builds.
fn item_field(i: usize, name: &str) -> String {
    let mut f = String::from("contents[");
    crate::core::json::write_u64(&mut f, i as u64);
    f.push(']');
    if !name.is_empty() {
        f.push('.');
        f.push_str(name);
    }
    f
}

fn content(c: &mut Check, i: usize, item: &Value) -> Option<Content> {
    let Value::Object(members) = item else {
        c.bad("invalid_param", &item_field(i, ""), ITEM_NOT_OBJECT, item);
        return None;
    };
    let Some(id) = item.get("id").and_then(|v| id_text(v, ID_CAP)) else {
        c.bad("invalid_param", &item_field(i, "id"), ITEM_ID_REQUIRED, item.get("id").unwrap_or(&Value::Null));
        return None;
    };
    let mut out = Content { id, ..Content::default() };
    for (k, v) in members {
        match k.as_str() {
            "id" => {}
            "quantity" => c.keep(&mut out.quantity, count_text(v), "invalid_param", Some(i), k, INTEGER_NOT_NEGATIVE, v),
            "price" => c.keep(&mut out.price, non_negative(v), "invalid_param", Some(i), k, NUMBER_NOT_NEGATIVE, v),
            "name" => c.keep(&mut out.name, text(v), "invalid_param", Some(i), k, MUST_BE_STRING, v),
            "category" => c.keep(&mut out.category, text(v), "invalid_param", Some(i), k, MUST_BE_STRING, v),
            _ => {
                let mut w = String::from("params.");
                w.push_str(&item_field(i, k));
                w.push_str(NOT_A_CONTENTS_FIELD);
                c.warnings.push(w);
            }
        }
    }
    Some(out)
}

/// Validates `params` for event `name`. `None` (with errors) when the event must not be sent.
pub fn validate_params(name: &EventName, params: &Value, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) -> Option<Params> {
    let mut p = Params::default();
    fill_params(name, params, &mut p, errors, warnings).then_some(p)
}

/// `validate_params` into the caller's empty `p`; false (with errors) when the event must not be
/// sent. In place: the returned Option<Params> was copied out whole and moved again by `track`.
pub fn fill_params(name: &EventName, params: &Value, p: &mut Params, errors: &mut Vec<TagError>, warnings: &mut Vec<String>) -> bool {
    let mut c = Check { errors, warnings };
    let members: &[(String, Value)] = match params {
        Value::Object(m) => m,
        Value::Null => &[],
        other => {
            let mut m = String::from(PARAMS_NOT_OBJECT);
            m.push_str(other.kind());
            m.push_str(SENT_WITHOUT_PARAMS);
            c.errors.push(TagError::new("invalid_params", m, other.to_json()));
            &[]
        }
    };
    // Walk in order, letting a later duplicate key win like JSON.parse does.
    let last_of = |i: usize, k: &str| !members[i + 1..].iter().any(|(k2, _)| k2 == k);
    for (i, (k, v)) in members.iter().enumerate() {
        if !last_of(i, k) {
            continue;
        }
        match k.as_str() {
            "value" => c.keep(&mut p.value, non_negative(v), "invalid_value", None, k, NUMBER_NOT_NEGATIVE, v),
            "currency" => c.keep(&mut p.currency, currency(v), "invalid_currency", None, k, CURRENCY_CODE, v),
            "order_id" => c.keep(&mut p.order_id, id_text(v, ORDER_ID_MAX), "invalid_param", None, k, ORDER_ID_RULE, v),
            "contents" => match v {
                Value::Array(items) => {
                    for (j, item) in items.iter().enumerate() {
                        if j == LIST_CAP {
                            c.bad("invalid_param", k, CONTENTS_CAP, v);
                            break;
                        }
                        if let Some(ct) = content(&mut c, j, item) {
                            p.contents.push(ct);
                        }
                    }
                }
                _ => c.bad("invalid_param", k, CONTENTS_NOT_ARRAY, v),
            },
            "content_ids" => {
                let single = std::slice::from_ref(v);
                let items = match v {
                    Value::Array(items) => items.as_slice(),
                    Value::String(_) | Value::Number(_) => single,
                    _ => {
                        c.bad("invalid_param", k, CONTENT_IDS_NOT_ARRAY, v);
                        &[]
                    }
                };
                for item in items.iter().take(LIST_CAP) {
                    match id_text(item, ID_CAP) {
                        Some(id) => p.content_ids.push(id),
                        None => c.bad("invalid_param", "content_ids[]", CONTENT_ID_ENTRY, item),
                    }
                }
            }
            "content_type" => match v.as_str() {
                Some("product") => p.content_type = Some("product"),
                Some("product_group") => p.content_type = Some("product_group"),
                _ => c.bad("invalid_param", k, CONTENT_TYPE_RULE, v),
            },
            "content_name" => c.keep(&mut p.content_name, text(v), "invalid_param", None, k, MUST_BE_STRING, v),
            "content_category" => c.keep(&mut p.content_category, text(v), "invalid_param", None, k, MUST_BE_STRING, v),
            "search_string" => c.keep(&mut p.search_string, text(v), "invalid_param", None, k, MUST_BE_STRING, v),
            "num_items" => c.keep(&mut p.num_items, count_text(v), "invalid_param", None, k, INTEGER_NOT_NEGATIVE, v),
            "predicted_ltv" => c.keep(&mut p.predicted_ltv, number_text(v), "invalid_param", None, k, NUMBER_RULE, v),
            "status" => match v {
                Value::String(text) => p.status = Some(Status::Text(text.clone())),
                Value::Bool(flag) => p.status = Some(Status::Flag(*flag)),
                _ => c.bad("invalid_param", k, STATUS_RULE, v),
            },
            _ if v.contains_invalid() => {
                let reason = match v {
                    Value::Invalid(r) => r.as_str(),
                    _ => UNREADABLE_INSIDE,
                };
                let mut rule = String::from(COULD_NOT_BE_READ);
                rule.push_str(reason);
                rule.push(')');
                c.bad("invalid_param", k, &rule, v);
            }
            _ => p.custom.push((k.clone(), v.to_json())),
        }
    }

    if matches!(name, EventName::Standard(Purchase)) {
        let missing = match (p.value.is_none(), p.currency.is_none()) {
            (true, true) => MISSING_VALUE_AND_CURRENCY,
            (true, false) => "value",
            (false, true) => "currency",
            (false, false) => "",
        };
        if !missing.is_empty() {
            let mut m = String::from(PURCHASE_MISSING);
            m.push_str(missing);
            m.push_str(EVENT_NOT_SENT);
            c.errors.push(TagError::new("missing_field", m, params.to_json()));
            return false;
        }
    } else if let (Some(value), None) = (&p.value, &p.currency) {
        // GA4 ignores a value without currency and Meta rejects it; dropping the value keeps
        // every destination consistent while still counting the event.
        c.errors.push(TagError::new(
            "missing_field",
            VALUE_WITHOUT_CURRENCY,
            value.as_str(),
        ));
        p.value = None;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::json::parse;

    #[test]
    fn char_count_matches_chars_count() {
        let pieces = ["", "a", "é", "€", "😀", "Z_9", "\u{7f}", "\u{80}", "\u{7ff}", "\u{800}", "\u{ffff}", "\u{10000}", "\u{10ffff}"];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = String::from(a) + b + c + &"x".repeat(40);
                    assert_eq!(char_count(&s), s.chars().count(), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn non_negative_matches_the_former_rule() {
        let former = |s: &str| !(s.starts_with('-') && s.bytes().take_while(|b| *b != b'e' && *b != b'E').any(|b| (b'1'..=b'9').contains(&b)));
        for s in ["", "-", "0", "-0", "-0.0", "-0.00", "-0e5", "-0E-3", "-0.0e-7", "-1", "-0.1", "-0.01e2", "1", "12.50", "1e-5", "-e1", "-.5", "--", "-0e", "-9", "0.0", "-00001"] {
            assert_eq!(non_negative(&Value::String(s.to_string())).is_some(), former(s) && number_text(&Value::String(s.to_string())).is_some(), "{s:?}");
        }
    }

    /// Validates `name` + `params` (JSON) and checks the outcome: `Ok(debug of Params)` pieces
    /// that must appear, or the error codes/messages expected.
    fn check(name: &str, params: &str, expected: Result<&[&str], &[(&str, &str)]>) -> Option<Params> {
        let (mut errors, mut warnings) = (Vec::new(), Vec::new());
        let name_v = parse(name).unwrap();
        let params_v = parse(params).unwrap();
        let got = validate_name(&name_v, &mut errors, &mut warnings).and_then(|n| validate_params(&n, &params_v, &mut errors, &mut warnings));
        match expected {
            Ok(fragments) => {
                let p = got.unwrap_or_else(|| panic!("{name} {params}: rejected with {errors:?}"));
                let dbg = format!("{p:?}");
                for f in fragments {
                    assert!(dbg.contains(f), "{name} {params}: {dbg} lacks {f}");
                }
                Some(p)
            }
            Err(want) => {
                for (code, msg) in want {
                    assert!(
                        errors.iter().any(|e| e.code == *code && e.message.contains(msg)),
                        "{name} {params}: want {code} / {msg}, got {errors:?}"
                    );
                }
                got
            }
        }
    }

    #[test]
    fn standard_names() {
        assert_eq!(Standard::ALL.len(), 18);
        for (i, st) in Standard::ALL.iter().enumerate() {
            assert_eq!(*st as usize, i, "ALL in the enum's order");
            assert_eq!(st.name(), format!("{st:?}"), "Names in the enum's order");
            let mut name = String::from("\"");
            name.push_str(st.name());
            name.push('"');
            let params = if *st == Purchase { r#"{"value":1,"currency":"EUR"}"# } else { "{}" };
            let (mut e, mut w) = (Vec::new(), Vec::new());
            assert_eq!(validate_name(&parse(&name).unwrap(), &mut e, &mut w), Some(EventName::Standard(*st)));
            check(&name, params, Ok(&[]));
        }
    }

    #[test]
    fn name_rules() {
        let r = |name: &str, msg: &str| assert!(check(name, "{}", Err(&[("invalid_event_name", msg)])).is_none(), "{name}");
        r("null", "non-empty string, got null");
        r("42", "got a number");
        r("{}", "got an object");
        r(r#"{"\u0000tandem_invalid":"symbol"}"#, "got an unreadable value");
        r(r#""""#, "got an empty string");
        r(r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#, "at most 40");
        r(r#""1abc""#, "start with a letter");
        r(r#""_abc""#, "start with a letter");
        r(r#""add to cart""#, "letters, digits and underscores");
        r(r#""ab-c""#, "letters, digits and underscores");
        r(r#""google_x""#, "prefixes");
        r(r#""GA_x""#, "prefixes");
        r(r#""firebase_x""#, "prefixes");
        r(r#""query_id_x""#, "prefixes");
        r(r#""Query_ID""#, "prefixes");
        check(r#""googlex""#, "{}", Ok(&[]));
        check(r#""gax""#, "{}", Ok(&[]));
        check(r#""query""#, "{}", Ok(&[]));
        r(r#""page_view""#, "reserved");
        r(r#""session_start""#, "reserved");
        // Every reserved name, first and last included; parts and extensions of them are not.
        assert_eq!(RESERVED_NAMES.split(' ').count(), 21);
        for reserved in RESERVED_NAMES.split(' ') {
            r(&format!("\"{reserved}\""), "reserved");
        }
        for near in ["ad_impressio", "click_", "clic", "view_search_results_", "app", "pp_remove"] {
            check(&format!("\"{near}\""), "{}", Ok(&[]));
        }
        check(r#""BookDemo""#, "{}", Ok(&[]));
        check(r#""café_visit""#, "{}", Ok(&[]));
        check(r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#, "{}", Ok(&[]));
        let (mut e, mut w) = (Vec::new(), Vec::new());
        assert_eq!(validate_name(&parse("\"purchase\"").unwrap(), &mut e, &mut w), Some(EventName::Custom("purchase".into())));
        assert!(w.first().is_some_and(|w| w.contains("did you mean the standard event \"Purchase\"")));
    }

    #[test]
    fn purchase_requires_value_and_currency() {
        let e = |params: &str, msg: &str| assert!(check("\"Purchase\"", params, Err(&[("missing_field", msg)])).is_none(), "{params}");
        e("{}", "missing: value, currency");
        e(r#"{"value":10}"#, "missing: currency");
        e(r#"{"currency":"EUR"}"#, "missing: value");
        e(r#"{"value":"abc","currency":"EUR"}"#, "missing: value");
        e(r#"{"value":10,"currency":"XYZ"}"#, "missing: currency");
        e("null", "missing: value, currency");
        check("\"Purchase\"", r#"{"value":"12.50","currency":"eur"}"#, Ok(&["value: Some(\"12.50\")", "currency: Some(\"EUR\")"]));
    }

    #[test]
    fn value_without_currency_is_dropped_elsewhere() {
        let p = check("\"AddToCart\"", r#"{"value":5}"#, Err(&[("missing_field", "missing: currency")])).unwrap();
        assert_eq!(p.value, None);
    }

    #[test]
    fn values_and_numbers() {
        for ok in ["0", "12.50", "\"12.50\"", "\" 3 \"", "1e3", "1E+99", "-0"] {
            let params = String::from(r#"{"currency":"USD","value":"#) + ok + "}";
            check("\"Lead\"", &params, Ok(&["value: Some("]));
        }
        for bad in ["\"abc\"", "\"\"", "\"NaN\"", "-1", "\"-0.5\"", "true", "null", "[1]", "1e999999", "1e400", "1E+100", r#"{"\u0000tandem_invalid":"NaN"}"#] {
            let params = String::from(r#"{"currency":"USD","value":"#) + bad + "}";
            check("\"Lead\"", &params, Err(&[("invalid_value", "params.value must be a number")]));
        }
    }

    #[test]
    fn currencies() {
        let sorted: Vec<&[u8]> = CURRENCIES.as_bytes().chunks(3).collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "CURRENCIES must stay sorted and unique");
        assert_eq!(CURRENCIES.len() % 3, 0);
        // Every three capital letters: the gaps take exactly the listed codes.
        for number in 0..26 * 26 * 26 {
            let code = [(number / 676) as u8 + b'A', (number / 26 % 26) as u8 + b'A', (number % 26) as u8 + b'A'];
            assert_eq!(is_currency(std::str::from_utf8(&code).unwrap()), sorted.contains(&code.as_slice()), "{code:?}");
        }
        assert!(CURRENCY_GAPS.contains(&0), "a gap over 255 is tested");
        for ok in ["EUR", "USD", "JPY", "GBP", "CHF", "BRL", "ZWG", "XCG", "AED"] {
            assert!(is_currency(ok), "{ok}");
        }
        for bad in ["", "EU", "EURO", "XXX", "eur", "HRK", "ABC", "XAU", "AAA", "ZZZ", "AED ", "\u{0}\u{0}\u{0}", "@ED", "AE[", "ÀED"] {
            assert!(!is_currency(bad), "{bad}");
        }
        check("\"Lead\"", r#"{"currency":" usd "}"#, Ok(&["currency: Some(\"USD\")"]));
        check("\"Lead\"", r#"{"currency":"US$"}"#, Err(&[("invalid_currency", "ISO 4217")]));
        check("\"Lead\"", r#"{"currency":978}"#, Err(&[("invalid_currency", "got a number")]));
    }

    #[test]
    fn canonical_params() {
        let p = check(
            "\"ViewContent\"",
            r#"{"order_id":1001,"contents":[{"id":"A","quantity":2,"price":"9.99","name":"Shoe","category":"Shoes"},{"id":7}],
               "content_type":"product","content_name":"N","content_category":"C","num_items":3,"search_string":"s",
               "predicted_ltv":-5,"status":true,"my_param":{"a":[1]}}"#,
            Ok(&[]),
        )
        .unwrap();
        assert_eq!(p.order_id.as_deref(), Some("1001"));
        assert_eq!(
            p.contents,
            vec![
                Content { id: "A".into(), quantity: Some("2".into()), price: Some("9.99".into()), name: Some("Shoe".into()), category: Some("Shoes".into()) },
                Content { id: "7".into(), ..Content::default() },
            ]
        );
        assert_eq!(p.ids(), vec!["A", "7"]);
        assert_eq!((p.content_type, p.num_items.as_deref(), p.predicted_ltv.as_deref()), (Some("product"), Some("3"), Some("-5")));
        assert_eq!(p.status, Some(Status::Flag(true)));
        assert_eq!(p.custom, vec![("my_param".to_string(), r#"{"a":[1]}"#.to_string())]);
        let p = check("\"Search\"", r#"{"content_ids":["x",5],"search_string":"shoes"}"#, Ok(&[])).unwrap();
        assert_eq!(p.ids(), vec!["x", "5"]);
        let p = check("\"Search\"", r#"{"content_ids":"x"}"#, Ok(&[])).unwrap();
        assert_eq!(p.content_ids, vec!["x"]);
    }

    /// fnv64 of the text `each_field_is_kept_or_reported_as_before` writes, as the code before
    /// Check::keep (a match with its assignment in each arm) wrote it.
    const PINNED: u64 = 17062404897928572205;

    /// Every field a check keeps or reports (params and a content's), good and bad, and a key
    /// given twice: the kept params, errors and warnings, pinned whole.
    #[test]
    fn each_field_is_kept_or_reported_as_before() {
        let fields = ["value", "currency", "order_id", "content_name", "content_category", "search_string", "num_items", "predicted_ltv"];
        let values = ["\"12.50\"", "\"eur\"", "\"A-1\"", "3", "-2", "\"\"", "{}", "null", "\"x\""];
        let mut all = String::new();
        for field in fields {
            for value in values {
                let params = format!(r#"{{"currency":"EUR","{field}":{value}}}"#);
                let (mut e, mut w) = (Vec::new(), Vec::new());
                let p = validate_params(&EventName::Standard(ViewContent), &parse(&params).unwrap(), &mut e, &mut w);
                all.push_str(&format!("{params} {p:?} {e:?} {w:?}\n"));
            }
        }
        for item in ["quantity", "price", "name", "category"] {
            for value in values {
                let params = format!(r#"{{"contents":[{{"id":"a","{item}":{value}}},{{"id":"b","{item}":5,"{item}":{value}}}],"currency":"EUR","value":1,"value":{value}}}"#);
                let (mut e, mut w) = (Vec::new(), Vec::new());
                let p = validate_params(&EventName::Standard(Purchase), &parse(&params).unwrap(), &mut e, &mut w);
                all.push_str(&format!("{params} {p:?} {e:?} {w:?}\n"));
            }
        }
        assert_eq!(crate::core::ids::fnv64(&all), PINNED, "{all}");
    }

    #[test]
    fn bad_params_are_dropped_with_named_errors() {
        let cases: &[(&str, &str)] = &[
            (r#"{"order_id":""}"#, "params.order_id must be a non-empty"),
            (r#"{"order_id":"  "}"#, "params.order_id"),
            (r#"{"order_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#, "at most 64"),
            (r#"{"order_id":1.5}"#, "params.order_id"),
            (r#"{"contents":"A"}"#, "params.contents must be an array"),
            (r#"{"contents":[{"quantity":1}]}"#, "params.contents[0].id is required"),
            (r#"{"contents":[5]}"#, "params.contents[0] must be an object"),
            (r#"{"contents":[{"id":"a","quantity":-1}]}"#, "params.contents[0].quantity"),
            (r#"{"contents":[{"id":"a","quantity":1.5}]}"#, "params.contents[0].quantity"),
            (r#"{"contents":[{"id":"a","price":"x"}]}"#, "params.contents[0].price"),
            (r#"{"content_ids":[""]}"#, "params.content_ids[]"),
            (r#"{"content_ids":{}}"#, "params.content_ids must be an array"),
            (r#"{"content_type":"sku"}"#, "params.content_type must be \"product\""),
            (r#"{"content_name":5}"#, "params.content_name must be a string"),
            (r#"{"num_items":"two"}"#, "params.num_items"),
            (r#"{"predicted_ltv":"x"}"#, "params.predicted_ltv"),
            (r#"{"status":5}"#, "params.status"),
            (r#"{"custom":{"\u0000tandem_invalid":"circular reference"}}"#, "params.custom could not be read (circular reference)"),
            (r#"{"deep":[1,{"\u0000tandem_invalid":"bigint"}]}"#, "params.deep could not be read"),
        ];
        for (params, msg) in cases {
            let p = check("\"ViewContent\"", params, Err(&[("", "")][..0])).unwrap();
            let (mut e, mut w) = (Vec::new(), Vec::new());
            validate_params(&EventName::Standard(ViewContent), &parse(params).unwrap(), &mut e, &mut w);
            assert!(e.iter().any(|e| e.message.contains(msg)), "{params}: {e:?}");
            assert_eq!((p.order_id, p.content_ids, p.custom), (None, vec![], vec![]), "{params}");
            // A bad item field drops that field; a bad item drops the item.
            assert!(p.contents.iter().all(|c| c.id == "a" && c.quantity.is_none() && c.price.is_none()), "{params}");
        }
    }

    #[test]
    fn params_must_be_an_object() {
        let p = check("\"Lead\"", r#""oops""#, Err(&[("invalid_params", "must be an object, got a string")])).unwrap();
        assert_eq!(p, Params::default());
        let (mut e, mut w) = (Vec::new(), Vec::new());
        validate_params(&EventName::Standard(Lead), &Value::Null, &mut e, &mut w);
        assert!(e.is_empty(), "no params is fine");
    }

    #[test]
    fn contents_are_capped() {
        let items: Vec<String> = (0..250).map(|i| String::from(r#"{"id":"#) + &i.to_string() + "}").collect();
        let params = String::from(r#"{"contents":["#) + &items.join(",") + "]}";
        let p = check("\"AddToCart\"", &params, Err(&[("invalid_param", "at most 200")])).unwrap();
        assert_eq!(p.contents.len(), 200);
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let p = check("\"Lead\"", r#"{"currency":"XX","currency":"EUR","x":1,"x":2}"#, Ok(&[])).unwrap();
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.custom, vec![("x".to_string(), "2".to_string())]);
    }
}
