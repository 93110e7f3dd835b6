//! The refresh job: rebuild `fact_stay`, `occupancy_15m` and the dimensions from the committed
//! events, as of an instant, and commit them together in the derived section of the lake.
//!
//! Occupancy is computed on UTC 15-minute buckets. A stay occupies `[entered, exited)`; a stay
//! still open at `as_of` occupies until `as_of`. For each bucket:
//! - `cars_present`: stays in the lot at the bucket's start;
//! - `avg_occupied`: car-time inside the bucket divided by its length (time-weighted average);
//! - `occupancy_ratio`: `avg_occupied / capacity`;
//! - `arrivals` / `departures`: entries and exits that fall in the bucket.
//!
//! Events at or after `as_of` are ignored, so a run is a faithful picture of that instant, and
//! the result does not depend on the order in which events arrived.

use crate::context::{query_as, session};
use crate::error::Result;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use warehouse_schema::Table;
use warehouse_schema::lake::Lake;
use warehouse_schema::star::{TIME_GRAIN_MINUTES, dim_date, dim_time, dim_vehicle_type};
use warehouse_schema::tables::Section;

/// Bucket length in milliseconds.
pub const BUCKET_MS: i64 = TIME_GRAIN_MINUTES as i64 * 60_000;

/// What one refresh produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub as_of: DateTime<Utc>,
    pub stays: u64,
    pub open_stays: u64,
    pub occupancy_rows: u64,
    pub lots: u64,
}

/// Rebuild every derived table as of `as_of` and commit them.
pub async fn refresh(lake: &Lake, as_of: DateTime<Utc>) -> Result<RefreshReport> {
    let ctx = session(lake).await?;
    let as_of_ms = as_of.timestamp_millis();
    let stays = query_as(&ctx, &stays_sql(as_of_ms), Table::FactStay).await?;
    let occupancy = query_as(&ctx, &occupancy_sql(as_of_ms), Table::Occupancy15m).await?;
    let dim_lot = query_as(&ctx, &dim_lot_sql(as_of_ms), Table::DimLot).await?;
    let dim_spot = query_as(
        &ctx,
        &format!(
            "SELECT spot_id, lot_id, MIN(occurred_at) AS first_seen_at FROM fact_parking_event
             WHERE spot_id IS NOT NULL AND CAST(occurred_at AS BIGINT) < {as_of_ms} GROUP BY spot_id, lot_id ORDER BY lot_id, spot_id"
        ),
        Table::DimSpot,
    )
    .await?;
    let dim_user = query_as(
        &ctx,
        &format!(
            "SELECT user_key, MIN(occurred_at) AS first_seen_at FROM fact_parking_event
             WHERE user_key IS NOT NULL AND CAST(occurred_at AS BIGINT) < {as_of_ms} GROUP BY user_key ORDER BY user_key"
        ),
        Table::DimUser,
    )
    .await?;
    let first_day = first_event_day(&ctx)
        .await?
        .unwrap_or_else(|| as_of.date_naive());
    let dates = dim_date(first_day, as_of.date_naive().max(first_day));

    let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let open_stays = stays
        .iter()
        .map(|b| {
            b.column_by_name("is_open")
                .map_or(0, |c| c.as_boolean().true_count() as u64)
        })
        .sum();
    let report = RefreshReport {
        as_of,
        stays: rows(&stays),
        open_stays,
        occupancy_rows: rows(&occupancy),
        lots: rows(&dim_lot),
    };
    replace_derived(
        lake,
        vec![
            (Table::FactStay, stays),
            (Table::Occupancy15m, occupancy),
            (Table::DimLot, dim_lot),
            (Table::DimSpot, dim_spot),
            (Table::DimUser, dim_user),
            (Table::DimDate, vec![dates]),
            (Table::DimTime, vec![dim_time()]),
            (Table::DimVehicleType, vec![dim_vehicle_type()]),
        ],
    )?;
    tracing::info!(
        stays = report.stays,
        occupancy.rows = report.occupancy_rows,
        "derived tables refreshed"
    );
    Ok(report)
}

