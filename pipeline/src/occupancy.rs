//! Occupancy per lot, and per lot and vehicle type, per UTC 15-minute bucket: computed one UTC
//! day at a time, and incrementally.
//!
//! A day's buckets depend only on that day's events and on the stays open at its start. The job
//! carries those open stays from one day into the next and keeps them (`open_stays`, one
//! partition per day), so a day reads only its own `event_date` partition and memory is bounded
//! by one day's stays, not by the history.
//!
//! A refresh recomputes only the days a change can reach:
//! - every day from the earliest `event_date` partition that gained files since the last run
//!   (a late or out-of-order event lands in the partition of the time it happened);
//! - every day from the last run's `as_of` on (stays still open then, and the growing grid);
//! - but a day in between that gained no files is kept as it is when the stays carried into it
//!   equal the ones the last run carried into it: nothing it depends on has changed.
//!
//! A new lot or a changed capacity recomputes every day (a bucket's ratio uses the lot's
//! capacity as of `as_of`), and so does an `as_of` earlier than the last run's.
//!
//! Per bucket, a stay occupies `[entered, exited)` (until `as_of` while open): `cars_present`
//! counts stays in the lot at the bucket's start, `avg_occupied` is car-time in the bucket over
//! its length, `occupancy_ratio` is that over the lot's capacity, `arrivals` and `departures` are
//! entries and exits in the bucket. Only complete buckets before `as_of` are written. The first
//! check-in and the first exit of a session count; a stay whose exit is stamped before its
//! check-in is left out.

use crate::context::conform;
use crate::error::{Error, Result};
use chrono::{DateTime, Days, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};
use warehouse_schema::Table;
use warehouse_schema::lake::{Lake, Manifest};
use warehouse_schema::tables::Section;

/// Bucket length in milliseconds.
pub const BUCKET_MS: i64 = warehouse_schema::star::TIME_GRAIN_MINUTES as i64 * 60_000;
const DAY_MS: i64 = 86_400_000;

/// Keys in the derived manifest's positions that say what the last occupancy run covered.
const SEEN_VERSION: &str = "occupancy:ingested_version";
const SEEN_AS_OF: &str = "occupancy:as_of_ms";
const SEEN_LOTS: &str = "occupancy:lots_fingerprint";

/// What one occupancy run recomputed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OccupancyRun {
    /// Every day was recomputed (first run, new lot or capacity, or an earlier `as_of`).
    pub full: bool,
    /// The UTC days recomputed, in order.
    pub days: Vec<NaiveDate>,
    /// Days in the range that were kept because nothing they depend on changed.
    pub days_kept: u64,
    /// Rows written for the recomputed days.
    pub lot_rows: u64,
    pub vehicle_rows: u64,
}

