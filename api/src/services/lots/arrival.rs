//! "Will there be a spot when I get there?": the chance of a free spot at a lot at a time, from
//! the occupancy forecast the forecast-training job published (each hour's chance comes from
//! the forecast with its own error distribution, blended with the history's base rate; see
//! `parkflow_forecast::free_spot`), and whether a reservation is still possible instead.

use super::*;
use crate::domain::error::{Error, Result};
use crate::services::reservations::TimeRange;
use crate::store::forecasts as rows;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use warehouse_schema::{LotId, VehicleType};

/// The chance of a free spot when a driver arrives.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArrivalChance {
    #[schema(value_type = i64)]
    pub lot_id: LotId,
    pub at: DateTime<Utc>,
    #[schema(schema_with = crate::domain::schema::vehicle_type)]
    pub vehicle_type: VehicleType,
    /// The chance (0–1) that a spot for this vehicle is free on arrival: the lot's chance for
    /// that hour, or 0 when every spot this vehicle may use is reserved then.
    pub free_chance: f64,
    /// Vehicles the lot is forecast to hold in that hour (mean), of `capacity`.
    pub forecast_occupancy: f64,
    pub capacity: i64,
    /// The forecast hour `at` falls in, and when that forecast was made.
    pub hour_start: DateTime<Utc>,
    pub trained_at: DateTime<Utc>,
    /// Spots this vehicle could still reserve from `at` for the lot's shortest booking (0 when
    /// none, or when the booking rules do not accept a booking then).
    pub reservable_spots: i64,
    /// Why no reservation is possible then, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reservable: Option<String>,
}

/// One hour of a lot's published forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastHour {
    pub hour_start: DateTime<Utc>,
    /// Vehicles forecast (mean over the hour).
    pub occupancy: f64,
    /// The chance (0–1) of a free spot in that hour.
    pub free_chance: f64,
}

impl Lots<'_> {
    /// Replace `lot`'s forecast from its first hour on with `hours`, trained at `trained_at`.
    /// Hours must be whole UTC hours with a finite occupancy and a chance from 0 to 1.
    pub async fn publish_arrival_forecast(
        &self,
        lot: LotId,
        trained_at: DateTime<Utc>,
        hours: &[ForecastHour],
    ) -> Result<usize> {
        for h in hours {
            let whole = h.hour_start.duration_trunc(TimeDelta::hours(1)).ok() == Some(h.hour_start);
            let sound = whole
                && h.occupancy.is_finite()
                && h.occupancy >= 0.0
                && (0.0..=1.0).contains(&h.free_chance);
            if !sound {
                return Err(Error::Invalid(format!(
                    "a forecast hour starts on the hour, with occupancy ≥ 0 and a chance from 0 to 1: {h:?}"
                )));
            }
        }
        let Some(first) = hours.iter().map(|h| h.hour_start).min() else {
            return Ok(0);
        };
        let mut tx = self.store().begin_change(self.now()).await?;
        self.lot_row(&mut tx, lot).await?;
        rows::clear_from(&mut *tx, lot, first.timestamp_millis()).await?;
        for h in hours {
            let row = (h.hour_start.timestamp_millis(), h.occupancy, h.free_chance);
            rows::insert(&mut *tx, lot, row, trained_at.timestamp_millis()).await?;
        }
        tx.commit().await?;
        Ok(hours.len())
    }

    /// The chance of a free spot for a `vehicle` arriving at `lot` at `at`.
    pub async fn arrival_chance(
        &self,
        lot: LotId,
        at: DateTime<Utc>,
        vehicle: VehicleType,
    ) -> Result<ArrivalChance> {
        let now = self.now();
        if at < now - TimeDelta::minutes(5) {
            return Err(Error::Invalid(format!(
                "`at` is in the past ({at}); ask about an arrival from now on"
            )));
        }
        let mut conn = self.store().pool().acquire().await?;
        self.lot_row(&mut conn, lot).await?;
        let hour = at
            .duration_trunc(TimeDelta::hours(1))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let Some((occupancy, chance, trained)) =
            rows::hour(&mut conn, lot, hour.timestamp_millis()).await?
        else {
            let covered = match rows::span(&mut conn, lot).await? {
                Some((from, to)) => format!(
                    "the forecast covers {} to {}",
                    millis(from)?,
                    millis(to)? + TimeDelta::hours(1)
                ),
                None => "the lot has no forecast yet (the forecast-training job makes it)".into(),
            };
            return Err(Error::conflict(
                "no_forecast",
                format!("no forecast covers {at}: {covered}"),
            ));
        };
        drop(conn);
        let capacity = crate::store::lots::open_spot_count(self.store().pool(), lot).await?;
        // Spots this vehicle may use that no reservation holds at the moment of arrival.
        let instant = TimeRange::new(at, at + TimeDelta::minutes(1))?;
        let unreserved = self.free_spots(lot, instant, vehicle, None).await?.len();
        // A reservation from `at` for the lot's shortest booking, if the rules take one.
        let rules = self.reservations().booking_rules(lot).await?;
        let (reservable_spots, not_reservable) = match rules.window(at, at + rules.shortest(), now)
        {
            Ok(window) => {
                let n = self.free_spots(lot, window, vehicle, None).await?.len();
                let why = (n == 0).then(|| format!("no {vehicle} spot is free to reserve then"));
                (n as i64, why)
            }
            Err(e) => (0, Some(e.to_string())),
        };
        Ok(ArrivalChance {
            lot_id: lot,
            at,
            vehicle_type: vehicle,
            free_chance: if unreserved == 0 { 0.0 } else { chance },
            forecast_occupancy: occupancy,
            capacity,
            hour_start: hour,
            trained_at: millis(trained)?,
            reservable_spots,
            not_reservable,
        })
    }
}

fn millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Invalid("time out of range".into()))
}
