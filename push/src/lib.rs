//! Forecast push messages: "Lot A: 12 spaces left, expected full by 08:40", sent to drivers who
//! are likely to arrive at a lot in the next hour.
//!
//! Two jobs share this module:
//! - `forecast-training` (nightly) fits, from the lake, each lot's occupancy model and each
//!   known driver's arrival habits, and writes the next day and a half of both to
//!   `<data_dir>/forecast/forecast.json`;
//! - `push-candidates` (every few minutes) reads that file, picks the drivers likely to arrive
//!   in the coming local hour, and puts one message per driver, lot and hour into the
//!   notification outbox, with the lot's free spaces now and the hour the lot is expected to
//!   fill.

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use parkflow_api::Services;
use parkflow_api::notifications::{NewNotification, NotificationKind, enqueue};
use parkflow_forecast::driver::{DriverArrival, DriverModel, DriverModelConfig};
use parkflow_forecast::{FreeSpotModel, LotModel, Measure, Series};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use warehouse_schema::lake::Lake;
use warehouse_schema::{LotId, UserId};

/// A lot counts as full from this share of its capacity.
const FULL_AT: f64 = 0.97;

/// What the nightly training leaves for the push job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForecastFile {
    pub trained_at: DateTime<Utc>,
    pub lots: Vec<LotForecast>,
    pub drivers: Vec<LikelyArrival>,
}

/// A lot's predicted mean occupancy (cars) per coming UTC hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotForecast {
    pub lot_id: LotId,
    pub capacity: f64,
    pub hours: Vec<(DateTime<Utc>, f64)>,
    /// The chance of a free spot in each of `hours` (empty while the lot's history is too
    /// short for the error distribution: `FreeSpotModel` needs nine days).
    #[serde(default)]
    pub free_chance: Vec<f64>,
}

/// A driver likely to arrive at a lot in a local hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LikelyArrival {
    pub user_key: String,
    pub lot_id: LotId,
    pub local_date: NaiveDate,
    pub local_hour: u32,
    pub probability: f64,
}

impl ForecastFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("forecast").join("forecast.json")
    }

    /// Write atomically (a reader sees the old file or the new one).
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(data_dir);
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// The last training's output; None before the first training.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("the forecast file is unreadable")?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// When `lot` is expected to reach [`FULL_AT`] of its capacity after `now` (interpolated
    /// between hourly means, to 5 minutes), if within the forecast.
    pub fn expected_full(&self, lot: LotId, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let f = self.lots.iter().find(|f| f.lot_id == lot)?;
        let level = FULL_AT * f.capacity;
        // Hourly means, placed at the middle of their hour.
        let points: Vec<(DateTime<Utc>, f64)> = f
            .hours
            .iter()
            .map(|(start, v)| (*start + Duration::minutes(30), *v))
            .collect();
        let first = points.first()?;
        if first.1 >= level && first.0 >= now {
            return Some(first.0);
        }
        points.windows(2).find_map(|w| {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if v0 >= level || v1 < level {
                return None;
            }
            let share = (level - v0) / (v1 - v0);
            let secs = ((t1 - t0).num_seconds() as f64 * share) as i64;
            let at = round_to_5_minutes(t0 + Duration::seconds(secs));
            (at >= now).then_some(at)
        })
    }
}

fn round_to_5_minutes(t: DateTime<Utc>) -> DateTime<Utc> {
    let step = 300;
    let s = t.timestamp();
    DateTime::from_timestamp((s + step / 2).div_euclid(step) * step, 0).unwrap_or(t)
}

/// The nightly training: each lot's occupancy for the next day from the lake's hourly series,
/// and the drivers likely to arrive in any local hour of the next 36 hours.
pub async fn train(
    lake: &Lake,
    now: DateTime<Utc>,
    threshold: f64,
) -> anyhow::Result<ForecastFile> {
    // In lot and time order, so each lot's hours are one run.
    let hours = parkflow_pipeline::lot_hours(lake).await?;
    let mut lots = Vec::new();
    for mine in hours.chunk_by(|a, b| a.lot_id == b.lot_id) {
        let (lot, last) = (mine[0].lot_id, mine[mine.len() - 1].hour_start);
        let Some(series) = Series::from_lot_hours(mine, Measure::Occupancy).pop() else {
            continue;
        };
        // A lot with less than a few days of history has no model yet; skip it, not the job.
        let Ok(model) = LotModel::fit(&series, series.slots.len()) else {
            tracing::info!(lot = %lot, "not enough history to forecast this lot yet");
            continue;
        };
        let origin = series.slots.len() - 1;
        let next = model.forecast_next_day(&series);
        // The chance of a free spot in each forecast hour: from the most cars present in each
        // hour of the same history (a spot free throughout the hour).
        let peak = Series::from_lot_hours(mine, Measure::Peak).pop();
        let free_chance = match peak.map(|p| (FreeSpotModel::fit(&p, p.slots.len()), p)) {
            Some((Ok(free), peak)) => next
                .iter()
                .map(|(i, _)| free.chance(&peak, origin, i - origin))
                .collect::<Option<Vec<f64>>>()
                .unwrap_or_default(),
            Some((Err(e), _)) => {
                tracing::info!(lot = %lot, error = %e, "no free-spot chances for this lot yet");
                Vec::new()
            }
            None => Vec::new(),
        };
        lots.push(LotForecast {
            lot_id: lot,
            capacity: series.capacity,
            hours: next
                .into_iter()
                .map(|(i, v)| (last + Duration::hours((i - origin) as i64), v))
                .collect(),
            free_chance,
        });
    }

    let entries = parkflow_pipeline::driver_entries(lake, now).await?;
    let arrivals: Vec<DriverArrival> = entries.into_iter().map(DriverArrival::from).collect();
    let model = DriverModel::fit(&arrivals, DriverModelConfig::default());
    let tz_of = lot_zones(lake).await?;
    let mut drivers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let zones: std::collections::BTreeMap<&str, Tz> =
        tz_of.values().map(|tz| (tz.name(), *tz)).collect();
    for h in 1..=36 {
        let at = now + Duration::hours(h);
        for (name, tz) in &zones {
            let local = at.with_timezone(tz);
            let (date, hour) = (local.date_naive(), local.hour());
            if !seen.insert((*name, date, hour)) {
                continue;
            }
            for (user_key, lot, p) in model.likely(date, hour, threshold) {
                if tz_of.get(&lot).map(|z| z.name()) == Some(*name) {
                    drivers.push(LikelyArrival {
                        user_key,
                        lot_id: lot,
                        local_date: date,
                        local_hour: hour,
                        probability: p,
                    });
                }
            }
        }
    }
    Ok(ForecastFile {
        trained_at: now,
        lots,
        drivers,
    })
}