/// Files of the derived tables this run replaces, to be applied to the derived manifest.
#[derive(Debug, Default)]
pub struct OccupancyFiles {
    /// Per table: the new files with their rows.
    pub added: Vec<(Table, String, u64)>,
    /// Per table: the date partitions whose old files are replaced (all of them when `full`).
    pub replaced: Vec<(Table, NaiveDate)>,
    pub full: bool,
    pub positions: Vec<(&'static str, i64)>,
}

impl OccupancyFiles {
    /// Apply to `manifest`; returns the files no longer listed (to delete after the commit).
    pub fn apply(self, lake: &Lake, manifest: &mut Manifest) -> Result<Vec<String>> {
        let mut dropped = Vec::new();
        for table in OUTPUTS {
            let mut rows = if self.full {
                0
            } else {
                manifest.rows_of(table)
            };
            let files = manifest.files.entry(table.name().to_owned()).or_default();
            let (gone, kept): (Vec<String>, Vec<String>) =
                std::mem::take(files).into_iter().partition(|f| {
                    self.full
                        || Lake::file_date(f).is_some_and(|d| self.replaced.contains(&(table, d)))
                });
            *files = kept;
            if !self.full {
                for f in &gone {
                    rows = rows.saturating_sub(lake.parquet_rows(f)?);
                }
            }
            for (_, f, n) in self.added.iter().filter(|(t, _, _)| *t == table) {
                files.push(f.clone());
                rows += n;
            }
            files.sort();
            manifest.rows.insert(table.name().to_owned(), rows);
            dropped.extend(gone);
        }
        for (k, v) in self.positions {
            manifest.positions.insert(k.to_owned(), v);
        }
        Ok(dropped)
    }
}

const OUTPUTS: [Table; 3] = [
    Table::Occupancy15m,
    Table::Occupancy15mVehicle,
    Table::OpenStays,
];

/// The occupancy job on its own: bring `occupancy_15m`, `occupancy_15m_vehicle` and
/// `open_stays` up to date as of `as_of` and commit them (the other derived tables are left as
/// they are). [`crate::refresh`] does the same together with stays and dimensions.
pub async fn refresh_occupancy(lake: &Lake, as_of: DateTime<Utc>) -> Result<OccupancyRun> {
    let ctx = crate::context::session(lake).await?;
    let mut manifest = lake.manifest(Section::Derived)?;
    lake.remove_uncommitted(Section::Derived, &manifest)?;
    let version = manifest.version + 1;
    let (report, files) = run(&ctx, lake, &manifest, version, as_of).await?;
    let replaced = files.apply(lake, &mut manifest)?;
    manifest.version = version;
    lake.commit(Section::Derived, &manifest)?;
    crate::context::delete_replaced(lake, replaced);
    Ok(report)
}

/// Recompute the occupancy days that changed since the last run, writing their files (not yet
/// committed) as version `version` of the derived section.
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    derived: &Manifest,
    version: u64,
    as_of: DateTime<Utc>,
) -> Result<(OccupancyRun, OccupancyFiles)> {
    let as_of_ms = as_of.timestamp_millis();
    let ingested = lake.manifest(Section::Ingested)?;
    let lots = lots(ctx, as_of_ms).await?;
    let fingerprint = fingerprint(&lots)?;
    ctx.deregister_table("lots")?;
    ctx.register_table(
        "lots",
        Arc::new(MemTable::try_new(lots.schema(), vec![vec![lots]])?),
    )?;

    let event_files = by_day(ingested.files_of(Table::FactParkingEvent));
    let last_day = date_of(as_of_ms - 1);
    let Some(&first_day) = event_files.keys().next() else {
        return Ok((OccupancyRun::default(), OccupancyFiles::default()));
    };
    let seen = |k: &str| derived.positions.get(k).copied();
    let previous = match (seen(SEEN_VERSION), seen(SEEN_AS_OF), seen(SEEN_LOTS)) {
        (Some(v), Some(a), Some(f)) if a <= as_of_ms && f == fingerprint => Some((v, a)),
        _ => None,
    };
    // Days that gained files, and the day from which every day is recomputed.
    let (changed, tail_from): (BTreeSet<NaiveDate>, NaiveDate) = match previous {
        None => (BTreeSet::new(), first_day),
        Some((v, a)) => (
            event_files
                .iter()
                .filter(|(_, files)| {
                    files
                        .iter()
                        .any(|f| Lake::file_seq(f).is_none_or(|s| s as i64 > v))
                })
                .map(|(d, _)| *d)
                .collect(),
            date_of(a),
        ),
    };
    let from = changed.first().copied().unwrap_or(tail_from).min(tail_from);

    let mut out = OccupancyFiles {
        full: previous.is_none(),
        positions: vec![
            (SEEN_VERSION, ingested.version as i64),
            (SEEN_AS_OF, as_of_ms),
            (SEEN_LOTS, fingerprint),
        ],
        ..OccupancyFiles::default()
    };
    let mut report = OccupancyRun {
        full: out.full,
        ..OccupancyRun::default()
    };
    // The stays open at the start of `day`: computed (`Some`) after a recomputed day, or, while
    // days are kept (`None`), the ones the last run stored for it — read only when needed.
    let mut carry: Option<Carry> = out.full.then(Carry::empty);
    let mut day = from;
    while day <= last_day {
        let start = day_start(day);
        let next = day + Days::new(1);
        let must = out.full || day >= tail_from || changed.contains(&day);
        if !must {
            let unchanged = match &carry {
                None => true,
                Some(c) => *c == Carry::stored(lake, derived, day)?,
            };
            if unchanged {
                report.days_kept += 1;
                carry = None;
                day = next;
                continue;
            }
        }
        let carry_in = match carry.take() {
            Some(c) => c,
            None => Carry::stored(lake, derived, day)?,
        };
        let end = (start + DAY_MS).min(as_of_ms);
        let files = event_files.get(&day).map(Vec::as_slice).unwrap_or(&[]);
        let (day_out, open) = compute_day(ctx, lake, files, &carry_in, start, end).await?;
        for (table, batches) in [
            (Table::Occupancy15m, day_out.lot),
            (Table::Occupancy15mVehicle, day_out.vehicle),
        ] {
            let rows = write(lake, &mut out, table, day, version, batches)?;
            match table {
                Table::Occupancy15m => report.lot_rows += rows,
                _ => report.vehicle_rows += rows,
            }
            out.replaced.push((table, day));
        }
        if end == start + DAY_MS {
            // A complete day: what is open at its end is the next day's starting state.
            write(
                lake,
                &mut out,
                Table::OpenStays,
                next,
                version,
                vec![open.snapshot(end)?],
            )?;
            out.replaced.push((Table::OpenStays, next));
        }
        report.days.push(day);
        carry = Some(open);
        day = next;
    }
    Ok((report, out))
}

