//! The tariff engine: what a stay costs under the rate schedule in force during it.
//!
//! A stay is billed in increments (one second by default) counted from its start, after the free
//! minutes; each started increment costs the rate in force at its start — the rate of the time
//! band and day kind of that instant in the lot's time zone, as published (or the lot's default)
//! — pro rata. Sums are kept exact in cent-milliseconds and rounded up to the cent once per local
//! calendar day, where the daily cap applies. A stay no longer than the grace period is free.
//!
//! All arithmetic is on UTC instants; the time zone only labels them. So a DST day simply has
//! 23 or 25 hours of bands, and no local time is charged twice or skipped.

use super::Money;
use super::error::Result;
use super::monthly::Rights;
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warehouse_schema::{DayKind, TimeBand};

/// The configurable rules of a tariff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TariffRules {
    /// A stay of at most this many minutes is free (in and straight out again).
    pub grace_minutes: u32,
    /// The first minutes of every billed stay are free.
    pub free_minutes: u32,
    /// Billing increment in seconds: every started increment is charged in full.
    pub increment_seconds: u32,
    /// At most this many cents per local calendar day; none when unset.
    pub daily_cap_cents: Option<i64>,
}

impl Default for TariffRules {
    fn default() -> Self {
        Self {
            grace_minutes: 0,
            free_minutes: 0,
            increment_seconds: 1,
            daily_cap_cents: None,
        }
    }
}

impl TariffRules {
    pub fn validate(&self) -> Result<(), String> {
        if self.increment_seconds == 0 || self.increment_seconds > 86_400 {
            return Err("tariff.increment_seconds must be 1 to 86400".into());
        }
        if self.daily_cap_cents.is_some_and(|c| c < 0) {
            return Err("tariff.daily_cap_cents must not be negative".into());
        }
        Ok(())
    }
}

/// One published rate of a lot for one vehicle type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledRate {
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub effective_from: DateTime<Utc>,
    pub cents_per_hour: i64,
}

/// A lot's tariff for one vehicle type.
#[derive(Debug, Clone)]
pub struct Tariff {
    rules: TariffRules,
    tz: Tz,
    default_cents_per_hour: i64,
    /// Per band and day kind, the rates by `effective_from`.
    rates: BTreeMap<(TimeBand, DayKind), BTreeMap<DateTime<Utc>, i64>>,
    /// Hours a monthly pass covers: charged nothing.
    free: Option<Rights>,
}

/// One stretch of a window at one hourly rate: what a quote is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePart {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub cents_per_hour: i64,
    /// When the published rate it is charged at took effect (none: the lot's default).
    pub rate_from: Option<DateTime<Utc>>,
}

/// What a stay costs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub cents: i64,
    /// Seconds billed (whole increments), after grace and free minutes.
    pub billed_seconds: i64,
    /// Per local day touched by billed time: the cents charged (after the cap).
    pub days: Vec<(NaiveDate, i64)>,
}

impl Tariff {
    pub fn new(
        rules: TariffRules,
        tz: Tz,
        default_cents_per_hour: i64,
        rates: impl IntoIterator<Item = ScheduledRate>,
    ) -> Self {
        let mut by_key: BTreeMap<(TimeBand, DayKind), BTreeMap<DateTime<Utc>, i64>> =
            BTreeMap::new();
        for r in rates {
            by_key
                .entry((r.band, r.day_kind))
                .or_default()
                .insert(r.effective_from, r.cents_per_hour);
        }
        Self {
            rules,
            tz,
            default_cents_per_hour,
            rates: by_key,
            free: None,
        }
    }

    /// This tariff for the holder of a monthly pass: the hours inside `rights` cost nothing.
    pub fn free_during(self, rights: Rights) -> Self {
        Self {
            free: Some(rights),
            ..self
        }
    }

    /// What an hour started at `at` is billed: nothing inside a pass's rights, else the rate in
    /// force. Rights are whole local hours and every local hour start is a boundary of
    /// [`charge`](Self::charge), so one stretch is wholly inside or outside them.
    fn billed_rate_at(&self, at: DateTime<Utc>) -> i64 {
        match self.free {
            Some(rights) if rights.covers(at, self.tz) => 0,
            _ => self.rate_at(at),
        }
    }

    /// The hourly rate in force at `at`.
    pub fn rate_at(&self, at: DateTime<Utc>) -> i64 {
        self.published_at(at)
            .map_or(self.default_cents_per_hour, |(_, c)| c)
    }