async fn first_event_day(ctx: &SessionContext) -> Result<Option<NaiveDate>> {
    let batches = ctx
        .sql("SELECT MIN(CAST(occurred_at AS BIGINT)) AS first_ms FROM fact_parking_event")
        .await?
        .collect()
        .await?;
    Ok(batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<Int64Type>()
                .and_then(|a| (!a.is_null(0)).then(|| a.value(0)))
        })
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| t.date_naive()))
}

use datafusion::arrow::array::Array;

/// Check-ins joined with their exits; the earliest copy of each wins, so a replayed event can
/// never make two stays.
fn stays_sql(as_of: i64) -> String {
    format!(
        "WITH ci AS (
            SELECT session_id, lot_id, spot_id, user_key, reservation_id, vehicle_type, method, occurred_at AS entered_at,
                   ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY occurred_at, event_id) AS rn
            FROM fact_parking_event WHERE event_type = 'check_in' AND CAST(occurred_at AS BIGINT) < {as_of}
        ), ex AS (
            SELECT session_id, occurred_at AS exited_at, duration_s, amount_cents, currency,
                   ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY occurred_at, event_id) AS rn
            FROM fact_parking_event WHERE event_type = 'exit' AND CAST(occurred_at AS BIGINT) < {as_of}
        )
        SELECT ci.session_id, ci.lot_id, ci.spot_id, ci.user_key, ci.reservation_id, ci.vehicle_type, ci.method,
               ci.entered_at, ex.exited_at, ex.duration_s, ex.amount_cents, ex.currency,
               ci.reservation_id IS NOT NULL AS is_reservation, ex.session_id IS NULL AS is_open
        FROM ci LEFT JOIN (SELECT * FROM ex WHERE rn = 1) ex ON ci.session_id = ex.session_id
        WHERE ci.rn = 1
        ORDER BY ci.lot_id, ci.entered_at"
    )
}

/// Capacity and time zone per lot as of `as_of`: the latest capacity event wins.
fn lots_cte(as_of: i64) -> String {
    format!(
        "cap AS (
            SELECT lot_id, capacity FROM (
                SELECT lot_id, capacity,
                       ROW_NUMBER() OVER (PARTITION BY lot_id ORDER BY occurred_at DESC, event_id DESC) AS rn
                FROM fact_parking_event
                WHERE capacity IS NOT NULL AND CAST(occurred_at AS BIGINT) < {as_of}
            ) WHERE rn = 1
        ), reg AS (
            SELECT lot_id, lot_name, time_zone, latitude, longitude, occurred_at AS registered_at FROM (
                SELECT lot_id, lot_name, time_zone, latitude, longitude, occurred_at,
                       ROW_NUMBER() OVER (PARTITION BY lot_id ORDER BY occurred_at, event_id) AS rn
                FROM fact_parking_event
                WHERE event_type = 'lot_registered' AND CAST(occurred_at AS BIGINT) < {as_of}
            ) WHERE rn = 1
        )"
    )
}

fn dim_lot_sql(as_of: i64) -> String {
    format!(
        "WITH {} SELECT reg.lot_id, reg.lot_name, reg.time_zone, reg.latitude, reg.longitude, cap.capacity, reg.registered_at
         FROM reg JOIN cap ON reg.lot_id = cap.lot_id ORDER BY reg.lot_id",
        lots_cte(as_of)
    )
}

