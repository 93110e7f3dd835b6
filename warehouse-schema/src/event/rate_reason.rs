//! Why a published rate is what it is: the reason `rate_published` events carry, its checks,
//! and how it reads back from the lake's JSON text column.

use super::Cents;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a published rate is what it is: the pricing run's evidence and decision, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateReason {
    /// The policy that set it (`forecast-aware`, `SFpark step`).
    pub policy: String,
    /// Mean occupancy (0–1) of this band and day kind over the observed period.
    pub observed_occupancy: f64,
    pub observed_from: DateTime<Utc>,
    pub observed_to: DateTime<Utc>,
    /// The target band of occupancy (0–1).
    pub target_low: f64,
    pub target_high: f64,
    /// Forecast mean occupancy (0–1) of the coming period at the previous rate, and at the new
    /// one (moved by `elasticity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_at_previous: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_at_new: Option<f64>,
    /// Price elasticity of occupancy the policy assumed (negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticity: Option<f64>,
    /// The rate before, and the step taken (new − previous, cents per hour).
    pub previous_cents: Cents,
    pub step_cents: i64,
    /// The policy's bounds.
    pub floor_cents: Cents,
    pub cap_cents: Cents,
    /// What held the rate where it is, if anything did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<RateBound>,
}

/// A bound that decided a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateBound {
    /// At the policy's floor.
    Floor,
    /// At the policy's cap.
    Cap,
    /// A cut taken back so that the operator's predicted revenue stays at the standard rates'.
    RevenueGuard,
}

impl RateBound {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Cap => "cap",
            Self::RevenueGuard => "revenue_guard",
        }
    }
}

impl RateReason {
    /// The one check of a reason, wherever it arrives (an event, the API's rate intake): shares
    /// within 0–1, a period that ends after it starts, bounds in order, and a step that leads
    /// from the previous rate to `cents_per_hour`.
    pub fn check(&self, cents_per_hour: i64) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "reason.{name} must be a share from 0 to 1, got {v}"
                ))
            }
        };
        if self.policy.trim().is_empty() || self.policy.chars().count() > 64 {
            return Err("reason.policy must be 1 to 64 characters".into());
        }
        share("observed_occupancy", self.observed_occupancy)?;
        share("target_low", self.target_low)?;
        share("target_high", self.target_high)?;
        if self.target_low > self.target_high {
            return Err("reason.target_low must not be above target_high".into());
        }
        for (name, v) in [
            ("forecast_at_previous", self.forecast_at_previous),
            ("forecast_at_new", self.forecast_at_new),
        ] {
            if let Some(v) = v {
                share(name, v)?;
            }
        }
        if let Some(e) = self.elasticity
            && !(e.is_finite() && (-10.0..=0.0).contains(&e))
        {
            return Err(format!("reason.elasticity must be from -10 to 0, got {e}"));
        }
        if self.observed_from >= self.observed_to {
            return Err("reason.observed_from must be before observed_to".into());
        }
        if self.previous_cents.0 < 0 || self.floor_cents.0 < 0 || self.floor_cents > self.cap_cents
        {
            return Err(
                "reason: rates must not be negative and the floor not above the cap".into(),
            );
        }
        if self.previous_cents.0.checked_add(self.step_cents) != Some(cents_per_hour) {
            return Err(format!(
                "reason: previous {} + step {} is not the rate {cents_per_hour}",
                self.previous_cents.0, self.step_cents
            ));
        }
        Ok(())
    }
}

/// A rate's reason as an object (an event on the wire) or as JSON text (the lake's column).
pub(super) fn reason_text_or_object<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RateReason>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(D::Error::custom),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(D::Error::custom),
    }
}
