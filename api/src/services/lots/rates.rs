//! Rates: publishing (validated, each with its event), the schedule in force and announced,
//! the rate in force at an instant.

use super::*;
use crate::domain::MAX_CENTS_PER_HOUR;
use crate::domain::error::{Error, Result};
use crate::domain::tariff::ScheduledRate;
use crate::store::rates::{self as rows, RateKey};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use warehouse_schema::event::RatePublished;
use warehouse_schema::{Cents, DayKind, Event, EventPayload, LotId, TimeBand, VehicleType};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    #[schema(schema_with = crate::domain::schema::band)]
    pub band: TimeBand,
    #[schema(schema_with = crate::domain::schema::day_kind)]
    pub day_kind: DayKind,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    #[schema(schema_with = crate::domain::schema::cents)]
    pub cents_per_hour: i64,
    /// When omitted on publishing: now.
    #[serde(default)]
    pub effective_from: Option<DateTime<Utc>>,
}

impl From<RatePublished> for Rate {
    /// A rate as pricing announces it on the rates topic.
    fn from(r: RatePublished) -> Self {
        Self {
            band: r.band,
            day_kind: r.day_kind,
            vehicle_type: r.vehicle_type,
            cents_per_hour: r.cents_per_hour.0,
            effective_from: Some(r.effective_from),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRates {
    #[schema(min_items = 1, max_items = 1000)]
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateSchedule {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub currency: String,
    pub default_cents_per_hour: i64,
    /// The rate in force now for every band, day kind and vehicle type that has one.
    pub current: Vec<Rate>,
    /// Rates announced to start later.
    pub upcoming: Vec<Rate>,
}

/// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot's time zone `tz` picks
/// band and day kind), if one was published; callers fall back to the lot default.
/// The published rates of `lot` for `vt` that can apply up to `until`, for the tariff engine.
pub(crate) async fn scheduled_rates(
    conn: &mut sqlx::AnyConnection,
    lot: LotId,
    vt: VehicleType,
    until: DateTime<Utc>,
) -> Result<Vec<ScheduledRate>> {
    rows::of_vehicle(conn, lot, vt, until.timestamp_millis())
        .await?
        .into_iter()
        .map(|(band, day_kind, from, cents)| {
            Ok(ScheduledRate {
                band: band.parse().map_err(Error::Invalid)?,
                day_kind: day_kind.parse().map_err(Error::Invalid)?,
                effective_from: DateTime::from_timestamp_millis(from)
                    .ok_or_else(|| Error::Invalid("rate start out of range".into()))?,
                cents_per_hour: cents,
            })
        })
        .collect()
}

pub(crate) async fn rate_in_force_conn(
    conn: &mut sqlx::AnyConnection,
    lot: LotId,
    vt: VehicleType,
    tz: Tz,
    at: DateTime<Utc>,
) -> Result<Option<i64>> {
    let key = RateKey {
        band: TimeBand::at(at, tz).as_str(),
        day_kind: DayKind::at(at, tz).as_str(),
        vehicle_type: vt.as_str(),
        effective_from: at.timestamp_millis(),
    };
    rows::in_force(conn, lot, key).await
}

pub(crate) fn check_rate(cents: i64) -> Result<()> {
    if (0..=MAX_CENTS_PER_HOUR).contains(&cents) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "cents per hour must be 0 to {MAX_CENTS_PER_HOUR}, got {cents}"
        )))
    }
}

impl Lots<'_> {
    /// Pricing publishes rates for a lot; each new or changed one becomes a schedule row and a
    /// `rate_published` event. A rate identical to the one already scheduled for the same band,
    /// day kind, vehicle type and start is a no-op, so the same rates arriving twice (over HTTP
    /// and over the rates topic, or a retry) change nothing. Returns how many rows changed.
    pub async fn publish_rates(&self, lot: LotId, rates: Vec<Rate>) -> Result<usize> {
        if rates.is_empty() {
            return Err(Error::Invalid("no rates given".into()));
        }
        for r in &rates {
            check_rate(r.cents_per_hour)?;
        }
        let now = self.now();
        let mut tx = self.store().begin_change(now).await?;
        self.lot_row(&mut tx, lot).await?;
        let mut changed = 0;
        for r in &rates {
            let from = r.effective_from.unwrap_or(now);
            let key = RateKey {
                band: r.band.as_str(),
                day_kind: r.day_kind.as_str(),
                vehicle_type: r.vehicle_type.as_str(),
                effective_from: from.timestamp_millis(),
            };
            if rows::exact(&mut *tx, lot, key).await? == Some(r.cents_per_hour) {
                continue;
            }
            changed += 1;
            let at = now.timestamp_millis();
            rows::upsert(&mut *tx, lot, key, r.cents_per_hour, at).await?;
            let event = Event::new(
                now,
                lot,
                EventPayload::RatePublished(RatePublished {
                    band: r.band,
                    day_kind: r.day_kind,
                    vehicle_type: r.vehicle_type,
                    cents_per_hour: Cents(r.cents_per_hour),
                    effective_from: from,
                }),
            );
            tx.event(event);
        }
        tx.commit().await?;
        self.metrics.rates_published.inc_by(changed as u64);
        Ok(changed)
    }

    /// The rates in force now and those announced for later.
    pub async fn rate_schedule(&self, lot: LotId) -> Result<RateSchedule> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        let now = self.now().timestamp_millis();
        let stored = rows::schedule(&mut *conn, lot, now).await?;
        let (mut current, mut upcoming) = (Vec::new(), Vec::new());
        for (band, day_kind, vt, cents, from) in stored {
            let rate = Rate {
                band: band.parse().map_err(Error::Invalid)?,
                day_kind: day_kind.parse().map_err(Error::Invalid)?,
                vehicle_type: vt.parse().map_err(Error::Invalid)?,
                cents_per_hour: cents,
                effective_from: DateTime::from_timestamp_millis(from),
            };
            if from > now {
                upcoming.push(rate)
            } else {
                current.push(rate)
            }
        }
        Ok(RateSchedule {
            lot_id: lot,
            currency: info.currency,
            default_cents_per_hour: info.default_cents_per_hour,
            current,
            upcoming,
        })
    }

    /// The hourly rate a vehicle of type `vt` pays in `lot` at `at` (the lot default if none was
    /// published).
    pub async fn rate_at(&self, lot: LotId, vt: VehicleType, at: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.store.pool().acquire().await?;
        let info = self.lot_row(&mut conn, lot).await?;
        Ok(rate_in_force_conn(&mut conn, lot, vt, info.tz, at)
            .await?
            .unwrap_or(info.default_cents_per_hour))
    }

    pub(super) async fn rate_in_force(
        &self,
        lot: LotId,
        vt: VehicleType,
        tz: Tz,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut conn = self.store.pool().acquire().await?;
        rate_in_force_conn(&mut conn, lot, vt, tz, at).await
    }
}
