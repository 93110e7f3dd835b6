//! Time bands: the periods of a lot's local day that carry their own rate.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A period of the local day (lot time zone), `[start_hour, end_hour)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBand {
    /// 00:00–07:00
    Night,
    /// 07:00–11:00
    Morning,
    /// 11:00–15:00
    Midday,
    /// 15:00–19:00
    Afternoon,
    /// 19:00–24:00
    Evening,
}

impl TimeBand {
    pub const ALL: [TimeBand; 5] = [
        Self::Night,
        Self::Morning,
        Self::Midday,
        Self::Afternoon,
        Self::Evening,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Night => "night",
            Self::Morning => "morning",
            Self::Midday => "midday",
            Self::Afternoon => "afternoon",
            Self::Evening => "evening",
        }
    }

    /// Local hours covered, `[start, end)`.
    pub fn hours(self) -> (u32, u32) {
        match self {
            Self::Night => (0, 7),
            Self::Morning => (7, 11),
            Self::Midday => (11, 15),
            Self::Afternoon => (15, 19),
            Self::Evening => (19, 24),
        }
    }

    pub fn of_local_hour(hour: u32) -> Self {
        Self::ALL
            .into_iter()
            .find(|b| {
                let (s, e) = b.hours();
                (s..e).contains(&hour)
            })
            .unwrap_or(Self::Evening)
    }

    /// The band in force at instant `at` in time zone `tz`.
    pub fn at(at: DateTime<Utc>, tz: Tz) -> Self {
        Self::of_local_hour(at.with_timezone(&tz).hour())
    }
}

impl fmt::Display for TimeBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TimeBand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown time band `{s}`"))
    }
}

/// Weekdays and weekends are priced separately: demand differs far more between them than
/// between two weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    Weekday,
    Weekend,
}

impl DayKind {
    pub const ALL: [DayKind; 2] = [Self::Weekday, Self::Weekend];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekday => "weekday",
            Self::Weekend => "weekend",
        }
    }

    pub fn of(weekday: Weekday) -> Self {
        match weekday {
            Weekday::Sat | Weekday::Sun => Self::Weekend,
            _ => Self::Weekday,
        }
    }

    /// The day kind in force at instant `at` in time zone `tz`.
    pub fn at(at: DateTime<Utc>, tz: Tz) -> Self {
        Self::of(at.with_timezone(&tz).weekday())
    }
}

impl FromStr for DayKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown day kind `{s}` (expected weekday or weekend)"))
    }
}

impl fmt::Display for DayKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hour_has_exactly_one_band() {
        for h in 0..24 {
            let n = TimeBand::ALL
                .iter()
                .filter(|b| (b.hours().0..b.hours().1).contains(&h))
                .count();
            assert_eq!(n, 1, "hour {h}");
        }
        assert_eq!(TimeBand::of_local_hour(6), TimeBand::Night);
        assert_eq!(TimeBand::of_local_hour(7), TimeBand::Morning);
        assert_eq!(TimeBand::of_local_hour(23), TimeBand::Evening);
    }

    #[test]
    fn band_uses_local_time() {
        let at: DateTime<Utc> = "2026-06-01T05:30:00Z".parse().unwrap();
        // 07:30 in Berlin (UTC+2 in summer).
        assert_eq!(
            TimeBand::at(at, chrono_tz::Europe::Berlin),
            TimeBand::Morning
        );
        assert_eq!(TimeBand::at(at, chrono_tz::UTC), TimeBand::Night);
    }
}
