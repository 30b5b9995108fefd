//! Time as people read it: UTC calendar days, both ways (H. Hinnant's
//! algorithms; the admin API parses dates, stores that group usage by day
//! name them), and short durations (`6s`, `1m30s`) for headers and
//! messages. A leaf: errors format with it.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of the UTC day holding `ms` (epoch milliseconds).
pub fn day_name(ms: i64) -> String {
    let (y, m, d) = civil(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 of `ms` (epoch milliseconds), to the second, UTC.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(DAY_MS / 1000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{}T{h:02}:{m:02}:{s:02}Z", day_name(ms))
}

/// Year, month and day of the UTC day holding `ms` (epoch milliseconds).
pub fn civil(ms: i64) -> (i64, i64, i64) {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Format milliseconds the way OpenAI's `x-ratelimit-reset-*` headers do:
/// `20ms`, `6s`, `1m30s`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names_are_utc_calendar_days() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(DAY_MS - 1), "1970-01-01");
        assert_eq!(day_name(DAY_MS), "1970-01-02");
        assert_eq!(day_name(11_016 * DAY_MS), "2000-02-29");
        assert_eq!(day_name(20_781 * DAY_MS + 5), "2026-11-24");
        assert_eq!(day_name(-1), "1969-12-31");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(20), "20ms");
        assert_eq!(format_duration(6000), "6s");
        assert_eq!(format_duration(90_000), "1m30s");
    }

    #[test]
    fn both_ways_agree() {
        for day in [-1_000, 0, 59, 60, 11_016, 20_781, 100_000] {
            let name = day_name(day * DAY_MS);
            let p: Vec<i64> = name.split('-').map(|x| x.parse().unwrap()).collect();
            assert_eq!(days_from_civil(p[0], p[1], p[2]), day, "{name}");
        }
    }
}
