//! Times as `positions` and `status` show them: UTC, `YYYY-MM-DDTHH:MM:SSZ`.

pub(super) use sluice_core::time::{utc_rfc3339 as utc, utc_rfc3339_ms as utc_ms};

pub(super) fn now_unix() -> i64 {
    i64::try_from(sluice_core::time::unix_secs()).unwrap_or(i64::MAX)
}

/// The checkpoint's `updated_at` (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC) in
/// the same form as the other times; anything else is shown as is.
pub(super) fn db_time(text: &str) -> String {
    let b = text.as_bytes();
    let shaped = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if shaped {
        format!("{}T{}Z", &text[..10], &text[11..19])
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_times_are_normalised() {
        assert_eq!(
            db_time("2024-05-01 12:00:01.123456"),
            "2024-05-01T12:00:01Z"
        );
        assert_eq!(db_time("2024-05-01 12:00:01"), "2024-05-01T12:00:01Z");
        assert_eq!(db_time("soon"), "soon");
    }
}