fn write(
    lake: &Lake,
    out: &mut OccupancyFiles,
    table: Table,
    day: NaiveDate,
    version: u64,
    batches: Vec<RecordBatch>,
) -> Result<u64> {
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(0);
    }
    let rel = Lake::data_file(table, Some(day), version, 0);
    let rows = lake.write_parquet(&rel, &batches)?;
    out.added.push((table, rel, rows));
    Ok(rows)
}

struct DayOutput {
    lot: Vec<RecordBatch>,
    vehicle: Vec<RecordBatch>,
}

/// One day `[start, end)`: its events, and the stays carried into it.
async fn compute_day(
    ctx: &SessionContext,
    lake: &Lake,
    files: &[String],
    carry: &Carry,
    start: i64,
    end: i64,
) -> Result<(DayOutput, Carry)> {
    let t = std::time::Instant::now();
    replace_table(ctx, "carried", carry.0.clone())?;
    crate::context::register_as(ctx, lake, "day_events", Table::FactParkingEvent, files).await?;
    let stays = collect(ctx, &stays_sql(start, end)).await?;
    let t_stays = t.elapsed();
    replace_table(ctx, "day_stays", stays)?;
    let pieces = collect(ctx, &pieces_sql(start, end)).await?;
    let t_pieces = t.elapsed();
    replace_table(ctx, "pieces", pieces)?;
    let b = BUCKET_MS;
    let vehicle = query_as(
        ctx,
        &format!(
            "SELECT p.lot_id, p.bk * {b} AS bucket_start, p.vehicle_type, p.present AS cars_present,
                    CAST(p.occ_ms AS DOUBLE) / {b} AS avg_occupied,
                    CASE WHEN l.capacity > 0 THEN CAST(p.occ_ms AS DOUBLE) / ({b} * CAST(l.capacity AS DOUBLE))
                         ELSE 0.0 END AS occupancy_ratio,
                    p.arrivals, p.departures
             FROM pieces p JOIN lots l ON p.lot_id = l.lot_id
             ORDER BY p.lot_id, bucket_start, p.vehicle_type"
        ),
        Table::Occupancy15mVehicle,
    )
    .await?;
    let t_vehicle = t.elapsed();
    let lot = query_as(ctx, &lot_grid_sql(start, end), Table::Occupancy15m).await?;
    let t_lot = t.elapsed();
    tracing::debug!(?t_stays, ?t_pieces, ?t_vehicle, ?t_lot, "occupancy day");
    let open = Carry::from_batches(
        &[collect(
            ctx,
            "SELECT session_id, lot_id, vehicle_type, s FROM day_stays WHERE e IS NULL ORDER BY session_id",
        )
        .await?],
        ["session_id", "lot_id", "vehicle_type", "s"],
    )?;
    Ok((DayOutput { lot, vehicle }, open))
}

