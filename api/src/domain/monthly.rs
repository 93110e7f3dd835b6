//! Monthly passes: what an operator sells (a product: the days and hours it covers, the vehicle
//! types, the price, how many may be sold, whether each holder gets a spot kept) and the one rule
//! every part of a pass follows — whether an instant is inside its rights.
//!
//! Rights are whole local hours on chosen weekdays (`fromHour` inclusive, `untilHour`
//! exclusive, 24 = midnight), in the lot's time zone. Whole hours because the tariff already
//! cuts a stay at every local hour: inside the rights an hour costs nothing, outside it costs
//! the rate in force, and grace, free minutes and the daily cap apply to the stay as a whole.

use super::error::{Error, Result};
use chrono::{DateTime, Datelike, Months, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The weekday names the wire uses, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// At most this many entries in a product's `days` (repeats count once, but the list is bounded).
pub const MAX_DAY_ENTRIES: usize = 7;
/// At most this many entries in a product's `vehicleTypes`.
pub const MAX_VEHICLE_TYPE_ENTRIES: usize = 8;

/// A pass's price must be within this, in cents.
pub const PRICE_CENTS: std::ops::RangeInclusive<i64> = 100..=1_000_000;

/// When a pass lets its holder park free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Bit `d` set: weekday `d` (0 = Monday) is covered.
    days: u8,
    from_hour: u8,
    until_hour: u8,
}

impl Rights {
    /// Rights on `days` (names of [`DAY_NAMES`]; repeats allowed) from `from_hour` to
    /// `until_hour`; `validation_failed` when the hours are not `0 ≤ from < until ≤ 24` or no
    /// day is named.
    pub fn new(days: &[String], from_hour: u8, until_hour: u8) -> Result<Self> {
        if days.len() > MAX_DAY_ENTRIES {
            return Err(Error::Invalid(format!(
                "days lists at most {MAX_DAY_ENTRIES} weekdays"
            )));
        }
        let mut mask = 0u8;
        for d in days {
            let i = DAY_NAMES
                .iter()
                .position(|n| n == d)
                .ok_or_else(|| Error::Invalid(format!("unknown day {d:?}: use mon … sun")))?;
            mask |= 1 << i;
        }
        if mask == 0 {
            return Err(Error::Invalid("a pass covers at least one day".into()));
        }
        if from_hour >= until_hour || until_hour > 24 {
            return Err(Error::Invalid(format!(
                "a pass's hours run from fromHour to a later untilHour within the day (0–24); \
                 got {from_hour}–{until_hour}"
            )));
        }
        Ok(Self {
            days: mask,
            from_hour,
            until_hour,
        })
    }

    /// Rights as stored (`days` a weekday bit set).
    pub fn from_stored(days: i64, from_hour: i64, until_hour: i64) -> Result<Self> {
        let bad = || Error::Invalid(format!("stored rights {days}/{from_hour}/{until_hour}"));
        let days = u8::try_from(days).map_err(|_| bad())?;
        let names: Vec<String> = (0..7)
            .filter(|i| days & (1 << i) != 0)
            .map(|i| DAY_NAMES[i].to_owned())
            .collect();
        Self::new(
            &names,
            u8::try_from(from_hour).map_err(|_| bad())?,
            u8::try_from(until_hour).map_err(|_| bad())?,
        )
    }

    pub fn day_mask(self) -> i64 {
        i64::from(self.days)
    }

    pub fn hours(self) -> (u8, u8) {
        (self.from_hour, self.until_hour)
    }

    /// The covered days' names, Monday first.
    pub fn day_names(self) -> Vec<String> {
        (0..7)
            .filter(|i| self.days & (1 << i) != 0)
            .map(|i| DAY_NAMES[i].to_owned())
            .collect()
    }

    /// Whether `at` falls inside the rights, in time zone `tz`.
    pub fn covers(self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz);
        let day = local.weekday().num_days_from_monday();
        let hour = local.hour();
        self.days & (1 << day) != 0
            && hour >= u32::from(self.from_hour)
            && hour < u32::from(self.until_hour)
    }

    /// "Mon–Fri 07–19 h", for messages and the portal.
    pub fn describe(self) -> String {
        let names = self.day_names();
        let days = match names.as_slice() {
            [one] => one.clone(),
            _ if self.is_run() => format!("{}–{}", names[0], names[names.len() - 1]),
            _ => names.join(", "),
        };
        format!("{days} {:02}–{:02} h", self.from_hour, self.until_hour)
    }

    /// The covered days are consecutive, Monday first.
    fn is_run(self) -> bool {
        let d = self.days;
        let low = d.trailing_zeros();
        (d >> low) & ((d >> low) + 1) == 0
    }
}