    /// The published rate in force at `at`: when it took effect, and its cents per hour.
    fn published_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, i64)> {
        let key = (TimeBand::at(at, self.tz), DayKind::at(at, self.tz));
        self.rates
            .get(&key)
            .and_then(|m| m.range(..=at).next_back().map(|(from, c)| (*from, *c)))
    }

    /// The stretches of `[start, end)` at one rate each, in order (neighbours of the same band,
    /// day kind and rate merged): the rates [`charge`](Self::charge) bills the window at.
    pub fn parts(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<RatePart> {
        let mut bounds: Vec<DateTime<Utc>> = self
            .boundaries(start, end)
            .into_iter()
            .filter(|t| *t < end)
            .collect();
        bounds.push(end);
        let mut parts: Vec<RatePart> = Vec::new();
        for w in bounds.windows(2) {
            let (from, until) = (w[0], w[1]);
            if until <= from {
                continue;
            }
            let part = RatePart {
                from,
                until,
                band: TimeBand::at(from, self.tz),
                day_kind: DayKind::at(from, self.tz),
                cents_per_hour: self.rate_at(from),
                rate_from: self.published_at(from).map(|(at, _)| at),
            };
            match parts.last_mut() {
                Some(last)
                    if (last.band, last.day_kind, last.cents_per_hour)
                        == (part.band, part.day_kind, part.cents_per_hour)
                        && last.until == from =>
                {
                    last.until = until;
                }
                _ => parts.push(part),
            }
        }
        parts
    }

    /// The charge for a stay from `entered` to `exited`.
    pub fn charge(&self, entered: DateTime<Utc>, exited: DateTime<Utc>) -> Result<Charge> {
        let free = Charge {
            cents: 0,
            billed_seconds: 0,
            days: Vec::new(),
        };
        let r = &self.rules;
        if exited - entered <= chrono::Duration::minutes(i64::from(r.grace_minutes)) {
            return Ok(free);
        }
        let start = entered + chrono::Duration::minutes(i64::from(r.free_minutes));
        if start >= exited {
            return Ok(free);
        }
        let inc_ms = i64::from(r.increment_seconds) * 1000;
        let (start_ms, exit_ms) = (start.timestamp_millis(), exited.timestamp_millis());
        // Increments start at start + k·inc for k in 0..count.
        let count = (exit_ms - start_ms + inc_ms - 1) / inc_ms;
        let first_at_or_after = |t: i64| ((t - start_ms).max(0) + inc_ms - 1) / inc_ms;

        // Per local day: billed cent-milliseconds (rate × ms), exact.
        let mut per_day: BTreeMap<NaiveDate, i128> = BTreeMap::new();
        let bounds = self.boundaries(start, exited);
        for w in bounds.windows(2) {
            let (s, e) = (w[0], w[1]);
            let k0 = first_at_or_after(s.timestamp_millis());
            let k1 = first_at_or_after(e.timestamp_millis()).min(count);
            if k1 <= k0 {
                continue;
            }
            let rate = self.billed_rate_at(s);
            let day = s.with_timezone(&self.tz).date_naive();
            *per_day.entry(day).or_default() +=
                i128::from(k1 - k0) * i128::from(inc_ms) * i128::from(rate);
        }
        let days = per_day
            .into_iter()
            .map(|(day, cent_ms)| {
                let cents = Money::from_cent_millis(cent_ms)?;
                let capped = r
                    .daily_cap_cents
                    .map_or(cents, |cap| cents.min(Money::from_cents(cap)));
                Ok((day, capped))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Charge {
            cents: Money::sum(days.iter().map(|(_, c)| *c))?.cents(),
            billed_seconds: count * inc_ms / 1000,
            days: days.into_iter().map(|(d, c)| (d, c.cents())).collect(),
        })
    }

    /// `start`, every instant in between at which the rate or the local day may change (each
    /// local hour start, and each `effective_from`), and the end of the last started increment.
    fn boundaries(&self, start: DateTime<Utc>, exited: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let inc = chrono::Duration::seconds(i64::from(self.rules.increment_seconds));
        let end = exited + inc;
        let mut out = vec![start, end];
        let first_day = start.with_timezone(&self.tz).date_naive();
        let last_day = end.with_timezone(&self.tz).date_naive();
        let mut day = first_day;
        while day <= last_day {
            for hour in 0..24 {
                let local = day.and_hms_opt(hour, 0, 0).expect("valid hour");
                // In a spring-forward gap the hour does not exist; its band starts with the
                // next hour that does.
                if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
                    let t = t.with_timezone(&Utc);
                    if t > start && t < end {
                        out.push(t);
                    }
                }
            }
            match day.checked_add_days(Days::new(1)) {
                Some(next) => day = next,
                None => break,
            }
        }
        for m in self.rates.values() {
            out.extend(m.keys().copied().filter(|t| *t > start && *t < end));
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn flat(rules: TariffRules, cents: i64) -> Tariff {
        Tariff::new(rules, berlin(), cents, [])
    }

    /// Morning 300, midday 400 on weekdays (published from the start of 2026); default 200.
    fn banded(rules: TariffRules) -> Tariff {
        let from = t("2026-01-01T00:00:00Z");
        Tariff::new(
            rules,
            berlin(),
            200,
            [
                ScheduledRate {
                    band: TimeBand::Morning,
                    day_kind: DayKind::Weekday,
                    effective_from: from,
                    cents_per_hour: 300,
                },
                ScheduledRate {
                    band: TimeBand::Midday,
                    day_kind: DayKind::Weekday,
                    effective_from: from,
                    cents_per_hour: 400,
                },
            ],
        )
    }

    #[test]
    fn a_window_is_made_of_its_bands_each_at_its_rate() {
        // Monday 2026-06-01 10:30–13:00 in Berlin (UTC+2): morning at 300 until 11:00, then
        // midday at 400 (its hours merged into one stretch).
        let (start, end) = (t("2026-06-01T08:30:00Z"), t("2026-06-01T11:00:00Z"));
        let parts = banded(TariffRules::default()).parts(start, end);
        let seen: Vec<_> = parts
            .iter()
            .map(|p| (p.band, p.day_kind, p.cents_per_hour, p.from, p.until))
            .collect();
        let nine = t("2026-06-01T09:00:00Z");
        assert_eq!(
            seen,
            [
                (TimeBand::Morning, DayKind::Weekday, 300, start, nine),
                (TimeBand::Midday, DayKind::Weekday, 400, nine, end),
            ]
        );
        // A window inside one band is one stretch; an empty one has none.
        assert_eq!(flat(TariffRules::default(), 250).parts(nine, end).len(), 1);
        assert!(flat(TariffRules::default(), 250).parts(end, end).is_empty());
    }

    #[test]
    fn a_pass_holder_pays_only_the_hours_outside_the_rights() {
        let rights = Rights::new(&["mon".to_owned()], 8, 18).unwrap();
        let tariff = flat(TariffRules::default(), 200).free_during(rights);
        // Monday 2026-06-01 07:30–18:30 Berlin (UTC+2): 30 min before and 30 min after.
        let c = tariff
            .charge(t("2026-06-01T05:30:00Z"), t("2026-06-01T16:30:00Z"))
            .unwrap();
        assert_eq!(c.cents, 100 + 100);
        // Wholly inside: free; on Tuesday (not covered): the full tariff.
        let inside = tariff
            .charge(t("2026-06-01T07:00:00Z"), t("2026-06-01T09:00:00Z"))
            .unwrap();
        assert_eq!(inside.cents, 0);
        let tuesday = tariff
            .charge(t("2026-06-02T07:00:00Z"), t("2026-06-02T09:00:00Z"))
            .unwrap();
        assert_eq!(tuesday.cents, 400);
    }

    #[test]
    fn a_stay_across_a_band_boundary_pays_each_band_its_rate() {
        // Monday 2026-06-01, Berlin is UTC+2: 10:30–11:30 local = 30 min at 300 + 30 min at 400.
        let c = banded(TariffRules::default())
            .charge(t("2026-06-01T08:30:00Z"), t("2026-06-01T09:30:00Z"))
            .unwrap();
        assert_eq!(c.cents, 150 + 200);
        assert_eq!(c.billed_seconds, 3600);
    }

    #[test]
    fn a_rate_published_during_the_stay_applies_from_its_start() {
        let mut rates = vec![ScheduledRate {
            band: TimeBand::Morning,
            day_kind: DayKind::Weekday,
            effective_from: t("2026-06-01T06:00:00Z"),
            cents_per_hour: 600,
        }];
        rates.push(ScheduledRate {
            effective_from: t("2020-01-01T00:00:00Z"),
            cents_per_hour: 300,
            ..rates[0]
        });
        let tariff = Tariff::new(TariffRules::default(), berlin(), 200, rates);
        // 07:30–08:30 local: 30 min at 300, then 30 min at 600.
        let c = tariff
            .charge(t("2026-06-01T05:30:00Z"), t("2026-06-01T06:30:00Z"))
            .unwrap();
        assert_eq!(c.cents, 150 + 300);
    }

    #[test]
    fn grace_free_minutes_increments_and_the_daily_cap() {
        let rules = TariffRules {
            grace_minutes: 10,
            free_minutes: 15,
            increment_seconds: 15 * 60,
            daily_cap_cents: Some(1_000),
        };
        let tariff = flat(rules, 400);
        let entered = t("2026-06-01T06:00:00Z");
        let at = |m: i64| entered + chrono::Duration::minutes(m);
        assert_eq!(
            tariff.charge(entered, at(10)).unwrap().cents,
            0,
            "within grace"
        );
        assert_eq!(tariff.charge(entered, at(15)).unwrap().cents, 0, "all free");
        // 16 minutes: 1 minute after the free ones starts a 15-minute increment: 100 cents.
        assert_eq!(tariff.charge(entered, at(16)).unwrap().cents, 100);
        assert_eq!(tariff.charge(entered, at(30)).unwrap().cents, 100);
        assert_eq!(tariff.charge(entered, at(31)).unwrap().cents, 200);
        // A whole local day is capped; the next day starts afresh.
        let c = tariff.charge(entered, at(26 * 60)).unwrap();
        assert_eq!(c.days.len(), 2);
        assert!(c.days.iter().all(|(_, cents)| *cents <= 1_000));
        assert_eq!(c.days[0].1, 1_000);
    }

    #[test]
    fn dst_days_bill_the_hours_that_happened() {
        // 2026-03-29 (Berlin springs forward: 23 h) and 2026-10-25 (falls back: 25 h), at a
        // flat rate: a whole local day costs 23 and 25 hours.
        let tariff = flat(TariffRules::default(), 100);
        let spring = tariff
            .charge(t("2026-03-28T23:00:00Z"), t("2026-03-29T22:00:00Z"))
            .unwrap();
        assert_eq!((spring.cents, spring.billed_seconds), (2_300, 23 * 3600));
        let autumn = tariff
            .charge(t("2026-10-24T22:00:00Z"), t("2026-10-25T23:00:00Z"))
            .unwrap();
        assert_eq!((autumn.cents, autumn.billed_seconds), (2_500, 25 * 3600));
        assert_eq!(autumn.days.len(), 1, "one local day");
    }

    proptest! {
        #[test]
        fn a_flat_rate_costs_the_billed_time_whatever_the_boundaries(
            start in 1_767_225_600i64..1_798_761_600, // 2026
            minutes in 0i64..5_000,
            secs in 0i64..60,
            rate in 0i64..2_000,
        ) {
            let entered = DateTime::from_timestamp(start, 0).unwrap();
            let exited = entered + chrono::Duration::seconds(minutes * 60 + secs);
            let c = flat(TariffRules::default(), rate).charge(entered, exited).unwrap();
            let seconds = minutes * 60 + secs;
            prop_assert_eq!(c.billed_seconds, seconds);
            // Rounded up once per local day: at most one cent per day above the exact amount.
            let exact = (seconds * rate + 3599) / 3600;
            prop_assert!(c.cents >= exact && c.cents <= exact + c.days.len() as i64, "{c:?} vs {exact}");
        }

        #[test]
        fn a_longer_stay_never_costs_less(
            start in 1_767_225_600i64..1_798_761_600,
            minutes in 0i64..3_000,
            more in 0i64..600,
            grace in 0u32..20,
            free in 0u32..30,
            inc in prop::sample::select(vec![1u32, 60, 900, 3600]),
            cap in prop::option::of(500i64..5_000),
        ) {
            let rules = TariffRules { grace_minutes: grace, free_minutes: free, increment_seconds: inc, daily_cap_cents: cap };
            let tariff = banded(rules);
            let entered = DateTime::from_timestamp(start, 0).unwrap();
            let short = tariff.charge(entered, entered + chrono::Duration::minutes(minutes)).unwrap();
            let long = tariff.charge(entered, entered + chrono::Duration::minutes(minutes + more)).unwrap();
            prop_assert!(long.cents >= short.cents, "{short:?} then {long:?}");
            if let Some(cap) = cap {
                prop_assert!(long.days.iter().all(|(_, c)| *c <= cap));
            }
        }
    }
}