/// The day's stays: those carried in, and the day's first check-ins of new sessions, each with
/// the day's first exit of its session (null while still open at `end`).
fn stays_sql(start: i64, end: i64) -> String {
    let within =
        format!("CAST(occurred_at AS BIGINT) >= {start} AND CAST(occurred_at AS BIGINT) < {end}");
    format!(
        "WITH ci AS (
            SELECT session_id, MIN(lot_id) AS lot_id, MIN(vehicle_type) AS vehicle_type,
                   MIN(CAST(occurred_at AS BIGINT)) AS s
            FROM day_events WHERE event_type = 'check_in' AND {within} GROUP BY session_id
        ), ex AS (
            SELECT session_id, MIN(CAST(occurred_at AS BIGINT)) AS e
            FROM day_events WHERE event_type = 'exit' AND {within} GROUP BY session_id
        ), starts AS (
            SELECT session_id, lot_id, vehicle_type, s FROM carried
            UNION ALL
            SELECT ci.session_id, ci.lot_id, ci.vehicle_type, ci.s
            FROM ci LEFT JOIN carried c ON ci.session_id = c.session_id WHERE c.session_id IS NULL
        )
        SELECT starts.session_id, starts.lot_id, COALESCE(starts.vehicle_type, 'car') AS vehicle_type,
               starts.s, ex.e
        FROM starts LEFT JOIN ex ON starts.session_id = ex.session_id"
    )
}

