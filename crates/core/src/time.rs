//! Wall-clock helpers: one definition of "now" and of UTC text, used by every
//! crate (positions, node records, events, the CLI).
//!
//! Calendar arithmetic is Howard Hinnant's `civil_from_days` (proleptic
//! Gregorian), shared with the binlog's TIMESTAMP text in [`crate::value`].

use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::value::civil_from_days;

/// Milliseconds since the Unix epoch (0 before it, saturating far after).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (UTC).
pub fn utc_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// [`utc_rfc3339`] of Unix milliseconds (the fraction dropped).
pub fn utc_rfc3339_ms(ms: u64) -> String {
    utc_rfc3339(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
}

/// This machine's host name (`gethostname`), or `unknown-host`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it when the name fits (a longer name is cut at the buffer end).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    if name.is_empty() {
        "unknown-host".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(utc_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc_rfc3339_ms(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn now_is_after_2020_and_host_has_a_name() {
        assert!(unix_ms() > 1_577_836_800_000);
        assert_eq!(unix_secs(), unix_ms() / 1000);
        assert!(!host_name().is_empty());
    }
}
