//! What a booking would cost before it is made, and what the price is made of: the window
//! checked by the same rules as a booking, priced by the same tariff (so the preview and the
//! booking's quote cannot disagree).

use super::*;
use crate::domain::error::Result;
use crate::services::Reservations;
use chrono::{DateTime, Utc};
use serde::Serialize;
use warehouse_schema::{DayKind, LotId, TimeBand, VehicleType};

/// The price of a window before booking it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    /// What booking this window now would cost (the reservation's `quoteCents`).
    pub quote_cents: i64,
    pub currency: String,
    /// The window's stretches, each at one hourly rate, in order.
    pub parts: Vec<QuotePart>,
    /// The most one local day is charged, when the tariff caps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_cap_cents: Option<i64>,
}

/// A stretch of a quoted window at one rate.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotePart {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    #[schema(schema_with = crate::domain::schema::day_kind)]
    pub day_kind: DayKind,
    pub cents_per_hour: i64,
    pub minutes: i64,
    /// Why pricing set this rate (none for the lot's default or a rate set by hand).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::domain::rate_reason::RateReason>,
    /// The reason in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl Reservations<'_> {
    /// What booking `start..end` at `lot` for a `vehicle` would cost now, and why.
    pub async fn quote_window(
        &self,
        lot: LotId,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        vehicle: VehicleType,
    ) -> Result<Quote> {
        let mut conn = self.store().pool().acquire().await?;
        let rules = LotRules::load(&mut conn, lot).await?;
        let window = rules.window(start, end, self.now())?;
        let pricing = self.quote_rules();
        let (tariff, reasons) = rules
            .explained_tariff(&mut conn, lot, window, vehicle, pricing)
            .await?;
        let charge = tariff.charge(window.start(), window.end())?;
        let parts = quote_parts(&tariff, &reasons, window.start(), window.end());
        Ok(Quote {
            lot_id: lot,
            start_at: window.start(),
            end_at: window.end(),
            vehicle_type: vehicle,
            quote_cents: charge.cents,
            currency: rules.currency.clone(),
            parts,
            daily_cap_cents: pricing.daily_cap_cents,
        })
    }
}

/// The stretches of `from..until` under `tariff`, each at one hourly rate and with its reason,
/// as a quote shows them.
pub(super) fn quote_parts(
    tariff: &crate::domain::tariff::Tariff,
    reasons: &crate::services::lots::RateReasons,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<QuotePart> {
    tariff
        .parts(from, until)
        .into_iter()
        .map(|p| {
            let (reason, explanation) = reasons
                .of(p.band, p.day_kind, p.rate_from)
                .map_or((None, None), |(r, s)| (Some(r), Some(s)));
            QuotePart {
                minutes: (p.until - p.from).num_minutes(),
                from: p.from,
                until: p.until,
                band: p.band,
                day_kind: p.day_kind,
                cents_per_hour: p.cents_per_hour,
                reason,
                explanation,
            }
        })
        .collect()
}
