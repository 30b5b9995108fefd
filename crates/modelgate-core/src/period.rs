//! Periods of a key's token quota and money budget: calendar windows in
//! UTC (a day from midnight, an ISO week from Monday, a month from the
//! 1st). A counter belongs to the window it was charged in and starts from
//! zero in the next one, lazily: the first reservation of a new window
//! resets it, so no job runs at the boundary and nothing drifts.

use serde::{Deserialize, Serialize};

use crate::calendar::{DAY_MS, civil, days_from_civil};

/// How often a counter starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Never: one window for ever (window 0).
    #[default]
    None,
    /// Each UTC day.
    Daily,
    /// Each ISO week (Monday 00:00 UTC).
    Weekly,
    /// Each calendar month (the 1st, 00:00 UTC).
    Monthly,
}

impl Period {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }

    /// Parse the stored spelling (anything else: `None`).
    pub fn parse(s: &str) -> Self {
        match s {
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            _ => Self::None,
        }
    }

    /// The start (epoch ms) of the window holding `now_ms`; 0 for `None`.
    pub fn window(self, now_ms: i64) -> i64 {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Self::None => 0,
            Self::Daily => day * DAY_MS,
            // 1970-01-01 was a Thursday: day 4 of the ISO week (Monday 1).
            Self::Weekly => (day - (day + 3).rem_euclid(7)) * DAY_MS,
            Self::Monthly => {
                let (y, m, _) = civil(now_ms);
                days_from_civil(y, m, 1) * DAY_MS
            }
        }
    }

    /// When the window holding `now_ms` ends (epoch ms); `None` never.
    pub fn resets_at(self, now_ms: i64) -> Option<i64> {
        let start = self.window(now_ms);
        match self {
            Self::None => None,
            Self::Daily => Some(start + DAY_MS),
            Self::Weekly => Some(start + 7 * DAY_MS),
            Self::Monthly => {
                let (y, m, _) = civil(start);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Some(days_from_civil(y, m, 1) * DAY_MS)
            }
        }
    }
}

/// What of a counter stored as of `window` still counts at `now_window`:
/// all of it in the same window, nothing once a later one has begun.
pub fn current(used: i64, window: i64, now_window: i64) -> i64 {
    if window < now_window { 0 } else { used }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + h * 3_600_000
    }

    #[test]
    fn windows_are_calendar_aligned_in_utc() {
        let now = at(2026, 11, 28, 13); // a Saturday
        assert_eq!(Period::None.window(now), 0);
        assert_eq!(Period::None.resets_at(now), None);
        assert_eq!(Period::Daily.window(now), at(2026, 11, 28, 0));
        assert_eq!(Period::Daily.resets_at(now), Some(at(2026, 11, 29, 0)));
        assert_eq!(Period::Weekly.window(now), at(2026, 11, 23, 0));
        assert_eq!(Period::Weekly.resets_at(now), Some(at(2026, 11, 30, 0)));
        assert_eq!(Period::Monthly.window(now), at(2026, 11, 1, 0));
        assert_eq!(Period::Monthly.resets_at(now), Some(at(2026, 12, 1, 0)));
        let december = at(2026, 12, 31, 23);
        assert_eq!(Period::Monthly.resets_at(december), Some(at(2027, 1, 1, 0)));
        // A Monday at midnight starts its own week; the instant before is
        // the week before.
        let monday = at(2026, 11, 30, 0);
        assert_eq!(Period::Weekly.window(monday), monday);
        assert_eq!(Period::Weekly.window(monday - 1), at(2026, 11, 23, 0));
        assert_eq!(Period::Daily.window(monday - 1), at(2026, 11, 29, 0));
        assert_eq!(
            Period::Monthly.window(at(2028, 2, 29, 5)),
            at(2028, 2, 1, 0)
        );
    }

    #[test]
    fn spellings_round_trip() {
        for p in [Period::None, Period::Daily, Period::Weekly, Period::Monthly] {
            assert_eq!(Period::parse(p.as_str()), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Period>(&json).unwrap(), p);
        }
        assert!(serde_json::from_str::<Period>("\"hourly\"").is_err());
    }

    #[test]
    fn counters_of_an_earlier_window_count_nothing() {
        assert_eq!(current(50, 10, 10), 50);
        assert_eq!(current(50, 10, 20), 0);
        // A clock behind the one that rolled the window still counts it.
        assert_eq!(current(50, 20, 10), 50);
    }
}