/// Per lot, vehicle type and complete bucket of the day: presence at the start, car-time in
/// milliseconds, arrivals and departures; only buckets where one of them is not zero.
///
/// No stay is expanded into its buckets. Occupancy changes only at entries and exits, so per
/// bucket `[t0, t1)` with `N` stays entered before `t0` and not left before it,
/// car-time = `N · B + Σ entries in the bucket (t1 − s) − Σ exits in the bucket (t1 − e)`,
/// and `N` is the stays carried into the day plus a running sum of arrivals minus departures.
/// Cars present at `t0` are `N` plus entries at exactly `t0` minus exits at exactly `t0`.
fn pieces_sql(start: i64, end: i64) -> String {
    let b = BUCKET_MS;
    format!(
        "WITH st AS (
            SELECT lot_id, vehicle_type, s, e FROM day_stays WHERE e IS NULL OR e >= s
        ), grid AS (
            SELECT lot_id, vehicle_type, unnest(range({start} / {b}, {end} / {b})) AS bk
            FROM (SELECT DISTINCT lot_id, vehicle_type FROM st)
        ), carried_n AS (
            SELECT lot_id, vehicle_type, COUNT(*) AS n FROM st WHERE s < {start} GROUP BY lot_id, vehicle_type
        ), ent AS (
            SELECT lot_id, vehicle_type, s / {b} AS bk, COUNT(*) AS n,
                   SUM((s / {b} + 1) * {b} - s) AS to_end,
                   SUM(CASE WHEN s % {b} = 0 THEN 1 ELSE 0 END) AS at_start
            FROM st WHERE s >= {start} GROUP BY lot_id, vehicle_type, s / {b}
        ), ext AS (
            SELECT lot_id, vehicle_type, e / {b} AS bk, COUNT(*) AS n,
                   SUM((e / {b} + 1) * {b} - e) AS to_end,
                   SUM(CASE WHEN e % {b} = 0 THEN 1 ELSE 0 END) AS at_start
            FROM st WHERE e IS NOT NULL GROUP BY lot_id, vehicle_type, e / {b}
        ), g AS (
            SELECT grid.lot_id, grid.vehicle_type, grid.bk, COALESCE(c.n, 0) AS carried,
                   COALESCE(ent.n, 0) AS arrivals, COALESCE(ent.to_end, 0) AS arr_to_end,
                   COALESCE(ent.at_start, 0) AS arr_at_start,
                   COALESCE(ext.n, 0) AS departures, COALESCE(ext.to_end, 0) AS dep_to_end,
                   COALESCE(ext.at_start, 0) AS dep_at_start
            FROM grid
            JOIN lots l ON grid.lot_id = l.lot_id AND grid.bk >= l.registered_ms / {b}
            LEFT JOIN carried_n c ON grid.lot_id = c.lot_id AND grid.vehicle_type = c.vehicle_type
            LEFT JOIN ent ON grid.lot_id = ent.lot_id AND grid.vehicle_type = ent.vehicle_type AND grid.bk = ent.bk
            LEFT JOIN ext ON grid.lot_id = ext.lot_id AND grid.vehicle_type = ext.vehicle_type AND grid.bk = ext.bk
        ), n AS (
            SELECT *, carried + COALESCE(SUM(arrivals - departures) OVER (
                       PARTITION BY lot_id, vehicle_type ORDER BY bk
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS n_before
            FROM g
        ), pieces AS (
            SELECT lot_id, vehicle_type, bk,
                   n_before + arr_at_start - dep_at_start AS present,
                   n_before * {b} + arr_to_end - dep_to_end AS occ_ms,
                   arrivals, departures
            FROM n
        )
        SELECT * FROM pieces WHERE occ_ms > 0 OR arrivals > 0 OR departures > 0"
    )
}

/// Every registered lot's complete buckets of the day, with the vehicle types summed.
fn lot_grid_sql(start: i64, end: i64) -> String {
    let b = BUCKET_MS;
    format!(
        "WITH grid AS (
            SELECT lot_id, time_zone, capacity,
                   unnest(range(GREATEST(registered_ms / {b}, {start} / {b}), {end} / {b})) AS bk
            FROM lots WHERE registered_ms < {end}
        ), tot AS (
            SELECT lot_id, bk, SUM(present) AS present, SUM(occ_ms) AS occ_ms,
                   SUM(arrivals) AS arrivals, SUM(departures) AS departures
            FROM pieces GROUP BY lot_id, bk
        )
        SELECT grid.lot_id, grid.bk * {b} AS bucket_start,
               local_date(grid.bk * {b}, grid.time_zone) AS local_date,
               local_time_key(grid.bk * {b}, grid.time_zone) AS local_time_key,
               grid.capacity,
               COALESCE(tot.present, 0) AS cars_present,
               CAST(COALESCE(tot.occ_ms, 0) AS DOUBLE) / {b} AS avg_occupied,
               CASE WHEN grid.capacity > 0
                    THEN CAST(COALESCE(tot.occ_ms, 0) AS DOUBLE) / ({b} * CAST(grid.capacity AS DOUBLE))
                    ELSE 0.0 END AS occupancy_ratio,
               COALESCE(tot.arrivals, 0) AS arrivals,
               COALESCE(tot.departures, 0) AS departures
        FROM grid LEFT JOIN tot ON grid.lot_id = tot.lot_id AND grid.bk = tot.bk
        ORDER BY grid.lot_id, bucket_start"
    )
}

/// Registered lots with their time zone, registration instant and latest capacity as of `as_of`.
async fn lots(ctx: &SessionContext, as_of: i64) -> Result<RecordBatch> {
    let sql = format!(
        "WITH {} SELECT reg.lot_id, reg.time_zone, cap.capacity,
                        CAST(reg.registered_at AS BIGINT) AS registered_ms
         FROM reg JOIN cap ON reg.lot_id = cap.lot_id ORDER BY reg.lot_id",
        crate::context::lots_cte(as_of)
    );
    let df = ctx.sql(&sql).await?;
    let schema = df.schema().inner().clone();
    Ok(concat_batches(&schema, &df.collect().await?)?)
}