fn occupancy_sql(as_of: i64) -> String {
    let b = BUCKET_MS;
    format!(
        "WITH {lots},
        ci AS (
            SELECT session_id, MIN(lot_id) AS lot_id, MIN(CAST(occurred_at AS BIGINT)) AS s
            FROM fact_parking_event WHERE event_type = 'check_in' AND CAST(occurred_at AS BIGINT) < {as_of}
            GROUP BY session_id
        ), ex AS (
            SELECT session_id, MIN(CAST(occurred_at AS BIGINT)) AS e
            FROM fact_parking_event WHERE event_type = 'exit' AND CAST(occurred_at AS BIGINT) < {as_of}
            GROUP BY session_id
        ), stays AS (
            SELECT ci.lot_id, ci.s, COALESCE(ex.e, {as_of}) AS e, ex.e IS NOT NULL AS closed
            FROM ci LEFT JOIN ex ON ci.session_id = ex.session_id
        ), expanded AS (
            SELECT lot_id, s, e, unnest(range(s / {b}, (e - 1) / {b} + 1)) AS b FROM stays WHERE e > s
        ), occ AS (
            SELECT lot_id, b,
                   SUM(LEAST(e, (b + 1) * {b}) - GREATEST(s, b * {b})) AS occ_ms,
                   SUM(CASE WHEN s <= b * {b} THEN 1 ELSE 0 END) AS present
            FROM expanded GROUP BY lot_id, b
        ), arr AS (
            SELECT lot_id, s / {b} AS b, COUNT(*) AS n FROM stays GROUP BY lot_id, s / {b}
        ), dep AS (
            SELECT lot_id, e / {b} AS b, COUNT(*) AS n FROM stays WHERE closed GROUP BY lot_id, e / {b}
        ), grid AS (
            SELECT reg.lot_id, reg.time_zone, cap.capacity,
                   unnest(range(CAST(reg.registered_at AS BIGINT) / {b}, {as_of} / {b})) AS b
            FROM reg JOIN cap ON reg.lot_id = cap.lot_id
        )
        SELECT grid.lot_id,
               grid.b * {b} AS bucket_start,
               local_date(grid.b * {b}, grid.time_zone) AS local_date,
               local_time_key(grid.b * {b}, grid.time_zone) AS local_time_key,
               grid.capacity,
               COALESCE(occ.present, 0) AS cars_present,
               CAST(COALESCE(occ.occ_ms, 0) AS DOUBLE) / {b} AS avg_occupied,
               CASE WHEN grid.capacity > 0
                    THEN CAST(COALESCE(occ.occ_ms, 0) AS DOUBLE) / ({b} * CAST(grid.capacity AS DOUBLE))
                    ELSE 0.0 END AS occupancy_ratio,
               COALESCE(arr.n, 0) AS arrivals,
               COALESCE(dep.n, 0) AS departures
        FROM grid
        LEFT JOIN occ ON grid.lot_id = occ.lot_id AND grid.b = occ.b
        LEFT JOIN arr ON grid.lot_id = arr.lot_id AND grid.b = arr.b
        LEFT JOIN dep ON grid.lot_id = dep.lot_id AND grid.b = dep.b
        ORDER BY grid.lot_id, bucket_start",
        lots = lots_cte(as_of)
    )
}

/// Write new versions of derived tables and commit them in one manifest; files of the replaced
/// versions are deleted only after the commit.
fn replace_derived(lake: &Lake, outputs: Vec<(Table, Vec<RecordBatch>)>) -> Result<()> {
    let mut manifest = lake.manifest(Section::Derived)?;
    lake.remove_uncommitted(Section::Derived, &manifest)?;
    let version = manifest.version + 1;
    let mut replaced = Vec::new();
    for (table, batches) in outputs {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let mut files = Vec::new();
        let mut rows = 0;
        if !batches.is_empty() {
            let rel = Lake::data_file(table, None, version, 0);
            rows = lake.write_parquet(&rel, &batches)?;
            files.push(rel);
        }
        if let Some(old) = manifest.files.insert(table.name().to_owned(), files) {
            replaced.extend(old);
        }
        manifest.rows.insert(table.name().to_owned(), rows);
    }
    manifest.version = version;
    lake.commit(Section::Derived, &manifest)?;
    for f in replaced {
        if let Err(e) = std::fs::remove_file(lake.absolute(&f)) {
            tracing::warn!(file = %f, error = %e, "could not delete a replaced file");
        }
    }
    Ok(())
}
