//! The refresh job: rebuild `fact_stay` and the dimensions from the committed events as of an
//! instant, bring occupancy up to date (only the days that changed: see [`crate::occupancy`]),
//! and commit it all together in the derived section of the lake.
//!
//! Events at or after `as_of` are ignored, so a run is a faithful picture of that instant, and
//! the result does not depend on the order in which events arrived.

use crate::context::{delete_replaced, lots_cte};
use crate::context::{query_as, session};
use crate::error::Result;
use crate::occupancy::{self, OccupancyRun};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use warehouse_schema::Table;
use warehouse_schema::lake::Lake;
use warehouse_schema::star::{dim_date, dim_time, dim_vehicle_type};
use warehouse_schema::tables::Section;

/// What one refresh produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub as_of: DateTime<Utc>,
    pub stays: u64,
    pub open_stays: u64,
    /// Rows of `occupancy_15m` after the refresh.
    pub occupancy_rows: u64,
    pub lots: u64,
    /// What the occupancy part recomputed and kept.
    pub occupancy: OccupancyRun,
}

/// Rebuild the derived tables as of `as_of` and commit them.
pub async fn refresh(lake: &Lake, as_of: DateTime<Utc>) -> Result<RefreshReport> {
    let ctx = session(lake).await?;
    let as_of_ms = as_of.timestamp_millis();
    let stays = query_as(&ctx, &stays_sql(as_of_ms), Table::FactStay).await?;
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

    let mut manifest = lake.manifest(Section::Derived)?;
    lake.remove_uncommitted(Section::Derived, &manifest)?;
    let version = manifest.version + 1;
    let (occupancy, files) = occupancy::run(&ctx, lake, &manifest, version, as_of).await?;

    let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let open_stays = stays
        .iter()
        .map(|b| {
            b.column_by_name("is_open")
                .map_or(0, |c| c.as_boolean().true_count() as u64)
        })
        .sum();
    let (stay_rows, lot_rows) = (rows(&stays), rows(&dim_lot));
    let mut replaced = files.apply(lake, &mut manifest)?;
    replaced.extend(replace_whole(
        lake,
        &mut manifest,
        version,
        vec![
            (Table::FactStay, stays),
            (Table::DimLot, dim_lot),
            (Table::DimSpot, dim_spot),
            (Table::DimUser, dim_user),
            (Table::DimDate, vec![dates]),
            (Table::DimTime, vec![dim_time()]),
            (Table::DimVehicleType, vec![dim_vehicle_type()]),
        ],
    )?);
    manifest.version = version;
    lake.commit(Section::Derived, &manifest)?;
    delete_replaced(lake, replaced);
    let report = RefreshReport {
        as_of,
        stays: stay_rows,
        open_stays,
        occupancy_rows: manifest.rows_of(Table::Occupancy15m),
        lots: lot_rows,
        occupancy,
    };
    tracing::info!(
        stays = report.stays,
        occupancy.rows = report.occupancy_rows,
        occupancy.days = report.occupancy.days.len(),
        occupancy.kept = report.occupancy.days_kept,
        occupancy.full = report.occupancy.full,
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

fn dim_lot_sql(as_of: i64) -> String {
    format!(
        "WITH {} SELECT reg.lot_id, reg.lot_name, reg.time_zone, reg.latitude, reg.longitude, cap.capacity, reg.registered_at
         FROM reg JOIN cap ON reg.lot_id = cap.lot_id ORDER BY reg.lot_id",
        lots_cte(as_of)
    )
}

/// Write new versions of whole (unpartitioned) derived tables into `manifest`; returns the
/// files they replace, to delete once the manifest is committed.
fn replace_whole(
    lake: &Lake,
    manifest: &mut warehouse_schema::lake::Manifest,
    version: u64,
    outputs: Vec<(Table, Vec<RecordBatch>)>,
) -> Result<Vec<String>> {
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
    Ok(replaced)
}