/// The end of a period starting at `start`: one calendar month later (the last day of a shorter
/// month when the day does not exist in it), in UTC.
pub fn month_after(start: DateTime<Utc>) -> Result<DateTime<Utc>> {
    start
        .checked_add_months(Months::new(1))
        .ok_or_else(|| Error::Invalid("a pass period past the end of time".into()))
}

/// What an operator sets for a product, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductLimits {
    pub price_cents: i64,
    /// How many passes may be held at once.
    pub spots: i64,
}

impl ProductLimits {
    /// `spots` at most the lot's `capacity`, a price in [`PRICE_CENTS`].
    pub fn check(&self, capacity: i64) -> Result<()> {
        if !PRICE_CENTS.contains(&self.price_cents) {
            return Err(Error::Invalid(format!(
                "a pass costs {} to {} cents",
                PRICE_CENTS.start(),
                PRICE_CENTS.end()
            )));
        }
        if self.spots < 1 || self.spots > capacity {
            return Err(Error::Invalid(format!(
                "a product holds 1 to {capacity} spots (the lot's open spots)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(names: &[&str]) -> Vec<String> {
        names.iter().map(|d| (*d).to_owned()).collect()
    }

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    #[test]
    fn rights_cover_their_days_and_whole_hours_in_the_lots_zone() {
        let weekdays = Rights::new(&days(&["mon", "tue", "wed", "thu", "fri"]), 7, 19).unwrap();
        // Monday 2026-06-01, Berlin is UTC+2.
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(weekdays.covers(at("2026-06-01T05:00:00Z"), berlin())); // 07:00 local
        assert!(!weekdays.covers(at("2026-06-01T04:59:59Z"), berlin())); // 06:59
        assert!(weekdays.covers(at("2026-06-01T16:59:59Z"), berlin())); // 18:59
        assert!(!weekdays.covers(at("2026-06-01T17:00:00Z"), berlin())); // 19:00
        assert!(!weekdays.covers(at("2026-06-06T10:00:00Z"), berlin())); // Saturday
        assert_eq!(weekdays.describe(), "mon–fri 07–19 h");
        let all_day = Rights::new(&days(&["sat", "sun", "sat"]), 0, 24).unwrap();
        assert!(all_day.covers(at("2026-06-06T21:59:00Z"), berlin())); // Sat 23:59
        assert!(!all_day.covers(at("2026-06-07T22:00:00Z"), berlin())); // Mon 00:00
        assert_eq!(all_day.describe(), "sat–sun 00–24 h");
        let scattered = Rights::new(&days(&["mon", "wed"]), 8, 9).unwrap();
        assert_eq!(scattered.describe(), "mon, wed 08–09 h");
        let stored = Rights::from_stored(scattered.day_mask(), 8, 9).unwrap();
        assert_eq!(stored, scattered);
    }

    #[test]
    fn bad_rights_and_limits_are_refused() {
        assert!(Rights::new(&[], 7, 19).is_err());
        assert!(Rights::new(&days(&["monday"]), 7, 19).is_err());
        assert!(Rights::new(&days(&["mon"]), 19, 7).is_err());
        assert!(Rights::new(&days(&["mon"]), 7, 7).is_err());
        assert!(Rights::new(&days(&["mon"]), 0, 25).is_err());
        assert!(Rights::from_stored(300, 7, 19).is_err());
        assert!(Rights::new(&days(&["mon"; 8]), 7, 19).is_err());
        let ok = ProductLimits {
            price_cents: 9_900,
            spots: 10,
        };
        assert!(ok.check(10).is_ok());
        assert!(ok.check(9).is_err());
        let free = ProductLimits {
            price_cents: 0,
            ..ok.clone()
        };
        assert!(free.check(10).is_err());
        let none = ProductLimits { spots: 0, ..ok };
        assert!(none.check(10).is_err());
    }

    #[test]
    fn a_period_is_one_calendar_month() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            month_after(at("2026-01-31T10:00:00Z")).unwrap(),
            at("2026-02-28T10:00:00Z")
        );
        assert_eq!(
            month_after(at("2026-12-03T00:00:00Z")).unwrap(),
            at("2027-01-03T00:00:00Z")
        );
    }
}
