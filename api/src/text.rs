//! The one check of free text a client sends: trimmed, not empty, within a length in
//! characters, and free of control characters. NUL in particular never reaches a store
//! (PostgreSQL cannot hold it in text), and a one-line field (a name, a region, a subject)
//! holds no line breaks, tabs or vertical tabs either.

use crate::domain::error::{Error, Result};

/// A one-line value: no control character at all.
pub fn line(what: &str, value: &str, max: usize) -> Result<String> {
    checked(what, value, max, |_| false)
}

/// A multi-line value (a message, an answer): line breaks and tabs allowed, no other control
/// character (CR LF is kept as written).
pub fn paragraphs(what: &str, value: &str, max: usize) -> Result<String> {
    checked(what, value, max, |c| matches!(c, '\n' | '\r' | '\t'))
}

fn checked(what: &str, value: &str, max: usize, allowed: fn(char) -> bool) -> Result<String> {
    // The length as sent, so that what the OpenAPI document's `maxLength` refuses is refused.
    let v = value.trim();
    if v.is_empty() || value.chars().count() > max {
        return Err(Error::Invalid(format!(
            "{what} needs 1 to {max} characters"
        )));
    }
    if let Some(c) = v.chars().find(|&c| c.is_control() && !allowed(c)) {
        return Err(Error::Invalid(format!(
            "{what} may not contain the control character U+{:04X}",
            u32::from(c)
        )));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_lengths_count_characters() {
        assert_eq!(line("name", "  Lot A ", 10).unwrap(), "Lot A");
        assert!(line("name", "Lot\u{0}A", 10).is_err());
        assert!(line("region", "B\rX", 10).is_err());
        assert!(line("region", "B\u{b}X", 10).is_err());
        assert!(line("subject", "two\nlines", 20).is_err());
        assert_eq!(
            paragraphs("message", "two\nlines", 20).unwrap(),
            "two\nlines"
        );
        assert!(paragraphs("message", "nul\u{0}", 20).is_err());
        assert!(paragraphs("message", "bell\u{7}", 20).is_err());
        assert_eq!(line("name", "ÄÖÜ", 3).unwrap(), "ÄÖÜ");
        assert!(line("name", "ÄÖÜß", 3).is_err());
        assert!(line("name", "   ", 3).is_err());
    }
}
