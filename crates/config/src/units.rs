//! Human-readable durations and sizes.
//!
//! Durations: one or more `<number><unit>` parts with units in strictly
//! decreasing order and no spaces: `20ms`, `1s`, `1m30s`, `2h`, `1.5s`.
//! Units: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, `d`. A bare `0` is the
//! only number accepted without a unit: `20` could mean seconds or
//! milliseconds, and guessing wrong by a factor of 1000 is not a typo anyone
//! notices until production.
//!
//! Sizes: an integer with an optional unit, `4MiB`, `512KiB`, `1GB`, `4096`.
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024, decimal ones
//! (`KB`, `MB`, `GB`, `TB`) powers of 1000, no unit (or `B`) is bytes. Units
//! are case-insensitive; a space between number and unit is allowed. Bare
//! `K`/`M`/`G` are refused because tools disagree on whether they mean 1000
//! or 1024.

use std::time::Duration;

const DURATION_UNITS: &[(&str, u128)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

/// Parses a human-readable duration; the error explains what is wrong
/// (without repeating the input, which the caller shows).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let mut total: u128 = 0;
    let mut last_unit: Option<u128> = None;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(frac) => {
                let frac_len = frac.bytes().take_while(u8::is_ascii_digit).count();
                if frac_len == 0 {
                    return Err("expected digits after `.`".into());
                }
                frac.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!(
                "expected a number at `{rest}` (write e.g. 20ms, 1s, 1m30s)"
            ));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(if int_len == rest.len() && last_unit.is_none() {
                "missing unit (write e.g. 20ms, 1s, 1m30s, 2h)".into()
            } else {
                format!("missing unit after `{int_part}{}`", dotted(frac_part))
            });
        }
        let Some(&(_, unit_ns)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit `{unit}` (use ns, us, ms, s, m, h or d)"
            ));
        };
        if let Some(last) = last_unit {
            if unit_ns >= last {
                return Err(format!(
                    "unit `{unit}` out of order (write parts from largest to smallest, each once, e.g. 1h30m)"
                ));
            }
        }
        last_unit = Some(unit_ns);
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| "number too large".to_string())?
        };
        // Fractions are exact to the nanosecond; digits beyond what a
        // nanosecond can express are dropped (truncation, never rounding up).
        let digits = &frac_part[..frac_part.len().min(18)];
        let frac_ns = if digits.is_empty() {
            0
        } else {
            let numerator: u128 = digits.parse().expect("ascii digits");
            unit_ns * numerator / 10u128.pow(digits.len() as u32)
        };
        total = whole
            .checked_mul(unit_ns)
            .and_then(|ns| ns.checked_add(frac_ns))
            .and_then(|ns| ns.checked_add(total))
            .ok_or_else(|| "duration too large".to_string())?;
        rest = after;
    }
    let nanos = u64::try_from(total).map_err(|_| "duration too large".to_string())?;
    Ok(Duration::from_nanos(nanos))
}

fn dotted(frac: &str) -> String {
    if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    }
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a human-readable size in bytes; the error explains what is wrong.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty size".into());
    }
    if s.starts_with('-') {
        return Err("a size cannot be negative".into());
    }
    let digits_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits_len == 0 {
        return Err(
            "expected a number of bytes with an optional unit (e.g. 4MiB, 512KiB, 1GB)".into(),
        );
    }
    let (number, unit) = s.split_at(digits_len);
    if unit.starts_with('.') {
        return Err("fractional sizes are not supported (write e.g. 1536KiB for 1.5MiB)".into());
    }
    let unit = unit.trim_start();
    let lower = unit.to_ascii_lowercase();
    let Some(&(_, factor)) = SIZE_UNITS.iter().find(|(name, _)| *name == lower) else {
        return Err(format!(
            "unknown unit `{unit}` (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)"
        ));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| "size too large".to_string())
}

/// Formats a duration the way the parser reads it back (`1m30s`, `20ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ns = d.as_nanos();
    if ns == 0 {
        return "0".into();
    }
    let mut out = String::new();
    for &(name, unit_ns) in DURATION_UNITS {
        if name == "µs" {
            continue;
        }
        if ns >= unit_ns {
            out.push_str(&format!("{}{name}", ns / unit_ns));
            ns %= unit_ns;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(ms(20)));
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("2h"), Ok(ms(7_200_000)));
        assert_eq!(
            parse_duration("1d2h3m4s5ms6us7ns"),
            Ok(Duration::new(93_784, 5_006_007))
        );
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 3s "), Ok(ms(3000)));
        // Sub-nanosecond digits are truncated, not rounded up.
        assert_eq!(
            parse_duration("1.9999999999ns"),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn bad_durations() {
        for (text, needle) in [
            ("", "empty"),
            ("20", "missing unit"),
            ("1m30", "missing unit after `30`"),
            ("5x", "unknown unit `x`"),
            ("1S", "unknown unit `S`"),
            ("1s1m", "out of order"),
            ("1s1s", "out of order"),
            ("-1s", "negative"),
            ("1 s", "missing unit after `1`"),
            ("1.s", "digits after"),
            ("s", "expected a number"),
            ("99999999999999999999999999999999999999999d", "too large"),
            ("600000000000d", "too large"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10 MB"), Ok(10_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("16777215TiB"), Ok(16_777_215 << 40));
        assert_eq!(parse_size("16777216TiB"), Err("size too large".to_string()));
    }

    #[test]
    fn bad_sizes() {
        for (text, needle) in [
            ("", "empty"),
            ("MiB", "expected a number"),
            ("4M", "unknown unit `M`"),
            ("1.5MiB", "fractional"),
            ("-1", "negative"),
            ("99999999999999999999", "too large"),
            ("20000000TiB", "too large"),
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn duration_round_trip() {
        for text in ["20ms", "1m30s", "2h", "1d1ns", "0"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
