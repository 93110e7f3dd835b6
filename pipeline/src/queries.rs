//! Read-only queries over the derived tables, returning the plain rows of
//! [`warehouse_schema::outputs`] for pricing, forecasting and reports.

use crate::context::ordered_session;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use warehouse_schema::lake::Lake;
use warehouse_schema::outputs::{
    BandOccupancy, DriverEntry, LotHour, LotPeak, RecordedStay, UsageSummary,
};
use warehouse_schema::{DayKind, LotId, TimeBand};

/// Mean occupancy per lot, band and day kind for buckets in `[from, to)`.
pub async fn band_occupancy(
    lake: &Lake,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<BandOccupancy>> {
    let ctx = ordered_session(lake).await?;
    let sql = format!(
        "SELECT o.lot_id, t.band,
                CASE WHEN date_part('dow', o.local_date) IN (0, 6) THEN 'weekend' ELSE 'weekday' END AS day_kind,
                AVG(o.occupancy_ratio) AS mean_occupancy, MAX(o.occupancy_ratio) AS peak_occupancy,
                COUNT(*) AS buckets
         FROM occupancy_15m o JOIN dim_time t ON o.local_time_key = t.time_key
         WHERE CAST(o.bucket_start AS BIGINT) >= {} AND CAST(o.bucket_start AS BIGINT) < {}
         GROUP BY o.lot_id, t.band, day_kind
         ORDER BY o.lot_id, t.band, day_kind",
        from.timestamp_millis(),
        to.timestamp_millis()
    );
    let rows = Rows::fetch(&ctx, &sql).await?;
    (0..rows.len())
        .map(|i| {
            Ok(BandOccupancy {
                lot_id: LotId(rows.i64("lot_id", i)?),
                band: rows
                    .str("band", i)?
                    .parse::<TimeBand>()
                    .map_err(Error::Shape)?,
                day_kind: rows
                    .str("day_kind", i)?
                    .parse::<DayKind>()
                    .map_err(Error::Shape)?,
                mean_occupancy: rows.f64("mean_occupancy", i)?,
                peak_occupancy: rows.f64("peak_occupancy", i)?,
                buckets: rows.i64("buckets", i)? as u64,
            })
        })
        .collect()
}

/// Hourly arrivals and occupancy per lot, in time order (the forecast's training data).
pub async fn lot_hours(lake: &Lake) -> Result<Vec<LotHour>> {
    let ctx = ordered_session(lake).await?;
    let sql = "SELECT lot_id, CAST(bucket_start AS BIGINT) / 3600000 AS hour,
                      MIN(local_time_key) / 4 AS local_hour,
                      MIN(date_part('dow', local_date)) AS dow,
                      SUM(arrivals) AS arrivals, AVG(occupancy_ratio) AS mean_occupancy,
                      MAX(cars_present) AS peak_present, MIN(capacity) AS capacity
               FROM occupancy_15m
               GROUP BY lot_id, CAST(bucket_start AS BIGINT) / 3600000
               ORDER BY lot_id, hour";
    let rows = Rows::fetch(&ctx, sql).await?;
    (0..rows.len())
        .map(|i| {
            let hour = rows.i64("hour", i)?;
            // date_part('dow') counts from Sunday = 0; we count from Monday = 0.
            let dow = rows.i64("dow", i)?;
            Ok(LotHour {
                lot_id: LotId(rows.i64("lot_id", i)?),
                hour_start: DateTime::from_timestamp(hour * 3600, 0)
                    .ok_or_else(|| Error::Shape("hour out of range".into()))?,
                local_hour: rows.i64("local_hour", i)? as u32,
                local_weekday: ((dow + 6) % 7) as u32,
                arrivals: rows.f64("arrivals", i)?,
                mean_occupancy: rows.f64("mean_occupancy", i)?,
                peak_present: rows.f64("peak_present", i)?,
                capacity: rows.i64("capacity", i)? as i32,
            })
        })
        .collect()
}

/// The instant just after the lake's last event (`None` for an empty lake): what "now" is for
/// the data, when it ends before the wall clock does (a demo with `--until`, an old export).
pub async fn data_end(lake: &Lake) -> Result<Option<DateTime<Utc>>> {
    let ctx = ordered_session(lake).await?;
    let rows = Rows::fetch(
        &ctx,
        "SELECT MAX(CAST(occurred_at AS BIGINT)) AS last_ms FROM fact_parking_event",
    )
    .await?;
    match rows.i64_opt("last_ms", 0)? {
        None => Ok(None),
        Some(ms) => DateTime::from_timestamp_millis(ms.saturating_add(1))
            .map(Some)
            .ok_or_else(|| Error::Shape("last event out of range".into())),
    }
}

/// Each lot's time zone, from `dim_lot`.
pub async fn lot_time_zones(lake: &Lake) -> Result<Vec<(LotId, String)>> {
    let ctx = ordered_session(lake).await?;
    let rows = Rows::fetch(
        &ctx,
        "SELECT lot_id, time_zone FROM dim_lot ORDER BY lot_id",
    )
    .await?;
    (0..rows.len())
        .map(|i| {
            Ok((
                LotId(rows.i64("lot_id", i)?),
                rows.str("time_zone", i)?.to_owned(),
            ))
        })
        .collect()
}

/// The stays entering in `[from, to)`, in lot and entry order.
pub async fn recorded_stays(
    lake: &Lake,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RecordedStay>> {
    let ctx = ordered_session(lake).await?;
    let sql = format!(
        "SELECT lot_id, vehicle_type, CAST(entered_at AS BIGINT) AS entered_ms,
                CAST(exited_at AS BIGINT) AS exited_ms, amount_cents
         FROM fact_stay
         WHERE CAST(entered_at AS BIGINT) >= {} AND CAST(entered_at AS BIGINT) < {}
         ORDER BY lot_id, entered_ms, session_id",
        from.timestamp_millis(),
        to.timestamp_millis()
    );
    let rows = Rows::fetch(&ctx, &sql).await?;
    let at = |ms: i64| {
        DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::Shape("time out of range".into()))
    };
    (0..rows.len())
        .map(|i| {
            Ok(RecordedStay {
                lot_id: LotId(rows.i64("lot_id", i)?),
                vehicle_type: rows.str("vehicle_type", i)?.to_owned(),
                entered_at: at(rows.i64("entered_ms", i)?)?,
                exited_at: rows.i64_opt("exited_ms", i)?.map(at).transpose()?,
                amount_cents: rows.i64_opt("amount_cents", i)?,
            })
        })
        .collect()
}

/// Entries of known drivers before `before`, in each lot's local time, in time order.
pub async fn driver_entries(lake: &Lake, before: DateTime<Utc>) -> Result<Vec<DriverEntry>> {
    let ctx = ordered_session(lake).await?;
    let sql = format!(
        "SELECT s.user_key, s.lot_id, CAST(s.entered_at AS BIGINT) AS entered_ms, d.time_zone
         FROM fact_stay s JOIN dim_lot d ON s.lot_id = d.lot_id
         WHERE s.user_key IS NOT NULL AND CAST(s.entered_at AS BIGINT) < {}
         ORDER BY entered_ms, s.user_key",
        before.timestamp_millis()
    );
    let rows = Rows::fetch(&ctx, &sql).await?;
    (0..rows.len())
        .map(|i| {
            let tz: chrono_tz::Tz = rows
                .str("time_zone", i)?
                .parse()
                .map_err(|e| Error::Shape(format!("time zone: {e}")))?;
            let at = DateTime::from_timestamp_millis(rows.i64("entered_ms", i)?)
                .ok_or_else(|| Error::Shape("entry out of range".into()))?;
            Ok(DriverEntry {
                user_key: rows.str("user_key", i)?.to_owned(),
                lot_id: LotId(rows.i64("lot_id", i)?),
                entered_local: at.with_timezone(&tz).naive_local(),
            })
        })
        .collect()
}

/// Stays, revenue, and each lot's peak and mean occupancy.
pub async fn usage_summary(lake: &Lake) -> Result<UsageSummary> {
    let ctx = ordered_session(lake).await?;
    let totals = Rows::fetch(
        &ctx,
        "SELECT COUNT(*) AS stays, SUM(CASE WHEN is_open THEN 1 ELSE 0 END) AS open_stays,
                COALESCE(SUM(amount_cents), 0) AS revenue_cents,
                COALESCE(AVG(duration_s) / 60.0, 0.0) AS mean_stay_minutes
         FROM fact_stay",
    )
    .await?;
    let mean = Rows::fetch(
        &ctx,
        "SELECT COALESCE(AVG(occupancy_ratio), 0.0) AS m FROM occupancy_15m",
    )
    .await?;
    let lots = Rows::fetch(
        &ctx,
        "WITH ranked AS (
            SELECT lot_id, occupancy_ratio, local_date, local_time_key,
                   ROW_NUMBER() OVER (PARTITION BY lot_id ORDER BY occupancy_ratio DESC, bucket_start) AS rn
            FROM occupancy_15m
         ), agg AS (
            SELECT lot_id, AVG(occupancy_ratio) AS mean_occupancy, MAX(cars_present) AS max_cars_present
            FROM occupancy_15m GROUP BY lot_id
         ), rev AS (
            SELECT lot_id, SUM(amount_cents) AS revenue_cents FROM fact_stay GROUP BY lot_id
         )
         SELECT d.lot_id, d.lot_name, d.capacity, r.occupancy_ratio AS peak_occupancy,
                CAST(r.local_date AS VARCHAR) AS peak_date, r.local_time_key AS peak_key,
                agg.mean_occupancy, agg.max_cars_present, COALESCE(rev.revenue_cents, 0) AS revenue_cents
         FROM dim_lot d
         JOIN ranked r ON r.lot_id = d.lot_id AND r.rn = 1
         JOIN agg ON agg.lot_id = d.lot_id
         LEFT JOIN rev ON rev.lot_id = d.lot_id
         ORDER BY d.lot_id",
    )
    .await?;
    let lots = (0..lots.len())
        .map(|i| {
            let key = lots.i64("peak_key", i)?;
            Ok(LotPeak {
                lot_id: LotId(lots.i64("lot_id", i)?),
                lot_name: lots.str("lot_name", i)?.to_owned(),
                capacity: lots.i64("capacity", i)? as i32,
                peak_occupancy: lots.f64("peak_occupancy", i)?,
                peak_local: format!(
                    "{} {:02}:{:02}",
                    lots.str("peak_date", i)?,
                    key / 4,
                    (key % 4) * 15
                ),
                mean_occupancy: lots.f64("mean_occupancy", i)?,
                max_cars_present: lots.i64("max_cars_present", i)?,
                revenue_cents: lots.i64("revenue_cents", i)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(UsageSummary {
        stays: totals.i64("stays", 0)? as u64,
        open_stays: totals.i64_or_zero("open_stays", 0)? as u64,
        revenue_cents: totals.i64("revenue_cents", 0)?,
        mean_stay_minutes: totals.f64("mean_stay_minutes", 0)?,
        mean_occupancy: mean.f64("m", 0)?,
        lots,
    })
}

/// A query result flattened into one batch, read by column name with numeric widening.
pub(crate) struct Rows(Option<RecordBatch>);

impl Rows {
    pub(crate) async fn fetch(ctx: &SessionContext, sql: &str) -> Result<Self> {
        let df = ctx.sql(sql).await?;
        let schema = df.schema().inner().clone();
        let batches = df.collect().await?;
        Ok(Self(Some(datafusion::arrow::compute::concat_batches(
            &schema, &batches,
        )?)))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |b| b.num_rows())
    }

    fn col(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let batch = self
            .0
            .as_ref()
            .ok_or_else(|| Error::Shape("no result".into()))?;
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Shape(format!("no column {name}")))?;
        Ok(cast(c, to)?)
    }

    pub(crate) fn i64_opt(&self, name: &str, i: usize) -> Result<Option<i64>> {
        let c = self.col(name, &DataType::Int64)?;
        let a = c.as_primitive::<Int64Type>();
        Ok((!a.is_null(i)).then(|| a.value(i)))
    }

    pub(crate) fn i64(&self, name: &str, i: usize) -> Result<i64> {
        self.i64_opt(name, i)?
            .ok_or_else(|| Error::Shape(format!("{name} is null")))
    }

    /// SQL `SUM` over no rows is null; for counts that means zero.
    pub(crate) fn i64_or_zero(&self, name: &str, i: usize) -> Result<i64> {
        Ok(self.i64_opt(name, i)?.unwrap_or(0))
    }

    pub(crate) fn f64(&self, name: &str, i: usize) -> Result<f64> {
        let c = self.col(name, &DataType::Float64)?;
        let a = c.as_primitive::<Float64Type>();
        Ok(if a.is_null(i) { 0.0 } else { a.value(i) })
    }

    pub(crate) fn str(&self, name: &str, i: usize) -> Result<&str> {
        let batch = self
            .0
            .as_ref()
            .ok_or_else(|| Error::Shape("no result".into()))?;
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Shape(format!("no column {name}")))?;
        let s = c
            .as_string_opt::<i32>()
            .map(|a| a.value(i))
            .or_else(|| c.as_string_view_opt().map(|a| a.value(i)))
            .ok_or_else(|| Error::Shape(format!("{name} is not text")))?;
        Ok(s)
    }
}
