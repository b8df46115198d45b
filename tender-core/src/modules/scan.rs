//! Numbers in option values, read as upstream reads them with C's `sscanf`:
//! white space skipped, an optional sign, decimal digits, and whatever
//! follows ignored. Out-of-range values are clamped as glibc's `strtol`
//! and `strtoul` clamp them. `None`: no digit where the number should be.

/// The sign and digits at the start of `text`, after white space.
fn sign_and_digits(text: &str) -> Option<(bool, &str)> {
    let text = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let len = rest.bytes().take_while(u8::is_ascii_digit).count();
    (len > 0).then(|| (negative, &rest[..len]))
}

/// The magnitude of `digits`, or `None` beyond `u64`.
fn magnitude(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `%d`, `%ld`, `%zd`: a signed number, clamped to the range of `i64`.
pub fn signed(text: &str) -> Option<i64> {
    let (negative, digits) = sign_and_digits(text)?;
    let value = match (magnitude(digits), negative) {
        (Some(n), false) => i64::try_from(n).unwrap_or(i64::MAX),
        (Some(n), true) => 0i64.checked_sub_unsigned(n).unwrap_or(i64::MIN),
        (None, false) => i64::MAX,
        (None, true) => i64::MIN,
    };
    Some(value)
}

/// `%u`, `%lu`: an unsigned number; a negative one wraps (as `strtoul`
/// negates in unsigned arithmetic), one beyond `u64` is `u64::MAX`.
pub fn unsigned(text: &str) -> Option<u64> {
    let (negative, digits) = sign_and_digits(text)?;
    Some(match magnitude(digits) {
        Some(n) if negative => n.wrapping_neg(),
        Some(n) => n,
        None => u64::MAX,
    })
}

/// `%hu`: [`unsigned`] cut to its low 16 bits, as `sscanf` stores it.
pub fn unsigned_short(text: &str) -> Option<u16> {
    // reason: the truncation is what sscanf("%hu") does.
    #[allow(clippy::cast_possible_truncation)]
    unsigned(text).map(|n| n as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_numbers_are_read_as_sscanf_reads_them() {
        for (text, number) in [
            ("512", Some(512)),
            ("12x", Some(12)),
            ("4k", Some(4)),
            (" 4", Some(4)),
            ("\t\n+7", Some(7)),
            ("-1", Some(-1)),
            ("0x10", Some(0)),
            ("007", Some(7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("99999999999999999999", Some(i64::MAX)),
            ("-99999999999999999999", Some(i64::MIN)),
            ("", None),
            ("x", None),
            ("-", None),
            ("+ 1", None),
            (" ", None),
            ("--1", None),
        ] {
            assert_eq!(signed(text), number, "{text:?}");
        }
    }

    #[test]
    fn unsigned_numbers_wrap_and_clamp_as_strtoul() {
        assert_eq!(unsigned("4096x"), Some(4096));
        assert_eq!(unsigned("-1"), Some(u64::MAX));
        assert_eq!(unsigned("18446744073709551615"), Some(u64::MAX));
        assert_eq!(unsigned("18446744073709551616"), Some(u64::MAX));
        assert_eq!(unsigned("abc"), None);
        assert_eq!(unsigned_short("4096"), Some(4096));
        assert_eq!(unsigned_short("65536"), Some(0));
        assert_eq!(unsigned_short("66048"), Some(512));
        assert_eq!(unsigned_short("-512"), Some(65024));
        assert_eq!(unsigned_short(" 1024 bytes"), Some(1024));
    }
}
