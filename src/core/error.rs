//! Errors as values. Every rejected input becomes a `TagError` with a stable `code`, a message a site
//! owner can act on, and the offending input (truncated), which the loader hands to `onError` and,
//! in debug mode, to the console.
//!
//! The text of those messages is data, not code: each piece is declared once with `messages!`,
//! under a two-character key. Natively (and in the browser tests) a piece is its text. In the tag
//! (`lazy-messages`, which `scripts/build.mjs` turns on) it is a three-byte token, `\u{1}` and its
//! key, and the loader puts the text back from `tandem-messages-<hash>.json`, which the build
//! writes from these declarations (and the loader's own, `words()` in www/loader.js) and the
//! browser fetches only once there is something to report: about 8 KB of text (3 KB of gzip)
//! that a page whose calls are all valid never downloads.

/// Declares message pieces: `NAME = "k0" "text";`, each key two characters of `0-9 A-Z a-z`, unique
/// across the crate (`scripts/build.mjs` reads these blocks, checks the keys and writes the table).
/// The text may use only the escapes `\"` and `\\`, which mean the same in JSON.
#[macro_export]
macro_rules! messages {
    ($($vis:vis $name:ident = $key:literal $text:literal;)*) => {$(
        #[cfg(not(feature = "lazy-messages"))]
        #[allow(dead_code)]
        $vis const $name: &str = $text;
        #[cfg(feature = "lazy-messages")]
        #[allow(dead_code)]
        $vis const $name: &str = concat!("\u{1}", $key);
    )*};
}

crate::messages! {
    UNKNOWN_PREFIX = "r0" "Unknown ";
    KEY_IGNORED = "r1" "\" ignored";
    // Pieces several modules' messages use: declared once, here.
    pub MUST_BE_STRING = "r2" "must be a string";
    pub EVENT_ID_PREFIX = "r3" "event_id ";
}

/// One problem with something the page passed in. Never thrown: returned and reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagError {
    /// Stable, machine-readable code, e.g. `"missing_field"`, `"invalid_currency"`.
    pub code: &'static str,
    /// A sentence saying what is wrong and how to fix it.
    pub message: String,
    /// The offending input as the page gave it (JSON text, capped at `INPUT_CAP` bytes).
    pub input: String,
}

/// Offending inputs are echoed back capped, so a megabyte string is not copied into every report.
pub const INPUT_CAP: usize = 200;

impl TagError {
    pub fn new(code: &'static str, message: impl Into<String>, input: impl Into<String>) -> TagError {
        TagError::of(code, message.into(), input.into())
    }

    /// The work of `new`, once rather than in each of its instances.
    #[inline(never)]
    fn of(code: &'static str, message: String, mut input: String) -> TagError {
        crate::core::json::truncate_utf8(&mut input, INPUT_CAP);
        TagError { code, message, input }
    }
}

/// `Unknown <what> "<key>" ignored<known>`: the warnings for unknown keys share one builder out of
/// line, rather than each call site inlining its own pushes.
#[inline(never)]
pub fn unknown_key(what: &str, key: &str, known: &str) -> String {
    let mut w = String::from(UNKNOWN_PREFIX);
    w.push_str(what);
    w.push_str(" \"");
    w.push_str(key);
    w.push_str(KEY_IGNORED);
    w.push_str(known);
    w
}
