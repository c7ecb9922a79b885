//! The classic watchdog's timeout values: plain seconds (`"10"`) or Go durations
//! (`"10s"`, `"1m30s"`, `"1.5h"`, `"250ms"`).
//!
//! The classic watchdog (`parseIntOrDurationValue`) reads a non-negative integer as
//! seconds and anything else with Go's `time.ParseDuration`, and silently falls back to
//! the default when neither parses. Here a value that does not parse is an error, so that a
//! typo in a timeout cannot leave a function without the limit its operator meant. Negative
//! durations, which Go accepts, are refused: a timeout cannot be negative.

use std::time::Duration;

/// Why a duration does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty text.
    #[error("empty duration")]
    Empty,
    /// A `-` sign.
    #[error("a timeout cannot be negative")]
    Negative,
    /// A number is missing where one was expected.
    #[error("expected a number at `{0}`")]
    ExpectedNumber(String),
    /// A number without a unit (other than a plain integer of seconds or `0`).
    #[error("missing unit after `{0}` (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("unknown unit `{0}` (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// More than Go's limit of about 292 years.
    #[error("duration too large")]
    Overflow,
}

/// Go's largest duration: `math.MaxInt64` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a timeout as the classic watchdog does: a non-negative integer is seconds, anything
/// else a Go duration.
pub fn parse_seconds_or_duration(text: &str) -> Result<Duration, DurationError> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u128 = text.parse().map_err(|_| DurationError::Overflow)?;
        match secs.checked_mul(1_000_000_000) {
            Some(n) if n <= MAX_NANOS => {}
            _ => return Err(DurationError::Overflow),
        }
        return Ok(Duration::from_secs(secs as u64));
    }
    parse_go_duration(text)
}

/// Parses a Go duration (`time.ParseDuration`): an optional `+`, then one or more decimal
/// numbers, each with an optional fraction and a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`,
/// `m`, `h`), such as `"300ms"` or `"2h45m"`. `"0"` alone needs no unit.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let mut s = text;
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Some(rest) = s.strip_prefix('-') {
        // Go accepts "-0" as zero; any other negative value is refused below too.
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative);
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::ExpectedNumber(text.to_string()));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        let had_dot = rest.len() != s.len() - int_len;
        if int_part.is_empty() && frac_part.is_empty() {
            // "." alone, or a unit with no number before it.
            return Err(DurationError::ExpectedNumber(s.to_string()));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let (unit, next) = rest.split_at(unit_len);
        if unit.is_empty() {
            let number = &s[..int_len + usize::from(had_dot) + frac_part.len()];
            return Err(DurationError::MissingUnit(number.to_string()));
        }
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        let int_value: u128 = if int_part.is_empty() {
            0
        } else {
            // More digits than any valid duration has: overflow, without parsing them.
            if int_part.len() > 30 {
                return Err(DurationError::Overflow);
            }
            int_part.parse().map_err(|_| DurationError::Overflow)?
        };
        let mut nanos = int_value
            .checked_mul(unit_nanos)
            .ok_or(DurationError::Overflow)?;
        // The fraction, truncated to what a nanosecond can show: with the largest unit (an
        // hour, 3.6e12 ns), digits beyond the 18th cannot change the result, and 18 digits
        // times the unit cannot overflow.
        let frac_digits = &frac_part[..frac_part.len().min(18)];
        if !frac_digits.is_empty() {
            let f: u128 = frac_digits.parse().map_err(|_| DurationError::Overflow)?;
            let scale = 10u128.pow(frac_digits.len() as u32);
            nanos += f * unit_nanos / scale;
        }
        total = total.checked_add(nanos).ok_or(DurationError::Overflow)?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
        s = next;
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Result<Duration, DurationError> {
        parse_seconds_or_duration(text)
    }

    #[test]
    fn plain_integers_are_seconds() {
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("10"), Ok(Duration::from_secs(10)));
        assert_eq!(d("007"), Ok(Duration::from_secs(7)));
        assert_eq!(d("9223372036"), Ok(Duration::from_secs(9_223_372_036)));
        assert_eq!(d("9223372037"), Err(DurationError::Overflow));
        assert_eq!(
            d("99999999999999999999999999999999999999999"),
            Err(DurationError::Overflow)
        );
        // Fits in a u128, overflows once in nanoseconds (found by fuzzing).
        assert_eq!(
            d("33333333333333333333333333333333333"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            d("0.333333333333333333333333333333333333h"),
            Ok(Duration::new(1199, 999_999_999))
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(d("1h2m3s4ms5us6ns"), Ok(Duration::new(3723, 4_005_006)));
        assert_eq!(d("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(d("2μs"), Ok(Duration::from_micros(2)));
        assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(d("+5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("-0"), Ok(Duration::ZERO));
        assert_eq!(d("0.000000001s"), Ok(Duration::from_nanos(1)));
        assert_eq!(d("1.0000000019s"), Ok(Duration::new(1, 1)));
        assert_eq!(
            d("2562047h47m16.854775807s"),
            Ok(Duration::new(9_223_372_036, 854_775_807))
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert_eq!(d(""), Err(DurationError::Empty));
        assert_eq!(d("-5s"), Err(DurationError::Negative));
        assert_eq!(d("-5"), Err(DurationError::Negative));
        assert_eq!(d("5"), Ok(Duration::from_secs(5)));
        assert_eq!(d("1.5"), Err(DurationError::MissingUnit("1.5".into())));
        assert_eq!(d("1s5"), Err(DurationError::MissingUnit("5".into())));
        assert_eq!(d("10 s"), Err(DurationError::UnknownUnit(" s".into())));
        assert_eq!(d("10sec"), Err(DurationError::UnknownUnit("sec".into())));
        assert_eq!(d("s"), Err(DurationError::ExpectedNumber("s".into())));
        assert_eq!(d("."), Err(DurationError::ExpectedNumber(".".into())));
        assert_eq!(d("+"), Err(DurationError::ExpectedNumber("+".into())));
        assert_eq!(d("2562047h47m16.854775808s"), Err(DurationError::Overflow));
        assert_eq!(d("3000000h"), Err(DurationError::Overflow));
    }
}
