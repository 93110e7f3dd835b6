//! Why a rate is what it is, as the API shows it: the pricing run's evidence and decision as
//! data (the contract's [`warehouse_schema::event::RateReason`], in the API's field names), and
//! the sentence a driver or an admin reads ("Weekday mornings were 91 % full from 2 to 30 Nov,
//! above the 60–80 % target: +0.25 EUR an hour from Mon 14 Dec.").

use super::Money;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use warehouse_schema::event::{RateBound, RateReason as Contract};
use warehouse_schema::{Cents, DayKind, TimeBand};

/// Why pricing set a rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateReason {
    /// The policy that set it (`forecast-aware`, `SFpark step`).
    #[schema(min_length = 1, max_length = 64)]
    pub policy: String,
    /// Mean occupancy (0–1) of the band and day kind over the observed period.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub observed_occupancy: f64,
    pub observed_from: DateTime<Utc>,
    pub observed_to: DateTime<Utc>,
    /// The target band of occupancy (0–1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub target_low: f64,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub target_high: f64,
    /// Forecast mean occupancy (0–1) of the coming period at the previous rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub forecast_at_previous: Option<f64>,
    /// The same at the new rate, moved by `elasticity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub forecast_at_new: Option<f64>,
    /// The price elasticity of occupancy assumed (−10 to 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -10.0, maximum = 0.0)]
    pub elasticity: Option<f64>,
    /// The rate before (cents per hour); `centsPerHour` is it plus `stepCents`.
    #[schema(minimum = 0, maximum = 100000)]
    pub previous_cents: i64,
    #[schema(minimum = -100000, maximum = 100000)]
    pub step_cents: i64,
    #[schema(minimum = 0, maximum = 100000)]
    pub floor_cents: i64,
    #[schema(minimum = 0)]
    pub cap_cents: i64,
    /// What held the rate where it is: `floor`, `cap` or `revenue_guard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(floor|cap|revenue_guard)$")]
    pub bound: Option<Bound>,
}

/// A bound that decided a rate, by the contract's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Floor,
    Cap,
    RevenueGuard,
}

impl From<Contract> for RateReason {
    fn from(r: Contract) -> Self {
        Self {
            policy: r.policy,
            observed_occupancy: r.observed_occupancy,
            observed_from: r.observed_from,
            observed_to: r.observed_to,
            target_low: r.target_low,
            target_high: r.target_high,
            forecast_at_previous: r.forecast_at_previous,
            forecast_at_new: r.forecast_at_new,
            elasticity: r.elasticity,
            previous_cents: r.previous_cents.0,
            step_cents: r.step_cents,
            floor_cents: r.floor_cents.0,
            cap_cents: r.cap_cents.0,
            bound: r.bound.map(|b| match b {
                RateBound::Floor => Bound::Floor,
                RateBound::Cap => Bound::Cap,
                RateBound::RevenueGuard => Bound::RevenueGuard,
            }),
        }
    }
}

impl From<RateReason> for Contract {
    fn from(r: RateReason) -> Self {
        Self {
            policy: r.policy,
            observed_occupancy: r.observed_occupancy,
            observed_from: r.observed_from,
            observed_to: r.observed_to,
            target_low: r.target_low,
            target_high: r.target_high,
            forecast_at_previous: r.forecast_at_previous,
            forecast_at_new: r.forecast_at_new,
            elasticity: r.elasticity,
            previous_cents: Cents(r.previous_cents),
            step_cents: r.step_cents,
            floor_cents: Cents(r.floor_cents),
            cap_cents: Cents(r.cap_cents),
            bound: r.bound.map(|b| match b {
                Bound::Floor => RateBound::Floor,
                Bound::Cap => RateBound::Cap,
                Bound::RevenueGuard => RateBound::RevenueGuard,
            }),
        }
    }
}

/// Where a rate applies, for its sentence.
#[derive(Debug, Clone, Copy)]
pub struct RateAt<'a> {
    pub band: TimeBand,
    pub day_kind: DayKind,
    pub effective_from: DateTime<Utc>,
    pub tz: Tz,
    pub currency: &'a str,
}

impl RateReason {
    /// The contract's check (shares, period, bounds, previous + step = the rate).
    pub fn check(&self, cents_per_hour: i64) -> Result<(), String> {
        Contract::from(self.clone()).check(cents_per_hour)
    }

