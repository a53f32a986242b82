//! Unicode facts the browser already knows: lowercasing (identify's normalisation) and the letter
//! and number classes of GA4's event-name rule.
//!
//! Natively these are Rust's own. In the wasm the shell installs the browser's (`install`, from
//! `shell/privacy.rs`), because Rust's Unicode tables would be part of every visitor's download:
//! the case tables are kilobytes, and the letter and number tables behind `char::is_alphabetic`
//! and `char::is_alphanumeric` were 1.9 KB of the tag's gzip. The rules are the same (Unicode's
//! `Alphabetic` property and `N` category, lowercasing as JavaScript's `toLowerCase`, which the
//! platforms' own SDKs use); only the Unicode version can differ, by the browser's.

/// How a custom event name breaks GA4's rule: "start with a letter; use only letters, numbers and
/// underscores" (letters and digits of any script, as GA4 allows non-English names).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NameFault {
    FirstNotLetter,
    OtherThanLetterDigitUnderscore,
}

/// The fault in `name` under GA4's naming rule, if any.
pub fn name_fault(name: &str) -> Option<NameFault> {
    match name_fault_code(name) {
        0 => None,
        1 => Some(NameFault::FirstNotLetter),
        _ => Some(NameFault::OtherThanLetterDigitUnderscore),
    }
}

/// The rule with Rust's tables: 0 when `name` follows it, 1 when it does not start with a letter,
/// 2 when another character is not a letter, digit or underscore. The browser's version
/// (`privacy_name_fault` in the shell) answers the same codes.
pub fn rust_name_fault_code(name: &str) -> u32 {
    fault_code(name, char::is_alphabetic, char::is_alphanumeric)
}

/// The rule's codes (see `rust_name_fault_code`) with the given letter and letter-or-digit classes.
fn fault_code(name: &str, letter: fn(char) -> bool, letter_or_digit: fn(char) -> bool) -> u32 {
    if !name.chars().next().is_some_and(letter) {
        1
    } else if !name.chars().all(|c| letter_or_digit(c) || c == '_') {
        2
    } else {
        0
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn name_fault_code(name: &str) -> u32 {
    rust_name_fault_code(name)
}

/// Unicode lowercasing, as JavaScript's `toLowerCase` (final sigma included).
#[cfg(not(target_arch = "wasm32"))]
pub fn lowercase(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(target_arch = "wasm32")]
pub use browser::{install, lowercase};

#[cfg(target_arch = "wasm32")]
use browser::name_fault_code;

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::Cell;

    use crate::Single;

    /// Until `install` (at init, or at a consent or identify call before it, so before any event
    /// name or identity is read): ASCII rules, which link no Unicode table.
    fn ascii_name_fault_code(name: &str) -> u32 {
        super::fault_code(name, |c| c.is_ascii_alphabetic(), |c| c.is_ascii_alphanumeric())
    }

    // Plain statics, not `thread_local!`s: see `Single`.
    static LOWERCASE: Single<Cell<fn(&str) -> String>> = Single(Cell::new(str::to_ascii_lowercase));
    static NAME_FAULT: Single<Cell<fn(&str) -> u32>> = Single(Cell::new(ascii_name_fault_code));

    /// The browser's `String.prototype.toLowerCase` and its regular expressions for the name rule.
    pub fn install(lowercase: fn(&str) -> String, name_fault_code: fn(&str) -> u32) {
        LOWERCASE.0.set(lowercase);
        NAME_FAULT.0.set(name_fault_code);
    }

    pub fn lowercase(s: &str) -> String {
        (LOWERCASE.0.get())(s)
    }

    pub fn name_fault_code(name: &str) -> u32 {
        (NAME_FAULT.0.get())(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_any_script_follow_the_rule() {
        for ok in ["Signup", "lead_form_2", "Käufe", "名前", "कि", "a٣", "ÆbleKøb", "x"] {
            assert_eq!(name_fault(ok), None, "{ok}");
        }
        for (bad, fault) in [
            ("", NameFault::FirstNotLetter),
            ("1st_order", NameFault::FirstNotLetter),
            ("_private", NameFault::FirstNotLetter),
            ("٣a", NameFault::FirstNotLetter),
            ("a-b", NameFault::OtherThanLetterDigitUnderscore),
            ("a b", NameFault::OtherThanLetterDigitUnderscore),
            ("ok!", NameFault::OtherThanLetterDigitUnderscore),
            ("emoji😀", NameFault::OtherThanLetterDigitUnderscore),
        ] {
            assert_eq!(name_fault(bad), Some(fault), "{bad}");
        }
    }

    #[test]
    fn lowercases_as_javascript() {
        assert_eq!(lowercase("ÉMILE.Ωmega@EXAMPLE.COM"), "émile.ωmega@example.com");
        assert_eq!(lowercase("ΟΔΟΣ"), "οδος");
    }
}