/// A hash of the lots table: a new lot, a moved registration or a changed capacity changes it.
fn fingerprint(lots: &RecordBatch) -> Result<i64> {
    let mut h = DefaultHasher::new();
    for col in lots.columns() {
        let text = datafusion::arrow::util::display::ArrayFormatter::try_new(
            col.as_ref(),
            &Default::default(),
        )?;
        for i in 0..col.len() {
            text.value(i).to_string().hash(&mut h);
        }
    }
    Ok(h.finish() as i64)
}

fn replace_table(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<()> {
    ctx.deregister_table(name)?;
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema = df.schema().inner().clone();
    Ok(concat_batches(&schema, &df.collect().await?)?)
}

async fn query_as(ctx: &SessionContext, sql: &str, table: Table) -> Result<Vec<RecordBatch>> {
    crate::context::query_as(ctx, sql, table).await
}

/// Files per UTC day partition.
fn by_day(files: &[String]) -> BTreeMap<NaiveDate, Vec<String>> {
    let mut out: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
    for f in files {
        if let Some(d) = Lake::file_date(f) {
            out.entry(d).or_default().push(f.clone());
        }
    }
    out
}

fn date_of(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms.div_euclid(DAY_MS) * DAY_MS)
        .expect("in range")
        .date_naive()
}

fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis()
}

/// Stays open at a UTC midnight, sorted by session id: the state carried into the next day.
#[derive(Debug, Clone, PartialEq)]
struct Carry(RecordBatch);

static CARRY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("session_id", DataType::Utf8, false),
        Field::new("lot_id", DataType::Int64, false),
        Field::new("vehicle_type", DataType::Utf8, false),
        Field::new("s", DataType::Int64, false),
    ]))
});

impl Carry {
    fn empty() -> Self {
        Self(RecordBatch::new_empty(CARRY_SCHEMA.clone()))
    }

    /// Columns `names` of `batches`, in the carry's order and types.
    fn from_batches(batches: &[RecordBatch], names: [&str; 4]) -> Result<Self> {
        let mut parts = Vec::new();
        for batch in batches {
            let columns = names
                .iter()
                .zip(CARRY_SCHEMA.fields())
                .map(|(name, field)| {
                    let c = batch
                        .column_by_name(name)
                        .ok_or_else(|| Error::Shape(format!("open stays lack {name}")))?;
                    let c = match c.data_type() {
                        DataType::Timestamp(..) => cast(c, &DataType::Int64)?,
                        _ => c.clone(),
                    };
                    Ok(cast(&c, field.data_type())?)
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            parts.push(RecordBatch::try_new(CARRY_SCHEMA.clone(), columns)?);
        }
        Ok(Self(concat_batches(&CARRY_SCHEMA, &parts)?))
    }

    /// The stays the last run found open at the start of `day` (none if it stored none).
    fn stored(lake: &Lake, derived: &Manifest, day: NaiveDate) -> Result<Self> {
        let mut batches = Vec::new();
        for f in derived.files_of(Table::OpenStays) {
            if Lake::file_date(f) == Some(day) {
                batches.extend(warehouse_schema::lake::read_parquet(&lake.absolute(f))?);
            }
        }
        Self::from_batches(
            &batches,
            ["session_id", "lot_id", "vehicle_type", "entered_at"],
        )
    }

    /// The `open_stays` rows of this state at `day_start`.
    fn snapshot(&self, day_start: i64) -> Result<RecordBatch> {
        let n = self.0.num_rows();
        let c = |i: usize| self.0.column(i).clone();
        let raw = RecordBatch::try_from_iter([
            (
                "day_start",
                Arc::new(TimestampMillisecondArray::from(vec![day_start; n])) as ArrayRef,
            ),
            ("session_id", c(0)),
            ("lot_id", c(1)),
            ("vehicle_type", c(2)),
            (
                "entered_at",
                cast(&c(3), &DataType::Timestamp(TimeUnit::Millisecond, None))?,
            ),
        ])?;
        conform(&raw, Table::OpenStays)
    }
}