    /// The reason in one sentence, in the lot's time zone and currency.
    pub fn sentence(&self, at: RateAt<'_>) -> String {
        let pct = |v: f64| format!("{:.0} %", 100.0 * v);
        let day = |t: DateTime<Utc>| t.with_timezone(&at.tz).format("%-d %b").to_string();
        let when = match at.day_kind {
            DayKind::Weekday => "Weekday",
            DayKind::Weekend => "Weekend",
        };
        let (from_h, to_h) = at.band.hours();
        let band = match at.band {
            TimeBand::Night => "nights",
            TimeBand::Morning => "mornings",
            TimeBand::Midday => "middays",
            TimeBand::Afternoon => "afternoons",
            TimeBand::Evening => "evenings",
        };
        let side = if self.observed_occupancy > self.target_high {
            "above"
        } else if self.observed_occupancy < self.target_low {
            "below"
        } else {
            "inside"
        };
        let step = Money::from_cents(self.step_cents.abs());
        let sign = if self.step_cents >= 0 { "+" } else { "−" };
        let mut s = format!(
            "{when} {band} ({from_h:02}–{to_h:02} h) were {} full from {} to {}, {side} the {}–{} target: {sign}{step} {} an hour from {}.",
            pct(self.observed_occupancy),
            day(self.observed_from),
            day(self.observed_to),
            pct(self.target_low).trim_end_matches(" %"),
            pct(self.target_high),
            at.currency,
            at.effective_from
                .with_timezone(&at.tz)
                .format("%a %-d %b %H:%M"),
        );
        if let (Some(before), Some(after)) = (self.forecast_at_previous, self.forecast_at_new) {
            s.push_str(&format!(
                " Forecast: {} full at the old rate, {} at the new one.",
                pct(before),
                pct(after)
            ));
        }
        match self.bound {
            Some(Bound::Floor) => s.push_str(" The rate is at its floor."),
            Some(Bound::Cap) => s.push_str(" The rate is at its cap."),
            Some(Bound::RevenueGuard) => s.push_str(
                " The cut was held back so that revenue stays at least what the standard rates earn.",
            ),
            None => {}
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason() -> RateReason {
        RateReason {
            policy: "forecast-aware".into(),
            observed_occupancy: 0.912,
            observed_from: "2026-11-23T00:00:00Z".parse().unwrap(),
            observed_to: "2026-11-30T00:00:00Z".parse().unwrap(),
            target_low: 0.6,
            target_high: 0.8,
            forecast_at_previous: Some(0.9),
            forecast_at_new: Some(0.86),
            elasticity: Some(-0.3),
            previous_cents: 300,
            step_cents: 25,
            floor_cents: 50,
            cap_cents: 800,
            bound: None,
        }
    }

    #[test]
    fn a_reason_reads_as_one_sentence_in_the_lots_time() {
        let at = RateAt {
            band: TimeBand::Morning,
            day_kind: DayKind::Weekday,
            effective_from: "2026-12-06T23:00:00Z".parse().unwrap(),
            tz: chrono_tz::Europe::Berlin,
            currency: "EUR",
        };
        assert_eq!(
            reason().sentence(at),
            "Weekday mornings (07–11 h) were 91 % full from 23 Nov to 30 Nov, above the 60–80 % \
             target: +0.25 EUR an hour from Mon 7 Dec 00:00. Forecast: 90 % full at the old \
             rate, 86 % at the new one."
        );
        let cut = RateReason {
            observed_occupancy: 0.2,
            step_cents: -50,
            bound: Some(Bound::Floor),
            forecast_at_previous: None,
            ..reason()
        };
        let s = cut.sentence(at);
        assert!(s.contains("were 20 % full") && s.contains("below the 60–80 % target: −0.50 EUR"));
        assert!(s.ends_with("The rate is at its floor."), "{s}");
    }

    #[test]
    fn the_contract_and_the_api_read_one_reason_alike() {
        let r = reason();
        assert_eq!(RateReason::from(Contract::from(r.clone())), r);
        assert_eq!(r.check(325), Ok(()));
        assert!(r.check(300).unwrap_err().contains("previous 300 + step 25"));
        let bad = RateReason {
            observed_occupancy: f64::NAN,
            ..reason()
        };
        assert!(bad.check(325).is_err());
    }
}
