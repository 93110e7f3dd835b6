//! A DataFusion session over the lake: committed files only (as the manifests list them), our
//! scalar functions, and helpers to run SQL into batches of a warehouse table's exact schema.
//! Also what the refresh and the occupancy job share: the lots CTE and deleting replaced files.

use crate::error::{Error, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use std::sync::Arc;
use warehouse_schema::Table;
use warehouse_schema::lake::Lake;

/// A session with every committed lake table registered under its table name.
pub async fn session(lake: &Lake) -> Result<SessionContext> {
    session_with(lake, 2).await
}

/// A session that reads with one partition: floating-point sums then add up in one fixed order
/// (the manifest's file order), so the same lake gives the same figures to the last bit. For
/// the queries whose results are reported and compared.
pub async fn ordered_session(lake: &Lake) -> Result<SessionContext> {
    session_with(lake, 1).await
}

async fn session_with(lake: &Lake, partitions: usize) -> Result<SessionContext> {
    let config = SessionConfig::new().with_target_partitions(partitions);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udf(crate::udf::local_date());
    ctx.register_udf(crate::udf::local_time_key());
    for section in [
        warehouse_schema::tables::Section::Ingested,
        warehouse_schema::tables::Section::Derived,
    ] {
        let manifest = lake.manifest(section)?;
        for table in section.tables() {
            register_as(&ctx, lake, table.name(), table, manifest.files_of(table)).await?;
        }
    }
    Ok(ctx)
}

/// Register `files` (of `table`'s schema) under `name`, replacing what was there; no files is
/// an empty table.
pub(crate) async fn register_as(
    ctx: &SessionContext,
    lake: &Lake,
    name: &str,
    table: Table,
    files: &[String],
) -> Result<()> {
    ctx.deregister_table(name)?;
    let schema = table.schema();
    if files.is_empty() {
        let empty = MemTable::try_new(schema, vec![vec![]])?;
        ctx.register_table(name, Arc::new(empty))?;
        return Ok(());
    }
    let paths: Vec<String> = files
        .iter()
        .map(|f| lake.absolute(f).to_string_lossy().into_owned())
        .collect();
    let df = ctx
        .read_parquet(paths, ParquetReadOptions::default().schema(&schema))
        .await?;
    ctx.register_table(name, df.into_view())?;
    Ok(())
}

/// Run `sql` and return batches with exactly the schema of `table` (columns matched by name and
/// cast to the warehouse type), ready to be written to the lake.
pub async fn query_as(ctx: &SessionContext, sql: &str, table: Table) -> Result<Vec<RecordBatch>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    batches.iter().map(|b| conform(b, table)).collect()
}

pub fn conform(batch: &RecordBatch, table: Table) -> Result<RecordBatch> {
    let schema = table.schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let col = batch.column_by_name(f.name()).ok_or_else(|| {
                Error::Shape(format!(
                    "query for {} lacks column {}",
                    table.name(),
                    f.name()
                ))
            })?;
            Ok(cast(col, f.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Capacity and time zone per lot as of `as_of`: the latest capacity event wins.
pub(crate) fn lots_cte(as_of: i64) -> String {
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

/// Delete files a committed manifest no longer lists; a failure leaves a file that the next
/// writer's `remove_uncommitted` deletes.
pub(crate) fn delete_replaced(lake: &Lake, files: Vec<String>) {
    for f in files {
        if let Err(e) = std::fs::remove_file(lake.absolute(&f)) {
            tracing::warn!(file = %f, error = %e, "could not delete a replaced file");
        }
    }
}