/// Publish each lot's free-spot chances of `f` to the API, where `GET /v1/lots/{id}/arrival`
/// reads them (any API process on the same database). Returns the hours published.
pub async fn publish_arrival(service: &Services, f: &ForecastFile) -> anyhow::Result<usize> {
    let mut published = 0;
    for lot in f
        .lots
        .iter()
        .filter(|l| l.free_chance.len() == l.hours.len())
    {
        let hours: Vec<parkflow_api::services::lots::ForecastHour> = lot
            .hours
            .iter()
            .zip(&lot.free_chance)
            .map(|(&(hour_start, occupancy), &free_chance)| {
                parkflow_api::services::lots::ForecastHour {
                    hour_start,
                    occupancy,
                    free_chance,
                }
            })
            .collect();
        published += service
            .lots()
            .publish_arrival_forecast(lot.lot_id, f.trained_at, &hours)
            .await
            .with_context(|| format!("publishing the arrival forecast of lot {}", lot.lot_id))?;
    }
    Ok(published)
}

async fn lot_zones(lake: &Lake) -> anyhow::Result<std::collections::BTreeMap<LotId, Tz>> {
    parkflow_pipeline::lot_time_zones(lake)
        .await?
        .into_iter()
        .map(|(lot, zone)| {
            let tz: Tz = zone
                .parse()
                .map_err(|e| anyhow::anyhow!("lot {lot}: {e}"))?;
            Ok((lot, tz))
        })
        .collect()
}

/// What one push run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Drivers likely to arrive in the coming hour.
    pub candidates: usize,
    /// Messages new in the outbox (the rest were proposed by an earlier run).
    pub enqueued: usize,
}

/// Propose a message to every driver of `forecast` likely to arrive at a lot in the local hour
/// that starts next after `now`.
pub async fn push_candidates(
    service: &Services,
    forecast: &ForecastFile,
    now: DateTime<Utc>,
) -> anyhow::Result<PushReport> {
    let mut report = PushReport::default();
    let mut lots = std::collections::BTreeMap::new();
    for lot in service.lots().list().await? {
        lots.insert(lot.id, lot);
    }
    for likely in &forecast.drivers {
        let Some(lot) = lots.get(&likely.lot_id) else {
            continue;
        };
        let tz: Tz = lot.time_zone.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let next = (now + Duration::hours(1)).with_timezone(&tz);
        if (next.date_naive(), next.hour()) != (likely.local_date, likely.local_hour) {
            continue;
        }
        let Ok(user) = likely.user_key.parse::<uuid::Uuid>() else {
            continue;
        };
        report.candidates += 1;
        let full = forecast
            .expected_full(lot.id, now)
            .map(|t| {
                format!(
                    ", expected full by {}",
                    t.with_timezone(&tz).format("%H:%M")
                )
            })
            .unwrap_or_default();
        let message = NewNotification {
            user_id: UserId(user),
            kind: NotificationKind::ArrivalForecast,
            dedup_key: format!(
                "arrival:{}:{}:{}T{:02}",
                likely.user_key, lot.id, likely.local_date, likely.local_hour
            ),
            lot_id: Some(lot.id),
            title: lot.name.clone(),
            body: format!("{}: {} spaces left{full}", lot.name, lot.free_spots),
        };
        if enqueue(service.store(), &message, now).await? {
            report.enqueued += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_lot_fills_between_the_hours_that_straddle_the_level() {
        let f = ForecastFile {
            trained_at: t("2026-06-01T00:00:00Z"),
            lots: vec![LotForecast {
                lot_id: LotId(1),
                capacity: 100.0,
                hours: vec![
                    (t("2026-06-01T06:00:00Z"), 40.0),
                    (t("2026-06-01T07:00:00Z"), 77.0),
                    (t("2026-06-01T08:00:00Z"), 117.0),
                ],
                free_chance: Vec::new(),
            }],
            drivers: vec![],
        };
        // 97 is reached half-way between 07:30 (77) and 08:30 (117).
        assert_eq!(
            f.expected_full(LotId(1), t("2026-06-01T06:10:00Z")),
            Some(t("2026-06-01T08:00:00Z"))
        );
        assert_eq!(
            f.expected_full(LotId(1), t("2026-06-01T09:00:00Z")),
            None,
            "past"
        );
        assert_eq!(f.expected_full(LotId(2), t("2026-06-01T06:00:00Z")), None);
    }
}
