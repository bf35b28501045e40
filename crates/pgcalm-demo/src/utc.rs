//! Timestamps in UTC for the request log and the lab's results, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 UTC with milliseconds, `1970-01-01T00:00:00.000Z` for times before
/// the epoch.
pub fn format_utc(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    format!(
        "{}T{:02}:{:02}:{:02}.{:03}Z",
        pgcalm_date::Date::from_unix_days(days as i64),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.123Z (a leap day) and 2026-11-25T12:49:08Z.
        let leap = UNIX_EPOCH + Duration::from_millis(1_709_251_199_123);
        assert_eq!(format_utc(leap), "2024-02-29T23:59:59.123Z");
        let today = UNIX_EPOCH + Duration::from_secs(1_795_610_948);
        assert_eq!(format_utc(today), "2026-11-25T12:49:08.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_603_267_123);
        assert_eq!(format_utc(t), "2026-11-25T10:41:07.123Z");
    }
}
